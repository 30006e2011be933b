//! The generated JavaScript package run by the real `/usr/bin/node` (outside any jail):
//! catalogue comment and `__doc__`, `require("./functions")`, return conventions (sync
//! and async), argument checks, search/describe, the call log and the cross-language
//! bridge against a stub `globalThis.__paddock_runtime`.

mod package_support;

use package_support::{NAMESPACE, node, sample, write};
use paddock_shared::model::Language;
use paddock_worker::package::generate;
use serde_json::json;

const CATALOGUE: &str = "\
Namespace demo: 13 functions. Use: const { NAME } = require(\"./functions\"); NAME({arg: ...}) (await it when it returns a Promise). Find more: functions.search(\"words\"), functions.describe(\"NAME\").
[Services]
[greetings]
async_main({...}) — Greets asynchronously
hello({name, greeting?}) — Say hello to someone
hello_result({...}) — Answers through result
with_handler() — Answers through handler
with_output({...}) — Answers through output
[text_tools]
failing({...}) — Always raises
hello_twice({name, greeting?}) — Calls hello twice
word_count({text, lang?}) — Count the words of a text
[ts_tools]
add_async({a, b}) — Adds two numbers, asynchronously
shout({text}) — Upper-cases a text
shout_twice({text}) — Calls shout twice
ts_result({...}) — Answers through result
waits({...}) — Uses top-level await
[RemoteMCP]
none
";

fn package_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        &generate(NAMESPACE, &sample(), Language::TypeScript),
        dir.path(),
    );
    dir
}

#[test]
fn doc_is_the_exact_catalogue_also_as_leading_comment() {
    let dir = package_dir();
    let run = node(
        dir.path(),
        "const f = require(\"./functions\");\nconsole.log(JSON.stringify(f.__doc__));\n",
    );
    assert_eq!(run.json(), json!(CATALOGUE));
    let index = std::fs::read_to_string(dir.path().join("functions/index.js")).expect("index");
    let comment: String = CATALOGUE.lines().map(|l| format!("// {l}\n")).collect();
    assert!(index.starts_with(&comment), "{index}");
}

#[test]
fn wrappers_return_by_each_convention() {
    let dir = package_dir();
    let run = node(
        dir.path(),
        r#"
const functions = require("./functions");
const { shout, ts_result, add_async, waits, shout_twice } = functions;
(async () => {
  const sync = shout({ text: "hey" });
  const pending = add_async({ a: 2, b: 3 });
  const topLevelAwait = waits();
  const out = {
    default_export: sync,
    sync_is_plain_value: typeof sync === "string",
    result_binding: ts_result(),
    async_is_promise: pending instanceof Promise,
    async_main: await pending,
    top_level_await_is_promise: topLevelAwait instanceof Promise,
    top_level_await: await topLevelAwait,
    handler_and_package_require: shout_twice({ text: "a" }),
    by_service: functions.ts_tools.shout({ text: "svc" }),
    service_module: require("./functions/ts_tools.js").shout === shout,
  };
  console.log(JSON.stringify(out));
})();
"#,
    );
    assert_eq!(
        run.json(),
        json!({
            "default_export": "HEY!",
            "sync_is_plain_value": true,
            "result_binding": 42,
            "async_is_promise": true,
            "async_main": 5,
            "top_level_await_is_promise": true,
            "top_level_await": 42,
            "handler_and_package_require": ["A!", "A?!", "shout-twice"],
            "by_service": "SVC!",
            "service_module": true,
        })
    );
}

#[test]
fn argument_errors_are_type_errors_naming_the_argument() {
    let dir = package_dir();
    let run = node(
        dir.path(),
        r#"
const { shout, add_async } = require("./functions");
const errors = [];
for (const call of [() => shout(), () => add_async({ a: 1 }), () => shout("text"), () => shout({}, {})]) {
  try { call(); errors.push(null); } catch (e) { errors.push([e.constructor.name, e.message]); }
}
console.log(JSON.stringify(errors));
"#,
    );
    assert_eq!(
        run.json(),
        json!([
            [
                "TypeError",
                "shout() missing 1 required argument: 'text' (signature: shout({text}))"
            ],
            [
                "TypeError",
                "add_async() missing 1 required argument: 'b' (signature: add_async({a, b}))"
            ],
            [
                "TypeError",
                "shout() takes one object argument, e.g. shout({text})"
            ],
            [
                "TypeError",
                "shout() takes one object argument, e.g. shout({text}) (2 given)"
            ],
        ])
    );
}

