//! The generated package inside the REAL runners (`worker/runners/{python,node}`, started
//! outside any jail): delivered as the execute frame's `files`, imported by user code, and
//! cross-language calls leaving the runner as slot-protocol `call` frames whose shape the
//! worker will fulfil (answered here by the test harness).

#[path = "runners_support/mod.rs"]
mod runners_support;

use paddock_shared::model::Language;
use paddock_worker::package::generate;
use runners_support::Runner;
use serde_json::{Value, json};

mod package_support;

fn files(language: Language) -> Value {
    let package = generate(
        package_support::NAMESPACE,
        &package_support::sample(),
        language,
    );
    serde_json::to_value(&package.files).expect("files as JSON")
}

#[test]
fn python_runner_imports_the_package_and_bridges_to_typescript() {
    let mut calls = Vec::new();
    let outcome = Runner::start(Language::Python).execute_with_calls(
        r#"
import functions
from functions import hello, shout, add_async, FunctionCallError
try:
    add_async(a=1, b=2)
except FunctionCallError as e:
    failed = [e.type, e.message]
result = {
    "hello": hello(name="World"),
    "shout": shout(text="hi"),
    "failed": failed,
    "calls": [[c["name"], c["status"]] for c in functions._calls],
}
"#,
        json!({}),
        files(Language::Python),
        |call| {
            calls.push(call.clone());
            if call["args"]["function"] == "shout" {
                json!({"ok": true, "value": "HI!"})
            } else {
                json!({"ok": false, "error": {"type": "TypeError", "message": "boom"}})
            }
        },
    );
    assert_eq!(outcome.status(), "completed", "{:?}", outcome.frame);
    assert_eq!(
        outcome.value(),
        json!({
            "hello": {"message": "Hello, World!", "module": "functions.greetings.hello"},
            "shout": "HI!",
            "failed": ["TypeError", "boom"],
            "calls": [["ts-tools.add-async", "TypeError"], ["greetings.hello", "ok"],
                      ["ts-tools.shout", "ok"]],
        })
    );
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["target"], json!("function"));
    assert_eq!(
        calls[1]["args"],
        json!({"namespace": "demo", "service": "ts-tools", "function": "shout",
               "language": "typescript", "version": 3, "input": {"text": "hi"}})
    );
}

#[test]
fn node_runner_imports_the_package_and_bridges_to_python() {
    let mut calls = Vec::new();
    let code = paddock_worker::typescript::transform(
        r#"
import * as functions from "./functions";
import { hello, shout, failing } from "./functions";
export default async function () {
  let failed: unknown = null;
  try { await failing(); } catch (e: any) { failed = [e.type, e.errorMessage]; }
  return {
    hello: await hello({ name: "World" }),
    shout: shout({ text: "hi" }),
    failed,
    calls: functions._calls.map((c: any) => [c.name, c.status]),
  };
}
"#,
    )
    .expect("transform");
    let outcome = Runner::start(Language::TypeScript).execute_with_calls(
        &code,
        json!({}),
        files(Language::TypeScript),
        |call| {
            calls.push(call.clone());
            if call["args"]["function"] == "hello" {
                json!({"ok": true, "value": {"message": "Hello, World!"}})
            } else {
                json!({"ok": false, "error": {"type": "ValueError", "message": "bad input"}})
            }
        },
    );
    assert_eq!(outcome.status(), "completed", "{:?}", outcome.frame);
    assert_eq!(
        outcome.value(),
        json!({
            "hello": {"message": "Hello, World!"},
            "shout": "HI!",
            "failed": ["ValueError", "bad input"],
            "calls": [["text-tools.failing", "ValueError"], ["greetings.hello", "ok"],
                      ["ts-tools.shout", "ok"]],
        })
    );
    assert_eq!(
        calls[1],
        json!({"type": "call", "id": calls[1]["id"], "target": "function", "args": {
            "namespace": "demo", "service": "greetings", "function": "hello",
            "language": "python", "version": 2, "input": {"name": "World"}}})
    );
}
