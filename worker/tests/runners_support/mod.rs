//! Test harness for the runners: starts a real runner (outside any jail) with the
//! argv of `paddock_worker::runners`, speaks the slot protocol over its pipes and returns
//! the `result` frame. A watchdog kills a runner that does not answer in time, so a hung
//! runner fails the test instead of hanging it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use paddock_shared::model::Language;
use paddock_worker::runners;
use serde_json::{Value, json};

/// How long a runner may take to become ready or to answer (generous: the CI machine is
/// shared; the watchdog only exists so that a broken runner cannot hang the suite).
const WATCHDOG: Duration = Duration::from_secs(60);

/// One started runner.
pub struct Runner {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    watchdog: Option<mpsc::Sender<()>>,
    /// The `ready` frame.
    pub ready: Value,
    /// The runner's cwd (its workspace).
    pub workspace: tempfile::TempDir,
    _runner_dir: tempfile::TempDir,
}

/// What an execution gave back.
pub struct Outcome {
    /// The `result` frame.
    pub frame: Value,
    /// Time from writing `execute` to reading the whole `result` frame.
    pub round_trip: Duration,
    /// The runner's exit status code.
    pub exit_code: Option<i32>,
    /// What the runner wrote to fd 2 (diagnostics; user writes to fd 1 land here too).
    pub diagnostics: String,
    /// The workspace, kept alive so tests can look at written files.
    pub workspace: tempfile::TempDir,
}

impl Outcome {
    pub fn status(&self) -> &str {
        self.frame["status"].as_str().unwrap_or("<none>")
    }
    /// The result parsed from its JSON text.
    pub fn value(&self) -> Value {
        match self.frame["result"].as_str() {
            Some(text) => serde_json::from_str(text).expect("result is JSON text"),
            None => Value::Null,
        }
    }
    pub fn error_type(&self) -> &str {
        self.frame["error"]["type"].as_str().unwrap_or("<none>")
    }
    pub fn message(&self) -> &str {
        self.frame["error"]["message"].as_str().unwrap_or("")
    }
    pub fn traceback(&self) -> &str {
        self.frame["error"]["traceback"].as_str().unwrap_or("")
    }
    pub fn stdout(&self) -> &str {
        self.frame["stdout"].as_str().unwrap_or("")
    }
    pub fn stderr(&self) -> &str {
        self.frame["stderr"].as_str().unwrap_or("")
    }
}

pub fn write_frame(w: &mut impl Write, value: &Value) {
    let body = serde_json::to_vec(value).expect("encode frame");
    let len = u32::try_from(body.len()).expect("frame fits u32");
    w.write_all(&len.to_be_bytes()).expect("write frame header");
    w.write_all(&body).expect("write frame body");
    w.flush().expect("flush frame");
}

/// Reads one frame; `None` on a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> Option<Value> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut head[got..]).expect("read frame header");
        if n == 0 {
            assert_eq!(got, 0, "end of stream inside a frame header");
            return None;
        }
        got += n;
    }
    let len = u32::from_be_bytes(head) as usize;
    assert!(len <= 16 * 1024 * 1024, "frame over 16 MiB");
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).expect("read frame body");
    let text = std::str::from_utf8(&body).expect("frame is UTF-8");
    Some(serde_json::from_str(text).expect("frame is JSON"))
}

impl Runner {
    /// Starts the runner for `language` in a fresh workspace and waits for `ready`.
    pub fn start(language: Language) -> Runner {
        Self::start_with_env(language, &[])
    }

    pub fn start_with_env(language: Language, env: &[(&str, &str)]) -> Runner {
        Self::spawn(language, env, false)
    }

    /// Starts the runner the way a launcher that moves the protocol itself would: a shell
    /// puts requests on fd 3, responses on fd 4, /dev/null on 0 and fd 2 on 1, then execs
    /// the runner with `PADDOCK_PROTOCOL_FDS=3,4`.
    pub fn start_prearranged(language: Language) -> Runner {
        Self::spawn(language, &[("PADDOCK_PROTOCOL_FDS", "3,4")], true)
    }

