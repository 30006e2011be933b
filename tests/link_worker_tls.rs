//! The edge ⇄ worker link over TCP with TLS (rustls): the edge's [`WorkerHub`] in-process
//! with a TCP listener serving the edge's (generated) certificate, the REAL worker binary
//! dialing `--edge tls:HOST:PORT --edge-ca <edge-data-dir>/tls/cert.pem` (real nsjail,
//! needs root) joins and runs code; a worker trusting another CA is refused before any
//! frame (the error names --edge-ca, its replica stays empty); a plaintext client on the
//! TLS port gets nothing usable; plain TCP only with the explicit `tcp_insecure` opt-out.
#![allow(clippy::unwrap_used)]

mod bin_support;
mod link_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use link_support::{tool, until, worker_bin};
use paddock_edge::app::{App, AppConfig, Principal};
use paddock_edge::workers::{Dispatcher, HubError, HubOptions, WorkerHub};
use paddock_shared::exec::{ExecStatus, ExecutionRequest};
use paddock_shared::model::Language;
use paddock_shared::protocol::{FrameCodec, FromWorker, ToWorker, Welcome};
use serde_json::json;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

struct Edge {
    dir: tempfile::TempDir,
    app: App,
    admin: Principal,
    d: Dispatcher,
    port: u16,
    shutdown: CancellationToken,
}

impl Edge {
    fn data(&self) -> PathBuf {
        self.dir.path().join("edge")
    }
}

/// An edge whose workers' TCP listener serves TLS with the generated dev certificate
/// (`insecure`: plain TCP instead).
async fn edge(insecure: bool) -> Edge {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("edge");
    let (app, key) = App::open(AppConfig::new(&data)).unwrap();
    let admin = app.authenticate(&key.unwrap()).unwrap();
    let tls = if insecure {
        None
    } else {
        let pair = paddock_edge::tls::dev_cert(&data, "localhost").unwrap();
        let resolver = paddock_edge::tls::SniResolver::load(&[pair]).unwrap();
        Some(paddock_edge::tls::workers_server_config(resolver).unwrap())
    };
    let port = free_port();
    let shutdown = CancellationToken::new();
    let (d, _hub) = WorkerHub::start(
        &data,
        app.clone(),
        HubOptions {
            tcp: Some(([127, 0, 0, 1], port).into()),
            tls,
            tcp_insecure: insecure,
            heartbeat: Duration::from_millis(500),
            shutdown: shutdown.clone(),
            ..HubOptions::default()
        },
    )
    .await
    .unwrap();
    Edge {
        dir,
        app,
        admin,
        d,
        port,
        shutdown,
    }
}

