//! The pingora HTTP application: reads a request, routes it, enforces the body limit,
//! authenticates MCP requests, and hands them to rmcp, REST to `App::rest`, health to
//! itself. Replies are written here, errors rendered only by [`error_reply`].

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use serde_json::json;
use tower_service::Service as _;

use paddock_shared::ErrorCode;

use crate::app::{ApiError, Endpoint, Principal, RestRequest};
use crate::mcp::{CallCtx, McpService, RunTools, fast, to_tool};
use crate::quota::{self, Charge, Held};
use crate::route::{Health, Route, RunMode, route};
use crate::server::backend::Backend;
use crate::server::error::error_reply;
use crate::server::reply::{Body, Reply};

/// The SNI a TLS client sent, captured at handshake (see `server::SniCapture`).
#[derive(Debug, Clone)]
pub struct Sni(pub Option<String>);

/// The edge's HTTP application (one per process, shared by all listeners).
pub struct EdgeHttp {
    pub backend: Arc<dyn Backend>,
    pub mcp: McpService,
    /// Run-endpoint tools (issue 4 plugs workers in here).
    pub run: Arc<dyn RunTools>,
    /// Answer stateless legacy `tools/list` directly (see `mcp::fast`); off with sessions.
    pub fast_path: bool,
    /// Rendered create-endpoint tool lists (fast path only).
    pub create_tools: fast::CreateToolsCache,
    pub domain: String,
    pub max_body_bytes: u64,
}

struct Parts {
    method: http::Method,
    uri: http::Uri,
    path: String,
    query: Option<String>,
    headers: http::HeaderMap,
    sni: Option<String>,
    host: Option<String>,
}

fn parts_of(http: &ServerSession) -> Parts {
    let req = http.req_header();
    let sni = http
        .digest()
        .and_then(|d| d.ssl_digest.as_ref())
        .and_then(|s| s.extension.get::<Sni>())
        .and_then(|s| s.0.clone());
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri.authority().map(|a| a.to_string()));
    Parts {
        method: req.method.clone(),
        uri: req.uri.clone(),
        path: req.uri.path().to_owned(),
        query: req.uri.query().map(str::to_owned),
        headers: req.headers.clone(),
        sni,
        host,
    }
}

/// The API key from `Authorization: Bearer …` or `x-api-key`.
///
/// # Errors
/// `AUTHENTICATION_FAILED` when neither header carries a key.
pub fn api_key(headers: &http::HeaderMap) -> Result<&str, ApiError> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION) {
        let v = v.to_str().unwrap_or("").trim();
        let (scheme, key) = v.split_once(' ').unwrap_or((v, ""));
        if scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty() {
            return Ok(key.trim());
        }
        return Err(ApiError::new(
            ErrorCode::AuthenticationFailed,
            "the Authorization header must be `Bearer <api key>`",
        ));
    }
    if let Some(v) = headers.get("x-api-key") {
        let key = v.to_str().unwrap_or("").trim();
        if !key.is_empty() {
            return Ok(key);
        }
    }
    Err(ApiError::new(
        ErrorCode::AuthenticationFailed,
        "missing API key: send `Authorization: Bearer <api key>` or `x-api-key: <api key>`",
    ))
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("request body is over the limit of {limit} bytes; send a smaller request"),
    )
}

/// Reads and discards what is left of an oversized body, bounded in bytes and time, before the
/// 413 is sent and the connection closed: closing with unread bytes in the socket makes the
/// kernel reset the connection, and the client may lose the answer before reading it.
async fn drain_rest(http: &mut ServerSession) {
    const MAX_DRAIN_BYTES: u64 = 16 * 1024 * 1024;
    const MAX_DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);
    let _ = tokio::time::timeout(MAX_DRAIN_TIME, async {
        let mut seen = 0u64;
        while let Ok(Some(chunk)) = http.read_request_body().await {
            seen += chunk.len() as u64;
            if seen > MAX_DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

/// Reads the body, refusing a declared or streamed size over `limit`.
async fn read_body(
    http: &mut ServerSession,
    headers: &http::HeaderMap,
    limit: u64,
) -> Result<Bytes, ApiError> {
    if let Some(cl) = headers.get(http::header::CONTENT_LENGTH) {
        match cl.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(n) if n > limit => {
                drain_rest(http).await;
                return Err(too_large(limit));
            }
            Some(_) => {}
            None => {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    "Content-Length is not a number",
                ));
            }
        }
    }
    let mut buf = bytes::BytesMut::new();
    loop {
        match http.read_request_body().await {
            Ok(Some(chunk)) => {
                if (buf.len() + chunk.len()) as u64 > limit {
                    drain_rest(http).await;
                    return Err(too_large(limit));
                }
                if buf.is_empty() && http.is_body_done() {
                    return Ok(chunk);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(e) => {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    format!("cannot read the request body: {e}"),
                ));
            }
        }
    }
}

