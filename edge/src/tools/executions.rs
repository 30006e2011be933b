//! list_executions and describe_execution: the execution records of the current
//! namespace (written by [`crate::run`]), readable only by the namespace's owner.

use paddock_shared::ErrorCode;
use serde_json::{Map, Value, json};

use super::args::Args;
use super::{Ctx, store_error};
use crate::app::ApiError;
use crate::store::executions::{ExecutionFilter, ExecutionRecord};

/// Largest `limit` of list_executions.
pub const MAX_LIST_LIMIT: usize = 100;
/// Default `limit` of list_executions.
pub const DEFAULT_LIST_LIMIT: usize = 20;
/// Statuses a record can have.
pub const STATUSES: [&str; 5] = ["completed", "failed", "timeout", "canceled", "error"];

fn render(r: &ExecutionRecord) -> Value {
    json!({
        "execution_id": r.execution_id,
        "namespace": r.namespace,
        "mode": if r.function.is_some() { "tool" } else { "code" },
        "function": r.function,
        "code_sha256": r.code_sha256,
        "language": r.language,
        "status": r.status,
        "error_type": r.error_type,
        "duration_ms": (r.duration_us as f64) / 1000.0,
        "usage": { "cpu_ms": r.cpu_ms, "peak_memory_bytes": r.peak_memory_bytes },
        "calls": r.calls,
        "call_details": r.call_details.iter().map(|c| json!({
            "name": c.name, "status": c.status,
            "duration_ms": (c.duration_us as f64) / 1000.0, "bytes": c.bytes,
        })).collect::<Vec<_>>(),
        "worker": r.worker,
        "started_at": r.started_at_us / 1_000_000,
        "started_at_ms": r.started_at_us / 1_000,
    })
}

/// list_executions(status?, function?, since?, limit?).
///
/// # Errors
/// `INVALID_ARGUMENT`, `NAMESPACE_NOT_FOUND`, `NAMESPACE_DENIED`; store failures.
pub fn list(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new(
        "list_executions",
        args,
        &["status", "function", "since", "limit"],
    )?;
    let status = a.opt_str("status")?;
    if let Some(s) = &status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::new(
            ErrorCode::InvalidArgument,
            format!(
                "list_executions: status {s:?} is not one of {}",
                STATUSES.join(", ")
            ),
        ));
    }
    let function = a.opt_str("function")?;
    let since = a.opt_u32("since")?;
    let limit = a
        .opt_u32("limit")?
        .map_or(DEFAULT_LIST_LIMIT, |n| n as usize);
    if limit > MAX_LIST_LIMIT {
        return Err(ApiError::new(
            ErrorCode::InvalidArgument,
            format!("list_executions: limit {limit} is over {MAX_LIST_LIMIT}"),
        ));
    }
    let ns = ctx.current_namespace()?;
    let filter = ExecutionFilter {
        status,
        function,
        since_us: since.map(|s| u64::from(s) * 1_000_000),
        limit,
    };
    let recs = ctx
        .app
        .store()
        .list_executions(&ns.name, &filter)
        .map_err(store_error)?;
    Ok(json!({
        "namespace": ns.name,
        "count": recs.len(),
        "executions": recs.iter().map(render).collect::<Vec<_>>(),
    }))
}

/// describe_execution(execution_id).
///
/// # Errors
/// `EXECUTION_NOT_FOUND`, `NAMESPACE_NOT_FOUND`, `NAMESPACE_DENIED`; store failures.
pub fn describe(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new("describe_execution", args, &["execution_id"])?;
    let id = a.req_str("execution_id")?;
    let ns = ctx.current_namespace()?;
    match ctx
        .app
        .store()
        .execution(&ns.name, &id)
        .map_err(store_error)?
    {
        Some(r) => Ok(render(&r)),
        None => Err(ApiError::new(
            ErrorCode::ExecutionNotFound,
            format!(
                "Execution '{id}' not found in namespace '{}' — see list_executions (records are kept for the newest executions only)",
                ns.name
            ),
        )),
    }
}
