//! `paddock-worker`: runs executions in warm nsjail slots. `serve` runs the pools and the
//! protocol servers; `exec` runs one execution through the same pools and prints the result.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use paddock_shared::exec::ExecutionRequest;
use paddock_shared::model::Language;
use paddock_shared::protocol::{VERSION, Welcome};
use paddock_worker::config::Config;
use paddock_worker::executor::Executor;
use paddock_worker::link;
use paddock_worker::replica::Replica;
use paddock_worker::server::{self, ServeOptions};
use paddock_worker::slots::setup;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "paddock-worker",
    about = "Paddock worker: warm nsjail slots running Python and TypeScript"
)]
struct Cli {
    /// Configuration file (TOML); every key has a default.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, global = true)]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the slot pools and serve the worker protocol.
    Serve(ServeArgs),
    /// Run one execution and print its result as JSON (exit 0 if completed, else 1).
    Exec(ExecArgs),
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Validate the configuration and the sandbox profiles, then exit.
    #[arg(long)]
    check_config: bool,
    /// Edge to dial: unix:PATH (e.g. unix:<edge-data-dir>/workers.sock), tls:HOST:PORT
    /// (the edge's `workers_listen`), or tcp:HOST:PORT (plain, only with the edge's
    /// `workers_tcp_insecure`).
    #[arg(long)]
    edge: Option<String>,
    /// PEM certificate(s) to trust for a tls: edge: its CA, or its own (self-signed)
    /// certificate such as <edge-data-dir>/tls/cert.pem. Default: the system roots.
    #[arg(long)]
    edge_ca: Option<PathBuf>,
    /// Name the edge's certificate must carry (also sent as SNI). Default: the host of
    /// --edge.
    #[arg(long)]
    edge_server_name: Option<String>,
    /// The edge's join token.
    #[arg(long, conflicts_with = "join_token_file")]
    join_token: Option<String>,
    /// A file holding the edge's join token (e.g. <edge-data-dir>/join.token).
    #[arg(long)]
    join_token_file: Option<PathBuf>,
    /// Worker data directory (sockets, the state replica).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Unix socket to serve on (default <data-dir>/worker.sock).
    #[arg(long)]
    listen_unix: Option<PathBuf>,
    /// TCP address to serve on as well.
    #[arg(long)]
    listen_tcp: Option<String>,
}

