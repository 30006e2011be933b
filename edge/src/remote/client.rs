//! Connecting to a remote MCP server with the rmcp client: credentials opened in memory
//! for the connection only, the URL checked by the SSRF guard and the connection pinned to
//! the checked address, no redirects, no proxies. Every message that leaves this module
//! goes through a [`Sanitizer`] that removes the URL, token and header values.

use std::collections::HashMap;
use std::time::Duration;

use paddock_shared::ErrorCode;
use rmcp::ServiceExt;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use zeroize::Zeroizing;

use super::RemoteCallError;
use super::guard::{self, AllowList};
use super::model::{McpServerConfig, Transport};
use crate::secrets::{Kek, server_context};

/// A connected rmcp client.
pub type Client = RunningService<RoleClient, ()>;

/// Connection set-up limit (TCP + TLS + MCP handshake).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Removes secrets from text that may quote them (library error messages).
#[derive(Default)]
pub struct Sanitizer {
    secrets: Vec<Zeroizing<String>>,
}

impl Sanitizer {
    fn add(&mut self, s: &str) {
        if s.len() >= 4 {
            self.secrets.push(Zeroizing::new(s.to_owned()));
        }
    }

    /// `text` with every known secret replaced by `[redacted]`.
    pub fn clean(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "[redacted]");
            }
        }
        out
    }
}

/// The opened credentials of a server, zeroed on drop.
pub struct Opened {
    pub url: Zeroizing<String>,
    pub token: Option<Zeroizing<String>>,
    pub headers: Vec<(String, Zeroizing<String>)>,
}

/// Opens the sealed fields of `cfg`.
///
/// # Errors
/// `INTERNAL` (sanitized) when a value does not open with the configured KEK.
pub fn open_credentials(cfg: &McpServerConfig, kek: &Kek) -> Result<Opened, RemoteCallError> {
    let ctx = |f: &str| server_context(&cfg.namespace, &cfg.name, f);
    let fail = |e: crate::secrets::SecretError| {
        tracing::error!(server = %cfg.name, namespace = %cfg.namespace, error = %e, "cannot open MCP server credentials");
        RemoteCallError::new(
            ErrorCode::Internal,
            format!(
                "the stored credentials of MCP server '{}' cannot be decrypted ({e})",
                cfg.name
            ),
        )
    };
    let url = kek.open_string(&ctx("url"), &cfg.url).map_err(fail)?;
    let token = match &cfg.auth_token {
        Some(t) => Some(kek.open_string(&ctx("auth_token"), t).map_err(fail)?),
        None => None,
    };
    let mut headers = Vec::new();
    for (name, v) in &cfg.headers {
        headers.push((
            name.clone(),
            kek.open_string(&ctx(&format!("header/{name}")), v)
                .map_err(fail)?,
        ));
    }
    Ok(Opened {
        url,
        token,
        headers,
    })
}

impl Opened {
    /// A sanitizer for these credentials.
    pub fn sanitizer(&self) -> Sanitizer {
        let mut s = Sanitizer::default();
        match reqwest::Url::parse(&self.url) {
            // The parts of a URL that can carry credentials; the rest is shown anyway.
            Ok(u) => {
                s.add(u.username());
                if let Some(p) = u.password() {
                    s.add(p);
                }
                if let Some(q) = u.query() {
                    s.add(q);
                }
                if let Some(f) = u.fragment() {
                    s.add(f);
                }
            }
            Err(_) => s.add(&self.url),
        }
        if let Some(t) = &self.token {
            s.add(t);
        }
        for (_, v) in &self.headers {
            s.add(v);
        }
        s
    }
}

/// Connects and initializes an MCP client session to the server.
///
/// # Errors
/// `HOST_NOT_ALLOWED` (SSRF guard), `MCP_SERVER_UNAVAILABLE` (cannot connect or
/// initialize, sanitized), `MCP_SERVER_TIMEOUT` (set-up took over [`CONNECT_TIMEOUT`]).
pub async fn connect(
    cfg: &McpServerConfig,
    kek: &Kek,
    allow: &AllowList,
) -> Result<Client, RemoteCallError> {
    let creds = open_credentials(cfg, kek)?;
    let clean = creds.sanitizer();
    let target = guard::parse_url(&creds.url)?;
    let addr = guard::resolve_checked(&target, allow).await?;
    let unavailable = |what: &str, detail: String| {
        RemoteCallError::new(
            ErrorCode::McpServerUnavailable,
            clean.clean(&format!(
                "cannot {what} MCP server '{}' at {}: {detail}",
                cfg.name, cfg.url_display
            )),
        )
    };
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &creds.headers {
        let (Ok(n), Ok(mut v)) = (
            reqwest::header::HeaderName::from_bytes(name.as_bytes()),
            reqwest::header::HeaderValue::from_str(value),
        ) else {
            return Err(RemoteCallError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "header '{name}' of MCP server '{}' is not a valid HTTP header",
                    cfg.name
                ),
            ));
        };
        v.set_sensitive(true);
        headers.insert(n, v);
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .default_headers(headers.clone());
    if target.host.parse::<std::net::IpAddr>().is_err() {
        // Pin the name to the address the guard checked (no second DNS answer).
        builder = builder.resolve(&target.host, addr);
    }
    let http = builder
        .build()
        .map_err(|e| unavailable("set up a client for", e.to_string()))?;
    let client = match cfg.transport {
        Transport::StreamableHttp => {
            let mut conf = StreamableHttpClientTransportConfig::with_uri(creds.url.as_str());
            if let Some(t) = &creds.token {
                conf = conf.auth_header(t.as_str());
            }
            let custom: HashMap<http::HeaderName, http::HeaderValue> = headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            conf = conf.custom_headers(custom);
            let transport = StreamableHttpClientTransport::with_client(http, conf);
            tokio::time::timeout(CONNECT_TIMEOUT, ().serve(transport)).await
        }
        Transport::Sse => {
            let transport = super::sse::SseTransport::connect(
                http,
                target.url.clone(),
                creds.token.as_ref().map(|t| t.as_str().to_owned()),
            )
            .await
            .map_err(|e| unavailable("connect to", e))?;
            tokio::time::timeout(CONNECT_TIMEOUT, ().serve(transport)).await
        }
    };
    match client {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(unavailable("initialize a session with", e.to_string())),
        Err(_) => Err(RemoteCallError::new(
            ErrorCode::McpServerTimeout,
            format!(
                "MCP server '{}' at {} did not complete the MCP handshake within {} s",
                cfg.name,
                cfg.url_display,
                CONNECT_TIMEOUT.as_secs()
            ),
        )),
    }
}
