//! The real `paddock-edge` binary for the limits and load-tool tests: its own data dir
//! (kept across restarts), a free port, its development certificate, and a reqwest client
//! (real TLS, HTTP/2 when offered) for MCP JSON-RPC and REST requests.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_paddock-edge");

/// A running edge.
pub struct Edge {
    pub child: Child,
    pub port: u16,
    pub data: PathBuf,
    pub env: Vec<(String, String)>,
    pub logs: Arc<Mutex<Vec<String>>>,
    pub http: reqwest::Client,
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn drain(r: impl std::io::Read + Send + 'static, sink: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
}

/// One answer: HTTP status, `Retry-After` (if any) and the JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: Value,
}

impl Answer {
    /// The `code` of a 4xx body, or of a tool error's structured content.
    pub fn code(&self) -> Option<&str> {
        self.body
            .get("code")
            .or_else(|| self.body.pointer("/result/structuredContent/code"))
            .and_then(Value::as_str)
    }

    /// The structured content of a tool result.
    pub fn structured(&self) -> &Value {
        self.body
            .pointer("/result/structuredContent")
            .unwrap_or(&Value::Null)
    }
}

impl Edge {
    /// Starts the edge on `data` with extra environment and waits until it is ready.
    pub fn start(data: &Path, env: &[(&str, &str)]) -> Edge {
        let port = free_port();
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--data-dir"])
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("PADDOCK_EDGE_GRACE_PERIOD_SECS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        drain(child.stdout.take().unwrap(), logs.clone());
        drain(child.stderr.take().unwrap(), logs.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        let cacert = data.join("tls").join("cert.pem");
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                panic!(
                    "edge exited early ({s}): {}",
                    logs.lock().unwrap().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "edge not ready in 30 s: {}",
                logs.lock().unwrap().join("\n")
            );
            let ready = Command::new("curl")
                .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(format!("https://127.0.0.1:{port}/v1/health/ready"))
                .output()
                .map(|o| o.stdout == b"200")
                .unwrap_or(false);
            if ready && cacert.is_file() && data.join("admin.key").is_file() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let pem = std::fs::read(&cacert).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Edge {
            child,
            port,
            data: data.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            logs,
            http,
        }
    }

    /// Stops with SIGTERM (graceful) and waits for the exit.
    pub fn stop_graceful(mut self) {
        let st = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "edge did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops with SIGKILL (no flush).
    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Starts the edge again on the same data dir and environment.
    pub fn restart_env(&self) -> Vec<(String, String)> {
        self.env.clone()
    }

    pub fn admin_key(&self) -> String {
        std::fs::read_to_string(self.data.join("admin.key"))
            .unwrap()
            .trim()
            .to_owned()
    }

    pub fn base(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// One stateless JSON-RPC request to `/mcp/{kind}/{ns}`.
    pub async fn rpc(&self, key: &str, kind: &str, ns: &str, body: Value) -> Answer {
        let r = self
            .http
            .post(format!("{}/mcp/{kind}/{ns}", self.base()))
            .header("authorization", format!("Bearer {key}"))
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-06-18")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    /// `tools/call` of `tool` with `args`.
    pub async fn call(&self, key: &str, kind: &str, ns: &str, tool: &str, args: Value) -> Answer {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": tool, "arguments": args}});
        self.rpc(key, kind, ns, body).await
    }

    /// `execute` of `code` on the run endpoint of `ns`.
    pub async fn execute(&self, key: &str, ns: &str, code: &str) -> Answer {
        self.call(key, "run", ns, "execute", json!({"code": code}))
            .await
    }

    /// `GET /v1/usage` with `Authorization: Bearer {token}`.
    pub async fn rest_usage(&self, token: &str) -> Answer {
        let r = self
            .http
            .get(format!("{}/v1/usage", self.base()))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    /// A REST POST with an optional bearer token.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        let mut req = self.http.post(format!("{}{path}", self.base())).json(&body);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        answer(req.send().await.unwrap()).await
    }

    /// Registers a (free tier) account; returns (API key, JWT access token).
    pub async fn free_account(&self, email: &str) -> (String, String) {
        let pw = "correct horse battery staple";
        let r = self
            .post(
                "/v1/auth/register",
                None,
                json!({"email": email, "password": pw, "name": "Q", "accept_tos": true}),
            )
            .await;
        assert!(r.status == 200 || r.status == 201, "{r:?}");
        let r = self
            .post(
                "/v1/auth/login",
                None,
                json!({"email": email, "password": pw}),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        let jwt = r.body["access_token"].as_str().unwrap().to_owned();
        let r = self
            .post("/v1/auth/api-keys", Some(&jwt), json!({"name": "k"}))
            .await;
        assert!(r.status == 200 || r.status == 201, "{r:?}");
        (r.body["key"].as_str().unwrap().to_owned(), jwt)
    }

    /// A fresh access token for an account's key (`POST /v1/auth/token`).
    pub async fn token_of(&self, key: &str) -> String {
        let r = self
            .http
            .post(format!("{}/v1/auth/token", self.base()))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap();
        let a = answer(r).await;
        assert_eq!(a.status, 200, "{a:?}");
        a.body["access_token"].as_str().unwrap().to_owned()
    }

    /// `make_namespace` of `ns` on its create endpoint (must succeed).
    pub async fn make_namespace(&self, key: &str, ns: &str) {
        let a = self
            .call(key, "create", ns, "make_namespace", json!({"name": ns}))
            .await;
        assert_eq!(a.status, 200, "{a:?}");
        assert_ne!(
            a.body.pointer("/result/isError"),
            Some(&json!(true)),
            "{a:?}"
        );
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        retry_after,
        body,
    }
}

/// Seconds from now to the first instant of next month (UTC), as the edge computes it.
pub fn seconds_to_month_reset() -> u64 {
    let now = paddock_edge::quota::now_ms();
    paddock_edge::quota::Month::of_unix_ms(now).seconds_to_reset(now)
}
