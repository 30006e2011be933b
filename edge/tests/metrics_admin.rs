//! Metrics and logs of the real binaries: `paddock-edge serve` (real TLS, JSON logs, an admin
//! listener on its own port) and a real `paddock-worker serve` (real nsjail, needs root)
//! joined over `workers.sock`. Real traffic (create tools, tools/list, a refused key, two
//! executions) moves the counters and histograms scraped from the admin listener by exactly
//! the right amounts with the right labels; worker and pool gauges appear; `/metrics` is not
//! served on the public port; every log line of both daemons is JSON and one execution's id
//! is in the edge's and the worker's lines.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "../../tests/bin_support/mod.rs"]
mod bin_support;

const EDGE: &str = env!("CARGO_BIN_EXE_paddock-edge");

fn worker_bin() -> PathBuf {
    bin_support::workspace_bin("PADDOCK_WORKER_BIN", "paddock-worker", "paddock-worker")
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

type Lines = Arc<Mutex<Vec<String>>>;

/// A child process whose stderr lines are collected; killed on drop.
struct Proc {
    child: Child,
    stderr: Lines,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stderr: Lines = Arc::default();
        let sink = stderr.clone();
        let r = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Proc { child, stderr }
    }

    fn lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Env {
    _dir: tempfile::TempDir,
    edge_dir: PathBuf,
    worker_dir: PathBuf,
    port: u16,
    admin: u16,
    key: String,
    edge: Proc,
}

/// curl: `(status, body)`.
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

impl Env {
    fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        // The sandbox uid must be able to search the worker's runtime dir.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let edge_dir = dir.path().join("edge");
        let worker_dir = dir.path().join("worker");
        let (port, admin) = (free_port(), free_port());
        let mut cmd = Command::new(EDGE);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&edge_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .args(["--log-format", "json"])
            .env("PADDOCK_EDGE_GRACE_PERIOD_SECS", "1")
            .env("PADDOCK_EDGE_LOG", "info")
            // The admin account (enterprise) gets 2 executions this month: the third is a 429.
            .env("PADDOCK_EDGE_LIMITS_ENTERPRISE_MONTHLY_EXECUTIONS", "2");
        let edge = Proc::spawn(cmd);
        let env = Env {
            _dir: dir,
            edge_dir,
            worker_dir,
            port,
            admin,
            key: String::new(),
            edge,
        };
        let key_file = env.edge_dir.join("admin.key");
        env.until("the edge is ready", 30, || {
            key_file.is_file() && env.https("GET", "/v1/health/ready", None, None).0 == 200
        });
        Env {
            key: std::fs::read_to_string(&key_file)
                .unwrap()
                .trim()
                .to_owned(),
            ..env
        }
    }

    fn until(&self, what: &str, secs: u64, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f() {
            assert!(
                Instant::now() < deadline,
                "timed out: {what}\n{}",
                self.edge.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn https(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        let cacert = self.edge_dir.join("tls").join("cert.pem");
        let url = format!("https://127.0.0.1:{}{path}", self.port);
        let auth = key.map(|k| format!("Authorization: Bearer {k}"));
        let mut args = vec!["--cacert", cacert.to_str().unwrap(), "-X", method];
        if let Some(a) = &auth {
            args.extend(["-H", a.as_str()]);
        }
        if let Some(b) = body {
            args.extend([
                "-H",
                "Content-Type: application/json",
                "-H",
                "Accept: application/json, text/event-stream",
                "-H",
                "MCP-Protocol-Version: 2025-06-18",
                "--data-binary",
                b,
            ]);
        }
        args.push(&url);
        curl(&args)
    }

    /// One stateless JSON-RPC call with `key`.
    fn rpc(&self, path: &str, key: &str, method: &str, params: Value) -> (u16, Value) {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let (status, text) = self.https("POST", path, Some(key), Some(&body.to_string()));
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn call(&self, path: &str, tool: &str, args: Value) -> Value {
        let (status, v) = self.rpc(
            path,
            &self.key.clone(),
            "tools/call",
            json!({"name": tool, "arguments": args}),
        );
        assert_eq!(status, 200, "{tool}: {v}");
        v["result"].clone()
    }

    /// Scrapes the admin listener: series (`name{labels}`) → value.
    fn scrape(&self) -> HashMap<String, f64> {
        let (status, text) = curl(&[&format!("http://127.0.0.1:{}/metrics", self.admin)]);
        assert_eq!(status, 200, "{text}");
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics text ends with # EOF"
        );
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, v) = l.rsplit_once(' ').unwrap();
                let v = if v == "+Inf" {
                    f64::INFINITY
                } else {
                    v.parse().unwrap()
                };
                (series.to_owned(), v)
            })
            .collect()
    }
}

