//! The worker's protocol servers: accept edge/client connections on a Unix socket or TCP,
//! run the handshake, multiplex executions over each connection with a bounded number in
//! flight, and drain on shutdown.
//!
//! Per connection: the first frame must be `Hello` (answered by `Welcome`, or by a typed
//! `Error` and a close on a version the worker does not speak); then every `Execute`
//! becomes a task on the [`Executor`] and its `Result` is written when it finishes, in
//! any order. `Cancel` fires that execution's token, `StatsRequest` → `Stats`,
//! `Ping` → `Pong`. At `max_in_flight_per_conn` executions the reader stops taking
//! frames (backpressure through the socket). A malformed or oversized frame closes that
//! connection only, logged with the peer and the reason. A connection that goes away
//! cancels its executions; their results are dropped quietly.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use paddock_shared::ErrorCode;
use paddock_shared::exec::{ExecStatus, ExecutionRequest, ExecutionResult, error_type};
use paddock_shared::model::Language;
use paddock_shared::protocol::{
    DEFAULT_MAX_FRAME_LEN, FrameCodec, FrameError, FromWorker, MIN_VERSION, ToWorker, VERSION,
    Welcome,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::executor::Executor;

/// Default executions in flight per connection.
pub const DEFAULT_MAX_IN_FLIGHT_PER_CONN: usize = 256;
/// Default time a new connection has to send `Hello`.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time in-flight executions get to finish after shutdown fires.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// After the drain deadline executions are canceled and get this long to report.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What the server announces and how it bounds each connection.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Stable id announced in `Welcome`.
    pub worker_id: String,
    /// Executions the worker can run at once (announced; the executor enforces it).
    pub capacity: u32,
    /// Sandbox profiles served (announced).
    pub profiles: Vec<String>,
    /// Languages served (announced).
    pub languages: Vec<Language>,
    /// Largest frame body accepted or sent, in bytes.
    pub max_frame_len: usize,
    /// Executions one connection may have in flight before the reader stops.
    pub max_in_flight_per_conn: usize,
    /// Time a new connection has to complete the handshake.
    pub handshake_timeout: Duration,
    /// Time in-flight executions get to finish after shutdown fires.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            worker_id: "worker".to_owned(),
            capacity: 1,
            profiles: Vec::new(),
            languages: Language::ALL.to_vec(),
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_in_flight_per_conn: DEFAULT_MAX_IN_FLIGHT_PER_CONN,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another live process accepts on the socket path.
    #[error("unix socket {path} is in use by a running process")]
    SocketInUse { path: PathBuf },
    /// Something other than a socket sits at the socket path; it is not removed.
    #[error("{path} exists and is not a unix socket; refusing to remove it")]
    NotASocket { path: PathBuf },
    /// The socket path could not be inspected.
    #[error("cannot inspect unix socket path {path}: {source}")]
    InspectSocket { path: PathBuf, source: io::Error },
    /// A stale socket file could not be removed.
    #[error("cannot remove stale unix socket {path}: {source}")]
    RemoveStale { path: PathBuf, source: io::Error },
    /// Binding the Unix socket failed.
    #[error("cannot listen on unix socket {path}: {source}")]
    BindUnix { path: PathBuf, source: io::Error },
    /// The socket file mode could not be set to 0600.
    #[error("cannot set mode 0600 on unix socket {path}: {source}")]
    SocketMode { path: PathBuf, source: io::Error },
    /// Binding the TCP address failed.
    #[error("cannot listen on tcp {addr}: {source}")]
    BindTcp { addr: SocketAddr, source: io::Error },
    /// An option is out of range.
    #[error("invalid server option {key}: {reason}")]
    BadOption { key: &'static str, reason: String },
}

/// How a server ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeReport {
    /// Connections accepted over the server's life.
    pub connections: u64,
    /// True when every in-flight execution finished before the drain deadline.
    pub drained_in_time: bool,
}

