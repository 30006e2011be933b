//! `call` frames from sandboxed code: the [`CallHandler`] seam a slot uses to answer them,
//! and [`FunctionCalls`], which runs a namespace function (usually one written in the
//! other language) as a nested execution on the same pools, and forwards calls to remote
//! MCP tools (target `mcp`) to a [`RemoteCaller`] (the edge link, `crate::link::Bridge`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use paddock_shared::exec::{ExecStatus, ExecutionRequest, ExecutionResult, error_type};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::pool::{Nesting, PoolSet};
use crate::package::{CALL_TARGET_FUNCTION, CALL_TARGET_MCP};
use paddock_shared::protocol::{BridgeCall, MAX_BRIDGE_INPUT_BYTES};

/// Deepest nesting of function calls through the worker (the top execution is depth 0).
/// Stops call loops (`a` calls `b` calls `a` …) long before they exhaust the pools.
pub const MAX_CALL_DEPTH: u32 = 3;

/// `error.type` of a call answered without running anything.
pub mod call_error {
    /// The target is not available (e.g. remote MCP tools before issue 6).
    pub const NOT_SUPPORTED: &str = "NotSupported";
    /// The code asked for a function of another namespace.
    pub const NAMESPACE_DENIED: &str = "NamespaceDenied";
    /// Function calls nested deeper than [`super::MAX_CALL_DEPTH`].
    pub const DEPTH_EXCEEDED: &str = "CallDepthExceeded";
    /// The function or version does not exist (any more).
    pub const NOT_FOUND: &str = "FunctionNotFound";
    /// The `args` of the call frame are malformed.
    pub const BAD_CALL: &str = "InvalidCall";
    /// The worker could not run the call.
    pub const FAILED: &str = "CallFailed";
}

/// Where calls to remote MCP tools go: the edge, over the link that dispatched the
/// execution (which holds its bridge key). Answers `value` = `{value, truncated, bytes,
/// latency_ms}`, or a failure whose type is a stable error code (`CALL_BUDGET_EXCEEDED`,
/// `MCP_SERVER_TIMEOUT`, …).
pub trait RemoteCaller: Send + Sync + std::fmt::Debug {
    /// Calls `tool` of `server` for the top-level execution `execution_id`, with the
    /// arguments `input_json` (a JSON object), within `remaining`.
    fn call_remote(
        &self,
        execution_id: &str,
        server: String,
        tool: String,
        input_json: String,
        remaining: Duration,
        cancel: CancellationToken,
    ) -> CallFuture;
}

/// A call that failed: `error: {type, message}` of the `call_result` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFailure {
    pub error_type: String,
    pub message: String,
}

impl CallFailure {
    /// A failure of type `kind`.
    pub fn new(kind: &str, message: impl Into<String>) -> CallFailure {
        CallFailure {
            error_type: kind.to_owned(),
            message: message.into(),
        }
    }
}

/// A `NotSupported` failure.
pub fn not_supported(message: impl Into<String>) -> CallFailure {
    CallFailure::new(call_error::NOT_SUPPORTED, message)
}

/// The `call_result` frame answering call `id`.
pub fn call_reply(id: Value, outcome: Result<Value, CallFailure>) -> Value {
    match outcome {
        Ok(value) => json!({"type": "call_result", "id": id, "ok": true, "value": value}),
        Err(e) => json!({"type": "call_result", "id": id, "ok": false,
            "error": {"type": e.error_type, "message": e.message}}),
    }
}

/// The answer to one call, computed off the slot's read loop.
pub type CallFuture = Pin<Box<dyn Future<Output = Result<Value, CallFailure>> + Send + 'static>>;

/// Answers the `call` frames of one execution.
pub trait CallHandler: Send + Sync {
    /// Makes the call `target(args)`; `remaining` is what is left of the execution's wall
    /// time, `cancel` fires when the execution ends (or is canceled) first.
    fn call(
        &self,
        target: &str,
        args: Value,
        remaining: Duration,
        cancel: CancellationToken,
    ) -> CallFuture;
}

