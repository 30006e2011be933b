//! Envelope encryption of stored secrets (remote MCP server URLs, tokens and headers, the
//! namespace secret store).
//!
//! Every value gets its own random 256-bit data key (DEK); the value is sealed with
//! AES-256-GCM under the DEK with associated data naming the record and field it belongs
//! to (`mcp_server/{ns}/{name}/auth_token`), so a sealed value copied into another record
//! or field does not open. The DEK is itself sealed (wrapped) with AES-256-GCM under the
//! key-encryption key (KEK) from the edge configuration, with associated data binding it
//! to the KEK id and the same context. The KEK never touches the disk through the edge;
//! its id (a hash prefix) is stored with each value so a rotation
//! ([`crate::store::Store::rotate_kek`]) can rewrap every DEK and a start with the wrong
//! KEK is refused by name. Plaintexts are returned in [`Zeroizing`] buffers.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Bytes of a KEK or DEK.
pub const KEY_LEN: usize = 32;
/// Bytes of an AES-GCM nonce.
const NONCE_LEN: usize = 12;

/// A sealed value as stored: the wrapped DEK (nonce ‖ ciphertext ‖ tag) and the value's
/// nonce ‖ ciphertext ‖ tag. Contains nothing readable without the KEK.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// Id of the KEK that wrapped the DEK.
    pub kek_id: String,
    pub wrapped_dek: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("kek_id", &self.kek_id)
            .field("bytes", &self.ciphertext.len())
            .finish()
    }
}

/// Why a secret could not be sealed or opened, or a KEK not loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No KEK is configured but one is needed.
    #[error(
        "no key-encryption key is configured: set `kek_file` in the edge config, or PADDOCK_EDGE_KEK_FILE (a file with 64 hex characters), or PADDOCK_EDGE_KEK"
    )]
    NoKek,
    /// The value was wrapped by another KEK than the configured one.
    #[error(
        "a secret is wrapped by key-encryption key {found}, but the configured KEK (`kek_file` / PADDOCK_EDGE_KEK_FILE / PADDOCK_EDGE_KEK) is {configured}"
    )]
    WrongKek { found: String, configured: String },
    /// The KEK material is not 32 bytes (64 hex characters).
    #[error("{source_name}: a key-encryption key must be 32 bytes written as 64 hex characters")]
    BadKek { source_name: String },
    /// The KEK file could not be read.
    #[error("cannot read the key-encryption key file {path}: {source}")]
    ReadKek {
        path: String,
        source: std::io::Error,
    },
    /// Authentication failed: the value was tampered with or belongs to another field.
    #[error("sealed value for {context} does not open (tampered, or moved from another field)")]
    Corrupt { context: String },
}

/// A key-encryption key with its id. Zeroed on drop.
#[derive(Clone)]
pub struct Kek {
    key: Zeroizing<[u8; KEY_LEN]>,
    id: String,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek").field("id", &self.id).finish()
    }
}

