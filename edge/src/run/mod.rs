//! The run endpoint's tools (issue 4): code mode (`execute`) and tool mode (one tool per
//! function), checked before any worker is used, dispatched through a [`RunBackend`],
//! rendered in the one result shape, and recorded (see [`records`]).
//!
//! Flow of a call: name → mode-specific argument checks (typed errors, no dispatch) →
//! [`ExecutionRequest`] with a fresh `ex_…` id, the namespace, the tier as profile and
//! the committed state sequence → backend → [`RunOutcome`] (structuredContent,
//! `content[0].text`, `isError`) → an [`ExecutionRecord`] queued for the writer.

pub mod backend;
pub mod code;
pub mod records;
pub mod toolmode;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use paddock_shared::ErrorCode;
use paddock_shared::exec::{ExecutionRequest, ExecutionResult};
use paddock_shared::snippet::tool_call_code;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::app::{ApiError, App, Principal, ToolDef, new_id};
use crate::route::RunMode;
use crate::store::executions::ExecutionRecord;
pub use backend::{NoBackend, RunBackend};
pub use records::RecordWriter;

/// Settings of the run tools, every one defaulted by a named constant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    /// Execution records kept per namespace (older ones are trimmed).
    pub retention_per_namespace: usize,
    /// Capacity of the record writer's queue.
    pub record_queue: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            retention_per_namespace: records::DEFAULT_RETENTION_PER_NAMESPACE,
            record_queue: records::DEFAULT_RECORD_QUEUE,
        }
    }
}

/// A finished run-tool call as MCP renders it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// `structuredContent`: [`ExecutionResult::to_structured`].
    pub structured: Value,
    /// `content[0].text`: [`ExecutionResult::to_text`].
    pub text: String,
    /// True unless the execution completed.
    pub is_error: bool,
}

impl RunOutcome {
    /// The rendering of one result.
    pub fn of(r: &ExecutionResult) -> RunOutcome {
        RunOutcome {
            structured: r.to_structured(),
            text: r.to_text(),
            is_error: r.is_error(),
        }
    }
}

/// The run endpoint's tools over a backend. Cheap to clone.
#[derive(Clone)]
pub struct RunTools {
    app: App,
    backend: Arc<dyn RunBackend>,
    records: RecordWriter,
}

/// What is being run, for the record.
enum What {
    Code { sha256: String },
    Function { service: String, function: String },
}

impl RunTools {
    /// Run tools over `backend`, recording into `app`'s store.
    ///
    /// # Errors
    /// The I/O error when the record writer thread cannot start.
    pub fn new(
        app: App,
        backend: Arc<dyn RunBackend>,
        cfg: &RunConfig,
    ) -> std::io::Result<RunTools> {
        let records = RecordWriter::start(
            app.store().clone(),
            cfg.retention_per_namespace,
            cfg.record_queue,
        )?;
        Ok(RunTools {
            app,
            backend,
            records,
        })
    }

    /// The record writer (tests wait on it with [`RecordWriter::sync`]).
    pub fn records(&self) -> &RecordWriter {
        &self.records
    }

    /// The tools listed for `ns` in `mode`.
    ///
    /// # Errors
    /// `INTERNAL` on store failure (tool mode).
    pub fn tools(
        &self,
        _p: &Principal,
        ns: &str,
        mode: &RunMode,
    ) -> Result<Vec<ToolDef>, ApiError> {
        if !mode.tools {
            return Ok(vec![code::tool()]);
        }
        Ok(toolmode::list(self.app.store(), ns, &mode.tags)?
            .iter()
            .map(toolmode::FnTool::def)
            .collect())
    }

    /// Runs one tool; `cancel` (MCP `notifications/cancelled`) reaches the slot.
    ///
    /// # Errors
    /// Typed errors: argument checks (`NO_CODE_PROVIDED`, `INPUT_TOO_LARGE`,
    /// `UNSUPPORTED_LANGUAGE`, `INVALID_ARGUMENT`, `INVALID_TOOL_NAME`,
    /// `INVALID_TOOL_ARGUMENTS`, `UNKNOWN_TOOL`) and dispatch (`NO_WORKERS`, `WORKER_LOST`,
    /// `STATE_NOT_READY` …). An execution that ran but did not complete is `Ok` with
    /// `is_error`.
    pub async fn call(
        &self,
        p: &Principal,
        ns: &str,
        mode: &RunMode,
        tool: &str,
        args: Map<String, Value>,
        cancel: CancellationToken,
    ) -> Result<RunOutcome, ApiError> {
        let execution_id = new_id("ex");
        let profile = p.tier.as_str();
        let (req, what) = if let Some(forced) = code::call_name(tool) {
            let call = code::parse(forced, &args)?;
            let sha256 = hex::encode(Sha256::digest(call.code.as_bytes()));
            (
                call.into_request(execution_id, ns, profile),
                What::Code { sha256 },
            )
        } else if mode.tools {
            let t = toolmode::resolve(self.app.store(), ns, &mode.tags, tool)?;
            toolmode::validate(&t, &args)?;
            self.app.record_call(ns, &t.service, &t.function);
            let req = ExecutionRequest {
                execution_id,
                namespace: ns.to_owned(),
                profile: profile.to_owned(),
                language: t.language,
                code: tool_call_code(t.language, &t.service, &t.function),
                input_json: Value::Object(args).to_string(),
                timeout_ms: None,
            };
            (
                req,
                What::Function {
                    service: t.service,
                    function: t.function,
                },
            )
        } else {
            return Err(ApiError::new(
                ErrorCode::UnknownTool,
                format!(
                    "Unknown tool: {tool} — the run endpoint lists `execute`; for one tool per function connect with ?mode=tools"
                ),
            ));
        };
        self.dispatch(req, what, cancel).await
    }

