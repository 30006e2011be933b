//! The create endpoint's tools: definitions (names, descriptions, JSON-Schema inputs,
//! required scope) and dispatch to the handlers, with scope, tenant and namespace checks.

pub mod args;
pub mod catalogue;
pub mod checks;
pub mod discovery;
pub mod executions;
pub mod functions;
pub mod mcp_servers;
pub mod namespaces;
pub mod scanner;
pub mod services;
pub mod templates;

use paddock_shared::ErrorCode;
use paddock_shared::model::NamespaceRecord;
use serde_json::{Map, Value, json};

use crate::app::{ApiError, App, Principal, Scope, ToolDef};
use crate::store::StoreError;

/// One tool of the create endpoint.
pub struct Tool {
    pub name: &'static str,
    pub description: &'static str,
    /// Scope the caller's key needs.
    pub scope: Scope,
    /// Listed (and callable) only for admin keys.
    pub admin_only: bool,
    pub schema: fn() -> Value,
}

fn obj(props: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": props, "required": required, "additionalProperties": false })
}

fn s(desc: &str) -> Value {
    json!({ "type": "string", "description": desc })
}

fn list(desc: &str) -> Value {
    json!({ "type": "array", "items": { "type": "string" }, "description": desc })
}

fn function_fields(required_backend: bool) -> Value {
    let mut p = json!({
        "service": s("Service name"),
        "name": s("Function name: ^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$ ('-' becomes '_' in code)"),
        "backend": { "type": "string", "enum": ["code_sandbox"], "description": "Execution backend: code_sandbox" },
        "language": { "type": "string", "enum": ["python", "typescript"], "description": "Default python (or the template's language)" },
        "code": s("Source code (≤ 100 KiB). Python: set `result`/`output` or define main(input_data); TypeScript: export default function main(input)"),
        "config": { "type": "object", "description": "Free-form configuration object" },
        "input_schema": { "type": "object", "description": "JSON Schema of the input (≤ 50 KiB)" },
        "output_schema": { "type": "object", "description": "JSON Schema of the output (≤ 50 KiB)" },
        "description": s("What the function does (≤ 10 KiB)"),
        "tags": list("Tags for filtering"),
        "requirements": list("Packages from list_packages (aliases accepted)"),
    });
    if !required_backend && let Value::Object(m) = &mut p {
        m.insert(
            "restore_version".into(),
            json!({ "type": "integer", "minimum": 1, "description": "Copy version N into a new version" }),
        );
    }
    p
}

