//! Remote MCP tools in the generated package (issue 6): `mcp__{server}__{tool}` wrappers
//! from hand-made [`RemoteServerRecord`]s, the `[RemoteMCP]` catalogue, search/describe,
//! and the typed exceptions, run by the real `/usr/bin/python3` and `/usr/bin/node`
//! against stub runner hooks that answer like the worker's bridge.

mod package_support;

use package_support::{NAMESPACE, function, node, python, write};
use paddock_shared::model::{Language, RemoteServerRecord, RemoteToolRecord};
use paddock_worker::package::{generate, generate_with_remote, remote_ident};
use serde_json::json;

fn tool(name: &str, description: &str, schema: &str) -> RemoteToolRecord {
    RemoteToolRecord {
        name: name.into(),
        description: description.into(),
        input_schema_json: schema.into(),
    }
}

fn servers() -> Vec<RemoteServerRecord> {
    vec![
        RemoteServerRecord {
            namespace: NAMESPACE.into(),
            name: "everything".into(),
            description: "the reference server".into(),
            enabled: true,
            tools: vec![
                tool(
                    "echo",
                    "Echoes back the input",
                    r#"{"type":"object","properties":{"message":{"type":"string"}},"required":["message"]}"#,
                ),
                tool(
                    "get-sum",
                    "Returns the sum of two numbers",
                    r#"{"type":"object","properties":{"b":{"type":"number"},"a":{"type":"number"}},"required":["a","b"]}"#,
                ),
                tool("weird.name/x", "", "not json"),
            ],
            schema_hash: "00".into(),
            max_calls_per_execution: 2,
            timeout_seconds: 30,
            updated_at: 0,
        },
        RemoteServerRecord {
            namespace: NAMESPACE.into(),
            name: "a-off".into(),
            description: String::new(),
            enabled: false,
            tools: vec![tool(
                "ping",
                "Pings",
                r#"{"type":"object","properties":{"verbose":{"type":"boolean"}}}"#,
            )],
            schema_hash: "01".into(),
            max_calls_per_execution: 50,
            timeout_seconds: 30,
            updated_at: 0,
        },
    ]
}

fn functions() -> Vec<(
    paddock_shared::model::FunctionRecord,
    paddock_shared::model::VersionRecord,
)> {
    vec![function(
        "tools",
        "hello",
        "Says hello",
        Language::Python,
        1,
        None,
        "result = 'hi'\n",
    )]
}

const PYTHON_CATALOGUE: &str = "\
Namespace demo: 1 function, 4 remote MCP tools. Use: from functions import NAME; NAME(arg=...). Find more: functions.search(\"words\"), functions.describe(\"NAME\").
[Services]
[tools]
hello(**kwargs) — Says hello
[RemoteMCP]
[a-off] (disabled)
mcp__a_off__ping(verbose=None) — Pings
[everything]
mcp__everything__echo(message) — Echoes back the input
mcp__everything__get_sum(a, b) — Returns the sum of two numbers
mcp__everything__weird_name_x(**kwargs)
";

#[test]
fn identifiers_are_sanitized() {
    assert_eq!(remote_ident("my-srv", "get-sum"), "mcp__my_srv__get_sum");
    assert_eq!(remote_ident("s", "a.b/c d"), "mcp__s__a_b_c_d");
    assert_eq!(remote_ident("s", "ünï"), "mcp__s___n_");
}

#[test]
fn catalogue_lists_remote_tools_by_server() {
    let p = generate_with_remote(NAMESPACE, &functions(), &servers(), Language::Python);
    assert_eq!(p.catalogue, PYTHON_CATALOGUE);
    assert!(p.files.contains_key("functions/_mcp.py"));
    let ts = generate_with_remote(NAMESPACE, &functions(), &servers(), Language::TypeScript);
    assert!(
        ts.catalogue
            .contains("mcp__everything__get_sum({a, b}) — Returns the sum of two numbers\n"),
        "{}",
        ts.catalogue
    );
    assert!(
        ts.catalogue
            .contains("mcp__a_off__ping({verbose?}) — Pings\n")
    );
    assert!(ts.files.contains_key("functions/_mcp.js"));
    // No servers: the same package as before issue 6, and a different digest with them.
    let plain = generate(NAMESPACE, &functions(), Language::Python);
    assert!(plain.catalogue.ends_with("[RemoteMCP]\nnone\n"));
    assert!(!plain.files.contains_key("functions/_mcp.py"));
    assert_ne!(plain.digest, p.digest);
    // A changed tool description changes the package.
    let mut changed = servers();
    changed[0].tools[0].description = "Echoes".into();
    let p2 = generate_with_remote(NAMESPACE, &functions(), &changed, Language::Python);
    assert_ne!(p2.digest, p.digest);
}

