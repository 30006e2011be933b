//! Create-endpoint tools for remote MCP servers and the namespace secret store:
//! add/list/describe/update/remove/refresh_mcp_server, set_mcp_server_setting,
//! add/remove/list_mcp_server_rule, set_mcp_server_tool (exposure: subset, rename,
//! description, pinned parameters), set_secret/list_secrets/delete_secret. Nothing here
//! ever returns a token, header value, URL credentials or secret value.

use std::collections::{BTreeMap, BTreeSet};

use paddock_shared::ErrorCode;
use paddock_shared::names::to_code_name;
use rand::RngCore;
use serde_json::{Map, Value, json};

use super::args::Args;
use super::checks::{self, MAX_DESCRIPTION_BYTES};
use super::{Ctx, Tool, obj, s, store_error};
use crate::app::{ApiError, Scope};
use crate::remote::model::{
    DiscoveredTool, Exposure, InjectionAction, McpServerConfig, Pinned, Rule, RuleKind, Settings,
    ToolOverride, Transport, schema_hash,
};
use crate::remote::{RemoteCallError, discover, guard, rules};
use crate::secrets::{Kek, secret_context, server_context};
use crate::store::remote::SecretRecord;
use crate::store::{StoreError, now};

/// Most rules per server.
pub const MAX_RULES: usize = 100;
/// Each rule type of `add_mcp_server_rule` and the arguments it takes besides `name`,
/// `type` and `tools`.
const RULE_TYPES: &[(&str, &[&str])] = &[
    ("block_tool", &[]),
    ("inject_param", &["param", "value"]),
    ("require_param", &["param"]),
    ("cap_param", &["param", "max"]),
    ("redact_fields", &["fields"]),
    ("strip_html", &[]),
    ("scan_injection", &["action"]),
    ("inject_header", &["text"]),
    ("wrap_trust_boundary", &[]),
];

fn rule_type_names() -> Vec<&'static str> {
    RULE_TYPES.iter().map(|(t, _)| *t).collect()
}

/// Longest `inject_header` text (characters).
pub const MAX_HEADER_CHARS: usize = 2000;
/// Most headers per server.
pub const MAX_HEADERS: usize = 32;
/// Largest secret, token or header value (bytes).
pub const MAX_SECRET_BYTES: usize = 16 * 1024;
/// Largest URL (bytes).
pub const MAX_URL_BYTES: usize = 2048;
/// Most secrets per namespace.
pub const MAX_SECRETS: usize = 200;

const SERVER_NAME: &str = "Server name: ^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$";

fn server_arg() -> Value {
    s(SERVER_NAME)
}