/// Every create tool.
pub const TOOLS: &[Tool] = &[
    Tool {
        name: "make_namespace",
        description: "Create a namespace (a DNS label) owned by your account. Its endpoints are {name}.create.{domain}/mcp and {name}.run.{domain}/mcp.",
        scope: Scope::Write,
        admin_only: false,
        schema: || {
            obj(
                json!({ "name": s("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"), "description": s("Optional description") }),
                &["name"],
            )
        },
    },
    Tool {
        name: "list_namespaces",
        description: "List the namespaces of your account.",
        scope: Scope::Read,
        admin_only: false,
        schema: || obj(json!({}), &[]),
    },
    Tool {
        name: "make_service",
        description: "Create a service (a group of functions) in the current namespace.",
        scope: Scope::Write,
        admin_only: false,
        schema: || {
            obj(
                json!({ "name": s("Service name: ^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$"), "description": s("Optional description") }),
                &["name"],
            )
        },
    },
    Tool {
        name: "list_services",
        description: "List the services of the current namespace with function_count and call_count.",
        scope: Scope::Read,
        admin_only: false,
        schema: || obj(json!({}), &[]),
    },
    Tool {
        name: "delete_service",
        description: "Delete a service and all its functions. Two steps: the first call returns a confirmation_token (valid 60 s); call again with it to delete.",
        scope: Scope::Write,
        admin_only: false,
        schema: || {
            obj(
                json!({ "name": s("Service name"), "confirmation_token": s("Token from the first call") }),
                &["name"],
            )
        },
    },
    Tool {
        name: "make_function",
        description: "Create a function (version 1) in a service. Give code, or a template from list_templates that fills code, schemas and requirements as defaults.",
        scope: Scope::Write,
        admin_only: false,
        schema: || {
            let mut p = function_fields(true);
            if let Value::Object(m) = &mut p {
                m.insert(
                    "template".into(),
                    s("Template name from list_templates, e.g. hello-world"),
                );
            }
            obj(p, &["service", "name", "backend"])
        },
    },
    Tool {
        name: "update_function",
        description: "Update a function. Changes to code, config, schemas or requirements create a new immutable version; description/tags only do not. restore_version=N copies version N into a new version.",
        scope: Scope::Write,
        admin_only: false,
        schema: || obj(function_fields(false), &["service", "name"]),
    },
    Tool {
        name: "delete_function",
        description: "Delete a function and all its versions (permanent).",
        scope: Scope::Write,
        admin_only: false,
        schema: || {
            obj(
                json!({ "service": s("Service name"), "name": s("Function name") }),
                &["service", "name"],
            )
        },
    },
    Tool {
        name: "list_functions",
        description: "List the functions of a service as qualified names (service.function), optionally filtered by tag.",
        scope: Scope::Read,
        admin_only: false,
        schema: || {
            obj(
                json!({ "service": s("Service name"), "tag": s("Only functions with this tag") }),
                &["service"],
            )
        },
    },
    Tool {
        name: "describe_function",
        description: "Show a function: code, schemas, requirements, config and the full version history.",
        scope: Scope::Read,
        admin_only: false,
        schema: || {
            obj(
                json!({ "service": s("Service name"), "name": s("Function name") }),
                &["service", "name"],
            )
        },
    },
    Tool {
        name: "list_packages",
        description: "List the packages available in the sandbox, grouped by category (no installs at run time).",
        scope: Scope::Read,
        admin_only: false,
        schema: || {
            obj(
                json!({ "language": { "type": "string", "enum": ["python", "typescript"], "description": "Default: both" } }),
                &[],
            )
        },
    },
    Tool {
        name: "list_templates",
        description: "List the function templates.",
        scope: Scope::Read,
        admin_only: false,
        schema: || obj(json!({}), &[]),
    },
    Tool {
        name: "describe_template",
        description: "Show a template: code, input/output schemas and requirements.",
        scope: Scope::Read,
        admin_only: false,
        schema: || obj(json!({ "name": s("Template name") }), &["name"]),
    },
    Tool {
        name: "list_executions",
        description: "List recent executions of the current namespace (newest first): id, function or code hash, status, duration, usage, calls. Filters: status, function (service.function), since (unix seconds), limit (≤ 100, default 20).",
        scope: Scope::Read,
        admin_only: false,
        schema: || {
            obj(
                json!({
                    "status": { "type": "string", "enum": ["completed", "failed", "timeout", "canceled", "error"], "description": "Only executions with this status" },
                    "function": s("Only tool-mode executions of this function (service.function)"),
                    "since": { "type": "integer", "minimum": 1, "description": "Only executions started at or after this unix time (seconds)" },
                    "limit": { "type": "integer", "minimum": 1, "maximum": 100, "description": "Default 20" },
                }),
                &[],
            )
        },
    },
    Tool {
        name: "describe_execution",
        description: "Show one execution record of the current namespace by execution_id (the executionId of a run result).",
        scope: Scope::Read,
        admin_only: false,
        schema: || {
            obj(
                json!({ "execution_id": s("Execution id, ex_…") }),
                &["execution_id"],
            )
        },
    },
    Tool {
        name: "get_usage",
        description: crate::quota::charge::GET_USAGE_DESCRIPTION,
        scope: Scope::Read,
        admin_only: false,
        schema: || obj(json!({}), &[]),
    },
    Tool {
        name: "set_account_tier",
        description: "Admin only: set the tier of an account (free, builder, pro, enterprise).",
        scope: Scope::Write,
        admin_only: true,
        schema: || {
            obj(
                json!({ "email": s("Account email"), "tier": { "type": "string", "enum": ["free", "builder", "pro", "enterprise"] } }),
                &["email", "tier"],
            )
        },
    },
];

/// The context of one tool call.
pub struct Ctx<'a> {
    pub app: &'a App,
    pub p: &'a Principal,
    /// The current namespace (from the URL).
    pub ns: &'a str,
}

impl Ctx<'_> {
    /// The current namespace, which must exist and belong to the caller.
    ///
    /// # Errors
    /// `NAMESPACE_NOT_FOUND` (with a hint) or `NAMESPACE_DENIED`.
    pub fn current_namespace(&self) -> Result<NamespaceRecord, ApiError> {
        match self.app.store().namespace(self.ns).map_err(store_error)? {
            Some(n) if n.owner == self.p.account_id => Ok(n),
            Some(_) => Err(namespace_denied(self.ns)),
            None => Err(ApiError::new(
                ErrorCode::NamespaceNotFound,
                format!(
                    "Namespace '{}' does not exist — create it with make_namespace(name=\"{}\")",
                    self.ns, self.ns
                ),
            )),
        }
    }
}

/// `NAMESPACE_DENIED` for a namespace the caller may not reach.
pub fn namespace_denied(ns: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NamespaceDenied,
        format!("You have no access to namespace '{ns}' — use a namespace of your account"),
    )
}

