//! A small async client of the worker protocol, safe to share between tasks: one
//! connection, executions multiplexed over it (pending results matched by execution
//! id), at most the worker's announced `max_in_flight` sent at once. Used by tests, the
//! benchmark and, later, the edge side of the link.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use paddock_shared::ErrorCode;
use paddock_shared::exec::{ExecutionRequest, ExecutionResult, WorkerStats};
use paddock_shared::protocol::{
    DEFAULT_MAX_FRAME_LEN, FrameCodec, FrameError, FromWorker, Hello, ToWorker, VERSION, Welcome,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::debug;

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Name sent in `Hello`, shown in the worker's logs.
    pub peer_id: String,
    /// Largest frame accepted from the worker, in bytes.
    pub max_frame_len: usize,
    /// Time allowed for connecting plus the handshake.
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            peer_id: "client".to_owned(),
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a client call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("cannot connect to worker at {target}: {reason}")]
    Connect { target: String, reason: String },
    /// Connecting plus the handshake took longer than `connect_timeout`.
    #[error("worker at {target} did not complete the handshake in time")]
    HandshakeTimeout { target: String },
    /// The worker speaks another protocol version.
    #[error("protocol version mismatch: {reason}")]
    VersionMismatch { reason: String },
    /// The worker broke the protocol.
    #[error("protocol error: {reason}")]
    Protocol { reason: String },
    /// The worker refused the request with a typed error.
    #[error("worker refused ({code}): {message}")]
    Remote { code: ErrorCode, message: String },
    /// The connection went away before the answer came.
    #[error("connection to the worker lost: {reason}")]
    ConnectionLost { reason: String },
    /// The execution id is already pending on this client.
    #[error("execution id {execution_id:?} is already pending on this connection")]
    DuplicateExecution { execution_id: String },
}

impl ClientError {
    /// The public code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            ClientError::Connect { .. } | ClientError::HandshakeTimeout { .. } => {
                ErrorCode::NoWorkers
            }
            ClientError::VersionMismatch { .. }
            | ClientError::Protocol { .. }
            | ClientError::DuplicateExecution { .. } => ErrorCode::ProtocolError,
            ClientError::Remote { code, .. } => *code,
            ClientError::ConnectionLost { .. } => ErrorCode::WorkerLost,
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, ClientError>>;

/// Requests waiting for their answer.
#[derive(Default)]
struct Pending {
    executions: HashMap<String, Reply<ExecutionResult>>,
    stats: VecDeque<Reply<WorkerStats>>,
    pings: HashMap<u64, Reply<()>>,
    /// Set once the connection is gone; later calls fail at once with it.
    closed: Option<ClientError>,
}

impl Pending {
    fn fail_all(&mut self, err: &ClientError) {
        if self.closed.is_none() {
            self.closed = Some(err.clone());
        }
        for (_, tx) in self.executions.drain() {
            let _ = tx.send(Err(err.clone()));
        }
        for tx in self.stats.drain(..) {
            let _ = tx.send(Err(err.clone()));
        }
        for (_, tx) in self.pings.drain() {
            let _ = tx.send(Err(err.clone()));
        }
    }
}

struct Inner {
    pending: Mutex<Pending>,
    tx: mpsc::Sender<ToWorker>,
    permits: Semaphore,
    welcome: Welcome,
    nonce: AtomicU64,
    /// Stops the reader and writer tasks when the last handle is dropped.
    _stop: DropGuard,
}

impl Inner {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn send(&self, msg: ToWorker) -> Result<(), ClientError> {
        if self.tx.send(msg).await.is_err() {
            return Err(self.closed_error());
        }
        Ok(())
    }

    fn closed_error(&self) -> ClientError {
        self.pending()
            .closed
            .clone()
            .unwrap_or_else(|| ClientError::ConnectionLost {
                reason: "connection closed".to_owned(),
            })
    }
}

/// A connection to one worker. Cloning shares the connection.
#[derive(Clone)]
pub struct WorkerClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WorkerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerClient")
            .field("worker_id", &self.inner.welcome.worker_id)
            .finish()
    }
}

/// Removes a pending execution when its caller stops waiting (the result, if it comes,
/// is then dropped).
struct PendingGuard<'a> {
    inner: &'a Inner,
    id: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.inner.pending().executions.remove(&self.id);
    }
}

impl WorkerClient {
    /// Connects to a worker's Unix socket and completes the handshake.
    ///
    /// # Errors
    /// [`ClientError::Connect`], `HandshakeTimeout`, `VersionMismatch`, `Remote`, `Protocol`.
    pub async fn connect_unix(path: &Path, opts: ClientOptions) -> Result<Self, ClientError> {
        let target = format!("unix:{}", path.display());
        let deadline = Instant::now() + opts.connect_timeout;
        let stream = tokio::time::timeout(opts.connect_timeout, UnixStream::connect(path))
            .await
            .map_err(|_| ClientError::HandshakeTimeout {
                target: target.clone(),
            })?
            .map_err(|e| connect_error(&target, &e))?;
        Self::handshake(stream, target, opts, deadline).await
    }

