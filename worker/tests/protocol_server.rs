//! The worker's protocol servers and `WorkerClient` against an in-process test executor:
//! handshake, version mismatch, multiplexing with out-of-order completion, cancel,
//! stats, bad frames closing only their connection, backpressure, drain, socket files.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use paddock_shared::ErrorCode;
use paddock_shared::exec::{
    ExecStatus, ExecutionRequest, ExecutionResult, Truncation, Usage, WorkerStats, error_type,
};
use paddock_shared::model::Language;
use paddock_shared::protocol::{
    FrameCodec, FrameError, FromWorker, Hello, ToWorker, VERSION, encode_frame_as,
};
use paddock_worker::client::{ClientError, ClientOptions, WorkerClient};
use paddock_worker::executor::Executor;
use paddock_worker::server::{
    ServeError, ServeOptions, ServeReport, bind_tcp, bind_unix, serve_tcp_listener, serve_unix,
};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

/// Runs the code as a tiny command language:
/// `echo` → the input; `sleep MS` → completes after MS ms (or canceled);
/// `wait` → runs until canceled; `gate` → completes when the test adds a gate permit;
/// `panic` → panics.
struct TestExecutor {
    started: AtomicU64,
    canceled: AtomicU64,
    running: AtomicU32,
    total: AtomicU64,
    gate: Semaphore,
}

impl Default for TestExecutor {
    fn default() -> Self {
        TestExecutor {
            started: AtomicU64::new(0),
            canceled: AtomicU64::new(0),
            running: AtomicU32::new(0),
            total: AtomicU64::new(0),
            gate: Semaphore::new(0),
        }
    }
}

fn done(req: &ExecutionRequest, status: ExecStatus, result: Option<String>) -> ExecutionResult {
    ExecutionResult {
        execution_id: req.execution_id.clone(),
        status,
        result_json: result,
        stdout: String::new(),
        stderr: String::new(),
        error: None,
        duration_us: 1,
        usage: Usage::default(),
        calls: Vec::new(),
        truncated: Truncation::default(),
    }
}

impl TestExecutor {
    async fn run(&self, req: &ExecutionRequest, cancel: &CancellationToken) -> ExecutionResult {
        let canceled = || {
            self.canceled.fetch_add(1, Ordering::SeqCst);
            ExecutionResult::failed(
                &req.execution_id,
                ExecStatus::Canceled,
                error_type::CANCELED,
                "canceled",
            )
        };
        let mut words = req.code.split_whitespace();
        match words.next() {
            Some("echo") => done(req, ExecStatus::Completed, Some(req.input_json.clone())),
            Some("sleep") => {
                let ms = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(ms)) => done(req, ExecStatus::Completed, Some(ms.to_string())),
                    () = cancel.cancelled() => canceled(),
                }
            }
            Some("wait") => {
                cancel.cancelled().await;
                canceled()
            }
            Some("gate") => tokio::select! {
                permit = self.gate.acquire() => {
                    permit.expect("gate open").forget();
                    done(req, ExecStatus::Completed, Some("\"gate\"".into()))
                }
                () = cancel.cancelled() => canceled(),
            },
            Some("panic") => panic!("test executor asked to panic"),
            _ => ExecutionResult::failed(
                &req.execution_id,
                ExecStatus::Failed,
                error_type::INVALID_CODE,
                "unknown test command",
            ),
        }
    }
}

impl Executor for TestExecutor {
    async fn execute(&self, req: ExecutionRequest, cancel: CancellationToken) -> ExecutionResult {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.running.fetch_add(1, Ordering::SeqCst);
        let result = self.run(&req, &cancel).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.total.fetch_add(1, Ordering::SeqCst);
        result
    }

    fn stats(&self) -> WorkerStats {
        WorkerStats {
            in_flight: self.running.load(Ordering::SeqCst),
            executions_total: self.total.load(Ordering::SeqCst),
            pools: Vec::new(),
        }
    }
}

fn request(id: &str, code: &str) -> ExecutionRequest {
    ExecutionRequest {
        execution_id: id.to_owned(),
        namespace: "ns".into(),
        profile: "free".into(),
        language: Language::Python,
        code: code.to_owned(),
        input_json: format!("{{\"id\":\"{id}\"}}"),
        timeout_ms: None,
    }
}

/// Polls `cond` until it holds, failing after 10 s.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

struct Server {
    _dir: tempfile::TempDir,
    path: PathBuf,
    executor: Arc<TestExecutor>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<ServeReport, ServeError>>,
}

