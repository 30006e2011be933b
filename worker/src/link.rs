//! The worker side of the edge link: dial the edge (with exponential backoff), join with
//! the token, apply the replication stream into the sled [`Replica`], and run the
//! `ExecuteV2`/`ExecuteV3` frames once the replica has applied their `min_seq`
//! (read-your-writes). On shutdown the link stops taking executions, drains the running
//! ones, then closes.
//!
//! The [`Bridge`] forwards sandboxed code's calls to remote MCP tools to the edge: it keeps
//! the bridge key of every running `ExecuteV3` execution (the sandbox never sees it), sends
//! a `BridgeCall` with it and matches the edge's `BridgeResult` by `call_id`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use paddock_shared::error::ErrorCode;
use paddock_shared::exec::ExecutionRequest;
use paddock_shared::protocol::{
    BridgeCall, BridgeOutcome, FrameCodec, FromWorker, MAX_BRIDGE_VALUE_BYTES, ToWorker, VERSION,
    Welcome,
};
use paddock_shared::replication::{Reply, SnapshotAssembler};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::executor::Executor;
use crate::replica::Replica;
use crate::slots::calls::{CallFailure, CallFuture, RemoteCaller};

/// First reconnect delay.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Longest wait for the replica to reach an execution's `min_seq`.
pub const DEFAULT_STATE_WAIT: Duration = Duration::from_secs(5);
/// Without any frame from the edge for this long the link reconnects (the edge pings
/// every 2 s).
pub const DEFAULT_EDGE_SILENCE: Duration = Duration::from_secs(15);

/// Where the edge listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeAddr {
    /// `unix:PATH`
    Unix(PathBuf),
    /// `tls:HOST:PORT`: TCP with TLS (rustls), the edge's certificate verified against
    /// `--edge-ca` (or the system roots) for `--edge-server-name` (default HOST).
    Tls(String),
    /// `tcp:HOST:PORT`: plain TCP, only against an edge with `workers_tcp_insecure`.
    Tcp(String),
}

fn host_port(a: &str) -> bool {
    a.rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
}

impl EdgeAddr {
    /// Parses `unix:PATH`, `tls:HOST:PORT` or `tcp:HOST:PORT` (a bare path is read as a
    /// Unix socket).
    ///
    /// # Errors
    /// A message naming the accepted forms.
    pub fn parse(s: &str) -> Result<EdgeAddr, String> {
        if let Some(p) = s.strip_prefix("unix:") {
            Ok(EdgeAddr::Unix(PathBuf::from(p)))
        } else if let Some(a) = s.strip_prefix("tls:") {
            if host_port(a) {
                Ok(EdgeAddr::Tls(a.to_owned()))
            } else {
                Err(format!("--edge {s}: expected tls:HOST:PORT"))
            }
        } else if let Some(a) = s.strip_prefix("tcp:") {
            if host_port(a) {
                Ok(EdgeAddr::Tcp(a.to_owned()))
            } else {
                Err(format!("--edge {s}: expected tcp:HOST:PORT"))
            }
        } else if s.starts_with('/') {
            Ok(EdgeAddr::Unix(PathBuf::from(s)))
        } else {
            Err(format!(
                "--edge {s}: expected unix:PATH, tls:HOST:PORT or tcp:HOST:PORT (plain, insecure)"
            ))
        }
    }

    /// The host of a `tls:`/`tcp:` address (brackets of an IPv6 literal removed).
    pub fn host(&self) -> Option<&str> {
        match self {
            EdgeAddr::Unix(_) => None,
            EdgeAddr::Tls(a) | EdgeAddr::Tcp(a) => a
                .rsplit_once(':')
                .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']')),
        }
    }
}

impl std::fmt::Display for EdgeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EdgeAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            EdgeAddr::Tls(a) => write!(f, "tls:{a}"),
            EdgeAddr::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// Why the TLS settings of the link cannot be used (a start-up error).
