//! `paddock-edge`: the front door (TLS, routing, auth, MCP servers, control state).
//!
//! `paddock-edge serve [--config FILE] [--data-dir DIR] [--listen ADDR] [--domain DOMAIN]
//! [--http-listen ADDR] [--admin-listen ADDR|off] [--log-format text|json] [--check-config]`
//! `paddock-edge bench [SCENARIO] --url URL …`: the load generator ([`paddock_edge::loadgen`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use paddock_edge::config::{EdgeConfig, Overrides};
use paddock_edge::run::{RunConfig, RunTools};
use paddock_edge::server;
use paddock_edge::workers::{HubOptions, WorkerHub};

/// mimalloc: the request path allocates many small JSON values; glibc malloc showed up
/// as a third of the CPU time of tools/list under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "paddock-edge",
    version,
    about = "Paddock edge: TLS, routing, auth, MCP, control state"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve MCP and REST over TLS until SIGTERM (graceful) or SIGINT.
    Serve(ServeArgs),
    /// Load-test one MCP endpoint (tools/list, execute, a tool call or a mix); see `bench --help`.
    Bench(Box<paddock_edge::loadgen::BenchArgs>),
    /// Offline administration (run with the edge stopped).
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Rewrap every stored data key under a new key-encryption key, atomically. The
    /// current KEK comes from the configuration (`kek_file`, PADDOCK_EDGE_KEK_FILE or
    /// PADDOCK_EDGE_KEK); afterwards configure the new one.
    RotateKek(RotateKekArgs),
}

