//! The edge side of the worker link against a scripted worker over the real Unix socket:
//! NO_WORKERS with the join command, bad token refused, Join → Hello, the replication
//! stream from the worker's sequence (and the tail of new commits), acks in the registry,
//! ExecuteV2 carrying min_seq, results routed back, cancel, and WORKER_LOST at once for
//! every pending execution when the worker's connection ends.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use paddock_edge::app::{App, AppConfig, Principal};
use paddock_edge::workers::{Dispatcher, HubOptions, WorkerHub};
use paddock_shared::ErrorCode;
use paddock_shared::exec::{ExecStatus, ExecutionRequest, ExecutionResult};
use paddock_shared::model::Language;
use paddock_shared::protocol::{FrameCodec, FromWorker, ToWorker, Welcome};
use serde_json::{Map, Value, json};
use tokio::net::UnixStream;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

type Conn = Framed<UnixStream, FrameCodec<ToWorker, FromWorker>>;

struct Env {
    dir: tempfile::TempDir,
    app: App,
    admin: Principal,
    dispatcher: Dispatcher,
    shutdown: CancellationToken,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let (app, key) = App::open(AppConfig::new(dir.path())).unwrap();
    let admin = app.authenticate(&key.unwrap()).unwrap();
    let shutdown = CancellationToken::new();
    let opts = HubOptions {
        heartbeat: Duration::from_millis(200),
        shutdown: shutdown.clone(),
        ..HubOptions::default()
    };
    let (dispatcher, _task) = WorkerHub::start(dir.path(), app.clone(), opts)
        .await
        .unwrap();
    Env {
        dir,
        app,
        admin,
        dispatcher,
        shutdown,
    }
}

async fn tool(app: &App, p: &Principal, ns: &str, name: &str, a: Value) {
    let Value::Object(m) = a else { panic!() };
    let m: Map<String, Value> = m;
    app.call_create_tool(p, ns, name, m).await.unwrap();
}

async fn seed(env: &Env) {
    let (app, p) = (&env.app, &env.admin);
    tool(app, p, "acme", "make_namespace", json!({"name": "acme"})).await;
    tool(app, p, "acme", "make_service", json!({"name": "tools"})).await;
}

fn welcome(id: &str) -> Welcome {
    Welcome {
        // A version-2 worker: it gets ExecuteV2 (no bridge key); v3 is edge/tests/bridge_link.rs.
        version: 2,
        worker_id: id.into(),
        capacity: 4,
        max_in_flight: 64,
        max_frame_len: 1 << 20,
        profiles: vec!["free".into()],
        languages: vec![Language::Python],
    }
}

async fn join(dir: &Path, token: &str, from_seq: u64, id: &str) -> Conn {
    let s = UnixStream::connect(dir.join("workers.sock")).await.unwrap();
    let mut c = Framed::new(s, FrameCodec::<ToWorker, FromWorker>::default());
    c.send(FromWorker::Join {
        join_token: token.into(),
        from_seq,
        welcome: welcome(id),
    })
    .await
    .unwrap();
    c
}

fn token(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("join.token"))
        .unwrap()
        .trim()
        .to_owned()
}

/// The next frame that is not a heartbeat (answering pings).
async fn next(c: &mut Conn) -> ToWorker {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let f = tokio::time::timeout_at(deadline, c.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("valid");
        match f {
            ToWorker::Ping { nonce } => c.send(FromWorker::Pong { nonce }).await.unwrap(),
            other => return other,
        }
    }
}

