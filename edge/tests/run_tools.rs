//! The run endpoint's tools over a fake [`RunBackend`] (it stands in for the worker link):
//! code-mode checks before dispatch, the request a worker gets, tool-mode listing, tags
//! and schema errors, result mapping, cancellation, and the execution records (filters,
//! retention, tenant isolation).
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use paddock_edge::app::{ApiError, App, AppConfig, Principal};
use paddock_edge::route::RunMode;
use paddock_edge::run::{RunBackend, RunConfig, RunTools};
use paddock_shared::ErrorCode;
use paddock_shared::exec::{
    CallRecord, ExecStatus, ExecutionRequest, ExecutionResult, MAX_CODE_BYTES, error_type,
};
use paddock_shared::model::Language;
use paddock_shared::snippet::tool_call_code;
use serde_json::{Map, Value, json};
use sha2::Digest;
use tokio_util::sync::CancellationToken;

mod account_support;
use account_support::{ALL, account};

/// What the fake answers.
#[derive(Clone, Copy)]
enum Answer {
    /// A completed result whose value echoes the input.
    Echo,
    /// A failed result (a user exception).
    Fail,
    /// A typed dispatch error.
    NoWorkers,
    /// Waits for the cancel token, then a canceled result.
    WaitForCancel,
}

struct Fake {
    answer: Mutex<Answer>,
    seen: Mutex<Vec<(ExecutionRequest, u64)>>,
}

impl Fake {
    fn new() -> Arc<Fake> {
        Arc::new(Fake {
            answer: Mutex::new(Answer::Echo),
            seen: Mutex::new(Vec::new()),
        })
    }
    fn set(&self, a: Answer) {
        *self.answer.lock().unwrap() = a;
    }
    fn seen(&self) -> Vec<(ExecutionRequest, u64)> {
        self.seen.lock().unwrap().clone()
    }
}

#[async_trait]
impl RunBackend for Fake {
    async fn execute(
        &self,
        req: ExecutionRequest,
        min_seq: u64,
        cancel: CancellationToken,
    ) -> Result<ExecutionResult, ApiError> {
        self.seen.lock().unwrap().push((req.clone(), min_seq));
        let answer = *self.answer.lock().unwrap();
        match answer {
            Answer::Echo => {
                let mut r =
                    ExecutionResult::failed(&req.execution_id, ExecStatus::Completed, "", "");
                r.error = None;
                r.result_json = Some(req.input_json.clone());
                r.stdout = "hi\n".into();
                r.duration_us = 1500;
                r.usage.cpu_ms = 3;
                r.calls = vec![CallRecord {
                    name: "tools.hello".into(),
                    status: "ok".into(),
                    duration_us: 10,
                    bytes: 5,
                }];
                Ok(r)
            }
            Answer::Fail => Ok(ExecutionResult::failed(
                &req.execution_id,
                ExecStatus::Failed,
                "ValueError",
                "bad value",
            )),
            Answer::NoWorkers => Err(ApiError::new(ErrorCode::NoWorkers, "no workers")),
            Answer::WaitForCancel => {
                cancel.cancelled().await;
                Ok(ExecutionResult::failed(
                    &req.execution_id,
                    ExecStatus::Canceled,
                    error_type::CANCELED,
                    "canceled by the caller",
                ))
            }
        }
    }
}

struct Env {
    _dir: tempfile::TempDir,
    app: App,
    fake: Arc<Fake>,
    run: RunTools,
    p: Principal,
}

fn args(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("args must be an object"),
    }
}

async fn create(
    app: &App,
    p: &Principal,
    ns: &str,
    tool: &str,
    a: Value,
) -> Result<Value, ApiError> {
    app.call_create_tool(p, ns, tool, args(a)).await
}

async fn env_with(cfg: RunConfig) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = App::open(AppConfig::new(dir.path())).unwrap();
    let p = account(&app, "a@x.io", ALL, None).0;
    let fake = Fake::new();
    let run = RunTools::new(app.clone(), fake.clone(), &cfg).unwrap();
    create(&app, &p, "acme", "make_namespace", json!({"name": "acme"}))
        .await
        .unwrap();
    create(&app, &p, "acme", "make_service", json!({"name": "tools"}))
        .await
        .unwrap();
    create(
        &app,
        &p,
        "acme",
        "make_function",
        json!({"service": "tools", "name": "hello", "backend": "code_sandbox", "template": "hello-world", "tags": ["greet"]}),
    )
    .await
    .unwrap();
    create(
        &app,
        &p,
        "acme",
        "make_function",
        json!({
            "service": "tools", "name": "add-up", "backend": "code_sandbox", "language": "typescript",
            "description": "Adds a and b",
            "code": "export default function main(i: any) { return i.a + i.b; }",
            "input_schema": {
                "type": "object",
                "properties": { "a": {"type": "integer"}, "b": {"type": "integer"}, "label": {"type": "string", "maxLength": 3} },
                "required": ["a", "b"],
            },
            "tags": ["math"],
        }),
    )
    .await
    .unwrap();
    Env {
        _dir: dir,
        app,
        fake,
        run,
        p,
    }
}