/// The tools of this module.
pub const TOOLS: &[Tool] = &[
    Tool {
        name: "add_mcp_server",
        description: "Attach a third-party MCP server (streamable HTTP or SSE) to the namespace: connects, discovers its tools, caches their schemas and stores the token/headers encrypted. Sandboxed code then calls its tools as functions.mcp__{server}__{tool}; the credentials never enter the sandbox.",
        scope: Scope::Write,
        admin_only: false,
        schema: || {
            obj(
                json!({
                    "name": server_arg(),
                    "url": s("http(s) URL of the server's MCP endpoint, e.g. https://mcp.example.com/mcp"),
                    "transport": { "type": "string", "enum": ["streamable_http", "sse"], "description": "Default streamable_http" },
                    "auth_token": s("Bearer token sent as Authorization (stored encrypted, never shown)"),
                    "headers": { "type": "object", "additionalProperties": { "type": "string" }, "description": "Extra HTTP headers (stored encrypted, never shown)" },
                    "description": s("What the server is for"),
                }),
                &["name", "url"],
            )
        },
    },
    Tool {
        name: "list_mcp_servers",
        description: "List the MCP servers attached to the namespace with their tool counts and settings (never credentials).",
        scope: Scope::Read,
        admin_only: false,
        schema: || obj(json!({}), &[]),
    },
    Tool {
        name: "describe_mcp_server",
        description: "Describe one MCP server: exposed tools with schemas, all discovered tools, settings, rules and exposure (never credentials).",
        scope: Scope::Read,
        admin_only: false,
        schema: || obj(json!({ "name": server_arg() }), &["name"]),
    },
    Tool {
        name: "update_mcp_server",
        description: "Change a server's url, transport, auth_token, headers or description. Connection changes reconnect and rediscover its tools; pooled connections are replaced.",
        scope: Scope::Write,
        admin_only: false,
        schema: || {
            obj(
                json!({
                    "name": server_arg(),
                    "url": s("New URL"),
                    "transport": { "type": "string", "enum": ["streamable_http", "sse"] },
                    "auth_token": s("New bearer token; empty string removes it"),
                    "headers": { "type": "object", "additionalProperties": { "type": "string" }, "description": "Replaces all headers ({} removes them)" },
                    "description": s("New description"),
                }),
                &["name"],
            )
        },
    },
    Tool {
        name: "remove_mcp_server",
        description: "Detach an MCP server from the namespace and delete its stored credentials.",
        scope: Scope::Write,
        admin_only: false,
        schema: || obj(json!({ "name": server_arg() }), &["name"]),
    },
    Tool {
        name: "refresh_mcp_server",
        description: "Reconnect to a server and re-discover its tools; reports added, removed and changed tools.",
        scope: Scope::Write,
        admin_only: false,
        schema: || obj(json!({ "name": server_arg() }), &["name"]),
    },
    Tool {
        name: "set_mcp_server_setting",
        description: "Set one setting of a server: response_limit_bytes (1024..=67108864, default 1048576), timeout_seconds (1..=300, default 30), max_calls_per_execution (1..=10000, default 50), retry_on_failure (default true), retry_count (0..=5, default 2), enabled (default true).",
        scope: Scope::Write,
        admin_only: false,
        schema: || {
            obj(
                json!({
                    "name": server_arg(),
                    "key": { "type": "string", "enum": ["response_limit_bytes", "timeout_seconds", "max_calls_per_execution", "retry_on_failure", "retry_count", "enabled"] },
                    "value": { "description": "Number or boolean, per key" },
                }),
                &["name", "key", "value"],
            )
        },
    },
    Tool {
        name: "add_mcp_server_rule",
        description: "Add a rule to a server, for the tools matching a glob (server tool names; default *). Request rules: block_tool, inject_param (param, value), require_param (param), cap_param (param, max). Response rules: redact_fields (fields), strip_html, scan_injection (action: flag|redact|block, default flag), inject_header (text), wrap_trust_boundary.",
        scope: Scope::Write,
        admin_only: false,
        schema: || {
            obj(
                json!({
                    "name": server_arg(),
                    "type": { "type": "string", "enum": rule_type_names() },
                    "tools": s("Glob over the server's tool names, e.g. delete_* (default *)"),
                    "param": s("Parameter name (inject_param, require_param, cap_param)"),
                    "value": { "description": "Value to inject (inject_param)" },
                    "max": { "type": "number", "description": "Upper bound (cap_param)" },
                    "fields": { "type": "array", "items": { "type": "string" }, "description": "Keys to redact (redact_fields)" },
                    "action": { "type": "string", "enum": ["flag", "redact", "block"], "description": "What a match does (scan_injection; default flag)" },
                    "text": { "type": "string", "maxLength": MAX_HEADER_CHARS, "description": "Text put before the result (inject_header)" },
                }),
                &["name", "type"],
            )
        },
    },
    Tool {
        name: "remove_mcp_server_rule",
        description: "Remove a rule from a server by its id (r-xxxxxxxx).",
        scope: Scope::Write,
        admin_only: false,
        schema: || {
            obj(
                json!({ "name": server_arg(), "rule_id": s("r-xxxxxxxx") }),
                &["name", "rule_id"],
            )
        },
    },
    Tool {
        name: "list_mcp_server_rules",
        description: "List the rules of a server.",
        scope: Scope::Read,
        admin_only: false,
        schema: || obj(json!({ "name": server_arg() }), &["name"]),
    },
    Tool {
        name: "set_mcp_server_exposure",
        description: "Choose which of a server's tools are exposed: all (tools omitted or null) or a subset (list of the server's tool names).",
        scope: Scope::Write,
        admin_only: false,
        schema: || {
            obj(
                json!({ "name": server_arg(), "tools": { "type": ["array", "null"], "items": { "type": "string" }, "description": "Server tool names to expose; null = all" } }),
                &["name"],
            )
        },
    },
    Tool {
        name: "set_mcp_server_tool",
        description: "Wrap one tool of a server: rename it, override its description, and pin parameters (literal values, or {\"secret\": NAME} for a stored secret) that are injected at call time and hidden from the schema code and models see. Omitted fields keep their value; null clears.",
        scope: Scope::Write,
        admin_only: false,
        schema: || {
            obj(
                json!({
                    "name": server_arg(),
                    "tool": s("The server's tool name"),
                    "rename": { "type": ["string", "null"], "description": "Exposed name ([A-Za-z0-9_-], ≤ 64)" },
                    "description": { "type": ["string", "null"], "description": "Exposed description" },
                    "pin": { "type": ["object", "null"], "description": "param → literal value, or {\"secret\": \"NAME\"}" },
                }),
                &["name", "tool"],
            )
        },
    },
    Tool {
        name: "set_secret",
        description: "Store a namespace secret (encrypted at rest; its value is never shown again). Pin it into remote MCP tool parameters with set_mcp_server_tool(pin={param: {\"secret\": NAME}}).",
        scope: Scope::Write,
        admin_only: false,
        schema: || {
            obj(
                json!({ "name": s("Secret name: ^[A-Za-z_][A-Za-z0-9_]{0,63}$"), "value": s("The secret value") }),
                &["name", "value"],
            )
        },
    },
    Tool {
        name: "list_secrets",
        description: "List the namespace's secret names (never values).",
        scope: Scope::Read,
        admin_only: false,
        schema: || obj(json!({}), &[]),
    },
    Tool {
        name: "delete_secret",
        description: "Delete a namespace secret.",
        scope: Scope::Write,
        admin_only: false,
        schema: || obj(json!({ "name": s("Secret name") }), &["name"]),
    },
];

/// Whether `tool` is one of this module's.
pub fn handles(tool: &str) -> bool {
    TOOLS.iter().any(|t| t.name == tool)
}