impl Server {
    async fn start(opts: ServeOptions) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.sock");
        let executor = Arc::new(TestExecutor::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve_unix(
            path.clone(),
            Arc::clone(&executor),
            opts,
            shutdown.clone(),
        ));
        let p = path.clone();
        until("socket file", move || p.exists()).await;
        Server {
            _dir: dir,
            path,
            executor,
            shutdown,
            task,
        }
    }

    async fn client(&self) -> WorkerClient {
        WorkerClient::connect_unix(&self.path, ClientOptions::default())
            .await
            .expect("connect")
    }

    async fn stop(self) -> ServeReport {
        self.shutdown.cancel();
        self.task.await.expect("join").expect("serve")
    }
}

fn opts() -> ServeOptions {
    ServeOptions {
        worker_id: "w-test".into(),
        capacity: 4,
        profiles: vec!["free".into()],
        ..ServeOptions::default()
    }
}

/// A connection speaking raw frames, to misbehave on purpose.
struct Raw {
    reader: FramedRead<OwnedReadHalf, FrameCodec<FromWorker, ToWorker>>,
    writer: FramedWrite<OwnedWriteHalf, FrameCodec<FromWorker, ToWorker>>,
}

impl Raw {
    async fn connect(path: &Path) -> Raw {
        let (rd, wr) = UnixStream::connect(path)
            .await
            .expect("connect")
            .into_split();
        Raw {
            reader: FramedRead::new(rd, FrameCodec::default()),
            writer: FramedWrite::new(wr, FrameCodec::default()),
        }
    }

    async fn hello(path: &Path) -> Raw {
        let mut raw = Raw::connect(path).await;
        raw.send(ToWorker::Hello(Hello {
            version: VERSION,
            peer_id: "raw".into(),
        }))
        .await;
        assert!(matches!(raw.recv().await, Some(Ok(FromWorker::Welcome(_)))));
        raw
    }

    async fn send(&mut self, msg: ToWorker) {
        self.writer.send(msg).await.expect("send");
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        let w = self.writer.get_mut();
        w.write_all(bytes).await.expect("write");
        w.flush().await.expect("flush");
    }

    async fn recv(&mut self) -> Option<Result<FromWorker, FrameError>> {
        tokio::time::timeout(Duration::from_secs(10), self.reader.next())
            .await
            .expect("worker answered within 10 s")
    }

    /// Expects a connection-level `Error` frame, then the close.
    async fn expect_error_then_close(&mut self) -> String {
        let message = match self.recv().await {
            Some(Ok(FromWorker::Error {
                execution_id: None,
                code,
                message,
            })) => {
                assert_eq!(code, ErrorCode::ProtocolError);
                message
            }
            other => panic!("expected a connection error, got {other:?}"),
        };
        assert!(
            self.recv().await.is_none(),
            "connection closed after the error"
        );
        message
    }
}

#[tokio::test]
async fn handshake_announces_the_worker_and_the_socket_is_private() {
    let server = Server::start(opts()).await;
    let mode = std::fs::metadata(&server.path)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let client = server.client().await;
    let w = client.welcome();
    assert_eq!(w.version, VERSION);
    assert_eq!(w.worker_id, "w-test");
    assert_eq!(w.capacity, 4);
    assert_eq!(w.profiles, vec!["free".to_owned()]);
    assert_eq!(w.languages, vec![Language::Python, Language::TypeScript]);
    assert!(client.ping().await.is_ok());
    let report = server.stop().await;
    assert_eq!(report.connections, 1);
    assert!(report.drained_in_time);
}

#[tokio::test]
async fn version_mismatch_is_answered_with_a_typed_error_and_closed() {
    let server = Server::start(opts()).await;
    // A frame whose header carries a version this worker does not speak.
    let mut raw = Raw::connect(&server.path).await;
    let mut buf = BytesMut::new();
    let hello = ToWorker::Hello(Hello {
        version: VERSION + 1,
        peer_id: "future".into(),
    });
    encode_frame_as(VERSION + 1, &hello, &mut buf, 1 << 20).expect("encode");
    raw.send_bytes(&buf).await;
    let message = raw.expect_error_then_close().await;
    assert!(
        message.contains(&format!("unsupported protocol version {}", VERSION + 1)),
        "{message}"
    );
    // A current frame announcing an old version in the Hello body.
    let mut raw = Raw::connect(&server.path).await;
    raw.send(ToWorker::Hello(Hello {
        version: 0,
        peer_id: "past".into(),
    }))
    .await;
    let message = raw.expect_error_then_close().await;
    assert!(
        message.contains("unsupported protocol version 0"),
        "{message}"
    );
    // Anything but Hello first.
    let mut raw = Raw::connect(&server.path).await;
    raw.send(ToWorker::StatsRequest).await;
    assert_eq!(
        raw.expect_error_then_close().await,
        "the first frame must be Hello"
    );
    // The worker still serves well-behaved clients.
    let client = server.client().await;
    let r = client
        .execute(request("ok", "echo"))
        .await
        .expect("execute");
    assert_eq!(r.status, ExecStatus::Completed);
    server.stop().await;
}

