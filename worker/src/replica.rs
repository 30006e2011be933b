//! The worker's sled replica of the control state: applies replication batches and
//! snapshots through the pure [`Follower`], storing each batch's writes and the new
//! applied sequence in one sled transaction (a crash never leaves the applied sequence
//! ahead of the data), serves the reads the functions package needs, and lets an
//! execution wait until a sequence is applied (read-your-writes).
//!
//! Trees (`replica/…`, keys in [`keys`]): `namespaces` (ns), `services` (ns, svc),
//! `functions` (ns, svc, fn), `versions` (ns, svc, fn, version), `stamps` (ns → the last
//! sequence that touched it), `meta` (applied sequence, stamp floor) and `remote_servers`
//! (ns, server: the secret-free view of a remote MCP server). One applier at a
//! time holds the write lock; readers share the read lock, so a read never sees half a
//! batch. Calls block on sled briefly (no flush); call [`Replica::flush`] on shutdown.
//!
//! Applied sequences are acknowledged before sled flushes them. A crash may therefore
//! lose the tail of what was acknowledged; the replica reopens at an earlier (consistent)
//! sequence and resubscribes from [`Replica::next_seq`], getting entries or a snapshot
//! again. That is safe because the edge, not the replica, is the source of truth.

mod keys;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use paddock_shared::ErrorCode;
use paddock_shared::model::{
    FunctionRecord, NamespaceRecord, RemoteServerRecord, ReplEntry, ServiceRecord, VersionRecord,
};
use paddock_shared::replication::{
    ApplyOutcome, Follower, FollowerError, Reply, Snapshot, SnapshotDecision, Write, writes,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::watch;

const APPLIED_KEY: &[u8] = b"applied_seq";
const STAMP_FLOOR_KEY: &[u8] = b"stamp_floor";

/// A failure of the replica's storage.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The sled database could not be opened.
    #[error("open replica database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    /// A sled operation failed.
    #[error("replica storage failed to {op}")]
    Storage {
        op: &'static str,
        #[source]
        source: sled::Error,
    },
    /// A stored value does not decode.
    #[error("replica {what} record does not decode: {reason}")]
    Decode { what: &'static str, reason: String },
    /// A record does not encode.
    #[error("replica {what} record does not encode: {reason}")]
    Encode { what: &'static str, reason: String },
    /// The follower refused the step (a second applier, or a stale snapshot).
    #[error(transparent)]
    Follower(#[from] FollowerError),
}

/// The replica did not apply the wanted sequence in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "state sequence {wanted} not applied after {waited:?} (replica at {applied}); retry shortly"
)]
pub struct NotReady {
    /// The sequence the execution needs.
    pub wanted: u64,
    /// The sequence the replica had applied when the wait ended.
    pub applied: u64,
    /// How long it waited.
    pub waited: Duration,
}

impl NotReady {
    /// The public error code: [`ErrorCode::StateNotReady`].
    pub fn code(&self) -> ErrorCode {
        ErrorCode::StateNotReady
    }
}

/// What became of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotOutcome {
    /// The replica now holds exactly the snapshot, at its sequence.
    Installed { seq: u64 },
    /// The snapshot was older than the applied sequence and was ignored.
    Stale { snapshot: u64, applied: u64 },
}

impl SnapshotOutcome {
    /// What to tell the leader.
    pub fn reply(&self) -> Reply {
        match *self {
            SnapshotOutcome::Installed { seq } => Reply::Ack(seq),
            SnapshotOutcome::Stale { applied, .. } => Reply::Ack(applied),
        }
    }
}

#[derive(Clone, Copy)]
enum TreeId {
    Namespaces = 0,
    Services = 1,
    Functions = 2,
    Versions = 3,
    Stamps = 4,
    Meta = 5,
    RemoteServers = 6,
}

const TREE_NAMES: [&str; 7] = [
    "replica/namespaces",
    "replica/services",
    "replica/functions",
    "replica/versions",
    "replica/stamps",
    "replica/meta",
    "replica/remote_servers",
];

