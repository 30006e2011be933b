//! How one slot run ended, as an enum ([`Outcome`]) classified from what the worker observed
//! (the runner's `result` frame, its own timeout or cancel, the cgroup counters, nsjail's exit
//! status), and its mapping to the one result shape with re-checked caps.

use std::time::Duration;

use paddock_shared::exec::{
    CallRecord, ExecError, ExecStatus, ExecutionResult, MAX_RESULT_BYTES, MAX_STDERR_BYTES,
    MAX_STDOUT_BYTES, Truncation, Usage, error_type,
};
use serde_json::Value;

use crate::cgroup::Measured;

/// Why the worker stopped reading the slot.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// The runner sent its `result` frame.
    Result(Value),
    /// The runner's response pipe closed without a result.
    Eof,
    /// The wall timeout fired (the worker killed the slot).
    Timeout,
    /// The caller canceled (the worker killed the slot).
    Canceled,
    /// The runner broke the slot protocol (the worker killed the slot).
    Protocol(String),
}

/// Everything observed about one run.
#[derive(Debug, Clone)]
pub struct Observed {
    pub ended: Ended,
    /// nsjail's exit code (128 + n when the runner died of signal n), if it exited.
    pub exit_code: Option<i32>,
    pub measured: Measured,
    /// CPU already used by the slot at hand-over (interpreter start-up), subtracted.
    pub cpu_base_ns: u64,
    /// What the runner wrote to fd 2 (already capped).
    pub fd2: Vec<u8>,
    pub fd2_truncated: bool,
    pub duration: Duration,
    pub timeout_ms: u64,
    pub memory_mb: u64,
    pub pids: u64,
}

/// The classified end of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The runner reported (completed or a user-level failure).
    Reported(Value),
    WallTimeout,
    Canceled,
    OutOfMemory,
    CpuLimit,
    Signaled(i32),
    Exited(i32),
    Protocol(String),
}

/// Classifies what was observed: cancel, timeout and OOM first (they explain a missing or
/// late frame), then the runner's own report, then nsjail's exit status.
pub fn classify(obs: &Observed) -> Outcome {
    match &obs.ended {
        Ended::Canceled => Outcome::Canceled,
        Ended::Timeout => Outcome::WallTimeout,
        Ended::Result(v) => Outcome::Reported(v.clone()),
        _ if obs.measured.oom_kills > 0 => Outcome::OutOfMemory,
        // V8 stops at its heap cap (sized below the cgroup limit) before the kernel OOM-kills.
        _ if contains(&obs.fd2, b"JavaScript heap out of memory") => Outcome::OutOfMemory,
        Ended::Protocol(m) => Outcome::Protocol(m.clone()),
        Ended::Eof => match obs.exit_code {
            Some(c) if c > 128 && c - 128 == libc::SIGXCPU => Outcome::CpuLimit,
            Some(c) if c > 128 => Outcome::Signaled(c - 128),
            Some(c) => Outcome::Exited(c),
            None => Outcome::Signaled(libc::SIGKILL),
        },
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A signal's name for messages.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV (segmentation fault)",
        libc::SIGBUS => "SIGBUS (bus error)",
        libc::SIGABRT => "SIGABRT (abort)",
        libc::SIGILL => "SIGILL (illegal instruction)",
        libc::SIGFPE => "SIGFPE (arithmetic error)",
        libc::SIGKILL => "SIGKILL (killed)",
        libc::SIGTERM => "SIGTERM (terminated)",
        libc::SIGSYS => "SIGSYS (forbidden system call)",
        libc::SIGXFSZ => "SIGXFSZ (file size limit)",
        libc::SIGPIPE => "SIGPIPE (broken pipe)",
        _ => "a signal",
    }
}

