//! The admin listener: plain HTTP/1.1 on its own address (`admin_listen`, default
//! `127.0.0.1:9464`, never the public listener), on its own thread and runtime so a slow
//! scrape never competes with pingora's request threads. Serves `GET /metrics` (the
//! Prometheus/OpenMetrics text of [`crate::metrics::render`]) and `GET /` (a pointer to
//! it); anything else is 404. No auth: bind it to loopback or a private network.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use crate::metrics::{CONTENT_TYPE, Sources, render};

/// Why the admin listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot listen on {addr} (key `admin_listen`): {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot start the admin listener thread: {0}")]
    Thread(std::io::Error),
}

/// A running admin listener; it stops when the shutdown token fires.
#[derive(Debug)]
pub struct AdminServer {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    thread: std::thread::JoinHandle<()>,
}

impl AdminServer {
    /// Binds `addr` now (so a taken port is reported at once) and serves on a thread of
    /// its own until `shutdown` fires.
    ///
    /// # Errors
    /// [`AdminError`] when the address cannot be bound or the thread not started.
    pub fn start(
        addr: &str,
        sources: Sources,
        shutdown: CancellationToken,
    ) -> Result<AdminServer, AdminError> {
        let bind_err = |source| AdminError::Bind {
            addr: addr.to_owned(),
            source,
        };
        let listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(AdminError::Thread)?;
        let thread = std::thread::Builder::new()
            .name("paddock-admin".to_owned())
            .spawn(move || rt.block_on(serve(listener, sources, shutdown)))
            .map_err(AdminError::Thread)?;
        Ok(AdminServer {
            addr: local,
            thread,
        })
    }

    /// Waits for the listener thread to end (after the shutdown token fired).
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

async fn serve(listener: std::net::TcpListener, sources: Sources, shutdown: CancellationToken) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "admin listener cannot run");
            return;
        }
    };
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting an admin connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let sources = sources.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let sources = sources.clone();
                async move { Ok::<_, Infallible>(answer(&req, &sources).await) }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(error = %e, "admin connection ended with an error");
                },
                () = stop.cancelled() => {}
            }
        });
    }
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

async fn answer(req: &Request<Incoming>, sources: &Sources) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            text(StatusCode::OK, CONTENT_TYPE, render(sources).await)
        }
        (&Method::GET, "/") => text(
            StatusCode::OK,
            PLAIN,
            "paddock-edge admin listener: GET /metrics (OpenMetrics text; see docs/operations.md)\n"
                .to_owned(),
        ),
        (_, "/metrics" | "/") => text(
            StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            "use GET\n".to_owned(),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            PLAIN,
            "not found: the admin listener serves GET /metrics\n".to_owned(),
        ),
    }
}