/// Runs one of this module's tools.
///
/// # Errors
/// The tool's typed error.
pub fn call(ctx: &Ctx<'_>, tool: &str, args: Map<String, Value>) -> Result<Value, ApiError> {
    match tool {
        "add_mcp_server" => add(ctx, args),
        "list_mcp_servers" => list(ctx, args),
        "describe_mcp_server" => describe(ctx, args),
        "update_mcp_server" => update(ctx, args),
        "remove_mcp_server" => remove(ctx, args),
        "refresh_mcp_server" => refresh(ctx, args),
        "set_mcp_server_setting" => set_setting(ctx, args),
        "add_mcp_server_rule" => add_rule(ctx, args),
        "remove_mcp_server_rule" => remove_rule(ctx, args),
        "list_mcp_server_rules" => list_rules(ctx, args),
        "set_mcp_server_exposure" => set_exposure(ctx, args),
        "set_mcp_server_tool" => set_tool(ctx, args),
        "set_secret" => set_secret(ctx, args),
        "list_secrets" => list_secrets(ctx, args),
        "delete_secret" => delete_secret(ctx, args),
        _ => Err(ApiError::new(
            ErrorCode::UnknownTool,
            format!("Unknown tool: {tool}"),
        )),
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidArgument, msg)
}

fn from_remote(e: RemoteCallError) -> ApiError {
    ApiError::new(e.code, e.message)
}

fn server_missing(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::McpServerNotFound,
        format!("MCP server '{name}' is not attached to this namespace — see list_mcp_servers"),
    )
}

fn map_store(e: StoreError) -> ApiError {
    match e {
        StoreError::Missing {
            kind: "MCP server",
            name,
        } => server_missing(&name),
        StoreError::Exists {
            kind: "MCP server",
            name,
        } => ApiError::new(
            ErrorCode::AlreadyExists,
            format!(
                "MCP server '{name}' is already attached — choose another name, or use update_mcp_server"
            ),
        ),
        StoreError::Missing {
            kind: "secret",
            name,
        } => bad(format!("secret '{name}' does not exist — see list_secrets")),
        other => store_error(other),
    }
}

fn validate_server_name(name: &str) -> Result<(), ApiError> {
    paddock_shared::names::validate_service(name).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidName,
            format!("invalid MCP server name '{name}': {e}"),
        )
    })
}

fn load(ctx: &Ctx<'_>, name: &str) -> Result<McpServerConfig, ApiError> {
    ctx.app
        .store()
        .mcp_server(ctx.ns, name)
        .map_err(map_store)?
        .ok_or_else(|| server_missing(name))
}

/// Read-modify-write with a retry when another writer changed the record meanwhile.
fn modify(
    ctx: &Ctx<'_>,
    name: &str,
    f: impl Fn(&mut McpServerConfig) -> Result<(), ApiError>,
) -> Result<McpServerConfig, ApiError> {
    for _ in 0..5 {
        let old = load(ctx, name)?;
        let mut new = old.clone();
        f(&mut new)?;
        new.updated_at = now();
        match ctx.app.store().put_mcp_server(&new, Some(&old)) {
            Ok(()) => return Ok(new),
            Err(StoreError::Changed { .. }) => continue,
            Err(e) => return Err(map_store(e)),
        }
    }
    Err(ApiError::new(
        ErrorCode::Internal,
        format!("MCP server '{name}' kept changing concurrently; try again"),
    ))
}

fn kek(ctx: &Ctx<'_>) -> Result<Kek, ApiError> {
    ctx.app.remote().kek().cloned().map_err(from_remote)
}

fn parse_headers(v: Option<Value>) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    let Some(Value::Object(m)) = v else {
        return Ok(None);
    };
    if m.len() > MAX_HEADERS {
        return Err(bad(format!("headers: at most {MAX_HEADERS} headers")));
    }
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let Value::String(v) = v else {
            return Err(bad(format!("headers: the value of '{k}' must be a string")));
        };
        let name = k.to_ascii_lowercase();
        if http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || http::HeaderValue::from_str(&v).is_err()
        {
            return Err(bad(format!("headers: '{k}' is not a valid HTTP header")));
        }
        if matches!(
            name.as_str(),
            "host" | "content-length" | "transfer-encoding" | "connection" | "mcp-session-id"
        ) {
            return Err(bad(format!("headers: '{k}' cannot be set")));
        }
        checks::size("headers", v.len(), MAX_SECRET_BYTES)?;
        out.insert(name, v);
    }
    Ok(Some(out))
}

fn seal_headers(
    kek: &Kek,
    ns: &str,
    name: &str,
    headers: &BTreeMap<String, String>,
) -> BTreeMap<String, crate::secrets::Sealed> {
    headers
        .iter()
        .map(|(h, v)| {
            (
                h.clone(),
                kek.seal(
                    &server_context(ns, name, &format!("header/{h}")),
                    v.as_bytes(),
                ),
            )
        })
        .collect()
}

fn check_url(url: &str) -> Result<guard::Target, ApiError> {
    checks::size("url", url.len(), MAX_URL_BYTES)?;
    guard::parse_url(url).map_err(from_remote)
}

fn run_discover(ctx: &Ctx<'_>, cfg: &McpServerConfig) -> Result<Vec<DiscoveredTool>, ApiError> {
    let remote = ctx.app.remote();
    let kek = remote.kek().cloned().map_err(from_remote)?;
    let (cfg, allow) = (cfg.clone(), remote.allow().clone());
    remote
        .block_on(async move { discover(cfg, kek, allow).await })
        .map_err(from_remote)
}

/// The arguments of add_mcp_server and update_mcp_server.
const SERVER_ARGS: &[&str] = &[
    "name",
    "url",
    "transport",
    "auth_token",
    "headers",
    "description",
];

