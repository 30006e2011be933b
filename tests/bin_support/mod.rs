//! The workspace's binaries for tests that start them as processes: `$env_var` when set
//! (e.g. a release binary, or the ones `make test` built once), else a debug build of the
//! package made now, in the same `CARGO_TARGET_DIR`. Used by the root package's tests and,
//! through `#[path]`, by crates whose own binaries are not the ones needed
//! (`env!("CARGO_BIN_EXE_…")` only exists for the package under test).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The binary `bin` of workspace package `package` (all its binaries are built: the
/// worker needs `paddock-slot-init` beside `paddock-worker`).
pub fn workspace_bin(env_var: &str, package: &str, bin: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env_var) {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|d| d.join("Cargo.lock").is_file())
        .expect("the workspace root (a directory with Cargo.lock) above the crate")
        .to_owned();
    let status = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", package, "--bins"])
        .current_dir(&root)
        .status()
        .unwrap_or_else(|e| panic!("run cargo build -p {package}: {e}"));
    assert!(status.success(), "cargo build -p {package} failed");
    let target =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from);
    let target = if target.is_absolute() {
        target
    } else {
        root.join(target)
    };
    let path = target.join("debug").join(bin);
    assert!(path.is_file(), "no binary at {}", path.display());
    path
}
