//! The edge side of the edge ⇄ worker link: workers dial the edge (Unix socket
//! `<data-dir>/workers.sock`, optionally TCP), join with the token of
//! `<data-dir>/join.token`, receive the replication log (or a snapshot) and run the
//! executions the [`Dispatcher`] hands them.
//!
//! - [`WorkerHub::start`] binds the listeners and spawns the accept loop.
//! - `conn` owns one worker connection: handshake, replication stream, heartbeats,
//!   results; when it ends every pending execution of that worker gets `WORKER_LOST`.
//! - `registry` holds the connected workers and picks one per execution (power of two
//!   choices on in-flight / capacity).
//!
//! The optional TCP listener (workers on other hosts) serves TLS with
//! [`HubOptions::tls`] (rustls; the edge's certificate by default); plain TCP needs the
//! explicit [`HubOptions::tcp_insecure`] opt-out. The join token is checked inside the
//! stream either way, and the frames are the same on every transport.

mod conn;
mod registry;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::identity::secrets;

pub use registry::{Dispatcher, WorkerInfo, pick_two};

/// File name of the worker socket under the data directory.
pub const SOCKET_FILE: &str = "workers.sock";
/// File name of the join token under the data directory.
pub const TOKEN_FILE: &str = "join.token";
/// Default heartbeat interval; a worker silent for [`MISSED_HEARTBEATS`] intervals is
/// dropped.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(2);
/// Heartbeat intervals without a frame after which a worker counts as dead.
pub const MISSED_HEARTBEATS: u32 = 3;
/// Default time a dialing worker has to send `Join`.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Entries per `Replicate` frame.
pub const REPLICATE_BATCH: usize = 256;
/// How often the hub looks at the committed sequence for new entries to stream.
const COMMIT_POLL: Duration = Duration::from_millis(2);

/// How the hub listens and paces its connections.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Also listen for workers on this TCP address.
    pub tcp: Option<std::net::SocketAddr>,
    /// TLS of the TCP listener. Required when `tcp` is set unless `tcp_insecure`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Serve `tcp` as plain text (explicit opt-out; logged as a warning). Ignored when
    /// `tls` is set.
    pub tcp_insecure: bool,
    /// The join token; `None` reads or generates `<data-dir>/join.token`.
    pub join_token: Option<String>,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Time a worker has to send `Join` after connecting.
    pub handshake_timeout: Duration,
    /// Stop accepting and close every connection when this fires.
    pub shutdown: CancellationToken,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            tcp: None,
            tls: None,
            tcp_insecure: false,
            join_token: None,
            heartbeat: DEFAULT_HEARTBEAT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            shutdown: CancellationToken::new(),
        }
    }
}

/// The hub failed to start.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The join token file could not be read or written.
    #[error(transparent)]
    Token(#[from] secrets::SecretError),
    /// A listener could not be bound.
    #[error("cannot listen for workers on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    /// A TCP listener was asked for without TLS and without the plain-TCP opt-out.
    #[error(
        "workers TCP listener {addr}: no TLS configuration (set workers_tls_cert/workers_tls_key, use the edge's certificate, or opt out with workers_tcp_insecure = true)"
    )]
    TcpWithoutTls { addr: String },
}

/// State shared by the accept loop and every connection.
pub(crate) struct Shared {
    pub app: App,
    pub token: Vec<u8>,
    pub opts: HubOptions,
    pub committed: watch::Receiver<u64>,
    pub dispatcher: Dispatcher,
}

/// The listener side of the link.
pub struct WorkerHub;

