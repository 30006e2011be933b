//! MCP over streamable HTTP, in-process with rmcp: one [`McpHandler`] serves the create
//! and run endpoints of every namespace; the HTTP layer authenticates first and passes
//! the caller and route to the handler in the request's extensions ([`CallCtx`]).
//!
//! Transport choice: rmcp's `StreamableHttpService` handles both protocol generations
//! (`initialize` + sessions up to 2025-11-25, `server/discover` + per-request metadata
//! from 2026-07-28), JSON or SSE replies, `Mcp-Session-Id`, GET/DELETE semantics. The
//! edge runs it stateless with JSON replies by default; `mcp_sessions = true` turns on
//! legacy sessions (then `initialize` hands out an `Mcp-Session-Id`, unknown ids get 404).

pub mod cancel;
pub mod fast;
pub mod run;

use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Map, Value};

use paddock_shared::ErrorCode;

use crate::app::{ApiError, Endpoint, Principal, ToolDef};
use crate::route::RunMode;
use crate::server::backend::Backend;
pub use run::{NoWorkers, RunTools};

/// The authenticated caller and route of one MCP request (an HTTP request extension).
#[derive(Debug, Clone)]
pub struct CallCtx {
    pub principal: Principal,
    pub endpoint: Endpoint,
    pub namespace: String,
    pub run_mode: RunMode,
}

/// The rmcp server handler for every namespace's create and run endpoints.
#[derive(Clone)]
pub struct McpHandler {
    backend: Arc<dyn Backend>,
    run: Arc<dyn RunTools>,
    cancels: Arc<cancel::Cancels>,
}

/// The tower service the HTTP layer calls: rmcp's streamable HTTP service behind the
/// stateless cancellation table ([`cancel`]).
pub type McpService = cancel::CancelService;

/// Builds the rmcp streamable HTTP service. Host validation is the edge's job
/// (routing), so rmcp's own allow-list is disabled.
pub fn service(backend: Arc<dyn Backend>, run: Arc<dyn RunTools>, sessions: bool) -> McpService {
    let cancels = Arc::new(cancel::Cancels::default());
    let handler = McpHandler {
        backend,
        run,
        cancels: cancels.clone(),
    };
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_legacy_session_mode(sessions)
        .with_json_response(!sessions)
        .with_sse_keep_alive(None);
    let inner = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    cancel::CancelService {
        inner,
        cancels,
        stateless: !sessions,
    }
}

/// Turns a [`ToolDef`] into an MCP tool (description and input schema always present;
/// no `outputSchema`, because SDKs validate results against it).
pub fn to_tool(def: ToolDef) -> Tool {
    let schema = match def.input_schema {
        Value::Object(m) => m,
        _ => {
            let mut m = Map::new();
            m.insert("type".into(), Value::String("object".into()));
            m
        }
    };
    let description = if def.description.is_empty() {
        def.name.clone()
    } else {
        def.description
    };
    Tool::new(def.name, description, Arc::new(schema))
}

/// A successful tool call: `structuredContent` is the value, `content[0].text` its
/// compact JSON.
pub fn ok_result(value: Value) -> CallToolResult {
    CallToolResult::structured(value)
}

/// A failed tool call: `isError`, `structuredContent` = the error body, text
/// `CODE: message`. The one rendering of [`ApiError`] at the MCP boundary.
pub fn error_result(err: &ApiError) -> CallToolResult {
    let mut r = CallToolResult::structured_error(err.body());
    r.content = vec![ContentBlock::text(format!(
        "{}: {}",
        err.code.as_str(),
        err.message
    ))];
    r
}

/// A run-tool result: `structuredContent` the execution result, `content[0].text` its
/// compact rendering, `isError` true unless the execution completed.
pub fn run_result(o: crate::run::RunOutcome) -> CallToolResult {
    let mut r = if o.is_error {
        CallToolResult::structured_error(o.structured)
    } else {
        CallToolResult::structured(o.structured)
    };
    r.content = vec![ContentBlock::text(o.text)];
    r
}