/// The `transport` argument, if given.
fn transport_arg(a: &Args) -> Result<Option<Transport>, ApiError> {
    a.opt_str("transport")?
        .map(|t| {
            Transport::parse(&t).ok_or_else(|| {
                bad(format!(
                    "transport: '{t}' is not supported; use streamable_http or sse (stdio servers cannot run on the edge)"
                ))
            })
        })
        .transpose()
}

/// add_mcp_server(name, url, transport?, auth_token?, headers?, description?).
fn add(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new("add_mcp_server", args, SERVER_ARGS)?;
    let name = a.req_str("name")?;
    validate_server_name(&name)?;
    let url = a.req_str("url")?;
    let target = check_url(&url)?;
    let transport = transport_arg(&a)?.unwrap_or(Transport::StreamableHttp);
    let token = a.opt_str("auth_token")?.filter(|t| !t.is_empty());
    if let Some(t) = &token {
        checks::size("auth_token", t.len(), MAX_SECRET_BYTES)?;
    }
    let headers = parse_headers(a.opt_object("headers")?)?.unwrap_or_default();
    let description = a.opt_str("description")?.unwrap_or_default();
    checks::size("description", description.len(), MAX_DESCRIPTION_BYTES)?;
    let ns = ctx.current_namespace()?;
    if ctx
        .app
        .store()
        .mcp_server(&ns.name, &name)
        .map_err(map_store)?
        .is_some()
    {
        return Err(map_store(StoreError::Exists {
            kind: "MCP server",
            name,
        }));
    }
    let kek = kek(ctx)?;
    let t = now();
    let ctxs = |f: &str| server_context(&ns.name, &name, f);
    let mut cfg = McpServerConfig {
        namespace: ns.name.clone(),
        name: name.clone(),
        description,
        url_display: guard::display_url(&target),
        url: kek.seal(&ctxs("url"), url.as_bytes()),
        transport,
        auth_token: token
            .as_ref()
            .map(|v| kek.seal(&ctxs("auth_token"), v.as_bytes())),
        headers: seal_headers(&kek, &ns.name, &name, &headers),
        settings: Settings::default(),
        rules: Vec::new(),
        exposure: Exposure::default(),
        tools: Vec::new(),
        schema_hash: String::new(),
        generation: 1,
        created_at: t,
        updated_at: t,
        refreshed_at: t,
    };
    cfg.tools = run_discover(ctx, &cfg)?;
    cfg.schema_hash = schema_hash(&cfg.tools);
    ctx.app
        .store()
        .put_mcp_server(&cfg, None)
        .map_err(map_store)?;
    tracing::info!(namespace = %ns.name, server = %name, tools = cfg.tools.len(), "MCP server added");
    let mut out = summary(&cfg);
    if let Value::Object(m) = &mut out {
        m.insert(
            "message".into(),
            json!(format!(
                "Added MCP server '{name}' with {} tools. Code calls them as functions.mcp__{}__TOOL(...); see describe_mcp_server.",
                cfg.tools.len(),
                to_code_name(&name)
            )),
        );
    }
    Ok(out)
}

fn settings_json(s: &Settings) -> Value {
    json!({
        "response_limit_bytes": s.response_limit_bytes,
        "timeout_seconds": s.timeout_seconds,
        "max_calls_per_execution": s.max_calls_per_execution,
        "retry_on_failure": s.retry_on_failure,
        "retry_count": s.retry_count,
        "enabled": s.enabled,
    })
}

fn summary(cfg: &McpServerConfig) -> Value {
    json!({
        "name": cfg.name,
        "namespace": cfg.namespace,
        "description": cfg.description,
        "url": cfg.url_display,
        "transport": cfg.transport.as_str(),
        "has_auth_token": cfg.auth_token.is_some(),
        "header_names": cfg.headers.keys().collect::<Vec<_>>(),
        "tool_count": cfg.tools.len(),
        "exposed_tool_count": cfg.exposed_tools().len(),
        "schema_hash": cfg.schema_hash,
        "settings": settings_json(&cfg.settings),
        "rule_count": cfg.rules.len(),
        "created_at": cfg.created_at,
        "updated_at": cfg.updated_at,
        "refreshed_at": cfg.refreshed_at,
    })
}

fn rule_json(r: &Rule) -> Value {
    let mut v = json!({ "id": r.id, "type": r.kind.name(), "tools": r.tools,
        "phase": if r.kind.is_request() { "request" } else { "response" }, "created_at": r.created_at });
    let Value::Object(m) = &mut v else {
        return v;
    };
    match &r.kind {
        RuleKind::InjectParam { param, value_json } => {
            m.insert("param".into(), json!(param));
            m.insert(
                "value".into(),
                serde_json::from_str(value_json).unwrap_or(Value::Null),
            );
        }
        RuleKind::RequireParam { param } => {
            m.insert("param".into(), json!(param));
        }
        RuleKind::CapParam { param, max } => {
            m.insert("param".into(), json!(param));
            m.insert("max".into(), json!(max));
        }
        RuleKind::RedactFields { fields } => {
            m.insert("fields".into(), json!(fields));
        }
        RuleKind::ScanInjection { action } => {
            m.insert("action".into(), json!(action.name()));
        }
        RuleKind::InjectHeader { text } => {
            m.insert("text".into(), json!(text));
        }
        _ => {}
    }
    v
}

fn list(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    Args::new("list_mcp_servers", args, &[])?;
    let ns = ctx.current_namespace()?;
    let servers: Vec<Value> = ctx
        .app
        .store()
        .mcp_servers(&ns.name)
        .map_err(map_store)?
        .iter()
        .map(summary)
        .collect();
    Ok(json!({ "namespace": ns.name, "count": servers.len(), "mcp_servers": servers }))
}

