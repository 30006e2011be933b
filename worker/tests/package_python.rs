//! The generated Python package run by the real `/usr/bin/python3` (outside any jail):
//! catalogue docstring, imports, return conventions, argument checks, search/describe,
//! the call log and the cross-language bridge against a stub `_paddock` runtime.

mod package_support;

use package_support::{NAMESPACE, python, sample, write};
use paddock_shared::model::Language;
use paddock_worker::package::generate;
use serde_json::json;

const CATALOGUE: &str = "\
Namespace demo: 13 functions. Use: from functions import NAME; NAME(arg=...). Find more: functions.search(\"words\"), functions.describe(\"NAME\").
[Services]
[greetings]
async_main(**kwargs) — Greets asynchronously
hello(name, greeting=None) — Say hello to someone
hello_result(**kwargs) — Answers through result
with_handler() — Answers through handler
with_output(**kwargs) — Answers through output
[text_tools]
failing(**kwargs) — Always raises
hello_twice(name, greeting=None) — Calls hello twice
word_count(text, lang=None) — Count the words of a text
[ts_tools]
add_async(a, b) — Adds two numbers, asynchronously
shout(text) — Upper-cases a text
shout_twice(text) — Calls shout twice
ts_result(**kwargs) — Answers through result
waits(**kwargs) — Uses top-level await
[RemoteMCP]
none
";

fn package_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        &generate(NAMESPACE, &sample(), Language::Python),
        dir.path(),
    );
    dir
}

#[test]
fn docstring_is_the_exact_catalogue() {
    let dir = package_dir();
    let run = python(
        dir.path(),
        "import functions, json\nprint(json.dumps(functions.__doc__))\n",
    );
    assert_eq!(run.json(), json!(CATALOGUE));
}

#[test]
fn wrappers_return_by_each_convention() {
    let dir = package_dir();
    let run = python(
        dir.path(),
        r#"
import json
from functions import hello, hello_result, with_output, with_handler, async_main, word_count
import functions
out = {
    "main": hello(name="World"),
    "positional": hello("Ada", "Hi"),
    "dict": hello({"name": "Bo", "greeting": "Hey"}),
    "result": hello_result(x=1),
    "output": with_output(),
    "handler": with_handler(),
    "async": async_main(k="v"),
    "by_service": functions.text_tools.word_count(text="a b c"),
    "same_object": functions.greetings.hello is hello,
    "count": word_count("one two"),
}
print(json.dumps(out))
"#,
    );
    assert_eq!(
        run.json(),
        json!({
            "main": {"message": "Hello, World!", "module": "functions.greetings.hello"},
            "positional": {"message": "Hi, Ada!", "module": "functions.greetings.hello"},
            "dict": {"message": "Hey, Bo!", "module": "functions.greetings.hello"},
            "result": {"via": "result", "got": {"x": 1}},
            "output": {"via": "output"},
            "handler": {"via": "handler", "context": {
                "namespace": "demo", "service": "greetings", "function": "with-handler", "version": 4}},
            "async": {"via": "async", "got": {"k": "v"}},
            "by_service": 3,
            "same_object": true,
            "count": 2,
        })
    );
}

#[test]
fn argument_errors_are_type_errors_naming_the_argument() {
    let dir = package_dir();
    let run = python(
        dir.path(),
        r#"
import json
from functions import hello, word_count, hello_result
errors = []
for call in (lambda: hello(), lambda: hello(greeting="x"), lambda: word_count("a", "en", "extra"),
             lambda: hello("a", name="b"), lambda: hello_result(1)):
    try:
        call()
        errors.append(None)
    except TypeError as e:
        errors.append(str(e))
print(json.dumps(errors))
"#,
    );
    assert_eq!(
        run.json(),
        json!([
            "hello() missing 1 required argument: 'name' (signature: hello(name, greeting=None))",
            "hello() missing 1 required argument: 'name' (signature: hello(name, greeting=None))",
            "word_count() takes at most 2 positional arguments (3 given)",
            "hello() got multiple values for argument 'name'",
            "hello_result() takes keyword arguments or one dict of arguments (1 positional given)",
        ])
    );
}

#[test]
fn failures_keep_a_traceback_into_the_function_source() {
    let dir = package_dir();
    let run = python(
        dir.path(),
        r#"
import json, traceback
from functions import failing
try:
    failing()
except ValueError as e:
    tb = traceback.extract_tb(e.__traceback__)
    print(json.dumps({"message": str(e), "frames": [[f.filename.split("/functions/")[-1], f.name, f.line] for f in tb[-2:]]}))
"#,
    );
    assert_eq!(
        run.json(),
        json!({
            "message": "bad input",
            "frames": [
                ["_code/text_tools__failing.py", "main", "helper()"],
                ["_code/text_tools__failing.py", "helper", "raise ValueError(\"bad input\")"],
            ]
        })
    );
}

