//! The connected workers and the [`Dispatcher`] that runs executions on them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use paddock_shared::error::ErrorCode;
use paddock_shared::exec::{ExecutionRequest, ExecutionResult, WorkerStats};
use paddock_shared::protocol::{ToWorker, Welcome};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::app::ApiError;
use crate::bridge::BridgeKeys;

/// What a pending execution is answered with.
pub(crate) type Answer = Result<ExecutionResult, ApiError>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One connected worker, shared by its connection task and the dispatcher.
pub(crate) struct WorkerHandle {
    pub conn_id: u64,
    pub welcome: Welcome,
    pub peer: String,
    pub tx: mpsc::Sender<ToWorker>,
    pub in_flight: AtomicU32,
    pub acked: AtomicU64,
    pub pending: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    pub closed: CancellationToken,
    /// The worker's last `Stats` answer (asked for by [`Dispatcher::refresh_stats`]).
    pub stats: watch::Sender<Option<WorkerStats>>,
}

impl WorkerHandle {
    fn serves(&self, req: &ExecutionRequest) -> bool {
        self.welcome.profiles.iter().any(|p| p == &req.profile)
            && self.welcome.languages.contains(&req.language)
    }

    fn load(&self) -> f64 {
        f64::from(self.in_flight.load(Ordering::Relaxed)) / f64::from(self.welcome.capacity.max(1))
    }

    /// Answers every pending execution with `WORKER_LOST` (the connection ended).
    pub fn fail_pending(&self, why: &str) {
        self.closed.cancel();
        let pending: Vec<_> = lock(&self.pending).drain().collect();
        for (id, tx) in pending {
            let _ = tx.send(Err(worker_lost(&self.welcome.worker_id, &id, why)));
        }
    }
}

fn worker_lost(worker: &str, execution_id: &str, why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::WorkerLost,
        format!(
            "worker {worker} was lost during execution {execution_id} ({why}); the code may have run partly and was not retried"
        ),
    )
}

/// One worker as [`Dispatcher::stats`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    pub worker_id: String,
    pub peer: String,
    pub capacity: u32,
    pub in_flight: u32,
    pub profiles: Vec<String>,
    pub languages: Vec<paddock_shared::model::Language>,
    /// Highest replication sequence the worker acknowledged.
    pub acked_seq: u64,
    /// The worker's last reported pools and counters (`None` until it answered once).
    pub stats: Option<WorkerStats>,
}

/// Picks the less loaded of two candidates drawn at random (power of two choices);
/// `loads[i]` is candidate `i`'s in-flight / capacity. `None` when `loads` is empty.
pub fn pick_two(loads: &[f64], r1: usize, r2: usize) -> Option<usize> {
    match loads.len() {
        0 => None,
        1 => Some(0),
        n => {
            let a = r1 % n;
            let mut b = r2 % (n - 1);
            if b >= a {
                b += 1;
            }
            Some(if loads[b] < loads[a] { b } else { a })
        }
    }
}

/// Runs executions on connected workers. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    workers: Mutex<Vec<Arc<WorkerHandle>>>,
    next_conn: AtomicU64,
    socket: PathBuf,
    token_path: PathBuf,
    /// The bridge keys of the executions in flight (issue 6).
    keys: Arc<BridgeKeys>,
}

