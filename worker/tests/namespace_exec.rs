//! Namespaces on the real pools (real nsjail, real runners): the `functions` package
//! delivered from a real sled replica, cross-language calls through the worker, the call
//! log in the result, the call-depth limit, fresh packages after an update, tool mode.

#[path = "sandbox_support/mod.rs"]
mod sandbox_support;

use std::sync::{Arc, LazyLock, Mutex};

use paddock_shared::exec::{ExecStatus, ExecutionRequest, ExecutionResult};
use paddock_shared::model::{
    FunctionRecord, Language, NamespaceRecord, ReplEntry, ReplOp, ServiceRecord, VersionRecord,
};
use paddock_worker::executor::Executor;
use paddock_worker::package::tool_call_code;
use paddock_worker::replica::Replica;
use paddock_worker::slots::NamespaceSource;
use sandbox_support::{SANDBOX, expect};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const NS: &str = "acme-ns";

struct Fixture {
    replica: Arc<Replica>,
    apply: Mutex<()>,
    _dir: tempfile::TempDir,
}

fn put(service: &str, name: &str, language: Language, version: u32, code: &str) -> ReplOp {
    ReplOp::PutFunction {
        function: FunctionRecord {
            namespace: NS.into(),
            service: service.into(),
            name: name.into(),
            description: format!("{name} of {service}"),
            tags: Vec::new(),
            current_version: version,
            created_at: 1,
            updated_at: u64::from(version),
        },
        version: Some(VersionRecord {
            namespace: NS.into(),
            service: service.into(),
            function: name.into(),
            version,
            backend: "code_sandbox".into(),
            language,
            code: code.into(),
            config_json: "{}".into(),
            input_schema_json: None,
            output_schema_json: None,
            requirements: Vec::new(),
            template: None,
            restored_from: None,
            created_at: u64::from(version),
        }),
    }
}

impl Fixture {
    fn apply(&self, ops: Vec<ReplOp>) {
        let _one = self.apply.lock().unwrap_or_else(|p| p.into_inner());
        let first = self.replica.next_seq();
        let batch: Vec<ReplEntry> = ops
            .into_iter()
            .zip(first..)
            .map(|(op, seq)| ReplEntry { seq, op })
            .collect();
        self.replica.apply_batch(&batch).expect("apply");
    }
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    use Language::{Python, TypeScript};
    let dir = tempfile::tempdir().expect("tempdir");
    let replica = Arc::new(Replica::open(dir.path().join("replica")).expect("replica"));
    let f = Fixture {
        replica,
        apply: Mutex::new(()),
        _dir: dir,
    };
    let svc = |name: &str| {
        ReplOp::PutService(ServiceRecord {
            namespace: NS.into(),
            name: name.into(),
            description: format!("service {name}"),
            created_at: 1,
        })
    };
    f.apply(vec![
        ReplOp::PutNamespace(NamespaceRecord {
            name: NS.into(),
            description: "tests".into(),
            owner: "acct".into(),
            created_at: 1,
        }),
        svc("tools"),
        svc("loop"),
        put(
            "tools",
            "hello",
            Python,
            1,
            "def main(input_data):\n    return f\"Hello, {input_data['name']}!\"\n",
        ),
        put(
            "tools",
            "shout",
            TypeScript,
            1,
            "export default function (input: { text: string }): string {\n  return input.text.toUpperCase() + \"!\";\n}\n",
        ),
        put(
            "tools",
            "greet-loud",
            Python,
            1,
            "from functions import shout\n\ndef main(input_data):\n    return shout(text=\"hello \" + input_data[\"name\"])\n",
        ),
        put(
            "tools",
            "hello-via-ts",
            TypeScript,
            1,
            "const f = require(\"./functions\");\nexport default async function (input: any) {\n  return \"ts:\" + (await f.hello({ name: input.name }));\n}\n",
        ),
        put(
            "tools",
            "counter",
            Python,
            1,
            "result = 1\n",
        ),
        put(
            "tools",
            "spin",
            TypeScript,
            1,
            "export default function () {\n  for (;;) {}\n}\n",
        ),
        put(
            "loop",
            "ping",
            Python,
            1,
            "from functions import pong\n\ndef main(input_data):\n    return pong(n=input_data.get(\"n\", 0) + 1)\n",
        ),
        put(
            "loop",
            "pong",
            TypeScript,
            1,
            "const f = require(\"./functions\");\nexport default async function (input: any) {\n  return await f.ping({ n: input.n + 1 });\n}\n",
        ),
    ]);
    let source: Arc<dyn NamespaceSource> = f.replica.clone();
    assert!(SANDBOX.pools.set_namespace_source(source));
    f
});

