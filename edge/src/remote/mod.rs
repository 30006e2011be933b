//! Remote MCP servers attached to a namespace: the edge-side records ([`model`]), the
//! SSRF guard on their URLs ([`guard`]), connections ([`client`], [`sse`]) kept in a
//! [`pool`], [`rules`], and the call path used by the bridge: [`App::call_remote_tool`]
//! looks the server up, applies exposure (renames, pinned parameters) and request rules,
//! calls the tool through the pooled rmcp client with the server's timeout and retry
//! settings, then applies response rules and the response size limit. Credentials are
//! decrypted in memory for a connection only.
//!
//! Remote I/O runs on a small runtime of its own ([`Remote`]), so connections outlive the
//! request (and the runtime) that first made them.

pub mod client;
pub mod guard;
pub mod model;
pub mod pool;
pub mod rules;
pub mod sse;

use std::sync::Arc;
use std::time::Duration;

use paddock_shared::ErrorCode;
use rmcp::model::CallToolRequestParams;
use rmcp::service::ServiceError;
use serde_json::{Map, Value};

use crate::app::App;
use crate::secrets::{Kek, secret_context};
use guard::AllowList;
use model::{DiscoveredTool, McpServerConfig, Pinned};
use pool::Pool;

/// Most tools accepted from one server.
pub const MAX_TOOLS: usize = 1000;
/// Largest accepted input schema of one tool (JSON bytes).
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// First retry delay; doubled for each further retry.
pub const RETRY_BASE_DELAY: Duration = Duration::from_millis(500);

/// What a remote tool call returned.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteCallOutput {
    /// The tool's `structuredContent` if present, else its content list as JSON (after
    /// response rules and truncation).
    pub value: Value,
    /// The tool reported an error (`isError`).
    pub is_error: bool,
    /// The response was larger than `response_limit_bytes` and was cut.
    pub truncated: bool,
    /// Size of the response (JSON bytes) before truncation.
    pub bytes: u64,
}

/// Why a remote tool call failed: a stable code and a sanitized message (never a token,
/// header value or URL credentials).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RemoteCallError {
    pub code: ErrorCode,
    pub message: String,
}

impl RemoteCallError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> RemoteCallError {
        RemoteCallError {
            code,
            message: message.into(),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> RemoteCallError {
    let id = uuid::Uuid::new_v4().simple().to_string();
    tracing::error!(error = %e, error_id = %id, "remote MCP internal failure");
    RemoteCallError::new(
        ErrorCode::Internal,
        format!("internal error (id {id}); try again, and report the id if it persists"),
    )
}

/// The remote-MCP machinery of an [`App`]: the KEK, the SSRF allow list, the client pool
/// and the runtime its connections live on.
pub struct Remote {
    kek: Option<Kek>,
    allow: AllowList,
    pool: Arc<Pool>,
    rt: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("kek", &self.kek)
            .field("allow", &self.allow)
            .finish_non_exhaustive()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Remote {
    /// Starts the remote runtime (2 threads) and the idle reaper.
    ///
    /// # Errors
    /// The runtime could not start.
    pub fn start(
        kek: Option<Kek>,
        allow: AllowList,
        idle: Duration,
    ) -> Result<Remote, std::io::Error> {
        let (htx, hrx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let pool = Arc::new(Pool::new(idle));
        let reap_pool = pool.clone();
        std::thread::Builder::new()
            .name("paddock-remote".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("paddock-remote-io")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = htx.send(Err(e));
                        return;
                    }
                };
                let _ = htx.send(Ok(rt.handle().clone()));
                rt.spawn(async move {
                    let every = (reap_pool.idle() / 4).max(Duration::from_millis(100));
                    loop {
                        tokio::time::sleep(every).await;
                        let n = reap_pool.reap();
                        if n > 0 {
                            tracing::debug!(closed = n, "remote MCP: idle connections closed");
                        }
                    }
                });
                rt.block_on(async {
                    let _ = stop_rx.await;
                });
                rt.shutdown_background();
            })?;
        let rt = hrx
            .recv()
            .map_err(|_| std::io::Error::other("the remote runtime thread died"))??;
        Ok(Remote {
            kek,
            allow,
            pool,
            rt,
            stop: Some(stop_tx),
        })
    }

    /// The configured KEK.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` saying how to configure one.
    pub fn kek(&self) -> Result<&Kek, RemoteCallError> {
        self.kek.as_ref().ok_or_else(|| {
            RemoteCallError::new(
                ErrorCode::InvalidArgument,
                "secrets cannot be stored: the operator configured no key-encryption key (edge config `kek_file`, or PADDOCK_EDGE_KEK_FILE / PADDOCK_EDGE_KEK)",
            )
        })
    }

    /// The SSRF allow list.
    pub fn allow(&self) -> &AllowList {
        &self.allow
    }

    /// The client pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Runs `fut` on the remote runtime and waits for it from any context (async or a
    /// blocking thread).
    ///
    /// # Errors
    /// `INTERNAL` when the task panicked or the runtime stopped.
    pub async fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, RemoteCallError>> + Send + 'static,
    ) -> Result<T, RemoteCallError> {
        self.rt.spawn(fut).await.map_err(internal)?
    }