fn describe(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new("describe_mcp_server", args, &["name"])?;
    let name = a.req_str("name")?;
    ctx.current_namespace()?;
    let cfg = load(ctx, &name)?;
    let mut out = summary(&cfg);
    let exposed: Vec<Value> = cfg
        .exposed_tools()
        .into_iter()
        .map(|t| {
            json!({
                "name": t.exposed,
                "function": paddock_shared::names::remote_tool_ident(&cfg.name, &t.exposed),
                "server_tool": t.tool.name,
                "description": t.description,
                "input_schema": t.schema,
                "pinned_params": t.pinned.map(|p| p.keys().cloned().collect::<Vec<_>>()).unwrap_or_default(),
            })
        })
        .collect();
    let discovered: Vec<Value> = cfg
        .tools
        .iter()
        .map(|t| json!({ "name": t.name, "description": t.description, "hash": t.hash }))
        .collect();
    let overrides: Map<String, Value> = cfg
        .exposure
        .tools
        .iter()
        .map(|(k, o)| {
            let pins: Map<String, Value> = o
                .pinned
                .iter()
                .map(|(p, v)| {
                    (
                        p.clone(),
                        match v {
                            Pinned::Literal(j) => json!({ "literal": serde_json::from_str::<Value>(j).unwrap_or(Value::Null) }),
                            Pinned::Secret(n) => json!({ "secret": n }),
                        },
                    )
                })
                .collect();
            (
                k.clone(),
                json!({ "rename": o.rename, "description": o.description, "pin": pins }),
            )
        })
        .collect();
    if let Value::Object(m) = &mut out {
        m.insert("tools".into(), json!(exposed));
        m.insert("discovered_tools".into(), json!(discovered));
        m.insert(
            "rules".into(),
            json!(cfg.rules.iter().map(rule_json).collect::<Vec<_>>()),
        );
        m.insert(
            "exposure".into(),
            json!({ "only": cfg.exposure.only, "tools": overrides }),
        );
    }
    Ok(out)
}

fn update(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new("update_mcp_server", args, SERVER_ARGS)?;
    let name = a.req_str("name")?;
    let ns = ctx.current_namespace()?;
    let url = a.opt_str("url")?;
    let target = url.as_deref().map(check_url).transpose()?;
    let transport = transport_arg(&a)?;
    let token = a.opt_str("auth_token")?;
    if let Some(t) = &token {
        checks::size("auth_token", t.len(), MAX_SECRET_BYTES)?;
    }
    let headers = parse_headers(a.opt_object("headers")?)?;
    let description = a.opt_str("description")?;
    if let Some(d) = &description {
        checks::size("description", d.len(), MAX_DESCRIPTION_BYTES)?;
    }
    let connection_change =
        url.is_some() || transport.is_some() || token.is_some() || headers.is_some();
    let kek = kek(ctx)?;
    let ctxs = |f: &str| server_context(&ns.name, &name, f);
    let current = load(ctx, &name)?;
    let mut next = current.clone();
    if let (Some(u), Some(t)) = (&url, &target) {
        next.url = kek.seal(&ctxs("url"), u.as_bytes());
        next.url_display = guard::display_url(t);
    }
    if let Some(t) = transport {
        next.transport = t;
    }
    if let Some(t) = &token {
        next.auth_token = (!t.is_empty()).then(|| kek.seal(&ctxs("auth_token"), t.as_bytes()));
    }
    if let Some(h) = &headers {
        next.headers = seal_headers(&kek, &ns.name, &name, h);
    }
    if let Some(d) = &description {
        next.description = d.clone();
    }
    let mut diff = json!(null);
    if connection_change {
        next.generation = current.generation + 1;
        let tools = run_discover(ctx, &next)?;
        diff = tool_diff(&current.tools, &tools);
        next.schema_hash = schema_hash(&tools);
        next.tools = tools;
        next.refreshed_at = now();
    }
    next.updated_at = now();
    ctx.app
        .store()
        .put_mcp_server(&next, Some(&current))
        .map_err(|e| match e {
            StoreError::Changed { .. } => ApiError::new(
                ErrorCode::Internal,
                format!("MCP server '{name}' changed while it was being updated; try again"),
            ),
            e => map_store(e),
        })?;
    ctx.app.remote().pool().forget(&ns.name, &name);
    let mut out = summary(&next);
    if let Value::Object(m) = &mut out {
        m.insert("reconnected".into(), json!(connection_change));
        if connection_change {
            m.insert("changes".into(), diff);
        }
    }
    Ok(out)
}

fn remove(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new("remove_mcp_server", args, &["name"])?;
    let name = a.req_str("name")?;
    let ns = ctx.current_namespace()?;
    ctx.app
        .store()
        .delete_mcp_server(&ns.name, &name)
        .map_err(map_store)?;
    ctx.app.remote().pool().forget(&ns.name, &name);
    Ok(json!({ "namespace": ns.name, "name": name, "removed": true,
        "message": format!("Removed MCP server '{name}' and its stored credentials.") }))
}

