//! The bridge at the edge, over the real worker link: a scripted version-3 worker joins
//! `workers.sock` with the join token, receives `ExecuteV3` with a fresh bridge key, and
//! sends `BridgeCall`s that the edge serves against the real third-party
//! `@modelcontextprotocol/server-everything` on loopback. Checked: the key's shape, calls
//! answered with the tool's value, the call budget (`max_calls_per_execution` = 2: the
//! third call is `CALL_BUDGET_EXCEEDED`), every call recorded in the execution's `calls`,
//! and keys refused once their execution ended, for another execution (of another
//! namespace), on another connection, or when made up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod account_support;
mod mcp_servers_support;

use std::path::Path;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mcp_servers_support::{env, everything, ok};
use paddock_edge::workers::{Dispatcher, HubOptions, WorkerHub};
use paddock_shared::ErrorCode;
use paddock_shared::exec::{ExecStatus, ExecutionRequest, ExecutionResult};
use paddock_shared::model::Language;
use paddock_shared::protocol::{
    BridgeCall, BridgeOutcome, FrameCodec, FromWorker, ToWorker, VERSION, Welcome,
};
use serde_json::{Value, json};
use tokio::net::UnixStream;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

type Conn = Framed<UnixStream, FrameCodec<ToWorker, FromWorker>>;

/// Joins as worker `id` and returns once the dispatcher has registered it (the edge sends
/// `Hello` just before it registers the connection, so dispatching right after `Hello`
/// could still find no worker).
async fn join(d: &Dispatcher, dir: &Path, id: &str) -> Conn {
    let token = std::fs::read_to_string(dir.join("join.token")).unwrap();
    let s = UnixStream::connect(dir.join("workers.sock")).await.unwrap();
    let mut c = Framed::new(s, FrameCodec::<ToWorker, FromWorker>::default());
    c.send(FromWorker::Join {
        join_token: token.trim().to_owned(),
        from_seq: 1,
        welcome: Welcome {
            version: VERSION,
            worker_id: id.into(),
            capacity: 4,
            max_in_flight: 64,
            max_frame_len: 8 << 20,
            profiles: vec!["free".into()],
            languages: vec![Language::Python],
        },
    })
    .await
    .unwrap();
    assert!(matches!(next(&mut c).await, ToWorker::Hello(_)));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !d.stats().iter().any(|w| w.worker_id == id) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker {id} registered in time"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c
}

/// The next frame that is not a heartbeat or replication (answering pings).
async fn next(c: &mut Conn) -> ToWorker {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let f = tokio::time::timeout_at(deadline, c.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("valid");
        match f {
            ToWorker::Ping { nonce } => c.send(FromWorker::Pong { nonce }).await.unwrap(),
            ToWorker::Replicate { .. } | ToWorker::Snapshot { .. } => {}
            other => return other,
        }
    }
}

fn request(id: &str, ns: &str) -> ExecutionRequest {
    ExecutionRequest {
        execution_id: id.into(),
        namespace: ns.into(),
        profile: "free".into(),
        language: Language::Python,
        code: "from functions import mcp__everything__echo".into(),
        input_json: "{}".into(),
        timeout_ms: None,
    }
}

/// Dispatches `req` in the background; returns its answer's receiver.
fn dispatch(
    d: &Dispatcher,
    req: ExecutionRequest,
) -> tokio::task::JoinHandle<Result<ExecutionResult, paddock_edge::app::ApiError>> {
    let d = d.clone();
    tokio::spawn(async move { d.execute(req, 0, CancellationToken::new()).await })
}

/// Receives the `ExecuteV3` of `id`; returns its bridge key.
async fn key_of(c: &mut Conn, id: &str) -> String {
    match next(c).await {
        ToWorker::ExecuteV3 {
            request,
            bridge_key,
            ..
        } => {
            assert_eq!(request.execution_id, id);
            bridge_key
        }
        other => panic!("expected ExecuteV3, got {other:?}"),
    }
}

async fn bridge(c: &mut Conn, call: BridgeCall) -> BridgeOutcome {
    let id = call.call_id;
    c.send(FromWorker::BridgeCall(call)).await.unwrap();
    match next(c).await {
        ToWorker::BridgeResult { call_id, outcome } => {
            assert_eq!(call_id, id);
            outcome
        }
        other => panic!("expected BridgeResult, got {other:?}"),
    }
}

fn call(execution_id: &str, key: &str, call_id: u64, tool: &str, input: Value) -> BridgeCall {
    BridgeCall {
        execution_id: execution_id.into(),
        bridge_key: key.into(),
        call_id,
        server: "everything".into(),
        tool: tool.into(),
        input_json: input.to_string(),
    }
}

fn code_of(o: &BridgeOutcome) -> Option<ErrorCode> {
    match o {
        BridgeOutcome::Err { code, .. } => Some(*code),
        BridgeOutcome::Ok(_) => None,
    }
}