    fn spawn(language: Language, env: &[(&str, &str)], prearranged: bool) -> Runner {
        let runner_dir = tempfile::tempdir().expect("runner dir");
        runners::materialize(runner_dir.path()).expect("materialize runners");
        let workspace = tempfile::tempdir().expect("workspace");
        let dir = runner_dir
            .path()
            .to_str()
            .expect("utf-8 temp path")
            .to_owned();
        let argv = runners::runner_argv(language, &dir, Some(256));
        let mut cmd = if prearranged {
            let mut c = Command::new("/bin/sh");
            c.args(["-c", "exec 3<&0 4>&1 0</dev/null 1>&2; exec \"$@\"", "sh"])
                .args(&argv);
            c
        } else {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        };
        cmd.current_dir(workspace.path())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", workspace.path())
            .env("LANG", "C.UTF-8")
            .env("PADDOCK_NETWORK", "none")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn runner");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = child.stdout.take().expect("stdout");
        let mut stderr_pipe = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr_pipe.read_to_end(&mut buf);
            buf
        });
        let (tx, rx) = mpsc::channel::<()>();
        let pid = child.id() as libc::pid_t;
        std::thread::spawn(move || {
            // Dropping the sender (runner finished) ends the wait early.
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(WATCHDOG) {
                // SAFETY: kill(2) on the pid of a child this harness started and has not reaped.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        let ready = read_frame(&mut stdout).expect("runner sent ready");
        Runner {
            child,
            stdin: Some(stdin),
            stdout,
            stderr: Some(stderr),
            watchdog: Some(tx),
            ready,
            workspace,
            _runner_dir: runner_dir,
        }
    }

    /// Sends one `execute` frame and collects the result, exit status and diagnostics.
    pub fn execute(self, code: &str, input: Value, files: Value) -> Outcome {
        self.execute_with_calls(code, input, files, |call| {
            panic!("unexpected call frame {call}")
        })
    }

    /// Like [`Runner::execute`], answering each `call` frame with the `call_result`
    /// built by `answer` (the harness adds `type` and `id`).
    pub fn execute_with_calls(
        mut self,
        code: &str,
        input: Value,
        files: Value,
        mut answer: impl FnMut(&Value) -> Value,
    ) -> Outcome {
        let frame = json!({
            "type": "execute",
            "execution_id": "test-1",
            "code": code,
            "input": input,
            "timeout_ms": 10_000,
            "files": files,
            "context": {"execution_id": "test-1", "namespace": "tests"},
        });
        let mut stdin = self.stdin.take().expect("stdin");
        let started = Instant::now();
        write_frame(&mut stdin, &frame);
        let result = loop {
            let frame = read_frame(&mut self.stdout).expect("runner sent a result frame");
            if frame["type"] != "call" {
                break frame;
            }
            let mut reply = answer(&frame);
            reply["type"] = json!("call_result");
            reply["id"] = frame["id"].clone();
            write_frame(&mut stdin, &reply);
        };
        let round_trip = started.elapsed();
        assert_eq!(result["type"], "result", "{result}");
        assert!(
            read_frame(&mut self.stdout).is_none(),
            "exactly one frame after execute"
        );
        drop(stdin);
        let status = self.child.wait().expect("wait runner");
        drop(self.watchdog.take());
        let diagnostics = self
            .stderr
            .take()
            .map(|h| String::from_utf8_lossy(&h.join().unwrap_or_default()).into_owned())
            .unwrap_or_default();
        Outcome {
            frame: result,
            round_trip,
            exit_code: status.code(),
            diagnostics,
            workspace: self.workspace,
        }
    }

    /// Closes the request pipe without sending anything; returns the exit code and whether
    /// any frame followed `ready`.
    pub fn close(mut self) -> (Option<i32>, bool) {
        drop(self.stdin.take());
        let extra = read_frame(&mut self.stdout).is_some();
        let status = self.child.wait().expect("wait runner");
        drop(self.watchdog.take());
        (status.code(), extra)
    }
}

/// Runs Python `code` with `input` and no files.
pub fn py(code: &str) -> Outcome {
    Runner::start(Language::Python).execute(code, json!({}), json!({}))
}

pub fn py_with(code: &str, input: Value, files: Value) -> Outcome {
    Runner::start(Language::Python).execute(code, input, files)
}

/// Transforms TypeScript `source` with the worker's transform and runs it in Node.
pub fn ts(source: &str) -> Outcome {
    ts_with(source, json!({}), json!({}))
}

pub fn ts_with(source: &str, input: Value, files: Value) -> Outcome {
    let js = paddock_worker::typescript::transform(source).expect("transform");
    Runner::start(Language::TypeScript).execute(&js, input, files)
}

/// Runs JavaScript `code` in Node as is (no transform).
pub fn js(code: &str) -> Outcome {
    Runner::start(Language::TypeScript).execute(code, json!({}), json!({}))
}
