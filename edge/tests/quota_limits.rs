//! The limits over the real edge binary (real TLS, real sled, accounts registered over
//! REST): a free tier set low drives each limit over its edge — monthly quota (exactly the
//! limit succeeds, then 429 `QUOTA_EXCEEDED` with usage/limit/tier and `Retry-After`),
//! execution rate, management rate — across graceful and kill -9 restarts, and under
//! parallel requests (successes == the limit). `get_usage` and `GET /v1/usage` report it.
//!
//! What counts: every admitted `tools/call` on the run endpoint is one execution, whatever
//! its outcome. No worker runs here, so executions answer `NO_WORKERS` (HTTP 200, a tool
//! error) — and still count, because admission happens before dispatch.
#![allow(clippy::unwrap_used)]

mod quota_support;

use std::time::Duration;

use quota_support::{Answer, Edge, seconds_to_month_reset};
use serde_json::{Value, json};

const CODE: &str = "result = 1";

fn assert_executed(a: &Answer) {
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.retry_after, None, "{a:?}");
    // No worker is connected: the execution was admitted, dispatched, and found none.
    assert_eq!(a.code(), Some("NO_WORKERS"), "{a:?}");
}

fn assert_429(a: &Answer, code: &str, usage: u64, limit: u64, tier: &str) {
    assert_eq!(a.status, 429, "{a:?}");
    assert_eq!(a.code(), Some(code), "{a:?}");
    assert_eq!(a.body["usage"], json!(usage), "{a:?}");
    assert_eq!(a.body["limit"], json!(limit), "{a:?}");
    assert_eq!(a.body["tier"], json!(tier), "{a:?}");
    assert!(
        a.body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{a:?}"
    );
    assert!(a.retry_after.is_some_and(|s| s >= 1), "{a:?}");
}