    /// [`Remote::run`] from a blocking thread (the create tools).
    ///
    /// # Errors
    /// As [`Remote::run`].
    pub fn block_on<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, RemoteCallError>> + Send + 'static,
    ) -> Result<T, RemoteCallError> {
        futures::executor::block_on(self.rt.spawn(fut)).map_err(internal)?
    }
}

/// Connects to the server once and lists its tools (for add and refresh).
///
/// # Errors
/// As [`client::connect`]; `MCP_SERVER_UNAVAILABLE` when listing fails; `INVALID_ARGUMENT`
/// when the server has too many tools.
pub async fn discover(
    cfg: McpServerConfig,
    kek: Kek,
    allow: AllowList,
) -> Result<Vec<DiscoveredTool>, RemoteCallError> {
    let c = client::connect(&cfg, &kek, &allow).await?;
    let listed = tokio::time::timeout(client::CONNECT_TIMEOUT, c.list_all_tools()).await;
    let _ = c.cancel().await;
    let tools = match listed {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            let clean = client::open_credentials(&cfg, &kek)?.sanitizer();
            return Err(RemoteCallError::new(
                ErrorCode::McpServerUnavailable,
                clean.clean(&format!(
                    "MCP server '{}' did not list its tools: {e}",
                    cfg.name
                )),
            ));
        }
        Err(_) => {
            return Err(RemoteCallError::new(
                ErrorCode::McpServerTimeout,
                format!(
                    "MCP server '{}' did not list its tools within {} s",
                    cfg.name,
                    client::CONNECT_TIMEOUT.as_secs()
                ),
            ));
        }
    };
    if tools.len() > MAX_TOOLS {
        return Err(RemoteCallError::new(
            ErrorCode::InvalidArgument,
            format!(
                "MCP server '{}' lists {} tools; at most {MAX_TOOLS} are supported",
                cfg.name,
                tools.len()
            ),
        ));
    }
    let mut out: Vec<DiscoveredTool> = Vec::with_capacity(tools.len());
    for t in tools {
        let schema = Value::Object((*t.input_schema).clone()).to_string();
        if schema.len() > MAX_SCHEMA_BYTES {
            tracing::warn!(server = %cfg.name, tool = %t.name, bytes = schema.len(), "remote tool schema too large; tool skipped");
            continue;
        }
        out.push(DiscoveredTool::new(
            t.name.to_string(),
            t.description.map(|d| d.to_string()).unwrap_or_default(),
            schema,
        ));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}

impl App {
    /// Calls `tool` (the EXPOSED name, after renames) of server `server` in `namespace`
    /// with `args`, applying the server's exposure, rules and settings.
    ///
    /// # Errors
    /// `MCP_SERVER_NOT_FOUND`, `MCP_SERVER_DISABLED`, `RULE_BLOCKED`, `MCP_SERVER_TIMEOUT`,
    /// `MCP_SERVER_UNAVAILABLE`, `MCP_TOOL_ERROR`, `INVALID_ARGUMENT` (unknown tool, a
    /// required parameter missing), `HOST_NOT_ALLOWED`, `INTERNAL`.
    pub async fn call_remote_tool(
        &self,
        namespace: &str,
        server: &str,
        tool: &str,
        args: Map<String, Value>,
    ) -> Result<RemoteCallOutput, RemoteCallError> {
        let app = self.clone();
        let (ns, server, tool) = (namespace.to_owned(), server.to_owned(), tool.to_owned());
        self.remote()
            .run(async move { call(&app, &ns, &server, &tool, args).await })
            .await
    }
}

