//! One execution: the request a worker runs and the one result shape (DESIGN.md
//! "Execution result") shared by code mode, tool mode and `paddock-worker exec`.
//!
//! JSON payloads (input, result) travel as JSON *text* so that the types stay
//! encodable by non-self-describing codecs (bincode); [`ExecutionResult::to_structured`]
//! renders the camelCase `structuredContent` object users see.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::Language;

/// Largest accepted source code, in bytes (checked before a slot is used).
pub const MAX_CODE_BYTES: usize = 100 * 1024;
/// Largest serialized result, in bytes.
pub const MAX_RESULT_BYTES: usize = 1024 * 1024;
/// Largest captured stdout, in bytes.
pub const MAX_STDOUT_BYTES: usize = 64 * 1024;
/// Largest captured stderr, in bytes.
pub const MAX_STDERR_BYTES: usize = 64 * 1024;
/// Largest accepted input document (JSON text), in bytes.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;

/// `error.type` values produced by the platform rather than by a user exception.
/// User exceptions keep their own class name (`ValueError`, `TypeError`, …).
pub mod error_type {
    /// Wall-clock timeout of the tier (or the shorter `timeoutMs`) reached.
    pub const TIMEOUT: &str = "TimeoutError";
    /// The cgroup memory limit was hit and the kernel killed the sandbox.
    pub const MEMORY_LIMIT: &str = "MemoryLimitExceeded";
    /// The code exited the interpreter (`sys.exit`, `os._exit`, `process.exit`).
    pub const EXITED: &str = "SandboxExit";
    /// The sandboxed process died from a signal (segfault, abort, kill).
    pub const CRASHED: &str = "SandboxCrash";
    /// The CPU-time limit was hit.
    pub const CPU_LIMIT: &str = "CpuLimitExceeded";
    /// The result could not be serialized to JSON.
    pub const NOT_SERIALIZABLE: &str = "ResultNotSerializable";
    /// The execution was canceled by the caller.
    pub const CANCELED: &str = "Canceled";
    /// Code is empty, too large, or cannot be compiled/transformed.
    pub const INVALID_CODE: &str = "InvalidCode";
    /// The sandbox failed for a reason outside the user's code.
    pub const SANDBOX_FAILURE: &str = "SandboxFailure";
    /// The result was over the 1 MiB cap.
    pub const RESULT_TOO_LARGE: &str = "ResultTooLarge";
    /// The pids limit stopped a fork or thread.
    pub const PIDS_LIMIT: &str = "PidsLimitExceeded";
}

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecStatus {
    Completed,
    Failed,
    Timeout,
    Canceled,
}

impl ExecStatus {
    /// `completed`, `failed`, `timeout` or `canceled`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecStatus::Completed => "completed",
            ExecStatus::Failed => "failed",
            ExecStatus::Timeout => "timeout",
            ExecStatus::Canceled => "canceled",
        }
    }
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRequest {
    /// Unique id, chosen by the caller (the edge), echoed in the result and the logs.
    pub execution_id: String,
    /// Namespace the execution belongs to (empty for operator runs without the edge).
    pub namespace: String,
    /// Sandbox profile name (the account tier: free, builder, pro, enterprise).
    pub profile: String,
    /// Language of `code`.
    pub language: Language,
    /// Source code.
    pub code: String,
    /// The `input_data` document as JSON text (`{}` when none was given).
    pub input_json: String,
    /// Requested wall timeout; may shorten, never lengthen, the profile's timeout.
    pub timeout_ms: Option<u64>,
}

/// A typed error inside an execution result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecError {
    /// Exception class (`ValueError`) or one of [`error_type`].
    pub error_type: String,
    /// Human-readable message that says what happened and what to do.
    pub message: String,
    /// Traceback, when the language produced one.
    pub traceback: Option<String>,
}

/// Resource usage of one execution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// CPU time (user + system) consumed, in milliseconds.
    pub cpu_ms: u64,
    /// Peak memory of the sandbox, in bytes.
    pub peak_memory_bytes: u64,
}

/// Which outputs were cut at their cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truncation {
    pub result: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// One call made by the code (a namespace function or a remote MCP tool).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// `service.function` or `mcp__server__tool`.
    pub name: String,
    /// `ok` or an error type.
    pub status: String,
    /// Latency in microseconds.
    pub duration_us: u64,
    /// Response size in bytes.
    pub bytes: u64,
}

