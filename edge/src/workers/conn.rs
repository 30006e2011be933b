//! One worker connection: `Join` handshake (constant-time token check), replication
//! stream planned by [`Leader`], heartbeats, and routing of results to pending
//! executions. When it ends, every pending execution gets `WORKER_LOST`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use paddock_shared::error::ErrorCode;
use paddock_shared::protocol::{
    BridgeCall, BridgeOutcome, FrameCodec, FromWorker, Hello, ToWorker, VERSION,
};
use paddock_shared::replication::{Leader, Plan};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Shared;
use super::registry::WorkerHandle;
use crate::app::ApiError;

/// Frames queued for one worker's writer.
const OUT_QUEUE: usize = 256;

/// Compares two byte strings in time independent of where they differ.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn conn_error(code: ErrorCode, message: impl Into<String>) -> ToWorker {
    ToWorker::Error {
        code,
        message: message.into(),
    }
}

/// Serves one accepted worker connection until it closes.
pub(crate) async fn run<S>(shared: Arc<Shared>, stream: S, peer: String)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (r, w) = tokio::io::split(stream);
    let mut reader = FramedRead::new(r, FrameCodec::<FromWorker, ToWorker>::default());
    let mut writer = FramedWrite::new(w, FrameCodec::<FromWorker, ToWorker>::default());
    let first = tokio::time::timeout(shared.opts.handshake_timeout, reader.next()).await;
    let (join_token, from_seq, welcome) = match first {
        Ok(Some(Ok(FromWorker::Join {
            join_token,
            from_seq,
            welcome,
        }))) => (join_token, from_seq, welcome),
        Ok(Some(Ok(other))) => {
            warn!(peer, frame = ?other, "closing worker connection: the first frame must be Join");
            let _ = writer
                .send(conn_error(
                    ErrorCode::ProtocolError,
                    "the first frame must be Join",
                ))
                .await;
            return;
        }
        Ok(Some(Err(e))) => {
            warn!(peer, error = %e, "closing worker connection: bad handshake frame");
            let _ = writer
                .send(conn_error(ErrorCode::ProtocolError, e.to_string()))
                .await;
            return;
        }
        Ok(None) => return,
        Err(_) => {
            warn!(peer, "closing worker connection: no Join in time");
            return;
        }
    };
    if !ct_eq(join_token.as_bytes(), &shared.token) {
        warn!(peer, worker_id = %welcome.worker_id, "refusing worker: bad join token");
        let _ = writer
            .send(conn_error(
                ErrorCode::AuthenticationFailed,
                "bad join token: use the token of <data-dir>/join.token",
            ))
            .await;
        return;
    }
    if writer
        .send(ToWorker::Hello(Hello {
            version: VERSION,
            peer_id: "edge".to_owned(),
        }))
        .await
        .is_err()
    {
        return;
    }
    let (tx, mut rx) = mpsc::channel::<ToWorker>(OUT_QUEUE);
    let dispatcher = shared.dispatcher.clone();
    let handle = Arc::new(WorkerHandle {
        conn_id: dispatcher.next_conn_id(),
        welcome: welcome.clone(),
        peer: peer.clone(),
        tx: tx.clone(),
        in_flight: Default::default(),
        acked: AtomicU64::new(from_seq.saturating_sub(1)),
        pending: Default::default(),
        closed: CancellationToken::new(),
        stats: watch::channel(None).0,
    });
    info!(peer, worker_id = %welcome.worker_id, capacity = welcome.capacity, from_seq, "worker joined");
    dispatcher.register(handle.clone());
    crate::metrics::METRICS.worker_joined();
    let closed = handle.closed.clone();

    let write_task = tokio::spawn({
        let closed = closed.clone();
        async move {
            while let Some(frame) = rx.recv().await {
                if writer.send(frame).await.is_err() {
                    break;
                }
            }
            closed.cancel();
        }
    });
    let (need_tx, need_rx) = watch::channel(from_seq);
    let repl_task = tokio::spawn(replicate(
        shared.clone(),
        tx.clone(),
        need_rx,
        closed.clone(),
        welcome.max_frame_len as usize,
    ));

    let bridge = BridgeCtx {
        shared: shared.clone(),
        slots: Arc::new(Semaphore::new(MAX_BRIDGE_CALLS_IN_FLIGHT)),
    };
    let heartbeat = shared.opts.heartbeat;
    let dead_after = heartbeat * super::MISSED_HEARTBEATS;
    let mut last_seen = Instant::now();
    let mut tick = tokio::time::interval(heartbeat);
    let mut nonce = 0u64;
    let why = loop {
        tokio::select! {
            () = shared.opts.shutdown.cancelled() => break "edge shutting down",
            () = closed.cancelled() => break "connection closed",
            _ = tick.tick() => {
                if last_seen.elapsed() > dead_after {
                    break "missed heartbeats";
                }
                nonce += 1;
                let _ = tx.try_send(ToWorker::Ping { nonce });
            }
            frame = reader.next() => {
                last_seen = Instant::now();
                match frame {
                    None => break "connection closed",
                    Some(Err(e)) => {
                        warn!(peer, error = %e, "bad frame from worker");
                        break "protocol error";
                    }
                    Some(Ok(msg)) => {
                        if let Some(why) = on_frame(&handle, &tx, &need_tx, &bridge, msg).await {
                            break why;
                        }
                    }
                }
            }
        }
    };
    info!(peer, worker_id = %welcome.worker_id, reason = why, "worker connection ended");
    dispatcher.unregister(handle.conn_id);
    crate::metrics::METRICS.worker_left();
    handle.fail_pending(why);
    repl_task.abort();
    drop(tx);
    write_task.abort();
}

