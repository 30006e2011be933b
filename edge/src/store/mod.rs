//! The edge's durable control state in sled 0.34.7: one tree per record kind, typed
//! get/scan helpers, and [`Store::transact`], the only way to mutate state — one sled
//! transaction over the trees that also appends to the replication log, then a flush.
//!
//! Trees and keys (values are bincode, see [`codec`]):
//! | tree | key | value |
//! |---|---|---|
//! | `accounts` | account id | [`records::AccountRecord`] |
//! | `emails` | lower-cased email | account id |
//! | `keys_by_digest` | HMAC-SHA256 digest of the raw key | key id |
//! | `keys_by_id` | key id | [`records::ApiKeyRecord`] |
//! | `namespaces` | `ns` | `NamespaceRecord` |
//! | `services` | `ns/svc` | `ServiceRecord` |
//! | `functions` | `ns/svc/fn` | `FunctionRecord` |
//! | `versions` | `ns/svc/fn#0000000001` | `VersionRecord` |
//! | `confirmations` | token | [`records::Confirmation`] |
//! | `repl` | seq (u64 BE) | `ReplEntry` |
//! | `meta` | name | bytes (last sequence, generated secrets' markers) |
//! | `counters` | `ns/svc/fn` | call count (u64 BE); usage metrics, not replicated |
//! | `executions`, `execution_ids` | see [`executions`] | execution records; not replicated |
//! | `remote_servers` | `ns/name` | `RemoteServerRecord` (the replicated, secret-free view) |
//! | `mcp_servers` | `ns/name` | [`crate::remote::model::McpServerConfig`] (sealed secrets; never replicated) |
//! | `secrets` | `ns/name` | [`remote::SecretRecord`] (sealed; never replicated) |

pub mod codec;
pub mod control;
pub mod error;
pub mod executions;
pub mod identity;
pub mod records;
pub mod remote;
pub mod repl;
pub mod snapshot;

use std::cell::Cell;
use std::path::Path;
use std::sync::{Arc, RwLock};

use paddock_shared::model::ReplOp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

pub use error::StoreError;
pub use repl::ReplicationLog;

/// The transactional trees, in the order of [`Store::all`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum T {
    Accounts = 0,
    Emails,
    KeysByDigest,
    KeysById,
    Namespaces,
    Services,
    Functions,
    Versions,
    Confirmations,
    Meta,
    Repl,
    RemoteServers,
    McpServers,
    Secrets,
}

const TREE_NAMES: [&str; 14] = [
    "accounts",
    "emails",
    "keys_by_digest",
    "keys_by_id",
    "namespaces",
    "services",
    "functions",
    "versions",
    "confirmations",
    "meta",
    "repl",
    "remote_servers",
    "mcp_servers",
    "secrets",
];

/// Handle on the control state. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    counters: sled::Tree,
    log: ReplicationLog,
    /// Held shared by every transaction and exclusively by [`Store::snapshot`].
    commit_lock: Arc<RwLock<()>>,
}

/// A transaction in progress: typed access to every tree plus the replication log.
pub struct Tx<'a> {
    v: &'a [TransactionalTree],
    seq: Cell<u64>,
}

/// Result type of the closures given to [`Store::transact`].
pub type TxResult<R> = Result<R, ConflictableTransactionError<StoreError>>;

/// Aborts a transaction with a store error.
pub fn abort<R>(e: StoreError) -> TxResult<R> {
    Err(ConflictableTransactionError::Abort(e))
}

impl Tx<'_> {
    fn t(&self, t: T) -> &TransactionalTree {
        &self.v[t as usize]
    }

    /// Reads and decodes a value.
    pub fn get<V: DeserializeOwned>(&self, t: T, key: &[u8]) -> TxResult<Option<V>> {
        match self.t(t).get(key)? {
            Some(b) => Ok(Some(
                codec::decode(&b).map_err(ConflictableTransactionError::Abort)?,
            )),
            None => Ok(None),
        }
    }

    /// Whether a key exists.
    pub fn exists(&self, t: T, key: &[u8]) -> TxResult<bool> {
        Ok(self.t(t).get(key)?.is_some())
    }

    /// Encodes and writes a value.
    pub fn put<V: Serialize>(&self, t: T, key: &[u8], v: &V) -> TxResult<()> {
        let b = codec::encode(v).map_err(ConflictableTransactionError::Abort)?;
        self.t(t).insert(key, b)?;
        Ok(())
    }

    /// Removes a key.
    pub fn remove(&self, t: T, key: &[u8]) -> TxResult<()> {
        self.t(t).remove(key)?;
        Ok(())
    }

    /// Appends a replication entry in this transaction.
    pub fn log(&self, op: ReplOp) -> TxResult<()> {
        let seq = ReplicationLog::append(self.t(T::Repl), self.t(T::Meta), op)?;
        self.seq.set(seq);
        Ok(())
    }
}