    async fn dispatch(
        &self,
        req: ExecutionRequest,
        what: What,
        cancel: CancellationToken,
    ) -> Result<RunOutcome, ApiError> {
        let started = Instant::now();
        let started_at_us = now_us();
        let mut rec = ExecutionRecord {
            namespace: req.namespace.clone(),
            execution_id: req.execution_id.clone(),
            function: None,
            code_sha256: None,
            language: req.language.as_str().to_owned(),
            status: String::new(),
            error_type: None,
            duration_us: 0,
            cpu_ms: 0,
            peak_memory_bytes: 0,
            calls: Vec::new(),
            started_at_us,
            worker: None,
            call_details: Vec::new(),
        };
        match what {
            What::Code { sha256 } => rec.code_sha256 = Some(sha256),
            What::Function { service, function } => {
                rec.function = Some(format!("{service}.{function}"));
            }
        }
        let min_seq = self.app.committed_seq();
        // One id follows the execution: this span, the worker's span and its slot logs.
        let span = tracing::info_span!("execution", execution_id = %req.execution_id,
            namespace = %req.namespace, tier = %req.profile, language = req.language.as_str());
        let profile = req.profile.clone();
        let (worker, out) = tracing::Instrument::instrument(
            self.backend.execute_traced(req, min_seq, cancel),
            span.clone(),
        )
        .await;
        rec.worker = worker;
        let took = started.elapsed();
        crate::metrics::METRICS.record_execution(&profile, &out, took);
        span.in_scope(|| log_outcome(&out, took));
        rec.duration_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        match &out {
            Ok(r) => {
                rec.status = r.status.as_str().to_owned();
                rec.error_type = r.error.as_ref().map(|e| e.error_type.clone());
                rec.cpu_ms = r.usage.cpu_ms;
                rec.peak_memory_bytes = r.usage.peak_memory_bytes;
                rec.calls = r.calls.iter().map(|c| c.name.clone()).collect();
                rec.call_details = r.calls.clone();
            }
            Err(e) => {
                rec.status = "error".to_owned();
                rec.error_type = Some(e.code.as_str().to_owned());
            }
        }
        self.records.record(rec);
        out.map(|r| RunOutcome::of(&r))
    }
}

/// One line per execution (in its span, so it carries `execution_id`).
fn log_outcome(out: &Result<ExecutionResult, ApiError>, took: std::time::Duration) {
    let total_ms = took.as_secs_f64() * 1e3;
    match out {
        Ok(r) => tracing::info!(
            status = r.status.as_str(),
            total_ms,
            slot_ms = r.duration_us as f64 / 1e3,
            "execution finished"
        ),
        Err(e) => tracing::info!(
            status = "error",
            code = e.code.as_str(),
            total_ms,
            "execution failed before a result"
        ),
    }
}

/// Unix time in µs, strictly increasing within the process, so records of one namespace
/// sort in start order even when two start in the same microsecond.
fn now_us() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let prev = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last.saturating_add(1)))
        })
        .unwrap_or(0);
    now.max(prev.saturating_add(1))
}

/// The MCP seam: lists and calls through [`RunTools`]. The MCP handler calls
/// `call_outcome` (cancel token, `isError`); the plain `call` (no `isError` for a
/// result) turns an execution that did not complete into a typed error.
#[async_trait]
impl crate::mcp::RunTools for RunTools {
    async fn list(
        &self,
        p: &Principal,
        ns: &str,
        mode: &RunMode,
    ) -> Result<Vec<ToolDef>, ApiError> {
        self.tools(p, ns, mode)
    }

    async fn call(
        &self,
        p: &Principal,
        ns: &str,
        mode: &RunMode,
        tool: &str,
        args: Map<String, Value>,
    ) -> Result<Value, ApiError> {
        let out = RunTools::call(self, p, ns, mode, tool, args, CancellationToken::new()).await?;
        if out.is_error {
            return Err(ApiError {
                details: Some(out.structured),
                ..ApiError::new(ErrorCode::SandboxFailure, out.text)
            });
        }
        Ok(out.structured)
    }

    async fn call_outcome(
        &self,
        p: &Principal,
        ns: &str,
        mode: &RunMode,
        tool: &str,
        args: Map<String, Value>,
        cancel: CancellationToken,
    ) -> Result<RunOutcome, ApiError> {
        RunTools::call(self, p, ns, mode, tool, args, cancel).await
    }
}
