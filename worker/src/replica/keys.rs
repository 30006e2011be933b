//! Byte layout of the replica's sled trees: order-preserving tuple keys and bincode
//! values, in one place so the format can change in one place.
//!
//! A key is its name components in order, each with `0x00` escaped as `0x00 0xff` and
//! closed by `0x00 0x01`; a version key then appends the version as a big-endian `u32`.
//! Byte order of keys is therefore the order of the (name, name, …, version) tuples, and
//! the key of `(ns)` or `(ns, svc)` is a prefix of exactly the keys beneath it.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The key of a tuple of names.
pub(crate) fn names(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 2).sum());
    for part in parts {
        for &b in part.as_bytes() {
            out.push(b);
            if b == 0 {
                out.push(0xff);
            }
        }
        out.extend_from_slice(&[0x00, 0x01]);
    }
    out
}

/// The key of version `version` of the function (ns, svc, function).
pub(crate) fn version(ns: &str, svc: &str, function: &str, version: u32) -> Vec<u8> {
    let mut out = names(&[ns, svc, function]);
    out.extend_from_slice(&version.to_be_bytes());
    out
}

/// A sequence number as stored (big-endian).
pub(crate) fn seq(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Reads a stored sequence number.
pub(crate) fn decode_seq(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_be_bytes)
}

/// Encodes a record value.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| e.to_string())
}

/// Decodes a record value; the bytes must hold exactly one `T`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match bincode::serde::decode_from_slice(bytes, bincode::config::standard()) {
        Ok((v, used)) if used == bytes.len() => Ok(v),
        Ok((_, used)) => Err(format!("{} trailing bytes", bytes.len() - used)),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_is_tuple_order() {
        let tuples: [&[&str]; 6] = [&["a"], &["a", ""], &["a", "b"], &["a\0"], &["a-b"], &["ab"]];
        let keys: Vec<Vec<u8>> = tuples.iter().map(|t| names(t)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn a_key_prefixes_only_the_keys_beneath_it() {
        let ns = names(&["a"]);
        assert!(names(&["a", "s"]).starts_with(&ns));
        assert!(version("a", "s", "f", 1).starts_with(&names(&["a", "s"])));
        assert!(!names(&["ab", "s"]).starts_with(&ns));
        assert!(!names(&["a\0", "s"]).starts_with(&ns));
        assert!(version("a", "s", "f", 2) < version("a", "s", "f", 10));
    }

    #[test]
    fn values_round_trip_and_reject_trailing_bytes() {
        let mut bytes = encode(&("x".to_string(), 7u32)).unwrap();
        assert_eq!(
            decode::<(String, u32)>(&bytes).unwrap(),
            ("x".to_string(), 7)
        );
        bytes.push(0);
        assert!(decode::<(String, u32)>(&bytes).is_err());
        assert_eq!(decode_seq(&seq(42)), Some(42));
        assert_eq!(decode_seq(b"short"), None);
    }
}
