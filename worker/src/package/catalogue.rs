//! The namespace's functions as the package sees them: importable identifiers (hyphens →
//! underscores, keywords and clashes resolved), signatures from the input schemas, and the
//! compact catalogue text shown as the package's docstring.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use paddock_shared::model::{FunctionRecord, Language, RemoteServerRecord, VersionRecord};
use paddock_shared::names::to_identifier;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Longest description kept on a catalogue line, in characters (`…` marks a cut).
pub const MAX_DESCRIPTION_CHARS: usize = 80;

/// Top-level names of the package API; services and functions never take them.
const RESERVED_TOP: &[&str] = &[
    "search",
    "describe",
    "FunctionCallError",
    "RemoteToolError",
    "RemoteTimeout",
    "RemoteBlocked",
    "RemoteBudgetExceeded",
    "RemoteUnavailable",
    "RemoteToolFailed",
    "last_remote_call",
];

/// Lower-case Python keywords and JavaScript reserved words: a name equal to one gets a
/// trailing `_` (`class` → `class_`) so it imports in both languages.
const KEYWORDS: &[&str] = &[
    "and",
    "arguments",
    "as",
    "assert",
    "async",
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "def",
    "default",
    "del",
    "delete",
    "do",
    "elif",
    "else",
    "enum",
    "eval",
    "except",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "from",
    "function",
    "global",
    "if",
    "implements",
    "import",
    "in",
    "instanceof",
    "interface",
    "is",
    "lambda",
    "let",
    "new",
    "nonlocal",
    "not",
    "null",
    "or",
    "package",
    "pass",
    "private",
    "protected",
    "public",
    "raise",
    "return",
    "static",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "undefined",
    "var",
    "void",
    "while",
    "with",
    "yield",
];

/// One argument of a function, from its input schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Param {
    /// Property name, as in the schema.
    pub name: String,
    /// Listed in the schema's `required`.
    pub required: bool,
}

/// One function of the namespace, as the package exposes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// Index into the `functions` slice given to [`Catalogue::build`].
    #[serde(skip)]
    pub index: usize,
    /// `service_ident.ident`: the key of the wrapper inside the package.
    pub key: String,
    /// Original service name.
    pub service: String,
    /// Original function name.
    pub name: String,
    /// `service.function` with the original names (the call-log name).
    pub qualified: String,
    /// Importable service identifier (`functions.<service_ident>`).
    pub service_ident: String,
    /// Importable function identifier inside its service module.
    pub ident: String,
    /// How the catalogue calls it from the package top: `ident`, or
    /// `service_ident.ident` when the short name is ambiguous or taken.
    pub call: String,
    /// True when `ident` is re-exported at the package top.
    pub top_level: bool,
    /// One-line description (whitespace collapsed, cut at [`MAX_DESCRIPTION_CHARS`]).
    pub description: String,
    /// Arguments, required first; `None` when the function has no usable schema.
    pub params: Option<Vec<Param>>,
    /// Signature in the package's language, e.g. `hello(name, greeting=None)`.
    pub signature: String,
    /// The input schema (parsed), if any.
    pub input_schema: Option<serde_json::Value>,
    /// Language the function is written in.
    pub language: &'static str,
    /// The version that runs.
    pub version: u32,
    /// True when the function is in the other language and runs through the bridge.
    pub bridged: bool,
    /// Its source file relative to `functions/`, when it runs in-process.
    pub file: Option<String>,
}