impl EdgeHttp {
    async fn handle(&self, http: &mut ServerSession, draining: bool) -> Reply {
        let p = parts_of(http);
        let route = match route(
            p.sni.as_deref(),
            p.host.as_deref(),
            &p.path,
            p.query.as_deref(),
            &self.domain,
        ) {
            Ok(r) => r,
            Err(e) => return closing(error_reply(&e.to_api_error(&self.domain))),
        };
        match route {
            Route::Health(h) => self.health(h, draining),
            Route::Rest => {
                let body = match read_body(http, &p.headers, self.max_body_bytes).await {
                    Ok(b) => b,
                    Err(e) => return closing(error_reply(&e)),
                };
                let headers = p
                    .headers
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                    .collect();
                let req = RestRequest {
                    method: p.method.as_str().to_owned(),
                    path: p.path.clone(),
                    query: p.query.clone(),
                    headers,
                    body: body.to_vec(),
                    client_addr: http.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip()),
                };
                let resp = self.backend.rest(req).await;
                let mut reply = Reply::json(resp.status, &resp.body);
                reply.headers.extend(
                    resp.headers
                        .into_iter()
                        .map(|(k, v)| (k.to_ascii_lowercase(), v)),
                );
                reply
            }
            Route::Mcp {
                endpoint,
                namespace,
                run_mode,
            } => match self.mcp(http, p, endpoint, namespace, run_mode).await {
                Ok(r) => r,
                Err(e) => error_reply(&e),
            },
        }
    }

    /// Admits what `body` costs for `p` on `endpoint` (executions on the run endpoint,
    /// mutating tools on the create endpoint; everything else is free).
    ///
    /// # Errors
    /// The 429 answer of the first limit that refuses (`QUOTA_EXCEEDED`, `RATE_LIMITED`,
    /// `CONCURRENCY_LIMITED`, with `usage`/`limit`/`tier` and `Retry-After`).
    fn admit(&self, p: &Principal, endpoint: Endpoint, body: &[u8]) -> Result<Held, ApiError> {
        if quota::is_batch(body) {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "JSON-RPC batches are not supported (MCP removed them in 2025-06-18): send one request per POST",
            ));
        }
        if self.backend.limiter().is_none() {
            return Ok(Held::default());
        }
        self.admit_charge(p, quota::charge(endpoint, body))
    }

    /// Admits `charge` for `p` (see [`EdgeHttp::admit`]).
    fn admit_charge(&self, p: &Principal, charge: Charge) -> Result<Held, ApiError> {
        let Some(limiter) = self.backend.limiter() else {
            return Ok(Held::default());
        };
        match charge {
            Charge::Free => Ok(Held::default()),
            c => limiter
                .admit_charge(&p.account_id, p.tier, c, quota::now_ms())
                .map_err(|r| {
                    tracing::debug!(account = %p.account_id, tier = %p.tier, reason = r.kind.as_str(), "request refused by a limit");
                    ApiError::from(r)
                }),
        }
    }

    fn health(&self, h: Health, draining: bool) -> Reply {
        match h {
            Health::Live => Reply::json(200, &json!({"status": "ok"})),
            Health::Ready if draining => error_reply(&ApiError::new(
                ErrorCode::NotReady,
                "the edge is shutting down; use another instance",
            )),
            Health::Ready => Reply::json(200, &json!({"status": "ready"})),
            Health::Status => Reply::json(
                200,
                &json!({
                    "status": if draining { "draining" } else { "ok" },
                    "version": env!("CARGO_PKG_VERSION"),
                    "committed_seq": self.backend.committed_seq(),
                }),
            ),
        }
    }

    async fn mcp(
        &self,
        http: &mut ServerSession,
        p: Parts,
        endpoint: Endpoint,
        namespace: String,
        run_mode: RunMode,
    ) -> Result<Reply, ApiError> {
        let body = match read_body(http, &p.headers, self.max_body_bytes).await {
            Ok(b) => b,
            Err(e) => return Ok(closing(error_reply(&e))),
        };
        let principal = self.backend.authenticate(api_key(&p.headers)?)?;
        self.backend.authorize(&principal, endpoint, &namespace)?;
        if self.fast_path
            && p.method == http::Method::POST
            && let Some(id) = fast::tools_list_id(&p.headers, &body)
        {
            let body = match endpoint {
                Endpoint::Create => {
                    let result = self.create_tools.get_or_render(&principal, &namespace, || {
                        let defs = self.backend.create_tools(&principal, &namespace);
                        defs.into_iter().map(to_tool).collect()
                    });
                    Some(fast::response_with_result(&id, &result))
                }
                Endpoint::Run => match self.run.list(&principal, &namespace, &run_mode).await {
                    Ok(defs) => Some(fast::tools_list_body(
                        id,
                        defs.into_iter().map(to_tool).collect(),
                    )),
                    Err(_) => None,
                },
            };
            if let Some(body) = body {
                return Ok(Reply {
                    status: 200,
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: Body::Full(Bytes::from(body)),
                    close: false,
                });
            }
        }
        if self.fast_path
            && endpoint == Endpoint::Run
            && p.method == http::Method::POST
            && let Some(call) = fast::tools_call(&p.uri, &p.headers, &body)
        {
            let ctx = CallCtx {
                principal,
                endpoint,
                namespace,
                run_mode,
            };
            return self.fast_call(http, ctx, call).await;
        }
        // Limits, before any work: a refused request is answered here (429) without a
        // disk write, rmcp or a worker; an admitted one holds its concurrency slots until
        // the reply is complete.
        let held = self.admit(&principal, endpoint, &body)?;
        let mut builder = http::Request::builder().method(p.method).uri(p.uri);
        if let Some(h) = builder.headers_mut() {
            *h = p.headers;
        }
        let mut req = builder
            .body(Full::new(body))
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("malformed request: {e}")))?;
        req.extensions_mut().insert(CallCtx {
            principal,
            endpoint,
            namespace,
            run_mode,
        });
        let call = self.mcp.clone().call(req);
        let resp = if endpoint == Endpoint::Run {
            // A client of the 2026-07-28 generation cancels a call by closing its stream:
            // dropping rmcp's future then cancels the request (its disconnect guard), the
            // worker kills the slot and the execution is recorded as canceled.
            tokio::pin!(call);
            tokio::select! {
                r = &mut call => r,
                gone = http.read_body_or_idle(true) => match gone {
                    Err(e) => {
                        tracing::debug!(error = %e, "client went away during a run call; canceling it");
                        return Ok(closing(error_reply(&ApiError::new(
                            ErrorCode::BadRequest,
                            "the client closed the request before its answer",
                        ))));
                    }
                    Ok(_) => call.await,
                },
            }
        } else {
            call.await
        };
        let resp = match resp {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let (parts, body) = resp.into_parts();
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let streaming = headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("text/event-stream"));
        let body = if streaming {
            if held.admissions().is_empty() {
                Body::Stream(body)
            } else {
                // The slots are held until the stream is written out (or dropped).
                Body::Stream(
                    body.map_frame(move |f| {
                        let _slots = &held;
                        f
                    })
                    .boxed(),
                )
            }
        } else {
            match body.collect().await {
                Ok(c) => Body::Full(c.to_bytes()),
                Err(never) => match never {},
            }
        };
        Ok(Reply {
            status: parts.status.as_u16(),
            headers,
            body,
            close: false,
        })
    }
}