fn tool_diff(old: &[DiscoveredTool], new: &[DiscoveredTool]) -> Value {
    let o: BTreeMap<&str, &str> = old
        .iter()
        .map(|t| (t.name.as_str(), t.hash.as_str()))
        .collect();
    let n: BTreeMap<&str, &str> = new
        .iter()
        .map(|t| (t.name.as_str(), t.hash.as_str()))
        .collect();
    let added: Vec<&str> = n.keys().filter(|k| !o.contains_key(*k)).copied().collect();
    let removed: Vec<&str> = o.keys().filter(|k| !n.contains_key(*k)).copied().collect();
    let changed: Vec<&str> = n
        .iter()
        .filter(|(k, h)| o.get(*k).is_some_and(|oh| oh != *h))
        .map(|(k, _)| *k)
        .collect();
    json!({ "added": added, "removed": removed, "changed": changed })
}

fn refresh(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new("refresh_mcp_server", args, &["name"])?;
    let name = a.req_str("name")?;
    ctx.current_namespace()?;
    let current = load(ctx, &name)?;
    let tools = run_discover(ctx, &current)?;
    let hash = schema_hash(&tools);
    let before = current.schema_hash.clone();
    let old_tools = current.tools.clone();
    let next = modify(ctx, &name, |c| {
        c.tools = tools.clone();
        c.schema_hash = hash.clone();
        c.refreshed_at = now();
        Ok(())
    })?;
    let diff = tool_diff(&old_tools, &next.tools);
    Ok(json!({
        "name": name,
        "tool_count": next.tools.len(),
        "schema_hash": next.schema_hash,
        "changed": before != next.schema_hash,
        "added": diff["added"], "removed": diff["removed"], "changed_tools": diff["changed"],
    }))
}

fn num(v: &Value, key: &str, lo: u64, hi: u64) -> Result<u64, ApiError> {
    let n = v
        .as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .ok_or_else(|| bad(format!("{key}: must be an integer between {lo} and {hi}")))?;
    if n < lo || n > hi {
        return Err(bad(format!("{key}: {n} is outside {lo}..={hi}")));
    }
    Ok(n)
}

fn boolean(v: &Value, key: &str) -> Result<bool, ApiError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        _ => Err(bad(format!("{key}: must be true or false"))),
    }
}

/// Applies one setting (validated).
///
/// # Errors
/// `INVALID_ARGUMENT` naming the key and its range.
pub fn apply_setting(s: &mut Settings, key: &str, v: &Value) -> Result<(), ApiError> {
    match key {
        "response_limit_bytes" => s.response_limit_bytes = num(v, key, 1024, 64 * 1024 * 1024)?,
        "timeout_seconds" => s.timeout_seconds = num(v, key, 1, 300)? as u32,
        "max_calls_per_execution" => s.max_calls_per_execution = num(v, key, 1, 10_000)? as u32,
        "retry_count" => s.retry_count = num(v, key, 0, 5)? as u32,
        "retry_on_failure" => s.retry_on_failure = boolean(v, key)?,
        "enabled" => s.enabled = boolean(v, key)?,
        other => {
            return Err(bad(format!(
                "unknown setting '{other}'; settings: response_limit_bytes, timeout_seconds, max_calls_per_execution, retry_on_failure, retry_count, enabled"
            )));
        }
    }
    Ok(())
}

fn set_setting(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new(
        "set_mcp_server_setting",
        args.clone(),
        &["name", "key", "value"],
    )?;
    let name = a.req_str("name")?;
    let key = a.req_str("key")?;
    let value = args
        .get("value")
        .cloned()
        .filter(|v| !v.is_null())
        .ok_or_else(|| bad("set_mcp_server_setting: missing required argument 'value'"))?;
    // Validate before touching the store.
    apply_setting(&mut Settings::default(), &key, &value)?;
    ctx.current_namespace()?;
    let next = modify(ctx, &name, |c| apply_setting(&mut c.settings, &key, &value))?;
    Ok(
        json!({ "name": name, "settings": settings_json(&next.settings),
        "message": format!("Set {key} of MCP server '{name}'.") }),
    )
}

fn rule_id() -> String {
    let mut b = [0u8; 4];
    rand::rng().fill_bytes(&mut b);
    format!("r-{}", hex::encode(b))
}