    /// Connects to a worker over TCP and completes the handshake.
    ///
    /// # Errors
    /// As [`WorkerClient::connect_unix`].
    pub async fn connect_tcp(addr: SocketAddr, opts: ClientOptions) -> Result<Self, ClientError> {
        let target = format!("tcp:{addr}");
        let deadline = Instant::now() + opts.connect_timeout;
        let stream = tokio::time::timeout(opts.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::HandshakeTimeout {
                target: target.clone(),
            })?
            .map_err(|e| connect_error(&target, &e))?;
        let _ = stream.set_nodelay(true);
        Self::handshake(stream, target, opts, deadline).await
    }

    /// Runs the handshake over an already connected stream (any transport, e.g. TLS).
    ///
    /// # Errors
    /// As [`WorkerClient::connect_unix`], without `Connect`.
    pub async fn connect_stream<S>(stream: S, opts: ClientOptions) -> Result<Self, ClientError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let deadline = Instant::now() + opts.connect_timeout;
        Self::handshake(stream, "stream".to_owned(), opts, deadline).await
    }

    async fn handshake<S>(
        stream: S,
        target: String,
        opts: ClientOptions,
        deadline: Instant,
    ) -> Result<Self, ClientError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let codec = FrameCodec::<FromWorker, ToWorker>::new(opts.max_frame_len).map_err(|e| {
            ClientError::Protocol {
                reason: e.to_string(),
            }
        })?;
        let (rd, wr) = tokio::io::split(stream);
        let mut reader = FramedRead::new(rd, codec.clone());
        let mut writer = FramedWrite::new(wr, codec);
        let hello = ToWorker::Hello(Hello {
            version: VERSION,
            peer_id: opts.peer_id.clone(),
        });
        let exchange = async {
            writer.send(hello).await.map_err(|e| lost(&e))?;
            reader
                .next()
                .await
                .ok_or_else(|| ClientError::ConnectionLost {
                    reason: "worker closed the connection during the handshake".to_owned(),
                })?
                .map_err(handshake_frame_error)
        };
        let first = tokio::time::timeout_at(deadline.into(), exchange)
            .await
            .map_err(|_| ClientError::HandshakeTimeout {
                target: target.clone(),
            })??;
        let welcome = match first {
            FromWorker::Welcome(w) => w,
            FromWorker::Error { code, message, .. } if message.contains("version") => {
                return Err(ClientError::VersionMismatch {
                    reason: format!("{code}: {message}"),
                });
            }
            FromWorker::Error { code, message, .. } => {
                return Err(ClientError::Remote { code, message });
            }
            other => {
                return Err(ClientError::Protocol {
                    reason: format!("expected Welcome, got {other:?}"),
                });
            }
        };
        debug!(target = %target, worker_id = %welcome.worker_id, "connected to worker");

        let stop = CancellationToken::new();
        let (tx, rx) = mpsc::channel(256);
        let inner = Arc::new(Inner {
            pending: Mutex::new(Pending::default()),
            tx,
            permits: Semaphore::new(
                (welcome.max_in_flight.max(1) as usize).min(Semaphore::MAX_PERMITS),
            ),
            welcome,
            nonce: AtomicU64::new(1),
            _stop: stop.clone().drop_guard(),
        });
        let weak = Arc::downgrade(&inner);
        tokio::spawn(write_loop(writer, rx, stop.clone()));
        tokio::spawn(async move {
            let reason = tokio::select! {
                () = stop.cancelled() => "client dropped".to_owned(),
                reason = read_loop(&mut reader, &weak) => reason,
            };
            stop.cancel();
            if let Some(inner) = weak.upgrade() {
                inner
                    .pending()
                    .fail_all(&ClientError::ConnectionLost { reason });
            }
        });
        Ok(WorkerClient { inner })
    }

    /// The worker's handshake answer.
    pub fn welcome(&self) -> &Welcome {
        &self.inner.welcome
    }

    /// Runs one execution and waits for its result. Waits first while the worker's
    /// `max_in_flight` executions are already pending on this connection.
    ///
    /// # Errors
    /// `DuplicateExecution`, `Remote` (the worker refused it), `ConnectionLost` (the
    /// worker went away: the code may or may not have run).
    pub async fn execute(&self, req: ExecutionRequest) -> Result<ExecutionResult, ClientError> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| self.inner.closed_error())?;
        let id = req.execution_id.clone();
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.inner.pending();
            if let Some(err) = &pending.closed {
                return Err(err.clone());
            }
            if pending.executions.contains_key(&id) {
                return Err(ClientError::DuplicateExecution { execution_id: id });
            }
            pending.executions.insert(id.clone(), tx);
        }
        let _guard = PendingGuard {
            inner: &self.inner,
            id,
        };
        self.inner.send(ToWorker::Execute(req)).await?;
        rx.await.unwrap_or_else(|_| Err(self.inner.closed_error()))
    }

    /// Asks the worker to cancel an execution; its `execute` call then returns a
    /// `canceled` result.
    ///
    /// # Errors
    /// `ConnectionLost`.
    pub async fn cancel(&self, execution_id: &str) -> Result<(), ClientError> {
        self.inner
            .send(ToWorker::Cancel {
                execution_id: execution_id.to_owned(),
            })
            .await
    }

    /// The worker's load and pool accounting.
    ///
    /// # Errors
    /// `ConnectionLost`.
    pub async fn stats(&self) -> Result<WorkerStats, ClientError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.inner.pending();
            if let Some(err) = &pending.closed {
                return Err(err.clone());
            }
            pending.stats.push_back(tx);
        }
        self.inner.send(ToWorker::StatsRequest).await?;
        rx.await.unwrap_or_else(|_| Err(self.inner.closed_error()))
    }

    /// Round trip of a `Ping`.
    ///
    /// # Errors
    /// `ConnectionLost`.
    pub async fn ping(&self) -> Result<Duration, ClientError> {
        let nonce = self.inner.nonce.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.inner.pending();
            if let Some(err) = &pending.closed {
                return Err(err.clone());
            }
            pending.pings.insert(nonce, tx);
        }
        let start = Instant::now();
        self.inner.send(ToWorker::Ping { nonce }).await?;
        rx.await
            .unwrap_or_else(|_| Err(self.inner.closed_error()))?;
        Ok(start.elapsed())
    }

    /// True once the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.inner.pending().closed.is_some()
    }
}