/// Maps store failures to user-visible errors.
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Exists { kind, name } => ApiError::new(
            ErrorCode::AlreadyExists,
            format!(
                "{} '{name}' already exists — choose another name",
                capitalise(kind)
            ),
        ),
        StoreError::Missing { kind, name } => {
            let (code, hint) = match kind {
                "namespace" => (
                    ErrorCode::NamespaceNotFound,
                    "create it with make_namespace",
                ),
                "service" => (
                    ErrorCode::ServiceNotFound,
                    "see list_services or create it with make_service",
                ),
                "function" => (
                    ErrorCode::FunctionNotFound,
                    "see list_functions or create it with make_function",
                ),
                _ => (ErrorCode::InvalidArgument, "check the name"),
            };
            ApiError::new(
                code,
                format!("{} '{name}' does not exist — {hint}", capitalise(kind)),
            )
        }
        other => {
            let id = uuid::Uuid::new_v4().simple().to_string();
            tracing::error!(error = %other, error_id = %id, "store failure");
            ApiError::new(
                ErrorCode::Internal,
                format!("internal error (id {id}); try again, and report the id if it persists"),
            )
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The tools visible to `p`.
pub fn definitions(p: &Principal) -> Vec<ToolDef> {
    TOOLS
        .iter()
        .chain(mcp_servers::TOOLS)
        .filter(|t| !t.admin_only || p.is_admin)
        .map(|t| ToolDef {
            name: t.name.to_owned(),
            description: t.description.to_owned(),
            input_schema: (t.schema)(),
        })
        .collect()
}

/// Accepted, unlisted spellings of tools: issue texts and other platforms name the rule
/// listing `list_mcp_server_rule`.
fn canonical_name(tool: &str) -> &str {
    match tool {
        "list_mcp_server_rule" => "list_mcp_server_rules",
        t => t,
    }
}

/// Runs one tool (blocking: sled and flushes; call from a blocking context).
///
/// # Errors
/// The tool's typed error; `UNKNOWN_TOOL`, `SCOPE_DENIED`, `NAMESPACE_DENIED`.
pub fn call(ctx: &Ctx<'_>, tool: &str, args: Map<String, Value>) -> Result<Value, ApiError> {
    let tool = canonical_name(tool);
    let Some(t) = TOOLS
        .iter()
        .chain(mcp_servers::TOOLS)
        .find(|t| t.name == tool && (!t.admin_only || ctx.p.is_admin))
    else {
        return Err(ApiError::new(
            ErrorCode::UnknownTool,
            format!(
                "Unknown tool: {tool} — call tools/list to see the tools of the create endpoint"
            ),
        ));
    };
    if !ctx.p.scopes.contains(&t.scope) {
        let scope = match t.scope {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Execute => "execute",
        };
        return Err(ApiError::new(
            ErrorCode::ScopeDenied,
            format!(
                "{tool} needs the '{scope}' scope, which this API key lacks — create a key with it (POST /v1/auth/api-keys)"
            ),
        ));
    }
    if let Some(bound) = &ctx.p.namespace
        && bound != ctx.ns
    {
        return Err(ApiError::new(
            ErrorCode::NamespaceDenied,
            format!(
                "This API key is bound to namespace '{bound}' and cannot reach '{}'",
                ctx.ns
            ),
        ));
    }
    // The URL's namespace, when it exists, must be the caller's — for every tool.
    if let Some(n) = ctx.app.store().namespace(ctx.ns).map_err(store_error)?
        && n.owner != ctx.p.account_id
    {
        return Err(namespace_denied(ctx.ns));
    }
    match tool {
        "make_namespace" => namespaces::make(ctx, args),
        "list_namespaces" => namespaces::list(ctx, args),
        "make_service" => services::make(ctx, args),
        "list_services" => services::list(ctx, args),
        "delete_service" => services::delete(ctx, args),
        "make_function" => functions::make(ctx, args),
        "update_function" => functions::update(ctx, args),
        "delete_function" => functions::delete(ctx, args),
        "list_functions" => functions::list(ctx, args),
        "describe_function" => functions::describe(ctx, args),
        "list_packages" => discovery::list_packages(ctx, args),
        "list_templates" => discovery::list_templates(ctx, args),
        "describe_template" => discovery::describe_template(ctx, args),
        "set_account_tier" => discovery::set_account_tier(ctx, args),
        "list_executions" => executions::list(ctx, args),
        "describe_execution" => executions::describe(ctx, args),
        t if mcp_servers::handles(t) => mcp_servers::call(ctx, t, args),
        "get_usage" => Ok(ctx.app.usage_report(ctx.p).to_json()),
        _ => Err(ApiError::new(
            ErrorCode::UnknownTool,
            format!("Unknown tool: {tool}"),
        )),
    }
}