#[derive(Debug, thiserror::Error)]
pub enum EdgeTlsError {
    #[error("--edge-ca {path}: cannot read: {source}")]
    ReadCa {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--edge-ca {path}: {message}")]
    BadCa { path: PathBuf, message: String },
    #[error("--edge-ca not given and no system root certificate could be loaded")]
    NoRoots,
    #[error("--edge-server-name {0:?}: not a DNS name or IP address")]
    BadServerName(String),
    #[error("--edge-ca / --edge-server-name need --edge tls:HOST:PORT")]
    NotTls,
    #[error("cannot build the TLS client configuration: {0}")]
    Config(String),
}

/// The worker's TLS client for `tls:` edges: trusted roots and the name the edge's
/// certificate must carry.
#[derive(Clone)]
pub struct EdgeTls {
    connector: tokio_rustls::TlsConnector,
    server_name: rustls::pki_types::ServerName<'static>,
    /// Where the roots came from, for error messages (`--edge-ca FILE` or system roots).
    trust: String,
}

impl std::fmt::Debug for EdgeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeTls")
            .field("server_name", &self.server_name)
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

impl EdgeTls {
    /// Trusts the PEM certificates of `ca` (a CA, or the edge's self-signed certificate),
    /// else the system roots, and verifies the edge as `server_name`.
    ///
    /// # Errors
    /// [`EdgeTlsError`] naming the flag at fault.
    pub fn new(ca: Option<&std::path::Path>, server_name: &str) -> Result<EdgeTls, EdgeTlsError> {
        let mut roots = rustls::RootCertStore::empty();
        let trust = match ca {
            Some(path) => {
                use rustls::pki_types::pem::PemObject;
                let pem = std::fs::read(path).map_err(|source| EdgeTlsError::ReadCa {
                    path: path.to_owned(),
                    source,
                })?;
                let bad = |message: String| EdgeTlsError::BadCa {
                    path: path.to_owned(),
                    message,
                };
                let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(e.to_string()))?;
                if certs.is_empty() {
                    return Err(bad("no PEM certificate found".to_owned()));
                }
                for c in certs {
                    roots.add(c).map_err(|e| bad(e.to_string()))?;
                }
                format!("--edge-ca {}", path.display())
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for c in found.certs {
                    let _ = roots.add(c);
                }
                if roots.is_empty() {
                    return Err(EdgeTlsError::NoRoots);
                }
                "the system roots (no --edge-ca)".to_owned()
            }
        };
        let server_name = rustls::pki_types::ServerName::try_from(server_name.to_owned())
            .map_err(|_| EdgeTlsError::BadServerName(server_name.to_owned()))?;
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| EdgeTlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(EdgeTls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
            trust,
        })
    }

    /// The name the edge's certificate is verified against.
    pub fn server_name(&self) -> String {
        self.server_name.to_str().into_owned()
    }
}

/// How the link behaves.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    pub edge: EdgeAddr,
    /// TLS client of a `tls:` edge (required for it; ignored otherwise).
    pub tls: Option<EdgeTls>,
    pub join_token: String,
    /// Sent in `Join` (its `version` is overwritten with this build's).
    pub welcome: Welcome,
    pub state_wait: Duration,
    pub edge_silence: Duration,
    /// How long a shutdown waits for running executions.
    pub drain_timeout: Duration,
}

/// The delay before reconnect attempt `attempt` (0-based): 100 ms doubling to 5 s.
pub fn backoff(attempt: u32) -> Duration {
    BACKOFF_MIN
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_MAX)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why one connection ended.
enum Ended {
    /// Shutdown was requested and the drain finished (or timed out: `false`).
    Shutdown(bool),
    /// The connection failed or closed; reconnect.
    Lost(String),
    /// The edge refused us (bad token): reconnecting will not help soon.
    Refused(String),
    /// The TLS handshake failed (the edge's certificate is not trusted, or not for the
    /// expected name): a configuration error, logged as one; retried with backoff.
    Untrusted(String),
}

