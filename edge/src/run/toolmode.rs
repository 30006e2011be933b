//! Tool mode (`?mode=tools`, optional `&tags=a,b`): one tool per function of the
//! namespace, named `service.function`, with the function's input schema; arguments are
//! validated against that schema before any worker is involved, and every violation is
//! listed in one `INVALID_TOOL_ARGUMENTS` error.

use paddock_shared::ErrorCode;
use paddock_shared::model::{FunctionRecord, Language, VersionRecord};
use serde_json::{Map, Value, json};

use crate::app::{ApiError, ToolDef};
use crate::store::Store;
use crate::tools::store_error;

/// One function of the namespace, as a tool.
#[derive(Debug, Clone)]
pub struct FnTool {
    pub service: String,
    pub function: String,
    pub description: String,
    pub language: Language,
    /// The input schema, `{"type":"object"}` when the function has none.
    pub schema: Value,
    pub tags: Vec<String>,
}

impl FnTool {
    /// `service.function`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.service, self.function)
    }

    /// The MCP tool definition.
    pub fn def(&self) -> ToolDef {
        let description = if self.description.trim().is_empty() {
            format!("Run function {} ({})", self.name(), self.language)
        } else {
            self.description.clone()
        };
        ToolDef {
            name: self.name(),
            description,
            input_schema: self.schema.clone(),
        }
    }

    fn matches(&self, tags: &[String]) -> bool {
        tags.is_empty() || self.tags.iter().any(|t| tags.contains(t))
    }
}

/// Whether a name stays within the MCP tool-name character set.
pub fn valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn object_schema(v: &VersionRecord) -> Value {
    match v
        .input_schema_json
        .as_deref()
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
    {
        Some(s @ Value::Object(_)) => s,
        _ => json!({ "type": "object" }),
    }
}

fn fn_tool(f: FunctionRecord, v: &VersionRecord) -> FnTool {
    FnTool {
        schema: object_schema(v),
        language: v.language,
        service: f.service,
        function: f.name,
        description: f.description,
        tags: f.tags,
    }
}

/// Every function of `ns` carrying one of `tags` (all when `tags` is empty).
///
/// # Errors
/// `INTERNAL` on store failure.
pub fn list(store: &Store, ns: &str, tags: &[String]) -> Result<Vec<FnTool>, ApiError> {
    let mut out = Vec::new();
    for svc in store.services(ns).map_err(store_error)? {
        for f in store.functions(ns, &svc.name).map_err(store_error)? {
            let Some(v) = store
                .version(ns, &f.service, &f.name, f.current_version)
                .map_err(store_error)?
            else {
                continue;
            };
            let t = fn_tool(f, &v);
            if t.matches(tags) && valid_tool_name(&t.name()) {
                out.push(t);
            }
        }
    }
    Ok(out)
}

/// The function a tool-mode name refers to.
///
/// # Errors
/// `INVALID_TOOL_NAME` for names that are not `service.function`, `UNKNOWN_TOOL` when no
/// such function exists (or the tags filter hides it).
pub fn resolve(store: &Store, ns: &str, tags: &[String], tool: &str) -> Result<FnTool, ApiError> {
    let Some((svc, func)) = tool.split_once('.') else {
        return Err(ApiError::new(
            ErrorCode::InvalidToolName,
            format!(
                "Invalid tool name format: {tool:?} — tool-mode tools are named service.function; call tools/list"
            ),
        ));
    };
    let unknown = || {
        ApiError::new(
            ErrorCode::UnknownTool,
            format!("Unknown tool: {tool} — no such function in namespace '{ns}'; call tools/list"),
        )
    };
    let Some(f) = store.function(ns, svc, func).map_err(store_error)? else {
        return Err(unknown());
    };
    let Some(v) = store
        .version(ns, svc, func, f.current_version)
        .map_err(store_error)?
    else {
        return Err(unknown());
    };
    let t = fn_tool(f, &v);
    if !t.matches(tags) {
        return Err(unknown());
    }
    Ok(t)
}

/// Validates arguments against the tool's schema, listing every violation.
///
/// # Errors
/// `INVALID_TOOL_ARGUMENTS` with `violations: [{path, message}]` in the body.
pub fn validate(t: &FnTool, args: &Map<String, Value>) -> Result<(), ApiError> {
    let validator = match jsonschema::validator_for(&t.schema) {
        Ok(v) => v,
        // A schema the validator refuses was accepted at make time by an older check:
        // run the function and let it judge its input.
        Err(e) => {
            tracing::warn!(function = %t.name(), error = %e, "input schema does not compile; arguments not validated");
            return Ok(());
        }
    };
    let instance = Value::Object(args.clone());
    let violations: Vec<(String, String)> = validator
        .iter_errors(&instance)
        .map(|e| {
            let path = e.instance_path().to_string();
            let path = if path.is_empty() {
                "/".to_owned()
            } else {
                path
            };
            (path, e.to_string())
        })
        .collect();
    if violations.is_empty() {
        return Ok(());
    }
    let list = violations
        .iter()
        .map(|(p, m)| format!("{p}: {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    Err(ApiError {
        details: Some(json!({
            "tool": t.name(),
            "violations": violations
                .iter()
                .map(|(p, m)| json!({ "path": p, "message": m }))
                .collect::<Vec<_>>(),
        })),
        ..ApiError::new(
            ErrorCode::InvalidToolArguments,
            format!(
                "Arguments of {} do not match its input schema ({} violation{}): {list} — fix them and call again",
                t.name(),
                violations.len(),
                if violations.len() == 1 { "" } else { "s" }
            ),
        )
    })
}
