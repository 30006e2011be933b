//! What an MCP request costs, read off its body before any work: on the run endpoint each
//! JSON-RPC `tools/call` is one execution (code mode `execute*` or a tool-mode
//! `service.function`); on the create endpoint each `tools/call` of a mutating tool takes
//! one management token. Everything else (initialize, tools/list, notifications, reads)
//! is free. Also the `get_usage` tool definition.

use serde::Deserialize;
use serde_json::json;

use crate::app::{Endpoint, ToolDef};

/// The cost of one MCP request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// Nothing to admit.
    Free,
    /// This many executions (a JSON-RPC batch may carry several `tools/call`).
    Executions(u32),
    /// This many mutating create-tool calls.
    Management(u32),
}

#[derive(Deserialize)]
struct Rpc {
    method: Option<String>,
    params: Option<Params>,
}

#[derive(Deserialize)]
struct Params {
    name: Option<String>,
}

/// Prefixes of the create tools that change state (everything but list/describe/get/
/// export/chat reads).
const MUTATING_PREFIXES: [&str; 14] = [
    "make_",
    "update_",
    "delete_",
    "add_",
    "remove_",
    "set_",
    "import_",
    "refresh_",
    "scale_",
    "start_",
    "stop_",
    "destroy_",
    "configure_",
    "restore_",
];

/// Whether a create tool changes state (and so takes a management token).
pub fn is_mutating_create_tool(name: &str) -> bool {
    MUTATING_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Whether `body` is a JSON-RPC batch (an array). MCP removed batches in 2025-06-18 and
/// the edge refuses them before admission, so a batch can neither run nor be charged.
pub fn is_batch(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

/// The cost of an MCP request body sent to `endpoint`. A body that is not JSON-RPC is
/// [`Charge::Free`] here (rmcp answers it with a protocol error and nothing runs).
pub fn charge(endpoint: Endpoint, body: &[u8]) -> Charge {
    let calls: Vec<Rpc> = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice(body).unwrap_or_default(),
        Some(b'{') => serde_json::from_slice(body).map_or_else(|_| Vec::new(), |r| vec![r]),
        _ => Vec::new(),
    };
    let names = calls
        .iter()
        .filter(|r| r.method.as_deref() == Some("tools/call"))
        .map(|r| {
            r.params
                .as_ref()
                .and_then(|p| p.name.as_deref())
                .unwrap_or("")
        });
    let n = |it: &mut dyn Iterator<Item = &str>| u32::try_from(it.count()).unwrap_or(u32::MAX);
    let count = match endpoint {
        Endpoint::Run => n(&mut names.into_iter()),
        Endpoint::Create => n(&mut names.filter(|t| is_mutating_create_tool(t))),
    };
    match (count, endpoint) {
        (0, _) => Charge::Free,
        (c, Endpoint::Run) => Charge::Executions(c),
        (c, Endpoint::Create) => Charge::Management(c),
    }
}

/// What the `get_usage` create tool says it does.
pub const GET_USAGE_DESCRIPTION: &str = "Show this account's usage: executions this month (UTC), the monthly limit of its tier, what remains and when it resets, the per-minute rate and tokens available, and executions in flight against the concurrency limit.";

/// The create tool `get_usage`: this month's executions, limits and reset time.
pub fn get_usage_tool() -> ToolDef {
    ToolDef {
        name: "get_usage".to_owned(),
        description: GET_USAGE_DESCRIPTION.to_owned(),
        input_schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_calls_are_executions() {
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"execute","arguments":{"code":"result = 1"}}}"#;
        assert_eq!(charge(Endpoint::Run, call), Charge::Executions(1));
        let tool_mode =
            br#" {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"utils.hello"}}"#;
        assert_eq!(charge(Endpoint::Run, tool_mode), Charge::Executions(1));
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"execute"}},{"jsonrpc":"2.0","id":2,"method":"tools/list"},{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"a.b"}}]"#;
        assert_eq!(charge(Endpoint::Run, batch), Charge::Executions(2));
    }

    #[test]
    fn batches_are_recognised() {
        assert!(is_batch(b" \n[{\"jsonrpc\":\"2.0\"}]"));
        assert!(!is_batch(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#
        ));
        assert!(!is_batch(b""));
    }

    #[test]
    fn lists_and_handshakes_are_free() {
        for body in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            b"not json",
            b"",
        ] {
            assert_eq!(charge(Endpoint::Run, body), Charge::Free);
            assert_eq!(charge(Endpoint::Create, body), Charge::Free);
        }
    }

    #[test]
    fn only_mutating_create_tools_are_charged() {
        let call = |name: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}"}}}}"#
            )
        };
        for t in [
            "make_function",
            "update_function",
            "delete_service",
            "add_mcp_server",
        ] {
            assert_eq!(
                charge(Endpoint::Create, call(t).as_bytes()),
                Charge::Management(1),
                "{t}"
            );
        }
        for t in [
            "list_services",
            "describe_function",
            "get_usage",
            "export_namespace",
        ] {
            assert_eq!(
                charge(Endpoint::Create, call(t).as_bytes()),
                Charge::Free,
                "{t}"
            );
        }
    }
}
