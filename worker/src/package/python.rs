//! The Python flavour of the package: `functions/__init__.py` (catalogue docstring and
//! re-exports), one module per service, the runtime and bridge assets, and the functions'
//! sources under `functions/_code/`.

use std::collections::BTreeMap;

use paddock_shared::model::{FunctionRecord, VersionRecord};

use super::catalogue::Catalogue;

/// Wrappers, call log, search/describe and code loading (`functions/_runtime.py`).
pub const RUNTIME: &str = include_str!("../../runners/pkg/python/_runtime.py");
/// Calls through the runner (`functions/_bridge.py`).
pub const BRIDGE: &str = include_str!("../../runners/pkg/python/_bridge.py");
/// `search`/`describe`, imported on first use (`functions/_discover.py`).
pub const DISCOVER: &str = include_str!("../../runners/pkg/python/_discover.py");

/// Start of `__init__.py` after the docstring: the runtime (pre-imported by a warm runner
/// under [`PREIMPORT_NAME`], else this package's `_runtime.py`) loads the catalogue.
const PRELUDE: &str = "
import sys as _sys

_pre = _sys.modules.get(\"_paddock_functions_runtime\")
if _pre is None:
    from functions import _runtime
else:
    _sys.modules[\"functions._runtime\"] = _runtime = _pre
_runtime.load(__path__[0])

from functions._runtime import FunctionCallError, _calls, describe, search
from functions._runtime import (
    RemoteBlocked,
    RemoteBudgetExceeded,
    RemoteTimeout,
    RemoteToolError,
    RemoteToolFailed,
    RemoteUnavailable,
    last_remote_call,
)
";

/// Names every Python package exports besides its services and functions.
const API: &[&str] = &[
    "FunctionCallError",
    "RemoteBlocked",
    "RemoteBudgetExceeded",
    "RemoteTimeout",
    "RemoteToolError",
    "RemoteToolFailed",
    "RemoteUnavailable",
    "describe",
    "last_remote_call",
    "search",
];

/// Module name under which a warm Python runner may pre-import [`RUNTIME`] (from its own
/// copy) so that `import functions` skips compiling it; optional.
pub const PREIMPORT_NAME: &str = "_paddock_functions_runtime";

/// Every file of the Python package, keyed by workspace-relative path.
pub fn files(
    catalogue: &Catalogue,
    functions: &[(FunctionRecord, VersionRecord)],
) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    files.insert("functions/__init__.py".to_owned(), init(catalogue));
    files.insert("functions/_runtime.py".to_owned(), RUNTIME.to_owned());
    files.insert("functions/_bridge.py".to_owned(), BRIDGE.to_owned());
    files.insert("functions/_discover.py".to_owned(), DISCOVER.to_owned());
    files.insert("functions/_catalog.json".to_owned(), catalogue.to_json());
    for (service, ident) in &catalogue.services {
        let mut text = format!(
            "\"\"\"Service {ident} of namespace {ns}: generated wrappers.\"\"\"\n\n\
             from functions._runtime import wrapper as _wrapper\n\n",
            ns = catalogue.namespace,
        );
        for e in catalogue.entries.iter().filter(|e| &e.service == service) {
            text.push_str(&format!("{} = _wrapper({})\n", e.ident, py_str(&e.key)));
        }
        files.insert(format!("functions/{ident}.py"), text);
    }
    for e in &catalogue.entries {
        if let (Some(file), Some((_, v))) = (&e.file, functions.get(e.index)) {
            files.insert(format!("functions/{file}"), v.code.clone());
        }
    }
    if !catalogue.remote.is_empty() {
        let mut text = format!(
            "\"\"\"Remote MCP tools of namespace {ns}: generated wrappers.\"\"\"\n\n\
             from functions._runtime import remote_wrapper as _remote\n\n",
            ns = catalogue.namespace,
        );
        for e in &catalogue.remote {
            text.push_str(&format!("{} = _remote({})\n", e.key, py_str(&e.key)));
        }
        files.insert("functions/_mcp.py".to_owned(), text);
    }
    files
}

fn init(catalogue: &Catalogue) -> String {
    let mut out = py_docstring(&catalogue.text);
    out.push_str(PRELUDE);
    let mut all: Vec<String> = API.iter().map(|s| (*s).to_owned()).collect();
    if !catalogue.services.is_empty() {
        let idents: Vec<&str> = catalogue.services.iter().map(|(_, i)| i.as_str()).collect();
        out.push_str(&format!("from functions import {}\n", idents.join(", ")));
        all.extend(idents.iter().map(|s| (*s).to_owned()));
    }
    for e in catalogue.entries.iter().filter(|e| e.top_level) {
        out.push_str(&format!(
            "from functions.{} import {}\n",
            e.service_ident, e.ident
        ));
        all.push(e.ident.clone());
    }
    if !catalogue.remote.is_empty() {
        let keys: Vec<&str> = catalogue.remote.iter().map(|e| e.key.as_str()).collect();
        out.push_str(&format!("from functions._mcp import {}\n", keys.join(", ")));
        all.extend(keys.iter().map(|s| (*s).to_owned()));
    }
    let quoted: Vec<String> = all.iter().map(|s| py_str(s)).collect();
    out.push_str(&format!("\n__all__ = [{}]\n", quoted.join(", ")));
    out
}

/// A triple-quoted Python string literal whose value is exactly `text`.
pub(crate) fn py_docstring(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::from("\"\"\"");
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' if i + 1 == chars.len() || chars[i + 1] == '"' => out.push_str("\\\""),
            '\n' => out.push('\n'),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push_str("\"\"\"\n");
    out
}

/// A double-quoted Python string literal (JSON escaping is valid Python for these).
fn py_str(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}