impl Kek {
    /// A KEK from raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Kek {
        let mut h = Sha256::new();
        h.update(b"paddock-kek-id\0");
        h.update(bytes);
        let id = format!("kek-{}", &hex::encode(h.finalize())[..16]);
        Kek {
            key: Zeroizing::new(bytes),
            id,
        }
    }

    /// A KEK from 64 hex characters (surrounding whitespace ignored).
    ///
    /// # Errors
    /// [`SecretError::BadKek`] naming `source_name`.
    pub fn from_hex(text: &str, source_name: &str) -> Result<Kek, SecretError> {
        let bad = || SecretError::BadKek {
            source_name: source_name.to_owned(),
        };
        let raw = Zeroizing::new(hex::decode(text.trim()).map_err(|_| bad())?);
        let arr: [u8; KEY_LEN] = raw.as_slice().try_into().map_err(|_| bad())?;
        Ok(Kek::from_bytes(arr))
    }

    /// Reads a KEK file (64 hex characters).
    ///
    /// # Errors
    /// [`SecretError::ReadKek`] or [`SecretError::BadKek`].
    pub fn from_file(path: &Path) -> Result<Kek, SecretError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            SecretError::ReadKek {
                path: path.display().to_string(),
                source,
            }
        })?);
        Kek::from_hex(&text, &path.display().to_string())
    }

    /// A new random KEK.
    pub fn generate() -> Kek {
        let mut bytes = [0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut bytes);
        let k = Kek::from_bytes(bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        k
    }

    /// The KEK as 64 hex characters (to write a KEK file).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(*self.key))
    }

    /// The key id stored with every value it wraps.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plaintext` for `context` (the record and field it belongs to).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Sealed {
        let mut dek = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(dek.as_mut());
        let ciphertext = encrypt(&dek, plaintext, context.as_bytes());
        let wrapped_dek = encrypt(&self.key, dek.as_ref(), self.wrap_aad(context).as_bytes());
        Sealed {
            kek_id: self.id.clone(),
            wrapped_dek,
            ciphertext,
        }
    }

    /// Opens a value sealed for `context`.
    ///
    /// # Errors
    /// [`SecretError::WrongKek`] when another KEK wrapped it, [`SecretError::Corrupt`]
    /// when it does not authenticate (tampered, or sealed for another context).
    pub fn open(&self, context: &str, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let dek = self.unwrap_dek(context, sealed)?;
        decrypt(&dek, &sealed.ciphertext, context.as_bytes()).ok_or_else(|| SecretError::Corrupt {
            context: context.to_owned(),
        })
    }

    /// Opens a value that must be UTF-8 text.
    ///
    /// # Errors
    /// As [`Kek::open`]; [`SecretError::Corrupt`] when the plaintext is not UTF-8.
    pub fn open_string(
        &self,
        context: &str,
        sealed: &Sealed,
    ) -> Result<Zeroizing<String>, SecretError> {
        let bytes = self.open(context, sealed)?;
        match std::str::from_utf8(&bytes) {
            Ok(s) => Ok(Zeroizing::new(s.to_owned())),
            Err(_) => Err(SecretError::Corrupt {
                context: context.to_owned(),
            }),
        }
    }

    /// Rewraps the DEK of `sealed` (wrapped by `self`) under `new`; the value's
    /// ciphertext is unchanged.
    ///
    /// # Errors
    /// As [`Kek::open`].
    pub fn rewrap(&self, new: &Kek, context: &str, sealed: &Sealed) -> Result<Sealed, SecretError> {
        let dek = self.unwrap_dek(context, sealed)?;
        // Check the value opens before committing to the new wrap.
        decrypt(&dek, &sealed.ciphertext, context.as_bytes()).ok_or_else(|| {
            SecretError::Corrupt {
                context: context.to_owned(),
            }
        })?;
        Ok(Sealed {
            kek_id: new.id.clone(),
            wrapped_dek: encrypt(&new.key, dek.as_ref(), new.wrap_aad(context).as_bytes()),
            ciphertext: sealed.ciphertext.clone(),
        })
    }

    fn unwrap_dek(
        &self,
        context: &str,
        sealed: &Sealed,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, SecretError> {
        if sealed.kek_id != self.id {
            return Err(SecretError::WrongKek {
                found: sealed.kek_id.clone(),
                configured: self.id.clone(),
            });
        }
        let corrupt = || SecretError::Corrupt {
            context: context.to_owned(),
        };
        let raw = decrypt(
            &self.key,
            &sealed.wrapped_dek,
            self.wrap_aad(context).as_bytes(),
        )
        .ok_or_else(corrupt)?;
        let arr: [u8; KEY_LEN] = raw.as_slice().try_into().map_err(|_| corrupt())?;
        Ok(Zeroizing::new(arr))
    }

    fn wrap_aad(&self, context: &str) -> String {
        format!("paddock-dek/v1/{}/{context}", self.id)
    }
}

fn encrypt(key: &[u8; KEY_LEN], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap_or_default();
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn decrypt(key: &[u8; KEY_LEN], sealed: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + 16 {
        return None;
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    let cipher = Aes256Gcm::new(key.into());
    cipher
        .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad })
        .ok()
        .map(Zeroizing::new)
}

/// Context of a remote server's sealed field: `mcp_server/{ns}/{name}/{field}`.
pub fn server_context(ns: &str, name: &str, field: &str) -> String {
    format!("mcp_server/{ns}/{name}/{field}")
}

/// Context of a namespace secret: `secret/{ns}/{name}`.
pub fn secret_context(ns: &str, name: &str) -> String {
    format!("secret/{ns}/{name}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding_to_context() {
        let kek = Kek::generate();
        let s = kek.seal("mcp_server/a/b/auth_token", b"tok-123");
        assert!(!s.ciphertext.windows(7).any(|w| w == b"tok-123"));
        assert_eq!(
            kek.open("mcp_server/a/b/auth_token", &s)
                .unwrap()
                .as_slice(),
            b"tok-123"
        );
        assert!(matches!(
            kek.open("mcp_server/a/c/auth_token", &s),
            Err(SecretError::Corrupt { .. })
        ));
        let mut tampered = s.clone();
        tampered.ciphertext[14] ^= 1;
        assert!(kek.open("mcp_server/a/b/auth_token", &tampered).is_err());
        // Two seals of one value differ (fresh DEK and nonces).
        assert_ne!(kek.seal("x", b"v"), kek.seal("x", b"v"));
    }

    #[test]
    fn rewrap_moves_to_the_new_kek_and_the_old_one_no_longer_opens() {
        let (old, new) = (Kek::generate(), Kek::generate());
        let s = old.seal("secret/a/k", b"value");
        let r = old.rewrap(&new, "secret/a/k", &s).unwrap();
        assert_eq!(r.kek_id, new.id());
        assert_eq!(r.ciphertext, s.ciphertext);
        assert_eq!(new.open("secret/a/k", &r).unwrap().as_slice(), b"value");
        assert!(matches!(
            old.open("secret/a/k", &r),
            Err(SecretError::WrongKek { .. })
        ));
    }

    #[test]
    fn kek_from_hex_checks_length_and_ids_are_stable() {
        let k = Kek::generate();
        let again = Kek::from_hex(&format!("{}\n", k.to_hex().as_str()), "test").unwrap();
        assert_eq!(again.id(), k.id());
        assert!(matches!(
            Kek::from_hex("abcd", "PADDOCK_EDGE_KEK"),
            Err(SecretError::BadKek { .. })
        ));
        assert!(Kek::from_hex(&"zz".repeat(32), "x").is_err());
    }
}
