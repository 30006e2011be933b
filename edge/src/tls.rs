//! TLS material: the development certificate (generated with rcgen on first start and
//! kept in `<data-dir>/tls/`), loading operator certificates, and the SNI resolver that
//! picks a certificate by server name (exact names first, then `*.` wildcards).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::CertConfig;

/// Why TLS material could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate found")]
    NoCert { path: PathBuf },
    #[error("{path}: no PEM private key found")]
    NoKey { path: PathBuf },
    #[error("{path}: {message}")]
    BadPem { path: PathBuf, message: String },
    #[error("certificate {cert} and key {key} do not work together: {message}")]
    BadPair {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
    #[error("cannot generate the development certificate: {0}")]
    Generate(String),
}

/// The names the development certificate covers for `domain`.
pub fn dev_cert_names(domain: &str) -> Vec<String> {
    let mut names = vec![
        domain.to_owned(),
        format!("*.create.{domain}"),
        format!("*.run.{domain}"),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
    ];
    names.dedup();
    names
}

/// Returns `<data_dir>/tls/{cert,key}.pem`, generating a self-signed certificate for
/// [`dev_cert_names`] on first use. An existing pair is reused as it is.
///
/// # Errors
/// [`TlsError`] when the files cannot be written or generated.
pub fn dev_cert(data_dir: &Path, domain: &str) -> Result<CertConfig, TlsError> {
    let dir = data_dir.join("tls");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.is_file() && key.is_file() {
        return Ok(CertConfig { cert, key });
    }
    fs::create_dir_all(&dir).map_err(|source| TlsError::Write {
        path: dir.clone(),
        source,
    })?;
    let generated = rcgen::generate_simple_self_signed(dev_cert_names(domain))
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(&key, generated.signing_key.serialize_pem().as_bytes())?;
    fs::write(&cert, generated.cert.pem()).map_err(|source| TlsError::Write {
        path: cert.clone(),
        source,
    })?;
    Ok(CertConfig { cert, key })
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| TlsError::Write {
            path: path.to_owned(),
            source,
        })?;
    f.write_all(data).map_err(|source| TlsError::Write {
        path: path.to_owned(),
        source,
    })
}

fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// Loads one certificate chain and key and checks that they belong together.
///
/// # Errors
/// [`TlsError`] naming the file that is missing, unreadable or does not match.
pub fn load_pair(c: &CertConfig) -> Result<(Vec<String>, Arc<CertifiedKey>), TlsError> {
    let read = |p: &Path| {
        fs::read(p).map_err(|source| TlsError::Read {
            path: p.to_owned(),
            source,
        })
    };
    let cert_pem = read(&c.cert)?;
    let key_pem = read(&c.key)?;
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::BadPem {
            path: c.cert.clone(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCert {
            path: c.cert.clone(),
        });
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| TlsError::BadPem {
            path: c.key.clone(),
            message: e.to_string(),
        })?
        .ok_or_else(|| TlsError::NoKey {
            path: c.key.clone(),
        })?;
    let bad_pair = |message: String| TlsError::BadPair {
        cert: c.cert.clone(),
        key: c.key.clone(),
        message,
    };
    let ck =
        CertifiedKey::from_der(chain, key, &provider()).map_err(|e| bad_pair(e.to_string()))?;
    let names = {
        let leaf = ck.cert.first().ok_or_else(|| TlsError::NoCert {
            path: c.cert.clone(),
        })?;
        let ee = webpki::EndEntityCert::try_from(leaf).map_err(|e| TlsError::BadPem {
            path: c.cert.clone(),
            message: format!("{e:?}"),
        })?;
        ee.valid_dns_names()
            .map(|n| n.to_ascii_lowercase())
            .collect()
    };
    Ok((names, Arc::new(ck)))
}

/// Picks a certificate by SNI: an exact name, then a `*.` wildcard one label deep,
/// otherwise the first certificate (clients connecting by IP send no SNI).
#[derive(Debug)]
pub struct SniResolver {
    certs: Vec<(Vec<String>, Arc<CertifiedKey>)>,
}

