//! Shared by the link tests that drive the real worker binary against an in-process edge
//! (`tests/link_worker.rs`, `tests/link_worker_tls.rs`).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use paddock_edge::app::{App, Principal};
use serde_json::Value;

/// The worker binary: `PADDOCK_WORKER_BIN`, else a debug build made now.
pub fn worker_bin() -> PathBuf {
    crate::bin_support::workspace_bin("PADDOCK_WORKER_BIN", "paddock-worker", "paddock-worker")
}

/// Calls create tool `name` in namespace `acme`; it must succeed.
pub async fn tool(app: &App, p: &Principal, name: &str, a: Value) {
    let Value::Object(m) = a else { panic!() };
    app.call_create_tool(p, "acme", name, m).await.unwrap();
}

/// Waits until `f` holds, at most `secs` seconds.
pub async fn until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
