//! Starts the real `paddock-edge` binary for tests and talks to it with `curl` over real TLS.
//!
//! Locating the binary: `env!("CARGO_BIN_EXE_paddock-edge")` only exists for binaries of
//! the package under test, and the root package does not own `paddock-edge`. So the first
//! test builds it (`cargo build -p paddock-edge`, same profile and `CARGO_TARGET_DIR`),
//! then uses `$CARGO_TARGET_DIR/debug/paddock-edge` (or `<workspace>/target/debug/...`).
//! `PADDOCK_EDGE_BIN` overrides both (e.g. a release binary).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The path of the `paddock-edge` binary, built once per test process.
pub fn edge_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        crate::bin_support::workspace_bin("PADDOCK_EDGE_BIN", "paddock-edge", "paddock-edge")
    })
    .clone()
}

/// A free loopback port (bound and released; good enough for tests on one machine).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("addr").port()
}

/// A running edge with its own data dir.
pub struct Edge {
    pub child: Child,
    pub port: u16,
    pub data_dir: PathBuf,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
    pub env: Vec<(String, String)>,
}

fn drain(r: impl std::io::Read + Send + 'static, sink: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if let Ok(mut s) = sink.lock() {
                s.push(line);
            }
        }
    });
}

impl Edge {
    /// Starts the edge on a free port and waits until `/v1/health/ready` answers 200.
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Edge {
        let port = free_port();
        let mut edge = Edge::spawn(data_dir, port, env);
        edge.wait_ready();
        edge
    }

    /// Spawns without waiting.
    pub fn spawn(data_dir: &Path, port: u16, env: &[(&str, &str)]) -> Edge {
        let mut cmd = Command::new(edge_bin());
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("PADDOCK_EDGE_GRACE_PERIOD_SECS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn paddock-edge");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        drain(child.stdout.take().expect("stdout"), stdout.clone());
        drain(child.stderr.take().expect("stderr"), stderr.clone());
        Edge {
            child,
            port,
            data_dir: data_dir.to_owned(),
            stdout,
            stderr,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// Polls readiness with a deadline; panics with the logs when it never comes.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("edge exited early with {status}: {}", self.logs());
            }
            let r = self.curl(&["https://127.0.0.1:{port}/v1/health/ready"]);
            if r.status == 200 {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("edge not ready within 30 s: {}", self.logs());
    }

    /// stdout and stderr so far.
    pub fn logs(&self) -> String {
        let out = self.stdout.lock().map(|v| v.join("\n")).unwrap_or_default();
        let err = self.stderr.lock().map(|v| v.join("\n")).unwrap_or_default();
        format!("--- stdout\n{out}\n--- stderr\n{err}")
    }

    /// The admin key printed on first start, if any.
    pub fn printed_admin_key(&self) -> Option<String> {
        let lines = self.stdout.lock().ok()?;
        lines
            .iter()
            .find(|l| l.starts_with("admin API key"))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    }

    /// Waits (with a deadline) for the admin key line.
    pub fn admin_key(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(k) = self.printed_admin_key() {
                return k;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no admin key printed: {}", self.logs())
    }

    /// The development certificate.
    pub fn cacert(&self) -> PathBuf {
        self.data_dir.join("tls").join("cert.pem")
    }

    /// Runs curl; `{port}` in arguments is replaced. Verifies TLS against the dev cert.
    pub fn curl(&self, args: &[&str]) -> Resp {
        let cacert = self.cacert();
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"]);
        if cacert.is_file() {
            cmd.arg("--cacert").arg(&cacert);
        } else {
            cmd.arg("-k");
        }
        for a in args {
            cmd.arg(a.replace("{port}", &self.port.to_string()));
        }
        let out = cmd.output().expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        Resp {
            status: code.trim().parse().unwrap_or(0),
            body: body.to_owned(),
        }
    }

    /// POSTs a stateless JSON-RPC request to an MCP URL with `key`.
    pub fn rpc(&self, url: &str, key: &str, method: &str, params: serde_json::Value) -> Resp {
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
                .to_string();
        let auth = format!("Authorization: Bearer {key}");
        self.curl(&[
            "-H",
            "Content-Type: application/json",
            "-H",
            "Accept: application/json, text/event-stream",
            "-H",
            "MCP-Protocol-Version: 2025-06-18",
            "-H",
            &auth,
            "--data-binary",
            &body,
            url,
        ])
    }

    /// Sends a signal by name (`TERM`, `KILL`, `INT`) with kill(1).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args(["-s", sig, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -s {sig} failed");
    }

    /// Waits for exit with a deadline.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "edge did not exit in {within:?}: {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: String,
}

impl Resp {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}