/// Binds a Unix socket at `path` with mode 0600, removing a stale socket file left by
/// a previous run (but not a live one, nor a non-socket file).
///
/// # Errors
/// [`ServeError::SocketInUse`], [`ServeError::NotASocket`], and the bind/mode failures.
pub fn bind_unix(path: &Path) -> Result<UnixListener, ServeError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(ServeError::NotASocket {
                path: path.to_owned(),
            });
        }
        Ok(_) => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServeError::SocketInUse {
                    path: path.to_owned(),
                });
            }
            std::fs::remove_file(path).map_err(|source| ServeError::RemoveStale {
                path: path.to_owned(),
                source,
            })?;
            info!(path = %path.display(), "removed stale unix socket");
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ServeError::InspectSocket {
                path: path.to_owned(),
                source,
            });
        }
    }
    let listener = UnixListener::bind(path).map_err(|source| ServeError::BindUnix {
        path: path.to_owned(),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        ServeError::SocketMode {
            path: path.to_owned(),
            source,
        }
    })?;
    Ok(listener)
}

/// Binds a TCP listener (port 0 picks a free port; see `local_addr`).
///
/// # Errors
/// [`ServeError::BindTcp`].
pub async fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::BindTcp { addr, source })
}

/// Serves the protocol on a Unix socket at `path` until `shutdown` fires, then drains
/// and removes the socket file.
///
/// # Errors
/// Listener errors of [`bind_unix`] and invalid options.
pub async fn serve_unix<E: Executor>(
    path: impl Into<PathBuf>,
    executor: Arc<E>,
    opts: ServeOptions,
    shutdown: CancellationToken,
) -> Result<ServeReport, ServeError> {
    let path: PathBuf = path.into();
    let path = path.as_path();
    validate(&opts)?;
    let listener = bind_unix(path)?;
    info!(path = %path.display(), "serving worker protocol on unix socket");
    let report = serve_unix_listener(listener, executor, opts, shutdown).await;
    if let Err(e) = std::fs::remove_file(path) {
        debug!(path = %path.display(), error = %e, "could not remove unix socket at exit");
    }
    report
}

/// Serves the protocol on TCP `addr` until `shutdown` fires, then drains.
///
/// # Errors
/// [`ServeError::BindTcp`] and invalid options.
pub async fn serve_tcp<E: Executor>(
    addr: SocketAddr,
    executor: Arc<E>,
    opts: ServeOptions,
    shutdown: CancellationToken,
) -> Result<ServeReport, ServeError> {
    validate(&opts)?;
    let listener = bind_tcp(addr).await?;
    info!(addr = %addr, "serving worker protocol on tcp");
    serve_tcp_listener(listener, executor, opts, shutdown).await
}

/// Serves on an already bound Unix listener (see [`bind_unix`]).
///
/// # Errors
/// Invalid options.
pub async fn serve_unix_listener<E: Executor>(
    listener: UnixListener,
    executor: Arc<E>,
    opts: ServeOptions,
    shutdown: CancellationToken,
) -> Result<ServeReport, ServeError> {
    let listener = Arc::new(listener);
    let mut next_id = 0u64;
    let accept = move || {
        let listener = Arc::clone(&listener);
        next_id += 1;
        let id = next_id;
        async move {
            let (stream, _) = listener.accept().await?;
            let peer = match stream.peer_cred().ok().and_then(|c| c.pid()) {
                Some(pid) => format!("unix#{id} pid={pid}"),
                None => format!("unix#{id}"),
            };
            Ok((stream, peer))
        }
    };
    serve_loop(accept, executor, opts, shutdown).await
}

/// Serves on an already bound TCP listener (see [`bind_tcp`]).
///
/// # Errors
/// Invalid options.
pub async fn serve_tcp_listener<E: Executor>(
    listener: TcpListener,
    executor: Arc<E>,
    opts: ServeOptions,
    shutdown: CancellationToken,
) -> Result<ServeReport, ServeError> {
    let listener = Arc::new(listener);
    let accept = move || {
        let listener = Arc::clone(&listener);
        async move {
            let (stream, addr) = listener.accept().await?;
            if let Err(e) = stream.set_nodelay(true) {
                debug!(peer = %addr, error = %e, "cannot set TCP_NODELAY");
            }
            Ok((stream, addr.to_string()))
        }
    };
    serve_loop(accept, executor, opts, shutdown).await
}

fn validate(opts: &ServeOptions) -> Result<(), ServeError> {
    FrameCodec::<ToWorker, FromWorker>::new(opts.max_frame_len).map_err(|e| {
        ServeError::BadOption {
            key: "max_frame_len",
            reason: e.to_string(),
        }
    })?;
    if opts.max_in_flight_per_conn == 0 || opts.max_in_flight_per_conn > Semaphore::MAX_PERMITS {
        return Err(ServeError::BadOption {
            key: "max_in_flight_per_conn",
            reason: format!("{} is not in 1..", opts.max_in_flight_per_conn),
        });
    }
    Ok(())
}

