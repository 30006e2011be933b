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
//! - [`mod@charge`]: what an MCP request body costs (executions, management calls, free).
//!
//! Bounds: within one edge process admission never lets an account exceed its monthly
//! limit (the reservation is one compare-and-swap bounded by the limit). A kill -9 loses
//! the executions admitted since the last flush, at most `flush_interval × admission rate`
//! (1 s by default): an under-count, never a double count, because flushes write absolute
//! values from memory, which started from the values on disk. One sled database belongs
//! to one edge process (sled locks it), so there is no cross-process overshoot.
//!
//! # Wiring (as built)
//! 1. Start-up ([`crate::app::App::open`]): the `[limits]` table of the edge config
//!    (`LimitsConfig::table`, problems reported with the config's others) builds the
//!    [`Limiter`]; [`UsageCounters::open_in`] loads this month's counters from the store's
//!    sled database (tree [`USAGE_TREE`]) and flushes every `flush_interval_ms`;
//!    `App::shutdown` flushes them a last time before the store's flush.
//! 2. Every MCP request (`server::http`), right after authentication and authorization and
//!    before the body reaches rmcp: a JSON-RPC batch is refused (400, nothing runs or is
//!    charged); otherwise [`charge()`] classifies the body and [`Limiter::admit_charge`] admits
//!    it all or nothing. A [`Rejection`] becomes the 429 answer (`{code, message, usage,
//!    limit, tier}` and `Retry-After`); the [`Held`] admissions keep their concurrency slots
//!    until the reply is complete (a streamed reply holds them until it is written out).
//! 3. One `execute`/`execute_python`/`execute_typescript` or one tool-mode call is one
//!    execution, counted at admission (failed, timed-out, canceled and `NO_WORKERS` runs
//!    count); mutating create tools ([`is_mutating_create_tool`]) take a management token.
//! 4. `get_usage` (create tool) and `GET /v1/usage` answer
//!    [`crate::app::App::usage_report`] ([`UsageReport`]).

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