/// Handles one frame; `Some(reason)` ends the connection.
async fn on_frame(
    w: &WorkerHandle,
    tx: &mpsc::Sender<ToWorker>,
    need: &watch::Sender<u64>,
    bridge: &BridgeCtx,
    msg: FromWorker,
) -> Option<&'static str> {
    match msg {
        FromWorker::Result(result) => {
            let id = result.execution_id.clone();
            // The execution ended: its bridge key stops working before anything else.
            bridge
                .shared
                .dispatcher
                .bridge_keys()
                .revoke(w.conn_id, &id);
            if let Some(tx) = take(w, &id) {
                let _ = tx.send(Ok(result));
            }
        }
        FromWorker::Error {
            execution_id: Some(id),
            code,
            message,
        } => {
            bridge
                .shared
                .dispatcher
                .bridge_keys()
                .revoke(w.conn_id, &id);
            if let Some(tx) = take(w, &id) {
                let _ = tx.send(Err(ApiError::new(code, message)));
            }
        }
        FromWorker::Error {
            execution_id: None,
            code,
            message,
        } => {
            warn!(worker_id = %w.welcome.worker_id, %code, message, "worker reported a connection error");
            return Some("worker reported an error");
        }
        FromWorker::Ack { applied_seq } => {
            w.acked.fetch_max(applied_seq, Ordering::Relaxed);
        }
        FromWorker::NeedFrom { seq } => {
            debug!(worker_id = %w.welcome.worker_id, seq, "worker needs entries again");
            w.acked.fetch_max(seq.saturating_sub(1), Ordering::Relaxed);
            need.send_replace(seq);
        }
        FromWorker::Ping { nonce } => {
            let _ = tx.send(ToWorker::Pong { nonce }).await;
        }
        FromWorker::Stats(stats) => {
            w.stats.send_replace(Some(stats));
        }
        FromWorker::Pong { .. } => {}
        FromWorker::BridgeCall(call) => bridge.spawn(w.conn_id, tx.clone(), call),
        FromWorker::Welcome(_) | FromWorker::Join { .. } => {
            return Some("second handshake");
        }
    }
    None
}