fn start_worker(bin: &Path, e: &Edge, worker_dir: &Path, ca: &Path, stderr: &Path) -> Child {
    Command::new(bin)
        .args(["serve", "--edge"])
        .arg(format!("tls:127.0.0.1:{}", e.port))
        .arg("--edge-ca")
        .arg(ca)
        .args(["--edge-server-name", "localhost"])
        .arg("--join-token-file")
        .arg(e.data().join("join.token"))
        .arg("--data-dir")
        .arg(worker_dir)
        .env("PADDOCK_WORKER_DEFAULT_POOL_TARGET", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .expect("start paddock-worker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_worker_joins_over_tls_and_a_wrong_ca_is_refused() {
    let bin = worker_bin();
    let e = edge(false).await;
    tool(&e.app, &e.admin, "make_namespace", json!({"name": "acme"})).await;
    tool(&e.app, &e.admin, "make_service", json!({"name": "tools"})).await;
    let committed = e.app.committed_seq();
    assert!(committed > 0);

    // A worker trusting another certificate: the handshake fails, the error names
    // --edge-ca, it never registers and receives no replication data.
    let other = e.dir.path().join("other");
    let wrong = paddock_edge::tls::dev_cert(&other, "localhost").unwrap();
    let wrong_dir = e.dir.path().join("worker-wrong");
    let wrong_log = e.dir.path().join("wrong.log");
    let mut w = start_worker(&bin, &e, &wrong_dir, &wrong.cert, &wrong_log);
    until("the TLS error is logged", 60, || {
        std::fs::read_to_string(&wrong_log).is_ok_and(|s| s.contains("TLS handshake failed"))
    })
    .await;
    let log = std::fs::read_to_string(&wrong_log).unwrap();
    assert!(log.contains("--edge-ca"), "{log}");
    assert!(log.contains("cannot join the edge over TLS"), "{log}");
    assert!(!log.contains("joined the edge"), "{log}");
    assert!(e.d.stats().is_empty(), "{:?}", e.d.stats());
    // A clean stop (SIGTERM) so the replica's files are complete when opened here.
    Command::new("kill")
        .args(["-TERM", &w.id().to_string()])
        .status()
        .unwrap();
    let _ = w.wait();
    let replica = paddock_worker::replica::Replica::open(wrong_dir.join("replica")).unwrap();
    assert_eq!(
        replica.applied_seq(),
        0,
        "no replication data without TLS trust"
    );
    drop(replica);

    // The right CA: joins, catches up, runs code.
    let good_dir = e.dir.path().join("worker");
    let good_log = e.dir.path().join("good.log");
    let ca = e.data().join("tls").join("cert.pem");
    let mut w = start_worker(&bin, &e, &good_dir, &ca, &good_log);
    let d = e.d.clone();
    until(&format!("a worker acked {committed}"), 60, || {
        d.stats().iter().any(|w| w.acked_seq >= committed)
    })
    .await;
    let r =
        e.d.execute(
            ExecutionRequest {
                execution_id: "t1".into(),
                namespace: "acme".into(),
                profile: "free".into(),
                language: Language::Python,
                code: "print('over tls')\nresult = 6 * 7".into(),
                input_json: "{}".into(),
                timeout_ms: Some(20_000),
            },
            committed,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.result_json.as_deref()),
        (ExecStatus::Completed, Some("42")),
        "{r:?}"
    );
    w.kill().unwrap();
    let _ = w.wait();
    e.shutdown.cancel();
}

fn welcome() -> Welcome {
    Welcome {
        version: 2,
        worker_id: "scripted".into(),
        capacity: 1,
        max_in_flight: 8,
        max_frame_len: 1 << 20,
        profiles: vec!["free".into()],
        languages: vec![Language::Python],
    }
}

fn token(e: &Edge) -> String {
    std::fs::read_to_string(e.data().join("join.token"))
        .unwrap()
        .trim()
        .to_owned()
}

async fn plain_join(e: &Edge) -> Framed<tokio::net::TcpStream, FrameCodec<ToWorker, FromWorker>> {
    let s = tokio::net::TcpStream::connect(("127.0.0.1", e.port))
        .await
        .unwrap();
    let mut c = Framed::new(s, FrameCodec::<ToWorker, FromWorker>::default());
    c.send(FromWorker::Join {
        join_token: token(e),
        from_seq: 1,
        welcome: welcome(),
    })
    .await
    .unwrap();
    c
}

#[tokio::test]
async fn a_plaintext_client_on_the_tls_port_gets_nothing_usable() {
    let e = edge(false).await;
    let mut c = plain_join(&e).await;
    let got = tokio::time::timeout(Duration::from_secs(10), c.next())
        .await
        .expect("the edge answers or closes");
    assert!(!matches!(got, Some(Ok(_))), "{got:?}");
    assert!(e.d.stats().is_empty());
    e.shutdown.cancel();
}

#[tokio::test]
async fn plain_tcp_needs_the_explicit_opt_out() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = App::open(AppConfig::new(dir.path())).unwrap();
    let err = WorkerHub::start(
        dir.path(),
        app,
        HubOptions {
            tcp: Some(([127, 0, 0, 1], free_port()).into()),
            ..HubOptions::default()
        },
    )
    .await
    .err()
    .expect("refused");
    assert!(matches!(err, HubError::TcpWithoutTls { .. }), "{err}");
    assert!(err.to_string().contains("workers_tcp_insecure"), "{err}");

    let e = edge(true).await;
    let mut c = plain_join(&e).await;
    loop {
        let f = tokio::time::timeout(Duration::from_secs(10), c.next())
            .await
            .expect("a frame")
            .expect("open")
            .expect("valid");
        match f {
            ToWorker::Ping { nonce } => c.send(FromWorker::Pong { nonce }).await.unwrap(),
            ToWorker::Hello(_) => break,
            other => panic!("expected Hello, got {other:?}"),
        }
    }
    let d = e.d.clone();
    until("the plain-TCP worker registered", 10, || {
        d.stats().len() == 1
    })
    .await;
    e.shutdown.cancel();
}