impl SniResolver {
    /// Loads every configured pair.
    ///
    /// # Errors
    /// The first [`TlsError`]; an empty list is an error too.
    pub fn load(pairs: &[CertConfig]) -> Result<SniResolver, TlsError> {
        let certs = pairs.iter().map(load_pair).collect::<Result<Vec<_>, _>>()?;
        if certs.is_empty() {
            return Err(TlsError::Generate("no certificate configured".into()));
        }
        Ok(SniResolver { certs })
    }

    /// The index of the certificate chosen for `sni`.
    pub fn pick(&self, sni: Option<&str>) -> usize {
        let Some(sni) = sni.map(|s| s.to_ascii_lowercase()) else {
            return 0;
        };
        if let Some(i) = self
            .certs
            .iter()
            .position(|(names, _)| names.contains(&sni))
        {
            return i;
        }
        if let Some((_, parent)) = sni.split_once('.') {
            let wildcard = format!("*.{parent}");
            if let Some(i) = self
                .certs
                .iter()
                .position(|(names, _)| names.contains(&wildcard))
            {
                return i;
            }
        }
        0
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let i = self.pick(hello.server_name());
        self.certs.get(i).map(|(_, ck)| ck.clone())
    }
}

/// The rustls server configuration of the workers' TCP listener: the certificates of
/// `resolver` (picked by SNI like the HTTPS listener), no client certificates (workers
/// authenticate with the join token inside the TLS stream).
///
/// # Errors
/// [`TlsError::Generate`] when the crypto provider offers no usable protocol version.
pub fn workers_server_config(resolver: SniResolver) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Generate(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen_cert(dir: &Path, tag: &str, names: &[&str]) -> CertConfig {
        let g = rcgen::generate_simple_self_signed(
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .expect("generate");
        let cert = dir.join(format!("{tag}.crt"));
        let key = dir.join(format!("{tag}.key"));
        fs::write(&cert, g.cert.pem()).expect("write");
        fs::write(&key, g.signing_key.serialize_pem()).expect("write");
        CertConfig { cert, key }
    }

    #[test]
    fn dev_cert_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dev_cert(dir.path(), "localhost").expect("first");
        let first = fs::read(&a.cert).expect("read");
        let b = dev_cert(dir.path(), "localhost").expect("second");
        assert_eq!(first, fs::read(&b.cert).expect("read"));
        let (names, _) = load_pair(&b).expect("load");
        assert!(
            names.contains(&"*.create.localhost".to_owned()),
            "{names:?}"
        );
        assert!(names.contains(&"*.run.localhost".to_owned()), "{names:?}");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&b.key).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn sni_picks_exact_then_wildcard_then_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let one = gen_cert(dir.path(), "one", &["one.example", "*.create.one.example"]);
        let two = gen_cert(dir.path(), "two", &["two.example", "*.run.two.example"]);
        let r = SniResolver::load(&[one, two]).expect("load");
        assert_eq!(r.pick(Some("two.example")), 1);
        assert_eq!(r.pick(Some("acme.run.two.example")), 1);
        assert_eq!(r.pick(Some("ACME.create.one.example")), 0);
        assert_eq!(
            r.pick(Some("a.b.run.two.example")),
            0,
            "wildcards cover one label"
        );
        assert_eq!(r.pick(None), 0);
    }

    #[test]
    fn mismatched_pair_and_garbage_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = gen_cert(dir.path(), "a", &["a.example"]);
        let b = gen_cert(dir.path(), "b", &["b.example"]);
        let crossed = CertConfig {
            cert: a.cert.clone(),
            key: b.key.clone(),
        };
        assert!(matches!(load_pair(&crossed), Err(TlsError::BadPair { .. })));
        fs::write(dir.path().join("junk.crt"), "not pem").expect("write");
        let junk = CertConfig {
            cert: dir.path().join("junk.crt"),
            key: a.key,
        };
        assert!(matches!(load_pair(&junk), Err(TlsError::NoCert { .. })));
    }
}