fn request(id: &str) -> ExecutionRequest {
    ExecutionRequest {
        execution_id: id.into(),
        namespace: "acme".into(),
        profile: "free".into(),
        language: Language::Python,
        code: "result = 1".into(),
        input_json: "{}".into(),
        timeout_ms: None,
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn no_worker_is_no_workers_naming_the_join_command() {
    let env = env().await;
    let err = env
        .dispatcher
        .execute(request("e1"), 0, CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NoWorkers);
    let d = env.dir.path().display();
    assert_eq!(
        err.message,
        format!(
            "no worker is connected; start one with paddock-worker serve --edge unix:{d}/workers.sock --join-token-file {d}/join.token"
        )
    );
    use std::os::unix::fs::PermissionsExt;
    for f in ["join.token", "workers.sock"] {
        let mode = std::fs::metadata(env.dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    assert_eq!(token(env.dir.path()).len(), 64);
    env.shutdown.cancel();
}

#[tokio::test]
async fn a_bad_token_is_refused_and_closed() {
    let env = env().await;
    let mut c = join(env.dir.path(), "nope", 1, "w-bad").await;
    match next(&mut c).await {
        ToWorker::Error { code, message } => {
            assert_eq!(code, ErrorCode::AuthenticationFailed);
            assert_eq!(
                message,
                "bad join token: use the token of <data-dir>/join.token"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(c.next().await.is_none(), "closed after the refusal");
    assert!(env.dispatcher.stats().is_empty());
}

#[tokio::test]
async fn joined_worker_gets_the_log_acks_and_runs_executions() {
    let env = env().await;
    seed(&env).await;
    let committed = env.app.committed_seq();
    assert!(committed >= 2);
    let mut c = join(env.dir.path(), &token(env.dir.path()), 1, "w1").await;
    assert!(matches!(next(&mut c).await, ToWorker::Hello(_)));
    // The whole log from 1.
    let mut got = Vec::new();
    while got.last().copied() != Some(committed) {
        match next(&mut c).await {
            ToWorker::Replicate { entries } => got.extend(entries.iter().map(|e| e.seq)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, (1..=committed).collect::<Vec<_>>());
    c.send(FromWorker::Ack {
        applied_seq: committed,
    })
    .await
    .unwrap();
    let d = env.dispatcher.clone();
    until("ack in the registry", || {
        d.stats().first().is_some_and(|w| w.acked_seq == committed)
    })
    .await;
    let info = &env.dispatcher.stats()[0];
    assert_eq!(info.worker_id, "w1");
    assert_eq!(info.capacity, 4);

    // A new commit is tailed.
    tool(
        &env.app,
        &env.admin,
        "acme",
        "make_service",
        json!({"name": "more"}),
    )
    .await;
    match next(&mut c).await {
        ToWorker::Replicate { entries } => assert_eq!(entries[0].seq, committed + 1),
        other => panic!("{other:?}"),
    }

    // An execution carries min_seq; its result comes back.
    let d = env.dispatcher.clone();
    let run =
        tokio::spawn(async move { d.execute(request("e1"), 7, CancellationToken::new()).await });
    match next(&mut c).await {
        ToWorker::ExecuteV2 { request, min_seq } => {
            assert_eq!(request.execution_id, "e1");
            assert_eq!(min_seq, 7);
        }
        other => panic!("{other:?}"),
    }
    let mut r = ExecutionResult::failed("e1", ExecStatus::Completed, "", "");
    r.error = None;
    r.result_json = Some("1".into());
    c.send(FromWorker::Result(r.clone())).await.unwrap();
    assert_eq!(run.await.unwrap().unwrap(), r);

    // A typed refusal of one execution.
    let d = env.dispatcher.clone();
    let run =
        tokio::spawn(async move { d.execute(request("e2"), 99, CancellationToken::new()).await });
    assert!(matches!(next(&mut c).await, ToWorker::ExecuteV2 { .. }));
    c.send(FromWorker::Error {
        execution_id: Some("e2".into()),
        code: ErrorCode::StateNotReady,
        message: "state sequence 99 not applied".into(),
    })
    .await
    .unwrap();
    let err = run.await.unwrap().unwrap_err();
    assert_eq!(err.code, ErrorCode::StateNotReady);

    // Cancel sends a Cancel frame.
    let d = env.dispatcher.clone();
    let cancel = CancellationToken::new();
    let token2 = cancel.clone();
    let run = tokio::spawn(async move { d.execute(request("e3"), 0, token2).await });
    assert!(matches!(next(&mut c).await, ToWorker::ExecuteV2 { .. }));
    cancel.cancel();
    match next(&mut c).await {
        ToWorker::Cancel { execution_id } => assert_eq!(execution_id, "e3"),
        other => panic!("{other:?}"),
    }
    let r = ExecutionResult::failed("e3", ExecStatus::Canceled, "Canceled", "canceled");
    c.send(FromWorker::Result(r)).await.unwrap();
    assert_eq!(run.await.unwrap().unwrap().status, ExecStatus::Canceled);

    // The connection ends with two executions pending: both WORKER_LOST at once.
    let mut runs = Vec::new();
    for id in ["e4", "e5"] {
        let d = env.dispatcher.clone();
        runs.push(tokio::spawn(async move {
            d.execute(request(id), 0, CancellationToken::new()).await
        }));
        assert!(matches!(next(&mut c).await, ToWorker::ExecuteV2 { .. }));
    }
    drop(c);
    for r in runs {
        let err = tokio::time::timeout(Duration::from_secs(2), r)
            .await
            .expect("answered at once")
            .unwrap()
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::WorkerLost, "{err:?}");
        assert!(
            err.message
                .starts_with("worker w1 was lost during execution e"),
            "{}",
            err.message
        );
    }
    let d = env.dispatcher.clone();
    until("unregistered", || d.stats().is_empty()).await;
    env.shutdown.cancel();
}

#[tokio::test]
async fn a_worker_resumes_from_its_sequence_and_a_silent_one_is_dropped() {
    let env = env().await;
    seed(&env).await;
    let committed = env.app.committed_seq();
    // Already has everything: nothing is resent until a new commit.
    let mut c = join(env.dir.path(), &token(env.dir.path()), committed + 1, "w2").await;
    assert!(matches!(next(&mut c).await, ToWorker::Hello(_)));
    tool(
        &env.app,
        &env.admin,
        "acme",
        "make_service",
        json!({"name": "x"}),
    )
    .await;
    match next(&mut c).await {
        ToWorker::Replicate { entries } => {
            assert_eq!(
                entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
                vec![committed + 1]
            );
        }
        other => panic!("{other:?}"),
    }
    // NeedFrom rewinds.
    c.send(FromWorker::NeedFrom { seq: 2 }).await.unwrap();
    match next(&mut c).await {
        ToWorker::Replicate { entries } => assert_eq!(entries[0].seq, 2),
        other => panic!("{other:?}"),
    }
    // Ahead of the log (diverged): a reset snapshot.
    let mut c2 = join(env.dir.path(), &token(env.dir.path()), 1000, "w3").await;
    assert!(matches!(next(&mut c2).await, ToWorker::Hello(_)));
    match next(&mut c2).await {
        ToWorker::Snapshot { part, reset } => {
            assert!(reset);
            assert_eq!(part.seq, committed + 1);
        }
        other => panic!("{other:?}"),
    }
    // w2 stops answering anything: dropped after ~3 heartbeats (200 ms here).
    let d = env.dispatcher.clone();
    until("both joined", || d.stats().len() == 2).await;
    let d = env.dispatcher.clone();
    let silent_since = std::time::Instant::now();
    // Keep c2 alive by reading (and answering pings) in the background.
    let keep = tokio::spawn(async move {
        loop {
            let _ = next(&mut c2).await;
        }
    });
    until("silent worker dropped", || {
        d.stats().iter().all(|w| w.worker_id != "w2")
    })
    .await;
    assert!(silent_since.elapsed() >= Duration::from_millis(400));
    assert_eq!(env.dispatcher.stats()[0].worker_id, "w3");
    keep.abort();
    drop(c);
    env.shutdown.cancel();
}

#[test]
fn the_hub_runs_on_its_own_runtime_for_a_blocking_main() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = App::open(AppConfig::new(dir.path())).unwrap();
    let shutdown = CancellationToken::new();
    let opts = HubOptions {
        shutdown: shutdown.clone(),
        ..HubOptions::default()
    };
    let (d, thread) = WorkerHub::start_background(dir.path(), app, opts).unwrap();
    assert!(dir.path().join("workers.sock").exists());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(d.execute(request("e1"), 0, CancellationToken::new()))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NoWorkers);
    shutdown.cancel();
    thread.join().unwrap();
    assert!(!dir.path().join("workers.sock").exists());
}
