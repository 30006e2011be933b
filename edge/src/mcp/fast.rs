//! Stateless fast path for the hottest MCP requests: session-less, legacy-generation
//! (`MCP-Protocol-Version` absent or before 2026-07-28) JSON-RPC `tools/list` POSTs, and
//! `tools/call` POSTs to the run endpoint ([`tools_call`]).
//!
//! Measured on 2 cores over TLS (benches/edge_tools_list.sh): rmcp's stateless service
//! builds a service and a task per request (~2.6k requests/s for tools/list); answering
//! these requests directly with rmcp's own model types gives the same bytes at a
//! fraction of the cost. Anything else — other methods, batches, sessions, cursors,
//! the 2026-07-28 generation (per-request `_meta`, `Mcp-Method`), odd headers or bodies —
//! goes to rmcp, which also produces the protocol errors. Tests check that both paths
//! give identical bodies (`edge/tests/mcp_fast_call.rs` for tools/call).
//!
//! A fast `tools/call` runs the same code as rmcp's handler ([`super::run_call`]: the
//! stateless cancel registration, `RunTools::call_outcome`, the mapping of errors), and
//! its response is rendered by [`call_body`] exactly as rmcp's stateless JSON reply.

use rmcp::ErrorData;
use rmcp::model::{
    CallToolResponse, ListToolsResult, RequestId, ServerJsonRpcMessage, ServerResult, Tool,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::cancel::RequestKey;

/// Protocol versions of the `initialize` generation the fast path answers for.
const LEGACY_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

#[derive(Deserialize)]
struct Request<'a> {
    jsonrpc: &'a str,
    id: Value,
    method: &'a str,
    /// Only the keys: every POST on the fast path is first tried as a `tools/list`, so the
    /// values (a `tools/call`'s arguments and code) are skipped, not built into a tree;
    /// `params` that is neither null nor an object fails the parse (rmcp then answers).
    #[serde(default)]
    params: Option<std::collections::BTreeMap<String, serde::de::IgnoredAny>>,
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
    // Only an empty params object (or one with just `_meta`): no cursor.
    if let Some(m) = &req.params
        && !m.keys().all(|k| k == "_meta")
    {
        return None;
    }
    Some(req.id)
}

