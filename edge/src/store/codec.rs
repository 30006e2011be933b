//! Value encoding of the store: bincode 2.0.1 (standard config) over serde, for sled values
//! and replication entries alike. Kept here so the format can be swapped in one place.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::StoreError;

/// Encodes a record.
///
/// # Errors
/// [`StoreError::Codec`] when serde refuses the value.
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    bincode::serde::encode_to_vec(v, bincode::config::standard()).map_err(|e| StoreError::Codec {
        what: std::any::type_name::<T>(),
        reason: e.to_string(),
    })
}

/// Decodes a record.
///
/// # Errors
/// [`StoreError::Codec`] when the bytes are not a `T`.
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    bincode::serde::decode_from_slice(b, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| StoreError::Codec {
            what: std::any::type_name::<T>(),
            reason: e.to_string(),
        })
}

/// Decodes a `T` from the start of `b`; returns it and the number of bytes it took (older
/// record shapes are prefixes of newer ones: fields are only ever appended).
///
/// # Errors
/// [`StoreError::Codec`] when the bytes do not start with a `T`.
pub fn decode_prefix<T: DeserializeOwned>(b: &[u8]) -> Result<(T, usize), StoreError> {
    bincode::serde::decode_from_slice(b, bincode::config::standard()).map_err(|e| {
        StoreError::Codec {
            what: std::any::type_name::<T>(),
            reason: e.to_string(),
        }
    })
}