async fn env() -> Env {
    env_with(RunConfig::default()).await
}

fn code_mode() -> RunMode {
    RunMode::default()
}

fn tool_mode(tags: &[&str]) -> RunMode {
    RunMode {
        tools: true,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
    }
}

impl Env {
    async fn call(
        &self,
        mode: &RunMode,
        tool: &str,
        a: Value,
    ) -> Result<paddock_edge::run::RunOutcome, ApiError> {
        self.run
            .call(
                &self.p,
                "acme",
                mode,
                tool,
                args(a),
                CancellationToken::new(),
            )
            .await
    }
    async fn err(&self, mode: &RunMode, tool: &str, a: Value) -> ApiError {
        match self.call(mode, tool, a).await {
            Ok(o) => panic!("{tool} should fail, got {o:?}"),
            Err(e) => e,
        }
    }
}

#[tokio::test]
async fn code_mode_lists_one_execute_tool() {
    let e = env().await;
    let tools = e.run.tools(&e.p, "acme", &code_mode()).unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].name, "execute");
    assert!(
        tools[0]
            .description
            .contains("import functions; print(functions.__doc__)")
    );
    assert!(tools[0].description.contains("require(\"./functions\")"));
    assert_eq!(tools[0].input_schema["required"], json!(["code"]));
    assert_eq!(
        tools[0].input_schema["properties"]["language"]["enum"],
        json!(["python", "typescript"])
    );
    assert!(tools[0].input_schema["properties"]["timeoutMs"].is_object());
}

#[tokio::test]
async fn code_mode_checks_arguments_before_dispatch() {
    let e = env().await;
    let m = code_mode();
    let cases = [
        (json!({}), ErrorCode::NoCodeProvided),
        (json!({"code": "   "}), ErrorCode::NoCodeProvided),
        (json!({"code": 5}), ErrorCode::InvalidArgument),
        (
            json!({"code": "x".repeat(MAX_CODE_BYTES + 1)}),
            ErrorCode::InputTooLarge,
        ),
        (
            json!({"code": "1", "language": "ruby"}),
            ErrorCode::UnsupportedLanguage,
        ),
        (
            json!({"code": "1", "timeoutMs": 0}),
            ErrorCode::InvalidArgument,
        ),
        (
            json!({"code": "1", "timeoutMs": -5}),
            ErrorCode::InvalidArgument,
        ),
        (
            json!({"code": "1", "timeoutMs": "soon"}),
            ErrorCode::InvalidArgument,
        ),
        (
            json!({"code": "1", "input": [1, 2]}),
            ErrorCode::InvalidArgument,
        ),
    ];
    for (a, code) in cases {
        let x = e.err(&m, "execute", a.clone()).await;
        assert_eq!(x.code, code, "{a}: {x}");
    }
    assert_eq!(
        e.err(&m, "run_stuff", json!({"code": "1"})).await.code,
        ErrorCode::UnknownTool
    );
    assert!(e.fake.seen().is_empty(), "nothing may reach a worker");
    // exactly at the cap is fine
    e.call(&m, "execute", json!({"code": "x".repeat(MAX_CODE_BYTES)}))
        .await
        .unwrap();
}