/// Largest body rmcp's service reads (its default `max_request_body_bytes`); a larger one
/// goes to rmcp, which answers it 413.
const RMCP_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Whether rmcp's stateless service would take this POST's headers as a legacy-generation
/// JSON request and answer it with a JSON body: no session, a legacy (or no) protocol
/// version, `Content-Type: application/json` (parameters allowed), an `Accept` naming both
/// `application/json` and `text/event-stream` and a usable Host. Conservative: an `Accept`
/// with quality values or quotes is left to rmcp's own parser.
fn legacy_json_post(uri: &http::Uri, headers: &http::HeaderMap) -> bool {
    if headers.contains_key("mcp-session-id") {
        return false;
    }
    if let Some(v) = headers.get("mcp-protocol-version")
        && !v.to_str().is_ok_and(|v| LEGACY_VERSIONS.contains(&v))
    {
        return false;
    }
    let json_ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split_once(';')
                .map_or(ct, |(essence, _)| essence)
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
    if !json_ct {
        return false;
    }
    let (mut json, mut sse) = (false, false);
    for v in &headers.get_all(http::header::ACCEPT) {
        let Ok(v) = v.to_str() else { continue };
        if v.contains('"') {
            return false;
        }
        for entry in v.split(',') {
            let mut parts = entry.split(';');
            let essence = parts.next().unwrap_or("").trim();
            if parts.any(|param| {
                param
                    .split_once('=')
                    .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
            }) {
                return false;
            }
            json |= essence.eq_ignore_ascii_case("application/json");
            sse |= essence.eq_ignore_ascii_case("text/event-stream");
        }
    }
    if !(json && sse) {
        return false;
    }
    match headers.get(http::header::HOST) {
        Some(h) => h
            .to_str()
            .ok()
            .is_some_and(|h| http::uri::Authority::try_from(h).is_ok()),
        None => uri.authority().is_some(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallRequest<'a> {
    jsonrpc: &'a str,
    id: Value,
    method: &'a str,
    params: Map<String, Value>,
}

/// A `tools/call` the fast path answers (see [`tools_call`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The JSON-RPC id, as rmcp's response repeats it.
    pub id: RequestId,
    /// The same id, as the stateless cancel table keys it.
    pub key: RequestKey,
    /// `params.name`.
    pub name: String,
    /// `params.arguments` (empty when absent or null, as rmcp's handler gets it).
    pub arguments: Map<String, Value>,
}

/// The `tools/call` in this POST when the fast path may answer it, or `None` to use rmcp:
/// [`legacy_json_post`] headers, one JSON-RPC 2.0 request (not a batch) with an integer
/// or string id, `params` with a string `name`, an object (or absent) `arguments` and at
/// most a `_meta` carrying no `io.modelcontextprotocol/…` keys (those select the
/// 2026-07-28 generation), and nothing else.
pub fn tools_call(uri: &http::Uri, headers: &http::HeaderMap, body: &[u8]) -> Option<ToolCall> {
    if body.len() > RMCP_MAX_BODY_BYTES || !legacy_json_post(uri, headers) {
        return None;
    }
    let req: CallRequest<'_> = serde_json::from_slice(body).ok()?;
    if req.jsonrpc != "2.0" || req.method != "tools/call" {
        return None;
    }
    let (id, key) = match req.id {
        Value::Number(n) => {
            let n = n.as_i64()?;
            (RequestId::Number(n), RequestKey::Number(n))
        }
        Value::String(s) => (RequestId::String(s.as_str().into()), RequestKey::String(s)),
        _ => return None,
    };
    let mut params = req.params;
    if !params
        .keys()
        .all(|k| matches!(k.as_str(), "name" | "arguments" | "_meta"))
    {
        return None;
    }
    if let Some(meta) = params.get("_meta") {
        let generation_keys = meta
            .as_object()?
            .keys()
            .any(|k| k.starts_with("io.modelcontextprotocol/"));
        if generation_keys {
            return None;
        }
    }
    let Some(Value::String(name)) = params.remove("name") else {
        return None;
    };
    let arguments = match params.remove("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return None,
    };
    Some(ToolCall {
        id,
        key,
        name,
        arguments,
    })
}

/// The JSON-RPC response body of a `tools/call` as rmcp's stateless service writes it for
/// the legacy generation: the result without `resultType: "complete"`, or the error.
pub fn call_body(id: RequestId, out: Result<CallToolResponse, ErrorData>) -> Vec<u8> {
    let message = match out {
        Ok(response) => {
            let mut result = ServerResult::from(response);
            result.strip_result_type_for_legacy_peer();
            ServerJsonRpcMessage::response(result, id)
        }
        Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
    };
    serde_json::to_vec(&message).unwrap_or_else(|_| {
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"cannot render the tools/call result"}}"#.to_vec()
    })
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
        for params in ["null", "{}", r#"{"_meta":{"progressToken":1}}"#] {
            let body =
                format!(r#"{{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{params}}}"#);
            assert_eq!(
                tools_list_id(&headers(OK), body.as_bytes()),
                Some(Value::from(7)),
                "{params}"
            );
        }
        for other in [
            &br#"{"jsonrpc":"2.0","id":7,"method":"tools/call"}"#[..],
            br#"[{"jsonrpc":"2.0","id":7,"method":"tools/list"}]"#,
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"cursor":"x"}}"#,
            br#"{"jsonrpc":"2.0","method":"tools/list"}"#,
            br#"{"jsonrpc":"2.0","id":null,"method":"tools/list"}"#,
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":[]}"#,
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":"x"}"#,
            b"not json",
        ] {
            assert!(
                tools_list_id(&headers(OK), other).is_none(),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    const CALL: &[u8] = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"execute","arguments":{"code":"result = 1"}}}"#;

    fn uri() -> http::Uri {
        http::Uri::from_static("https://localhost/mcp/run/acme")
    }

    #[test]
    fn takes_only_plain_legacy_tools_calls() {
        let call = tools_call(&uri(), &headers(OK), CALL).expect("eligible");
        assert_eq!(call.id, RequestId::Number(7));
        assert_eq!(call.key, RequestKey::Number(7));
        assert_eq!(call.name, "execute");
        assert_eq!(call.arguments["code"], "result = 1");
        let s = br#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"a.b","_meta":{"progressToken":1}}}"#;
        let call = tools_call(&uri(), &headers(OK), s).expect("eligible");
        assert_eq!(call.key, RequestKey::String("x".into()));
        assert!(call.arguments.is_empty());
        let mut h = headers(OK);
        h.insert(
            "content-type",
            http::HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        h.insert(
            "mcp-protocol-version",
            http::HeaderValue::from_static("2025-06-18"),
        );
        assert!(tools_call(&uri(), &h, CALL).is_some());

        // Headers rmcp treats otherwise (or that its own parser should judge).
        for (k, v) in [
            ("mcp-session-id", "s"),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-protocol-version", "1999-01-01"),
            ("content-type", "application/jsonx"),
            ("content-type", "text/plain"),
            ("accept", "application/json"),
            ("accept", "application/json, text/event-stream;q=0"),
            ("accept", "application/json;q=0.5, text/event-stream"),
            ("host", "bad host"),
        ] {
            let mut h = headers(OK);
            h.insert(k, http::HeaderValue::from_static(v));
            assert!(tools_call(&uri(), &h, CALL).is_none(), "{k}: {v}");
        }
        let mut h = headers(OK);
        h.remove("content-type");
        assert!(tools_call(&uri(), &h, CALL).is_none());

        // Bodies rmcp must judge.
        for other in [
            &br#"[{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"execute"}}]"#[..],
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#,
            br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"execute"}}"#,
            br#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"execute"}}"#,
            br#"{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":{"name":"execute"}}"#,
            br#"{"jsonrpc":"2.0","id":18446744073709551615,"method":"tools/call","params":{"name":"execute"}}"#,
            br#"{"jsonrpc":"1.0","id":7,"method":"tools/call","params":{"name":"execute"}}"#,
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call"}"#,
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":null}"#,
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}}"#,
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":5}}"#,
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"execute","arguments":[1]}}"#,
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"execute","task":{}}}"#,
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"execute","_meta":5}}"#,
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"execute","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"execute"},"extra":1}"#,
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"execute"}"#,
            b"not json",
        ] {
            assert!(
                tools_call(&uri(), &headers(OK), other).is_none(),
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
