//! Every package of sandbox-profiles/packages.toml imported and its smoke run inside a real
//! jail under the real seccomp policies. Runs on the builder tier (256 MB): the free tier's
//! 128 MB is too small for the heavier imports (pandas, matplotlib, scikit-learn).

mod sandbox_support;

use std::sync::Mutex;

use paddock_shared::exec::ExecStatus;
use paddock_shared::model::Language;
use sandbox_support::run_on;
use serde::Deserialize;
use serde_json::Value;

/// The tier the smokes run on (see the module doc).
const SMOKE_TIER: &str = "builder";
/// Where `make deps` installs the sandbox packages.
const PACKAGES_DIR: &str = "/opt/paddock/python";

#[derive(Debug, Deserialize)]
struct Catalogue {
    python: Vec<Package>,
}

#[derive(Debug, Deserialize)]
struct Package {
    name: String,
    import: String,
    smoke: String,
    #[serde(default)]
    expect: Option<toml::Value>,
}

#[test]
fn every_package_imports_and_works_in_the_jail() {
    assert!(
        std::path::Path::new(PACKAGES_DIR).is_dir(),
        "{PACKAGES_DIR} is missing: run `make deps` first; the package test needs the installed set"
    );
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../sandbox-profiles/packages.toml"
    ))
    .expect("packages.toml");
    let cat: Catalogue = toml::from_str(&text).expect("packages.toml parses");
    assert!(
        cat.python.len() >= 59,
        "the seed catalogue has 59 packages, found {}",
        cat.python.len()
    );
    let failures = Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(p) = cat.python.get(i) else { break };
                    let code = format!("import {}\n{}", p.import, p.smoke);
                    let r = run_on(SMOKE_TIER, Language::Python, &code, "{}", Some(20_000));
                    let mut problem = None;
                    if r.status != ExecStatus::Completed {
                        problem = Some(format!("{:?} {:?}", r.status, r.error));
                    } else if let Some(want) = &p.expect {
                        let want: Value = serde_json::to_value(want).unwrap_or(Value::Null);
                        if r.result_value() != want {
                            problem =
                                Some(format!("result {} != expected {want}", r.result_value()));
                        }
                    }
                    if let Some(msg) = problem
                        && let Ok(mut f) = failures.lock()
                    {
                        f.push(format!("{}: {msg}", p.name));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_default();
    assert!(
        failures.is_empty(),
        "{} package(s) failed in the jail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
