//! The run endpoint's `tools/call` fast path (`mcp::fast`) against rmcp's stateless
//! service: the same request through both gives byte-identical JSON-RPC bodies (success,
//! failed execution, invalid arguments, unknown tool, tool mode, dispatch errors), and a
//! fast-path call is cancelled by a stateless `notifications/cancelled` posted through the
//! rmcp service, as an rmcp-path call is. Real control plane (`App`) and run tools; a fake
//! `RunBackend` stands in for the worker link.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use paddock_edge::app::{ApiError, App, AppConfig, Endpoint, Principal};
use paddock_edge::mcp::{CallCtx, McpService, fast, run_call};
use paddock_edge::route::RunMode;
use paddock_edge::run::{RunBackend, RunConfig, RunTools};
use paddock_shared::ErrorCode;
use paddock_shared::exec::{ExecStatus, ExecutionRequest, ExecutionResult, error_type};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower_service::Service as _;

mod account_support;
use account_support::{ALL, account};

#[derive(Clone, Copy)]
enum Answer {
    Echo,
    Fail,
    NoWorkers,
    WaitForCancel,
}

struct Fake {
    answer: Mutex<Answer>,
    ids: Mutex<Vec<String>>,
    started: tokio::sync::Notify,
}

#[async_trait]
impl RunBackend for Fake {
    async fn execute(
        &self,
        req: ExecutionRequest,
        _min_seq: u64,
        cancel: CancellationToken,
    ) -> Result<ExecutionResult, ApiError> {
        self.ids.lock().unwrap().push(req.execution_id.clone());
        self.started.notify_one();
        let answer = *self.answer.lock().unwrap();
        match answer {
            Answer::Echo => {
                let mut r =
                    ExecutionResult::failed(&req.execution_id, ExecStatus::Completed, "", "");
                r.error = None;
                r.result_json = Some(req.input_json.clone());
                r.stdout = "hi \"there\" é\n".into();
                r.duration_us = 1500;
                r.usage.cpu_ms = 3;
                Ok(r)
            }
            Answer::Fail => Ok(ExecutionResult::failed(
                &req.execution_id,
                ExecStatus::Failed,
                "ValueError",
                "bad value",
            )),
            Answer::NoWorkers => Err(ApiError {
                retry_after: Some(30),
                ..ApiError::new(ErrorCode::NoWorkers, "no workers")
            }),
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
    fake: Arc<Fake>,
    run: Arc<RunTools>,
    svc: McpService,
    p: Principal,
}

fn obj(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = App::open(AppConfig::new(dir.path())).unwrap();
    let (p, _) = account(&app, "a@x.io", ALL, None);
    for (tool, args) in [
        ("make_namespace", json!({"name": "acme"})),
        ("make_service", json!({"name": "tools"})),
        (
            "make_function",
            json!({"service": "tools", "name": "hello", "backend": "code_sandbox", "template": "hello-world"}),
        ),
        (
            "make_function",
            json!({
                "service": "tools", "name": "add-up", "backend": "code_sandbox", "language": "typescript",
                "code": "export default function main(i: any) { return i.a + i.b; }",
                "input_schema": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]},
            }),
        ),
    ] {
        app.call_create_tool(&p, "acme", tool, obj(args))
            .await
            .unwrap();
    }
    let fake = Arc::new(Fake {
        answer: Mutex::new(Answer::Echo),
        ids: Mutex::new(Vec::new()),
        started: tokio::sync::Notify::new(),
    });
    let run = Arc::new(RunTools::new(app.clone(), fake.clone(), &RunConfig::default()).unwrap());
    let svc = paddock_edge::mcp::service(Arc::new(app), run.clone(), false);
    Env {
        _dir: dir,
        fake,
        run,
        svc,
        p,
    }
}

fn headers() -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert("content-type", "application/json".parse().unwrap());
    h.insert(
        "accept",
        "application/json, text/event-stream".parse().unwrap(),
    );
    h.insert("host", "localhost".parse().unwrap());
    h
}

