//! Store failures: sled errors, codec errors and the domain conflicts a transaction aborts with.

use sled::transaction::TransactionError;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (I/O, corruption).
    #[error("database failure: {0}")]
    Db(#[from] sled::Error),
    /// A stored value did not encode or decode.
    #[error("cannot encode or decode {what}: {reason}")]
    Codec { what: &'static str, reason: String },
    /// The object exists already.
    #[error("{kind} {name:?} exists already")]
    Exists { kind: &'static str, name: String },
    /// The object does not exist.
    #[error("{kind} {name:?} does not exist")]
    Missing { kind: &'static str, name: String },
    /// The object changed since it was read (read again and retry).
    #[error("{kind} {name:?} changed concurrently")]
    Changed { kind: &'static str, name: String },
    /// Rewrapping the sealed secrets under a new KEK failed.
    #[error("cannot rewrap {context}: {reason}")]
    Rewrap { context: String, reason: String },
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => StoreError::Db(e),
        }
    }
}