#[test]
fn clashing_tool_names_get_distinct_wrappers() {
    let mut s = servers();
    s[0].tools = vec![tool("a-b", "first", "{}"), tool("a_b", "second", "{}")];
    let p = generate_with_remote(NAMESPACE, &[], &s[..1], Language::Python);
    assert!(
        p.catalogue
            .contains("mcp__everything__a_b(**kwargs) — first\n")
    );
    assert!(
        p.catalogue
            .contains("mcp__everything__a_b_2(**kwargs) — second\n")
    );
}

/// The runner's `_paddock` as the worker answers `mcp` calls: `{value, truncated, bytes,
/// latency_ms}`, or `CallError({type: CODE, message})`.
const PY_STUB: &str = r#"
import sys, types, json
requests = []
class CallError(Exception):
    def __init__(self, error):
        super().__init__(error)
        self.type = error["type"]
        self.message = error["message"]
codes = iter(["CALL_BUDGET_EXCEEDED", "MCP_SERVER_TIMEOUT", "RULE_BLOCKED",
              "MCP_SERVER_UNAVAILABLE", "MCP_TOOL_ERROR", "SOMETHING_NEW"])
def call(target, args):
    requests.append([target, args])
    if args["tool"] == "echo":
        return {"value": {"content": [{"type": "text", "text": "Echo: " + args["input"]["message"]}]},
                "truncated": True, "bytes": 42, "latency_ms": 1.5}
    raise CallError({"type": next(codes), "message": "sanitized"})
stub = types.ModuleType("_paddock")
stub.call = call
stub.CallError = CallError
sys.modules["_paddock"] = stub
"#;

#[test]
fn python_wrappers_call_through_the_bridge_and_raise_typed_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        &generate_with_remote(NAMESPACE, &functions(), &servers(), Language::Python),
        dir.path(),
    );
    let script = format!(
        "{PY_STUB}\n{}",
        r#"
import functions
from functions import mcp__everything__echo, mcp__everything__get_sum
out = {"value": mcp__everything__echo("hi"), "meta": dict(functions.last_remote_call)}
errors = []
for _ in range(6):
    try:
        mcp__everything__get_sum(a=1, b=2)
    except functions.RemoteToolError as e:
        errors.append([type(e).__name__, e.code, e.server, e.tool, str(e),
                       isinstance(e, functions.FunctionCallError)])
out["errors"] = errors
try:
    mcp__everything__get_sum(a=1)
except TypeError as e:
    out["missing"] = str(e)
out["requests"] = requests
out["doc"] = mcp__everything__echo.__doc__
out["search"] = [r["name"] for r in functions.search("sum")]
out["describe"] = functions.describe("mcp__everything__get_sum")
out["calls"] = functions._calls
print(json.dumps(out))
"#
    );
    let v = python(dir.path(), &script).json();
    assert_eq!(
        v["value"],
        json!({"content": [{"type": "text", "text": "Echo: hi"}]})
    );
    assert_eq!(
        v["meta"],
        json!({"name": "mcp__everything__echo", "truncated": true, "bytes": 42, "latency_ms": 1.5})
    );
    let err = |class: &str, code: &str| {
        json!([
            class,
            code,
            "everything",
            "get-sum",
            format!("mcp__everything__get-sum: {code}: sanitized"),
            true
        ])
    };
    assert_eq!(
        v["errors"],
        json!([
            err("RemoteBudgetExceeded", "CALL_BUDGET_EXCEEDED"),
            err("RemoteTimeout", "MCP_SERVER_TIMEOUT"),
            err("RemoteBlocked", "RULE_BLOCKED"),
            err("RemoteUnavailable", "MCP_SERVER_UNAVAILABLE"),
            err("RemoteToolFailed", "MCP_TOOL_ERROR"),
            err("RemoteToolError", "SOMETHING_NEW"),
        ])
    );
    assert_eq!(
        v["missing"],
        json!(
            "mcp__everything__get_sum() missing 1 required argument: 'b' (signature: mcp__everything__get_sum(a, b))"
        )
    );
    assert_eq!(
        v["requests"][0],
        json!(["mcp", {"namespace": "demo", "server": "everything", "tool": "echo",
            "input": {"message": "hi"}}])
    );
    assert_eq!(
        v["requests"][1][1]["input"],
        json!({"a": 1, "b": 2}),
        "the original tool name and the arguments travel"
    );
    assert_eq!(
        v["doc"],
        json!("mcp__everything__echo(message) — Echoes back the input")
    );
    assert_eq!(v["search"], json!(["mcp__everything__get_sum"]));
    assert_eq!(v["describe"]["service"], json!("everything"));
    assert_eq!(v["describe"]["function"], json!("get-sum"));
    assert_eq!(v["describe"]["language"], json!("mcp"));
    assert_eq!(v["describe"]["input_schema"]["required"], json!(["a", "b"]));
    // Remote calls are recorded by the edge, not in the package's own log.
    assert_eq!(v["calls"], json!([]));
}