/// Most bridge calls served at once for one worker; more are answered `RATE_LIMITED`.
pub(crate) const MAX_BRIDGE_CALLS_IN_FLIGHT: usize = 256;

/// What a connection needs to serve `BridgeCall`s off its read loop.
struct BridgeCtx {
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
}

impl BridgeCtx {
    /// Serves `call` on a task of its own (the read loop never waits on a remote server)
    /// and sends the `BridgeResult`.
    fn spawn(&self, conn_id: u64, tx: mpsc::Sender<ToWorker>, call: BridgeCall) {
        let call_id = call.call_id;
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            warn!(conn_id, "too many bridge calls in flight; refusing one");
            let outcome = BridgeOutcome::Err {
                code: ErrorCode::RateLimited,
                message: format!(
                    "more than {MAX_BRIDGE_CALLS_IN_FLIGHT} remote tool calls are in flight on this worker; retry later"
                ),
                latency_us: 0,
            };
            tokio::spawn(async move {
                let _ = tx.send(ToWorker::BridgeResult { call_id, outcome }).await;
            });
            return;
        };
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let keys = shared.dispatcher.bridge_keys().clone();
            let outcome = crate::bridge::serve(&shared.app, &keys, conn_id, &call).await;
            drop(permit);
            let _ = tx.send(ToWorker::BridgeResult { call_id, outcome }).await;
        });
    }
}

fn take(
    w: &WorkerHandle,
    id: &str,
) -> Option<tokio::sync::oneshot::Sender<super::registry::Answer>> {
    w.pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(id)
}

/// Streams the replication log to one worker from `need` on: entries, or a snapshot when
/// the leader plans one; then tails new commits. A `NeedFrom` restarts from its sequence.
async fn replicate(
    shared: Arc<Shared>,
    tx: mpsc::Sender<ToWorker>,
    mut need: watch::Receiver<u64>,
    closed: CancellationToken,
    max_frame_len: usize,
) {
    let leader = Leader::default();
    let mut committed = shared.committed.clone();
    let mut next = *need.borrow_and_update();
    let part_bytes = (max_frame_len / 2).clamp(4096, 4 * 1024 * 1024);
    loop {
        if need.has_changed().unwrap_or(false) {
            next = *need.borrow_and_update();
        }
        let log = shared.app.replication();
        let head = log.committed_seq();
        let oldest = match log.oldest_retained() {
            Ok(o) => o,
            Err(e) => {
                warn!(error = %e, "reading the replication log failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let plan = leader.plan(next, oldest, head);
        match plan {
            Plan::UpToDate => {
                tokio::select! {
                    () = closed.cancelled() => return,
                    r = committed.changed() => if r.is_err() { return },
                    r = need.changed() => {
                        if r.is_err() {
                            return;
                        }
                        next = *need.borrow_and_update();
                    }
                }
            }
            Plan::Entries { from, .. } => match log.read_from(from, super::REPLICATE_BATCH) {
                Ok(entries) if !entries.is_empty() => {
                    let last = entries.last().map_or(from, |e| e.seq);
                    if tx.send(ToWorker::Replicate { entries }).await.is_err() {
                        return;
                    }
                    next = last + 1;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                Err(e) => {
                    warn!(error = %e, "reading the replication log failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
            Plan::Snapshot(_) | Plan::Diverged { .. } => {
                let reset = matches!(plan, Plan::Diverged { .. });
                let snapshot = match shared.app.replication_snapshot() {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(error = %e.message, "taking a replication snapshot failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                let seq = snapshot.seq;
                info!(seq, reset, ?plan, "sending a snapshot to a worker");
                for part in snapshot.into_parts(part_bytes) {
                    if tx.send(ToWorker::Snapshot { part, reset }).await.is_err() {
                        return;
                    }
                }
                next = seq + 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ct_eq;

    #[test]
    fn ct_eq_compares_whole_strings() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }
}