/// One run-endpoint `tools/call`, the same for rmcp's handler and the edge's fast path
/// (`fast`): registered under (account, key, `id`) for stateless
/// `notifications/cancelled` while it runs, run by [`RunTools::call_outcome`] with `ct`,
/// rendered as a tool result, an unknown tool as the protocol error -32602.
///
/// # Errors
/// The JSON-RPC error of an unknown tool.
pub async fn run_call(
    run: &dyn RunTools,
    cancels: &Arc<cancel::Cancels>,
    ctx: &CallCtx,
    id: cancel::RequestKey,
    tool: &str,
    args: Map<String, Value>,
    ct: tokio_util::sync::CancellationToken,
) -> Result<CallToolResponse, ErrorData> {
    // A stateless `notifications/cancelled` naming this request finds it here.
    let _registered = cancels.register(&ctx.principal, id, ct.clone());
    let out = run
        .call_outcome(
            &ctx.principal,
            &ctx.namespace,
            &ctx.run_mode,
            tool,
            args,
            ct,
        )
        .await;
    match out {
        Ok(o) => Ok(run_result(o).into()),
        Err(e) if e.code == ErrorCode::UnknownTool => {
            Err(ErrorData::invalid_params(e.message.clone(), Some(e.body())))
        }
        Err(e) => Ok(error_result(&e).into()),
    }
}

fn ctx_of(context: &RequestContext<RoleServer>) -> Result<CallCtx, ErrorData> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<CallCtx>())
        .cloned()
        .ok_or_else(|| ErrorData::internal_error("request reached MCP without routing", None))
}

impl ServerHandler for McpHandler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "paddock-edge",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Paddock: the create endpoint manages namespaces, services and functions; \
                 the run endpoint executes code next to them.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let ctx = ctx_of(&context)?;
        let defs = match ctx.endpoint {
            Endpoint::Create => self.backend.create_tools(&ctx.principal, &ctx.namespace),
            Endpoint::Run => self
                .run
                .list(&ctx.principal, &ctx.namespace, &ctx.run_mode)
                .await
                .map_err(|e| ErrorData::internal_error(e.to_string(), Some(e.body())))?,
        };
        Ok(ListToolsResult::with_all_items(
            defs.into_iter().map(to_tool).collect(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let ctx = ctx_of(&context)?;
        let args = request.arguments.unwrap_or_default();
        if ctx.endpoint == Endpoint::Run {
            return run_call(
                &*self.run,
                &self.cancels,
                &ctx,
                cancel::RequestKey::from(&context.id),
                &request.name,
                args,
                context.ct.clone(),
            )
            .await;
        }
        let result = match ctx.endpoint {
            Endpoint::Create => {
                self.backend
                    .call_create_tool(&ctx.principal, &ctx.namespace, &request.name, args)
                    .await
            }
            Endpoint::Run => {
                self.run
                    .call(
                        &ctx.principal,
                        &ctx.namespace,
                        &ctx.run_mode,
                        &request.name,
                        args,
                    )
                    .await
            }
        };
        match result {
            Ok(value) => Ok(ok_result(value).into()),
            // Unknown tool is a protocol error (-32602) by the spec, not a tool error.
            Err(e) if e.code == ErrorCode::UnknownTool => {
                Err(ErrorData::invalid_params(e.message.clone(), Some(e.body())))
            }
            Err(e) => Ok(error_result(&e).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_render_as_specified() {
        let ok = serde_json::to_value(ok_result(json!({"a": 1}))).expect("json");
        assert_eq!(ok["structuredContent"], json!({"a": 1}));
        assert_eq!(ok["content"][0]["text"], "{\"a\":1}");
        assert_ne!(ok["isError"], json!(true));
        let err = ApiError::new(ErrorCode::InvalidName, "bad name");
        let v = serde_json::to_value(error_result(&err)).expect("json");
        assert_eq!(v["isError"], true);
        assert_eq!(v["structuredContent"]["code"], "INVALID_NAME");
        assert_eq!(v["content"][0]["text"], "INVALID_NAME: bad name");
    }

    #[test]
    fn tools_always_have_description_and_schema() {
        let t = to_tool(ToolDef {
            name: "x".into(),
            description: String::new(),
            input_schema: Value::Null,
        });
        let v = serde_json::to_value(t).expect("json");
        assert_eq!(v["description"], "x");
        assert_eq!(v["inputSchema"], json!({"type": "object"}));
        assert!(v.get("outputSchema").is_none());
    }
}
