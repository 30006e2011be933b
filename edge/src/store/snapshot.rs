//! A consistent snapshot of the replicated state (namespaces, services, functions,
//! versions) at one committed sequence, for workers too far behind the log, and log
//! retention (dropping entries a snapshot covers).

use paddock_shared::replication::Snapshot;

use super::repl::SEQ_KEY;
use super::{Store, StoreError, T};

impl Store {
    /// Everything workers need, as of the returned `seq`. Writers are held off while the
    /// trees are read, so the snapshot is exactly the state after `seq`.
    ///
    /// # Errors
    /// A database or decode failure.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let _writers_held = self.commit_lock.write().unwrap_or_else(|e| e.into_inner());
        let seq = match self.tree(T::Meta).get(SEQ_KEY)? {
            Some(v) => <[u8; 8]>::try_from(v.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Codec {
                    what: "replication sequence",
                    reason: "expected 8 bytes".into(),
                })?,
            None => 0,
        };
        Ok(Snapshot {
            seq,
            namespaces: self.scan(T::Namespaces, b"")?,
            services: self.scan(T::Services, b"")?,
            functions: self.scan(T::Functions, b"")?,
            versions: self.scan(T::Versions, b"")?,
            remote_servers: self.remote_server_views()?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use paddock_shared::model::{NamespaceRecord, ServiceRecord};

    #[test]
    fn snapshot_matches_the_log_and_retention_keeps_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.snapshot().unwrap().seq, 0);
        for n in ["a", "b"] {
            s.create_namespace(&NamespaceRecord {
                name: n.into(),
                description: String::new(),
                owner: "o".into(),
                created_at: 1,
            })
            .unwrap();
        }
        s.create_service(&ServiceRecord {
            namespace: "a".into(),
            name: "svc".into(),
            description: String::new(),
            created_at: 1,
        })
        .unwrap();
        let snap = s.snapshot().unwrap();
        assert_eq!(snap.seq, 3);
        assert_eq!(snap.namespaces.len(), 2);
        assert_eq!(snap.services[0].name, "svc");
        assert_eq!(s.log().oldest_retained().unwrap(), 1);
        assert_eq!(s.log().truncate_before(3).unwrap(), 2);
        assert_eq!(s.log().oldest_retained().unwrap(), 3);
        assert_eq!(s.log().read_from(1, 10).unwrap().len(), 1);
    }
}
