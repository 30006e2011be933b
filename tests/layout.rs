//! The repository keeps the top-level layout of DESIGN.md.
use std::path::Path;

#[test]
fn top_level_layout_is_present() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in [
        "shared",
        "edge",
        "worker",
        "sandbox-profiles",
        "deploy",
        "tests",
        "benches",
    ] {
        assert!(root.join(dir).is_dir(), "missing top-level folder {dir}/");
    }
}

/// A binary of the workspace, built by `make build` (or `cargo build --workspace`).
fn workspace_bin(name: &str, env_override: &str) -> std::path::PathBuf {
    if let Ok(p) = std::env::var(env_override) {
        return p.into();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), Into::into);
    let bin = target.join("debug").join(name);
    assert!(
        bin.exists(),
        "{} is not built: run `cargo build --workspace` (or set {env_override})",
        bin.display()
    );
    bin
}

#[test]
fn example_configs_in_deploy_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let edge = workspace_bin("paddock-edge", "PADDOCK_EDGE_BIN");
    let out = std::process::Command::new(edge)
        .args(["serve", "--check-config", "--config"])
        .arg(root.join("deploy/config/edge.example.toml"))
        .output()
        .expect("run paddock-edge");
    assert!(
        out.status.success(),
        "edge.example.toml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let worker = workspace_bin("paddock-worker", "PADDOCK_WORKER_BIN");
    let out = std::process::Command::new(worker)
        .arg("--config")
        .arg(root.join("deploy/config/worker.example.toml"))
        .args(["serve", "--check-config"])
        .output()
        .expect("run paddock-worker");
    assert!(
        out.status.success(),
        "worker.example.toml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
