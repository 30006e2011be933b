//! The in-sandbox runner programs (Python and Node), embedded as assets, and the command
//! line that starts each of them; the protocol they speak is docs/slot-protocol.md.

use std::io;
use std::path::Path;

use paddock_shared::model::Language;

/// The Python runner (`worker/runners/python/runner.py`), stdlib only.
pub const PYTHON_RUNNER: &str = include_str!("../runners/python/runner.py");
/// The Node runner (`worker/runners/node/runner.js`), CommonJS, no npm packages.
pub const NODE_RUNNER: &str = include_str!("../runners/node/runner.js");

/// File name of the Python runner inside the runner directory.
pub const PYTHON_RUNNER_FILE: &str = "runner.py";
/// File name of the precompiled Python runner (see [`precompile_python`]).
pub const PYTHON_RUNNER_PYC: &str = "runner.pyc";
/// File name of the Node runner inside the runner directory.
pub const NODE_RUNNER_FILE: &str = "runner.js";
/// Where the runner directory is mounted inside the jail (read-only).
pub const JAIL_RUNNER_DIR: &str = "/paddock/runner";
/// The Python interpreter (Debian's; the jail binds /usr read-only).
pub const PYTHON_INTERPRETER: &str = "/usr/bin/python3";
/// The Node interpreter (20.x).
pub const NODE_INTERPRETER: &str = "/usr/bin/node";
/// Environment variable a launcher sets (`"3,4"`) when it has already moved the protocol
/// itself: requests on the first fd, responses on the second, `/dev/null` on fd 0 and
/// fd 2 on fd 1. Without it the runners move the fds themselves; Node has no `dup` and
/// reopens `/proc/self/fd/{0,1}`, which fails (EACCES) when the pipes belong to another
/// uid than the jailed one, and then falls back to using fds 0/1 unprotected.
pub const PROTOCOL_FDS_ENV: &str = "PADDOCK_PROTOCOL_FDS";
/// Environment variable naming the sandbox Python package directory; the Python runner
/// puts it on `sys.path` itself (`-I` ignores `PYTHONPATH`).
pub const PYTHON_PACKAGES_ENV: &str = "PADDOCK_PYTHON_PACKAGES";

/// Writes both runners into `dir` as `runner.py` and `runner.js` (mode 0644), creating
/// `dir` if needed. Files are replaced atomically (write to a temporary name, rename).
///
/// # Errors
/// Any I/O error creating the directory or writing the files.
pub fn materialize(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, body) in [
        (PYTHON_RUNNER_FILE, PYTHON_RUNNER),
        (NODE_RUNNER_FILE, NODE_RUNNER),
    ] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, body)?;
        set_mode(&tmp, 0o644)?;
        std::fs::rename(&tmp, dir.join(name))?;
    }
    Ok(())
}

