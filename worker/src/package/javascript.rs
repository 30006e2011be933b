//! The JavaScript flavour of the package (for TypeScript/JavaScript code):
//! `functions/index.js` (catalogue as a leading comment and as `__doc__`, re-exports),
//! one CommonJS module per service, the runtime and bridge assets, and the functions'
//! code, already transformed from TypeScript, under `functions/_code/`.

use std::collections::BTreeMap;

use paddock_shared::model::{FunctionRecord, VersionRecord};

use super::catalogue::Catalogue;

/// Wrappers, call log, search/describe and code loading (`functions/_runtime.js`).
pub const RUNTIME: &str = include_str!("../../runners/pkg/node/_runtime.js");
/// Calls through the runner (`functions/_bridge.js`).
pub const BRIDGE: &str = include_str!("../../runners/pkg/node/_bridge.js");

/// Every file of the JavaScript package, keyed by workspace-relative path.
pub fn files(
    catalogue: &Catalogue,
    functions: &[(FunctionRecord, VersionRecord)],
) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    files.insert("functions/index.js".to_owned(), index(catalogue));
    files.insert("functions/_runtime.js".to_owned(), RUNTIME.to_owned());
    files.insert("functions/_bridge.js".to_owned(), BRIDGE.to_owned());
    files.insert("functions/_catalog.json".to_owned(), catalogue.to_json());
    for (service, ident) in &catalogue.services {
        let mut text = format!(
            "// Service {ident} of namespace {ns}: generated wrappers.\n\"use strict\";\n\
             const rt = require(\"./_runtime.js\");\nmodule.exports = {{\n",
            ns = catalogue.namespace,
        );
        for e in catalogue.entries.iter().filter(|e| &e.service == service) {
            text.push_str(&format!("  {}: rt.wrapper({}),\n", e.ident, js_str(&e.key)));
        }
        text.push_str("};\n");
        files.insert(format!("functions/{ident}.js"), text);
    }
    for e in &catalogue.entries {
        if let (Some(file), Some((_, v))) = (&e.file, functions.get(e.index)) {
            files.insert(format!("functions/{file}"), to_javascript(&v.code));
        }
    }
    if !catalogue.remote.is_empty() {
        let mut text = format!(
            "// Remote MCP tools of namespace {ns}: generated wrappers.\n\"use strict\";\n\
             const rt = require(\"./_runtime.js\");\nmodule.exports = {{\n",
            ns = catalogue.namespace,
        );
        for e in &catalogue.remote {
            text.push_str(&format!(
                "  {}: rt.remoteWrapper({}),\n",
                e.key,
                js_str(&e.key)
            ));
        }
        text.push_str("};\n");
        files.insert("functions/_mcp.js".to_owned(), text);
    }
    files
}

/// The function's code as CommonJS. TypeScript (and plain JavaScript) goes through
/// [`crate::typescript::transform`]; code that does not transform becomes a module that
/// throws the transform error when the function is called.
pub fn to_javascript(source: &str) -> String {
    match crate::typescript::transform(source) {
        Ok(js) => js,
        Err(e) => format!(
            "throw new SyntaxError({});\n",
            js_str(&format!("this function's TypeScript does not compile: {e}"))
        ),
    }
}

fn index(catalogue: &Catalogue) -> String {
    let mut out = String::new();
    for line in catalogue.text.lines() {
        out.push_str("// ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("\"use strict\";\nconst rt = require(\"./_runtime.js\");\n");
    for (_, ident) in &catalogue.services {
        out.push_str(&format!("const {ident} = require(\"./{ident}.js\");\n"));
    }
    if !catalogue.remote.is_empty() {
        out.push_str("const _mcp = require(\"./_mcp.js\");\n");
    }
    out.push_str("module.exports = {\n");
    out.push_str(&format!("  __doc__: {},\n", js_str(&catalogue.text)));
    out.push_str(
        "  search: rt.search,\n  describe: rt.describe,\n  \
         FunctionCallError: rt.FunctionCallError,\n  _calls: rt._calls,\n  \
         RemoteToolError: rt.RemoteToolError,\n  RemoteTimeout: rt.RemoteTimeout,\n  \
         RemoteBlocked: rt.RemoteBlocked,\n  RemoteBudgetExceeded: rt.RemoteBudgetExceeded,\n  \
         RemoteUnavailable: rt.RemoteUnavailable,\n  RemoteToolFailed: rt.RemoteToolFailed,\n  \
         get last_remote_call() {\n    return rt.lastRemoteCall();\n  },\n",
    );
    for (_, ident) in &catalogue.services {
        out.push_str(&format!("  {ident},\n"));
    }
    for e in catalogue.entries.iter().filter(|e| e.top_level) {
        out.push_str(&format!(
            "  {}: {}.{},\n",
            e.ident, e.service_ident, e.ident
        ));
    }
    for e in &catalogue.remote {
        out.push_str(&format!("  {}: _mcp.{},\n", e.key, e.key));
    }
    out.push_str("};\n");
    out
}

/// A JavaScript string literal (JSON text is one).
fn js_str(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}
