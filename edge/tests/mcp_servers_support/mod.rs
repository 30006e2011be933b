//! Shared helpers of the remote-MCP tests: real Node MCP servers on loopback (the
//! third-party `@modelcontextprotocol/server-everything` and `tests/node/mcp-test-server.mjs`),
//! an App with a KEK and the loopback allow list, and create-tool calls.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use paddock_edge::app::{ApiError, App, AppConfig, Principal};
use paddock_edge::remote::guard::AllowList;
use paddock_edge::secrets::Kek;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The bearer token the test server wants.
pub const TOKEN: &str = "tok-Zq8sXv3NfL0pW2";
/// The extra header the test server wants (name, value).
pub const HEADER: (&str, &str) = ("x-tenant", "hdr-Kd93Jm1Qa7");

pub fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/node")
}

/// A running Node MCP server; killed on drop.
pub struct NodeServer {
    pub child: tokio::process::Child,
    pub port: u16,
}

impl NodeServer {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

async fn start(args: &[&str], env: &[(&str, &str)]) -> NodeServer {
    let mut cmd = tokio::process::Command::new("node");
    cmd.current_dir(node_dir())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("node runs");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let port = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(p) = line.strip_prefix("PADDOCK_LISTENING ") {
                return p.trim().parse::<u16>().unwrap();
            }
        }
        panic!("server exited before listening");
    })
    .await
    .expect("server listens within 30 s");
    // Keep draining stderr so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    NodeServer { child, port }
}

/// `@modelcontextprotocol/server-everything` in `streamableHttp` or `sse` mode.
pub async fn everything(mode: &str) -> NodeServer {
    start(
        &[
            "--require",
            "./loopback-only.cjs",
            "node_modules/@modelcontextprotocol/server-everything/dist/index.js",
            mode,
        ],
        &[],
    )
    .await
}

/// `tests/node/mcp-test-server.mjs` wanting [`TOKEN`] and [`HEADER`].
pub async fn test_server() -> NodeServer {
    let h = format!("{}:{}", HEADER.0, HEADER.1);
    start(
        &["mcp-test-server.mjs"],
        &[("AUTH_TOKEN", TOKEN), ("REQUIRE_HEADER", &h)],
    )
    .await
}

/// POSTs to a test-server admin route; returns its JSON.
pub async fn admin(s: &NodeServer, path: &str, body: Value) -> Value {
    let c = reqwest::Client::new();
    let r = if path.starts_with("/admin/stats") {
        c.get(format!("{}{path}", s.base())).send().await.unwrap()
    } else {
        c.post(format!("{}{path}", s.base()))
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    };
    serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null)
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub app: App,
    pub p: Principal,
    pub kek: Kek,
}

pub fn config(dir: &std::path::Path, kek: Option<Kek>, allow: &str) -> AppConfig {
    let mut cfg = AppConfig::new(dir);
    cfg.kek = kek;
    cfg.allow_private_mcp_hosts = AllowList::parse(allow).unwrap();
    cfg
}

/// Opens an App, retrying while a dropped App's sled threads still hold the lock.
pub fn open(cfg: AppConfig) -> Result<App, paddock_edge::app::StartupError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match App::open(cfg.clone()) {
            Ok((app, _)) => return Ok(app),
            Err(paddock_edge::app::StartupError::Store { .. })
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

pub fn principal(app: &App) -> Principal {
    let all = crate::account_support::ALL;
    crate::account_support::account(app, "remote@example.com", all, None).0
}

/// An App allowing loopback MCP servers, with namespace `acme`.
pub async fn env() -> Env {
    env_allowing("127.0.0.1").await
}

pub async fn env_allowing(allow: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let kek = Kek::generate();
    let app = open(config(dir.path(), Some(kek.clone()), allow)).unwrap();
    let p = principal(&app);
    let e = Env { dir, app, p, kek };
    ok(&e, "make_namespace", json!({"name": "acme"})).await;
    e
}

pub fn args(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("args must be an object"),
    }
}

pub async fn call(e: &Env, tool: &str, a: Value) -> Result<Value, ApiError> {
    e.app.call_create_tool(&e.p, "acme", tool, args(a)).await
}

pub async fn ok(e: &Env, tool: &str, a: Value) -> Value {
    match call(e, tool, a).await {
        Ok(v) => v,
        Err(err) => panic!("{tool} failed: {err}"),
    }
}

pub async fn err(e: &Env, tool: &str, a: Value) -> ApiError {
    match call(e, tool, a).await {
        Ok(v) => panic!("{tool} should fail, got {v}"),
        Err(err) => err,
    }
}

/// Attaches the test server as `guarded` with its token and header.
pub async fn add_test_server(e: &Env, s: &NodeServer) -> Value {
    ok(
        e,
        "add_mcp_server",
        json!({"name": "guarded", "url": s.url(), "auth_token": TOKEN,
               "headers": {HEADER.0: HEADER.1}}),
    )
    .await
}

pub async fn set(e: &Env, server: &str, key: &str, value: Value) {
    ok(
        e,
        "set_mcp_server_setting",
        json!({"name": server, "key": key, "value": value}),
    )
    .await;
}
