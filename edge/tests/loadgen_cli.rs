//! `paddock-edge bench` end to end: the real edge binary (own data dir, free port, its
//! development certificate) driven by the real `bench` subcommand; reports read as JSON.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod quota_support;

const BIN: &str = quota_support::BIN;

/// The real edge (`quota_support::Edge`: started, ready, killed on drop) on a data dir of
/// its own.
struct Edge {
    edge: quota_support::Edge,
    _dir: tempfile::TempDir,
}

impl Edge {
    fn start() -> Edge {
        let dir = tempfile::tempdir().unwrap();
        let edge = quota_support::Edge::start(&dir.path().join("data"), &[]);
        Edge { edge, _dir: dir }
    }

    fn key_file(&self) -> PathBuf {
        self.edge.data.join("admin.key")
    }

    fn cacert(&self) -> PathBuf {
        self.edge.data.join("tls").join("cert.pem")
    }

    fn path_url(&self, kind: &str) -> String {
        format!("https://localhost:{}/mcp/{kind}/acme", self.edge.port)
    }

    fn sub_url(&self, kind: &str) -> String {
        format!("https://acme.{kind}.localhost:{}/mcp", self.edge.port)
    }

    /// `bench` with the admin key, the dev certificate and `--json`.
    fn bench(&self, args: &[&str]) -> (Output, Value) {
        let key = self.key_file();
        let ca = self.cacert();
        let mut all: Vec<&str> = vec![
            "--api-key-file",
            path(&key),
            "--cacert",
            path(&ca),
            "--json",
        ];
        all.extend_from_slice(args);
        let out = bench_raw(&all);
        let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out, v)
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn bench_raw(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("bench")
        .args(args)
        .env_remove("PADDOCK_API_KEY")
        .output()
        .unwrap()
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout {}\nstderr {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn tools_list_for_a_bounded_count_reports_every_request() {
    let edge = Edge::start();
    let url = edge.path_url("create");
    let (out, r) = edge.bench(&["tools-list", "--url", &url, "-n", "120", "-c", "4"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(r["requests"], 120, "{r}");
    assert_eq!(r["ok"], 120, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["scenario"], "tools-list");
    assert_eq!(r["mode"], "closed");
    assert_eq!(r["concurrency"], 4);
    assert_eq!(r["connections"], 4);
    assert_eq!(r["session"], false);
    assert_eq!(r["interrupted"], false);
    assert_eq!(r["target"], url.as_str());
    assert!(
        r["endpoint"]
            .as_str()
            .unwrap()
            .starts_with("path form: create")
    );
    assert!(r["http_version"].as_str().unwrap().starts_with("HTTP/"));
    assert!(r["throughput_rps"].as_f64().unwrap() > 0.0);
    let l = &r["latency_ms"];
    for k in ["min", "mean", "p50", "p90", "p99", "p99_9", "max"] {
        assert!(l[k].as_f64().unwrap() > 0.0, "{k}: {l}");
    }
    assert!(l["p50"].as_f64() <= l["p99"].as_f64() && l["p99"].as_f64() <= l["max"].as_f64());
    assert_eq!(r["errors_by_status"], serde_json::json!({}));
    assert_eq!(
        r["rate_limited"],
        serde_json::json!({"QUOTA_EXCEEDED": 0, "RATE_LIMITED": 0, "CONCURRENCY_LIMITED": 0})
    );
    assert_eq!(r["by_step"]["tools-list"]["requests"], 120);

    // HTTP/1.1 only, the subdomain form, and the text report.
    let out = bench_raw(&[
        "--api-key-file",
        path(&edge.key_file()),
        "--cacert",
        path(&edge.cacert()),
        "--no-progress",
        "--http",
        "1",
        "--connections",
        "1",
        "--url",
        &edge.sub_url("create"),
        "-n",
        "20",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("HTTP/1.1"), "{text}");
    assert!(text.contains("ok         20   errors 0"), "{text}");
    assert!(text.contains("p99.9"), "{text}");
}

#[test]
fn tool_calls_on_the_create_endpoint_and_a_mix_with_a_failing_tool() {
    let edge = Edge::start();
    let (out, r) = edge.bench(&[
        "tool",
        "--name",
        "list_namespaces",
        "--url",
        &edge.sub_url("create"),
        "-n",
        "40",
        "-c",
        "2",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        (r["ok"].as_u64(), r["errors"].as_u64()),
        (Some(40), Some(0)),
        "{r}"
    );
    assert!(
        r["endpoint"]
            .as_str()
            .unwrap()
            .starts_with("subdomain form: create")
    );

    // 3 tools/list for each call of an unknown tool (JSON-RPC -32602), counted by step.
    let (out, r) = edge.bench(&[
        "mix",
        "--mix",
        "tools-list=3,tool=1",
        "--name",
        "no_such_tool",
        "--url",
        &edge.path_url("create"),
        "-n",
        "40",
        "-c",
        "1",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(r["scenario"], "mix(tools-list=3,tool=1)");
    assert_eq!(
        (r["ok"].as_u64(), r["errors"].as_u64()),
        (Some(30), Some(10)),
        "{r}"
    );
    assert_eq!(
        r["errors_by_code"],
        serde_json::json!({"JSONRPC_-32602": 10})
    );
    assert_eq!(r["by_step"]["tool"]["errors"], 10);
    assert_eq!(r["by_step"]["tools-list"]["errors"], 0);
}

#[test]
fn open_loop_runs_at_the_rate_after_the_warm_up() {
    let edge = Edge::start();
    let (out, r) = edge.bench(&[
        "--url",
        &edge.path_url("create"),
        "--rate",
        "100",
        "--duration",
        "1s",
        "--warmup",
        "500ms",
        "-c",
        "8",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(r["mode"], "open");
    assert_eq!(r["rate"], 100.0);
    // Tickets are due every 10 ms: 100 in the measured second, 50 in the warm-up.
    assert_eq!(r["requests"], 100, "{r}");
    assert_eq!(r["warmup_requests"], 50, "{r}");
    // The window spans the tickets (the last is due at 0.99 s) and ends once the last answer
    // is in: at most its due time plus the slowest latency. Bound by the run's own latency,
    // not by a fixed time: a loaded CI machine once served this at 13/s (latencies of 4-7 s).
    let d = r["duration_s"].as_f64().unwrap();
    let slowest = r["latency_ms"]["max"].as_f64().unwrap() / 1000.0;
    assert!(d >= 0.95, "{r}");
    assert!(d <= 1.0 + slowest + 0.5, "{r}");
}

#[test]
fn a_wrong_key_counts_every_answer_as_401_by_code() {
    let edge = Edge::start();
    let url = edge.path_url("create");
    let out = bench_raw(&[
        "--api-key",
        "pdk_wrong",
        "--cacert",
        path(&edge.cacert()),
        "--json",
        "--url",
        &url,
        "-n",
        "30",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (r["ok"].as_u64(), r["errors"].as_u64()),
        (Some(0), Some(30)),
        "{r}"
    );
    assert_eq!(r["errors_by_status"], serde_json::json!({"401": 30}));
    assert_eq!(
        r["errors_by_code"],
        serde_json::json!({"AUTHENTICATION_FAILED": 30})
    );
}

#[test]
fn an_untrusted_certificate_and_a_closed_port_are_errors_not_hangs() {
    let edge = Edge::start();
    // No --cacert: the self-signed certificate is not trusted.
    let out = bench_raw(&[
        "--api-key",
        "k",
        "--json",
        "--url",
        &edge.path_url("create"),
        "-n",
        "5",
        "-c",
        "1",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["errors"], 5, "{r}");
    assert_eq!(r["errors_by_status"], serde_json::json!({"none": 5}));

    let closed = quota_support::free_port();
    let out = bench_raw(&[
        "--api-key",
        "k",
        "--insecure",
        "--json",
        "--url",
        &format!("https://127.0.0.1:{closed}/mcp/run/acme"),
        "-n",
        "5",
        "-c",
        "1",
    ]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        r["errors_by_code"],
        serde_json::json!({"CONNECT": 5}),
        "{r}"
    );
}

#[test]
fn bad_urls_and_options_are_refused_with_the_option_named() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--api-key", "k", "--url", "https://localhost:8443/other"],
            "--url: path `/other` is not an MCP endpoint; use https://HOST[:PORT]/mcp/{create|run}/{namespace}",
        ),
        (
            &["--api-key", "k", "--url", "ftp://localhost/mcp/run/a"],
            "--url: scheme `ftp` is not http(s)",
        ),
        (
            &["--api-key", "k", "--url", "https://x.build.localhost/mcp"],
            "--url: host `x.build.localhost` is not {namespace}.{create|run}.DOMAIN",
        ),
        (
            &["--url", "https://localhost/mcp/run/a"],
            "--api-key: an API key is required",
        ),
        (
            &[
                "--api-key",
                "k",
                "--url",
                "https://localhost/mcp/run/a",
                "--rate",
                "0",
            ],
            "--rate: must be > 0",
        ),
        (
            &[
                "--api-key",
                "k",
                "--url",
                "https://localhost/mcp/run/a",
                "-c",
                "100000",
            ],
            "--concurrency: must be 1..=4096",
        ),
        (
            &[
                "--api-key",
                "k",
                "--url",
                "https://localhost/mcp/run/a",
                "-c",
                "2",
                "--connections",
                "3",
            ],
            "--connections: must be 1..=2 (the concurrency)",
        ),
        (
            &[
                "--api-key",
                "k",
                "--url",
                "https://localhost/mcp/run/a",
                "--duration",
                "5h",
            ],
            "--duration: duration plus warm-up must stay within 3600 s",
        ),
        (
            &[
                "execute",
                "--api-key",
                "k",
                "--url",
                "https://localhost/mcp/run/a",
            ],
            "--code: the execute scenario needs --code or --file",
        ),
        (
            &[
                "tool",
                "--api-key",
                "k",
                "--url",
                "https://localhost/mcp/run/a",
                "--name",
                "s.f",
                "--args",
                "nope",
            ],
            "--args: not JSON",
        ),
        (
            &[
                "--api-key",
                "k",
                "--url",
                "https://localhost/mcp/run/a",
                "--insecure",
                "--cacert",
                "/etc/hostname",
            ],
            "--insecure: give either --cacert or --insecure",
        ),
        (
            &[
                "bogus",
                "--api-key",
                "k",
                "--url",
                "https://localhost/mcp/run/a",
            ],
            "--scenario: `bogus` is not tools-list, execute, tool or mix",
        ),
    ];
    for (args, want) in cases {
        let out = bench_raw(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        assert!(err.contains(want), "{args:?}: want `{want}` in {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn ctrl_c_prints_the_partial_report() {
    let edge = Edge::start();
    let child = Command::new(BIN)
        .arg("bench")
        .args(["--api-key-file", path(&edge.key_file())])
        .args(["--cacert", path(&edge.cacert()), "--json"])
        .args(["--url", &edge.path_url("create"), "--duration", "60s"])
        .args(["-c", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let pid = child.id().to_string();
    let kill = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(kill.success());
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "slow to stop");
    assert_eq!(out.status.code(), Some(130), "{}", show(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["interrupted"], true, "{r}");
    assert!(r["requests"].as_u64().unwrap() > 0, "{r}");
    assert!(r["duration_s"].as_f64().unwrap() < 30.0, "{r}");
}
