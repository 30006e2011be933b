//! What a limit check answers: [`Rejection`] (rendered as an [`ApiError`] with `Retry-After`
//! and the `{usage, limit, tier}` body fields) and [`UsageReport`] (`get_usage`,
//! `GET /v1/usage`).

use paddock_shared::ErrorCode;
use paddock_shared::model::Tier;
use serde::Serialize;

use super::month::Month;
use crate::app::ApiError;

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// Monthly executions used up: `QUOTA_EXCEEDED`.
    MonthlyQuota,
    /// Per-minute execution bucket empty: `RATE_LIMITED`.
    ExecutionRate,
    /// Too many executions in flight: `CONCURRENCY_LIMITED`.
    Concurrency,
    /// Per-minute bucket of mutating create tools empty: `RATE_LIMITED`.
    ManagementRate,
}

impl LimitKind {
    /// The user-visible code.
    pub fn code(self) -> ErrorCode {
        match self {
            LimitKind::MonthlyQuota => ErrorCode::QuotaExceeded,
            LimitKind::ExecutionRate | LimitKind::ManagementRate => ErrorCode::RateLimited,
            LimitKind::Concurrency => ErrorCode::ConcurrencyLimited,
        }
    }

    /// A short label for metrics (`429s by reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::MonthlyQuota => "quota",
            LimitKind::ExecutionRate => "rate",
            LimitKind::Concurrency => "concurrency",
            LimitKind::ManagementRate => "management_rate",
        }
    }
}

/// A refused request: plain data, cheap to build (no allocation); the message is made
/// only when it is rendered.
///
/// `usage`/`limit` per kind: quota — executions this month / monthly limit; rate — tokens
/// taken from the bucket (its burst) / per-minute rate; concurrency — executions in flight /
/// concurrency limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub kind: LimitKind,
    pub usage: u64,
    pub limit: u64,
    pub tier: Tier,
    /// Seconds for `Retry-After` (≥ 1): to the month's reset (quota), to the next token
    /// (rate), a configured constant (concurrency).
    pub retry_after_s: u64,
    /// The month the quota was counted in.
    pub month: Month,
}

impl Rejection {
    /// The user-visible code.
    pub fn code(&self) -> ErrorCode {
        self.kind.code()
    }

    /// A message that says what happened and what to do.
    pub fn message(&self) -> String {
        let (tier, usage, limit, retry) = (self.tier, self.usage, self.limit, self.retry_after_s);
        match self.kind {
            LimitKind::MonthlyQuota => format!(
                "Monthly execution quota of the {tier} tier is used up ({usage} of {limit} executions in {}); it resets at {} (in {retry} s) — wait for the reset or move the account to a higher tier",
                self.month,
                self.month.next().start_rfc3339()
            ),
            LimitKind::ExecutionRate => format!(
                "Too many executions: the {tier} tier allows {limit} per minute (bursts of {usage}); retry in {retry} s and spread the calls out"
            ),
            LimitKind::Concurrency => format!(
                "Too many executions in flight: the {tier} tier allows {limit} at once and {usage} are running; retry in {retry} s, after one finishes"
            ),
            LimitKind::ManagementRate => format!(
                "Too many changes: the {tier} tier allows {limit} mutating create-tool calls per minute (bursts of {usage}); retry in {retry} s"
            ),
        }
    }

    /// The extra body fields: `{"usage": U, "limit": L, "tier": T}`.
    pub fn details(&self) -> serde_json::Value {
        serde_json::json!({ "usage": self.usage, "limit": self.limit, "tier": self.tier.as_str() })
    }

    /// The 429 answer: code, message, `{usage, limit, tier}` and `Retry-After`.
    pub fn to_api_error(&self) -> ApiError {
        ApiError {
            details: Some(self.details()),
            retry_after: Some(self.retry_after_s),
            ..ApiError::new(self.code(), self.message())
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> ApiError {
        r.to_api_error()
    }
}

/// The execution bucket as seen by `get_usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateUsage {
    pub limit_per_minute: u32,
    pub burst: u32,
    /// Tokens available now.
    pub available: u64,
}

/// Executions in flight as seen by `get_usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConcurrencyUsage {
    pub limit: u32,
    pub in_flight: u32,
}

/// The answer of `get_usage` and `GET /v1/usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageReport {
    pub tier: Tier,
    /// `YYYY-MM` (UTC).
    pub month: String,
    pub executions: u64,
    pub limit: u64,
    pub remaining: u64,
    /// RFC 3339, the first instant of next month (UTC).
    pub resets_at: String,
    pub rate: RateUsage,
    pub concurrency: ConcurrencyUsage,
}

impl UsageReport {
    /// As JSON (the tool result and the REST body).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}
