//! Stateless fast path for the hottest MCP request: a session-less, legacy-generation
//! (`MCP-Protocol-Version` absent or before 2026-07-28) JSON-RPC `tools/list` POST.
//!
//! Measured on 2 cores over TLS (benches/edge_tools_list.sh): rmcp's stateless service
//! builds a service and a task per request (~2.6k requests/s for tools/list); answering
//! this one request directly with rmcp's own model types gives the same bytes at a
//! fraction of the cost. Anything else — other methods, batches, sessions, cursors,
//! the 2026-07-28 generation (per-request `_meta`, `Mcp-Method`), odd headers or bodies —
//! goes to rmcp, which also produces the protocol errors. A unit test checks that both
//! paths give identical bodies.

use rmcp::model::{ListToolsResult, Tool};
use serde::Deserialize;
use serde_json::Value;

/// Protocol versions of the `initialize` generation the fast path answers for.
const LEGACY_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

#[derive(Deserialize)]
struct Request<'a> {
    jsonrpc: &'a str,
    id: Value,
    method: &'a str,
    #[serde(default)]
    params: Option<Value>,
}

/// The JSON-RPC id of a request the fast path may answer, or `None` to use rmcp.
pub fn tools_list_id(headers: &http::HeaderMap, body: &[u8]) -> Option<Value> {
    if headers.contains_key("mcp-session-id") {
        return None;
    }
    if let Some(v) = headers.get("mcp-protocol-version") {
        let v = v.to_str().ok()?;
        if !LEGACY_VERSIONS.contains(&v) {
            return None;
        }
    }
    let ct = headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    if !ct
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return None;
    }
    let accept = headers
        .get(http::header::ACCEPT)?
        .to_str()
        .ok()?
        .to_ascii_lowercase();
    if !(accept.contains("application/json") && accept.contains("text/event-stream")) {
        return None;
    }
    let req: Request<'_> = serde_json::from_slice(body).ok()?;
    if req.jsonrpc != "2.0" || req.method != "tools/list" {
        return None;
    }
    if !(req.id.is_string() || req.id.is_i64() || req.id.is_u64()) {
        return None;
    }
    match &req.params {
        None | Some(Value::Null) => {}
        // Only an empty params object (or one with just `_meta`): no cursor.
        Some(Value::Object(m)) if m.keys().all(|k| k == "_meta") => {}
        Some(_) => return None,
    }
    Some(req.id)
}

/// The JSON-RPC response body for `tools/list` with `tools`, as rmcp renders it for the
/// legacy generation (no `resultType`).
pub fn tools_list_body(id: Value, tools: Vec<Tool>) -> Vec<u8> {
    let mut result = ListToolsResult::with_all_items(tools);
    result.result_type = None;
    // Written directly (no intermediate `Value` tree): this is the hot path.
    let mut out = Vec::with_capacity(8 * 1024);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    let written = serde_json::to_writer(&mut out, &id).and_then(|()| {
        out.extend_from_slice(br#","result":"#);
        serde_json::to_writer(&mut out, &result)
    });
    if written.is_err() {
        return br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"cannot render tools/list"}}"#.to_vec();
    }
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    const OK: &[(&str, &str)] = &[
        ("content-type", "application/json"),
        ("accept", "text/event-stream, application/json"),
    ];

    #[test]
    fn takes_only_plain_legacy_tools_list() {
        let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#;
        assert_eq!(tools_list_id(&headers(OK), body), Some(Value::from(7)));
        let mut h = headers(OK);
        h.insert(
            "mcp-protocol-version",
            http::HeaderValue::from_static("2025-03-26"),
        );
        assert!(tools_list_id(&h, body).is_some());
        h.insert(
            "mcp-protocol-version",
            http::HeaderValue::from_static("2026-07-28"),
        );
        assert!(
            tools_list_id(&h, body).is_none(),
            "new generation goes to rmcp"
        );
        let mut h = headers(OK);
        h.insert("mcp-session-id", http::HeaderValue::from_static("s"));
        assert!(tools_list_id(&h, body).is_none());
        let only_json = headers(&[
            ("content-type", "application/json"),
            ("accept", "application/json"),
        ]);
        assert!(tools_list_id(&only_json, body).is_none());
        for other in [
            &br#"{"jsonrpc":"2.0","id":7,"method":"tools/call"}"#[..],
            br#"[{"jsonrpc":"2.0","id":7,"method":"tools/list"}]"#,
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"cursor":"x"}}"#,
            br#"{"jsonrpc":"2.0","method":"tools/list"}"#,
            br#"{"jsonrpc":"2.0","id":null,"method":"tools/list"}"#,
            b"not json",
        ] {
            assert!(
                tools_list_id(&headers(OK), other).is_none(),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn body_is_a_legacy_list_tools_result() {
        let tool = crate::mcp::to_tool(crate::app::ToolDef {
            name: "t".into(),
            description: "d".into(),
            input_schema: serde_json::json!({"type": "object"}),
        });
        let v: Value =
            serde_json::from_slice(&tools_list_body(Value::from("a"), vec![tool])).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"jsonrpc": "2.0", "id": "a", "result": {"tools": [
                {"name": "t", "description": "d", "inputSchema": {"type": "object"}}
            ]}})
        );
    }
}

/// How long a rendered create-endpoint tool list is reused.
pub const CREATE_TOOLS_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// Most cached tool lists (the cache is cleared when full).
pub const CREATE_TOOLS_CACHE_MAX: usize = 4096;

type CacheKey = (bool, Vec<crate::app::Scope>, String);

/// Rendered `tools` arrays of the create endpoint, per (admin, scopes, namespace), kept
/// for [`CREATE_TOOLS_TTL`]. Building the schemas and serialising them was most of the
/// remaining CPU of tools/list; create tools are defined in code, so a list at most one
/// second old is exact. Never used for the run endpoint (its tools follow the
/// namespace's functions, which must be visible at once).
#[derive(Default)]
pub struct CreateToolsCache {
    entries:
        std::sync::Mutex<std::collections::HashMap<CacheKey, (std::time::Instant, bytes::Bytes)>>,
}

impl CreateToolsCache {
    /// The rendered `ListToolsResult` for this caller, from the cache or `build`.
    pub fn get_or_render(
        &self,
        p: &crate::app::Principal,
        ns: &str,
        build: impl FnOnce() -> Vec<Tool>,
    ) -> bytes::Bytes {
        let key = (p.is_admin, p.scopes.clone(), ns.to_owned());
        let now = std::time::Instant::now();
        if let Ok(map) = self.entries.lock()
            && let Some((at, bytes)) = map.get(&key)
            && now.duration_since(*at) < CREATE_TOOLS_TTL
        {
            return bytes.clone();
        }
        let mut result = ListToolsResult::with_all_items(build());
        result.result_type = None;
        let bytes = bytes::Bytes::from(serde_json::to_vec(&result).unwrap_or_default());
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= CREATE_TOOLS_CACHE_MAX {
                map.clear();
            }
            map.insert(key, (now, bytes.clone()));
        }
        bytes
    }
}

/// A JSON-RPC response around an already rendered result.
pub fn response_with_result(id: &Value, result: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(result.len() + 48);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    if serde_json::to_writer(&mut out, id).is_err() {
        out.truncate(0);
        out.extend_from_slice(br#"{"jsonrpc":"2.0","id":null"#);
    }
    out.extend_from_slice(br#","result":"#);
    out.extend_from_slice(result);
    out.push(b'}');
    out
}
