//! The edge-only record of a remote MCP server (`mcp_servers` tree): where it is, its
//! sealed credentials, settings, rules, exposure and the cached tool schemas. Only
//! [`McpServerConfig::view`] (secret-free) is replicated to workers.

use std::collections::BTreeMap;

use paddock_shared::model::{RemoteServerRecord, RemoteToolRecord};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::secrets::Sealed;

/// Default `response_limit_bytes` (1 MiB).
pub const DEFAULT_RESPONSE_LIMIT_BYTES: u64 = 1_048_576;
/// Default `timeout_seconds`.
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 30;
/// Default `max_calls_per_execution`.
pub const DEFAULT_MAX_CALLS_PER_EXECUTION: u32 = 50;
/// Default `retry_on_failure`.
pub const DEFAULT_RETRY_ON_FAILURE: bool = true;
/// Default `retry_count`.
pub const DEFAULT_RETRY_COUNT: u32 = 2;

/// How the edge talks to the server. No stdio: the edge never runs commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transport {
    /// MCP streamable HTTP (one endpoint, POST + optional SSE replies).
    StreamableHttp,
    /// The legacy HTTP+SSE transport (GET an event stream, POST messages to the endpoint
    /// it announces).
    Sse,
}

impl Transport {
    /// `streamable_http` or `sse`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::StreamableHttp => "streamable_http",
            Transport::Sse => "sse",
        }
    }

    /// Parses the names of [`Transport::as_str`] (also `http`, `streamable-http`).
    pub fn parse(s: &str) -> Option<Transport> {
        match s {
            "streamable_http" | "streamable-http" | "http" => Some(Transport::StreamableHttp),
            "sse" => Some(Transport::Sse),
            _ => None,
        }
    }
}

/// The per-server settings (`set_mcp_server_setting`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub response_limit_bytes: u64,
    pub timeout_seconds: u32,
    pub max_calls_per_execution: u32,
    pub retry_on_failure: bool,
    pub retry_count: u32,
    pub enabled: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            response_limit_bytes: DEFAULT_RESPONSE_LIMIT_BYTES,
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            max_calls_per_execution: DEFAULT_MAX_CALLS_PER_EXECUTION,
            retry_on_failure: DEFAULT_RETRY_ON_FAILURE,
            retry_count: DEFAULT_RETRY_COUNT,
            enabled: true,
        }
    }
}

/// What a rule does. Request rules act before the call, response rules after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RuleKind {
    /// Refuse calls of the matched tools (`RULE_BLOCKED`).
    BlockTool,
    /// Set argument `param` to the JSON value (text), overriding what the caller sent.
    InjectParam { param: String, value_json: String },
    /// Refuse calls without argument `param` (`INVALID_ARGUMENT`).
    RequireParam { param: String },
    /// Lower numeric argument `param` to at most `max`.
    CapParam { param: String, max: f64 },
    /// Replace the values of these keys (anywhere in the result) with `"[REDACTED]"`.
    RedactFields { fields: Vec<String> },
    /// Remove HTML tags from every string of the result.
    StripHtml,
    /// Wrap the result in `{"untrusted_content": …, "notice": …}` so the caller's model
    /// can tell third-party data from instructions.
    WrapTrustBoundary,
    // Stored with bincode: new variants go at the end, never between.
    /// Look for prompt-injection phrasing in every string of the result and act on a match.
    ScanInjection { action: InjectionAction },
    /// Put a fixed text before the result (a first text item of a content list, else
    /// `{"header": …, "content": …}`).
    InjectHeader { text: String },
}

/// What `scan_injection` does when a string of the result matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InjectionAction {
    /// Wrap the result as `{"content": …, "prompt_injection_suspected": {…}}`.
    Flag,
    /// Replace each matching span with a marker.
    Redact,
    /// Fail the call with `RULE_BLOCKED`.
    Block,
}

impl InjectionAction {
    /// The action's name as given to `add_mcp_server_rule`.
    pub fn name(self) -> &'static str {
        match self {
            InjectionAction::Flag => "flag",
            InjectionAction::Redact => "redact",
            InjectionAction::Block => "block",
        }
    }

    /// Parses an action name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Flag, Self::Redact, Self::Block]
            .into_iter()
            .find(|a| a.name() == name)
    }
}

impl RuleKind {
    /// The rule's type name as given to `add_mcp_server_rule`.
    pub fn name(&self) -> &'static str {
        match self {
            RuleKind::BlockTool => "block_tool",
            RuleKind::InjectParam { .. } => "inject_param",
            RuleKind::RequireParam { .. } => "require_param",
            RuleKind::CapParam { .. } => "cap_param",
            RuleKind::RedactFields { .. } => "redact_fields",
            RuleKind::StripHtml => "strip_html",
            RuleKind::WrapTrustBoundary => "wrap_trust_boundary",
            RuleKind::ScanInjection { .. } => "scan_injection",
            RuleKind::InjectHeader { .. } => "inject_header",
        }
    }

    /// Whether the rule acts on the request (else on the response).
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            RuleKind::BlockTool
                | RuleKind::InjectParam { .. }
                | RuleKind::RequireParam { .. }
                | RuleKind::CapParam { .. }
        )
    }
}

/// One rule: an id (`r-xxxxxxxx`), the tool glob it applies to (matched against the
/// server's own tool name) and what it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub tools: String,
    pub kind: RuleKind,
    pub created_at: u64,
}

/// Where a pinned parameter's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pinned {
    /// A literal JSON value (text).
    Literal(String),
    /// The namespace's stored secret of this name (a string), decrypted at call time.
    Secret(String),
}