impl EdgeHttp {
    /// A run-endpoint `tools/call` on the fast path (`mcp::fast::tools_call` said it may):
    /// the same limits, cancel registration and run logic as the rmcp path
    /// ([`crate::mcp::run_call`]), the same response bytes, without rmcp's per-request
    /// service and task. A client that goes away cancels the call, as on the rmcp path: the
    /// token fires, the call finishes in the background (the slot is killed, the
    /// execution recorded as canceled) and the connection is closed.
    async fn fast_call(
        &self,
        http: &mut ServerSession,
        ctx: CallCtx,
        call: fast::ToolCall,
    ) -> Result<Reply, ApiError> {
        let _held = self.admit_charge(&ctx.principal, Charge::Executions(1))?;
        let fast::ToolCall {
            id,
            key,
            name,
            arguments,
        } = call;
        let ct = tokio_util::sync::CancellationToken::new();
        let run = self.run.clone();
        let cancels = self.mcp.cancels().clone();
        let token = ct.clone();
        let mut running = Box::pin(async move {
            crate::mcp::run_call(&*run, &cancels, &ctx, key, &name, arguments, token).await
        });
        let out = tokio::select! {
            r = &mut running => r,
            gone = http.read_body_or_idle(true) => match gone {
                Err(e) => {
                    tracing::debug!(error = %e, "client went away during a run call; canceling it");
                    ct.cancel();
                    drop(tokio::spawn(running));
                    return Ok(closing(error_reply(&ApiError::new(
                        ErrorCode::BadRequest,
                        "the client closed the request before its answer",
                    ))));
                }
                Ok(_) => running.await,
            },
        };
        tracing::debug!(target: "paddock_edge::mcp::fast", method = "tools/call", "answered on the fast path");
        Ok(Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Body::Full(Bytes::from(fast::call_body(id, out))),
            close: false,
        })
    }
}

