//! The repository keeps the top-level layout of DESIGN.md.
use std::path::Path;

#[test]
fn top_level_layout_is_present() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["shared", "edge", "worker", "sandbox-profiles", "deploy", "tests", "benches"] {
        assert!(root.join(dir).is_dir(), "missing top-level folder {dir}/");
    }
}
