//! Serving: checks the listeners, prepares TLS (SNI resolver, SNI capture for the 421
//! check), builds the pingora server with the [`http::EdgeHttp`] app, and runs it until
//! SIGTERM (graceful: stop accepting, drain for the configured grace period) or SIGINT.

pub mod admin;
pub mod app_backend;
pub mod backend;
pub mod error;
pub mod http;
pub mod reply;

use std::any::Any;
use std::net::TcpListener;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::listeners::TlsAccept;
use pingora::listeners::tls::TlsSettings;
use pingora::protocols::tls::TlsRef;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};

use crate::config::EdgeConfig;
use crate::mcp::RunTools;
use crate::tls::{SniResolver, TlsError, dev_cert};
use backend::Backend;

/// Why serving could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr} (key `{key}`): {source}")]
    Bind {
        key: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
}

/// Records the TLS server name in the connection digest, for the SNI/Host check.
struct SniCapture;

#[async_trait]
impl TlsAccept for SniCapture {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        Some(Arc::new(http::Sni(tls.server_name().map(str::to_owned))))
    }
}

/// Fails early (pingora would panic a service thread on a taken port and keep running).
///
/// # Errors
/// [`ServeError::Bind`] naming the key and address.
pub fn check_listeners(cfg: &EdgeConfig) -> Result<(), ServeError> {
    let mut addrs = vec![("listen", cfg.listen.clone())];
    if !cfg.http_listen.is_empty() {
        addrs.push(("http_listen", cfg.http_listen.clone()));
    }
    for (key, addr) in addrs {
        TcpListener::bind(&addr).map_err(|source| ServeError::Bind {
            key,
            addr: addr.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Loads the operator certificates, or the development certificate of the data dir.
///
/// # Errors
/// [`TlsError`] naming the file.
pub fn resolver(cfg: &EdgeConfig) -> Result<SniResolver, TlsError> {
    if cfg.tls_certs.is_empty() {
        SniResolver::load(&[dev_cert(&cfg.data_dir, &cfg.domain)?])
    } else {
        SniResolver::load(&cfg.tls_certs)
    }
}

/// A prepared server: listeners checked, TLS loaded. [`Prepared::run`] blocks.
pub struct Prepared {
    server: Server,
}

/// Checks listeners and TLS and builds the pingora server.
///
/// # Errors
/// [`ServeError`] for a taken port or bad TLS material.
pub fn prepare(
    cfg: &EdgeConfig,
    backend: Arc<dyn Backend>,
    run: Arc<dyn RunTools>,
) -> Result<Prepared, ServeError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let resolver = resolver(cfg)?;
    check_listeners(cfg)?;

    let conf = ServerConf {
        threads: cfg.threads,
        grace_period_seconds: Some(cfg.grace_period_secs),
        graceful_shutdown_timeout_seconds: Some(cfg.grace_period_secs),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let app = http::EdgeHttp {
        mcp: crate::mcp::service(backend.clone(), run.clone(), cfg.mcp_sessions),
        run,
        fast_path: !cfg.mcp_sessions,
        create_tools: crate::mcp::fast::CreateToolsCache::default(),
        backend,
        domain: cfg.domain.to_ascii_lowercase(),
        max_body_bytes: cfg.max_body_bytes,
    };
    let mut service = pingora::services::listening::Service::new("paddock-edge".to_owned(), app);
    let mut tls = TlsSettings::with_callbacks(Box::new(SniCapture)).map_err(|e| {
        ServeError::Tls(TlsError::Generate(format!(
            "cannot set up the TLS listener: {e}"
        )))
    })?;
    tls.set_cert_resolver(Arc::new(resolver));
    // ALPN h2 and http/1.1: HTTP/2 clients multiplex; the SNI/Host check answers 421
    // when a client coalesces a connection onto another host.
    tls.enable_h2();
    service.add_tls_with_settings(&cfg.listen, None, tls);
    if !cfg.http_listen.is_empty() {
        service.add_tcp(&cfg.http_listen);
    }
    server.add_service(service);
    Ok(Prepared { server })
}

impl Prepared {
    /// Serves until SIGTERM (graceful drain) or SIGINT (fast), then returns.
    pub fn run(self) {
        self.server.run(RunArgs::default());
    }
}