#[tokio::test]
async fn many_concurrent_executions_are_multiplexed_and_complete_out_of_order() {
    let server = Server::start(opts()).await;
    let client = server.client().await;
    // The first execution waits for the gate; the later ones finish before it.
    let first = tokio::spawn({
        let client = client.clone();
        async move { client.execute(request("first", "gate")).await }
    });
    let ex = Arc::clone(&server.executor);
    until("first started", move || {
        ex.started.load(Ordering::SeqCst) == 1
    })
    .await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("e{i}");
            let code = if i % 2 == 0 {
                "echo".to_owned()
            } else {
                format!("sleep {}", 20 - i % 20)
            };
            (id.clone(), client.execute(request(&id, &code)).await)
        }));
    }
    for t in tasks {
        let (id, r) = t.await.expect("join");
        let r = r.expect("execute");
        assert_eq!(r.execution_id, id);
        assert_eq!(r.status, ExecStatus::Completed);
    }
    assert!(!first.is_finished(), "the gated execution is still running");
    server.executor.gate.add_permits(1);
    let r = first.await.expect("join").expect("execute");
    assert_eq!(
        (r.execution_id.as_str(), r.status),
        ("first", ExecStatus::Completed)
    );
    assert_eq!(r.result_value(), "gate");
    server.stop().await;
}

#[tokio::test]
async fn cancel_reaches_the_execution_and_stats_report_load() {
    let server = Server::start(opts()).await;
    let client = server.client().await;
    let running = tokio::spawn({
        let client = client.clone();
        async move { client.execute(request("w1", "wait")).await }
    });
    let ex = Arc::clone(&server.executor);
    until("w1 started", move || ex.started.load(Ordering::SeqCst) == 1).await;
    let stats = client.stats().await.expect("stats");
    assert_eq!((stats.in_flight, stats.executions_total), (1, 0));
    client.cancel("w1").await.expect("cancel");
    client
        .cancel("no-such-id")
        .await
        .expect("unknown ids are ignored");
    let r = running.await.expect("join").expect("execute");
    assert_eq!(r.status, ExecStatus::Canceled);
    let stats = client.stats().await.expect("stats");
    assert_eq!((stats.in_flight, stats.executions_total), (0, 1));
    server.stop().await;
}

#[tokio::test]
async fn duplicate_ids_are_refused_and_a_panicking_executor_does_not_crash_the_worker() {
    let server = Server::start(opts()).await;
    let client = server.client().await;
    let mut raw = Raw::hello(&server.path).await;
    raw.send(ToWorker::Execute(request("dup", "gate"))).await;
    raw.send(ToWorker::Execute(request("dup", "echo"))).await;
    match raw.recv().await {
        Some(Ok(FromWorker::Error {
            execution_id: Some(id),
            code,
            ..
        })) => {
            assert_eq!((id.as_str(), code), ("dup", ErrorCode::ProtocolError));
        }
        other => panic!("expected a duplicate-id error, got {other:?}"),
    }
    let r = client
        .execute(request("p", "panic"))
        .await
        .expect("execute");
    assert_eq!(r.status, ExecStatus::Failed);
    assert_eq!(
        r.error.expect("error").error_type,
        error_type::SANDBOX_FAILURE
    );
    let r = client
        .execute(request("after", "echo"))
        .await
        .expect("execute");
    assert_eq!(r.status, ExecStatus::Completed);
    server.executor.gate.add_permits(1);
    server.stop().await;
}