/// Decrements a worker's in-flight count when the execution ends, however it ends.
struct InFlight(Arc<WorkerHandle>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Dispatcher {
    pub(crate) fn new(socket: PathBuf, token_path: PathBuf) -> Dispatcher {
        Dispatcher {
            inner: Arc::new(Inner {
                workers: Mutex::new(Vec::new()),
                next_conn: AtomicU64::new(1),
                socket,
                token_path,
                keys: Arc::new(BridgeKeys::default()),
            }),
        }
    }

    /// The bridge keys of the executions in flight.
    pub fn bridge_keys(&self) -> &Arc<BridgeKeys> {
        &self.inner.keys
    }

    pub(crate) fn next_conn_id(&self) -> u64 {
        self.inner.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn register(&self, w: Arc<WorkerHandle>) {
        lock(&self.inner.workers).push(w);
    }

    pub(crate) fn unregister(&self, conn_id: u64) {
        lock(&self.inner.workers).retain(|w| w.conn_id != conn_id);
    }

    /// The connected workers.
    pub fn stats(&self) -> Vec<WorkerInfo> {
        lock(&self.inner.workers)
            .iter()
            .map(|w| WorkerInfo {
                worker_id: w.welcome.worker_id.clone(),
                peer: w.peer.clone(),
                capacity: w.welcome.capacity,
                in_flight: w.in_flight.load(Ordering::Relaxed),
                profiles: w.welcome.profiles.clone(),
                languages: w.welcome.languages.clone(),
                acked_seq: w.acked.load(Ordering::Relaxed),
                stats: w.stats.borrow().clone(),
            })
            .collect()
    }

    /// Asks every connected worker for its [`WorkerStats`] and waits up to `within` for
    /// the answers ([`Dispatcher::stats`] then carries them; a late worker keeps its last).
    pub async fn refresh_stats(&self, within: std::time::Duration) {
        let workers: Vec<_> = lock(&self.inner.workers).clone();
        let waits: Vec<_> = workers
            .iter()
            .filter_map(|w| {
                let mut rx = w.stats.subscribe();
                w.tx.try_send(ToWorker::StatsRequest).ok()?;
                Some(async move {
                    let _ = rx.changed().await;
                })
            })
            .collect();
        let _ = tokio::time::timeout(within, futures::future::join_all(waits)).await;
    }

    fn no_workers(&self) -> ApiError {
        ApiError::new(
            ErrorCode::NoWorkers,
            format!(
                "no worker is connected; start one with paddock-worker serve --edge unix:{} --join-token-file {}",
                self.inner.socket.display(),
                self.inner.token_path.display()
            ),
        )
    }

    fn choose(&self, req: &ExecutionRequest) -> Result<Arc<WorkerHandle>, ApiError> {
        let workers = lock(&self.inner.workers);
        let live: Vec<_> = workers
            .iter()
            .filter(|w| !w.closed.is_cancelled())
            .collect();
        if live.is_empty() {
            return Err(self.no_workers());
        }
        let fit: Vec<_> = live.into_iter().filter(|w| w.serves(req)).collect();
        let loads: Vec<f64> = fit.iter().map(|w| w.load()).collect();
        let (r1, r2) = (
            rand::random::<u32>() as usize,
            rand::random::<u32>() as usize,
        );
        match pick_two(&loads, r1, r2) {
            Some(i) => Ok(fit[i].clone()),
            None => Err(ApiError::new(
                ErrorCode::NoWorkers,
                format!(
                    "no connected worker serves profile {:?} with language {}",
                    req.profile,
                    req.language.as_str()
                ),
            )),
        }
    }

    /// Runs `req` on a worker once its replica has applied `min_seq`.
    ///
    /// # Errors
    /// `NO_WORKERS` when no (fitting) worker is connected; `WORKER_LOST` when the worker's
    /// connection ends before the result (never retried); the worker's typed refusals
    /// (`STATE_NOT_READY`, `PROTOCOL_ERROR`, …). `cancel` sends a `Cancel` frame; the
    /// result then comes back with status `canceled`.
    pub async fn execute(
        &self,
        req: ExecutionRequest,
        min_seq: u64,
        cancel: CancellationToken,
    ) -> Result<ExecutionResult, ApiError> {
        self.execute_traced(req, min_seq, cancel).await.1
    }

    /// [`Dispatcher::execute`], also naming the worker chosen (`None` when none was), for
    /// the execution record.
    pub async fn execute_traced(
        &self,
        req: ExecutionRequest,
        min_seq: u64,
        cancel: CancellationToken,
    ) -> (Option<String>, Result<ExecutionResult, ApiError>) {
        match self.choose(&req) {
            Ok(w) => (
                Some(w.welcome.worker_id.clone()),
                Self::execute_on(&self.inner.keys, w, req, min_seq, cancel).await,
            ),
            Err(e) => (None, Err(e)),
        }
    }

    async fn execute_on(
        keys: &Arc<BridgeKeys>,
        w: Arc<WorkerHandle>,
        req: ExecutionRequest,
        min_seq: u64,
        cancel: CancellationToken,
    ) -> Result<ExecutionResult, ApiError> {
        let id = req.execution_id.clone();
        let (tx, mut rx) = oneshot::channel();
        {
            let mut pending = lock(&w.pending);
            if pending.contains_key(&id) {
                return Err(ApiError::new(
                    ErrorCode::ProtocolError,
                    format!("execution id {id:?} is already running"),
                ));
            }
            pending.insert(id.clone(), tx);
        }
        w.in_flight.fetch_add(1, Ordering::Relaxed);
        let _guard = InFlight(w.clone());
        // Checked after inserting: a connection that ended before saw no entry to fail.
        if w.closed.is_cancelled() {
            lock(&w.pending).remove(&id);
            return Err(worker_lost(&w.welcome.worker_id, &id, "connection closed"));
        }
        // A v3 worker gets the execution's bridge key (removed when `guard` drops: result,
        // WORKER_LOST, or the caller went away); an older one runs without remote tools.
        let guard = (w.welcome.version >= 3 && !req.namespace.is_empty()).then(|| {
            keys.mint(
                &req.namespace,
                &id,
                w.conn_id,
                crate::bridge::key_ttl(&req.profile, req.timeout_ms),
            )
        });
        let frame = match &guard {
            Some(g) => ToWorker::ExecuteV3 {
                request: req,
                min_seq,
                bridge_key: g.key().to_owned(),
            },
            None => ToWorker::ExecuteV2 {
                request: req,
                min_seq,
            },
        };
        if w.tx.send(frame).await.is_err() {
            lock(&w.pending).remove(&id);
            return Err(worker_lost(&w.welcome.worker_id, &id, "connection closed"));
        }
        let mut canceled = false;
        loop {
            tokio::select! {
                answer = &mut rx => {
                    let mut answer = answer.unwrap_or_else(|_| {
                        Err(worker_lost(&w.welcome.worker_id, &id, "connection closed"))
                    });
                    // The edge's record of the remote calls (authoritative: the worker
                    // and the sandbox cannot add or hide one).
                    if let (Some(g), Ok(r)) = (guard, answer.as_mut()) {
                        r.calls.extend(g.finish());
                    }
                    return answer;
                }
                () = cancel.cancelled(), if !canceled => {
                    canceled = true;
                    let _ = w.tx.send(ToWorker::Cancel { execution_id: id.clone() }).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_two_prefers_the_less_loaded_and_never_picks_the_same_twice() {
        assert_eq!(pick_two(&[], 0, 0), None);
        assert_eq!(pick_two(&[0.9], 5, 7), Some(0));
        // r1 → 0, r2 → 1 (skips 0): the second is less loaded.
        assert_eq!(pick_two(&[0.5, 0.1], 0, 0), Some(1));
        assert_eq!(pick_two(&[0.1, 0.5], 0, 0), Some(0));
        // Equal loads keep the first draw.
        assert_eq!(pick_two(&[0.2, 0.2, 0.2], 2, 0), Some(2));
        for r1 in 0..10 {
            for r2 in 0..10 {
                let i = pick_two(&[0.0, 1.0, 1.0], r1, r2).expect("pick");
                assert!(i < 3);
            }
        }
    }
}