#[tokio::test]
async fn code_mode_builds_the_request() {
    let e = env().await;
    let m = code_mode();
    let out = e
        .call(
            &m,
            "execute",
            json!({"code": "from functions import hello\nresult = hello(name=input_data['n'])", "input": {"n": "World"}, "timeoutMs": 2500}),
        )
        .await
        .unwrap();
    let seen = e.fake.seen();
    let (req, min_seq) = &seen[0];
    assert!(req.execution_id.starts_with("ex_"), "{}", req.execution_id);
    assert_eq!(req.namespace, "acme");
    assert_eq!(req.profile, "free");
    assert_eq!(req.language, Language::Python);
    assert_eq!(req.input_json, r#"{"n":"World"}"#);
    assert_eq!(req.timeout_ms, Some(2500));
    assert_eq!(*min_seq, e.app.committed_seq());
    assert!(*min_seq > 0);
    assert_eq!(out.structured["executionId"], req.execution_id.as_str());

    e.call(
        &m,
        "execute",
        json!({"code": "1", "language": "typescript"}),
    )
    .await
    .unwrap();
    e.call(&m, "execute_typescript", json!({"code": "1"}))
        .await
        .unwrap();
    e.call(
        &m,
        "execute_python",
        json!({"code": "1", "language": "typescript"}),
    )
    .await
    .unwrap();
    let langs: Vec<Language> = e
        .fake
        .seen()
        .iter()
        .skip(1)
        .map(|(r, _)| r.language)
        .collect();
    assert_eq!(
        langs,
        [Language::TypeScript, Language::TypeScript, Language::Python]
    );
    let seen = e.fake.seen();
    assert!(
        seen.iter()
            .all(|(r, _)| r.timeout_ms.is_none() || r.timeout_ms == Some(2500))
    );
    assert_eq!(seen[1].0.input_json, "{}");
    // ids are fresh
    let mut ids: Vec<_> = seen.iter().map(|(r, _)| r.execution_id.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 4);
}

#[tokio::test]
async fn results_map_to_structured_content_text_and_is_error() {
    let e = env().await;
    let m = code_mode();
    let ok = e
        .call(&m, "execute", json!({"code": "1", "input": {"a": 1}}))
        .await
        .unwrap();
    assert!(!ok.is_error);
    assert_eq!(ok.structured["status"], "completed");
    assert_eq!(ok.structured["result"], json!({"a": 1}));
    assert_eq!(ok.structured["stdout"], "hi\n");
    assert_eq!(ok.structured["durationMs"], 1.5);
    assert_eq!(ok.structured["calls"][0]["name"], "tools.hello");
    assert_eq!(ok.text, "{\"a\":1}\n--- stdout ---\nhi\n");

    e.fake.set(Answer::Fail);
    let bad = e
        .call(&m, "execute", json!({"code": "raise ValueError"}))
        .await
        .unwrap();
    assert!(bad.is_error);
    assert_eq!(bad.structured["status"], "failed");
    assert_eq!(bad.structured["error"]["type"], "ValueError");
    assert!(bad.text.contains("bad value"), "{}", bad.text);

    e.fake.set(Answer::NoWorkers);
    let x = e.err(&m, "execute", json!({"code": "1"})).await;
    assert_eq!(x.code, ErrorCode::NoWorkers);
}

#[tokio::test]
async fn cancel_reaches_the_backend() {
    let e = env().await;
    e.fake.set(Answer::WaitForCancel);
    let cancel = CancellationToken::new();
    let task = {
        let (run, p, c) = (e.run.clone(), e.p.clone(), cancel.clone());
        tokio::spawn(async move {
            run.call(
                &p,
                "acme",
                &RunMode::default(),
                "execute",
                args(json!({"code": "while True: pass"})),
                c,
            )
            .await
        })
    };
    cancel.cancel();
    let out = tokio::time::timeout(std::time::Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(out.is_error);
    assert_eq!(out.structured["status"], "canceled");
    assert_eq!(out.structured["error"]["type"], "Canceled");
}

#[tokio::test]
async fn tool_mode_lists_one_tool_per_function_with_tags() {
    let e = env().await;
    let all = e.run.tools(&e.p, "acme", &tool_mode(&[])).unwrap();
    let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["tools.add-up", "tools.hello"]);
    for t in &all {
        assert!(!t.description.is_empty());
        assert_eq!(t.input_schema["type"], "object");
        assert!(
            t.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        );
    }
    assert_eq!(all[0].description, "Adds a and b");
    assert_eq!(all[0].input_schema["required"], json!(["a", "b"]));

    let math = e.run.tools(&e.p, "acme", &tool_mode(&["math"])).unwrap();
    assert_eq!(math.len(), 1);
    assert_eq!(math[0].name, "tools.add-up");
    let both = e
        .run
        .tools(&e.p, "acme", &tool_mode(&["math", "greet"]))
        .unwrap();
    assert_eq!(both.len(), 2);
    assert!(
        e.run
            .tools(&e.p, "acme", &tool_mode(&["nope"]))
            .unwrap()
            .is_empty()
    );
    // a function hidden by the tags filter cannot be called either
    let x = e
        .err(
            &tool_mode(&["greet"]),
            "tools.add-up",
            json!({"a": 1, "b": 2}),
        )
        .await;
    assert_eq!(x.code, ErrorCode::UnknownTool);
}

#[tokio::test]
async fn tool_mode_lists_every_schema_violation_before_dispatch() {
    let e = env().await;
    let m = tool_mode(&[]);
    let x = e
        .err(&m, "tools.add-up", json!({"a": "one", "label": "toolong"}))
        .await;
    assert_eq!(x.code, ErrorCode::InvalidToolArguments);
    let d = x.details.clone().unwrap();
    let v = d["violations"].as_array().unwrap();
    assert_eq!(v.len(), 3, "{d}");
    let paths: Vec<&str> = v.iter().map(|x| x["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"/a"), "{paths:?}");
    assert!(paths.contains(&"/label"), "{paths:?}");
    assert!(paths.contains(&"/"), "{paths:?}");
    assert!(x.message.contains("3 violations"), "{}", x.message);
    assert!(
        x.message.contains("\"b\" is a required property"),
        "{}",
        x.message
    );
    assert_eq!(x.body()["violations"], d["violations"]);

    let x = e.err(&m, "hello", json!({})).await;
    assert_eq!(x.code, ErrorCode::InvalidToolName);
    assert!(
        x.message.starts_with("Invalid tool name format"),
        "{}",
        x.message
    );
    assert_eq!(
        e.err(&m, "tools.nope", json!({})).await.code,
        ErrorCode::UnknownTool
    );
    assert_eq!(
        e.err(&m, "nope.hello", json!({})).await.code,
        ErrorCode::UnknownTool
    );
    assert!(e.fake.seen().is_empty(), "nothing may reach a worker");
}

#[tokio::test]
async fn tool_mode_call_runs_the_function_and_counts_it() {
    let e = env().await;
    let m = tool_mode(&[]);
    let out = e
        .call(&m, "tools.add-up", json!({"a": 1, "b": 2}))
        .await
        .unwrap();
    assert!(!out.is_error);
    assert_eq!(out.structured["result"], json!({"a": 1, "b": 2}));
    e.call(&m, "tools.hello", json!({"name": "World"}))
        .await
        .unwrap();
    let seen = e.fake.seen();
    assert_eq!(seen[0].0.language, Language::TypeScript);
    assert_eq!(
        seen[0].0.code,
        tool_call_code(Language::TypeScript, "tools", "add-up")
    );
    assert_eq!(seen[0].0.input_json, r#"{"a":1,"b":2}"#);
    assert_eq!(seen[1].0.language, Language::Python);
    assert_eq!(
        seen[1].0.code,
        tool_call_code(Language::Python, "tools", "hello")
    );
    assert_eq!(
        e.app.store().call_count("acme", "tools", "add-up").unwrap(),
        1
    );
    assert_eq!(
        e.app.store().call_count("acme", "tools", "hello").unwrap(),
        1
    );
    // code-mode names still work in tool mode
    e.call(&m, "execute", json!({"code": "1"})).await.unwrap();
}

#[tokio::test]
async fn executions_are_recorded_and_listed() {
    let e = env().await;
    e.call(&code_mode(), "execute", json!({"code": "result = 1"}))
        .await
        .unwrap();
    e.call(&tool_mode(&[]), "tools.hello", json!({"name": "W"}))
        .await
        .unwrap();
    e.fake.set(Answer::Fail);
    e.call(&code_mode(), "execute", json!({"code": "raise"}))
        .await
        .unwrap();
    e.fake.set(Answer::NoWorkers);
    e.err(&code_mode(), "execute", json!({"code": "1"})).await;
    // refused before dispatch: not an execution
    e.err(&code_mode(), "execute", json!({})).await;
    e.run.records().sync();

    let l = create(&e.app, &e.p, "acme", "list_executions", json!({}))
        .await
        .unwrap();
    assert_eq!(l["count"], 4, "{l}");
    let ex = l["executions"].as_array().unwrap();
    let statuses: Vec<&str> = ex.iter().map(|x| x["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["error", "failed", "completed", "completed"]);
    assert_eq!(ex[0]["error_type"], "NO_WORKERS");
    assert_eq!(ex[1]["error_type"], "ValueError");
    assert_eq!(ex[2]["function"], "tools.hello");
    assert_eq!(ex[2]["mode"], "tool");
    assert_eq!(ex[2]["calls"], json!(["tools.hello"]));
    assert_eq!(ex[2]["usage"]["cpu_ms"], 3);
    assert_eq!(ex[3]["mode"], "code");
    let sha = hex::encode(sha2::Sha256::digest(b"result = 1"));
    assert_eq!(ex[3]["code_sha256"], sha.as_str());
    assert_eq!(ex[3]["function"], Value::Null);

    let f = |a: Value| {
        let (app, p) = (e.app.clone(), e.p.clone());
        async move { create(&app, &p, "acme", "list_executions", a).await }
    };
    assert_eq!(f(json!({"status": "completed"})).await.unwrap()["count"], 2);
    assert_eq!(
        f(json!({"function": "tools.hello"})).await.unwrap()["count"],
        1
    );
    assert_eq!(f(json!({"limit": 1})).await.unwrap()["count"], 1);
    assert_eq!(
        f(json!({"since": 4_000_000_000u64 - 1})).await.unwrap()["count"],
        0
    );
    assert_eq!(f(json!({"since": 1})).await.unwrap()["count"], 4);
    assert_eq!(
        f(json!({"limit": 101})).await.unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        f(json!({"status": "weird"})).await.unwrap_err().code,
        ErrorCode::InvalidArgument
    );

    let id = ex[1]["execution_id"].as_str().unwrap();
    let d = create(
        &e.app,
        &e.p,
        "acme",
        "describe_execution",
        json!({"execution_id": id}),
    )
    .await
    .unwrap();
    assert_eq!(d["status"], "failed");
    assert_eq!(d["language"], "python");
    let x = create(
        &e.app,
        &e.p,
        "acme",
        "describe_execution",
        json!({"execution_id": "ex_nope"}),
    )
    .await
    .unwrap_err();
    assert_eq!(x.code, ErrorCode::ExecutionNotFound);

    // another account sees nothing of acme, and its own namespace has no records
    let other = account(&e.app, "b@x.io", ALL, None).0;
    let x = create(
        &e.app,
        &other,
        "acme",
        "describe_execution",
        json!({"execution_id": id}),
    )
    .await
    .unwrap_err();
    assert_eq!(x.code, ErrorCode::NamespaceDenied);
    let x = create(&e.app, &other, "acme", "list_executions", json!({}))
        .await
        .unwrap_err();
    assert_eq!(x.code, ErrorCode::NamespaceDenied);
    create(
        &e.app,
        &other,
        "beta",
        "make_namespace",
        json!({"name": "beta"}),
    )
    .await
    .unwrap();
    let l = create(&e.app, &other, "beta", "list_executions", json!({}))
        .await
        .unwrap();
    assert_eq!(l["count"], 0);
    let x = create(
        &e.app,
        &other,
        "beta",
        "describe_execution",
        json!({"execution_id": id}),
    )
    .await
    .unwrap_err();
    assert_eq!(x.code, ErrorCode::ExecutionNotFound);
}

#[tokio::test]
async fn retention_keeps_the_newest_per_namespace() {
    let e = env_with(RunConfig {
        retention_per_namespace: 5,
        ..RunConfig::default()
    })
    .await;
    for i in 0..8 {
        e.call(
            &code_mode(),
            "execute",
            json!({"code": format!("result = {i}")}),
        )
        .await
        .unwrap();
    }
    e.run.records().sync();
    let ids: Vec<String> = e
        .fake
        .seen()
        .iter()
        .map(|(r, _)| r.execution_id.clone())
        .collect();
    assert_eq!(e.app.store().count_executions("acme").unwrap(), 5);
    let l = create(
        &e.app,
        &e.p,
        "acme",
        "list_executions",
        json!({"limit": 100}),
    )
    .await
    .unwrap();
    let listed: Vec<&str> = l["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["execution_id"].as_str().unwrap())
        .collect();
    let newest: Vec<&str> = ids.iter().rev().take(5).map(String::as_str).collect();
    assert_eq!(listed, newest);
    for old in &ids[..3] {
        assert!(e.app.store().execution("acme", old).unwrap().is_none());
    }
    // a reopened writer counts what is there and keeps trimming
    let run2 = RunTools::new(
        e.app.clone(),
        e.fake.clone(),
        &RunConfig {
            retention_per_namespace: 5,
            ..RunConfig::default()
        },
    )
    .unwrap();
    run2.call(
        &e.p,
        "acme",
        &code_mode(),
        "execute",
        args(json!({"code": "1"})),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    run2.records().sync();
    assert_eq!(e.app.store().count_executions("acme").unwrap(), 5);
}