/// Compiles `dir/runner.py` into `dir/runner.pyc` with the sandbox's own interpreter, the
/// code's file name set to `source_name` (the path the jail shows). Python never caches
/// the script it runs, so without this every slot compiles the ~700-line runner again
/// (~5 ms of each start-up); `python3 runner.pyc` runs the compiled code directly.
///
/// # Errors
/// The interpreter is missing or the compilation failed (callers then run `runner.py`).
pub fn precompile_python(dir: &Path, source_name: &str) -> io::Result<()> {
    let tmp = dir.join(format!(".{PYTHON_RUNNER_PYC}.tmp"));
    let out = std::process::Command::new(PYTHON_INTERPRETER)
        .args([
            "-I",
            "-S",
            "-c",
            "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], \
             dfile=sys.argv[3], doraise=True)",
        ])
        .arg(dir.join(PYTHON_RUNNER_FILE))
        .arg(&tmp)
        .arg(source_name)
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output()?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(io::Error::other(format!(
            "py_compile of the runner failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    set_mode(&tmp, 0o644)?;
    std::fs::rename(&tmp, dir.join(PYTHON_RUNNER_PYC))
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// The argv (program first) that starts the runner for `language`, with the runner files
/// in `runner_dir` ([`JAIL_RUNNER_DIR`] inside the jail, any directory where
/// [`materialize`] wrote them outside). `heap_mb` caps Node's old-space heap
/// (`--max-old-space-size`); Python ignores it (the cgroup is the memory guard).
///
/// Python: `/usr/bin/python3 -I -S -B -X frozen_modules=on <dir>/runner.py` (`-S`: no
/// `site`, so no `.pth` file of the system site-packages runs in the sandbox);
/// Node: `/usr/bin/node [--max-old-space-size=<MB>] <dir>/runner.js`.
pub fn runner_argv(language: Language, runner_dir: &str, heap_mb: Option<u32>) -> Vec<String> {
    runner_argv_with(language, runner_dir, heap_mb, RunnerStart::default())
}

/// How a slot's runner is started (see [`runner_argv_with`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunnerStart {
    /// Run the precompiled `runner.pyc` (Python) instead of `runner.py`.
    pub compiled: bool,
    /// The slot is started for an execution that is already waiting: the runner skips
    /// the warm-up (extra imports, a dry execution) that only pays off in a pool.
    pub on_demand: bool,
}

/// [`runner_argv`] with the start options: `runner.pyc` when `start.compiled` (Python),
/// and `--on-demand` after the runner file when `start.on_demand`.
pub fn runner_argv_with(
    language: Language,
    runner_dir: &str,
    heap_mb: Option<u32>,
    start: RunnerStart,
) -> Vec<String> {
    let dir = runner_dir.trim_end_matches('/');
    let mut argv = match language {
        Language::Python => vec![
            PYTHON_INTERPRETER.to_owned(),
            "-I".to_owned(),
            "-S".to_owned(),
            "-B".to_owned(),
            "-X".to_owned(),
            "frozen_modules=on".to_owned(),
            format!(
                "{dir}/{}",
                if start.compiled {
                    PYTHON_RUNNER_PYC
                } else {
                    PYTHON_RUNNER_FILE
                }
            ),
        ],
        Language::TypeScript => {
            let mut argv = vec![NODE_INTERPRETER.to_owned()];
            if let Some(mb) = heap_mb {
                argv.push(format!("--max-old-space-size={mb}"));
            }
            argv.push(format!("{dir}/{NODE_RUNNER_FILE}"));
            argv
        }
    };
    if start.on_demand {
        argv.push("--on-demand".to_owned());
    }
    argv
}

/// The `language` field a runner puts in its `ready` frame.
pub fn ready_language(language: Language) -> &'static str {
    match language {
        Language::Python => "python",
        Language::TypeScript => "typescript",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_matches_the_slot_protocol() {
        assert_eq!(
            runner_argv(Language::Python, JAIL_RUNNER_DIR, Some(128)).join(" "),
            "/usr/bin/python3 -I -S -B -X frozen_modules=on /paddock/runner/runner.py"
        );
        let start = RunnerStart {
            compiled: true,
            on_demand: true,
        };
        assert_eq!(
            runner_argv_with(Language::Python, JAIL_RUNNER_DIR, None, start).join(" "),
            "/usr/bin/python3 -I -S -B -X frozen_modules=on /paddock/runner/runner.pyc --on-demand"
        );
        assert_eq!(
            runner_argv_with(Language::TypeScript, "/x", None, start).join(" "),
            "/usr/bin/node /x/runner.js --on-demand"
        );
        assert_eq!(
            runner_argv(Language::TypeScript, "/paddock/runner/", Some(128)).join(" "),
            "/usr/bin/node --max-old-space-size=128 /paddock/runner/runner.js"
        );
        assert_eq!(
            runner_argv(Language::TypeScript, "/x", None).join(" "),
            "/usr/bin/node /x/runner.js"
        );
    }

    #[test]
    fn materialize_writes_both_runners() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("runner");
        materialize(&target).expect("materialize");
        assert_eq!(
            std::fs::read_to_string(target.join("runner.py")).expect("py"),
            PYTHON_RUNNER
        );
        assert_eq!(
            std::fs::read_to_string(target.join("runner.js")).expect("js"),
            NODE_RUNNER
        );
        materialize(&target).expect("idempotent");
    }

    #[test]
    fn precompiled_runner_keeps_the_jail_file_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        materialize(dir.path()).expect("materialize");
        precompile_python(dir.path(), "/paddock/runner/runner.py").expect("py_compile");
        let pyc = std::fs::read(dir.path().join(PYTHON_RUNNER_PYC)).expect("pyc");
        let name = b"/paddock/runner/runner.py";
        assert!(
            pyc.windows(name.len()).any(|w| w == name),
            "the code object names the jail path"
        );
        assert!(!dir.path().join(".runner.pyc.tmp").exists());
    }
}