/// How one tool is shown to code and the model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolOverride {
    /// The exposed name instead of the server's.
    pub rename: Option<String>,
    /// The exposed description instead of the server's.
    pub description: Option<String>,
    /// Parameters set at call time and removed from the exposed schema.
    pub pinned: BTreeMap<String, Pinned>,
}

/// Which tools are exposed and how.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exposure {
    /// `None`: every tool the server advertises; `Some`: only these (server names).
    pub only: Option<Vec<String>>,
    /// Per server tool name.
    pub tools: BTreeMap<String, ToolOverride>,
}

/// A tool as the server advertised it, cached at add/refresh time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveredTool {
    pub name: String,
    pub description: String,
    /// JSON text of the input schema.
    pub input_schema_json: String,
    /// Hex sha256 of (name, description, schema).
    pub hash: String,
}

impl DiscoveredTool {
    /// A discovered tool with its hash.
    pub fn new(name: String, description: String, input_schema_json: String) -> DiscoveredTool {
        let hash = hex::encode(Sha256::digest(
            format!("{name}\n{description}\n{input_schema_json}").as_bytes(),
        ));
        DiscoveredTool {
            name,
            description,
            input_schema_json,
            hash,
        }
    }
}

/// Hex sha256 over the tools' hashes in name order.
pub fn schema_hash(tools: &[DiscoveredTool]) -> String {
    let mut sorted: Vec<&DiscoveredTool> = tools.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut h = Sha256::new();
    for t in sorted {
        h.update(t.name.as_bytes());
        h.update(b"\0");
        h.update(t.hash.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// The edge's record of a remote MCP server. Never replicated; its secrets are sealed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpServerConfig {
    pub namespace: String,
    pub name: String,
    pub description: String,
    /// The URL without user info, query or fragment, for display.
    pub url_display: String,
    /// The whole URL (it may carry credentials).
    pub url: Sealed,
    pub transport: Transport,
    pub auth_token: Option<Sealed>,
    /// Header name (lower case) → sealed value.
    pub headers: BTreeMap<String, Sealed>,
    pub settings: Settings,
    pub rules: Vec<Rule>,
    pub exposure: Exposure,
    /// Sorted by name.
    pub tools: Vec<DiscoveredTool>,
    pub schema_hash: String,
    /// Bumped whenever the URL, transport, token or headers change: pooled connections of
    /// an older generation are dropped.
    pub generation: u64,
    pub created_at: u64,
    pub updated_at: u64,
    pub refreshed_at: u64,
}

/// One exposed tool: how code calls it and what the server calls it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExposedTool<'a> {
    pub exposed: String,
    pub description: String,
    /// The schema the model sees (pinned parameters removed).
    pub schema: serde_json::Value,
    pub tool: &'a DiscoveredTool,
    pub pinned: Option<&'a BTreeMap<String, Pinned>>,
}

impl McpServerConfig {
    /// The exposed tools, sorted by exposed name.
    pub fn exposed_tools(&self) -> Vec<ExposedTool<'_>> {
        let mut out: Vec<ExposedTool<'_>> = self
            .tools
            .iter()
            .filter(|t| {
                self.exposure
                    .only
                    .as_ref()
                    .is_none_or(|only| only.iter().any(|o| o == &t.name))
            })
            .map(|t| {
                let o = self.exposure.tools.get(&t.name);
                let mut schema: serde_json::Value = serde_json::from_str(&t.input_schema_json)
                    .unwrap_or_else(|_| serde_json::json!({"type": "object"}));
                if let Some(o) = o {
                    hide_params(&mut schema, o.pinned.keys());
                }
                ExposedTool {
                    exposed: o
                        .and_then(|o| o.rename.clone())
                        .unwrap_or_else(|| t.name.clone()),
                    description: o
                        .and_then(|o| o.description.clone())
                        .unwrap_or_else(|| t.description.clone()),
                    schema,
                    tool: t,
                    pinned: o.map(|o| &o.pinned).filter(|p| !p.is_empty()),
                }
            })
            .collect();
        out.sort_by(|a, b| a.exposed.cmp(&b.exposed));
        out
    }

    /// The exposed tool called `exposed`.
    pub fn exposed_tool(&self, exposed: &str) -> Option<ExposedTool<'_>> {
        self.exposed_tools()
            .into_iter()
            .find(|t| t.exposed == exposed)
    }

    /// The secret-free view replicated to workers.
    pub fn view(&self) -> RemoteServerRecord {
        RemoteServerRecord {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            enabled: self.settings.enabled,
            tools: self
                .exposed_tools()
                .into_iter()
                .map(|t| RemoteToolRecord {
                    name: t.exposed,
                    description: t.description,
                    input_schema_json: t.schema.to_string(),
                })
                .collect(),
            schema_hash: self.schema_hash.clone(),
            max_calls_per_execution: self.settings.max_calls_per_execution,
            timeout_seconds: self.settings.timeout_seconds,
            updated_at: self.updated_at,
        }
    }
}

/// Removes `names` from a JSON schema's `properties` and `required`.
fn hide_params<'a>(schema: &mut serde_json::Value, names: impl Iterator<Item = &'a String>) {
    let names: Vec<&String> = names.collect();
    if let Some(props) = schema
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    {
        for n in &names {
            props.remove(n.as_str());
        }
    }
    if let Some(req) = schema
        .get_mut("required")
        .and_then(serde_json::Value::as_array_mut)
    {
        req.retain(|r| !names.iter().any(|n| r.as_str() == Some(n.as_str())));
    }
}