impl WorkerHub {
    /// Binds `<data_dir>/workers.sock` (mode 0600) and `opts.tcp`, makes sure the join
    /// token exists, and spawns the accept loop. Returns the [`Dispatcher`] and the
    /// loop's handle (it ends when `opts.shutdown` fires).
    ///
    /// # Errors
    /// [`HubError`] when the token or a listener cannot be set up.
    pub async fn start(
        data_dir: &Path,
        app: App,
        opts: HubOptions,
    ) -> Result<(Dispatcher, JoinHandle<()>), HubError> {
        if let Some(addr) = opts.tcp
            && opts.tls.is_none()
            && !opts.tcp_insecure
        {
            return Err(HubError::TcpWithoutTls {
                addr: addr.to_string(),
            });
        }
        let token_path = data_dir.join(TOKEN_FILE);
        let token = secrets::load_or_create(opts.join_token.as_deref(), &token_path)?;
        let socket = data_dir.join(SOCKET_FILE);
        let unix = bind_unix(&socket)?;
        let tcp = match opts.tcp {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| HubError::Bind {
                        addr: addr.to_string(),
                        source,
                    })?,
            ),
            None => None,
        };
        if let Some(t) = &tcp {
            if opts.tls.is_some() {
                tracing::info!(addr = ?t.local_addr().ok(), "listening for workers (tcp, tls)");
            } else {
                tracing::warn!(
                    addr = ?t.local_addr().ok(),
                    "listening for workers on PLAIN TCP without TLS (workers_tcp_insecure): join tokens and replicated state cross the network in clear text"
                );
            }
        }
        tracing::info!(path = %socket.display(), "listening for workers (unix)");
        let (seq_tx, committed) = watch::channel(app.committed_seq());
        let dispatcher = Dispatcher::new(socket.clone(), token_path);
        let shared = Arc::new(Shared {
            app,
            token,
            opts,
            committed,
            dispatcher: dispatcher.clone(),
        });
        let handle = tokio::spawn(accept_loop(shared, unix, tcp, seq_tx, socket));
        Ok((dispatcher, handle))
    }
}

impl WorkerHub {
    /// [`WorkerHub::start`] on a runtime of its own (thread `paddock-workers`), for a
    /// caller without one (the edge's `main`, whose HTTP server blocks on pingora's
    /// runtimes). The [`Dispatcher`] works from any runtime. The thread ends after
    /// `opts.shutdown` fires.
    ///
    /// # Errors
    /// [`HubError`] when the token or a listener cannot be set up, or the runtime cannot
    /// be built.
    pub fn start_background(
        data_dir: &Path,
        app: App,
        opts: HubOptions,
    ) -> Result<(Dispatcher, std::thread::JoinHandle<()>), HubError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("paddock-workers")
            .enable_all()
            .build()
            .map_err(|source| HubError::Bind {
                addr: "runtime".to_owned(),
                source,
            })?;
        let (dispatcher, task) = rt.block_on(WorkerHub::start(data_dir, app, opts))?;
        let thread = std::thread::Builder::new()
            .name("paddock-workers".to_owned())
            .spawn(move || {
                let _ = rt.block_on(task);
            })
            .map_err(|source| HubError::Bind {
                addr: "thread".to_owned(),
                source,
            })?;
        Ok((dispatcher, thread))
    }
}

fn bind_unix(path: &PathBuf) -> Result<UnixListener, HubError> {
    let err = |source| HubError::Bind {
        addr: path.display().to_string(),
        source,
    };
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let l = UnixListener::bind(path).map_err(err)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    Ok(l)
}

async fn accept_loop(
    shared: Arc<Shared>,
    unix: UnixListener,
    tcp: Option<TcpListener>,
    seq_tx: watch::Sender<u64>,
    socket: PathBuf,
) {
    let shutdown = shared.opts.shutdown.clone();
    // Commit notification: the log's committed sequence is an atomic; publish changes.
    let app = shared.app.clone();
    let poll_stop = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(COMMIT_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = poll_stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let seq = app.committed_seq();
            seq_tx.send_if_modified(|cur| {
                let changed = *cur != seq;
                *cur = seq;
                changed
            });
        }
    });
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            r = unix.accept() => match r {
                Ok((stream, _)) => {
                    tokio::spawn(conn::run(shared.clone(), stream, "unix".to_owned()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a worker connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            r = async {
                match &tcp {
                    Some(t) => t.accept().await,
                    None => std::future::pending().await,
                }
            } => match r {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    match &shared.opts.tls {
                        Some(tls) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(tls.clone());
                            tokio::spawn(accept_tls(shared.clone(), acceptor, stream, peer));
                        }
                        None => {
                            tokio::spawn(conn::run(shared.clone(), stream, peer.to_string()));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a worker connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    let _ = std::fs::remove_file(&socket);
}

/// Completes the TLS handshake of one TCP worker connection (bounded by the handshake
/// timeout), then serves it like any other.
async fn accept_tls(
    shared: Arc<Shared>,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
) {
    match tokio::time::timeout(shared.opts.handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => conn::run(shared, tls, peer.to_string()).await,
        Ok(Err(e)) => {
            tracing::warn!(%peer, error = %e, "worker TLS handshake failed");
        }
        Err(_) => {
            tracing::warn!(%peer, "worker TLS handshake timed out");
        }
    }
}
