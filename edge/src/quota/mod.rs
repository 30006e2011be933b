//! Limits at the edge (issue 5): monthly execution quota, per-minute execution and
//! management rates, concurrent executions — a pure, lock-light core ([`Limiter`]) and a
//! sled adapter that keeps the monthly counters durable ([`durable::UsageCounters`]).
//!
//! - [`config`]: the `[limits]` table and its defaults (named constants);
//! - [`month`]: calendar months in UTC (the quota window);
//! - [`gcra`]: the lock-free token bucket;
//! - [`limiter`]: [`Limiter::admit`] → [`Admission`] guard | [`Rejection`];
//! - [`rejection`]: the 429 data and the [`UsageReport`];
//! - [`durable`]: counters in sled, loaded at start, flushed every interval and at shutdown;
//! - [`charge`]: what an MCP request body costs (executions, management calls, free).
//!
//! Bounds: within one edge process admission never lets an account exceed its monthly
//! limit (the reservation is one compare-and-swap bounded by the limit). A kill -9 loses
//! the executions admitted since the last flush, at most `flush_interval × admission rate`
//! (1 s by default): an under-count, never a double count, because flushes write absolute
//! values from memory, which started from the values on disk. One sled database belongs
//! to one edge process (sled locks it), so there is no cross-process overshoot.
//!
//! # Wiring (request path)
//! 1. Start-up (`App::open`): `let table = cfg.limits.table()?` (report the problems with
//!    the config's others), `let limiter = Arc::new(Limiter::new(table))`,
//!    `UsageCounters::open_in(&db, limiter, cfg.limits.flush_interval(), now_ms())` on the
//!    store's `sled::Db` (tree [`USAGE_TREE`]); keep it in `App`. Shutdown (`App::shutdown`):
//!    `counters.shutdown()` before the store's flush.
//! 2. Every MCP request, in `server::http::mcp` right after `authenticate` + `authorize` and
//!    before the body goes to rmcp: `match charge(endpoint, &body)`. For
//!    `Executions(n)`: call `limiter.admit(&principal.account_id, principal.tier, now_ms())`
//!    n times, keeping the [`Admission`] guards alive until the reply body is collected; a
//!    `Rejection` returns `Err(rejection.into())`, which `error_reply` renders as HTTP 429,
//!    the `{code,message,usage,limit,tier}` body and `Retry-After`. For `Management(n)`:
//!    `limiter.admit_management(..)` n times, same error path. `Free`: nothing.
//! 3. One `execute`/`execute_python`/`execute_typescript` or one tool-mode call is one
//!    execution, counted at admission (failed, timed-out and canceled runs count).
//! 4. `get_usage` (create tool, listed with [`get_usage_tool`]) and `GET /v1/usage`:
//!    `limiter.usage(&p.account_id, p.tier, now_ms()).to_json()`.

pub mod charge;
pub mod config;
pub mod durable;
pub mod gcra;
pub mod limiter;
pub mod month;
pub mod rejection;

pub use charge::{Charge, charge, get_usage_tool, is_batch, is_mutating_create_tool};
pub use config::{LimitTable, LimitsConfig, TierLimits};
pub use durable::{USAGE_TREE, UsageCounters};
pub use limiter::{Admission, Held, Limiter};
pub use month::Month;
pub use rejection::{LimitKind, Rejection, UsageReport};

/// Now, unix milliseconds (the clock the adapters pass to the pure core).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod limiter_tests;