fn done(id: &str) -> FromWorker {
    let mut r = ExecutionResult::failed(id, ExecStatus::Completed, "x", "");
    r.error = None;
    r.result_json = Some("1".into());
    FromWorker::Result(r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_calls_are_served_budgeted_recorded_and_keys_die_with_their_execution() {
    let server = everything("streamableHttp").await;
    let e = env().await;
    ok(
        &e,
        "add_mcp_server",
        json!({"name": "everything", "url": server.url()}),
    )
    .await;
    ok(
        &e,
        "set_mcp_server_setting",
        json!({"name": "everything", "key": "max_calls_per_execution", "value": 2}),
    )
    .await;
    ok(&e, "make_namespace", json!({"name": "other"})).await;
    let shutdown = CancellationToken::new();
    let opts = HubOptions {
        shutdown: shutdown.clone(),
        ..HubOptions::default()
    };
    let (d, _task) = WorkerHub::start(e.dir.path(), e.app.clone(), opts)
        .await
        .unwrap();
    let mut w = join(&d, e.dir.path(), "w-bridge").await;

    let running = dispatch(&d, request("ex_a", "acme"));
    let key = key_of(&mut w, "ex_a").await;
    assert_eq!(key.len(), 64, "256 bits, hex");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));

    // Two calls inside the budget: the tool's answer comes back.
    let first = bridge(
        &mut w,
        call("ex_a", &key, 1, "echo", json!({"message": "hi"})),
    )
    .await;
    let BridgeOutcome::Ok(reply) = &first else {
        panic!("echo failed: {first:?}")
    };
    assert!(!reply.is_error && !reply.truncated);
    assert!(
        reply.value_json.contains("Echo: hi"),
        "{}",
        reply.value_json
    );
    assert!(reply.bytes > 0);
    let second = bridge(
        &mut w,
        call("ex_a", &key, 2, "get-sum", json!({"a": 2, "b": 3})),
    )
    .await;
    let BridgeOutcome::Ok(sum) = &second else {
        panic!("get-sum failed: {second:?}")
    };
    assert!(sum.value_json.contains('5'), "{}", sum.value_json);
    // The third is over max_calls_per_execution.
    let third = bridge(
        &mut w,
        call("ex_a", &key, 3, "echo", json!({"message": "again"})),
    )
    .await;
    assert_eq!(code_of(&third), Some(ErrorCode::CallBudgetExceeded));

    // A made-up key, and the right key for another execution id: refused.
    let made_up = bridge(&mut w, call("ex_a", &"0".repeat(64), 4, "echo", json!({}))).await;
    assert_eq!(code_of(&made_up), Some(ErrorCode::BridgeKeyInvalid));
    let other_exec = bridge(&mut w, call("ex_zzz", &key, 5, "echo", json!({}))).await;
    assert_eq!(code_of(&other_exec), Some(ErrorCode::BridgeKeyInvalid));

    // The result arrives: the calls are in it, in order, with latency and bytes.
    w.send(done("ex_a")).await.unwrap();
    let r = running.await.unwrap().unwrap();
    let calls: Vec<(&str, &str)> = r
        .calls
        .iter()
        .map(|c| (c.name.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("mcp__everything__echo", "ok"),
            ("mcp__everything__get_sum", "ok"),
            ("mcp__everything__echo", "CALL_BUDGET_EXCEEDED"),
        ]
    );
    assert!(r.calls[0].duration_us > 0 && r.calls[0].bytes > 0);
    assert!(
        d.bridge_keys().is_empty(),
        "the key is gone with its execution"
    );

    // The same key after its execution ended: refused.
    let stale = bridge(
        &mut w,
        call("ex_a", &key, 6, "echo", json!({"message": "late"})),
    )
    .await;
    assert_eq!(code_of(&stale), Some(ErrorCode::BridgeKeyInvalid));

    // Namespace `other`'s execution cannot use namespace `acme`'s key (nor the reverse).
    let in_acme = dispatch(&d, request("ex_b", "acme"));
    let acme_key = key_of(&mut w, "ex_b").await;
    let in_other = dispatch(&d, request("ex_c", "other"));
    let other_key = key_of(&mut w, "ex_c").await;
    let crossed = bridge(
        &mut w,
        call("ex_c", &acme_key, 7, "echo", json!({"message": "x"})),
    )
    .await;
    assert_eq!(code_of(&crossed), Some(ErrorCode::BridgeKeyInvalid));
    // `other` has no server called everything: its own key reaches the edge's lookup.
    let own = bridge(
        &mut w,
        call("ex_c", &other_key, 8, "echo", json!({"message": "x"})),
    )
    .await;
    assert_eq!(code_of(&own), Some(ErrorCode::McpServerNotFound));

    // A second worker connection cannot use keys sent on the first.
    let mut w2 = join(&d, e.dir.path(), "w-thief").await;
    let stolen = bridge(
        &mut w2,
        call("ex_b", &acme_key, 9, "echo", json!({"message": "x"})),
    )
    .await;
    assert_eq!(code_of(&stolen), Some(ErrorCode::BridgeKeyInvalid));

    // A worker-reported error ends the execution too (its key with it).
    w.send(FromWorker::Error {
        execution_id: Some("ex_b".into()),
        code: ErrorCode::StateNotReady,
        message: "no".into(),
    })
    .await
    .unwrap();
    assert!(in_acme.await.unwrap().is_err());
    let after_error = bridge(
        &mut w,
        call("ex_b", &acme_key, 10, "echo", json!({"message": "x"})),
    )
    .await;
    assert_eq!(code_of(&after_error), Some(ErrorCode::BridgeKeyInvalid));

    // The worker connection drops: WORKER_LOST, and no key survives.
    drop(w);
    let lost = in_other.await.unwrap();
    assert_eq!(lost.err().map(|e| e.code), Some(ErrorCode::WorkerLost));
    assert!(d.bridge_keys().is_empty());
    drop(w2);
    shutdown.cancel();
}