#[derive(clap::Args, Debug)]
struct RotateKekArgs {
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (overrides `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// File with the new KEK (64 hex characters).
    #[arg(long)]
    new_kek_file: PathBuf,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// TOML configuration file (every key has a default).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (overrides `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// TLS listener address (overrides `listen`).
    #[arg(long)]
    listen: Option<String>,
    /// Base domain (overrides `domain`).
    #[arg(long)]
    domain: Option<String>,
    /// Plain-HTTP listener address (overrides `http_listen`; off by default).
    #[arg(long)]
    http_listen: Option<String>,
    /// `text` or `json` (overrides `log_format`).
    #[arg(long)]
    log_format: Option<String>,
    /// Addresses/networks remote MCP servers may be in although not public, e.g.
    /// `127.0.0.1,10.0.0.0/8` (added to `allow_private_mcp_hosts`).
    #[arg(long)]
    allow_private_mcp_hosts: Option<String>,
    /// Admin listener for `GET /metrics`, or `off` (overrides `admin_listen`).
    #[arg(long)]
    admin_listen: Option<String>,
    /// TCP address for workers on other hosts, TLS with the edge's certificate
    /// (overrides `workers_listen`; off by default — local workers use the Unix socket).
    #[arg(long)]
    workers_listen: Option<String>,
    /// Serve `workers_listen` as plain TCP without TLS (trusted networks only).
    #[arg(long)]
    workers_tcp_insecure: bool,
    /// Validate the configuration and TLS material, then exit.
    #[arg(long)]
    check_config: bool,
}

/// `paddock-edge admin rotate-kek`: exit 0 when every value moved, 2 for configuration
/// problems, 1 when the store refused (nothing changed then).
fn rotate_kek(args: &RotateKekArgs) -> ExitCode {
    let overrides = Overrides {
        data_dir: args.data_dir.clone(),
        ..Overrides::default()
    };
    let cfg = match EdgeConfig::load(args.config.as_deref(), std::env::vars(), &overrides) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("paddock-edge: {e}");
            return ExitCode::from(2);
        }
    };
    let old = match cfg.kek() {
        Ok(Some(k)) => k,
        Ok(None) => {
            eprintln!(
                "paddock-edge: rotate-kek: {}",
                paddock_edge::secrets::SecretError::NoKek
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("paddock-edge: rotate-kek: current KEK: {e}");
            return ExitCode::from(2);
        }
    };
    let new = match paddock_edge::secrets::Kek::from_file(&args.new_kek_file) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("paddock-edge: rotate-kek: new KEK: {e}");
            return ExitCode::from(2);
        }
    };
    let state = cfg.data_dir.join(paddock_edge::app::STATE_DIR);
    let store = match paddock_edge::store::Store::open(&state) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "paddock-edge: rotate-kek: cannot open {} (stop the edge first): {e}",
                state.display()
            );
            return ExitCode::from(1);
        }
    };
    match store.rotate_kek(&old, &new) {
        Ok(n) => {
            println!(
                "rewrapped {n} data keys from {} to {}; now configure kek_file = {} (or PADDOCK_EDGE_KEK_FILE)",
                old.id(),
                new.id(),
                args.new_kek_file.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("paddock-edge: rotate-kek: nothing changed: {e}");
            ExitCode::from(1)
        }
    }
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PADDOCK_EDGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Serve(args) => args,
        Command::Bench(args) => return paddock_edge::loadgen::main(*args),
        Command::Admin(AdminCommand::RotateKek(args)) => return rotate_kek(&args),
    };
    let overrides = Overrides {
        data_dir: args.data_dir,
        listen: args.listen,
        domain: args.domain,
        http_listen: args.http_listen,
        log_format: args.log_format,
        allow_private_mcp_hosts: args.allow_private_mcp_hosts,
        admin_listen: args.admin_listen,
        workers_listen: args.workers_listen,
        workers_tcp_insecure: args.workers_tcp_insecure,
    };
    let cfg = match EdgeConfig::load(args.config.as_deref(), std::env::vars(), &overrides) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("paddock-edge: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        if !cfg.tls_certs.is_empty()
            && let Err(e) = server::resolver(&cfg)
        {
            eprintln!("paddock-edge: TLS: {e}");
            return ExitCode::from(2);
        }
        println!(
            "configuration OK: listen {} domain {} data_dir {}",
            cfg.listen,
            cfg.domain,
            cfg.data_dir.display()
        );
        return ExitCode::SUCCESS;
    }
    init_logs(&cfg.log_format);
    match serve(&cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("paddock-edge: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn serve(cfg: &EdgeConfig) -> anyhow::Result<()> {
    // Listener and TLS problems stop start-up before anything else happens.
    server::check_listeners(cfg)?;
    server::resolver(cfg)?;
    let (app, admin_key) = server::app_backend::open(cfg)
        .map_err(|e| anyhow::anyhow!("cannot open the control plane: {e}"))?;
    if let Some(key) = admin_key {
        println!(
            "admin API key (shown once; also in {}): {key}",
            cfg.data_dir.join("admin.key").display()
        );
    }
    let backend: Arc<dyn server::backend::Backend> = Arc::new(app.clone());
    // The worker link (issue 4) runs on its own runtime beside pingora's; the run
    // endpoint's tools dispatch through it.
    let link_shutdown = tokio_util::sync::CancellationToken::new();
    let (dispatcher, _link) = WorkerHub::start_background(
        &cfg.data_dir,
        app.clone(),
        workers_hub_options(cfg, link_shutdown.clone())?,
    )?;
    let admin = start_admin(cfg, &dispatcher, &app, &link_shutdown)?;
    let run = RunTools::new(app.clone(), Arc::new(dispatcher), &RunConfig::default())?;
    let prepared = server::prepare(cfg, backend, Arc::new(run))?;
    let port = cfg.listen_addr().map(|a| a.port()).unwrap_or(8443);
    println!(
        "paddock-edge listening on https://{} — create: https://{{ns}}.create.{d}:{port}/mcp or https://{d}:{port}/mcp/create/{{ns}}",
        cfg.listen,
        d = cfg.domain
    );
    tracing::info!(listen = %cfg.listen, http_listen = %cfg.http_listen, domain = %cfg.domain, "serving");
    prepared.run();
    link_shutdown.cancel();
    if let Some(a) = admin {
        a.join();
    }
    tracing::info!("listeners closed; flushing control state");
    server::app_backend::close(&app);
    Ok(())
}

/// The worker link's options: the TCP listener of `workers_listen` serves TLS with
/// `workers_tls_cert`/`workers_tls_key`, else the edge's own certificates, unless
/// `workers_tcp_insecure` opts out.
fn workers_hub_options(
    cfg: &EdgeConfig,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<HubOptions> {
    let tcp = cfg.workers_listen_addr();
    let tls = match tcp {
        Some(_) if !cfg.workers_tcp_insecure => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let resolver = match (&cfg.workers_tls_cert, &cfg.workers_tls_key) {
                (Some(cert), Some(key)) => {
                    paddock_edge::tls::SniResolver::load(&[paddock_edge::config::CertConfig {
                        cert: cert.clone(),
                        key: key.clone(),
                    }])
                    .map_err(|e| anyhow::anyhow!("workers_tls_cert/workers_tls_key: {e}"))?
                }
                _ => server::resolver(cfg)?,
            };
            Some(paddock_edge::tls::workers_server_config(resolver)?)
        }
        _ => None,
    };
    Ok(HubOptions {
        tcp,
        tls,
        tcp_insecure: cfg.workers_tcp_insecure,
        shutdown,
        ..HubOptions::default()
    })
}

/// Starts the admin (metrics) listener unless it is `off`. The unset default address is
/// best effort (a taken port is a warning); a configured one must bind.
fn start_admin(
    cfg: &EdgeConfig,
    dispatcher: &paddock_edge::workers::Dispatcher,
    app: &paddock_edge::app::App,
    shutdown: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<Option<server::admin::AdminServer>> {
    let Some((addr, required)) = cfg.admin_listener() else {
        tracing::info!("admin listener off");
        return Ok(None);
    };
    let sources = paddock_edge::metrics::Sources {
        dispatcher: dispatcher.clone(),
        app: app.clone(),
    };
    match server::admin::AdminServer::start(addr, sources, shutdown.clone()) {
        Ok(a) => {
            tracing::info!(addr = %a.addr, "admin listener: GET /metrics");
            Ok(Some(a))
        }
        Err(e) if !required => {
            tracing::warn!(error = %e, "admin listener not started (set admin_listen to another address, or off)");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}