#[test]
fn call_log_records_each_call_in_order_with_status() {
    let dir = package_dir();
    let run = python(
        dir.path(),
        r#"
import json
import functions
from functions import hello_twice, failing
hello_twice(name="Z")
try:
    failing()
except ValueError:
    pass
log = functions._calls
assert all(isinstance(c["duration_ms"], float) and c["duration_ms"] >= 0 for c in log), log
print(json.dumps([[c["name"], c["status"]] for c in log]))
"#,
    );
    assert_eq!(
        run.json(),
        json!([
            ["text-tools.hello-twice", "ok"],
            ["greetings.hello", "ok"],
            ["greetings.hello", "ok"],
            ["text-tools.failing", "ValueError"],
        ])
    );
}

#[test]
fn nested_calls_return_values_through_the_package() {
    let dir = package_dir();
    let run = python(
        dir.path(),
        "import json\nfrom functions import hello_twice\nprint(json.dumps(hello_twice(name='Q')))\n",
    );
    assert_eq!(run.json(), json!(["Hello, Q!", "Hi, Q!"]));
}

#[test]
fn search_ranks_and_describe_explains() {
    let dir = package_dir();
    let run = python(
        dir.path(),
        r#"
import json
import functions
out = {
    "hello": [r["name"] for r in functions.search("HELLO")],
    "words": [r["name"] for r in functions.search("count words")],
    "service": [r["name"] for r in functions.search("ts-tools shout")],
    "none": functions.search("nothing-like-this"),
    "describe": functions.describe("word-count"),
    "qualified": functions.describe("text-tools.word_count")["name"],
    "ts": functions.describe("shout"),
}
try:
    functions.describe("nope")
except LookupError as e:
    out["unknown"] = str(e)
print(json.dumps(out))
"#,
    );
    let v = run.json();
    assert_eq!(v["hello"], json!(["hello", "hello_result", "hello_twice"]));
    assert_eq!(v["words"], json!(["word_count"]));
    assert_eq!(v["service"], json!(["shout", "shout_twice"]));
    assert_eq!(v["none"], json!([]));
    assert_eq!(
        v["describe"],
        json!({
            "name": "word_count", "service": "text-tools", "function": "word-count",
            "signature": "word_count(text, lang=None)", "description": "Count the words of a text",
            "language": "python", "qualified": "text-tools.word-count", "version": 3,
            "input_schema": {"type": "object", "properties": {"lang": {"type": "string"},
                "text": {"type": "string"}}, "required": ["text"]},
        })
    );
    assert_eq!(v["qualified"], json!("word_count"));
    assert_eq!(v["ts"]["language"], json!("typescript"));
    assert_eq!(v["ts"]["version"], json!(3));
    assert_eq!(
        v["unknown"],
        json!("no function 'nope' in namespace demo; try functions.search('nope')")
    );
}

/// A stand-in for the runner's `_paddock` module (the real one speaks the slot protocol):
/// it records each request and answers canned values.
const STUB_RUNTIME: &str = r#"
import sys, types
requests = []
class CallError(Exception):
    pass
def call(target, args):
    requests.append([target, args])
    if args["function"] == "shout":
        return args["input"]["text"].upper() + "!"
    if args["function"] == "add-async":
        raise CallError({"type": "TypeError", "message": "a is not a number"})
    # the runner as it stands raises CallError(str(error))
    raise CallError(str({"type": "TimeoutError", "message": "took too long"}))
stub = types.ModuleType("_paddock")
stub.call = call
stub.CallError = CallError
sys.modules["_paddock"] = stub
"#;