/// Runs the link until `shutdown` fires: connect, serve, reconnect with backoff.
/// Returns whether the final drain finished in time.
pub async fn run<E: Executor>(
    opts: LinkOptions,
    replica: Arc<Replica>,
    executor: Arc<E>,
    shutdown: CancellationToken,
) -> bool {
    let bridge = Arc::new(Bridge::default());
    if !executor.attach_remote(bridge.clone()) {
        debug!("the executor takes no remote MCP calls");
    }
    let mut attempt = 0u32;
    loop {
        if shutdown.is_cancelled() {
            return true;
        }
        let ended = match connect(&opts.edge, opts.tls.as_ref()).await {
            Ok(s) => {
                serve(
                    s,
                    &opts,
                    &replica,
                    &executor,
                    &bridge,
                    &shutdown,
                    &mut attempt,
                )
                .await
            }
            Err(e @ ConnectError::Tls { .. }) => Ended::Untrusted(e.to_string()),
            Err(e) => Ended::Lost(format!("cannot connect to {}: {e}", opts.edge)),
        };
        let delay = match ended {
            Ended::Shutdown(drained) => return drained,
            Ended::Lost(why) => {
                let d = backoff(attempt);
                attempt = attempt.saturating_add(1);
                if attempt <= 3 || attempt.is_multiple_of(20) {
                    warn!(edge = %opts.edge, reason = why, retry_in = ?d, "edge link down");
                } else {
                    debug!(edge = %opts.edge, reason = why, retry_in = ?d, "edge link down");
                }
                d
            }
            Ended::Untrusted(why) => {
                let d = backoff(attempt);
                attempt = attempt.saturating_add(1);
                if attempt <= 3 || attempt.is_multiple_of(20) {
                    tracing::error!(edge = %opts.edge, reason = why, retry_in = ?d, "cannot join the edge over TLS");
                } else {
                    debug!(edge = %opts.edge, reason = why, retry_in = ?d, "cannot join the edge over TLS");
                }
                d
            }
            Ended::Refused(why) => {
                warn!(edge = %opts.edge, reason = why, "the edge refused this worker");
                BACKOFF_MAX
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return true,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Any byte stream to the edge: Unix, TLS over TCP or plain TCP (the frames are the same).
trait LinkIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> LinkIo for T {}
type Stream = Box<dyn LinkIo>;

/// Why a connection attempt failed (the link logs it and retries with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The TLS handshake failed: most often the edge's certificate is not trusted by
    /// `--edge-ca` or does not carry `--edge-server-name`.
    #[error(
        "TLS handshake failed ({source}); the edge's certificate was checked against {trust} for the name {server_name:?} (see --edge-ca / --edge-server-name)"
    )]
    Tls {
        source: std::io::Error,
        trust: String,
        server_name: String,
    },
    #[error("--edge tls:… needs a TLS client configuration")]
    NoTlsConfig,
}

async fn connect(addr: &EdgeAddr, tls: Option<&EdgeTls>) -> Result<Stream, ConnectError> {
    let tcp = |a| async move {
        let s = tokio::net::TcpStream::connect(a).await?;
        let _ = s.set_nodelay(true);
        Ok::<_, ConnectError>(s)
    };
    match addr {
        EdgeAddr::Unix(p) => Ok(Box::new(tokio::net::UnixStream::connect(p).await?)),
        EdgeAddr::Tcp(a) => Ok(Box::new(tcp(a).await?)),
        EdgeAddr::Tls(a) => {
            let tls = tls.ok_or(ConnectError::NoTlsConfig)?;
            let s = tls
                .connector
                .connect(tls.server_name.clone(), tcp(a).await?)
                .await
                .map_err(|source| ConnectError::Tls {
                    source,
                    trust: tls.trust.clone(),
                    server_name: tls.server_name(),
                })?;
            Ok(Box::new(s))
        }
    }
}

/// Serves one connection to the edge.
async fn serve<S, E>(
    stream: S,
    opts: &LinkOptions,
    replica: &Arc<Replica>,
    executor: &Arc<E>,
    bridge: &Arc<Bridge>,
    shutdown: &CancellationToken,
    attempt: &mut u32,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    E: Executor,
{
    let (r, w) = tokio::io::split(stream);
    let mut reader = FramedRead::new(r, FrameCodec::<ToWorker, FromWorker>::default());
    let mut writer = FramedWrite::new(w, FrameCodec::<ToWorker, FromWorker>::default());
    let mut welcome = opts.welcome.clone();
    welcome.version = VERSION;
    let join = FromWorker::Join {
        join_token: opts.join_token.clone(),
        from_seq: replica.next_seq(),
        welcome,
    };
    if let Err(e) = writer.send(join).await {
        return Ended::Lost(format!("sending Join: {e}"));
    }
    match tokio::time::timeout(opts.edge_silence, reader.next()).await {
        Ok(Some(Ok(ToWorker::Hello(h)))) => {
            info!(edge = %opts.edge, peer_id = h.peer_id, version = h.version, from_seq = replica.next_seq(), "joined the edge");
            *attempt = 0;
        }
        Ok(Some(Ok(ToWorker::Error { code, message }))) => {
            return if code == ErrorCode::AuthenticationFailed {
                Ended::Refused(format!("{code}: {message}"))
            } else {
                Ended::Lost(format!("{code}: {message}"))
            };
        }
        Ok(Some(Ok(other))) => return Ended::Lost(format!("unexpected first frame {other:?}")),
        Ok(Some(Err(e))) => return Ended::Lost(e.to_string()),
        Ok(None) => return Ended::Lost("the edge closed the connection".to_owned()),
        Err(_) => return Ended::Lost("no Hello from the edge in time".to_owned()),
    }

    let (tx, mut rx) = mpsc::channel::<FromWorker>(256);
    let write_task = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if writer.send(f).await.is_err() {
                break;
            }
        }
        let _ = writer.close().await;
    });
    let running: Arc<Mutex<HashMap<String, CancellationToken>>> = Arc::default();
    let mut tasks = JoinSet::new();
    let mut assembler = SnapshotAssembler::new();
    let conn_cancel = CancellationToken::new();
    // Shutdown: keep reading (results still flow, new executions are refused with
    // WORKER_BUSY so they never hang) until the running ones finish or time runs out.
    let mut drain_until: Option<tokio::time::Instant> = None;
    let ended = loop {
        if drain_until.is_some() && tasks.is_empty() {
            break None;
        }
        let frame = tokio::select! {
            () = shutdown.cancelled(), if drain_until.is_none() => {
                info!(running = tasks.len(), "shutting down: draining executions");
                drain_until = Some(tokio::time::Instant::now() + opts.drain_timeout);
                continue;
            }
            () = async {
                match drain_until {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => break None,
            f = tokio::time::timeout(opts.edge_silence, reader.next()) => f,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let msg = match frame {
            Err(_) => break Some("the edge went silent".to_owned()),
            Ok(None) => break Some("the edge closed the connection".to_owned()),
            Ok(Some(Err(e))) => break Some(format!("bad frame from the edge: {e}")),
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            ToWorker::Replicate { entries } => {
                let rep = replica.clone();
                let out = tokio::task::spawn_blocking(move || rep.apply_batch(&entries)).await;
                match out {
                    Ok(Ok(outcome)) => {
                        debug!(
                            applied_seq = outcome.applied_seq,
                            applied = outcome.applied,
                            "replicated"
                        );
                        let _ = tx.send(reply_frame(outcome.reply)).await;
                    }
                    Ok(Err(e)) => break Some(format!("applying replication entries: {e}")),
                    Err(e) => break Some(format!("applying replication entries: {e}")),
                }
            }
            ToWorker::Snapshot { part, reset } => match assembler.push(part) {
                Ok(None) => {}
                Ok(Some(snapshot)) => {
                    let rep = replica.clone();
                    let out = tokio::task::spawn_blocking(move || {
                        if reset {
                            rep.reset(&snapshot)
                        } else {
                            rep.install_snapshot(&snapshot).map(|o| o.reply())
                        }
                    })
                    .await;
                    match out {
                        Ok(Ok(reply)) => {
                            info!(?reply, reset, "installed a snapshot");
                            let _ = tx.send(reply_frame(reply)).await;
                        }
                        Ok(Err(e)) => break Some(format!("installing a snapshot: {e}")),
                        Err(e) => break Some(format!("installing a snapshot: {e}")),
                    }
                }
                Err(e) => {
                    warn!(error = %e, "bad snapshot part; asking again");
                    assembler = SnapshotAssembler::new();
                    let _ = tx
                        .send(FromWorker::NeedFrom {
                            seq: replica.next_seq(),
                        })
                        .await;
                }
            },
            ToWorker::ExecuteV2 { request, .. }
            | ToWorker::ExecuteV3 { request, .. }
            | ToWorker::Execute(request)
                if drain_until.is_some() =>
            {
                let _ = tx
                    .send(FromWorker::Error {
                        execution_id: Some(request.execution_id),
                        code: ErrorCode::WorkerBusy,
                        message: format!(
                            "worker {} is shutting down; the execution was not started",
                            opts.welcome.worker_id
                        ),
                    })
                    .await;
            }
            frame @ (ToWorker::ExecuteV2 { .. } | ToWorker::ExecuteV3 { .. }) => {
                let (request, min_seq, bridge_key) = match frame {
                    ToWorker::ExecuteV3 {
                        request,
                        min_seq,
                        bridge_key,
                    } => (request, min_seq, Some(bridge_key)),
                    ToWorker::ExecuteV2 { request, min_seq } => (request, min_seq, None),
                    _ => continue,
                };
                let token = conn_cancel.child_token();
                let id = request.execution_id.clone();
                if lock(&running).insert(id.clone(), token.clone()).is_some() {
                    let _ = tx
                        .send(FromWorker::Error {
                            execution_id: Some(id),
                            code: ErrorCode::ProtocolError,
                            message: "execution id is already running on this link".to_owned(),
                        })
                        .await;
                    continue;
                }
                if let Some(key) = bridge_key {
                    bridge.register(&id, key, tx.clone());
                }
                tasks.spawn(run_one(
                    request,
                    min_seq,
                    opts.state_wait,
                    replica.clone(),
                    executor.clone(),
                    token,
                    tx.clone(),
                    running.clone(),
                    bridge.clone(),
                ));
            }
            ToWorker::Execute(request) => {
                // A v1 execute over the link: no read-your-writes wait.
                let token = conn_cancel.child_token();
                lock(&running).insert(request.execution_id.clone(), token.clone());
                tasks.spawn(run_one(
                    request,
                    0,
                    opts.state_wait,
                    replica.clone(),
                    executor.clone(),
                    token,
                    tx.clone(),
                    running.clone(),
                    bridge.clone(),
                ));
            }
            ToWorker::Cancel { execution_id } => {
                if let Some(t) = lock(&running).get(&execution_id) {
                    t.cancel();
                }
            }
            ToWorker::Ping { nonce } => {
                let _ = tx.send(FromWorker::Pong { nonce }).await;
            }
            ToWorker::StatsRequest => {
                let _ = tx.send(FromWorker::Stats(executor.stats())).await;
            }
            ToWorker::BridgeResult { call_id, outcome } => bridge.resolve(call_id, outcome),
            ToWorker::Pong { .. } => {}
            ToWorker::Error { code, message } => {
                break Some(format!("the edge reported {code}: {message}"));
            }
            ToWorker::Hello(_) => break Some("second Hello".to_owned()),
        }
    };
    // Calls still waiting for the edge will never be answered on this connection.
    bridge.disconnect();
    match ended {
        Some(why) => {
            // Nobody will read these results: the edge answers them WORKER_LOST.
            conn_cancel.cancel();
            tasks.abort_all();
            drop(tx);
            write_task.abort();
            Ended::Lost(why)
        }
        None => {
            let drained = tasks.is_empty();
            conn_cancel.cancel();
            tasks.abort_all();
            drop(tx);
            let _ = tokio::time::timeout(Duration::from_secs(2), write_task).await;
            info!(drained_in_time = drained, "edge link closed");
            Ended::Shutdown(drained)
        }
    }
}

fn reply_frame(reply: Reply) -> FromWorker {
    match reply {
        Reply::Ack(applied_seq) => FromWorker::Ack { applied_seq },
        Reply::NeedFrom(seq) => FromWorker::NeedFrom { seq },
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_one<E: Executor>(
    request: ExecutionRequest,
    min_seq: u64,
    state_wait: Duration,
    replica: Arc<Replica>,
    executor: Arc<E>,
    cancel: CancellationToken,
    tx: mpsc::Sender<FromWorker>,
    running: Arc<Mutex<HashMap<String, CancellationToken>>>,
    bridge: Arc<Bridge>,
) {
    let id = request.execution_id.clone();
    // The edge's execution id: every log of this execution (slot lifecycle included)
    // carries it, so one id follows a request from edge to worker to slot.
    let span = tracing::info_span!("execution", execution_id = %id,
        namespace = %request.namespace, tier = %request.profile, language = request.language.as_str());
    let frame = tracing::Instrument::instrument(
        async {
            debug!(min_seq, "execution received");
            match replica.wait_for(min_seq, state_wait).await {
                Err(e) => {
                    warn!(min_seq, error = %e, "execution refused: state not ready");
                    FromWorker::Error {
                        execution_id: Some(id.clone()),
                        code: e.code(),
                        message: e.to_string(),
                    }
                }
                Ok(()) => {
                    let r = executor.execute(request, cancel).await;
                    info!(
                        status = r.status.as_str(),
                        slot_ms = r.duration_us as f64 / 1e3,
                        "execution finished"
                    );
                    FromWorker::Result(r)
                }
            }
        },
        span,
    )
    .await;
    lock(&running).remove(&id);
    bridge.unregister(&id);
    let _ = tx.send(frame).await;
}

/// One running execution's way to the edge: its bridge key and the link's writer.
#[derive(Debug)]
struct Route {
    key: String,
    tx: mpsc::Sender<FromWorker>,
}

#[derive(Debug, Default)]
struct BridgeState {
    routes: HashMap<String, Route>,
    calls: HashMap<u64, oneshot::Sender<BridgeOutcome>>,
}

/// Forwards remote MCP calls of running executions to the edge (see the module doc).
/// One per worker, shared by the pools (as their [`RemoteCaller`]) and the link.
#[derive(Debug, Default)]
pub struct Bridge {
    state: Arc<Mutex<BridgeState>>,
    next_call: AtomicU64,
}

/// Forgets a waiting call when its future ends (answered, timed out or dropped).
struct CallGuard {
    call_id: u64,
    state: Arc<Mutex<BridgeState>>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        lock(&self.state).calls.remove(&self.call_id);
    }
}

impl Bridge {
    /// Keeps `key` for execution `id` until [`Bridge::unregister`].
    pub fn register(&self, id: &str, key: String, tx: mpsc::Sender<FromWorker>) {
        lock(&self.state)
            .routes
            .insert(id.to_owned(), Route { key, tx });
    }

    /// Forgets the key of execution `id` (it ended).
    pub fn unregister(&self, id: &str) {
        lock(&self.state).routes.remove(id);
    }

    /// Delivers the edge's answer to call `call_id` (unknown ids are ignored: the call
    /// timed out or was canceled).
    pub fn resolve(&self, call_id: u64, outcome: BridgeOutcome) {
        let waiter = lock(&self.state).calls.remove(&call_id);
        match waiter {
            Some(w) => {
                let _ = w.send(outcome);
            }
            None => debug!(call_id, "bridge result nobody waits for"),
        }
    }

    /// The connection to the edge ended: every waiting call fails, every key is dropped.
    pub fn disconnect(&self) {
        let mut st = lock(&self.state);
        st.calls.clear();
        st.routes.clear();
    }

    /// Executions holding a key (for tests and stats).
    pub fn executions(&self) -> usize {
        lock(&self.state).routes.len()
    }
}

fn failure(code: ErrorCode, message: impl Into<String>) -> CallFailure {
    CallFailure::new(code.as_str(), message)
}

/// The text of a tool-level error result (its `content` texts, else its JSON), clipped.
fn error_text(value: &Value) -> String {
    let texts: Vec<&str> = value
        .get("content")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|c| c.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let text = if !texts.is_empty() {
        texts.join("\n")
    } else if let Some(s) = value.as_str() {
        s.to_owned()
    } else {
        value.to_string()
    };
    paddock_shared::protocol::clip_message(&text)
}

/// What the slot gets for the edge's answer.
fn slot_answer(outcome: BridgeOutcome) -> Result<Value, CallFailure> {
    match outcome {
        BridgeOutcome::Ok(reply) => {
            if reply.value_json.len() > MAX_BRIDGE_VALUE_BYTES {
                return Err(failure(
                    ErrorCode::ProtocolError,
                    "the remote tool's answer is over the bridge's size limit",
                ));
            }
            let value: Value = serde_json::from_str(&reply.value_json).map_err(|e| {
                failure(
                    ErrorCode::ProtocolError,
                    format!("the edge sent a remote tool answer that is not JSON: {e}"),
                )
            })?;
            if reply.is_error {
                return Err(failure(ErrorCode::McpToolError, error_text(&value)));
            }
            Ok(json!({
                "value": value,
                "truncated": reply.truncated,
                "bytes": reply.bytes,
                "latency_ms": (reply.latency_us as f64) / 1000.0,
            }))
        }
        BridgeOutcome::Err { code, message, .. } => Err(failure(code, message)),
    }
}

impl RemoteCaller for Bridge {
    fn call_remote(
        &self,
        execution_id: &str,
        server: String,
        tool: String,
        input_json: String,
        remaining: Duration,
        cancel: CancellationToken,
    ) -> CallFuture {
        let call_id = self.next_call.fetch_add(1, Ordering::Relaxed) + 1;
        let (wait_tx, wait_rx) = oneshot::channel();
        let sent = {
            let mut st = lock(&self.state);
            match st.routes.get(execution_id) {
                None => None,
                Some(route) => {
                    let frame = FromWorker::BridgeCall(BridgeCall {
                        execution_id: execution_id.to_owned(),
                        bridge_key: route.key.clone(),
                        call_id,
                        server: server.clone(),
                        tool: tool.clone(),
                        input_json,
                    });
                    let tx = route.tx.clone();
                    st.calls.insert(call_id, wait_tx);
                    Some((tx, frame))
                }
            }
        };
        let Some((tx, frame)) = sent else {
            return Box::pin(std::future::ready(Err(failure(
                ErrorCode::McpServerUnavailable,
                "remote MCP tools need an execution dispatched by the edge (protocol v3); \
                 this one has no bridge key",
            ))));
        };
        let forget = CallGuard {
            call_id,
            state: self.state.clone(),
        };
        Box::pin(async move {
            let started = Instant::now();
            let name = format!("mcp__{server}__{tool}");
            // One deadline for queueing the frame (the link's writer may be backed up)
            // and for the answer.
            let deadline = tokio::time::sleep(remaining);
            tokio::pin!(deadline);
            let sent = tokio::select! {
                r = tx.send(frame) => r.is_ok(),
                () = &mut deadline => false,
                () = cancel.cancelled() => false,
            };
            if !sent {
                return Err(failure(
                    ErrorCode::McpServerUnavailable,
                    "the call could not be sent to the edge (link closed or backed up)",
                ));
            }
            let outcome = tokio::select! {
                r = wait_rx => r,
                () = &mut deadline => {
                    return Err(failure(
                        ErrorCode::McpServerTimeout,
                        format!("{name} did not answer within the execution's remaining {} ms", remaining.as_millis()),
                    ));
                }
                () = cancel.cancelled() => {
                    return Err(failure(ErrorCode::McpServerUnavailable, "the execution ended during the call"));
                }
            };
            drop(forget);
            debug!(call = %name, elapsed_us = started.elapsed().as_micros() as u64, "remote call answered");
            match outcome {
                Ok(o) => slot_answer(o),
                Err(_) => Err(failure(
                    ErrorCode::McpServerUnavailable,
                    "the link to the edge was lost during the call",
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_shared::protocol::BridgeReply;

    fn call(b: &Bridge, id: &str, remaining: Duration, cancel: CancellationToken) -> CallFuture {
        b.call_remote(
            id,
            "srv".into(),
            "get-sum".into(),
            "{\"a\":1}".into(),
            remaining,
            cancel,
        )
    }

    /// The next `BridgeCall` the bridge sent.
    async fn sent(rx: &mut mpsc::Receiver<FromWorker>) -> BridgeCall {
        match rx.recv().await {
            Some(FromWorker::BridgeCall(c)) => c,
            other => panic!("expected a BridgeCall, got {other:?}"),
        }
    }

    /// Makes one call for `ex1` and answers it with `outcome`: what the call returns.
    async fn answered(
        b: &Arc<Bridge>,
        rx: &mut mpsc::Receiver<FromWorker>,
        outcome: BridgeOutcome,
    ) -> Result<Value, CallFailure> {
        let pending = tokio::spawn(call(
            b,
            "ex1",
            Duration::from_secs(30),
            CancellationToken::new(),
        ));
        let c = sent(rx).await;
        b.resolve(c.call_id, outcome);
        pending.await.expect("call task")
    }

    #[tokio::test]
    async fn calls_carry_the_key_and_match_their_results() {
        let b = Arc::new(Bridge::default());
        let (tx, mut rx) = mpsc::channel(8);
        b.register("ex1", "k1".into(), tx);
        let pending = tokio::spawn(call(
            &b,
            "ex1",
            Duration::from_secs(30),
            CancellationToken::new(),
        ));
        let c = sent(&mut rx).await;
        assert_eq!(
            (
                c.execution_id.as_str(),
                c.bridge_key.as_str(),
                c.server.as_str(),
                c.tool.as_str()
            ),
            ("ex1", "k1", "srv", "get-sum")
        );
        assert_eq!(c.input_json, "{\"a\":1}");
        b.resolve(
            c.call_id + 100,
            BridgeOutcome::Err {
                code: ErrorCode::Internal,
                message: String::new(),
                latency_us: 0,
            },
        );
        b.resolve(
            c.call_id,
            BridgeOutcome::Ok(BridgeReply {
                value_json: "[1]".into(),
                is_error: false,
                truncated: true,
                bytes: 3,
                latency_us: 1500,
            }),
        );
        let v = pending.await.unwrap().unwrap();
        assert_eq!(
            v,
            json!({"value": [1], "truncated": true, "bytes": 3, "latency_ms": 1.5})
        );
        // Tool errors and refusals become typed failures.
        let tool_error = BridgeOutcome::Ok(BridgeReply {
            value_json: r#"{"content":[{"type":"text","text":"boom"}]}"#.into(),
            is_error: true,
            truncated: false,
            bytes: 9,
            latency_us: 1,
        });
        assert_eq!(
            answered(&b, &mut rx, tool_error).await,
            Err(CallFailure::new("MCP_TOOL_ERROR", "boom"))
        );
        let refusal = BridgeOutcome::Err {
            code: ErrorCode::CallBudgetExceeded,
            message: "two".into(),
            latency_us: 1,
        };
        assert_eq!(
            answered(&b, &mut rx, refusal).await,
            Err(CallFailure::new("CALL_BUDGET_EXCEEDED", "two"))
        );
        assert!(lock(&b.state).calls.is_empty());
    }

    #[tokio::test]
    async fn no_key_timeouts_cancels_and_lost_links_fail_typed() {
        let b = Arc::new(Bridge::default());
        let kind = |r: Result<Value, CallFailure>| r.err().map(|e| e.error_type);
        // An execution without a key (a v2 edge, or a direct client).
        let r = call(
            &b,
            "nobody",
            Duration::from_secs(1),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(kind(r), Some("MCP_SERVER_UNAVAILABLE".into()));
        let (tx, mut rx) = mpsc::channel(8);
        b.register("ex1", "k1".into(), tx);
        // No answer within the execution's remaining time.
        let r = call(
            &b,
            "ex1",
            Duration::from_millis(20),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(kind(r), Some("MCP_SERVER_TIMEOUT".into()));
        let _ = sent(&mut rx).await;
        assert!(
            lock(&b.state).calls.is_empty(),
            "a timed-out call is forgotten"
        );
        // The execution ends during the call.
        let cancel = CancellationToken::new();
        let pending = tokio::spawn(call(&b, "ex1", Duration::from_secs(30), cancel.clone()));
        let _ = sent(&mut rx).await;
        cancel.cancel();
        assert_eq!(
            kind(pending.await.unwrap()),
            Some("MCP_SERVER_UNAVAILABLE".into())
        );
        // The link drops during a call.
        let pending = tokio::spawn(call(
            &b,
            "ex1",
            Duration::from_secs(30),
            CancellationToken::new(),
        ));
        let _ = sent(&mut rx).await;
        b.disconnect();
        assert_eq!(
            kind(pending.await.unwrap()),
            Some("MCP_SERVER_UNAVAILABLE".into())
        );
        assert_eq!(b.executions(), 0, "keys are dropped with the link");
        // After unregister, the key is gone.
        let (tx, _rx) = mpsc::channel(8);
        b.register("ex2", "k2".into(), tx);
        b.unregister("ex2");
        let r = call(&b, "ex2", Duration::from_secs(1), CancellationToken::new()).await;
        assert_eq!(kind(r), Some("MCP_SERVER_UNAVAILABLE".into()));
    }

    #[test]
    fn backoff_doubles_from_100ms_to_5s() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(5), Duration::from_millis(3200));
        assert_eq!(backoff(6), Duration::from_secs(5));
        assert_eq!(backoff(40), Duration::from_secs(5));
    }

    #[test]
    fn edge_addresses_parse() {
        assert_eq!(
            EdgeAddr::parse("unix:/d/workers.sock"),
            Ok(EdgeAddr::Unix("/d/workers.sock".into()))
        );
        assert_eq!(
            EdgeAddr::parse("tcp:127.0.0.1:7001"),
            Ok(EdgeAddr::Tcp("127.0.0.1:7001".into()))
        );
        assert_eq!(
            EdgeAddr::parse("tls:edge.example:7443"),
            Ok(EdgeAddr::Tls("edge.example:7443".into()))
        );
        assert_eq!(
            EdgeAddr::parse("tls:[::1]:7443").expect("v6").host(),
            Some("::1")
        );
        assert!(EdgeAddr::parse("tls:nohost").is_err());
        assert!(EdgeAddr::parse("tcp:nohost").is_err());
        assert!(EdgeAddr::parse("http://x").is_err());
    }

    #[test]
    fn edge_tls_settings_name_the_flag_at_fault() {
        let dir = tempfile::tempdir().expect("ok");
        let missing = dir.path().join("missing.pem");
        let e = EdgeTls::new(Some(&missing), "localhost").expect_err("refused");
        assert!(e.to_string().starts_with("--edge-ca "), "{e}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").expect("ok");
        let e = EdgeTls::new(Some(&junk), "localhost").expect_err("refused");
        assert!(matches!(e, EdgeTlsError::BadCa { .. }), "{e}");
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let e = EdgeTls::new(Some(&junk), "bad name!").expect_err("refused");
        assert!(matches!(e, EdgeTlsError::BadCa { .. }), "{e}");
    }
}