/// Cuts `s` to at most `cap` bytes on a character boundary, appending a visible marker.
pub fn cap_text(s: &mut String, cap: usize, what: &str) -> bool {
    if s.len() <= cap {
        return false;
    }
    let marker = format!("\n[... {what} truncated at {} KiB ...]\n", cap / 1024);
    let mut cut = cap.saturating_sub(marker.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push_str(&marker);
    true
}

fn text(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn err(kind: &str, message: String) -> Option<ExecError> {
    Some(ExecError {
        error_type: kind.to_owned(),
        message,
        traceback: None,
    })
}

/// Most call records kept from a runner's `calls` (the package's own cap).
pub const MAX_CALL_RECORDS: usize = 1000;
/// Longest call name kept (longer ones are cut).
const MAX_CALL_NAME: usize = 256;

/// The runner's `calls` (`[{name, status, duration_ms}]`, copied from the functions
/// package's call log) as records; malformed entries are skipped, at most
/// [`MAX_CALL_RECORDS`] kept. Sizes are not known to the package (`bytes` = 0).
pub fn calls(v: &Value) -> Vec<CallRecord> {
    let Some(list) = v.get("calls").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|c| {
            let mut name = c.get("name")?.as_str()?.to_owned();
            let mut status = c.get("status")?.as_str()?.to_owned();
            cut(&mut name);
            cut(&mut status);
            let ms = c.get("duration_ms").and_then(Value::as_f64).unwrap_or(0.0);
            Some(CallRecord {
                name,
                status,
                duration_us: (ms.max(0.0) * 1000.0) as u64,
                bytes: 0,
            })
        })
        .take(MAX_CALL_RECORDS)
        .collect()
}

fn cut(s: &mut String) {
    if s.len() > MAX_CALL_NAME {
        let mut at = MAX_CALL_NAME;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
}

/// Builds the execution result from an observed run.
pub fn build(execution_id: &str, obs: &Observed) -> ExecutionResult {
    let outcome = classify(obs);
    let mut r = ExecutionResult::failed(
        execution_id,
        ExecStatus::Failed,
        error_type::SANDBOX_FAILURE,
        "",
    );
    r.error = None;
    r.duration_us = obs.duration.as_micros() as u64;
    r.usage = Usage {
        cpu_ms: obs.measured.cpu_ns.saturating_sub(obs.cpu_base_ns) / 1_000_000,
        peak_memory_bytes: obs.measured.peak_memory_bytes,
    };
    let mut truncated = Truncation::default();
    match &outcome {
        Outcome::Reported(v) => {
            let completed = v.get("status").and_then(Value::as_str) == Some("completed");
            r.status = if completed {
                ExecStatus::Completed
            } else {
                ExecStatus::Failed
            };
            r.result_json = v.get("result").and_then(Value::as_str).map(str::to_owned);
            r.stdout = text(v, "stdout");
            r.calls = calls(v);
            r.stderr = text(v, "stderr");
            if let Some(t) = v.get("truncated") {
                let flag = |k: &str| t.get(k).and_then(Value::as_bool).unwrap_or(false);
                truncated = Truncation {
                    result: flag("result"),
                    stdout: flag("stdout"),
                    stderr: flag("stderr"),
                };
            }
            r.error = v.get("error").filter(|e| e.is_object()).map(|e| ExecError {
                error_type: e
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or(error_type::SANDBOX_FAILURE)
                    .to_owned(),
                message: e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                traceback: e
                    .get("traceback")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
            if !completed && r.error.is_none() {
                r.error = err(
                    error_type::SANDBOX_FAILURE,
                    "the runner reported a failure without an error".into(),
                );
            }
            if !completed && obs.measured.pids_limit_hits > 0 {
                let original = r
                    .error
                    .as_ref()
                    .map(|e| format!("{}: {}", e.error_type, e.message))
                    .unwrap_or_default();
                if let Some(e) = r.error.as_mut() {
                    e.error_type = error_type::PIDS_LIMIT.to_owned();
                    e.message = format!(
                        "the code tried to run more than {} processes/threads (the tier's pids limit); \
                         use fewer threads ({original})",
                        obs.pids
                    );
                }
            }
            if r.result_json
                .as_ref()
                .is_some_and(|t| t.len() > MAX_RESULT_BYTES)
            {
                r.status = ExecStatus::Failed;
                r.result_json = None;
                truncated.result = true;
                r.error = err(
                    error_type::RESULT_TOO_LARGE,
                    format!(
                        "the result is over {} KiB of JSON; return less data",
                        MAX_RESULT_BYTES / 1024
                    ),
                );
            }
        }
        Outcome::WallTimeout => {
            r.status = ExecStatus::Timeout;
            r.error = err(
                error_type::TIMEOUT,
                format!(
                    "the execution did not finish within {} ms and was stopped; make it faster or split the work",
                    obs.timeout_ms
                ),
            );
        }
        Outcome::Canceled => {
            r.status = ExecStatus::Canceled;
            r.error = err(
                error_type::CANCELED,
                "the execution was canceled by the caller".into(),
            );
        }
        Outcome::OutOfMemory => {
            r.error = err(
                error_type::MEMORY_LIMIT,
                format!(
                    "the sandbox ran out of memory (limit {} MB for this tier) and was killed; process less data at once",
                    obs.memory_mb
                ),
            );
        }
        Outcome::CpuLimit => {
            r.error = err(
                error_type::CPU_LIMIT,
                "the code used up the tier's CPU-time limit and was killed".into(),
            );
        }
        Outcome::Signaled(sig) => {
            r.error = err(
                error_type::CRASHED,
                format!(
                    "the sandboxed process was killed by {} ({sig}) before returning a result",
                    signal_name(*sig)
                ),
            );
        }
        Outcome::Exited(code) => {
            r.error = err(
                error_type::EXITED,
                format!(
                    "the interpreter exited with code {code} before returning a result (sys.exit, os._exit or process.exit)"
                ),
            );
        }
        Outcome::Protocol(m) => {
            r.error = err(
                error_type::SANDBOX_FAILURE,
                format!("the sandbox runner misbehaved and was killed: {m}"),
            );
        }
    }
    if !obs.fd2.is_empty() {
        if !r.stderr.is_empty() && !r.stderr.ends_with('\n') {
            r.stderr.push('\n');
        }
        r.stderr.push_str(&String::from_utf8_lossy(&obs.fd2));
    }
    truncated.stdout |= cap_text(&mut r.stdout, MAX_STDOUT_BYTES, "stdout");
    truncated.stderr |= cap_text(&mut r.stderr, MAX_STDERR_BYTES, "stderr") || obs.fd2_truncated;
    r.truncated = truncated;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obs(ended: Ended) -> Observed {
        Observed {
            ended,
            exit_code: None,
            measured: Measured::default(),
            cpu_base_ns: 0,
            fd2: Vec::new(),
            fd2_truncated: false,
            duration: Duration::from_millis(3),
            timeout_ms: 1500,
            memory_mb: 128,
            pids: 16,
        }
    }

    #[test]
    fn call_log_is_mapped() {
        let v = json!({"type": "result", "status": "completed", "result": "1", "calls": [
            {"name": "tools.hello", "status": "ok", "duration_ms": 1.5},
            {"name": 3, "status": "ok"},
            {"name": "tools.shout", "status": "TypeError", "duration_ms": -1},
        ]});
        let r = build("e", &obs(Ended::Result(v)));
        let got: Vec<(&str, &str, u64, u64)> = r
            .calls
            .iter()
            .map(|c| (c.name.as_str(), c.status.as_str(), c.duration_us, c.bytes))
            .collect();
        assert_eq!(
            got,
            [
                ("tools.hello", "ok", 1500, 0),
                ("tools.shout", "TypeError", 0, 0)
            ]
        );
        assert!(calls(&json!({"calls": "x"})).is_empty());
    }

    #[test]
    fn no_frame_outcomes_are_typed() {
        let mut o = obs(Ended::Eof);
        o.exit_code = Some(139);
        o.fd2 = b"Fatal Python error".to_vec();
        let r = build("e", &o);
        let e = r.error.as_ref().expect("error");
        assert_eq!(
            (r.status, e.error_type.as_str()),
            (ExecStatus::Failed, error_type::CRASHED)
        );
        assert!(e.message.contains("SIGSEGV"), "{}", e.message);
        assert_eq!(r.stderr, "Fatal Python error");

        o.measured.oom_kills = 1;
        o.exit_code = Some(137);
        assert_eq!(classify(&o), Outcome::OutOfMemory);
        assert_eq!(
            build("e", &o).error.expect("e").error_type,
            error_type::MEMORY_LIMIT
        );

        let mut o = obs(Ended::Eof);
        o.exit_code = Some(3);
        assert_eq!(
            build("e", &o).error.expect("e").error_type,
            error_type::EXITED
        );
        let r = build("e", &obs(Ended::Timeout));
        assert_eq!(r.status, ExecStatus::Timeout);
        assert!(r.error.expect("e").message.contains("1500 ms"));
        assert_eq!(
            build("e", &obs(Ended::Canceled)).status,
            ExecStatus::Canceled
        );
    }

    #[test]
    fn reported_result_is_rechecked() {
        let big = format!("\"{}\"", "x".repeat(MAX_RESULT_BYTES + 10));
        let frame = json!({"type": "result", "status": "completed", "result": big, "stdout": "y".repeat(70_000),
                           "stderr": "", "error": null, "truncated": {"result": false, "stdout": false, "stderr": false}});
        let r = build("e", &obs(Ended::Result(frame)));
        assert_eq!(r.status, ExecStatus::Failed);
        assert_eq!(r.error.expect("e").error_type, error_type::RESULT_TOO_LARGE);
        assert!(r.truncated.result && r.truncated.stdout);
        assert!(r.stdout.len() <= MAX_STDOUT_BYTES && r.stdout.contains("truncated"));

        let frame = json!({"type": "result", "status": "failed", "result": null, "stdout": "", "stderr": "",
                           "error": {"type": "RuntimeError", "message": "can't start new thread", "traceback": "tb"}});
        let mut o = obs(Ended::Result(frame));
        o.measured.pids_limit_hits = 2;
        let r = build("e", &o);
        assert_eq!(r.error.expect("e").error_type, error_type::PIDS_LIMIT);
    }

    #[test]
    fn cap_text_respects_char_boundaries() {
        let mut s = "é".repeat(100);
        assert!(cap_text(&mut s, 64, "stdout"));
        assert!(s.len() <= 64 + 40);
        let mut short = "ok".to_owned();
        assert!(!cap_text(&mut short, 64, "stdout"));
    }
}