/// Writes staged for one transaction, per tree: key → value, or `None` to remove.
#[derive(Default)]
struct Pending([BTreeMap<Vec<u8>, Option<Vec<u8>>>; 7]);

/// The worker's replica of the control state. Share it in an `Arc`.
pub struct Replica {
    trees: [sled::Tree; 7],
    db: sled::Db,
    follower: RwLock<Follower>,
    applied: watch::Sender<u64>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("applied", &self.applied_seq())
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// Opens (or creates) the replica database at `path`, resuming at its applied
    /// sequence.
    ///
    /// # Errors
    /// [`ReplicaError::Open`] when sled cannot open the directory (missing permissions,
    /// or another process holds it); storage/decode errors reading the applied sequence.
    pub fn open(path: impl AsRef<Path>) -> Result<Replica, ReplicaError> {
        let path = path.as_ref();
        let db = sled::open(path).map_err(|source| ReplicaError::Open {
            path: path.to_owned(),
            source,
        })?;
        Replica::with_db(db)
    }

    /// Opens the replica in the `replica/…` trees of an open database.
    ///
    /// # Errors
    /// Storage/decode errors opening the trees or reading the applied sequence.
    pub fn with_db(db: sled::Db) -> Result<Replica, ReplicaError> {
        let open = |name: &str| db.open_tree(name).map_err(storage("open a tree"));
        let trees = [
            open(TREE_NAMES[0])?,
            open(TREE_NAMES[1])?,
            open(TREE_NAMES[2])?,
            open(TREE_NAMES[3])?,
            open(TREE_NAMES[4])?,
            open(TREE_NAMES[5])?,
            open(TREE_NAMES[6])?,
        ];
        let applied = read_seq(&trees[TreeId::Meta as usize], APPLIED_KEY)?;
        Ok(Replica {
            trees,
            db,
            follower: RwLock::new(Follower::new(applied)),
            applied: watch::Sender::new(applied),
        })
    }

    /// The last applied sequence.
    pub fn applied_seq(&self) -> u64 {
        *self.applied.borrow()
    }

    /// The first sequence the replica lacks: subscribe to the edge from here.
    pub fn next_seq(&self) -> u64 {
        self.applied_seq().saturating_add(1)
    }

    /// A receiver that sees every new applied sequence.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Waits until sequence `seq` is applied, at most `timeout`.
    ///
    /// # Errors
    /// [`NotReady`] (code `STATE_NOT_READY`) when the time runs out first.
    pub async fn wait_for(&self, seq: u64, timeout: Duration) -> Result<(), NotReady> {
        let mut rx = self.applied.subscribe();
        if *rx.borrow_and_update() >= seq {
            return Ok(());
        }
        match tokio::time::timeout(timeout, rx.wait_for(|&applied| applied >= seq)).await {
            Ok(Ok(_)) => Ok(()),
            // The sender lives as long as `self`, so only the timeout ends the wait.
            Ok(Err(_)) | Err(_) => Err(NotReady {
                wanted: seq,
                applied: self.applied_seq(),
                waited: timeout,
            }),
        }
    }

    /// Applies a batch of log entries: duplicates are skipped, new entries are applied in
    /// order with the new applied sequence in one transaction, and a hole ends the batch
    /// (the outcome's reply is then `NeedFrom`).
    ///
    /// # Errors
    /// Storage or encoding errors; nothing of the batch is applied then.
    pub fn apply_batch(&self, batch: &[ReplEntry]) -> Result<ApplyOutcome, ReplicaError> {
        let mut follower = self.write_lock();
        let decision = follower.decide(batch);
        if !decision.entries().is_empty() {
            let mut pending = Pending::default();
            for entry in decision.entries() {
                for w in writes(&entry.op) {
                    self.stage(&mut pending, w)?;
                    pending.put_raw(
                        TreeId::Stamps,
                        keys::names(&[w.namespace()]),
                        keys::seq(entry.seq).to_vec(),
                    );
                }
            }
            pending.put_raw(
                TreeId::Meta,
                APPLIED_KEY.to_vec(),
                keys::seq(decision.target()).to_vec(),
            );
            self.commit(pending)?;
        }
        let outcome = follower.commit(&decision)?;
        self.publish(outcome.applied_seq);
        Ok(outcome)
    }

