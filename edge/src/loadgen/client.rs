//! The HTTP side of the load generator: one keep-alive client bound to the one target
//! (no redirects, no proxies), MCP session set-up, and the classification of each answer
//! into ok or an error code.

use std::net::{Ipv4Addr, SocketAddr};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::options::{HttpVersion, Plan, Trust};

/// Protocol version the generator speaks.
pub const PROTOCOL_VERSION: &str = "2025-06-18";
const SESSION_HEADER: &str = "mcp-session-id";

/// What one request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// HTTP 2xx with a JSON-RPC result that is not a tool error.
    Ok,
    /// Anything else.
    Error {
        /// HTTP status, if an answer came.
        status: Option<u16>,
        /// `code` of an error body, `error.type` of an execution, `JSONRPC_<n>`,
        /// `HTTP_<status>`, `TIMEOUT`, `CONNECT` or `TRANSPORT`.
        code: String,
    },
}

/// A client problem before any load is sent.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The CA file could not be used.
    #[error("--cacert {path}: {message}")]
    CaCert {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The API key cannot be a header value.
    #[error("--api-key: not a valid header value")]
    ApiKey,
    /// reqwest refused the configuration.
    #[error("cannot build the HTTP client: {0}")]
    Build(reqwest::Error),
    /// Session initialisation failed.
    #[error("session initialize failed: {0}")]
    Session(String),
}

/// Builds the one client for the run.
///
/// # Errors
/// An unreadable or empty CA file, a key that is not a header value, a client build error.
pub fn build(plan: &Plan) -> Result<reqwest::Client, ClientError> {
    // reqwest is built without a default crypto provider; the edge uses ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut headers = HeaderMap::new();
    let auth = HeaderValue::from_str(&format!("Bearer {}", plan.api_key))
        .map_err(|_| ClientError::ApiKey)?;
    headers.insert(AUTHORIZATION, auth);
    headers.insert(
        ACCEPT,
        HeaderValue::from_static("application/json, text/event-stream"),
    );
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        "mcp-protocol-version",
        HeaderValue::from_static(PROTOCOL_VERSION),
    );
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .referer(false)
        .timeout(plan.timeout)
        .tcp_nodelay(true)
        .pool_max_idle_per_host(plan.concurrency)
        .user_agent(concat!("paddock-bench/", env!("CARGO_PKG_VERSION")))
        .default_headers(headers);
    match &plan.trust {
        Trust::System => {}
        Trust::Insecure => b = b.tls_danger_accept_invalid_certs(true),
        Trust::CaCert(path) => {
            let ca = |message: String| ClientError::CaCert {
                path: path.display().to_string(),
                message,
            };
            let pem = std::fs::read(path).map_err(|e| ca(e.to_string()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ca(format!("not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(ca("no certificate in the file".into()));
            }
            b = b.tls_certs_only(certs);
        }
    }
    match plan.http {
        HttpVersion::Auto => {}
        HttpVersion::Http1 => b = b.http1_only(),
        HttpVersion::Http2 => b = b.http2_prior_knowledge(),
    }
    // `*.localhost` is loopback by definition (RFC 6761); the system resolver may not know
    // the subdomain form's names.
    if let Some(host) = plan.url.host_str()
        && host.ends_with(".localhost")
    {
        let port = plan.url.port_or_known_default().unwrap_or(443);
        b = b.resolve(host, SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    b.build().map_err(ClientError::Build)
}

/// Opens an MCP session (initialize, then notifications/initialized) and returns its id.
///
/// # Errors
/// No answer, a non-2xx answer, or no `Mcp-Session-Id` in it.
pub async fn open_session(client: &reqwest::Client, plan: &Plan) -> Result<String, ClientError> {
    let init = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "paddock-bench", "version": env!("CARGO_PKG_VERSION")}
        }
    });
    let r = client
        .post(plan.url.clone())
        .body(init.to_string())
        .send()
        .await
        .map_err(|e| ClientError::Session(e.to_string()))?;
    let status = r.status();
    let sid = r
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = r.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(ClientError::Session(format!(
            "HTTP {status}: {}",
            body.chars().take(300).collect::<String>()
        )));
    }
    let Some(sid) = sid else {
        return Err(ClientError::Session(
            "the server answered without Mcp-Session-Id (a stateless deployment?); run without --session".into(),
        ));
    };
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let r = client
        .post(plan.url.clone())
        .header(SESSION_HEADER, &sid)
        .body(note.to_string())
        .send()
        .await
        .map_err(|e| ClientError::Session(e.to_string()))?;
    if !r.status().is_success() {
        return Err(ClientError::Session(format!(
            "notifications/initialized: HTTP {}",
            r.status()
        )));
    }
    Ok(sid)
}

/// Ends a session (best effort).
pub async fn close_session(client: &reqwest::Client, plan: &Plan, sid: &str) {
    let _ = client
        .delete(plan.url.clone())
        .header(SESSION_HEADER, sid)
        .send()
        .await;
}

