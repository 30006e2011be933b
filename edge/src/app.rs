//! The seam between the transport (pingora, TLS, routing, rmcp in `server`/`mcp`) and
//! the control plane (store, identity, create tools, REST in `store`/`identity`/`tools`/
//! `rest`). The transport turns HTTP and MCP into calls on [`App`]; `App` never sees
//! sockets, and the transport never touches sled.

use std::net::IpAddr;

use paddock_shared::ErrorCode;
use serde_json::Value;

/// Scopes a key can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Execute,
}

/// Which MCP endpoint a request was routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Create,
    Run,
}

/// Who is calling: the result of authenticating an API key (or a JWT on REST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account_id: String,
    pub key_id: String,
    pub tier: paddock_shared::model::Tier,
    pub scopes: Vec<Scope>,
    /// Set when the key is bound to one namespace.
    pub namespace: Option<String>,
    pub is_admin: bool,
}

/// A typed, user-visible failure: a stable code and a message that says what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Extra fields merged into the JSON body (e.g. `usage`, `limit`, `tier` for quotas).
    pub details: Option<Value>,
    /// `Retry-After` seconds, for 429/503 answers.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), details: None, retry_after: None }
    }

    /// The JSON body: `{"code": "...", "message": "...", ...details}`.
    pub fn body(&self) -> Value {
        let mut v = serde_json::json!({ "code": self.code.as_str(), "message": self.message });
        if let (Some(Value::Object(extra)), Value::Object(map)) = (&self.details, &mut v) {
            for (k, val) in extra {
                map.insert(k.clone(), val.clone());
            }
        }
        v
    }
}

/// A tool as listed by `tools/list`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    pub name: String,
    pub description: String,
    /// A JSON Schema object (`{"type":"object",...}`).
    pub input_schema: Value,
}

/// A REST request, already read off the wire (body bounded by the transport).
#[derive(Debug, Clone)]
pub struct RestRequest {
    pub method: String,
    /// Path without the query string, e.g. `/v1/auth/login`.
    pub path: String,
    pub query: Option<String>,
    /// Lower-cased header names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub client_addr: Option<IpAddr>,
}

/// A REST response: status and JSON body.
#[derive(Debug, Clone)]
pub struct RestResponse {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}