#[tokio::test]
async fn a_malformed_frame_closes_only_its_connection() {
    let server = Server::start(opts()).await;
    let good = server.client().await;
    let mut bad = Raw::hello(&server.path).await;
    bad.send_bytes(b"GET / HTTP/1.1\r\n\r\n").await;
    let message = bad.expect_error_then_close().await;
    assert!(message.starts_with("bad magic"), "{message}");
    // Garbage inside a well-formed header.
    let mut bad = Raw::hello(&server.path).await;
    bad.send_bytes(&[b'P', b'D', b'K', VERSION, 1, 0, 0, 0, 0, 2, 0x7f, 0x7f])
        .await;
    let message = bad.expect_error_then_close().await;
    assert!(message.starts_with("malformed frame body"), "{message}");
    let r = good.execute(request("g", "echo")).await.expect("execute");
    assert_eq!(r.result_value()["id"], "g");
    assert!(!good.is_closed());
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_frame_is_refused_from_its_header() {
    let server = Server::start(ServeOptions {
        max_frame_len: 4096,
        ..opts()
    })
    .await;
    let client = server.client().await;
    assert_eq!(client.welcome().max_frame_len, 4096);
    let mut raw = Raw::hello(&server.path).await;
    // Only the header of a 1 GiB frame: the worker must refuse without the body.
    let mut header = vec![b'P', b'D', b'K', VERSION, 1, 0];
    header.extend((1u32 << 30).to_be_bytes());
    raw.send_bytes(&header).await;
    let message = raw.expect_error_then_close().await;
    assert_eq!(
        message,
        "frame body of 1073741824 bytes is over the 4096-byte cap"
    );
    let r = client.execute(request("x", "echo")).await.expect("execute");
    assert_eq!(r.status, ExecStatus::Completed);
    server.stop().await;
}

#[tokio::test]
async fn the_reader_stops_at_the_in_flight_bound() {
    let server = Server::start(ServeOptions {
        max_in_flight_per_conn: 2,
        ..opts()
    })
    .await;
    let mut raw = Raw::hello(&server.path).await;
    for id in ["a", "b", "c"] {
        raw.send(ToWorker::Execute(request(id, "gate"))).await;
    }
    raw.send(ToWorker::Ping { nonce: 9 }).await;
    let ex = Arc::clone(&server.executor);
    until("two started", move || {
        ex.started.load(Ordering::SeqCst) == 2
    })
    .await;
    // Negative check: while at the bound the worker reads nothing more, so neither the
    // third execution starts nor is the ping answered.
    let quiet = tokio::time::timeout(Duration::from_millis(200), raw.reader.next()).await;
    assert!(
        quiet.is_err(),
        "nothing may be answered while at the bound: {quiet:?}"
    );
    assert_eq!(server.executor.started.load(Ordering::SeqCst), 2);
    // One finishes: its result comes back, the third starts, the ping is answered.
    server.executor.gate.add_permits(1);
    let mut got_result = 0;
    let mut got_pong = false;
    while !(got_result == 1 && got_pong) {
        match raw.recv().await {
            Some(Ok(FromWorker::Result(r))) => {
                assert_eq!(r.status, ExecStatus::Completed);
                got_result += 1;
            }
            Some(Ok(FromWorker::Pong { nonce: 9 })) => got_pong = true,
            other => panic!("unexpected {other:?}"),
        }
    }
    let ex = Arc::clone(&server.executor);
    until("third started", move || {
        ex.started.load(Ordering::SeqCst) == 3
    })
    .await;
    server.executor.gate.add_permits(2);
    for _ in 0..2 {
        assert!(matches!(raw.recv().await, Some(Ok(FromWorker::Result(_)))));
    }
    server.stop().await;
}

#[tokio::test]
async fn a_lost_connection_cancels_its_executions() {
    let server = Server::start(opts()).await;
    let mut raw = Raw::hello(&server.path).await;
    raw.send(ToWorker::Execute(request("orphan", "wait"))).await;
    let ex = Arc::clone(&server.executor);
    until("orphan started", move || {
        ex.started.load(Ordering::SeqCst) == 1
    })
    .await;
    drop(raw);
    let ex = Arc::clone(&server.executor);
    until("orphan canceled", move || {
        ex.canceled.load(Ordering::SeqCst) == 1
    })
    .await;

    server.stop().await;
}

#[tokio::test]
async fn a_worker_that_dies_fails_pending_calls_with_worker_lost() {
    // A fake worker: handshake, read one Execute, then drop the connection.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fake.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    let fake = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let (rd, wr) = stream.into_split();
        let mut reader = FramedRead::new(rd, FrameCodec::<ToWorker, FromWorker>::default());
        let mut writer = FramedWrite::new(wr, FrameCodec::<ToWorker, FromWorker>::default());
        assert!(matches!(reader.next().await, Some(Ok(ToWorker::Hello(_)))));
        writer
            .send(FromWorker::Welcome(paddock_shared::protocol::Welcome {
                version: VERSION,
                worker_id: "fake".into(),
                capacity: 1,
                max_in_flight: 8,
                max_frame_len: 1 << 20,
                profiles: vec![],
                languages: vec![],
            }))
            .await
            .expect("welcome");
        assert!(matches!(
            reader.next().await,
            Some(Ok(ToWorker::Execute(_)))
        ));
    });
    let client = WorkerClient::connect_unix(&path, ClientOptions::default())
        .await
        .expect("connect");
    let err = client
        .execute(request("lost", "wait"))
        .await
        .expect_err("worker died");
    assert_eq!(err.code(), ErrorCode::WorkerLost, "{err}");
    assert!(client.is_closed());
    let err = client.stats().await.expect_err("closed");
    assert_eq!(err.code(), ErrorCode::WorkerLost);
    fake.await.expect("fake worker");
}