#[test]
fn node_wrappers_return_promises_and_reject_with_typed_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        &generate_with_remote(NAMESPACE, &functions(), &servers(), Language::TypeScript),
        dir.path(),
    );
    let v = node(
        dir.path(),
        r#"
const requests = [];
const codes = ["CALL_BUDGET_EXCEEDED", "MCP_SERVER_TIMEOUT", "RULE_BLOCKED",
  "MCP_SERVER_UNAVAILABLE", "MCP_TOOL_ERROR", "SOMETHING_NEW"];
globalThis.__paddock_runtime = {
  call(target, args) {
    requests.push([target, args]);
    if (args.tool === "echo") {
      return { value: { content: [{ type: "text", text: `Echo: ${args.input.message}` }] },
               truncated: false, bytes: 7, latency_ms: 2 };
    }
    const e = new Error("sanitized");
    e.type = codes.shift();
    throw e;
  },
};
const functions = require("./functions");
(async () => {
  const pending = functions.mcp__everything__echo({ message: "hi" });
  const out = { is_promise: pending instanceof Promise, value: await pending,
                meta: functions.last_remote_call, errors: [] };
  for (let i = 0; i < 6; i++) {
    try { await functions.mcp__everything__get_sum({ a: 1, b: 2 }); } catch (e) {
      out.errors.push([e.name, e.code, e.server, e.tool, e.message,
        e instanceof functions.RemoteToolError, e instanceof functions.FunctionCallError]);
    }
  }
  try { await functions.mcp__everything__get_sum({ a: 1 }); } catch (e) { out.missing = e.message; }
  out.requests = requests;
  out.search = functions.search("echo").map((r) => r.name);
  out.doc = functions.__doc__.includes("[everything]\nmcp__everything__echo({message}) — Echoes back the input\n");
  console.log(JSON.stringify(out));
})();
"#,
    )
    .json();
    assert_eq!(v["is_promise"], json!(true));
    assert_eq!(
        v["value"],
        json!({"content": [{"type": "text", "text": "Echo: hi"}]})
    );
    assert_eq!(
        v["meta"],
        json!({"name": "mcp__everything__echo", "truncated": false, "bytes": 7, "latency_ms": 2})
    );
    let err = |class: &str, code: &str| {
        json!([
            class,
            code,
            "everything",
            "get-sum",
            format!("mcp__everything__get-sum: {code}: sanitized"),
            true,
            true
        ])
    };
    assert_eq!(
        v["errors"],
        json!([
            err("RemoteBudgetExceeded", "CALL_BUDGET_EXCEEDED"),
            err("RemoteTimeout", "MCP_SERVER_TIMEOUT"),
            err("RemoteBlocked", "RULE_BLOCKED"),
            err("RemoteUnavailable", "MCP_SERVER_UNAVAILABLE"),
            err("RemoteToolFailed", "MCP_TOOL_ERROR"),
            err("RemoteToolError", "SOMETHING_NEW"),
        ])
    );
    assert!(
        v["missing"]
            .as_str()
            .is_some_and(|m| m.contains("missing 1 required argument: 'b'")),
        "{v}"
    );
    assert_eq!(v["requests"][0][0], json!("mcp"));
    assert_eq!(v["requests"][0][1]["tool"], json!("echo"));
    assert_eq!(v["search"], json!(["mcp__everything__echo"]));
    assert_eq!(v["doc"], json!(true));
}