fn ready(outcome: Result<Value, CallFailure>) -> CallFuture {
    Box::pin(std::future::ready(outcome))
}

/// Function calls of one execution at `depth`, run as nested executions in `namespace`
/// with the same `profile` on the same pools.
#[derive(Debug)]
pub(super) struct FunctionCalls {
    pub set: PoolSet,
    pub namespace: String,
    pub profile: String,
    pub execution_id: String,
    /// The top-level execution (the one the edge dispatched, whose bridge key pays for
    /// remote calls made at any depth).
    pub root_execution_id: String,
    pub depth: u32,
    pub seq: AtomicU64,
    /// Calls made inside the nested executions this one started (at any depth), merged
    /// into this execution's `calls` when it ends.
    pub nested: NestedCalls,
}

/// The call records of nested executions, collected for their parent's result.
pub(super) type NestedCalls = Arc<std::sync::Mutex<Vec<paddock_shared::exec::CallRecord>>>;

/// At most this many nested call records are merged into one result (the runners keep
/// at most 1 000 records of their own).
pub(super) const MAX_NESTED_CALLS: usize = 1000;

/// The text `key` of a call's `args`; `what` names the call in the error
/// (`BAD_CALL: the {what} has no `{key}` text`).
fn arg_text(args: &Value, key: &str, what: &str) -> Result<String, CallFailure> {
    args.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            CallFailure::new(
                call_error::BAD_CALL,
                format!("the {what} has no `{key}` text"),
            )
        })
}

/// The `args` of an `mcp` call: `{namespace, server, tool, input}`.
fn parse_remote(args: &Value) -> Result<(String, String, String, String), CallFailure> {
    let text = |k: &str| arg_text(args, k, "remote tool call");
    let input = match args.get("input") {
        None | Some(Value::Null) => json!({}),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => {
            return Err(CallFailure::new(
                call_error::BAD_CALL,
                "the arguments of a remote tool call must be an object",
            ));
        }
    };
    let input_json = input.to_string();
    if input_json.len() > MAX_BRIDGE_INPUT_BYTES {
        return Err(CallFailure::new(
            call_error::BAD_CALL,
            format!(
                "the arguments are {} bytes, over the {} KiB limit of a remote tool call",
                input_json.len(),
                MAX_BRIDGE_INPUT_BYTES / 1024
            ),
        ));
    }
    let (namespace, server, tool) = (text("namespace")?, text("server")?, text("tool")?);
    let probe = BridgeCall {
        execution_id: String::new(),
        bridge_key: String::new(),
        call_id: 0,
        server: server.clone(),
        tool: tool.clone(),
        input_json: String::new(),
    };
    probe
        .check()
        .map_err(|e| CallFailure::new(call_error::BAD_CALL, e.to_string()))?;
    Ok((namespace, server, tool, input_json))
}

impl FunctionCalls {
    fn remote(&self, args: &Value, remaining: Duration, cancel: CancellationToken) -> CallFuture {
        let (namespace, server, tool, input_json) = match parse_remote(args) {
            Ok(c) => c,
            Err(e) => return ready(Err(e)),
        };
        if namespace != self.namespace {
            return ready(Err(CallFailure::new(
                call_error::NAMESPACE_DENIED,
                format!(
                    "code of namespace {:?} cannot call remote tools of namespace {namespace:?}",
                    self.namespace
                ),
            )));
        }
        let Some(remote) = self.set.remote_caller() else {
            return ready(Err(not_supported(
                "remote MCP tools are only available to executions dispatched by an edge \
                 (this worker is not joined to one)",
            )));
        };
        remote.call_remote(
            &self.root_execution_id,
            server,
            tool,
            input_json,
            remaining,
            cancel,
        )
    }
}

/// The `args` of a `function` call.
struct FunctionCall {
    namespace: String,
    service: String,
    function: String,
    version: u32,
    input: Value,
}