#[derive(Args, Debug)]
struct ExecArgs {
    /// Sandbox profile (tier): free, builder, pro, enterprise.
    #[arg(long, default_value = "free")]
    tier: String,
    /// python or typescript.
    #[arg(long, default_value = "python")]
    lang: String,
    /// The input_data document (JSON).
    #[arg(long)]
    input: Option<String>,
    /// The code to run.
    #[arg(long, conflicts_with = "file", required_unless_present = "file")]
    code: Option<String>,
    /// A file holding the code to run.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Shorter wall timeout in milliseconds.
    #[arg(long)]
    timeout_ms: Option<u64>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn init_logs(format: &str) {
    // PADDOCK_WORKER_LOG (like the edge's PADDOCK_EDGE_LOG), else RUST_LOG, else info.
    let filter = tracing_subscriber::EnvFilter::try_from_env("PADDOCK_WORKER_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

fn slot_init_path(cfg: &Config) -> anyhow::Result<PathBuf> {
    if let Some(p) = &cfg.slot_init_path {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe().context("locating the paddock-worker executable")?;
    Ok(exe
        .parent()
        .unwrap_or(Path::new("."))
        .join("paddock-slot-init"))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("paddock-worker: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let mut cfg = Config::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(f) = cli.log_format {
        cfg.log_format = f;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    match cli.command {
        Command::Serve(a) => {
            if let Some(d) = a.data_dir {
                cfg.data_dir = d;
            }
            cfg.listen_unix = a.listen_unix.or(cfg.listen_unix);
            cfg.listen_tcp = a.listen_tcp.or(cfg.listen_tcp);
            cfg.edge = a.edge.or(cfg.edge);
            cfg.join_token = a.join_token.or(cfg.join_token);
            cfg.join_token_file = a.join_token_file.or(cfg.join_token_file);
            cfg.edge_ca = a.edge_ca.or(cfg.edge_ca);
            cfg.edge_server_name = a.edge_server_name.or(cfg.edge_server_name);
            let problems = cfg.problems();
            if !problems.is_empty() {
                bail!("invalid configuration:\n{}", problems.join("\n"));
            }
            if let Some(edge) = &cfg.edge {
                let addr = link::EdgeAddr::parse(edge).map_err(anyhow::Error::msg)?;
                edge_tls(&cfg, &addr)?;
                if cfg.join_token.is_none() && cfg.join_token_file.is_none() {
                    bail!("--edge needs --join-token or --join-token-file");
                }
            }
            if a.check_config {
                let profiles = setup::load_profiles(&cfg)?;
                setup::pool_settings(&cfg, &profiles)?;
                println!(
                    "configuration and sandbox profiles ({}) are valid",
                    profiles.source
                );
                return Ok(std::process::ExitCode::SUCCESS);
            }
            init_logs(&cfg.log_format);
            rt.block_on(serve(cfg))
        }
        Command::Exec(a) => {
            init_logs(&cfg.log_format);
            if let Some(d) = a.data_dir {
                cfg.data_dir = d;
            }
            let language = Language::parse(&a.lang)
                .with_context(|| format!("--lang {}: use python or typescript", a.lang))?;
            let code = match (a.code, a.file) {
                (Some(c), _) => c,
                (None, Some(f)) => std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?,
                (None, None) => bail!("give --code or --file"),
            };
            // One execution: no warm slots, a fresh jail through the same pool code.
            cfg.pools.clear();
            cfg.default_pool_target = 0;
            let slot_init = slot_init_path(&cfg)?;
            let result = rt.block_on(async move {
                let pools = setup::start(&cfg, &slot_init)?;
                let req = ExecutionRequest {
                    execution_id: format!("exec-{}", std::process::id()),
                    namespace: String::new(),
                    profile: a.tier,
                    language,
                    code,
                    input_json: a.input.unwrap_or_else(|| "{}".into()),
                    timeout_ms: a.timeout_ms,
                };
                let r = pools.execute(req, CancellationToken::new()).await;
                pools.shutdown(Duration::from_secs(10)).await;
                anyhow::Ok(r)
            })?;
            println!("{}", serde_json::to_string_pretty(&result.to_structured())?);
            Ok(if result.is_error() {
                std::process::ExitCode::from(1)
            } else {
                std::process::ExitCode::SUCCESS
            })
        }
    }
}

async fn serve(cfg: Config) -> anyhow::Result<std::process::ExitCode> {
    let slot_init = slot_init_path(&cfg)?;
    let pools = Arc::new(setup::start(&cfg, &slot_init)?);
    let shutdown = CancellationToken::new();
    let opts = ServeOptions {
        worker_id: format!("worker-{}", std::process::id()),
        capacity: std::thread::available_parallelism().map_or(2, |n| n.get() as u32 * 2),
        profiles: setup::load_profiles(&cfg)?.tiers.keys().cloned().collect(),
        drain_timeout: Duration::from_millis(cfg.shutdown_grace_ms),
        ..ServeOptions::default()
    };
    let mut servers = tokio::task::JoinSet::new();
    let link = match &cfg.edge {
        Some(edge) => Some(start_link(&cfg, edge, &pools, &opts, shutdown.clone())?),
        None => None,
    };
    let unix = server::bind_unix(&cfg.unix_socket())?;
    tracing::info!(path = %cfg.unix_socket().display(), "listening (unix)");
    servers.spawn(server::serve_unix_listener(
        unix,
        pools.clone(),
        opts.clone(),
        shutdown.clone(),
    ));
    if let Some(addr) = &cfg.listen_tcp {
        let addr = addr
            .parse()
            .with_context(|| format!("listen_tcp: {addr}"))?;
        let tcp = server::bind_tcp(addr).await?;
        tracing::info!(addr = %tcp.local_addr()?, "listening (tcp)");
        servers.spawn(server::serve_tcp_listener(
            tcp,
            pools.clone(),
            opts.clone(),
            shutdown.clone(),
        ));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        Some(r) = servers.join_next() => tracing::error!(result = ?r, "a protocol server stopped"),
    }
    shutdown.cancel();
    let mut drained = true;
    while let Some(r) = servers.join_next().await {
        match r {
            Ok(Ok(report)) => drained &= report.drained_in_time,
            Ok(Err(e)) => tracing::error!(error = %e, "protocol server failed"),
            Err(e) => tracing::error!(error = %e, "protocol server task failed"),
        }
    }
    if let Some(link) = link {
        match link.await {
            Ok(d) => drained &= d,
            Err(e) => tracing::error!(error = %e, "edge link task failed"),
        }
    }
    let _ = std::fs::remove_file(cfg.unix_socket());
    let cleaned = pools
        .shutdown(Duration::from_millis(cfg.shutdown_grace_ms))
        .await;
    tracing::info!(
        drained_in_time = drained,
        slots_cleaned = cleaned,
        "worker stopped"
    );
    Ok(std::process::ExitCode::SUCCESS)
}

/// The TLS client of a `tls:` edge (`--edge-ca`, `--edge-server-name`); `None` for the
/// other transports, where those flags are an error. A plain `tcp:` edge is a warning.
fn edge_tls(cfg: &Config, addr: &link::EdgeAddr) -> anyhow::Result<Option<link::EdgeTls>> {
    match addr {
        link::EdgeAddr::Tls(_) => {
            let name = cfg
                .edge_server_name
                .clone()
                .or_else(|| addr.host().map(str::to_owned))
                .unwrap_or_default();
            Ok(Some(link::EdgeTls::new(cfg.edge_ca.as_deref(), &name)?))
        }
        _ if cfg.edge_ca.is_some() || cfg.edge_server_name.is_some() => {
            Err(link::EdgeTlsError::NotTls.into())
        }
        link::EdgeAddr::Tcp(_) => {
            tracing::warn!(edge = %addr, "dialing the edge over PLAIN TCP (no TLS): use tls:HOST:PORT unless the network is trusted");
            Ok(None)
        }
        link::EdgeAddr::Unix(_) => Ok(None),
    }
}

/// Opens the replica, makes it the pools' namespace source and spawns the edge link.
fn start_link(
    cfg: &Config,
    edge: &str,
    pools: &Arc<paddock_worker::slots::PoolSet>,
    opts: &ServeOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<bool>> {
    let addr = link::EdgeAddr::parse(edge).map_err(anyhow::Error::msg)?;
    let tls = edge_tls(cfg, &addr)?;
    let token = match (&cfg.join_token, &cfg.join_token_file) {
        (Some(t), _) => t.trim().to_owned(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("reading the join token file {}", f.display()))?
            .trim()
            .to_owned(),
        (None, None) => bail!("--edge needs --join-token or --join-token-file"),
    };
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let path = cfg.data_dir.join("replica");
    let replica = Arc::new(
        Replica::open(&path).with_context(|| format!("opening the replica {}", path.display()))?,
    );
    pools.set_namespace_source(replica.clone());
    tracing::info!(edge = %addr, applied_seq = replica.applied_seq(), "starting the edge link");
    let link_opts = link::LinkOptions {
        edge: addr,
        tls,
        join_token: token,
        welcome: Welcome {
            version: VERSION,
            worker_id: opts.worker_id.clone(),
            capacity: opts.capacity,
            max_in_flight: u32::try_from(opts.max_in_flight_per_conn).unwrap_or(u32::MAX),
            max_frame_len: u32::try_from(opts.max_frame_len).unwrap_or(u32::MAX),
            profiles: opts.profiles.clone(),
            languages: opts.languages.clone(),
        },
        state_wait: link::DEFAULT_STATE_WAIT,
        edge_silence: link::DEFAULT_EDGE_SILENCE,
        drain_timeout: opts.drain_timeout,
    };
    Ok(tokio::spawn(link::run(
        link_opts,
        replica,
        pools.clone(),
        shutdown,
    )))
}