    /// Installs a snapshot at or after the applied sequence: every replicated tree is
    /// replaced by it in one transaction, and every namespace's stamp becomes the
    /// snapshot's sequence. An older snapshot is ignored.
    ///
    /// # Errors
    /// Storage or encoding errors; the replica is unchanged then.
    pub fn install_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotOutcome, ReplicaError> {
        let mut follower = self.write_lock();
        if let SnapshotDecision::Stale { snapshot, applied } =
            follower.decide_snapshot(snapshot.seq)
        {
            return Ok(SnapshotOutcome::Stale { snapshot, applied });
        }
        self.replace_all(snapshot)?;
        follower.install_snapshot(snapshot.seq)?;
        self.publish(snapshot.seq);
        Ok(SnapshotOutcome::Installed { seq: snapshot.seq })
    }

    /// Replaces the state with `snapshot` even when it is older than the applied
    /// sequence: for a leader that found this replica ahead of its log
    /// ([`Plan::Diverged`](paddock_shared::replication::Plan::Diverged)).
    ///
    /// # Errors
    /// Storage or encoding errors; the replica is unchanged then.
    pub fn reset(&self, snapshot: &Snapshot) -> Result<Reply, ReplicaError> {
        let mut follower = self.write_lock();
        self.replace_all(snapshot)?;
        let reply = follower.reset(snapshot.seq);
        self.publish(snapshot.seq);
        Ok(reply)
    }

    /// Flushes to disk; returns the bytes written.
    ///
    /// # Errors
    /// [`ReplicaError::Storage`] when the flush fails.
    pub fn flush(&self) -> Result<usize, ReplicaError> {
        self.db.flush().map_err(storage("flush"))
    }

    // --- reads ---

    /// The namespace `ns`.
    ///
    /// # Errors
    /// Storage or decode errors.
    pub fn namespace(&self, ns: &str) -> Result<Option<NamespaceRecord>, ReplicaError> {
        let _read = self.read_lock();
        self.get(TreeId::Namespaces, &keys::names(&[ns]), "namespace")
    }

    /// The services of `ns`, sorted by name.
    ///
    /// # Errors
    /// Storage or decode errors.
    pub fn services(&self, ns: &str) -> Result<Vec<ServiceRecord>, ReplicaError> {
        let _read = self.read_lock();
        self.scan(TreeId::Services, &keys::names(&[ns]), "service")
    }

    /// The function (ns, svc, name).
    ///
    /// # Errors
    /// Storage or decode errors.
    pub fn function(
        &self,
        ns: &str,
        svc: &str,
        name: &str,
    ) -> Result<Option<FunctionRecord>, ReplicaError> {
        let _read = self.read_lock();
        self.get(
            TreeId::Functions,
            &keys::names(&[ns, svc, name]),
            "function",
        )
    }

    /// Version `version` of the function (ns, svc, function).
    ///
    /// # Errors
    /// Storage or decode errors.
    pub fn version(
        &self,
        ns: &str,
        svc: &str,
        function: &str,
        version: u32,
    ) -> Result<Option<VersionRecord>, ReplicaError> {
        let _read = self.read_lock();
        self.get(
            TreeId::Versions,
            &keys::version(ns, svc, function, version),
            "version",
        )
    }

    /// Every function of `ns` with its current version, sorted by service then function
    /// name. A function whose current version is missing is left out (and logged).
    ///
    /// # Errors
    /// Storage or decode errors.
    pub fn namespace_functions(
        &self,
        ns: &str,
    ) -> Result<Vec<(FunctionRecord, VersionRecord)>, ReplicaError> {
        let _read = self.read_lock();
        self.read_namespace_functions(ns)
    }