fn get(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

fn delta(a: &HashMap<String, f64>, b: &HashMap<String, f64>, series: &str) -> f64 {
    get(b, series) - get(a, series)
}

/// Every line parses as a JSON object; returns them.
fn json_lines(who: &str, lines: &[String]) -> Vec<Value> {
    assert!(!lines.is_empty(), "{who} logged nothing");
    lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{who} log line is not JSON ({e}): {l}"));
            assert!(
                v.is_object() && v["level"].is_string() && v["timestamp"].is_string(),
                "{l}"
            );
            v
        })
        .collect()
}

/// Log lines whose current span carries `execution_id == id`.
fn with_execution<'a>(lines: &'a [Value], id: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|v| v["span"]["execution_id"] == id)
        .collect()
}

#[test]
fn real_traffic_moves_the_metrics_and_one_execution_id_is_in_both_logs() {
    let env = Env::start();
    let create = "/mcp/create/acme";
    let run = "/mcp/run/acme";

    // Before any worker: nothing connected, and 429 reasons present at zero.
    let m0 = env.scrape();
    assert_eq!(get(&m0, "paddock_workers_connected"), 0.0);
    for reason in ["QUOTA_EXCEEDED", "RATE_LIMITED", "CONCURRENCY_LIMITED"] {
        let s = format!("paddock_http_rejections_total{{reason=\"{reason}\"}}");
        assert!(m0.contains_key(&s), "missing {s}");
    }

    // Create traffic: 1 tool call + 3 tools/list answered 200, one refused key 401.
    env.call(create, "make_namespace", json!({"name": "acme"}));
    for _ in 0..3 {
        let (status, v) = env.rpc(create, &env.key, "tools/list", json!({}));
        assert_eq!(status, 200, "{v}");
    }
    let (status, _) = env.rpc(create, "pdk_not_a_key", "tools/list", json!({}));
    assert_eq!(status, 401);
    let m1 = env.scrape();
    let ok = r#"paddock_http_requests_total{route="mcp_create",status="200"}"#;
    let refused = r#"paddock_http_requests_total{route="mcp_create",status="401"}"#;
    assert_eq!(delta(&m0, &m1, ok), 4.0);
    assert_eq!(delta(&m0, &m1, refused), 1.0);
    let latency = r#"paddock_http_request_duration_seconds_count{route="mcp_create"}"#;
    assert_eq!(delta(&m0, &m1, latency), 5.0);
    let inf = r#"paddock_http_request_duration_seconds_bucket{le="+Inf",route="mcp_create"}"#;
    assert_eq!(delta(&m0, &m1, inf), 5.0);

    // /metrics is not on the public port: it is answered like any unknown path and counted
    // as route="other"; requests to the admin listener are not counted at all.
    let (status, body) = env.https("GET", "/metrics", None, None);
    assert_ne!(status, 200);
    assert!(!body.contains("paddock_http_requests"), "{body}");
    let (status, _) = curl(&[&format!("http://127.0.0.1:{}/nope", env.admin)]);
    assert_eq!(status, 404);
    let other = |m: &HashMap<String, f64>| -> f64 {
        m.iter()
            .filter(|(k, _)| k.starts_with(r#"paddock_http_requests_total{route="other""#))
            .map(|(_, v)| v)
            .sum()
    };
    let m1b = env.scrape();
    assert_eq!(other(&m1b) - other(&m1), 1.0);

    // A real worker joins: connection gauge, per-worker and pool gauges, lag 0.
    let mut cmd = Command::new(worker_bin());
    cmd.args(["--log-format", "json", "serve", "--edge"])
        .arg(format!(
            "unix:{}",
            env.edge_dir.join("workers.sock").display()
        ))
        .arg("--join-token-file")
        .arg(env.edge_dir.join("join.token"))
        .arg("--data-dir")
        .arg(&env.worker_dir)
        .env("PADDOCK_WORKER_DEFAULT_POOL_TARGET", "1")
        .env("PADDOCK_WORKER_LOG", "info,paddock_worker=debug");
    let worker = Proc::spawn(cmd);
    let ready = |m: &HashMap<String, f64>| {
        m.iter().any(|(k, v)| {
            k.starts_with("paddock_worker_pool_ready{")
                && k.contains(r#"profile="enterprise",language="python""#)
                && *v >= 1.0
        })
    };
    let mut m2 = HashMap::new();
    env.until(
        "the worker joined, caught up and has a warm slot",
        120,
        || {
            m2 = env.scrape();
            get(&m2, "paddock_workers_connected") == 1.0
                && m2
                    .iter()
                    .any(|(k, v)| k.starts_with("paddock_worker_replication_lag{") && *v == 0.0)
                && ready(&m2)
        },
    );
    assert_eq!(
        get(&m2, "paddock_worker_joins_total") - get(&m0, "paddock_worker_joins_total"),
        1.0
    );
    for family in [
        "paddock_worker_capacity{",
        "paddock_worker_in_flight{",
        "paddock_worker_replication_acked_seq{",
        "paddock_worker_pool_target{",
        "paddock_worker_pool_starting{",
        "paddock_worker_pool_slots_started_total{",
        "paddock_worker_pool_slot_start_failures_total{",
        "paddock_worker_executions_total{",
    ] {
        assert!(m2.keys().any(|k| k.starts_with(family)), "missing {family}");
    }

    // Two executions through the run endpoint: one completes, one fails in user code.
    let done = env.call(run, "execute", json!({"code": "result = 1 + 1"}));
    assert_eq!(done["structuredContent"]["status"], "completed", "{done}");
    let id = done["structuredContent"]["executionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let failed = env.call(run, "execute", json!({"code": "raise ValueError('no')"}));
    assert_eq!(failed["structuredContent"]["status"], "failed", "{failed}");
    let m3 = env.scrape();
    let exec = |status: &str| {
        format!(r#"paddock_executions_total{{tier="enterprise",status="{status}"}}"#)
    };
    assert_eq!(delta(&m2, &m3, &exec("completed")), 1.0);
    assert_eq!(delta(&m2, &m3, &exec("failed")), 1.0);
    assert_eq!(delta(&m2, &m3, &exec("error")), 0.0);
    for h in [
        "paddock_execution_duration_seconds_count",
        "paddock_execution_slot_duration_seconds_count",
        "paddock_execution_queue_wait_seconds_count",
    ] {
        assert_eq!(delta(&m2, &m3, h), 2.0, "{h}");
    }
    // total = slot + queue wait (derived), so the sums agree up to rounding.
    let sum = |m: &HashMap<String, f64>, h: &str| get(m, h);
    let total = sum(&m3, "paddock_execution_duration_seconds_sum")
        - sum(&m2, "paddock_execution_duration_seconds_sum");
    let parts = sum(&m3, "paddock_execution_slot_duration_seconds_sum")
        - sum(&m2, "paddock_execution_slot_duration_seconds_sum")
        + sum(&m3, "paddock_execution_queue_wait_seconds_sum")
        - sum(&m2, "paddock_execution_queue_wait_seconds_sum");
    assert!(
        (total - parts).abs() < 1e-5,
        "total {total} vs slot + wait {parts}"
    );
    let run_ok = r#"paddock_http_requests_total{route="mcp_run",status="200"}"#;
    assert_eq!(delta(&m2, &m3, run_ok), 2.0);

    // Over the monthly quota: HTTP 429 QUOTA_EXCEEDED, counted by reason, no execution.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "execute", "arguments": {"code": "result = 3"}}});
    let (status, text) = env.https("POST", run, Some(&env.key), Some(&body.to_string()));
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("QUOTA_EXCEEDED"), "{text}");
    let m4 = env.scrape();
    let quota = r#"paddock_http_rejections_total{reason="QUOTA_EXCEEDED"}"#;
    assert_eq!(delta(&m3, &m4, quota), 1.0);
    for other in ["RATE_LIMITED", "CONCURRENCY_LIMITED"] {
        let s = format!("paddock_http_rejections_total{{reason=\"{other}\"}}");
        assert_eq!(delta(&m3, &m4, &s), 0.0, "{s}");
    }
    let run_429 = r#"paddock_http_requests_total{route="mcp_run",status="429"}"#;
    assert_eq!(delta(&m3, &m4, run_429), 1.0);
    assert_eq!(
        delta(&m3, &m4, "paddock_execution_duration_seconds_count"),
        0.0,
        "a refused request never reaches dispatch"
    );

    let worker_execs = m3
        .iter()
        .filter(|(k, _)| k.starts_with("paddock_worker_executions_total{"))
        .map(|(_, v)| *v)
        .sum::<f64>();
    assert!(
        worker_execs >= 2.0,
        "the worker counted its executions: {worker_execs}"
    );

    // Logs: JSON lines from both daemons; the execution id is in the edge's span and in the
    // worker's (its "execution finished" line and its slot lifecycle lines).
    env.until("the worker logged the execution", 10, || {
        worker
            .lines()
            .iter()
            .any(|l| l.contains(&id) && l.contains("execution finished"))
    });
    let edge_logs = json_lines("edge", &env.edge.lines());
    let worker_logs = json_lines("worker", &worker.lines());
    let at_edge = with_execution(&edge_logs, &id);
    assert!(
        at_edge
            .iter()
            .any(|v| v["fields"]["message"] == "execution finished"
                && v["fields"]["status"] == "completed"),
        "edge lines of {id}: {at_edge:?}"
    );
    let at_worker = with_execution(&worker_logs, &id);
    assert!(
        at_worker
            .iter()
            .any(|v| v["fields"]["message"] == "execution finished"),
        "worker lines of {id}: {at_worker:?}"
    );
    assert!(
        at_worker
            .iter()
            .any(|v| v["fields"]["message"] == "slot taken"),
        "slot lifecycle lines carry the id: {at_worker:?}"
    );
    drop(worker);
}

/// Starts `paddock-edge serve` with `args` and waits until it is ready or has exited.
fn serve_until_settled(data_dir: &Path, args: &[&str]) -> (Proc, Option<std::process::ExitStatus>) {
    let port = free_port();
    let mut cmd = Command::new(EDGE);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .env("PADDOCK_EDGE_GRACE_PERIOD_SECS", "1");
    let mut p = Proc::spawn(cmd);
    let cacert = data_dir.join("tls").join("cert.pem");
    let url = format!("https://127.0.0.1:{port}/v1/health/ready");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            // Let the stderr reader drain what the process wrote before it exited.
            std::thread::sleep(Duration::from_millis(100));
            return (p, Some(status));
        }
        if cacert.is_file() && curl(&["--cacert", cacert.to_str().unwrap(), &url]).0 == 200 {
            return (p, None);
        }
        assert!(
            Instant::now() < deadline,
            "edge neither ready nor exited: {:?}",
            p.lines()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_configured_admin_port_must_bind_the_default_is_best_effort_and_off_is_off() {
    let dir = tempfile::tempdir().unwrap();
    // Hold a port: an explicit admin_listen on it stops start-up, naming the key.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let (p, exited) = serve_until_settled(&dir.path().join("a"), &["--admin-listen", &addr]);
    let status = exited.unwrap_or_else(|| panic!("started on a taken admin port: {:?}", p.lines()));
    assert!(!status.success());
    let err = p.lines().join("\n");
    assert!(err.contains("admin_listen") && err.contains(&addr), "{err}");

    // The unset default (127.0.0.1:9464) taken is a warning, and the edge serves. We hold
    // the port when we can; if another edge of a parallel test holds it, that edge may also
    // let it go before ours binds, and then listening on it is right too.
    let held_default = std::net::TcpListener::bind(paddock_edge::config::DEFAULT_ADMIN_LISTEN);
    let (p, exited) = serve_until_settled(&dir.path().join("b"), &[]);
    assert!(exited.is_none(), "the edge must serve: {:?}", p.lines());
    let lines = p.lines();
    let skipped = lines
        .iter()
        .any(|l| l.contains("admin listener not started"));
    if held_default.is_ok() {
        assert!(skipped, "{lines:?}");
    } else {
        let listening = lines
            .iter()
            .any(|l| l.contains("admin listener: GET /metrics"));
        assert!(skipped || listening, "{lines:?}");
    }
    drop(held_default);

    // off: no listener, said so in the log.
    let (p, exited) = serve_until_settled(&dir.path().join("c"), &["--admin-listen", "off"]);
    assert!(exited.is_none(), "the edge must serve: {:?}", p.lines());
    assert!(
        p.lines().iter().any(|l| l.contains("admin listener off")),
        "{:?}",
        p.lines()
    );
}