fn run(language: Language, code: &str, input: Value) -> ExecutionResult {
    run_for(language, code, input, 9000)
}

fn run_for(language: Language, code: &str, input: Value, timeout_ms: u64) -> ExecutionResult {
    let _ = &*FIXTURE;
    let s = &*SANDBOX;
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let req = ExecutionRequest {
        execution_id: format!(
            "ns-{}",
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ),
        namespace: NS.into(),
        profile: "free".into(),
        language,
        code: code.into(),
        input_json: input.to_string(),
        timeout_ms: Some(timeout_ms),
    };
    s.rt.block_on(s.pools.execute(req, CancellationToken::new()))
}

fn completed(r: &ExecutionResult) -> Value {
    expect(r, ExecStatus::Completed, None);
    r.result_value()
}

fn calls(r: &ExecutionResult) -> Vec<(String, String)> {
    r.calls
        .iter()
        .map(|c| (c.name.clone(), c.status.clone()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[test]
fn python_sees_the_catalogue_and_calls_a_function() {
    let r = run(
        Language::Python,
        "import functions\nfrom functions import hello\nresult = {\"doc\": functions.__doc__, \"hello\": hello(name=\"World\")}\n",
        json!({}),
    );
    let v = completed(&r);
    let doc = v["doc"].as_str().expect("doc");
    for needle in ["hello(", "greet_loud(", "shout(", "tools"] {
        assert!(doc.contains(needle), "{needle} missing in {doc}");
    }
    assert_eq!(v["hello"], "Hello, World!");
    assert_eq!(calls(&r), pairs(&[("tools.hello", "ok")]));
}

#[test]
fn typescript_requires_the_package() {
    let r = run(
        Language::TypeScript,
        "const functions = require(\"./functions\");\nexport default async function () {\n  return { doc: functions.__doc__, shout: await functions.shout({ text: \"hi\" }) };\n}\n",
        json!({}),
    );
    let v = completed(&r);
    assert!(
        v["doc"]
            .as_str()
            .is_some_and(|d| d.contains("hello_via_ts")),
        "{v}"
    );
    assert_eq!(v["shout"], "HI!");
    assert_eq!(calls(&r), pairs(&[("tools.shout", "ok")]));
}

#[test]
fn python_calls_typescript_through_the_worker() {
    let r = run(
        Language::Python,
        "from functions import shout, greet_loud\nresult = [shout(text=\"hi\"), greet_loud(name=\"Ann\")]\n",
        json!({}),
    );
    assert_eq!(completed(&r), json!(["HI!", "HELLO ANN!"]));
    assert_eq!(
        calls(&r),
        pairs(&[
            ("tools.shout", "ok"),
            ("tools.greet-loud", "ok"),
            ("tools.shout", "ok")
        ])
    );
}

#[test]
fn typescript_calls_python_through_the_worker() {
    let r = run(
        Language::TypeScript,
        "const f = require(\"./functions\");\nexport default async function () {\n  return [await f.hello({ name: \"Bo\" }), await f.hello_via_ts({ name: \"Cy\" })];\n}\n",
        json!({}),
    );
    assert_eq!(completed(&r), json!(["Hello, Bo!", "ts:Hello, Cy!"]));
    assert_eq!(
        calls(&r),
        pairs(&[
            ("tools.hello", "ok"),
            ("tools.hello-via-ts", "ok"),
            ("tools.hello", "ok")
        ])
    );
}

#[test]
fn a_call_loop_stops_at_the_depth_limit() {
    let r = run(
        Language::Python,
        "from functions import ping\nresult = ping(n=0)\n",
        json!({}),
    );
    expect(&r, ExecStatus::Failed, Some("FunctionCallError"));
    let e = r.error.as_ref().expect("error");
    assert!(
        e.message.contains("CallDepthExceeded") && e.message.contains("deeper than 3"),
        "{}",
        e.message
    );
    // The whole call tree: the execution's own calls first, then those made inside the
    // nested executions (each language's hop runs as a nested execution).
    assert_eq!(
        calls(&r),
        pairs(&[
            ("loop.ping", "CallDepthExceeded"),
            ("loop.pong", "CallDepthExceeded"),
            ("loop.ping", "CallDepthExceeded"),
            ("loop.pong", "CallDepthExceeded"),
            ("loop.ping", "CallDepthExceeded")
        ])
    );
    sandbox_support::next_is_healthy(Language::Python);
    sandbox_support::next_is_healthy(Language::TypeScript);
}

#[test]
fn an_updated_function_is_seen_by_the_next_execution() {
    let code = "from functions import counter\nresult = counter()\n";
    assert_eq!(completed(&run(Language::Python, code, json!({}))), json!(1));
    FIXTURE.apply(vec![put(
        "tools",
        "counter",
        Language::Python,
        2,
        "result = 2\n",
    )]);
    assert_eq!(completed(&run(Language::Python, code, json!({}))), json!(2));
}

#[test]
fn tool_call_code_runs_a_function_with_its_input() {
    let r = run(
        Language::Python,
        &tool_call_code(Language::Python, "tools", "greet-loud"),
        json!({"name": "Di"}),
    );
    assert_eq!(completed(&r), json!("HELLO DI!"));
    assert_eq!(
        calls(&r),
        pairs(&[("tools.greet-loud", "ok"), ("tools.shout", "ok")])
    );
    let r = run(
        Language::TypeScript,
        &tool_call_code(Language::TypeScript, "tools", "hello"),
        json!({"name": "Ed"}),
    );
    assert_eq!(completed(&r), json!("Hello, Ed!"));
    assert_eq!(calls(&r), pairs(&[("tools.hello", "ok")]));
    let r = run(
        Language::Python,
        &tool_call_code(Language::Python, "tools", "nope"),
        json!({}),
    );
    expect(&r, ExecStatus::Failed, Some("LookupError"));
}

#[test]
fn other_targets_and_namespaces_are_refused_and_plain_code_gets_no_package() {
    let r = run(
        Language::Python,
        "import _paddock, os\nout = []\nfor target, args in [(\"mcp\", {}), (\"mcp\", {\"namespace\": \"other\", \"server\": \"s\", \"tool\": \"t\"}), (\"function\", {\"namespace\": \"other\", \"service\": \"tools\", \"function\": \"hello\", \"version\": 1, \"input\": {}})]:\n    try:\n        _paddock.call(target, args)\n    except _paddock.CallError as e:\n        out.append(e.type)\nresult = out\n",
        json!({}),
    );
    // mcp: malformed args, then another namespace (issue 6: the edge link serves the rest).
    assert_eq!(
        completed(&r),
        json!(["InvalidCall", "NamespaceDenied", "NamespaceDenied"])
    );
    let r = run(
        Language::Python,
        "import os\nresult = os.path.exists('func' + 'tions')\n",
        json!({}),
    );
    assert_eq!(completed(&r), json!(false));
    assert!(r.calls.is_empty());
}

#[test]
fn a_caller_timeout_stops_the_nested_call() {
    let started = std::time::Instant::now();
    let r = run_for(
        Language::Python,
        "from functions import spin\nresult = spin()\n",
        json!({}),
        1500,
    );
    expect(&r, ExecStatus::Timeout, Some("TimeoutError"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    sandbox_support::next_is_healthy(Language::TypeScript);
}
