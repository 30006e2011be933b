//! The edge link with the REAL worker binary (real nsjail, needs root): the edge's
//! [`WorkerHub`] in-process over `<data-dir>/workers.sock`, `paddock-worker serve --edge`
//! joined with the generated token file. The worker's replica catches up with the log,
//! runs `from functions import hello` with read-your-writes, a worker killed mid-execution
//! yields WORKER_LOST at once, and a restarted worker catches up from its applied seq.
#![allow(clippy::unwrap_used)]

mod bin_support;
mod link_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use link_support::{tool, until, worker_bin};
use paddock_edge::app::{App, AppConfig};
use paddock_edge::workers::{Dispatcher, HubOptions, WorkerHub};
use paddock_shared::ErrorCode;
use paddock_shared::exec::{ExecStatus, ExecutionRequest};
use paddock_shared::model::Language;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn start_worker(bin: &Path, edge_dir: &Path, worker_dir: &Path) -> Child {
    Command::new(bin)
        .args(["serve", "--edge"])
        .arg(format!("unix:{}", edge_dir.join("workers.sock").display()))
        .arg("--join-token-file")
        .arg(edge_dir.join("join.token"))
        .arg("--data-dir")
        .arg(worker_dir)
        .env("PADDOCK_WORKER_DEFAULT_POOL_TARGET", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start paddock-worker")
}

fn request(id: &str, code: &str) -> ExecutionRequest {
    ExecutionRequest {
        execution_id: id.into(),
        namespace: "acme".into(),
        profile: "free".into(),
        language: Language::Python,
        code: code.into(),
        input_json: "{}".into(),
        timeout_ms: Some(20_000),
    }
}

async fn caught_up(d: &Dispatcher, seq: u64) {
    let d = d.clone();
    until(&format!("a worker acked {seq}"), 60, || {
        d.stats().iter().any(|w| w.acked_seq >= seq)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_worker_joins_replicates_runs_is_lost_and_catches_up() {
    let bin = worker_bin();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let edge_dir = dir.path().join("edge");
    let worker_dir = dir.path().join("worker");
    let (app, key) = App::open(AppConfig::new(&edge_dir)).unwrap();
    let admin = app.authenticate(&key.unwrap()).unwrap();
    let shutdown = CancellationToken::new();
    let (d, _hub) = WorkerHub::start(
        &edge_dir,
        app.clone(),
        HubOptions {
            shutdown: shutdown.clone(),
            ..HubOptions::default()
        },
    )
    .await
    .unwrap();
    tool(&app, &admin, "make_namespace", json!({"name": "acme"})).await;
    tool(&app, &admin, "make_service", json!({"name": "tools"})).await;
    tool(
        &app,
        &admin,
        "make_function",
        json!({"service": "tools", "name": "hello", "backend": "code_sandbox", "template": "hello-world"}),
    )
    .await;
    let committed = app.committed_seq();

    let mut worker = start_worker(&bin, &edge_dir, &worker_dir);
    caught_up(&d, committed).await;

    // Read-your-writes: the function made just before is there.
    let r = d
        .execute(
            request(
                "e1",
                "from functions import hello\nresult = hello(name=\"World\")",
            ),
            committed,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, ExecStatus::Completed, "{r:?}");
    assert!(
        r.result_json.as_deref().unwrap_or("").contains("World"),
        "{r:?}"
    );

    // Killed during an execution: WORKER_LOST at once.
    let d2 = d.clone();
    let run = tokio::spawn(async move {
        d2.execute(
            request("e2", "import time\ntime.sleep(15)\nresult = 1"),
            0,
            CancellationToken::new(),
        )
        .await
    });
    let d3 = d.clone();
    until("the execution is in flight", 10, || {
        d3.stats().iter().any(|w| w.in_flight == 1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.kill().unwrap();
    let _ = worker.wait();
    let err = tokio::time::timeout(Duration::from_secs(3), run)
        .await
        .expect("answered at once")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::WorkerLost, "{err:?}");
    let d4 = d.clone();
    until("the worker is gone", 10, || d4.stats().is_empty()).await;
    let err = d
        .execute(request("e3", "result = 1"), 0, CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NoWorkers);

    // Changes while it is down; the restarted worker catches up from its applied seq.
    tool(&app, &admin, "make_service", json!({"name": "later"})).await;
    let committed = app.committed_seq();
    let mut worker = start_worker(&bin, &edge_dir, &worker_dir);
    caught_up(&d, committed).await;
    let r = d
        .execute(
            request("e4", "result = 2 + 2"),
            committed,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.result_json.as_deref()),
        (ExecStatus::Completed, Some("4"))
    );

    // SIGTERM during an execution: it finishes, a new one is refused WORKER_BUSY (not
    // started, no hang), then the worker leaves.
    let d6 = d.clone();
    let run = tokio::spawn(async move {
        d6.execute(
            request("e5", "import time\ntime.sleep(2)\nresult = 5"),
            0,
            CancellationToken::new(),
        )
        .await
    });
    let d7 = d.clone();
    until("the execution is in flight", 10, || {
        d7.stats().iter().any(|w| w.in_flight == 1)
    })
    .await;
    let pid = worker.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    // The signal is asynchronous: give the worker a moment to start draining.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let err = d
        .execute(request("e6", "result = 6"), 0, CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::WorkerBusy, "{err:?}");
    assert!(
        err.message
            .ends_with("is shutting down; the execution was not started")
    );
    let r = run.await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.result_json.as_deref()),
        (ExecStatus::Completed, Some("5"))
    );
    let d5 = d.clone();
    until("the worker left", 30, || d5.stats().is_empty()).await;
    let _ = worker.wait();
    shutdown.cancel();
}
