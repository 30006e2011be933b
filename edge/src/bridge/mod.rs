//! The bridge: calls from sandboxed code to the tools of a namespace's remote MCP servers.
//!
//! A call travels slot → worker (slot pipe) → edge (the worker link, `BridgeCall`); the
//! edge checks the execution's bridge key ([`keys`]) and the server's call budget, calls
//! the tool with [`App::call_remote_tool`] (exposure, rules, settings, credentials) and
//! answers `BridgeResult`. Every call that passed the key check is recorded in the
//! execution's `calls` (name `mcp__{server}__{tool}`, status, latency, bytes).
//! docs/bridge.md has the whole path and its security properties.

pub mod keys;

use std::time::{Duration, Instant};

use paddock_shared::ErrorCode;
use paddock_shared::exec::CallRecord;
use paddock_shared::protocol::{
    BridgeCall, BridgeOutcome, BridgeReply, MAX_BRIDGE_VALUE_BYTES, clip_message,
};
use serde_json::{Map, Value};

use crate::app::App;
pub use keys::{Allowed, BridgeKeys, Denied, KeyGuard};

/// Wall timeouts of the seed tiers (`sandbox-profiles/tiers.toml`); a key lives for the
/// execution's timeout plus [`keys::KEY_GRACE`]. Unknown profiles get the longest.
pub fn tier_timeout(profile: &str) -> Duration {
    Duration::from_secs(match profile {
        "free" => 10,
        "builder" => 30,
        "pro" => 90,
        _ => 300,
    })
}

/// How long the key of an execution with `profile` and `timeout_ms` lives.
pub fn key_ttl(profile: &str, timeout_ms: Option<u64>) -> Duration {
    let tier = tier_timeout(profile);
    let t = timeout_ms.map_or(tier, |ms| Duration::from_millis(ms).min(tier));
    t + keys::KEY_GRACE
}

/// The name a call is recorded under: `mcp__{server}__{tool}` with every character
/// outside `[A-Za-z0-9_]` turned into `_` (the wrapper's name in the package).
pub fn call_name(server: &str, tool: &str) -> String {
    paddock_shared::names::remote_tool_ident(server, tool)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn err(code: ErrorCode, message: &str, started: Instant) -> BridgeOutcome {
    BridgeOutcome::Err {
        code,
        message: clip_message(message),
        latency_us: micros(started.elapsed()),
    }
}

/// Serves one `BridgeCall` that arrived on worker connection `conn_id`: key and budget
/// check, the remote call (bounded by the key's remaining time), the record.
pub async fn serve(app: &App, keys: &BridgeKeys, conn_id: u64, call: &BridgeCall) -> BridgeOutcome {
    let started = Instant::now();
    let name = call_name(&call.server, &call.tool);
    if let Err(e) = call.check() {
        return err(ErrorCode::InvalidArgument, &e.to_string(), started);
    }
    // The namespace comes from the key, never from the worker. The budget is fixed at
    // the server's first call: its setting is read from the store only then.
    let (ns, known) = match keys.lookup(&call.bridge_key, &call.execution_id, conn_id, &call.server)
    {
        Ok(k) => k,
        Err(d) => {
            tracing::warn!(execution_id = %call.execution_id, conn_id, reason = %d.message, "bridge call refused");
            return err(d.code, &d.message, started);
        }
    };
    let limit = if known {
        0
    } else {
        budget_of(app, &ns, &call.server)
    };
    let allowed = match keys.authorize(
        &call.bridge_key,
        &call.execution_id,
        conn_id,
        &call.server,
        &name,
        limit,
    ) {
        Ok(a) => a,
        Err(d) => {
            if d.code == ErrorCode::BridgeKeyInvalid {
                tracing::warn!(execution_id = %call.execution_id, conn_id, reason = %d.message, "bridge call refused");
            }
            return err(d.code, &d.message, started);
        }
    };
    let outcome = match serde_json::from_str::<Value>(&call.input_json) {
        Ok(Value::Object(args)) => remote(app, &allowed, call, &name, args, started).await,
        Ok(_) | Err(_) => err(
            ErrorCode::InvalidArgument,
            "the arguments of a remote tool call must be a JSON object",
            started,
        ),
    };
    let (status, bytes, latency) = match &outcome {
        BridgeOutcome::Ok(r) if r.is_error => (
            ErrorCode::McpToolError.as_str().to_owned(),
            r.bytes,
            r.latency_us,
        ),
        BridgeOutcome::Ok(r) => ("ok".to_owned(), r.bytes, r.latency_us),
        BridgeOutcome::Err {
            code, latency_us, ..
        } => (code.as_str().to_owned(), 0, *latency_us),
    };
    tracing::debug!(execution_id = %call.execution_id, call = %name, status, latency_us = latency, bytes, "bridge call");
    keys.record(
        &call.bridge_key,
        CallRecord {
            name,
            status,
            duration_us: latency,
            bytes,
        },
    );
    outcome
}

/// The remote call itself, bounded by the key's remaining time.
async fn remote(
    app: &App,
    allowed: &Allowed,
    call: &BridgeCall,
    name: &str,
    args: Map<String, Value>,
    started: Instant,
) -> BridgeOutcome {
    let fut = app.call_remote_tool(&allowed.namespace, &call.server, &call.tool, args);
    match tokio::time::timeout(allowed.remaining, fut).await {
        Err(_) => err(
            ErrorCode::McpServerTimeout,
            &format!("{name} did not answer before the execution's deadline"),
            started,
        ),
        Ok(Err(e)) => err(e.code, &e.message, started),
        Ok(Ok(out)) => {
            let value_json = out.value.to_string();
            if value_json.len() > MAX_BRIDGE_VALUE_BYTES {
                return err(
                    ErrorCode::McpToolError,
                    &format!(
                        "{name} answered {} bytes, over the bridge's {} MiB limit; lower the server's response_limit_bytes",
                        value_json.len(),
                        MAX_BRIDGE_VALUE_BYTES / (1024 * 1024)
                    ),
                    started,
                );
            }
            BridgeOutcome::Ok(BridgeReply {
                value_json,
                is_error: out.is_error,
                truncated: out.truncated,
                bytes: out.bytes,
                latency_us: micros(started.elapsed()),
            })
        }
    }
}

/// The server's `max_calls_per_execution` from the edge's store; the default when the
/// server is unknown (the call then fails with `MCP_SERVER_NOT_FOUND` anyway).
fn budget_of(app: &App, ns: &str, server: &str) -> u32 {
    app.store()
        .mcp_server(ns, server)
        .ok()
        .flatten()
        .map_or(crate::remote::model::DEFAULT_MAX_CALLS_PER_EXECUTION, |c| {
            c.settings.max_calls_per_execution
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ttls() {
        assert_eq!(call_name("my-srv", "get-sum"), "mcp__my_srv__get_sum");
        assert_eq!(
            key_ttl("free", None),
            Duration::from_secs(10) + keys::KEY_GRACE
        );
        assert_eq!(
            key_ttl("free", Some(60_000)),
            Duration::from_secs(10) + keys::KEY_GRACE
        );
        assert_eq!(
            key_ttl("pro", Some(1_000)),
            Duration::from_secs(1) + keys::KEY_GRACE
        );
        assert_eq!(tier_timeout("custom"), Duration::from_secs(300));
    }
}
