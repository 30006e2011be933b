//! The domain model shared by edge and worker: tiers and languages. The control-plane
//! records (accounts, namespaces, services, functions, versions…) join here as the
//! edge and the replication protocol need them.

use serde::{Deserialize, Serialize};

/// An account tier; each tier has a sandbox profile of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Free,
    Builder,
    Pro,
    Enterprise,
}

impl Tier {
    /// Every tier, cheapest first.
    pub const ALL: [Tier; 4] = [Tier::Free, Tier::Builder, Tier::Pro, Tier::Enterprise];

    /// The lower-case name, which is also the sandbox profile name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Builder => "builder",
            Tier::Pro => "pro",
            Tier::Enterprise => "enterprise",
        }
    }

    /// Parses a lower-case tier name.
    pub fn parse(s: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sandbox language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
    #[serde(alias = "ts")]
    TypeScript,
}

impl Language {
    /// Both languages.
    pub const ALL: [Language; 2] = [Language::Python, Language::TypeScript];

    /// `python` or `typescript`.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::TypeScript => "typescript",
        }
    }

    /// Parses `python`/`py` or `typescript`/`ts`.
    pub fn parse(s: &str) -> Option<Language> {
        match s {
            "python" | "py" => Some(Language::Python),
            "typescript" | "ts" => Some(Language::TypeScript),
            _ => None,
        }
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// --- control-plane records (written by the edge, replicated to workers) ---
//
// These travel through the replication log encoded with bincode (serde), so they hold no
// `serde_json::Value`: JSON documents (schemas, config) are stored as JSON text. Times are
// unix seconds.

/// A namespace: the unit of routing and isolation, owned by one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceRecord {
    pub name: String,
    pub description: String,
    /// Owning account id.
    pub owner: String,
    pub created_at: u64,
}

/// A service: a group of functions inside a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub namespace: String,
    pub name: String,
    pub description: String,
    pub created_at: u64,
}

/// A function's metadata; its code lives in immutable [`VersionRecord`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRecord {
    pub namespace: String,
    pub service: String,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    /// The version that runs (the newest one).
    pub current_version: u32,
    pub created_at: u64,
    pub updated_at: u64,
}

/// One immutable version of a function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub namespace: String,
    pub service: String,
    pub function: String,
    pub version: u32,
    /// Always `code_sandbox` for now.
    pub backend: String,
    pub language: Language,
    pub code: String,
    /// JSON text of the function's config object (`{}` when none).
    pub config_json: String,
    /// JSON text of the input schema, if any.
    pub input_schema_json: Option<String>,
    /// JSON text of the output schema, if any.
    pub output_schema_json: Option<String>,
    /// Canonical package names (aliases resolved).
    pub requirements: Vec<String>,
    /// Template the version was made from, if any.
    pub template: Option<String>,
    /// Set when the version was made by `restore_version`: the version it copies.
    pub restored_from: Option<u32>,
    pub created_at: u64,
}

/// A remote MCP server attached to a namespace, as workers see it (issue 6): what
/// sandboxed code needs to call its tools through the bridge. Never its URL, auth token,
/// headers or pinned parameter values: those stay on the edge, encrypted at rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteServerRecord {
    pub namespace: String,
    /// Server name as given to `add_mcp_server` (`[a-z0-9_-]`, 1–63 characters).
    pub name: String,
    pub description: String,
    /// A disabled server keeps its record but every call fails with `MCP_SERVER_DISABLED`.
    pub enabled: bool,
    /// The tools code may call, after the exposure settings (subset, renames, description
    /// overrides; pinned parameters removed from the schemas), sorted by `name`.
    pub tools: Vec<RemoteToolRecord>,
    /// Hex sha256 of the discovered tool list (names, descriptions, schemas) as cached.
    pub schema_hash: String,
    /// Setting `max_calls_per_execution` (the bridge key's call budget for this server).
    pub max_calls_per_execution: u32,
    /// Setting `timeout_seconds` (per call, enforced by the edge).
    pub timeout_seconds: u32,
    pub updated_at: u64,
}

/// One exposed tool of a [`RemoteServerRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteToolRecord {
    /// The exposed name (after a rename). Code calls it as `mcp__{server}__{name}` with
    /// every character outside `[A-Za-z0-9_]` turned into `_`.
    pub name: String,
    /// The exposed description (the server's, or the override).
    pub description: String,
    /// JSON text of the input schema the model sees (pinned parameters removed).
    pub input_schema_json: String,
}

/// One replicated state change. Only what code execution needs: never accounts, keys,
/// key digests, passwords or credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// One op per log entry, moved rather than stored in bulk: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
pub enum ReplOp {
    /// A namespace was made (or its metadata changed).
    PutNamespace(NamespaceRecord),
    /// A service was made (or its metadata changed).
    PutService(ServiceRecord),
    /// A service and every function (and version) in it were deleted.
    DeleteService { namespace: String, name: String },
    /// A function was made or changed; `version` is set when a new version was added.
    PutFunction {
        function: FunctionRecord,
        version: Option<VersionRecord>,
    },
    /// A function and its versions were deleted.
    DeleteFunction {
        namespace: String,
        service: String,
        name: String,
    },
    /// A remote MCP server was attached or changed (its secret-free view).
    PutRemoteServer(RemoteServerRecord),
    /// A remote MCP server was removed from a namespace.
    DeleteRemoteServer { namespace: String, name: String },
}

/// One entry of the replication log: a monotonic sequence number and the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplEntry {
    pub seq: u64,
    pub op: ReplOp,
}