/// State every connection of one server shares.
struct Shared<E> {
    executor: Arc<E>,
    opts: ServeOptions,
    codec: FrameCodec<ToWorker, FromWorker>,
    /// Fires at shutdown: stop reading, let executions finish.
    shutdown: CancellationToken,
    /// Fires after the drain deadline: cancel every execution.
    kill: CancellationToken,
    tracker: TaskTracker,
}

async fn serve_loop<E, S, F, Fut>(
    mut accept: F,
    executor: Arc<E>,
    opts: ServeOptions,
    shutdown: CancellationToken,
) -> Result<ServeReport, ServeError>
where
    E: Executor,
    S: AsyncRead + AsyncWrite + Send + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = io::Result<(S, String)>>,
{
    validate(&opts)?;
    let codec = FrameCodec::new(opts.max_frame_len).map_err(|e| ServeError::BadOption {
        key: "max_frame_len",
        reason: e.to_string(),
    })?;
    let drain_timeout = opts.drain_timeout;
    let shared = Arc::new(Shared {
        executor,
        opts,
        codec,
        shutdown: shutdown.clone(),
        kill: CancellationToken::new(),
        tracker: TaskTracker::new(),
    });
    let mut connections = 0u64;
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = accept() => match accepted {
                Ok((stream, peer)) => {
                    connections += 1;
                    debug!(peer = %peer, "connection accepted");
                    shared.tracker.spawn(handle_connection(stream, peer, Arc::clone(&shared)));
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(accept); // stop accepting: new connections are refused from here on
    shared.tracker.close();
    info!(
        tasks = shared.tracker.len(),
        "shutdown: draining in-flight executions"
    );
    let drained_in_time = tokio::time::timeout(drain_timeout, shared.tracker.wait())
        .await
        .is_ok();
    if drained_in_time {
        info!("drain finished in time");
    } else {
        warn!(
            left = shared.tracker.len(),
            "drain deadline passed; canceling the remaining executions"
        );
        shared.kill.cancel();
        if tokio::time::timeout(KILL_GRACE, shared.tracker.wait())
            .await
            .is_err()
        {
            warn!(
                left = shared.tracker.len(),
                "tasks still running after cancel; leaving them"
            );
        }
    }
    Ok(ServeReport {
        connections,
        drained_in_time,
    })
}

fn conn_error(message: impl Into<String>) -> FromWorker {
    FromWorker::Error {
        execution_id: None,
        code: ErrorCode::ProtocolError,
        message: message.into(),
    }
}

/// One connection: handshake, then the read loop; the writer runs beside it.
async fn handle_connection<E, S>(stream: S, peer: String, shared: Arc<Shared<E>>)
where
    E: Executor,
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    let mut reader = FramedRead::new(rd, shared.codec.clone());
    let mut writer = FramedWrite::new(wr, shared.codec.clone());

    let first = tokio::select! {
        () = shared.shutdown.cancelled() => return,
        first = tokio::time::timeout(shared.opts.handshake_timeout, reader.next()) => first,
    };
    let refusal = match first {
        Err(_) => {
            warn!(peer = %peer, reason = "no Hello in time", "closing connection");
            Some(conn_error("handshake timed out: send Hello first"))
        }
        Ok(None) => {
            debug!(peer = %peer, "connection closed before the handshake");
            return;
        }
        Ok(Some(Err(e))) => {
            warn!(peer = %peer, reason = %e, "closing connection: bad handshake frame");
            Some(conn_error(format!(
                "{e}; this worker speaks protocol versions {MIN_VERSION}..={VERSION}"
            )))
        }
        Ok(Some(Ok(ToWorker::Hello(hello)))) if hello.version < MIN_VERSION => {
            warn!(peer = %peer, version = hello.version, reason = "unsupported version", "closing connection");
            Some(conn_error(format!(
                "unsupported protocol version {} (this worker speaks {MIN_VERSION}..={VERSION})",
                hello.version
            )))
        }
        Ok(Some(Ok(ToWorker::Hello(hello)))) => {
            debug!(peer = %peer, peer_id = %hello.peer_id, version = hello.version, "handshake");
            None
        }
        Ok(Some(Ok(other))) => {
            warn!(peer = %peer, reason = "first frame is not Hello", frame = ?other, "closing connection");
            Some(conn_error("the first frame must be Hello"))
        }
    };
    if let Some(refusal) = refusal {
        let _ = writer.send(refusal).await;
        return;
    }
    let opts = &shared.opts;
    let welcome = FromWorker::Welcome(Welcome {
        version: VERSION,
        worker_id: opts.worker_id.clone(),
        capacity: opts.capacity,
        max_in_flight: u32::try_from(opts.max_in_flight_per_conn).unwrap_or(u32::MAX),
        max_frame_len: u32::try_from(opts.max_frame_len).unwrap_or(u32::MAX),
        profiles: opts.profiles.clone(),
        languages: opts.languages.clone(),
    });
    if let Err(e) = writer.send(welcome).await {
        debug!(peer = %peer, error = %e, "connection lost during the handshake");
        return;
    }

    let (tx, rx) = mpsc::channel(opts.max_in_flight_per_conn.min(1024) + 8);
    let writer_task = tokio::spawn(write_loop(writer, rx, peer.clone()));
    let conn = Conn {
        peer,
        shared: Arc::clone(&shared),
        tx,
        permits: Arc::new(Semaphore::new(opts.max_in_flight_per_conn)),
        running: Arc::new(Mutex::new(HashMap::new())),
        cancel: shared.kill.child_token(),
    };
    conn.read_loop(&mut reader).await;
    drop(conn);
    // The writer ends once every execution of this connection has sent (or dropped)
    // its result.
    if let Err(e) = writer_task.await {
        warn!(error = %e, "connection writer task failed");
    }
}

/// Writes queued frames, batching whatever is ready into one flush.
async fn write_loop<W>(
    mut writer: FramedWrite<W, FrameCodec<ToWorker, FromWorker>>,
    mut rx: mpsc::Receiver<FromWorker>,
    peer: String,
) where
    W: AsyncWrite + Unpin,
{
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(frame) = next.take() {
            let result_id = match &frame {
                FromWorker::Result(r) => Some(r.execution_id.clone()),
                _ => None,
            };
            match writer.feed(frame).await {
                Ok(()) => {}
                Err(e @ (FrameError::TooLarge { .. } | FrameError::Encode { .. }))
                    if result_id.is_some() =>
                {
                    // The frame was refused before any byte was written; the stream
                    // is intact, so answer with a typed error instead.
                    warn!(peer = %peer, reason = %e, "cannot send a result frame; sending an error instead");
                    let refusal = FromWorker::Error {
                        execution_id: result_id,
                        code: ErrorCode::Internal,
                        message: format!("the result could not be sent: {e}"),
                    };
                    if writer.feed(refusal).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    debug!(peer = %peer, error = %e, "connection gone; dropping queued frames");
                    return;
                }
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = writer.flush().await {
            debug!(peer = %peer, error = %e, "connection gone; dropping queued frames");
            return;
        }
    }
}

/// The read side of one connection and what its executions share.
struct Conn<E> {
    peer: String,
    shared: Arc<Shared<E>>,
    tx: mpsc::Sender<FromWorker>,
    permits: Arc<Semaphore>,
    running: Arc<Mutex<HashMap<String, CancellationToken>>>,
    /// Fires when the connection is lost (or after the drain deadline).
    cancel: CancellationToken,
}

impl<E: Executor> Conn<E> {
    async fn read_loop<R>(&self, reader: &mut FramedRead<R, FrameCodec<ToWorker, FromWorker>>)
    where
        R: AsyncRead + Unpin,
    {
        let shutdown = &self.shared.shutdown;
        loop {
            let frame = tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    debug!(peer = %self.peer, "shutdown: no more frames read; draining");
                    return;
                }
                frame = reader.next() => frame,
            };
            let msg = match frame {
                None => break,
                Some(Ok(msg)) => msg,
                Some(Err(e)) => {
                    warn!(peer = %self.peer, reason = %e, "closing connection: bad frame");
                    let _ = self.tx.send(conn_error(e.to_string())).await;
                    break;
                }
            };
            match msg {
                ToWorker::Execute(req) => {
                    if !self.start(req).await {
                        return;
                    }
                }
                ToWorker::Cancel { execution_id } => {
                    let token = lock(&self.running).get(&execution_id).cloned();
                    match token {
                        Some(token) => token.cancel(),
                        None => {
                            debug!(peer = %self.peer, execution_id, "cancel of an unknown execution")
                        }
                    }
                }
                ToWorker::StatsRequest => {
                    let _ = self
                        .tx
                        .send(FromWorker::Stats(self.shared.executor.stats()))
                        .await;
                }
                ToWorker::Ping { nonce } => {
                    let _ = self.tx.send(FromWorker::Pong { nonce }).await;
                }
                ToWorker::Pong { .. } | ToWorker::Error { .. } => {}
                ToWorker::Replicate { .. }
                | ToWorker::Snapshot { .. }
                | ToWorker::ExecuteV2 { .. }
                | ToWorker::ExecuteV3 { .. }
                | ToWorker::BridgeResult { .. } => {
                    // Edge-link frames (v2) belong on the link the worker dials (link.rs).
                    warn!(peer = %self.peer, reason = "edge-link frame on a direct connection", "closing connection");
                    let _ = self
                        .tx
                        .send(conn_error(
                            "replication, ExecuteV2/V3 and bridge frames are only accepted on the edge link",
                        ))
                        .await;
                    break;
                }
                ToWorker::Hello(_) => {
                    warn!(peer = %self.peer, reason = "second Hello", "closing connection");
                    let _ = self
                        .tx
                        .send(conn_error("Hello may only be sent once"))
                        .await;
                    break;
                }
            }
        }
        // The peer is gone (or broke the protocol): nobody will read these results.
        debug!(peer = %self.peer, running = lock(&self.running).len(), "connection closed; canceling its executions");
        self.cancel.cancel();
    }

    /// Starts one execution, waiting for an in-flight permit first (backpressure).
    /// Returns false when shutdown fired while waiting.
    async fn start(&self, req: ExecutionRequest) -> bool {
        let id = req.execution_id.clone();
        if lock(&self.running).contains_key(&id) {
            warn!(peer = %self.peer, execution_id = %id, "duplicate execution id");
            let _ = self
                .tx
                .send(FromWorker::Error {
                    execution_id: Some(id.clone()),
                    code: ErrorCode::ProtocolError,
                    message: format!("execution id {id:?} is already running on this connection"),
                })
                .await;
            return true;
        }
        let permit = tokio::select! {
            biased;
            () = self.shared.shutdown.cancelled() => None,
            permit = Arc::clone(&self.permits).acquire_owned() => permit.ok(),
        };
        let Some(permit) = permit else {
            let _ = self
                .tx
                .send(FromWorker::Error {
                    execution_id: Some(id),
                    code: ErrorCode::NotReady,
                    message: "the worker is shutting down; retry on another worker".to_owned(),
                })
                .await;
            return false;
        };
        let token = self.cancel.child_token();
        lock(&self.running).insert(id.clone(), token.clone());
        // Same span as the edge link's: the slot lifecycle logs carry the execution id.
        let span = tracing::info_span!("execution", execution_id = %id,
            namespace = %req.namespace, tier = %req.profile, language = req.language.as_str());
        let task = run_execution(
            Arc::clone(&self.shared.executor),
            req,
            token,
            permit,
            self.tx.clone(),
            Arc::clone(&self.running),
            self.peer.clone(),
        );
        self.shared
            .tracker
            .spawn(tracing::Instrument::instrument(task, span));
        true
    }
}

async fn run_execution<E: Executor>(
    executor: Arc<E>,
    req: ExecutionRequest,
    token: CancellationToken,
    permit: OwnedSemaphorePermit,
    tx: mpsc::Sender<FromWorker>,
    running: Arc<Mutex<HashMap<String, CancellationToken>>>,
    peer: String,
) {
    let id = req.execution_id.clone();
    let result = AssertUnwindSafe(executor.execute(req, token))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            warn!(peer = %peer, execution_id = %id, "executor panicked");
            ExecutionResult::failed(
                &id,
                ExecStatus::Failed,
                error_type::SANDBOX_FAILURE,
                "the worker failed while running this execution; it is safe to retry",
            )
        });
    lock(&running).remove(&id);
    if tx.send(FromWorker::Result(result)).await.is_err() {
        debug!(peer = %peer, execution_id = %id, "connection gone; result dropped");
    }
    drop(permit);
}

/// Locks a mutex, ignoring poisoning (the maps stay consistent: single inserts/removes).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
