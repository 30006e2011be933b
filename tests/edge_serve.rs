//! End-to-end tests of the edge transport: the real `paddock-edge` binary over real TLS
//! (curl as the client), each test with its own data dir and port.

mod bin_support;
mod edge_support;

use std::net::TcpListener;
use std::time::Duration;

use edge_support::{Edge, edge_bin, free_port};
use serde_json::json;

#[test]
fn health_answers_without_auth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = Edge::start(dir.path(), &[]);
    for path in ["/v1/health", "/v1/health/live", "/v1/health/ready"] {
        let r = edge.curl(&[&format!("https://127.0.0.1:{{port}}{path}")]);
        assert_eq!(r.status, 200, "{path}: {r:?}");
    }
    let r = edge.curl(&["https://localhost:{port}/v1/health"]);
    assert_eq!(r.json()["status"], "ok");
}

#[test]
fn unknown_forms_are_invalid_host_with_the_accepted_forms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = Edge::start(dir.path(), &[]);
    let r = edge.curl(&["https://localhost:{port}/somewhere"]);
    assert_eq!(r.status, 404, "{r:?}");
    let v = r.json();
    assert_eq!(v["code"], "INVALID_HOST");
    let msg = v["message"].as_str().expect("message");
    assert!(
        msg.contains("https://{namespace}.create.localhost/mcp"),
        "{msg}"
    );
    assert!(
        msg.contains("https://localhost/mcp/create/{namespace}"),
        "{msg}"
    );
    // A bad namespace label in the path form.
    let r = edge.curl(&["https://localhost:{port}/mcp/create/Not_A_Label"]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "INVALID_HOST");
}

#[test]
fn sni_host_mismatch_is_421() {
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = Edge::start(dir.path(), &[]);
    let resolve_a = "a.create.localhost:{port}:127.0.0.1";
    let r = edge.curl(&[
        "--resolve",
        resolve_a,
        "-H",
        "Host: b.create.localhost",
        "https://a.create.localhost:{port}/mcp",
    ]);
    assert_eq!(r.status, 421, "{r:?}");
    assert_eq!(r.json()["code"], "MISDIRECTED_REQUEST");
    // Matching SNI and Host on the subdomain form routes (and then asks for a key).
    let r = edge.curl(&[
        "--resolve",
        resolve_a,
        "-X",
        "POST",
        "https://a.create.localhost:{port}/mcp",
    ]);
    assert_eq!(r.status, 401, "{r:?}");
}

#[test]
fn missing_or_unknown_key_is_401_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = Edge::start(dir.path(), &[]);
    let url = "https://localhost:{port}/mcp/create/acme";
    let r = edge.curl(&[
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        "{}",
        url,
    ]);
    assert_eq!(r.status, 401, "{r:?}");
    let v = r.json();
    assert_eq!(v["code"], "AUTHENTICATION_FAILED");
    assert!(
        v["message"].as_str().unwrap_or("").contains("x-api-key"),
        "{v}"
    );
    let r = edge.rpc(url, "pk_not_a_real_key", "tools/list", json!({}));
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["code"], "AUTHENTICATION_FAILED");
    let r = edge.curl(&["-H", "Authorization: Basic abc", "--data-binary", "{}", url]);
    assert_eq!(r.status, 401);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("Bearer")
    );
}