/// Sends one body and classifies the answer; the HTTP version is returned for the report.
pub async fn send(
    client: &reqwest::Client,
    plan: &Plan,
    session: Option<&str>,
    body: Vec<u8>,
) -> (Outcome, Option<reqwest::Version>) {
    let mut req = client.post(plan.url.clone()).body(body);
    if let Some(sid) = session {
        req = req.header(SESSION_HEADER, sid);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return (transport_error(&e), None),
    };
    let version = resp.version();
    let status = resp.status().as_u16();
    let sse = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return (transport_error(&e), Some(version)),
    };
    (classify(status, sse, &bytes), Some(version))
}

fn transport_error(e: &reqwest::Error) -> Outcome {
    let code = if e.is_timeout() {
        "TIMEOUT"
    } else if e.is_connect() {
        "CONNECT"
    } else {
        "TRANSPORT"
    };
    Outcome::Error {
        status: None,
        code: code.into(),
    }
}

/// The parts of a JSON-RPC answer the classification needs; everything else is skipped
/// without building values (tools/list bodies are several KiB each).
#[derive(serde::Deserialize)]
struct Msg {
    error: Option<RpcError>,
    result: Option<ResultHead>,
}

#[derive(serde::Deserialize)]
struct RpcError {
    code: Option<i64>,
}

#[derive(serde::Deserialize)]
struct ResultHead {
    #[serde(rename = "isError")]
    is_error: Option<bool>,
    #[serde(rename = "structuredContent")]
    structured: Option<StructuredHead>,
}

#[derive(serde::Deserialize)]
struct StructuredHead {
    code: Option<Value>,
    error: Option<Value>,
}

/// The JSON-RPC message of a body: plain JSON, or the last `data:` event of an SSE body
/// that carries a result or an error.
fn message(sse: bool, body: &[u8]) -> Option<Msg> {
    if !sse {
        return serde_json::from_slice(body).ok();
    }
    let text = std::str::from_utf8(body).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Msg>(d.trim()).ok())
        .find(|m| m.result.is_some() || m.error.is_some())
}

/// Maps one HTTP answer to an [`Outcome`].
pub fn classify(status: u16, sse: bool, body: &[u8]) -> Outcome {
    let err = |code: String| Outcome::Error {
        status: Some(status),
        code,
    };
    if !(200..300).contains(&status) {
        if (300..400).contains(&status) {
            return err("REDIRECT_REFUSED".into());
        }
        let code = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("code").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| format!("HTTP_{status}"));
        return err(code);
    }
    let Some(msg) = message(sse, body) else {
        return err("BAD_RESPONSE".into());
    };
    if let Some(e) = msg.error {
        return err(format!("JSONRPC_{}", e.code.unwrap_or(0)));
    }
    let Some(result) = msg.result else {
        return err("BAD_RESPONSE".into());
    };
    if result.is_error == Some(true) {
        let sc = result.structured;
        let kind = sc
            .as_ref()
            .and_then(|s| s.error.as_ref())
            .and_then(|e| e.get("type"))
            .and_then(Value::as_str);
        let code = sc
            .as_ref()
            .and_then(|s| s.code.as_ref())
            .and_then(Value::as_str);
        return err(kind.or(code).unwrap_or("TOOL_ERROR").to_owned());
    }
    Outcome::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(o: Outcome) -> String {
        match o {
            Outcome::Ok => "ok".into(),
            Outcome::Error { code, .. } => code,
        }
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(
            code(classify(200, false, br#"{"result":{"tools":[]}}"#)),
            "ok"
        );
        assert_eq!(
            code(classify(429, false, br#"{"code":"QUOTA_EXCEEDED"}"#)),
            "QUOTA_EXCEEDED"
        );
        assert_eq!(code(classify(502, false, b"oops")), "HTTP_502");
        assert_eq!(code(classify(301, false, b"")), "REDIRECT_REFUSED");
        assert_eq!(
            code(classify(200, false, br#"{"error":{"code":-32602}}"#)),
            "JSONRPC_-32602"
        );
        let exec = br#"{"result":{"isError":true,"structuredContent":{"status":"timeout","error":{"type":"TIMEOUT"}}}}"#;
        assert_eq!(code(classify(200, false, exec)), "TIMEOUT");
        let tool = br#"{"result":{"isError":true,"structuredContent":{"code":"INVALID_NAME"}}}"#;
        assert_eq!(code(classify(200, false, tool)), "INVALID_NAME");
        let sse = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n";
        assert_eq!(code(classify(200, true, sse)), "ok");
        assert_eq!(code(classify(200, false, b"<html>")), "BAD_RESPONSE");
        assert_eq!(code(classify(200, false, b"{}")), "BAD_RESPONSE");
        let ok =
            br#"{"result":{"isError":false,"structuredContent":{"code":{"x":1},"error":null}}}"#;
        assert_eq!(code(classify(200, false, ok)), "ok");
        let bare = br#"{"result":{"isError":true}}"#;
        assert_eq!(code(classify(200, false, bare)), "TOOL_ERROR");
    }
}