/// One tool of a remote MCP server, as the package exposes it: a wrapper named
/// `mcp__{server}__{tool}` that calls the tool through the bridge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteEntry {
    /// The wrapper's identifier (`mcp__{server}__{tool}`, every character outside
    /// `[A-Za-z0-9_]` turned into `_`, `_2`… on a clash); also its `call`.
    pub key: String,
    /// Same as `key` (how the catalogue calls it).
    pub call: String,
    /// Same as `key` (search scores names on it).
    pub ident: String,
    /// Server name as attached.
    pub server: String,
    /// Same as `server` (search scores services on it).
    pub service: String,
    /// The server name as an identifier (`-` → `_`).
    pub service_ident: String,
    /// Exposed tool name, as sent to the edge.
    pub tool: String,
    /// Same as `tool`.
    pub name: String,
    /// Same as `key` (the call-log name).
    pub qualified: String,
    /// One-line description.
    pub description: String,
    /// Arguments from the cached input schema, required first.
    pub params: Option<Vec<Param>>,
    /// `mcp__s__t(req, opt=None)` / `mcp__s__t({req, opt?})`.
    pub signature: String,
    /// The cached input schema (pinned parameters already removed by the edge).
    pub input_schema: Option<serde_json::Value>,
    /// Always `mcp`.
    pub language: &'static str,
    /// Always `None` (remote tools have no versions here).
    pub version: Option<u32>,
    /// The server is disabled: calls fail with `RemoteUnavailable`.
    pub disabled: bool,
}

/// Every function of a namespace, resolved for one package language.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalogue {
    pub namespace: String,
    pub language: Language,
    /// Services in order: (original name, identifier).
    pub services: Vec<(String, String)>,
    /// Functions, sorted by service then function (the input order).
    pub entries: Vec<Entry>,
    /// Remote MCP tools, by server name then tool name.
    pub remote: Vec<RemoteEntry>,
    /// The catalogue text (docstring).
    pub text: String,
}

/// The wrapper identifier of remote tool `tool` of `server`: `mcp__{server}__{tool}` with
/// every character outside `[A-Za-z0-9_]` turned into `_`.
pub fn remote_ident(server: &str, tool: &str) -> String {
    paddock_shared::names::remote_tool_ident(server, tool)
}

fn remote_entries(language: Language, servers: &[RemoteServerRecord]) -> Vec<RemoteEntry> {
    let mut servers: Vec<&RemoteServerRecord> = servers.iter().collect();
    servers.sort_by(|a, b| a.name.cmp(&b.name));
    let mut taken = BTreeSet::new();
    let mut out = Vec::new();
    for srv in servers {
        let mut tools: Vec<_> = srv.tools.iter().collect();
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        for t in tools {
            let key = dedupe(remote_ident(&srv.name, &t.name), &taken);
            taken.insert(key.clone());
            let params = params_of(&t.input_schema_json);
            let input_schema = serde_json::from_str(&t.input_schema_json).ok();
            out.push(RemoteEntry {
                signature: signature(language, &key, params.as_deref()),
                call: key.clone(),
                ident: key.clone(),
                qualified: key.clone(),
                key,
                server: srv.name.clone(),
                service: srv.name.clone(),
                service_ident: to_identifier(&srv.name),
                tool: t.name.clone(),
                name: t.name.clone(),
                description: one_line(&t.description),
                params,
                input_schema,
                language: "mcp",
                version: None,
                disabled: !srv.enabled,
            });
        }
    }
    out
}

impl Catalogue {
    /// Resolves identifiers and signatures and renders the text.
    pub fn build(
        namespace: &str,
        functions: &[(FunctionRecord, VersionRecord)],
        language: Language,
    ) -> Catalogue {
        Catalogue::build_with_remote(namespace, functions, &[], language)
    }