fn parse(args: &Value) -> Result<FunctionCall, CallFailure> {
    let text = |k: &str| arg_text(args, k, "function call");
    let version = args
        .get("version")
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| {
            CallFailure::new(
                call_error::BAD_CALL,
                "the function call has no `version` number",
            )
        })?;
    Ok(FunctionCall {
        namespace: text("namespace")?,
        service: text("service")?,
        function: text("function")?,
        version,
        input: match args.get("input") {
            None | Some(Value::Null) => json!({}),
            Some(v) => v.clone(),
        },
    })
}

/// The callee's result as the caller sees it. A callee that failed because one of *its*
/// calls failed (`FunctionCallError: Type: message`) passes the innermost type on, so a
/// depth error stays a depth error all the way up.
fn answer(r: &ExecutionResult) -> Result<Value, CallFailure> {
    if r.status == ExecStatus::Completed {
        return Ok(r.result_value());
    }
    let (mut kind, mut message) = r.error.as_ref().map_or_else(
        || (error_type::SANDBOX_FAILURE.to_owned(), String::new()),
        |e| (e.error_type.clone(), e.message.clone()),
    );
    while kind == "FunctionCallError" {
        let Some((k, m)) = message.split_once(": ") else {
            break;
        };
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            break;
        }
        (kind, message) = (k.to_owned(), m.to_owned());
    }
    Err(CallFailure::new(&kind, message))
}

impl CallHandler for FunctionCalls {
    fn call(
        &self,
        target: &str,
        args: Value,
        remaining: Duration,
        cancel: CancellationToken,
    ) -> CallFuture {
        match target {
            CALL_TARGET_FUNCTION => {}
            CALL_TARGET_MCP => return self.remote(&args, remaining, cancel),
            other => {
                return ready(Err(not_supported(format!(
                    "unknown call target {other:?}; the sandbox can call \"function\" and \"mcp\""
                ))));
            }
        }
        let call = match parse(&args) {
            Ok(c) => c,
            Err(e) => return ready(Err(e)),
        };
        let name = format!("{}.{}", call.service, call.function);
        if call.namespace != self.namespace {
            return ready(Err(CallFailure::new(
                call_error::NAMESPACE_DENIED,
                format!(
                    "code of namespace {:?} cannot call {name} of namespace {:?}",
                    self.namespace, call.namespace
                ),
            )));
        }
        if self.depth >= MAX_CALL_DEPTH {
            return ready(Err(CallFailure::new(
                call_error::DEPTH_EXCEEDED,
                format!(
                    "calling {name} would nest function calls deeper than {MAX_CALL_DEPTH} levels; \
                     functions probably call each other in a loop"
                ),
            )));
        }
        let Some(source) = self.set.namespace_source() else {
            return ready(Err(not_supported(
                "this worker has no namespace source to load functions from",
            )));
        };
        let n = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let execution_id = format!("{}.call{n}", self.execution_id);
        let (set, profile, depth) = (self.set.clone(), self.profile.clone(), self.depth + 1);
        let root = self.root_execution_id.clone();
        let nested = self.nested.clone();
        Box::pin(async move {
            let version = source
                .version(&call.namespace, &call.service, &call.function, call.version)
                .map_err(|e| CallFailure::new(call_error::FAILED, e.to_string()))?
                .ok_or_else(|| {
                    CallFailure::new(
                        call_error::NOT_FOUND,
                        format!(
                            "{name} version {} does not exist in namespace {:?}",
                            call.version, call.namespace
                        ),
                    )
                })?;
            let timeout_ms = remaining.as_millis() as u64;
            if timeout_ms == 0 {
                return Err(CallFailure::new(
                    error_type::TIMEOUT,
                    format!("no time left to call {name}"),
                ));
            }
            let req = ExecutionRequest {
                execution_id,
                namespace: call.namespace.clone(),
                profile,
                language: version.language,
                code: version.code,
                input_json: call.input.to_string(),
                timeout_ms: Some(timeout_ms),
            };
            let context = json!({
                "namespace": call.namespace,
                "service": call.service,
                "function": call.function,
                "version": call.version,
            });
            let r = set
                .run_at(
                    req,
                    cancel,
                    Nesting {
                        depth,
                        context: Some(context),
                        root_execution_id: Some(root),
                    },
                )
                .await;
            if let Ok(mut n) = nested.lock() {
                let room = MAX_NESTED_CALLS.saturating_sub(n.len());
                n.extend(r.calls.iter().take(room).cloned());
            }
            answer(&r)
        })
    }
}