async fn call(
    app: &App,
    ns: &str,
    server: &str,
    tool: &str,
    mut args: Map<String, Value>,
) -> Result<RemoteCallOutput, RemoteCallError> {
    let cfg = app
        .store()
        .mcp_server(ns, server)
        .map_err(internal)?
        .ok_or_else(|| {
            RemoteCallError::new(
                ErrorCode::McpServerNotFound,
                format!(
                    "MCP server '{server}' is not attached to namespace '{ns}' — see list_mcp_servers"
                ),
            )
        })?;
    if !cfg.settings.enabled {
        return Err(RemoteCallError::new(
            ErrorCode::McpServerDisabled,
            format!(
                "MCP server '{server}' is disabled — enable it with set_mcp_server_setting(enabled=true)"
            ),
        ));
    }
    let exposed = cfg.exposed_tool(tool).ok_or_else(|| {
        let names: Vec<String> = cfg.exposed_tools().into_iter().map(|t| t.exposed).collect();
        RemoteCallError::new(
            ErrorCode::InvalidArgument,
            format!(
                "MCP server '{server}' exposes no tool '{tool}'; its tools: {}",
                names.join(", ")
            ),
        )
    })?;
    let remote = app.remote();
    if let Some(pinned) = exposed.pinned {
        for (param, p) in pinned {
            let v = match p {
                Pinned::Literal(json) => serde_json::from_str(json).unwrap_or(Value::Null),
                Pinned::Secret(name) => {
                    let rec = app.store().secret(ns, name).map_err(internal)?.ok_or_else(|| {
                        RemoteCallError::new(
                            ErrorCode::InvalidArgument,
                            format!(
                                "tool '{tool}' pins parameter '{param}' to secret '{name}', which is not set — set it with set_secret"
                            ),
                        )
                    })?;
                    let kek = remote.kek()?;
                    let plain = kek
                        .open_string(&secret_context(ns, name), &rec.value)
                        .map_err(internal)?;
                    Value::String(plain.as_str().to_owned())
                }
            };
            args.insert(param.clone(), v);
        }
    }
    let server_tool = exposed.tool.name.clone();
    rules::apply_request(&cfg.rules, server, &server_tool, tool, &mut args)?;
    let settings = cfg.settings.clone();
    let attempts = if settings.retry_on_failure {
        settings.retry_count.saturating_add(1)
    } else {
        1
    };
    let timeout = Duration::from_secs(u64::from(settings.timeout_seconds));
    let kek = remote.kek()?.clone();
    let allow = remote.allow().clone();
    let params = CallToolRequestParams::new(server_tool.clone()).with_arguments(args);
    let mut last_err = None;
    let mut result = None;
    for attempt in 0..attempts {
        if attempt > 0 {
            let delay = RETRY_BASE_DELAY * 2u32.saturating_pow(attempt - 1);
            tracing::info!(namespace = %ns, server = %server, attempt, delay_ms = delay.as_millis() as u64, "remote MCP: retrying after a connection error");
            tokio::time::sleep(delay).await;
        }
        let conn = match remote
            .pool()
            .get(ns, server, cfg.generation, async || {
                client::connect(&cfg, &kek, &allow).await
            })
            .await
        {
            Ok(c) => c,
            Err(e) if e.code == ErrorCode::McpServerUnavailable => {
                last_err = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        match tokio::time::timeout(timeout, conn.client.call_tool(params.clone())).await {
            Err(_) => {
                return Err(RemoteCallError::new(
                    ErrorCode::McpServerTimeout,
                    format!(
                        "MCP server '{server}' did not answer tool '{tool}' within {} s (setting timeout_seconds; timeouts are not retried)",
                        settings.timeout_seconds
                    ),
                ));
            }
            Ok(Ok(r)) => {
                result = Some(r);
                break;
            }
            Ok(Err(ServiceError::McpError(e))) => {
                let clean = client::open_credentials(&cfg, &kek)?.sanitizer();
                return Err(RemoteCallError::new(
                    ErrorCode::McpToolError,
                    clean.clean(&format!(
                        "MCP server '{server}' refused tool '{tool}': {} (code {})",
                        e.message, e.code.0
                    )),
                ));
            }
            Ok(Err(e)) => {
                remote.pool().discard(ns, server, &conn).await;
                let clean = client::open_credentials(&cfg, &kek)?.sanitizer();
                last_err = Some(RemoteCallError::new(
                    ErrorCode::McpServerUnavailable,
                    clean.clean(&format!(
                        "the connection to MCP server '{server}' failed during tool '{tool}': {e}"
                    )),
                ));
            }
        }
    }
    let Some(r) = result else {
        let mut e = last_err.unwrap_or_else(|| {
            RemoteCallError::new(
                ErrorCode::McpServerUnavailable,
                format!("MCP server '{server}' is unavailable"),
            )
        });
        if attempts > 1 {
            e.message = format!("{} (after {attempts} attempts)", e.message);
        }
        return Err(e);
    };
    let is_error = r.is_error.unwrap_or(false);
    let value = match r.structured_content {
        Some(v) => v,
        None => serde_json::to_value(&r.content).map_err(internal)?,
    };
    let value = rules::apply_response(&cfg.rules, server, &server_tool, value)?;
    let text = value.to_string();
    let bytes = text.len() as u64;
    let (value, truncated) = if bytes > settings.response_limit_bytes {
        let limit = usize::try_from(settings.response_limit_bytes).unwrap_or(usize::MAX);
        let mut cut = limit.min(text.len());
        while cut > 0 && !text.is_char_boundary(cut) {
            cut -= 1;
        }
        (Value::String(text[..cut].to_owned()), true)
    } else {
        (value, false)
    };
    Ok(RemoteCallOutput {
        value,
        is_error,
        truncated,
        bytes,
    })
}