    /// [`Replica::namespace_stamp`] and [`Replica::namespace_functions`] read together,
    /// so the functions are exactly those of the stamp (cache them under it).
    ///
    /// # Errors
    /// Storage or decode errors.
    pub fn namespace_functions_stamped(
        &self,
        ns: &str,
    ) -> Result<(u64, Vec<(FunctionRecord, VersionRecord)>), ReplicaError> {
        let _read = self.read_lock();
        Ok((self.read_stamp(ns)?, self.read_namespace_functions(ns)?))
    }

    fn read_namespace_functions(
        &self,
        ns: &str,
    ) -> Result<Vec<(FunctionRecord, VersionRecord)>, ReplicaError> {
        let functions: Vec<FunctionRecord> =
            self.scan(TreeId::Functions, &keys::names(&[ns]), "function")?;
        let mut out = Vec::with_capacity(functions.len());
        for f in functions {
            let key = keys::version(&f.namespace, &f.service, &f.name, f.current_version);
            match self.get::<VersionRecord>(TreeId::Versions, &key, "version")? {
                Some(v) => out.push((f, v)),
                None => tracing::warn!(
                    namespace = %f.namespace, service = %f.service, function = %f.name,
                    version = f.current_version, "replica: current version missing, function left out"
                ),
            }
        }
        Ok(out)
    }

    /// The remote MCP servers attached to `ns` (their secret-free view), sorted by name.
    ///
    /// # Errors
    /// Storage or decode errors.
    pub fn remote_servers(&self, ns: &str) -> Result<Vec<RemoteServerRecord>, ReplicaError> {
        let _read = self.read_lock();
        self.scan(TreeId::RemoteServers, &keys::names(&[ns]), "remote server")
    }

    /// [`Replica::namespace_stamp`] with [`Replica::namespace_functions`] and
    /// [`Replica::remote_servers`], read together so all three are of the same stamp.
    ///
    /// # Errors
    /// Storage or decode errors.
    #[allow(clippy::type_complexity)]
    pub fn namespace_contents_stamped(
        &self,
        ns: &str,
    ) -> Result<
        (
            u64,
            Vec<(FunctionRecord, VersionRecord)>,
            Vec<RemoteServerRecord>,
        ),
        ReplicaError,
    > {
        let _read = self.read_lock();
        Ok((
            self.read_stamp(ns)?,
            self.read_namespace_functions(ns)?,
            self.scan(TreeId::RemoteServers, &keys::names(&[ns]), "remote server")?,
        ))
    }

    /// A stamp that changes whenever anything in namespace `ns` may have changed: the
    /// last sequence that touched it, or the last snapshot's sequence if later (0 when
    /// neither). Cache per-namespace artefacts on `(ns, stamp)`.
    ///
    /// # Errors
    /// Storage or decode errors.
    pub fn namespace_stamp(&self, ns: &str) -> Result<u64, ReplicaError> {
        let _read = self.read_lock();
        self.read_stamp(ns)
    }

    fn read_stamp(&self, ns: &str) -> Result<u64, ReplicaError> {
        let floor = read_seq(self.tree(TreeId::Meta), STAMP_FLOOR_KEY)?;
        let stamp = read_seq(self.tree(TreeId::Stamps), &keys::names(&[ns]))?;
        Ok(stamp.max(floor))
    }

    /// The whole replicated state as a snapshot at the applied sequence (for tests,
    /// diagnostics, and serving a peer).
    ///
    /// # Errors
    /// Storage or decode errors.
    pub fn snapshot(&self) -> Result<Snapshot, ReplicaError> {
        let follower = self.read_lock();
        Ok(Snapshot {
            seq: follower.applied(),
            namespaces: self.scan(TreeId::Namespaces, &[], "namespace")?,
            services: self.scan(TreeId::Services, &[], "service")?,
            functions: self.scan(TreeId::Functions, &[], "function")?,
            versions: self.scan(TreeId::Versions, &[], "version")?,
            remote_servers: self.scan(TreeId::RemoteServers, &[], "remote server")?,
        })
    }

