//! Shared set-up of the sandbox tests: one real pool set (real nsjail, real cgroups, the
//! real runners and slot-init) on one runtime, used by every test of a test binary.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::LazyLock;

use paddock_shared::exec::{ExecStatus, ExecutionRequest, ExecutionResult};
use paddock_shared::model::Language;
use paddock_worker::config::Config;
use paddock_worker::executor::Executor;
use paddock_worker::slots::{PoolSet, setup};
use tokio_util::sync::CancellationToken;

/// Where `make deps` installs nsjail.
pub const NSJAIL_DEFAULT: &str = "/opt/paddock/bin/nsjail";

/// The nsjail binary, or a panic telling the operator to run `make deps` (never a skip).
pub fn nsjail() -> PathBuf {
    let p = std::env::var_os("PADDOCK_NSJAIL")
        .map(PathBuf::from)
        .unwrap_or_else(|| NSJAIL_DEFAULT.into());
    assert!(
        p.is_file(),
        "nsjail not found at {} (or $PADDOCK_NSJAIL): run `make deps` first; the sandbox tests need the real jail",
        p.display()
    );
    p
}

pub struct Sandbox {
    pub rt: tokio::runtime::Runtime,
    pub pools: PoolSet,
    _dir: tempfile::TempDir,
}

pub static SANDBOX: LazyLock<Sandbox> = LazyLock::new(|| {
    let nsjail = nsjail();
    assert!(
        nix_is_root(),
        "the sandbox tests run as root (cgroups and nsjail)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut cfg = Config {
        data_dir: dir.path().join("data"),
        nsjail_path: nsjail,
        ..Config::default()
    };
    cfg.pools.clear();
    for (k, v) in [
        ("free/python", 3),
        ("free/typescript", 2),
        ("builder/python", 1),
    ] {
        cfg.pools.insert(k.into(), v);
    }
    cfg.default_pool_target = 0;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let slot_init = PathBuf::from(env!("CARGO_BIN_EXE_paddock-slot-init"));
    let pools = rt
        .block_on(async { setup::start(&cfg, &slot_init) })
        .expect("sandbox start-up");
    Sandbox {
        rt,
        pools,
        _dir: dir,
    }
});

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Runs one execution on the shared pools.
pub fn run_on(
    profile: &str,
    language: Language,
    code: &str,
    input: &str,
    timeout_ms: Option<u64>,
) -> ExecutionResult {
    let s = &*SANDBOX;
    let req = ExecutionRequest {
        execution_id: format!("t-{}", rand_id()),
        namespace: "tests".into(),
        profile: profile.into(),
        language,
        code: code.into(),
        input_json: input.into(),
        timeout_ms,
    };
    s.rt.block_on(s.pools.execute(req, CancellationToken::new()))
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

pub fn py(code: &str) -> ExecutionResult {
    run_on("free", Language::Python, code, "{}", Some(1500))
}

pub fn ts(code: &str) -> ExecutionResult {
    run_on("free", Language::TypeScript, code, "{}", Some(3000))
}

/// Asserts status and error type, printing the whole result when they differ.
pub fn expect(r: &ExecutionResult, status: ExecStatus, error_type: Option<&str>) {
    let got = r.error.as_ref().map(|e| e.error_type.as_str());
    assert!(
        r.status == status && got == error_type,
        "want {status:?}/{error_type:?}, got {:?}/{got:?}: {}",
        r.status,
        serde_json::to_string_pretty(&r.to_structured()).unwrap_or_default()
    );
}

/// The next execution on the same pools must be correct.
pub fn next_is_healthy(language: Language) {
    let code = match language {
        Language::Python => "result = input_data['n'] + 1",
        Language::TypeScript => "export default function (input: any) { return input.n + 1; }",
    };
    let r = run_on("free", language, code, "{\"n\": 41}", None);
    expect(&r, ExecStatus::Completed, None);
    assert_eq!(r.result_value(), serde_json::json!(42));
}