fn add_rule(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new(
        "add_mcp_server_rule",
        args.clone(),
        &[
            "name", "type", "tools", "param", "value", "max", "fields", "action", "text",
        ],
    )?;
    let name = a.req_str("name")?;
    let kind_name = a.req_str("type")?;
    let tools = a.opt_str("tools")?.unwrap_or_else(|| "*".to_owned());
    rules::check_glob(&tools).map_err(|e| bad(format!("tools: invalid glob '{tools}': {e}")))?;
    let unknown = || {
        bad(format!(
            "unknown rule type '{kind_name}'; types: {}",
            rule_type_names().join(", ")
        ))
    };
    let &(_, uses) = RULE_TYPES
        .iter()
        .find(|(t, _)| *t == kind_name)
        .ok_or_else(unknown)?;
    // An argument of another rule type is a mistake (a `max` meant for cap_param given to
    // inject_param, say): say so rather than store a rule that ignores it.
    if let Some(extra) = args
        .keys()
        .find(|k| !["name", "type", "tools"].contains(&k.as_str()) && !uses.contains(&k.as_str()))
    {
        let takes = if uses.is_empty() {
            "no other arguments".to_owned()
        } else {
            uses.join(", ")
        };
        return Err(bad(format!(
            "argument '{extra}' does not apply to rule type {kind_name} (it takes {takes})"
        )));
    }
    let param = || {
        a.opt_str("param")?
            .filter(|p| !p.is_empty())
            .ok_or_else(|| bad(format!("{kind_name} needs 'param' (the parameter name)")))
    };
    let kind = match kind_name.as_str() {
        "block_tool" => RuleKind::BlockTool,
        "inject_param" => {
            let v = args
                .get("value")
                .cloned()
                .ok_or_else(|| bad("inject_param needs 'value'"))?;
            RuleKind::InjectParam {
                param: param()?,
                value_json: v.to_string(),
            }
        }
        "require_param" => RuleKind::RequireParam { param: param()? },
        "cap_param" => {
            let max = args
                .get("max")
                .and_then(Value::as_f64)
                .filter(|m| m.is_finite())
                .ok_or_else(|| bad("cap_param needs 'max' (a number)"))?;
            RuleKind::CapParam {
                param: param()?,
                max,
            }
        }
        "redact_fields" => {
            let fields = a.opt_str_list("fields")?.unwrap_or_default();
            if fields.is_empty() {
                return Err(bad("redact_fields needs 'fields' (a list of keys)"));
            }
            RuleKind::RedactFields { fields }
        }
        "strip_html" => RuleKind::StripHtml,
        "wrap_trust_boundary" => RuleKind::WrapTrustBoundary,
        "scan_injection" => {
            let action = match a.opt_str("action")? {
                None => InjectionAction::Flag,
                Some(name) => InjectionAction::parse(&name).ok_or_else(|| {
                    bad(format!(
                        "scan_injection: unknown action '{name}'; actions: flag, redact, block"
                    ))
                })?,
            };
            RuleKind::ScanInjection { action }
        }
        "inject_header" => {
            let text = a
                .opt_str("text")?
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| {
                    bad("inject_header needs 'text' (the text put before the result)")
                })?;
            let chars = text.chars().count();
            if chars > MAX_HEADER_CHARS {
                return Err(bad(format!(
                    "inject_header: 'text' is {chars} characters, over the limit of {MAX_HEADER_CHARS}"
                )));
            }
            RuleKind::InjectHeader { text }
        }
        _ => return Err(unknown()),
    };
    ctx.current_namespace()?;
    let rule = Rule {
        id: rule_id(),
        tools,
        kind,
        created_at: now(),
    };
    modify(ctx, &name, |c| {
        if c.rules.len() >= MAX_RULES {
            return Err(bad(format!("a server holds at most {MAX_RULES} rules")));
        }
        c.rules.push(rule.clone());
        Ok(())
    })?;
    let mut out = rule_json(&rule);
    if let Value::Object(m) = &mut out {
        m.insert("server".into(), json!(name));
    }
    Ok(out)
}

fn remove_rule(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new("remove_mcp_server_rule", args, &["name", "rule_id"])?;
    let name = a.req_str("name")?;
    let id = a.req_str("rule_id")?;
    ctx.current_namespace()?;
    modify(ctx, &name, |c| {
        let before = c.rules.len();
        c.rules.retain(|r| r.id != id);
        if c.rules.len() == before {
            return Err(bad(format!(
                "MCP server '{name}' has no rule '{id}' — see list_mcp_server_rules"
            )));
        }
        Ok(())
    })?;
    Ok(json!({ "server": name, "rule_id": id, "removed": true }))
}

fn list_rules(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new("list_mcp_server_rules", args, &["name"])?;
    let name = a.req_str("name")?;
    ctx.current_namespace()?;
    let cfg = load(ctx, &name)?;
    let rules: Vec<Value> = cfg.rules.iter().map(rule_json).collect();
    Ok(json!({ "server": name, "count": rules.len(), "rules": rules }))
}