/// The one result shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionResult {
    pub execution_id: String,
    pub status: ExecStatus,
    /// The result as JSON text; `None` renders as `null`.
    pub result_json: Option<String>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<ExecError>,
    /// Wall time from slot hand-over to result, in microseconds.
    pub duration_us: u64,
    pub usage: Usage,
    pub calls: Vec<CallRecord>,
    pub truncated: Truncation,
}

impl ExecutionResult {
    /// A result that failed before or outside user code (no output).
    pub fn failed(
        execution_id: &str,
        status: ExecStatus,
        error_type: &str,
        message: impl Into<String>,
    ) -> Self {
        ExecutionResult {
            execution_id: execution_id.to_owned(),
            status,
            result_json: None,
            stdout: String::new(),
            stderr: String::new(),
            error: Some(ExecError {
                error_type: error_type.to_owned(),
                message: message.into(),
                traceback: None,
            }),
            duration_us: 0,
            usage: Usage::default(),
            calls: Vec::new(),
            truncated: Truncation::default(),
        }
    }

    /// True unless the execution completed.
    pub fn is_error(&self) -> bool {
        self.status != ExecStatus::Completed
    }

    /// The result value (parsed from its JSON text; `null` when absent or unparsable).
    pub fn result_value(&self) -> Value {
        self.result_json
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null)
    }

    /// The camelCase `structuredContent` object of DESIGN.md.
    pub fn to_structured(&self) -> Value {
        let error = self.error.as_ref().map(|e| {
            let mut v = json!({ "type": e.error_type, "message": e.message });
            if let Some(tb) = &e.traceback {
                v["traceback"] = Value::String(tb.clone());
            }
            v
        });
        json!({
            "executionId": self.execution_id,
            "status": self.status.as_str(),
            "result": self.result_value(),
            "stdout": self.stdout,
            "stderr": self.stderr,
            "error": error,
            "durationMs": (self.duration_us as f64) / 1000.0,
            "usage": { "cpuMs": self.usage.cpu_ms, "peakMemoryBytes": self.usage.peak_memory_bytes },
            "calls": self.calls.iter().map(|c| json!({
                "name": c.name, "status": c.status,
                "durationMs": (c.duration_us as f64) / 1000.0, "bytes": c.bytes,
            })).collect::<Vec<_>>(),
            "truncated": { "result": self.truncated.result, "stdout": self.truncated.stdout, "stderr": self.truncated.stderr },
        })
    }

    /// The compact text rendering for `content[0].text`: the result JSON, then stdout if
    /// any, then the error if any.
    pub fn to_text(&self) -> String {
        let mut out = match &self.result_json {
            Some(t) => t.clone(),
            None => "null".to_owned(),
        };
        if !self.stdout.is_empty() {
            out.push_str("\n--- stdout ---\n");
            out.push_str(&self.stdout);
        }
        if let Some(e) = &self.error {
            out.push_str(&format!(
                "\n--- {} ({}) ---\n{}",
                self.status.as_str(),
                e.error_type,
                e.message
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_shape() {
        let mut r = ExecutionResult::failed(
            "e1",
            ExecStatus::Timeout,
            error_type::TIMEOUT,
            "took too long",
        );
        r.result_json = Some("{\"a\":1}".into());
        let v = r.to_structured();
        assert_eq!(v["executionId"], "e1");
        assert_eq!(v["status"], "timeout");
        assert_eq!(v["result"]["a"], 1);
        assert_eq!(v["error"]["type"], "TimeoutError");
        assert!(r.is_error());
        assert!(r.to_text().contains("took too long"));
    }
}

/// Accounting of one warm pool (one profile × language) on a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    pub profile: String,
    pub language: Language,
    /// Configured number of warm slots to keep.
    pub target: u32,
    /// Slots started and waiting for an execution.
    pub ready: u32,
    /// Slots being started right now.
    pub starting: u32,
    /// Slots started since the worker began.
    pub spawned_total: u64,
    /// Slot start-ups that failed since the worker began.
    pub failed_total: u64,
}

/// A worker's load and pools.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStats {
    /// Executions running now.
    pub in_flight: u32,
    /// Executions finished since the worker began.
    pub executions_total: u64,
    pub pools: Vec<PoolStats>,
}