    /// [`Catalogue::build`] plus the tools of the namespace's remote MCP servers.
    pub fn build_with_remote(
        namespace: &str,
        functions: &[(FunctionRecord, VersionRecord)],
        remote: &[RemoteServerRecord],
        language: Language,
    ) -> Catalogue {
        let mut services: Vec<(String, String)> = Vec::new();
        let mut service_of: BTreeMap<&str, String> = BTreeMap::new();
        let mut taken_services: BTreeSet<String> = BTreeSet::new();
        for (f, _) in functions {
            if service_of.contains_key(f.service.as_str()) {
                continue;
            }
            let mut ident = keyword_safe(to_identifier(&f.service));
            if RESERVED_TOP.contains(&ident.as_str()) {
                ident.push('_');
            }
            let ident = dedupe(ident, &taken_services);
            taken_services.insert(ident.clone());
            service_of.insert(&f.service, ident.clone());
            services.push((f.service.clone(), ident));
        }

        let mut entries = Vec::with_capacity(functions.len());
        let mut taken_in: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (index, (f, v)) in functions.iter().enumerate() {
            let service_ident = service_of[f.service.as_str()].clone();
            let taken = taken_in.entry(service_ident.clone()).or_default();
            let ident = dedupe(keyword_safe(to_identifier(&f.name)), taken);
            taken.insert(ident.clone());
            let input_schema = v
                .input_schema_json
                .as_deref()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok());
            let params = v.input_schema_json.as_deref().and_then(params_of);
            let bridged = v.language != language;
            let file = (!bridged).then(|| {
                let ext = match language {
                    Language::Python => "py",
                    Language::TypeScript => "js",
                };
                format!("_code/{service_ident}__{ident}.{ext}")
            });
            entries.push(Entry {
                index,
                key: format!("{service_ident}.{ident}"),
                service: f.service.clone(),
                name: f.name.clone(),
                qualified: format!("{}.{}", f.service, f.name),
                service_ident,
                ident,
                call: String::new(),
                top_level: false,
                description: one_line(&f.description),
                params,
                signature: String::new(),
                input_schema,
                language: v.language.as_str(),
                version: v.version,
                bridged,
                file,
            });
        }

        let mut short_count: BTreeMap<&str, usize> = BTreeMap::new();
        for e in &entries {
            *short_count.entry(e.ident.as_str()).or_default() += 1;
        }
        let top: Vec<bool> = entries
            .iter()
            .map(|e| {
                short_count[e.ident.as_str()] == 1
                    && !taken_services.contains(&e.ident)
                    && !RESERVED_TOP.contains(&e.ident.as_str())
            })
            .collect();
        for (e, top_level) in entries.iter_mut().zip(top) {
            e.top_level = top_level;
            e.call = if top_level {
                e.ident.clone()
            } else {
                e.key.clone()
            };
            e.signature = signature(language, &e.call, e.params.as_deref());
        }

        let remote = remote_entries(language, remote);
        let text = render(namespace, language, &services, &entries, &remote);
        Catalogue {
            namespace: namespace.to_owned(),
            language,
            services,
            entries,
            remote,
            text,
        }
    }

    /// The `_catalog.json` file: namespace, language and entries.
    pub fn to_json(&self) -> String {
        let value = serde_json::json!({
            "namespace": self.namespace,
            "language": self.language.as_str(),
            "functions": self.entries,
            "remote": self.remote,
        });
        value.to_string()
    }
}

fn keyword_safe(mut ident: String) -> String {
    if KEYWORDS.contains(&ident.as_str()) {
        ident.push('_');
    }
    ident
}

/// `ident`, or `ident_2`, `ident_3`… whichever is not taken yet.
fn dedupe(ident: String, taken: &BTreeSet<String>) -> String {
    if !taken.contains(&ident) {
        return ident;
    }
    (2..)
        .map(|n| format!("{ident}_{n}"))
        .find(|c| !taken.contains(c))
        .unwrap_or(ident)
}

/// Whitespace (any, including line separators) collapsed to single spaces, control
/// characters dropped, cut at [`MAX_DESCRIPTION_CHARS`] with `…`.
fn one_line(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let joined: String = words
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if joined.chars().count() <= MAX_DESCRIPTION_CHARS {
        return joined;
    }
    let cut: String = joined.chars().take(MAX_DESCRIPTION_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

/// Arguments from a JSON-schema text: `required` (in its order) first, then the other
/// properties in schema order. `None` when the text is not JSON or has no `properties`.
fn params_of(schema: &str) -> Option<Vec<Param>> {
    #[derive(Deserialize)]
    struct Shape {
        properties: Option<OrderedKeys>,
        #[serde(default)]
        required: serde_json::Value,
    }
    let shape: Shape = serde_json::from_str(schema).ok()?;
    let properties = shape.properties?.0;
    let required: Vec<String> = match shape.required {
        serde_json::Value::Array(items) => {
            let mut seen = BTreeSet::new();
            items
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .filter(|n| seen.insert(n.clone()))
                .collect()
        }
        _ => Vec::new(),
    };
    let mut params: Vec<Param> = required
        .iter()
        .map(|n| Param {
            name: n.clone(),
            required: true,
        })
        .collect();
    params.extend(
        properties
            .into_iter()
            .filter(|p| !required.contains(p))
            .map(|name| Param {
                name,
                required: false,
            }),
    );
    Some(params)
}

/// The keys of a JSON object in document order (serde_json's map sorts them).
struct OrderedKeys(Vec<String>);

impl<'de> Deserialize<'de> for OrderedKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = OrderedKeys;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of properties")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedKeys, A::Error> {
                let mut keys: Vec<String> = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
                Ok(OrderedKeys(keys))
            }
        }
        d.deserialize_map(Keys)
    }
}

