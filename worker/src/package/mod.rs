//! The `functions` package: generated per namespace (Python or JavaScript), written under
//! the sandbox workspace by the runner before the code runs, so that sandboxed code can
//! `from functions import hello` / `require("./functions")`.
//!
//! # Layout
//! Python (`language = python`):
//! ```text
//! functions/__init__.py        catalogue docstring, re-exports, search/describe, _calls
//! functions/<svc>.py           one module of wrappers per service
//! functions/_runtime.py        wrappers, call log, search/describe, code loading (asset)
//! functions/_bridge.py         cross-language / remote calls through the runner (asset)
//! functions/_discover.py       search/describe, imported on first use (asset)
//! functions/_mcp.py            mcp__{server}__{tool} wrappers of remote MCP tools
//! functions/_catalog.json      the namespace's functions as data
//! functions/_code/<svc>__<fn>.py   source of every Python function (current version)
//! ```
//! JavaScript (`language = typescript`): the same with `index.js`, `<svc>.js`,
//! `_runtime.js`, `_bridge.js`, `_catalog.json` and `_code/<svc>__<fn>.js` (TypeScript
//! already turned into CommonJS by [`crate::typescript::transform`]).
//!
//! # Runner contract
//! Calls the package cannot make in-process (a function written in the other language, a
//! remote MCP tool) go through the runner, which forwards them to the worker as a
//! slot-protocol `call` frame `{type: "call", id, target, args}`:
//! - Python: `import _paddock; _paddock.call(target, args)` — blocking; returns the
//!   value or raises `_paddock.CallError` with `type`/`message` attributes (or the error
//!   object `{type, message}` as its first argument). The wrapper re-raises it as
//!   `functions.FunctionCallError(type, message)`.
//! - JavaScript: `globalThis.__paddock_runtime.call(target, args)` — returns the value
//!   (or a Promise of it) or throws/rejects with something carrying `type` and `message`.
//!   Wrappers of bridged functions always hand user code a `Promise`, rejected with
//!   `functions.FunctionCallError` (`.type`, `.errorMessage`).
//!
//! `target` is [`CALL_TARGET_FUNCTION`] and `args` is
//! `{namespace, service, function, language, version, input}` (original names, `language`
//! of the called function, `version` the one this package lists, `input` the function's
//! `input_data`). The worker runs that version in a slot of that language (with the same
//! execution's limits) and answers `call_result {id, ok: true, value}` or
//! `{id, ok: false, error: {type, message}}`.
//! That worker side is `crate::slots::calls` (nested executions on the same pools, at
//! most `MAX_CALL_DEPTH` deep); the pools get the package from a
//! `crate::slots::NamespaceSource` (the replica) through a [`PackageCache`].
//!
//! # Tool mode
//! [`tool_call_code`] is the code of a tool-mode call: it runs `service.function` with the
//! execution's `input_data` through the package (`_runtime.call_by_name` /
//! `_runtime.js` `callByName`), so the call lands in the call log like any other.
//!
//! # Call log
//! Every wrapper call (in-process or bridged) is recorded, in call order, as
//! `{name: "service.function", status: "ok" | error type, duration_ms}` (at most 1000;
//! more are counted in `_calls_dropped`). The runner copies it into the result's `calls`:
//! Python `sys.modules["functions._runtime"]._calls` (when imported), JavaScript
//! `globalThis.__paddock_package.calls`. The worker should not add a second record for a
//! bridged `function` call.

mod cache;
mod catalogue;
mod javascript;
mod python;

use std::collections::BTreeMap;

use paddock_shared::model::{FunctionRecord, Language, RemoteServerRecord, VersionRecord};
use sha2::{Digest, Sha256};

pub use cache::{Contents, PackageCache};
pub use catalogue::{Catalogue, Entry, Param, RemoteEntry, remote_ident};
/// Module name under which a warm Python runner may pre-import a copy of
/// [`PYTHON_RUNTIME`]; `functions/__init__.py` then uses it instead of compiling
/// `functions/_runtime.py` (saves most of the import cost). Optional.
pub use python::PREIMPORT_NAME as PYTHON_RUNTIME_MODULE;
/// The Python package runtime (`functions/_runtime.py`), identical in every package.
pub use python::RUNTIME as PYTHON_RUNTIME;

/// `target` of the `call` frame for a namespace function run in the other language.
pub const CALL_TARGET_FUNCTION: &str = "function";
/// `target` of the `call` frame for a remote MCP tool: args `{namespace, server, tool,
/// input}` (`tool` is the exposed name). The worker forwards it to the edge over the link
/// with the execution's bridge key and answers `call_result {id, ok: true, value: {value,
/// truncated, bytes, latency_ms}}` or `{ok: false, error: {type: CODE, message}}` where
/// `CODE` is a stable error code (`CALL_BUDGET_EXCEEDED`, `RULE_BLOCKED`,
/// `MCP_SERVER_TIMEOUT`, …) that the package maps to its typed exceptions.
pub const CALL_TARGET_MCP: &str = "mcp";
/// Directory of the package inside the workspace (the import name).
pub const PACKAGE_DIR: &str = "functions";

/// A generated package: the `files` of the execute frame plus an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Language of the code that imports the package.
    pub language: Language,
    /// Relative path (under the workspace) → UTF-8 text.
    pub files: BTreeMap<String, String>,
    /// SHA-256 (hex) over the language, paths and contents: equal digests, equal packages.
    pub digest: String,
    /// The catalogue text (Python docstring / JavaScript `__doc__`).
    pub catalogue: String,
}

/// Generates the `functions` package of `namespace` for code written in `language`.
///
/// `functions` holds each function with its current version, sorted by service then
/// function. Generation never fails: a schema that is not JSON is treated as "no schema"
/// and a TypeScript function that does not transform ships as code that throws the
/// transform error when called, so one broken function never breaks the namespace.
pub fn generate(
    namespace: &str,
    functions: &[(FunctionRecord, VersionRecord)],
    language: Language,
) -> Package {
    generate_with_remote(namespace, functions, &[], language)
}

/// [`generate`] plus one `mcp__{server}__{tool}` wrapper per tool of the namespace's
/// remote MCP servers (`functions/_mcp.py` / `functions/_mcp.js`), listed under
/// `[RemoteMCP]` in the catalogue and found by `search`/`describe`.
pub fn generate_with_remote(
    namespace: &str,
    functions: &[(FunctionRecord, VersionRecord)],
    remote: &[RemoteServerRecord],
    language: Language,
) -> Package {
    let catalogue = Catalogue::build_with_remote(namespace, functions, remote, language);
    let files = match language {
        Language::Python => python::files(&catalogue, functions),
        Language::TypeScript => javascript::files(&catalogue, functions),
    };
    let digest = digest(language, &files);
    Package {
        language,
        files,
        digest,
        catalogue: catalogue.text.clone(),
    }
}

/// Code of a tool-mode call; lives in `paddock-shared` so the edge (which sends it) and
/// the worker agree on it.
pub use paddock_shared::snippet::tool_call_code;

fn digest(language: Language, files: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    h.update(language.as_str().as_bytes());
    for (path, text) in files {
        h.update((path.len() as u64).to_be_bytes());
        h.update(path.as_bytes());
        h.update((text.len() as u64).to_be_bytes());
        h.update(text.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