async fn usage_tool(edge: &Edge, key: &str, ns: &str) -> Value {
    let a = edge.call(key, "create", ns, "get_usage", json!({})).await;
    assert_eq!(a.status, 200, "{a:?}");
    a.structured().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_quota_exactly_the_limit_then_429_and_usage_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::start(
        &dir.path().join("data"),
        &[("PADDOCK_EDGE_LIMITS_FREE_MONTHLY_EXECUTIONS", "3")],
    );
    let (key, jwt) = edge.free_account("quota@example.com").await;
    edge.make_namespace(&key, "q1").await;
    // A JSON-RPC batch is refused before admission: nothing runs, nothing is counted.
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "execute", "arguments": {"code": CODE}}});
    let batch = edge.rpc(&key, "run", "q1", json!([call, call])).await;
    assert_eq!(
        (batch.status, batch.code()),
        (400, Some("BAD_REQUEST")),
        "{batch:?}"
    );
    assert_eq!(usage_tool(&edge, &key, "q1").await["executions"], json!(0));

    for _ in 0..3 {
        assert_executed(&edge.execute(&key, "q1", CODE).await);
    }
    let before = seconds_to_month_reset();
    let refused = edge.execute(&key, "q1", CODE).await;
    let after = seconds_to_month_reset();
    assert_429(&refused, "QUOTA_EXCEEDED", 3, 3, "free");
    // Retry-After is the time to the month's reset (UTC).
    let ra = refused.retry_after.unwrap();
    assert!(
        (after..=before).contains(&ra),
        "{ra} not in {after}..={before}"
    );
    // A tool-mode call is an execution too; free requests still pass.
    let tool = edge.call(&key, "run", "q1", "tools.hello", json!({})).await;
    assert_429(&tool, "QUOTA_EXCEEDED", 3, 3, "free");
    let list = edge
        .rpc(
            &key,
            "run",
            "q1",
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        )
        .await;
    assert_eq!(list.status, 200, "{list:?}");

    // get_usage (create tool, listed) and GET /v1/usage (API key or JWT) agree.
    let listed = edge
        .rpc(
            &key,
            "create",
            "q1",
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        )
        .await;
    let names: Vec<&str> = listed.body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"get_usage"), "{names:?}");
    let u = usage_tool(&edge, &key, "q1").await;
    assert_eq!(u["tier"], "free");
    assert_eq!(
        (&u["executions"], &u["limit"], &u["remaining"]),
        (&json!(3), &json!(3), &json!(0))
    );
    assert!(
        u["resets_at"].as_str().unwrap().ends_with("-01T00:00:00Z"),
        "{u}"
    );
    assert_eq!(u["concurrency"]["in_flight"], 0);
    for token in [&key, &jwt] {
        let r = edge.rest_usage(token).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body, u, "REST and the tool report the same");
    }
    let anon = edge
        .http
        .get(format!("{}/v1/usage", edge.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status().as_u16(), 401);

    // Another account of the same tier is not affected.
    let (other, _) = edge.free_account("other@example.com").await;
    edge.make_namespace(&other, "q2").await;
    assert_executed(&edge.execute(&other, "q2", CODE).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_and_management_rates_answer_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::start(
        &dir.path().join("data"),
        &[
            ("PADDOCK_EDGE_LIMITS_FREE_EXECUTIONS_PER_MINUTE", "1"),
            ("PADDOCK_EDGE_LIMITS_FREE_EXECUTION_BURST", "2"),
            ("PADDOCK_EDGE_LIMITS_FREE_MANAGEMENT_PER_MINUTE", "1"),
            ("PADDOCK_EDGE_LIMITS_FREE_MANAGEMENT_BURST", "3"),
        ],
    );
    let (key, _) = edge.free_account("rate@example.com").await;
    // Management: make_namespace and two make_service take the burst of 3.
    edge.make_namespace(&key, "r1").await;
    for svc in ["a", "b"] {
        let a = edge
            .call(&key, "create", "r1", "make_service", json!({"name": svc}))
            .await;
        assert_eq!((a.status, a.code()), (200, None), "{a:?}");
    }
    let refused = edge
        .call(&key, "create", "r1", "make_service", json!({"name": "c"}))
        .await;
    assert_429(&refused, "RATE_LIMITED", 3, 1, "free");
    assert!(refused.retry_after.unwrap() <= 60, "{refused:?}");
    // Reads are not management calls.
    let listed = edge
        .call(&key, "create", "r1", "list_services", json!({}))
        .await;
    assert_eq!(
        listed.structured()["services"].as_array().map(Vec::len),
        Some(2)
    );
    // Executions: a burst of 2, then RATE_LIMITED with the wait to the next token.
    for _ in 0..2 {
        assert_executed(&edge.execute(&key, "r1", CODE).await);
    }
    let refused = edge.execute(&key, "r1", CODE).await;
    assert_429(&refused, "RATE_LIMITED", 2, 1, "free");
    assert!(refused.retry_after.unwrap() <= 60, "{refused:?}");
    // A rate refusal consumes nothing: the month holds the two admitted executions.
    let u = usage_tool(&edge, &key, "r1").await;
    assert_eq!(
        (u["executions"].clone(), u["rate"]["available"].clone()),
        (json!(2), json!(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_requests_never_overshoot_the_limit() {
    const LIMIT: u64 = 40;
    const REQUESTS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let limit = LIMIT.to_string();
    let edge = Edge::start(
        &dir.path().join("data"),
        &[
            (
                "PADDOCK_EDGE_LIMITS_FREE_MONTHLY_EXECUTIONS",
                limit.as_str(),
            ),
            ("PADDOCK_EDGE_LIMITS_FREE_EXECUTIONS_PER_MINUTE", "1000000"),
            ("PADDOCK_EDGE_LIMITS_FREE_EXECUTION_BURST", "1000000"),
            ("PADDOCK_EDGE_LIMITS_FREE_CONCURRENT_EXECUTIONS", "1000000"),
        ],
    );
    let (key, _) = edge.free_account("par@example.com").await;
    edge.make_namespace(&key, "p1").await;
    // 200 requests at once over separate connections and HTTP/2 streams.
    let answers =
        futures::future::join_all((0..REQUESTS).map(|_| edge.execute(&key, "p1", CODE))).await;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let refused = answers
        .iter()
        .filter(|a| a.status == 429 && a.code() == Some("QUOTA_EXCEEDED"))
        .count();
    assert_eq!(ok as u64, LIMIT, "successes == the limit");
    assert_eq!(
        ok + refused,
        REQUESTS,
        "every other answer is QUOTA_EXCEEDED"
    );
    let u = usage_tool(&edge, &key, "p1").await;
    assert_eq!(u["executions"], json!(LIMIT));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_survive_graceful_and_kill_9_restarts_within_the_flush_bound() {
    const FLUSH_MS: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [
        ("PADDOCK_EDGE_LIMITS_FREE_MONTHLY_EXECUTIONS", "12"),
        ("PADDOCK_EDGE_LIMITS_FREE_EXECUTION_BURST", "100"),
        ("PADDOCK_EDGE_LIMITS_FLUSH_INTERVAL_MS", "100"),
    ];
    let edge = Edge::start(&data, &env);
    let (key, _) = edge.free_account("restart@example.com").await;
    edge.make_namespace(&key, "k1").await;
    for _ in 0..4 {
        assert_executed(&edge.execute(&key, "k1", CODE).await);
    }
    // Graceful stop writes the counters a last time: exact.
    edge.stop_graceful();
    let edge = Edge::start(&data, &env);
    assert_eq!(usage_tool(&edge, &key, "k1").await["executions"], json!(4));

    // kill -9 after the flusher has run (many intervals later): nothing is lost.
    for _ in 0..3 {
        assert_executed(&edge.execute(&key, "k1", CODE).await);
    }
    tokio::time::sleep(Duration::from_millis(FLUSH_MS * 10)).await;
    edge.kill_9();
    let edge = Edge::start(&data, &env);
    assert_eq!(usage_tool(&edge, &key, "k1").await["executions"], json!(7));

    // kill -9 right after admissions: at most those of the last interval are lost, and
    // the count never goes above what was admitted.
    for _ in 0..3 {
        assert_executed(&edge.execute(&key, "k1", CODE).await);
    }
    edge.kill_9();
    let edge = Edge::start(&data, &env);
    let n = usage_tool(&edge, &key, "k1").await["executions"]
        .as_u64()
        .unwrap();
    assert!((7..=10).contains(&n), "restored {n}, admitted 10");
    // The quota still holds after the restarts: exactly 12 - n more, then 429.
    for _ in n..12 {
        assert_executed(&edge.execute(&key, "k1", CODE).await);
    }
    assert_429(
        &edge.execute(&key, "k1", CODE).await,
        "QUOTA_EXCEEDED",
        12,
        12,
        "free",
    );
}