    // --- internals ---

    fn tree(&self, t: TreeId) -> &sled::Tree {
        &self.trees[t as usize]
    }

    fn read_lock(&self) -> RwLockReadGuard<'_, Follower> {
        // The follower only changes after a successful commit, so it is consistent even
        // if a holder panicked.
        self.follower.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, Follower> {
        self.follower
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, applied: u64) {
        self.applied.send_if_modified(|current| {
            let changed = *current != applied;
            *current = applied;
            changed
        });
    }

    fn get<V: DeserializeOwned>(
        &self,
        t: TreeId,
        key: &[u8],
        what: &'static str,
    ) -> Result<Option<V>, ReplicaError> {
        match self.tree(t).get(key).map_err(storage("read"))? {
            Some(bytes) => decode(&bytes, what).map(Some),
            None => Ok(None),
        }
    }

    fn scan<V: DeserializeOwned>(
        &self,
        t: TreeId,
        prefix: &[u8],
        what: &'static str,
    ) -> Result<Vec<V>, ReplicaError> {
        let mut out = Vec::new();
        for item in self.tree(t).scan_prefix(prefix) {
            let (_, bytes) = item.map_err(storage("scan"))?;
            out.push(decode(&bytes, what)?);
        }
        Ok(out)
    }

    /// Stages one write, reading the committed trees (and earlier staged writes) for
    /// the keys a range removal covers.
    fn stage(&self, pending: &mut Pending, w: Write<'_>) -> Result<(), ReplicaError> {
        match w {
            Write::PutNamespace(n) => {
                pending.put(TreeId::Namespaces, keys::names(&[&n.name]), n, "namespace")
            }
            Write::PutService(s) => pending.put(
                TreeId::Services,
                keys::names(&[&s.namespace, &s.name]),
                s,
                "service",
            ),
            Write::PutFunction(f) => pending.put(
                TreeId::Functions,
                keys::names(&[&f.namespace, &f.service, &f.name]),
                f,
                "function",
            ),
            Write::PutVersion(v) => pending.put(
                TreeId::Versions,
                keys::version(&v.namespace, &v.service, &v.function, v.version),
                v,
                "version",
            ),
            Write::RemoveService { namespace, service } => {
                pending.remove(TreeId::Services, keys::names(&[namespace, service]));
                Ok(())
            }
            Write::PutRemoteServer(r) => pending.put(
                TreeId::RemoteServers,
                keys::names(&[&r.namespace, &r.name]),
                r,
                "remote server",
            ),
            Write::RemoveRemoteServer { namespace, name } => {
                pending.remove(TreeId::RemoteServers, keys::names(&[namespace, name]));
                Ok(())
            }
            Write::RemoveFunction {
                namespace,
                service,
                function,
            } => {
                pending.remove(
                    TreeId::Functions,
                    keys::names(&[namespace, service, function]),
                );
                Ok(())
            }
            Write::RemoveServiceFunctions { namespace, service } => self.stage_remove_prefix(
                pending,
                TreeId::Functions,
                &keys::names(&[namespace, service]),
            ),
            Write::RemoveServiceVersions { namespace, service } => self.stage_remove_prefix(
                pending,
                TreeId::Versions,
                &keys::names(&[namespace, service]),
            ),
            Write::RemoveFunctionVersions {
                namespace,
                service,
                function,
            } => self.stage_remove_prefix(
                pending,
                TreeId::Versions,
                &keys::names(&[namespace, service, function]),
            ),
        }
    }