fn uri() -> http::Uri {
    "/mcp/run/acme".parse().unwrap()
}

impl Env {
    fn ctx(&self, mode: &RunMode) -> CallCtx {
        CallCtx {
            principal: self.p.clone(),
            endpoint: Endpoint::Run,
            namespace: "acme".into(),
            run_mode: mode.clone(),
        }
    }

    /// The body rmcp's stateless service answers (HTTP 200, JSON).
    async fn via_rmcp(&self, mode: &RunMode, body: &[u8]) -> Vec<u8> {
        let mut req = http::Request::builder().method("POST").uri(uri());
        *req.headers_mut().unwrap() = headers();
        let mut req = req.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
        req.extensions_mut().insert(self.ctx(mode));
        let resp = self.svc.clone().call(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json");
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    /// The body the edge's fast path answers (what `server::http` does with a call that
    /// `fast::tools_call` accepts).
    async fn via_fast(&self, mode: &RunMode, body: &[u8], ct: CancellationToken) -> Vec<u8> {
        let call = fast::tools_call(&uri(), &headers(), body).expect("fast path eligible");
        let out = run_call(
            &*self.run,
            self.svc.cancels(),
            &self.ctx(mode),
            call.key,
            &call.name,
            call.arguments,
            ct,
        )
        .await;
        fast::call_body(call.id, out)
    }

    /// Replaces the execution id(s) the fake saw since `from` (fresh per call) with `EX`.
    fn normalize(&self, body: Vec<u8>, from: usize) -> String {
        let mut s = String::from_utf8(body).unwrap();
        for id in &self.fake.ids.lock().unwrap()[from..] {
            s = s.replace(id.as_str(), "EX");
        }
        s
    }

    /// Both paths' bodies for the same request, execution ids normalized.
    async fn both(&self, mode: &RunMode, body: &Value) -> (String, String) {
        let bytes = serde_json::to_vec(body).unwrap();
        let n = self.fake.ids.lock().unwrap().len();
        let a = self.via_rmcp(mode, &bytes).await;
        let a = self.normalize(a, n);
        let n = self.fake.ids.lock().unwrap().len();
        let b = self.via_fast(mode, &bytes, CancellationToken::new()).await;
        let b = self.normalize(b, n);
        (a, b)
    }
}

fn call(id: Value, name: &str, args: Option<Value>) -> Value {
    let mut params = json!({ "name": name });
    if let Some(a) = args {
        params["arguments"] = a;
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
}

#[tokio::test]
async fn both_paths_give_identical_bodies() {
    let e = env().await;
    let code = RunMode::default();
    let tools = RunMode {
        tools: true,
        tags: Vec::new(),
    };
    let cases: Vec<(&str, Answer, &RunMode, Value)> = vec![
        (
            "success",
            Answer::Echo,
            &code,
            call(
                json!(1),
                "execute",
                Some(json!({"code": "result = input_data", "input": {"x": [1, "ü"]}})),
            ),
        ),
        (
            "alias, string id",
            Answer::Echo,
            &code,
            call(
                json!("a\"b/é"),
                "execute_python",
                Some(json!({"code": "result = 1"})),
            ),
        ),
        (
            "failed execution",
            Answer::Fail,
            &code,
            call(
                json!(2),
                "execute",
                Some(json!({"code": "raise ValueError"})),
            ),
        ),
        (
            "no code",
            Answer::Echo,
            &code,
            call(json!(3), "execute", None),
        ),
        (
            "bad language",
            Answer::Echo,
            &code,
            call(
                json!(4),
                "execute",
                Some(json!({"code": "x", "language": "cobol"})),
            ),
        ),
        (
            "bad timeout",
            Answer::Echo,
            &code,
            call(
                json!(5),
                "execute",
                Some(json!({"code": "x", "timeoutMs": -1})),
            ),
        ),
        (
            "unknown tool",
            Answer::Echo,
            &code,
            call(json!(6), "no_such_tool", Some(json!({}))),
        ),
        (
            "no workers",
            Answer::NoWorkers,
            &code,
            call(json!(7), "execute", Some(json!({"code": "result = 1"}))),
        ),
        (
            "tool mode",
            Answer::Echo,
            &tools,
            call(json!(8), "tools.hello", Some(json!({"name": "W"}))),
        ),
        (
            "tool mode, schema violations",
            Answer::Echo,
            &tools,
            call(json!(9), "tools.add-up", Some(json!({"a": "x"}))),
        ),
        (
            "tool mode, unknown function",
            Answer::Echo,
            &tools,
            call(json!(10), "tools.nope", Some(json!({}))),
        ),
        (
            "tool mode, bad name",
            Answer::Echo,
            &tools,
            call(json!(11), "nodot", Some(json!({}))),
        ),
    ];
    for (what, answer, mode, body) in cases {
        *e.fake.answer.lock().unwrap() = answer;
        let (rmcp, fast) = e.both(mode, &body).await;
        assert_eq!(rmcp, fast, "{what}");
        let v: Value = serde_json::from_str(&fast).unwrap();
        assert_eq!(v["id"], body["id"], "{what}: {fast}");
        assert!(
            v.get("result").is_some() || v.get("error").is_some(),
            "{what}: {fast}"
        );
    }
    // The cases above reached the fake (no argument error was dispatched).
    assert!(e.fake.ids.lock().unwrap().len() >= 10);
    let (_, unknown) = e.both(&code, &call(json!(6), "no_such_tool", None)).await;
    let v: Value = serde_json::from_str(&unknown).unwrap();
    assert_eq!(v["error"]["code"], -32602, "{unknown}");
}

#[tokio::test]
async fn a_posted_cancel_reaches_a_fast_path_call() {
    let e = env().await;
    *e.fake.answer.lock().unwrap() = Answer::WaitForCancel;
    let body = serde_json::to_vec(&call(
        json!(42),
        "execute",
        Some(json!({"code": "import time; time.sleep(60)"})),
    ))
    .unwrap();
    let started = e.fake.started.notified();
    let mode = RunMode::default();
    let running = e.via_fast(&mode, &body, CancellationToken::new());
    tokio::pin!(running);
    tokio::select! {
        () = started => {}
        _ = &mut running => panic!("the call ended before it was canceled"),
    }
    assert_eq!(e.svc.cancels().len(), 1);
    // Another id of the same caller cancels nothing; the right one the fast-path call.
    let cancel = |rid: Value| {
        serde_json::to_vec(
            &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": rid}}),
        )
        .unwrap()
    };
    let mut req = http::Request::builder().method("POST").uri(uri());
    *req.headers_mut().unwrap() = headers();
    let mut req = req
        .body(Full::new(Bytes::from(cancel(json!("42")))))
        .unwrap();
    req.extensions_mut().insert(e.ctx(&RunMode::default()));
    assert_eq!(e.svc.clone().call(req).await.unwrap().status(), 202);
    assert_eq!(e.svc.cancels().len(), 1);
    let mut req = http::Request::builder().method("POST").uri(uri());
    *req.headers_mut().unwrap() = headers();
    let mut req = req.body(Full::new(Bytes::from(cancel(json!(42))))).unwrap();
    req.extensions_mut().insert(e.ctx(&RunMode::default()));
    assert_eq!(e.svc.clone().call(req).await.unwrap().status(), 202);
    let v: Value = serde_json::from_slice(&running.await).unwrap();
    assert_eq!(v["id"], 42);
    assert_eq!(v["result"]["isError"], true, "{v}");
    assert_eq!(
        v["result"]["structuredContent"]["status"], "canceled",
        "{v}"
    );
    assert!(e.svc.cancels().is_empty(), "the registration is removed");
}