#[test]
fn oversize_bodies_are_413_declared_or_streamed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = Edge::start(dir.path(), &[("PADDOCK_EDGE_MAX_BODY_BYTES", "4096")]);
    let key = edge.admin_key();
    let big = dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; 5000]).expect("write");
    let auth = format!("Authorization: Bearer {key}");
    let file = format!("@{}", big.display());
    let url = "https://localhost:{port}/mcp/create/acme";
    let r = edge.curl(&["-H", &auth, "--data-binary", &file, url]);
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.json()["code"], "PAYLOAD_TOO_LARGE");
    // Chunked: no Content-Length, counted while streaming.
    let r = edge.curl(&[
        "-H",
        &auth,
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &file,
        url,
    ]);
    assert_eq!(r.status, 413, "{r:?}");
    // Under the limit: answered normally.
    let r = edge.rpc(url, &key, "tools/list", json!({}));
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn stateless_tools_list_and_http_semantics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = Edge::start(dir.path(), &[]);
    let key = edge.admin_key();
    let url = "https://localhost:{port}/mcp/create/acme";
    let r = edge.rpc(url, &key, "tools/list", json!({}));
    assert_eq!(r.status, 200, "{r:?}");
    let tools = r.json()["result"]["tools"]
        .as_array()
        .cloned()
        .expect("tools");
    assert!(!tools.is_empty());
    for t in &tools {
        assert!(
            t["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{t}"
        );
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        assert!(t.get("outputSchema").is_none(), "{t}");
    }
    // The stateless fast path (plain legacy tools/list) and rmcp (same request with a
    // `cursor`, which the fast path leaves to rmcp) give the same answer.
    let via_rmcp = edge.rpc(url, &key, "tools/list", json!({"cursor": null}));
    assert_eq!(via_rmcp.status, 200, "{via_rmcp:?}");
    assert_eq!(via_rmcp.json(), r.json());
    // Unknown tool is a JSON-RPC -32602.
    let r = edge.rpc(
        url,
        &key,
        "tools/call",
        json!({"name": "no_such_tool", "arguments": {}}),
    );
    assert_eq!(r.json()["error"]["code"], -32602, "{r:?}");
    // GET without a session: 405.
    let auth = format!("Authorization: Bearer {key}");
    let r = edge.curl(&["-H", &auth, "-H", "Accept: text/event-stream", url]);
    assert_eq!(r.status, 405, "{r:?}");
}

#[test]
fn restart_keeps_the_admin_key_and_kill9_keeps_a_create() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut edge = Edge::start(dir.path(), &[]);
    let key = edge.admin_key();
    let url = "https://localhost:{port}/mcp/create/durable";
    let r = edge.rpc(
        url,
        &key,
        "tools/call",
        json!({"name": "make_namespace", "arguments": {"name": "durable"}}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_ne!(r.json()["result"]["isError"], true, "{r:?}");
    edge.signal("KILL");
    edge.wait_exit(Duration::from_secs(10));
    drop(edge);

    let edge = Edge::start(dir.path(), &[]);
    assert_eq!(
        edge.printed_admin_key(),
        None,
        "a second start must not print a new key"
    );
    let stored = std::fs::read_to_string(dir.path().join("admin.key")).expect("admin.key");
    assert_eq!(stored.trim(), key);
    let url = "https://localhost:{port}/mcp/create/durable";
    let r = edge.rpc(
        url,
        &key,
        "tools/call",
        json!({"name": "list_namespaces", "arguments": {}}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.contains("durable"),
        "namespace lost after kill -9: {}",
        r.body
    );
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut edge = Edge::start(dir.path(), &[]);
    edge.signal("TERM");
    let status = edge.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "exit {status}: {}", edge.logs());
}

#[test]
fn taken_port_stops_start_up_with_a_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let mut edge = Edge::spawn(dir.path(), port, &[]);
    let status = edge.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{}", edge.logs());
    let logs = edge.logs();
    assert!(
        logs.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{logs}"
    );
    drop(taken);
}

#[test]
fn bad_config_exits_2_naming_every_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("edge.toml");
    std::fs::write(&cfg, "listen = \"nope\"\nmax_body_bytes = 1\n").expect("write");
    let out = std::process::Command::new(edge_bin())
        .args(["serve", "--check-config", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listen:") && err.contains("max_body_bytes:"),
        "{err}"
    );
    let port = free_port().to_string();
    let out = std::process::Command::new(edge_bin())
        .args([
            "serve",
            "--check-config",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