#[test]
fn typescript_functions_go_through_the_runtime_bridge() {
    let dir = package_dir();
    let script = format!(
        "{STUB_RUNTIME}\n{}",
        r#"
import json
import functions
from functions import shout, add_async, waits, FunctionCallError
out = {"value": shout(text="hi")}
for name, call in (("add", lambda: add_async(a="x", b=2)), ("waits", lambda: waits())):
    try:
        call()
    except FunctionCallError as e:
        out[name] = [e.type, e.message, str(e)]
out["requests"] = requests
out["log"] = [[c["name"], c["status"]] for c in functions._calls]
print(json.dumps(out))
"#
    );
    let v = python(dir.path(), &script).json();
    assert_eq!(v["value"], json!("HI!"));
    assert_eq!(
        v["add"],
        json!([
            "TypeError",
            "a is not a number",
            "TypeError: a is not a number"
        ])
    );
    assert_eq!(
        v["waits"],
        json!([
            "TimeoutError",
            "took too long",
            "TimeoutError: took too long"
        ])
    );
    assert_eq!(
        v["requests"][0],
        json!(["function", {
            "namespace": "demo", "service": "ts-tools", "function": "shout",
            "language": "typescript", "version": 3, "input": {"text": "hi"}
        }])
    );
    assert_eq!(v["requests"][1][1]["input"], json!({"a": "x", "b": 2}));
    assert_eq!(
        v["log"],
        json!([
            ["ts-tools.shout", "ok"],
            ["ts-tools.add-async", "TypeError"],
            ["ts-tools.waits", "TimeoutError"],
        ])
    );
}

#[test]
fn bridge_without_runner_raises_a_clear_error() {
    let dir = package_dir();
    let run = python(
        dir.path(),
        r#"
import json
from functions import shout, FunctionCallError
try:
    shout(text="x")
except FunctionCallError as e:
    print(json.dumps([e.type, e.message]))
"#,
    );
    assert_eq!(
        run.json(),
        json!([
            "RuntimeUnavailable",
            "cross-language calls need the Paddock runner (module _paddock is missing)"
        ])
    );
}

#[test]
fn function_code_is_compiled_once_per_process() {
    let dir = package_dir();
    let run = python(
        dir.path(),
        r#"
import json
from functions import hello, _runtime
for _ in range(50):
    hello(name="x")
print(json.dumps(len(_runtime._compiled)))
"#,
    );
    assert_eq!(run.json(), json!(1));
}

#[test]
fn import_is_cheap_for_thirty_functions() {
    let mut functions = Vec::new();
    for i in 0..30 {
        functions.push(package_support::function(
            ["billing", "crm", "reports"][i % 3],
            &format!("task-{i:02}"),
            "Does one thing",
            if i % 5 == 0 {
                Language::TypeScript
            } else {
                Language::Python
            },
            1,
            Some(r#"{"properties":{"a":{},"b":{}},"required":["a"]}"#),
            "def main(input_data):\n    return input_data['a']\n",
        ));
    }
    functions.sort_by(|a, b| (&a.0.service, &a.0.name).cmp(&(&b.0.service, &b.0.name)));
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        &generate(NAMESPACE, &functions, Language::Python),
        dir.path(),
    );
    // The runner has json, asyncio and threading imported before the code runs.
    let run = python(
        dir.path(),
        r#"
import json, asyncio, threading, time
t0 = time.perf_counter()
import functions
t1 = time.perf_counter()
from functions import task_01
task_01(a=1)
t2 = time.perf_counter()
task_01(a=2)
t3 = time.perf_counter()
print(json.dumps({"import_ms": (t1 - t0) * 1000, "first_call_ms": (t2 - t1) * 1000, "call_ms": (t3 - t2) * 1000}))
"#,
    );
    let v = run.json();
    eprintln!("python package timings: {v}");
    // Loose bound (shared 2-core machine): a regression to seconds must fail.
    assert!(v["import_ms"].as_f64().unwrap_or(f64::MAX) < 200.0, "{v}");
}

#[test]
fn a_runtime_pre_imported_by_the_runner_is_used() {
    let dir = package_dir();
    let copy = dir.path().join("runner-copy");
    std::fs::create_dir_all(&copy).expect("mkdir");
    std::fs::write(copy.join("rt.py"), paddock_worker::package::PYTHON_RUNTIME)
        .expect("write runtime copy");
    let script = format!(
        r#"
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location({name:?}, "runner-copy/rt.py")
pre = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pre)
sys.modules[{name:?}] = pre
import functions
from functions import hello, describe
print(json.dumps({{
    "same": functions._runtime is pre and sys.modules["functions._runtime"] is pre,
    "hello": hello(name="W")["message"],
    "calls": [c["name"] for c in functions._calls],
    "describe": describe("hello")["signature"],
}}))
"#,
        name = paddock_worker::package::PYTHON_RUNTIME_MODULE,
    );
    assert_eq!(
        python(dir.path(), &script).json(),
        json!({"same": true, "hello": "Hello, W!", "calls": ["greetings.hello"],
               "describe": "hello(name, greeting=None)"})
    );
}