#[test]
fn call_log_search_and_describe() {
    let dir = package_dir();
    let run = node(
        dir.path(),
        r#"
const functions = require("./functions");
(async () => {
  functions.shout_twice({ text: "x" });
  await functions.add_async({ a: 1, b: 1 });
  let unknown = null;
  try { functions.describe("nope"); } catch (e) { unknown = e.message; }
  const out = {
    log: functions._calls.map((c) => [c.name, c.status, typeof c.duration_ms]),
    runner_sees_log: globalThis.__paddock_package.calls === functions._calls,
    hello: functions.search("HELLO").map((r) => r.name),
    service: functions.search("ts-tools shout").map((r) => r.name),
    describe: functions.describe("ts-tools.add-async"),
    unknown,
  };
  console.log(JSON.stringify(out));
})();
"#,
    );
    let v = run.json();
    assert_eq!(
        v["log"],
        json!([
            ["ts-tools.shout-twice", "ok", "number"],
            ["ts-tools.shout", "ok", "number"],
            ["ts-tools.shout", "ok", "number"],
            ["ts-tools.add-async", "ok", "number"],
        ])
    );
    assert_eq!(v["runner_sees_log"], json!(true));
    assert_eq!(v["hello"], json!(["hello", "hello_result", "hello_twice"]));
    assert_eq!(v["service"], json!(["shout", "shout_twice"]));
    assert_eq!(
        v["describe"],
        json!({
            "name": "add_async", "service": "ts-tools", "function": "add-async",
            "signature": "add_async({a, b})", "description": "Adds two numbers, asynchronously",
            "language": "typescript", "qualified": "ts-tools.add-async", "version": 1,
            "input_schema": {"type": "object", "properties": {"a": {"type": "number"},
                "b": {"type": "number"}}, "required": ["a", "b"]},
        })
    );
    assert_eq!(
        v["unknown"],
        json!("no function 'nope' in namespace demo; try functions.search('nope')")
    );
}

#[test]
fn python_functions_go_through_the_runtime_bridge() {
    let dir = package_dir();
    let run = node(
        dir.path(),
        r#"
const requests = [];
// A stand-in for the runner's hook (the real one speaks the slot protocol).
globalThis.__paddock_runtime = {
  call(target, args) {
    requests.push([target, args]);
    if (args.function === "hello") return Promise.resolve({ message: `Hello, ${args.input.name}!` });
    return Promise.reject({ type: "ValueError", message: "bad input" });
  },
};
const functions = require("./functions");
(async () => {
  const pending = functions.hello({ name: "World" });
  const out = { is_promise: pending instanceof Promise, value: await pending };
  try { await functions.failing(); } catch (e) {
    out.error = [e.name, e.type, e.errorMessage, e instanceof functions.FunctionCallError];
  }
  out.requests = requests;
  out.log = functions._calls.map((c) => [c.name, c.status]);
  console.log(JSON.stringify(out));
})();
"#,
    );
    let v = run.json();
    assert_eq!(v["is_promise"], json!(true));
    assert_eq!(v["value"], json!({"message": "Hello, World!"}));
    assert_eq!(
        v["error"],
        json!(["FunctionCallError", "ValueError", "bad input", true])
    );
    assert_eq!(
        v["requests"][0],
        json!(["function", {
            "namespace": "demo", "service": "greetings", "function": "hello",
            "language": "python", "version": 2, "input": {"name": "World"}
        }])
    );
    assert_eq!(
        v["log"],
        json!([
            ["greetings.hello", "ok"],
            ["text-tools.failing", "ValueError"]
        ])
    );
}

#[test]
fn bridge_without_runner_rejects_with_a_clear_error() {
    let dir = package_dir();
    let run = node(
        dir.path(),
        r#"
const { hello } = require("./functions");
hello({ name: "x" }).catch((e) => console.log(JSON.stringify([e.type, e.errorMessage])));
"#,
    );
    assert_eq!(
        run.json(),
        json!([
            "RuntimeUnavailable",
            "cross-language calls need the Paddock runner (globalThis.__paddock_runtime is missing)"
        ])
    );
}

#[test]
fn typescript_that_does_not_compile_fails_only_when_called() {
    let mut functions = sample();
    functions.push(package_support::function(
        "zz",
        "broken",
        "Does not parse",
        Language::TypeScript,
        1,
        None,
        "export default function (: {\n",
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        &generate(NAMESPACE, &functions, Language::TypeScript),
        dir.path(),
    );
    let run = node(
        dir.path(),
        r#"
const f = require("./functions");
let error = null;
try { f.broken(); } catch (e) { error = [e.name, e.message.startsWith("this function's TypeScript does not compile: syntax error at 1:")]; }
console.log(JSON.stringify({ still_works: f.shout({ text: "ok" }), error }));
"#,
    );
    assert_eq!(
        run.json(),
        json!({"still_works": "OK!", "error": ["SyntaxError", true]})
    );
}