fn closing(mut r: Reply) -> Reply {
    r.close = true;
    r
}

async fn write_reply(http: &mut ServerSession, reply: Reply) -> pingora::Result<()> {
    let mut head = ResponseHeader::build(reply.status, Some(reply.headers.len() + 2))?;
    for (k, v) in reply.headers {
        if k == "content-length" || k == "transfer-encoding" || k == "connection" {
            continue;
        }
        head.append_header(k, v)?;
    }
    match reply.body {
        Body::Full(bytes) => {
            head.insert_header(http::header::CONTENT_LENGTH, bytes.len().to_string())?;
            http.write_response_header(Box::new(head)).await?;
            if !bytes.is_empty() {
                http.write_response_body(bytes, true).await?;
            }
        }
        Body::Stream(mut body) => {
            if !http.is_http2() {
                head.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
            }
            http.write_response_header(Box::new(head)).await?;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame;
                if let Ok(data) = frame.into_data()
                    && !data.is_empty()
                {
                    http.write_response_body(data, false).await?;
                }
            }
            http.write_response_body(Bytes::new(), true).await?;
        }
    }
    Ok(())
}

#[async_trait]
impl HttpServerApp for EdgeHttp {
    async fn process_new_http(
        self: &Arc<Self>,
        mut http: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match http.read_request().await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read a request");
                return None;
            }
        }
        let draining = *shutdown.borrow();
        http.set_keepalive(if draining { None } else { Some(60) });
        let mut timer = crate::metrics::RequestTimer::start(http.req_header(), &self.domain);
        let reply = self.handle(&mut http, draining).await;
        timer.replied(&reply);
        if reply.close {
            http.set_keepalive(None);
        }
        let written = write_reply(&mut http, reply).await;
        timer.finish();
        if let Err(e) = written {
            tracing::debug!(error = %e, "cannot write a reply");
            return None;
        }
        let persistent = HttpPersistentSettings::for_session(&http);
        match http.finish().await {
            Ok(stream) => stream.map(|s| ReusedHttpStream::from_reusable_stream(s, persistent)),
            Err(e) => {
                tracing::debug!(error = %e, "cannot finish a request");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_from_either_header() {
        let mut h = http::HeaderMap::new();
        assert_eq!(
            api_key(&h).unwrap_err().code,
            ErrorCode::AuthenticationFailed
        );
        h.insert("x-api-key", "pk_1".parse().expect("hv"));
        assert_eq!(api_key(&h), Ok("pk_1"));
        h.insert(
            http::header::AUTHORIZATION,
            "bearer pk_2".parse().expect("hv"),
        );
        assert_eq!(api_key(&h), Ok("pk_2"));
        h.insert(
            http::header::AUTHORIZATION,
            "Basic xyz".parse().expect("hv"),
        );
        let e = api_key(&h).unwrap_err();
        assert!(e.message.contains("Bearer"), "{}", e.message);
    }
}