    fn stage_remove_prefix(
        &self,
        pending: &mut Pending,
        t: TreeId,
        prefix: &[u8],
    ) -> Result<(), ReplicaError> {
        let mut doomed = Vec::new();
        for item in self.tree(t).scan_prefix(prefix) {
            let (key, _) = item.map_err(storage("scan"))?;
            doomed.push(key.to_vec());
        }
        let staged = &pending.0[t as usize];
        doomed.extend(
            staged
                .range(prefix.to_vec()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .filter(|(_, v)| v.is_some())
                .map(|(k, _)| k.clone()),
        );
        for key in doomed {
            pending.remove(t, key);
        }
        Ok(())
    }

    /// Stages the removal of every replicated record and stamp, then the snapshot's
    /// records, its sequence as applied sequence and stamp floor; commits.
    fn replace_all(&self, snapshot: &Snapshot) -> Result<(), ReplicaError> {
        let mut pending = Pending::default();
        for t in [
            TreeId::Namespaces,
            TreeId::Services,
            TreeId::Functions,
            TreeId::Versions,
            TreeId::Stamps,
            TreeId::RemoteServers,
        ] {
            self.stage_remove_prefix(&mut pending, t, &[])?;
        }
        let puts = (snapshot.namespaces.iter().map(Write::PutNamespace))
            .chain(snapshot.services.iter().map(Write::PutService))
            .chain(snapshot.functions.iter().map(Write::PutFunction))
            .chain(snapshot.versions.iter().map(Write::PutVersion))
            .chain(snapshot.remote_servers.iter().map(Write::PutRemoteServer));
        for w in puts {
            self.stage(&mut pending, w)?;
        }
        let seq = keys::seq(snapshot.seq).to_vec();
        pending.put_raw(TreeId::Meta, APPLIED_KEY.to_vec(), seq.clone());
        pending.put_raw(TreeId::Meta, STAMP_FLOOR_KEY.to_vec(), seq);
        self.commit(pending)
    }

    /// Writes everything staged in one transaction over all the replica's trees.
    fn commit(&self, pending: Pending) -> Result<(), ReplicaError> {
        let batches: Vec<sled::Batch> = pending
            .0
            .into_iter()
            .map(|writes| {
                let mut batch = sled::Batch::default();
                for (key, value) in writes {
                    match value {
                        Some(v) => batch.insert(key, v),
                        None => batch.remove(key),
                    }
                }
                batch
            })
            .collect();
        let trees: Vec<&sled::Tree> = self.trees.iter().collect();
        trees
            .as_slice()
            .transaction(|txs| {
                for (tx, batch) in txs.iter().zip(&batches) {
                    tx.apply_batch(batch)?;
                }
                Ok::<_, ConflictableTransactionError<Infallible>>(())
            })
            .map_err(|e| match e {
                TransactionError::Storage(source) => ReplicaError::Storage {
                    op: "commit a batch",
                    source,
                },
                TransactionError::Abort(never) => match never {},
            })
    }
}

impl Pending {
    fn put<V: Serialize>(
        &mut self,
        t: TreeId,
        key: Vec<u8>,
        value: &V,
        what: &'static str,
    ) -> Result<(), ReplicaError> {
        let bytes = keys::encode(value).map_err(|reason| ReplicaError::Encode { what, reason })?;
        self.put_raw(t, key, bytes);
        Ok(())
    }

    fn put_raw(&mut self, t: TreeId, key: Vec<u8>, value: Vec<u8>) {
        self.0[t as usize].insert(key, Some(value));
    }

    fn remove(&mut self, t: TreeId, key: Vec<u8>) {
        self.0[t as usize].insert(key, None);
    }
}

fn decode<V: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<V, ReplicaError> {
    keys::decode(bytes).map_err(|reason| ReplicaError::Decode { what, reason })
}

fn read_seq(tree: &sled::Tree, key: &[u8]) -> Result<u64, ReplicaError> {
    match tree.get(key).map_err(storage("read"))? {
        None => Ok(0),
        Some(bytes) => keys::decode_seq(&bytes).ok_or_else(|| ReplicaError::Decode {
            what: "sequence",
            reason: format!("expected 8 bytes, found {}", bytes.len()),
        }),
    }
}

fn storage(op: &'static str) -> impl Fn(sled::Error) -> ReplicaError {
    move |source| ReplicaError::Storage { op, source }
}