#[tokio::test]
async fn shutdown_drains_in_flight_executions_then_cancels_past_the_deadline() {
    let server = Server::start(ServeOptions {
        drain_timeout: Duration::from_secs(10),
        ..opts()
    })
    .await;
    let client = server.client().await;
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.execute(request("slow", "gate")).await }
    });
    let ex = Arc::clone(&server.executor);
    until("slow started", move || {
        ex.started.load(Ordering::SeqCst) == 1
    })
    .await;
    server.shutdown.cancel();
    // New connections are refused once the listener is closed.
    let path = server.path.clone();
    until("listener closed", move || {
        std::os::unix::net::UnixStream::connect(&path).is_err()
    })
    .await;
    server.executor.gate.add_permits(1);
    let r = slow.await.expect("join").expect("drained result");
    assert_eq!(r.status, ExecStatus::Completed);
    let report = server.task.await.expect("join").expect("serve");
    assert!(report.drained_in_time);

    // Past the deadline the remaining executions are canceled and still answered.
    let server = Server::start(ServeOptions {
        drain_timeout: Duration::from_millis(50),
        ..opts()
    })
    .await;
    let client = server.client().await;
    let stuck = tokio::spawn({
        let client = client.clone();
        async move { client.execute(request("stuck", "wait")).await }
    });
    let ex = Arc::clone(&server.executor);
    until("stuck started", move || {
        ex.started.load(Ordering::SeqCst) == 1
    })
    .await;
    let report = server.stop().await;
    assert!(!report.drained_in_time);
    let r = stuck.await.expect("join").expect("canceled result");
    assert_eq!(r.status, ExecStatus::Canceled);
}

#[tokio::test]
async fn socket_files_stale_live_and_foreign() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Stale: a socket file nobody listens on is replaced.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    assert!(stale.exists());
    let live = bind_unix(&stale).expect("stale socket replaced");
    // Live: refused.
    let err = bind_unix(&stale).expect_err("in use");
    assert!(matches!(err, ServeError::SocketInUse { .. }), "{err}");
    drop(live);
    // Not a socket: left alone.
    let file = dir.path().join("file");
    std::fs::write(&file, b"keep me").expect("write");
    let err = bind_unix(&file).expect_err("not a socket");
    assert!(matches!(err, ServeError::NotASocket { .. }), "{err}");
    assert_eq!(std::fs::read(&file).expect("read"), b"keep me");
}

#[tokio::test]
async fn tcp_serves_the_same_protocol() {
    let listener = bind_tcp("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let executor = Arc::new(TestExecutor::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve_tcp_listener(
        listener,
        executor,
        opts(),
        shutdown.clone(),
    ));
    let client = WorkerClient::connect_tcp(addr, ClientOptions::default())
        .await
        .expect("connect");
    let r = client.execute(request("t", "echo")).await.expect("execute");
    assert_eq!(r.result_value()["id"], "t");
    shutdown.cancel();
    assert!(task.await.expect("join").expect("serve").drained_in_time);
    let err = WorkerClient::connect_tcp(addr, ClientOptions::default())
        .await
        .expect_err("closed");
    assert_eq!(err.code(), ErrorCode::NoWorkers);
    assert!(matches!(err, ClientError::Connect { .. }));
}
