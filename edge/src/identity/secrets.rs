//! Server secrets (key pepper, JWT secret): taken from the config when set, else
//! generated once and kept in a 0600 file under the data directory.

use std::io::Write;
use std::path::Path;

use rand::RngCore;

/// A secret file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} secret file {path}: {source}")]
pub struct SecretError {
    pub op: &'static str,
    pub path: String,
    pub source: std::io::Error,
}

/// Returns the configured secret, or the one stored at `path`, or a fresh one written there.
///
/// # Errors
/// [`SecretError`] when the file cannot be read or created.
pub fn load_or_create(configured: Option<&str>, path: &Path) -> Result<Vec<u8>, SecretError> {
    if let Some(s) = configured.filter(|s| !s.is_empty()) {
        return Ok(s.as_bytes().to_vec());
    }
    let err = |op, source| SecretError {
        op,
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err("read", e)),
    }
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    let s = hex::encode(b);
    write_private(path, &s).map_err(|e| err("write", e))?;
    Ok(s.into_bytes())
}

/// Writes `content` to a new file readable only by its owner (mode 0600), durably.
///
/// # Errors
/// I/O errors.
pub fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(content.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_kept_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pepper");
        let a = load_or_create(None, &p).unwrap();
        let b = load_or_create(None, &p).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_eq!(
            load_or_create(Some("configured"), &p).unwrap(),
            b"configured".to_vec()
        );
    }
}