/// A handler for one execution at `nesting`, or `None` when the pools have no source.
pub(super) fn for_execution(
    set: &PoolSet,
    req: &ExecutionRequest,
    nesting: &Nesting,
) -> Option<(Arc<dyn CallHandler>, NestedCalls)> {
    if set.namespace_source().is_none() && set.remote_caller().is_none() {
        return None;
    }
    let nested = NestedCalls::default();
    let handler = Arc::new(FunctionCalls {
        set: set.clone(),
        namespace: req.namespace.clone(),
        profile: req.profile.clone(),
        execution_id: req.execution_id.clone(),
        root_execution_id: nesting
            .root_execution_id
            .clone()
            .unwrap_or_else(|| req.execution_id.clone()),
        depth: nesting.depth,
        seq: AtomicU64::new(0),
        nested: nested.clone(),
    });
    Some((handler, nested))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_failures_keep_the_innermost_type() {
        let mut r = ExecutionResult::failed(
            "e",
            ExecStatus::Failed,
            "FunctionCallError",
            "FunctionCallError: CallDepthExceeded: too deep",
        );
        assert_eq!(
            answer(&r),
            Err(CallFailure::new("CallDepthExceeded", "too deep"))
        );
        r.error = None;
        assert_eq!(
            answer(&r).map_err(|e| e.error_type),
            Err("SandboxFailure".into())
        );
        let mut ok = ExecutionResult::failed("e", ExecStatus::Completed, "x", "");
        ok.result_json = Some("[1]".into());
        assert_eq!(answer(&ok), Ok(json!([1])));
        let reply = call_reply(json!(7), Err(not_supported("no")));
        assert_eq!(reply["error"]["type"], "NotSupported");
        assert_eq!(reply["id"], 7);
    }

    #[test]
    fn remote_call_args_are_checked() {
        let ok = parse_remote(&json!({"namespace": "n", "server": "s", "tool": "t"}));
        assert_eq!(
            ok.ok(),
            Some(("n".into(), "s".into(), "t".into(), "{}".into()))
        );
        let kind = |v: Value| parse_remote(&v).err().map(|e| e.error_type);
        let bad = Some(call_error::BAD_CALL.to_owned());
        assert_eq!(kind(json!({"namespace": "n", "server": "s"})), bad);
        assert_eq!(
            kind(json!({"namespace": "n", "server": "s", "tool": "t", "input": [1]})),
            bad
        );
        assert_eq!(
            kind(json!({"namespace": "n", "server": "", "tool": "t"})),
            bad
        );
        let big = "x".repeat(MAX_BRIDGE_INPUT_BYTES);
        assert_eq!(
            kind(json!({"namespace": "n", "server": "s", "tool": "t", "input": {"a": big}})),
            bad
        );
    }

    #[test]
    fn call_args_are_checked() {
        let e = parse(&json!({"namespace": "n", "service": "s", "function": "f"}))
            .err()
            .map(|e| e.error_type);
        assert_eq!(e.as_deref(), Some(call_error::BAD_CALL));
        let c = parse(&json!({"namespace": "n", "service": "s", "function": "f", "version": 2}))
            .ok()
            .map(|c| (c.version, c.input));
        assert_eq!(c, Some((2, json!({}))));
    }
}