fn connect_error(target: &str, e: &io::Error) -> ClientError {
    ClientError::Connect {
        target: target.to_owned(),
        reason: e.to_string(),
    }
}

fn lost(e: &FrameError) -> ClientError {
    ClientError::ConnectionLost {
        reason: e.to_string(),
    }
}

fn handshake_frame_error(e: FrameError) -> ClientError {
    if e.is_version_mismatch() {
        ClientError::VersionMismatch {
            reason: e.to_string(),
        }
    } else {
        ClientError::Protocol {
            reason: e.to_string(),
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: FramedWrite<W, FrameCodec<FromWorker, ToWorker>>,
    mut rx: mpsc::Receiver<ToWorker>,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            () = stop.cancelled() => return,
            msg = rx.recv() => msg,
        };
        let Some(first) = first else { return };
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            if let Err(e) = writer.feed(msg).await {
                debug!(error = %e, "worker connection write failed");
                stop.cancel();
                return;
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = writer.flush().await {
            debug!(error = %e, "worker connection write failed");
            stop.cancel();
            return;
        }
    }
}

/// Dispatches frames to their waiters; returns why the connection ended.
async fn read_loop<R: AsyncRead + Unpin>(
    reader: &mut FramedRead<R, FrameCodec<FromWorker, ToWorker>>,
    inner: &std::sync::Weak<Inner>,
) -> String {
    let mut last_error: Option<String> = None;
    loop {
        let msg = match reader.next().await {
            None => {
                return last_error.unwrap_or_else(|| "worker closed the connection".to_owned());
            }
            Some(Err(e)) => return e.to_string(),
            Some(Ok(msg)) => msg,
        };
        let Some(inner) = inner.upgrade() else {
            return "client dropped".to_owned();
        };
        let mut pending = inner.pending();
        match msg {
            FromWorker::Result(result) => match pending.executions.remove(&result.execution_id) {
                Some(tx) => {
                    let _ = tx.send(Ok(result));
                }
                None => debug!(execution_id = %result.execution_id, "result nobody waits for"),
            },
            FromWorker::Stats(stats) => {
                if let Some(tx) = pending.stats.pop_front() {
                    let _ = tx.send(Ok(stats));
                }
            }
            FromWorker::Pong { nonce } => {
                if let Some(tx) = pending.pings.remove(&nonce) {
                    let _ = tx.send(Ok(()));
                }
            }
            FromWorker::Error {
                execution_id: Some(id),
                code,
                message,
            } => {
                if let Some(tx) = pending.executions.remove(&id) {
                    let _ = tx.send(Err(ClientError::Remote { code, message }));
                }
            }
            FromWorker::Error {
                execution_id: None,
                code,
                message,
            } => {
                // The worker closes the connection after a connection-level error.
                last_error = Some(format!("worker reported {code}: {message}"));
            }
            FromWorker::Welcome(_) => return "worker sent a second Welcome".to_owned(),
            FromWorker::Join { .. }
            | FromWorker::Ack { .. }
            | FromWorker::NeedFrom { .. }
            | FromWorker::Ping { .. }
            | FromWorker::BridgeCall(_) => {
                return "worker sent an edge-link frame on a direct connection".to_owned();
            }
        }
    }
}
