//! The `paddock-worker` binary: `exec` prints the result JSON, `serve` answers the protocol
//! and shuts down cleanly on SIGTERM (cgroups removed), and a broken profile stops start-up
//! with a message naming the file and the key.

mod sandbox_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use paddock_shared::exec::{ExecStatus, ExecutionRequest};
use paddock_shared::model::Language;
use paddock_worker::client::{ClientOptions, WorkerClient};

const BIN: &str = env!("CARGO_BIN_EXE_paddock-worker");

fn worker(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("PADDOCK_NSJAIL", sandbox_support::nsjail())
        .env("PADDOCK_WORKER_DATA_DIR", dir.join("data"));
    c
}

fn tempdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

#[test]
fn exec_prints_the_result_and_sets_the_exit_code() {
    let d = tempdir();
    let out = worker(d.path())
        .args([
            "exec",
            "--tier",
            "free",
            "--lang",
            "python",
            "--input",
            "{\"n\": 2}",
            "--code",
            "result = input_data['n'] * 21",
        ])
        .output()
        .expect("run exec");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (v["status"].as_str(), v["result"].as_i64()),
        (Some("completed"), Some(42))
    );
    let out = worker(d.path())
        .args([
            "exec",
            "--tier",
            "free",
            "--lang",
            "ts",
            "--code",
            "export default () => { throw new TypeError('nope'); }",
        ])
        .output()
        .expect("run exec");
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["error"]["type"], "TypeError");
}

#[test]
fn broken_profile_stops_start_up_naming_file_and_key() {
    let d = tempdir();
    let profiles = d.path().join("profiles");
    std::fs::create_dir_all(profiles.join("seccomp")).expect("mkdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sandbox-profiles");
    for f in [
        "jail.toml",
        "seccomp/base.kafel",
        "seccomp/no-network.kafel",
    ] {
        std::fs::copy(root.join(f), profiles.join(f)).expect("copy");
    }
    let tiers = std::fs::read_to_string(root.join("tiers.toml")).expect("tiers");
    std::fs::write(
        profiles.join("tiers.toml"),
        tiers.replacen("pids = 32", "pids = 0", 1),
    )
    .expect("write");
    for args in [vec!["serve", "--check-config"], vec!["serve"]] {
        let out = worker(d.path())
            .args(&args)
            .env("PADDOCK_WORKER_SANDBOX_PROFILES_DIR", &profiles)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("tiers.toml") && err.contains("tiers.builder.pids"),
            "{args:?}: {err}"
        );
    }
    let out = worker(d.path())
        .args(["serve", "--edge", "127.0.0.1:1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--edge 127.0.0.1:1: expected unix:PATH, tls:HOST:PORT or tcp:HOST:PORT")
    );
    let out = worker(d.path())
        .args(["serve", "--edge", "tcp:127.0.0.1:1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--edge needs --join-token or --join-token-file")
    );
    let out = worker(d.path())
        .args(["serve", "--check-config"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serve_answers_and_shuts_down_cleanly() {
    let d = tempdir();
    let sock = d.path().join("w.sock");
    let mut child = worker(d.path())
        .args(["serve", "--listen-unix"])
        .arg(&sock)
        .env("PADDOCK_WORKER_POOL_FREE_PYTHON", "1")
        .env("PADDOCK_WORKER_POOL_FREE_TYPESCRIPT", "1")
        .env("PADDOCK_WORKER_DEFAULT_POOL_TARGET", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let pid = child.id();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let result = rt.block_on(async {
        let until = Instant::now() + Duration::from_secs(20);
        let client = loop {
            match WorkerClient::connect_unix(&sock, ClientOptions::default()).await {
                Ok(c) => break c,
                Err(e) if Instant::now() > until => panic!("worker did not come up: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let req = ExecutionRequest {
            execution_id: "cli-1".into(),
            namespace: String::new(),
            profile: "free".into(),
            language: Language::Python,
            code: "result = sum(range(10))".into(),
            input_json: "{}".into(),
            timeout_ms: None,
        };
        client.execute(req).await.expect("execute")
    });
    assert_eq!(result.status, ExecStatus::Completed);
    assert_eq!(result.result_value(), serde_json::json!(45));
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let until = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < until, "worker did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(10)); // polling interval, bounded by `until`
    };
    assert!(status.success(), "exit status {status:?}");
    let prefix = format!("w{pid}-");
    let left: Vec<String> = std::fs::read_dir("/sys/fs/cgroup/memory/paddock")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "slot cgroups left after shutdown: {left:?}"
    );
    assert!(!sock.exists(), "socket removed");
}