fn set_exposure(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new("set_mcp_server_exposure", args, &["name", "tools"])?;
    let name = a.req_str("name")?;
    let only = a.opt_str_list("tools")?;
    ctx.current_namespace()?;
    let next = modify(ctx, &name, |c| {
        if let Some(only) = &only {
            let known: BTreeSet<&str> = c.tools.iter().map(|t| t.name.as_str()).collect();
            if let Some(u) = only.iter().find(|t| !known.contains(t.as_str())) {
                return Err(bad(format!(
                    "MCP server '{name}' has no tool '{u}'; its tools: {}",
                    known.iter().copied().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        c.exposure.only = only.clone();
        check_exposed_names(c)
    })?;
    let names: Vec<String> = next
        .exposed_tools()
        .into_iter()
        .map(|t| t.exposed)
        .collect();
    Ok(json!({ "server": name, "exposed_tools": names, "all": next.exposure.only.is_none() }))
}

fn check_exposed_names(c: &McpServerConfig) -> Result<(), ApiError> {
    let mut seen = BTreeSet::new();
    for t in c.exposed_tools() {
        let code = to_code_name(&t.exposed);
        if !seen.insert(code.clone()) {
            return Err(bad(format!(
                "two exposed tools would both be called mcp__{}__{code}; rename one",
                to_code_name(&c.name)
            )));
        }
    }
    Ok(())
}

fn valid_tool_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn set_tool(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new(
        "set_mcp_server_tool",
        args.clone(),
        &["name", "tool", "rename", "description", "pin"],
    )?;
    let name = a.req_str("name")?;
    let tool = a.req_str("tool")?;
    // Some(None) = clear, None = keep.
    let field = |k: &str| -> Result<Option<Option<String>>, ApiError> {
        match args.get(k) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
            Some(_) => Err(bad(format!("{k}: must be a string or null"))),
        }
    };
    let rename = field("rename")?;
    if let Some(Some(r)) = &rename
        && !valid_tool_name(r)
    {
        return Err(bad(format!(
            "rename: '{r}' must be 1–64 characters of [A-Za-z0-9_-]"
        )));
    }
    let description = field("description")?;
    if let Some(Some(d)) = &description {
        checks::size("description", d.len(), MAX_DESCRIPTION_BYTES)?;
    }
    let pin: Option<BTreeMap<String, Pinned>> = match args.get("pin") {
        None => None,
        Some(Value::Null) => Some(BTreeMap::new()),
        Some(Value::Object(m)) => {
            let mut out = BTreeMap::new();
            for (k, v) in m {
                let p = match v {
                    Value::Object(o) if o.len() == 1 && o.contains_key("secret") => {
                        let Some(Value::String(s)) = o.get("secret") else {
                            return Err(bad(format!("pin.{k}: secret must be a name")));
                        };
                        Pinned::Secret(s.clone())
                    }
                    other => Pinned::Literal(other.to_string()),
                };
                out.insert(k.clone(), p);
            }
            Some(out)
        }
        Some(_) => return Err(bad("pin: must be an object (param → value) or null")),
    };
    let ns = ctx.current_namespace()?;
    if let Some(p) = &pin {
        for v in p.values() {
            if let Pinned::Secret(s) = v
                && ctx
                    .app
                    .store()
                    .secret(&ns.name, s)
                    .map_err(map_store)?
                    .is_none()
            {
                return Err(bad(format!(
                    "pin: secret '{s}' does not exist — set it with set_secret first"
                )));
            }
        }
    }
    let next = modify(ctx, &name, |c| {
        if !c.tools.iter().any(|t| t.name == tool) {
            return Err(bad(format!(
                "MCP server '{name}' has no tool '{tool}' — see describe_mcp_server"
            )));
        }
        let o: &mut ToolOverride = c.exposure.tools.entry(tool.clone()).or_default();
        if let Some(r) = &rename {
            o.rename = r.clone();
        }
        if let Some(d) = &description {
            o.description = d.clone();
        }
        if let Some(p) = &pin {
            o.pinned = p.clone();
        }
        if o == &ToolOverride::default() {
            c.exposure.tools.remove(&tool);
        }
        check_exposed_names(c)
    })?;
    let shown = next
        .exposed_tools()
        .into_iter()
        .find(|t| t.tool.name == tool)
        .map(|t| {
            json!({ "name": t.exposed, "description": t.description, "input_schema": t.schema,
            "pinned_params": t.pinned.map(|p| p.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() })
        });
    Ok(json!({ "server": name, "tool": tool, "exposed": shown }))
}

fn valid_secret_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && n.len() <= 64
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

fn set_secret(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new("set_secret", args, &["name", "value"])?;
    let name = a.req_str("name")?;
    if !valid_secret_name(&name) {
        return Err(ApiError::new(
            ErrorCode::InvalidName,
            format!("invalid secret name '{name}': use ^[A-Za-z_][A-Za-z0-9_]{{0,63}}$"),
        ));
    }
    let value = zeroize::Zeroizing::new(a.req_str("value")?);
    checks::size("value", value.len(), MAX_SECRET_BYTES)?;
    let ns = ctx.current_namespace()?;
    let existing = ctx.app.store().secrets(&ns.name).map_err(map_store)?;
    if existing.len() >= MAX_SECRETS && !existing.iter().any(|s| s.name == name) {
        return Err(bad(format!(
            "a namespace holds at most {MAX_SECRETS} secrets"
        )));
    }
    let kek = kek(ctx)?;
    let t = now();
    let rec = SecretRecord {
        namespace: ns.name.clone(),
        name: name.clone(),
        value: kek.seal(&secret_context(&ns.name, &name), value.as_bytes()),
        created_at: t,
        updated_at: t,
    };
    let created = ctx.app.store().put_secret(&rec).map_err(map_store)?;
    Ok(json!({ "name": name, "created": created, "updated_at": t,
        "message": format!("Stored secret '{name}' (encrypted; its value is never shown).") }))
}

fn list_secrets(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    Args::new("list_secrets", args, &[])?;
    let ns = ctx.current_namespace()?;
    let secrets: Vec<Value> = ctx
        .app
        .store()
        .secrets(&ns.name)
        .map_err(map_store)?
        .into_iter()
        .map(|s| json!({ "name": s.name, "created_at": s.created_at, "updated_at": s.updated_at }))
        .collect();
    Ok(json!({ "namespace": ns.name, "count": secrets.len(), "secrets": secrets }))
}

fn delete_secret(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new("delete_secret", args, &["name"])?;
    let name = a.req_str("name")?;
    let ns = ctx.current_namespace()?;
    for cfg in ctx.app.store().mcp_servers(&ns.name).map_err(map_store)? {
        for (tool, o) in &cfg.exposure.tools {
            if o.pinned
                .values()
                .any(|p| matches!(p, Pinned::Secret(s) if s == &name))
            {
                return Err(bad(format!(
                    "secret '{name}' is pinned into tool '{tool}' of MCP server '{}'; unpin it first (set_mcp_server_tool pin)",
                    cfg.name
                )));
            }
        }
    }
    ctx.app
        .store()
        .delete_secret(&ns.name, &name)
        .map_err(map_store)?;
    Ok(json!({ "name": name, "deleted": true }))
}
