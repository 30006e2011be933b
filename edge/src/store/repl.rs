//! The replication log: a sled tree of `seq (u64 big-endian) → ReplEntry (bincode)` plus
//! the last sequence in the meta tree. Entries are appended inside the same transaction
//! as the change they describe, so the log and the state never disagree.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use paddock_shared::model::{ReplEntry, ReplOp};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::codec;
use super::error::StoreError;

/// Meta key holding the last appended sequence (u64 big-endian).
pub const SEQ_KEY: &[u8] = b"repl_seq";

/// The replication log of the control state.
#[derive(Clone)]
pub struct ReplicationLog {
    log: sled::Tree,
    committed: Arc<AtomicU64>,
}

impl ReplicationLog {
    /// Opens the log over its tree and the meta tree, reading the last sequence.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails or the stored sequence is corrupt.
    pub fn open(log: sled::Tree, meta: &sled::Tree) -> Result<Self, StoreError> {
        let seq = match meta.get(SEQ_KEY)? {
            Some(v) => decode_seq(&v)?,
            None => 0,
        };
        Ok(ReplicationLog {
            log,
            committed: Arc::new(AtomicU64::new(seq)),
        })
    }

    /// The log tree (a transaction over the state must include it and the meta tree).
    pub fn tree(&self) -> &sled::Tree {
        &self.log
    }

    /// Appends `op` inside a transaction: bumps the sequence in `meta`, writes the entry to
    /// `log` and returns the new sequence. Call [`ReplicationLog::committed`] with it after
    /// the transaction commits.
    ///
    /// # Errors
    /// Conflict/storage errors from sled; an abort when the entry cannot be encoded.
    pub fn append(
        log: &TransactionalTree,
        meta: &TransactionalTree,
        op: ReplOp,
    ) -> Result<u64, ConflictableTransactionError<StoreError>> {
        let last = match meta.get(SEQ_KEY)? {
            Some(v) => decode_seq(&v).map_err(ConflictableTransactionError::Abort)?,
            None => 0,
        };
        let seq = last + 1;
        let bytes =
            codec::encode(&ReplEntry { seq, op }).map_err(ConflictableTransactionError::Abort)?;
        log.insert(&seq.to_be_bytes(), bytes)?;
        meta.insert(SEQ_KEY, &seq.to_be_bytes())?;
        Ok(seq)
    }

    /// Records that `seq` is committed (monotonic: a smaller value is ignored).
    pub fn committed(&self, seq: u64) {
        self.committed.fetch_max(seq, Ordering::SeqCst);
    }

    /// The latest committed sequence (0 when the log is empty).
    pub fn committed_seq(&self) -> u64 {
        self.committed.load(Ordering::SeqCst)
    }

    /// The oldest sequence still in the log (`committed_seq() + 1` when it is empty).
    ///
    /// # Errors
    /// [`StoreError`] when sled fails or a key is corrupt.
    pub fn oldest_retained(&self) -> Result<u64, StoreError> {
        match self.log.first()? {
            Some((k, _)) => decode_seq(&k),
            None => Ok(self.committed_seq() + 1),
        }
    }

    /// Drops entries with a sequence below `seq` (a snapshot covers them); returns how many.
    ///
    /// # Errors
    /// [`StoreError::Db`] when sled fails.
    pub fn truncate_before(&self, seq: u64) -> Result<usize, StoreError> {
        let mut n = 0;
        for k in self.log.range(..seq.to_be_bytes()).keys() {
            self.log.remove(k?)?;
            n += 1;
        }
        Ok(n)
    }

    /// Up to `limit` entries with a sequence ≥ `from`, in order.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails or an entry does not decode.
    pub fn read_from(&self, from: u64, limit: usize) -> Result<Vec<ReplEntry>, StoreError> {
        let mut out = Vec::new();
        for item in self.log.range(from.to_be_bytes()..).take(limit) {
            let (_, v) = item?;
            out.push(codec::decode(&v)?);
        }
        Ok(out)
    }
}

fn decode_seq(v: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = v.try_into().map_err(|_| StoreError::Codec {
        what: "replication sequence",
        reason: format!("expected 8 bytes, found {}", v.len()),
    })?;
    Ok(u64::from_be_bytes(arr))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use paddock_shared::model::NamespaceRecord;
    use sled::Transactional;

    fn ns(name: &str) -> ReplOp {
        ReplOp::PutNamespace(NamespaceRecord {
            name: name.into(),
            description: String::new(),
            owner: "a".into(),
            created_at: 1,
        })
    }

    fn append(db: &sled::Db, log: &ReplicationLog, op: ReplOp) -> u64 {
        let meta = db.open_tree("meta").unwrap();
        let seq = (log.tree(), &meta)
            .transaction(|(l, m)| ReplicationLog::append(l, m, op.clone()))
            .unwrap();
        log.committed(seq);
        seq
    }

    #[test]
    fn appends_are_monotonic_readable_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let log = ReplicationLog::open(
                db.open_tree("repl").unwrap(),
                &db.open_tree("meta").unwrap(),
            )
            .unwrap();
            assert_eq!(log.committed_seq(), 0);
            assert_eq!(append(&db, &log, ns("a")), 1);
            assert_eq!(append(&db, &log, ns("b")), 2);
            assert_eq!(append(&db, &log, ns("c")), 3);
            assert_eq!(log.committed_seq(), 3);
            let got = log.read_from(2, 10).unwrap();
            assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
            assert_eq!(got[0].op, ns("b"));
            assert_eq!(log.read_from(1, 1).unwrap().len(), 1);
            assert!(log.read_from(4, 10).unwrap().is_empty());
            db.flush().unwrap();
        }
        // sled's background threads may still hold the file lock of the dropped handle for a
        // moment: reopen with a bounded retry (a restarted process never sees this).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let db = loop {
            match sled::open(dir.path()) {
                Ok(db) => break db,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("cannot reopen: {e}"),
            }
        };
        let log = ReplicationLog::open(
            db.open_tree("repl").unwrap(),
            &db.open_tree("meta").unwrap(),
        )
        .unwrap();
        assert_eq!(log.committed_seq(), 3);
        assert_eq!(append(&db, &log, ns("d")), 4);
    }

    #[test]
    fn an_aborted_transaction_appends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let meta = db.open_tree("meta").unwrap();
        let log = ReplicationLog::open(db.open_tree("repl").unwrap(), &meta).unwrap();
        let r: Result<(), _> = (log.tree(), &meta).transaction(|(l, m)| {
            ReplicationLog::append(l, m, ns("x"))?;
            Err(ConflictableTransactionError::Abort(StoreError::Exists {
                kind: "namespace",
                name: "x".into(),
            }))
        });
        assert!(r.is_err());
        assert!(log.read_from(0, 10).unwrap().is_empty());
        assert_eq!(append(&db, &log, ns("y")), 1);
    }
}