impl Store {
    /// Opens (creates) the database at `path`.
    ///
    /// # Errors
    /// [`StoreError::Db`] when sled cannot open the directory (in use, corrupt, no access).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new().path(path).open()?;
        let trees = TREE_NAMES
            .iter()
            .map(|n| db.open_tree(n))
            .collect::<Result<Vec<_>, _>>()?;
        let counters = db.open_tree("counters")?;
        let log = ReplicationLog::open(trees[T::Repl as usize].clone(), &trees[T::Meta as usize])?;
        Ok(Store {
            db,
            trees,
            counters,
            log,
            commit_lock: Arc::new(RwLock::new(())),
        })
    }

    /// One tree, for reads.
    pub fn tree(&self, t: T) -> &sled::Tree {
        &self.trees[t as usize]
    }

    /// The sled database (trees kept by other modules, e.g. the usage counters).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// The replication log.
    pub fn log(&self) -> &ReplicationLog {
        &self.log
    }

    /// Reads and decodes one value.
    ///
    /// # Errors
    /// [`StoreError`] on sled or decode failure.
    pub fn get<V: DeserializeOwned>(&self, t: T, key: &[u8]) -> Result<Option<V>, StoreError> {
        match self.tree(t).get(key)? {
            Some(b) => Ok(Some(codec::decode(&b)?)),
            None => Ok(None),
        }
    }

    /// Decodes every value under a key prefix, in key order.
    ///
    /// # Errors
    /// [`StoreError`] on sled or decode failure.
    pub fn scan<V: DeserializeOwned>(&self, t: T, prefix: &[u8]) -> Result<Vec<V>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree(t).scan_prefix(prefix) {
            let (_, v) = item?;
            out.push(codec::decode(&v)?);
        }
        Ok(out)
    }

    /// Keys under a prefix.
    ///
    /// # Errors
    /// [`StoreError::Db`] on sled failure.
    pub fn keys(&self, t: T, prefix: &[u8]) -> Result<Vec<sled::IVec>, StoreError> {
        self.tree(t)
            .scan_prefix(prefix)
            .keys()
            .map(|k| k.map_err(StoreError::from))
            .collect()
    }

    /// Runs `f` as one transaction over every tree, then marks its replication entry (if
    /// any) committed and flushes to disk before returning.
    ///
    /// # Errors
    /// The abort error of `f`, or [`StoreError::Db`].
    pub fn transact<R>(&self, f: impl Fn(&Tx<'_>) -> TxResult<R>) -> Result<R, StoreError> {
        let _commit = self.commit_lock.read().unwrap_or_else(|e| e.into_inner());
        let (r, seq) = self.trees.as_slice().transaction(|v| {
            let tx = Tx {
                v,
                seq: Cell::new(0),
            };
            let r = f(&tx)?;
            Ok((r, tx.seq.get()))
        })?;
        self.db.flush()?;
        if seq > 0 {
            self.log.committed(seq);
        }
        Ok(r)
    }

    /// Adds `n` to a counter (not transactional with the control state, not replicated).
    ///
    /// # Errors
    /// [`StoreError::Db`] on sled failure.
    pub fn bump_counter(&self, key: &[u8], n: u64) -> Result<u64, StoreError> {
        let v = self.counters.update_and_fetch(key, |old| {
            let cur = old
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_be_bytes);
            Some(cur.saturating_add(n).to_be_bytes().to_vec())
        })?;
        Ok(v.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// Reads a counter (0 when absent).
    ///
    /// # Errors
    /// [`StoreError::Db`] on sled failure.
    pub fn counter(&self, key: &[u8]) -> Result<u64, StoreError> {
        Ok(self
            .counters
            .get(key)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// Removes counters under a prefix (after a delete).
    ///
    /// # Errors
    /// [`StoreError::Db`] on sled failure.
    pub fn clear_counters(&self, prefix: &[u8]) -> Result<(), StoreError> {
        for k in self.counters.scan_prefix(prefix).keys() {
            self.counters.remove(k?)?;
        }
        Ok(())
    }

    /// Flushes everything to disk.
    ///
    /// # Errors
    /// [`StoreError::Db`] on sled failure.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

/// Now, unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