/// `call(req, opt=None)` (Python) or `call({req, opt?})` (JavaScript); no schema →
/// `call(**kwargs)` / `call({...})`.
fn signature(language: Language, call: &str, params: Option<&[Param]>) -> String {
    match (language, params) {
        (Language::Python, None) => format!("{call}(**kwargs)"),
        (Language::Python, Some(ps)) => {
            let args: Vec<String> = ps
                .iter()
                .map(|p| {
                    if p.required {
                        p.name.clone()
                    } else {
                        format!("{}=None", p.name)
                    }
                })
                .collect();
            format!("{call}({})", args.join(", "))
        }
        (Language::TypeScript, None) => format!("{call}({{...}})"),
        (Language::TypeScript, Some([])) => format!("{call}()"),
        (Language::TypeScript, Some(ps)) => {
            let args: Vec<String> = ps
                .iter()
                .map(|p| {
                    if p.required {
                        p.name.clone()
                    } else {
                        format!("{}?", p.name)
                    }
                })
                .collect();
            format!("{call}({{{}}})", args.join(", "))
        }
    }
}

fn render(
    namespace: &str,
    language: Language,
    services: &[(String, String)],
    entries: &[Entry],
    remote: &[RemoteEntry],
) -> String {
    let n = entries.len();
    let plural = if n == 1 { "" } else { "s" };
    // Remote tools are counted in the first line when there are any.
    let plural = match remote.len() {
        0 => plural.to_owned(),
        1 => format!("{plural}, 1 remote MCP tool"),
        r => format!("{plural}, {r} remote MCP tools"),
    };
    let mut out = match language {
        Language::Python => format!(
            "Namespace {namespace}: {n} function{plural}. Use: from functions import NAME; \
             NAME(arg=...). Find more: functions.search(\"words\"), functions.describe(\"NAME\").\n"
        ),
        Language::TypeScript => format!(
            "Namespace {namespace}: {n} function{plural}. Use: const {{ NAME }} = \
             require(\"./functions\"); NAME({{arg: ...}}) (await it when it returns a Promise). \
             Find more: functions.search(\"words\"), functions.describe(\"NAME\").\n"
        ),
    };
    out.push_str("[Services]\n");
    if services.is_empty() {
        out.push_str("none\n");
    }
    for (_, ident) in services {
        out.push_str(&format!("[{ident}]\n"));
        for e in entries.iter().filter(|e| &e.service_ident == ident) {
            out.push_str(&e.signature);
            if !e.description.is_empty() {
                out.push_str(" — ");
                out.push_str(&e.description);
            }
            out.push('\n');
        }
    }
    // One `[server]` group per remote MCP server, one line per tool.
    out.push_str("[RemoteMCP]\n");
    if remote.is_empty() {
        out.push_str("none\n");
    }
    let mut server: Option<&str> = None;
    for e in remote {
        if server != Some(e.server.as_str()) {
            server = Some(&e.server);
            if e.disabled {
                out.push_str(&format!("[{}] (disabled)\n", e.server));
            } else {
                out.push_str(&format!("[{}]\n", e.server));
            }
        }
        out.push_str(&e.signature);
        if !e.description.is_empty() {
            out.push_str(" — ");
            out.push_str(&e.description);
        }
        out.push('\n');
    }
    out
}
