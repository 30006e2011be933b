//! The edge's Prometheus metrics: one process-wide [`METRICS`] of fixed-size atomic
//! arrays that the request path, the run tools and the worker link record into (no lock,
//! no allocation per request), and [`render`], which reads them together with the
//! per-worker state of the [`Dispatcher`](crate::workers::Dispatcher) and encodes
//! everything in the OpenMetrics text format with `prometheus-client`. The admin listener
//! (`server::admin`) serves it; `docs/operations.md` is the reference of every metric.

mod histogram;
mod render;

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use paddock_shared::ErrorCode;
use paddock_shared::exec::{ExecStatus, ExecutionResult};

pub use histogram::{BOUNDS_US, Histogram, HistogramSnapshot};
pub use render::{CONTENT_TYPE, Sources, render};

use crate::app::ApiError;
use crate::server::reply::{Body, Reply};

/// What a request was for, as the `route` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteLabel {
    /// `/v1/health*`
    Health,
    /// Other `/v1/...` REST paths.
    Rest,
    /// A create endpoint (path or subdomain form).
    McpCreate,
    /// A run endpoint (path or subdomain form).
    McpRun,
    /// Anything else (answered `INVALID_HOST` / 404).
    Other,
}

impl RouteLabel {
    /// Every label, in index order.
    pub const ALL: [RouteLabel; 5] = [
        RouteLabel::Health,
        RouteLabel::Rest,
        RouteLabel::McpCreate,
        RouteLabel::McpRun,
        RouteLabel::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteLabel::Health => "health",
            RouteLabel::Rest => "rest",
            RouteLabel::McpCreate => "mcp_create",
            RouteLabel::McpRun => "mcp_run",
            RouteLabel::Other => "other",
        }
    }

    /// Classifies a request the way `route::route` does, without allocating (the real
    /// routing runs later; a request it refuses is still counted under the label its
    /// path and host suggest, with the refusal's status).
    pub fn classify(path: &str, host: Option<&str>, domain: &str) -> RouteLabel {
        if path.starts_with("/v1/health") {
            return RouteLabel::Health;
        }
        if path == "/v1" || path.starts_with("/v1/") {
            return RouteLabel::Rest;
        }
        if path.starts_with("/mcp/create/") {
            return RouteLabel::McpCreate;
        }
        if path.starts_with("/mcp/run/") {
            return RouteLabel::McpRun;
        }
        if path.starts_with("/mcp") {
            // Subdomain form: {ns}.{create|run}.{domain}[:port]
            let host = host.unwrap_or("");
            let host = host.rsplit_once(':').map_or(host, |(h, p)| {
                if p.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    host
                }
            });
            if let Some(prefix) = strip_suffix_ci(host, domain).and_then(|p| p.strip_suffix('.')) {
                let kind = prefix.rsplit('.').next().unwrap_or("");
                if kind.eq_ignore_ascii_case("create") {
                    return RouteLabel::McpCreate;
                }
                if kind.eq_ignore_ascii_case("run") {
                    return RouteLabel::McpRun;
                }
            }
        }
        RouteLabel::Other
    }
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    (s.is_char_boundary(cut) && s[cut..].eq_ignore_ascii_case(suffix)).then(|| &s[..cut])
}

/// HTTP statuses with a counter of their own; any other is counted as `other`.
pub const STATUSES: [u16; 19] = [
    200, 201, 202, 204, 400, 401, 403, 404, 405, 406, 409, 413, 415, 421, 429, 500, 502, 503, 504,
];
const N_STATUS: usize = STATUSES.len() + 1;

fn status_index(status: u16) -> usize {
    STATUSES
        .iter()
        .position(|&s| s == status)
        .unwrap_or(STATUSES.len())
}

/// The `reason` label of a 429: the error code in its body.
pub const REJECT_REASONS: [&str; 5] = [
    "QUOTA_EXCEEDED",
    "RATE_LIMITED",
    "CONCURRENCY_LIMITED",
    "LOGIN_THROTTLED",
    "other",
];

/// Which [`REJECT_REASONS`] a 429 reply carries, read from its JSON body's `"code"`.
pub fn reject_reason(reply: &Reply) -> usize {
    let Body::Full(body) = &reply.body else {
        return REJECT_REASONS.len() - 1;
    };
    let head = &body[..body.len().min(512)];
    REJECT_REASONS[..REJECT_REASONS.len() - 1]
        .iter()
        .position(|code| contains_code(head, code))
        .unwrap_or(REJECT_REASONS.len() - 1)
}

fn contains_code(body: &[u8], code: &str) -> bool {
    // `"code":"X"` as serde_json writes it (no spaces).
    let needle_len = code.len() + 9;
    body.windows(needle_len).any(|w| {
        w.starts_with(b"\"code\":\"")
            && &w[8..8 + code.len()] == code.as_bytes()
            && w[needle_len - 1] == b'"'
    })
}

/// The `tier` label of executions (the sandbox profile); unknown profiles are `other`.
pub const TIERS: [&str; 5] = ["free", "builder", "pro", "enterprise", "other"];

fn tier_index(profile: &str) -> usize {
    TIERS[..4]
        .iter()
        .position(|&t| t == profile)
        .unwrap_or(TIERS.len() - 1)
}

/// The `status` label of executions: the result's status, or `error` for a typed
/// dispatch error (`NO_WORKERS`, `WORKER_LOST`, …; see `errors` by code).
pub const EXEC_STATUSES: [&str; 5] = ["completed", "failed", "timeout", "canceled", "error"];

/// Every counter and histogram the edge records. All fields are atomics.
#[derive(Debug)]
pub struct Metrics {
    requests: [[AtomicU64; N_STATUS]; RouteLabel::ALL.len()],
    request_latency: [Histogram; RouteLabel::ALL.len()],
    rejected: [AtomicU64; REJECT_REASONS.len()],
    executions: [[AtomicU64; EXEC_STATUSES.len()]; TIERS.len()],
    exec_total: Histogram,
    exec_slot: Histogram,
    exec_queue_wait: Histogram,
    worker_joins: AtomicU64,
    worker_disconnects: AtomicU64,
}

/// The process's metrics.
pub static METRICS: Metrics = Metrics::new();

/// Dispatch errors by code, indexed like `ErrorCode::ALL`.
static EXEC_ERRORS: LazyLock<Box<[AtomicU64]>> =
    LazyLock::new(|| ErrorCode::ALL.iter().map(|_| AtomicU64::new(0)).collect());

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// All zero (usable in a `static`).
    pub const fn new() -> Metrics {
        Metrics {
            requests: [const { [const { AtomicU64::new(0) }; N_STATUS] }; RouteLabel::ALL.len()],
            request_latency: [const { Histogram::new() }; RouteLabel::ALL.len()],
            rejected: [const { AtomicU64::new(0) }; REJECT_REASONS.len()],
            executions: [const { [const { AtomicU64::new(0) }; EXEC_STATUSES.len()] }; TIERS.len()],
            exec_total: Histogram::new(),
            exec_slot: Histogram::new(),
            exec_queue_wait: Histogram::new(),
            worker_joins: AtomicU64::new(0),
            worker_disconnects: AtomicU64::new(0),
        }
    }

    /// Records one answered request: count by route and status, edge latency by route,
    /// and for a 429 the reason.
    pub fn record_request(
        &self,
        route: RouteLabel,
        status: u16,
        reason: Option<usize>,
        took: Duration,
    ) {
        let r = route as usize;
        self.requests[r][status_index(status)].fetch_add(1, Ordering::Relaxed);
        self.request_latency[r].observe(took);
        if let Some(i) = reason {
            self.rejected[i.min(REJECT_REASONS.len() - 1)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records one run-tool execution as the edge saw it: `took` from dispatch to answer.
    /// For a result, the slot time is the worker's `duration_us` and the queue wait the
    /// rest (`took − slot`: the link both ways, the replica catching up to `min_seq`, the
    /// worker's queue and slot hand-over).
    pub fn record_execution(
        &self,
        profile: &str,
        out: &Result<ExecutionResult, ApiError>,
        took: Duration,
    ) {
        let t = tier_index(profile);
        let took_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.exec_total.observe_us(took_us);
        let s = match out {
            Ok(r) => {
                self.exec_slot.observe_us(r.duration_us);
                self.exec_queue_wait
                    .observe_us(took_us.saturating_sub(r.duration_us));
                match r.status {
                    ExecStatus::Completed => 0,
                    ExecStatus::Failed => 1,
                    ExecStatus::Timeout => 2,
                    ExecStatus::Canceled => 3,
                }
            }
            Err(e) => {
                if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == e.code) {
                    EXEC_ERRORS[i].fetch_add(1, Ordering::Relaxed);
                }
                EXEC_STATUSES.len() - 1
            }
        };
        self.executions[t][s].fetch_add(1, Ordering::Relaxed);
    }

    /// A worker joined the hub.
    pub fn worker_joined(&self) {
        self.worker_joins.fetch_add(1, Ordering::Relaxed);
    }

    /// A worker connection ended.
    pub fn worker_left(&self) {
        self.worker_disconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests counted so far for `route` and `status` (tests, benches).
    pub fn requests(&self, route: RouteLabel, status: u16) -> u64 {
        self.requests[route as usize][status_index(status)].load(Ordering::Relaxed)
    }
}

/// Times one request from its head being read to its reply written, in
/// `EdgeHttp::process_new_http`.
#[derive(Debug)]
pub struct RequestTimer {
    route: RouteLabel,
    started: Instant,
    status: u16,
    reason: Option<usize>,
}

impl RequestTimer {
    /// Starts timing a request whose head is `req`.
    pub fn start(req: &pingora::http::RequestHeader, domain: &str) -> RequestTimer {
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri.authority().map(http::uri::Authority::as_str));
        RequestTimer {
            route: RouteLabel::classify(req.uri.path(), host, domain),
            started: Instant::now(),
            status: 0,
            reason: None,
        }
    }

    /// Notes the reply's status (and a 429's reason) before the reply is written.
    pub fn replied(&mut self, reply: &Reply) {
        self.status = reply.status;
        if reply.status == 429 {
            self.reason = Some(reject_reason(reply));
        }
    }

    /// Records the request into [`METRICS`].
    pub fn finish(self) {
        METRICS.record_request(self.route, self.status, self.reason, self.started.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn routes_are_classified_like_the_router() {
        let c = |p, h| RouteLabel::classify(p, h, "example.com");
        assert_eq!(c("/v1/health/ready", None), RouteLabel::Health);
        assert_eq!(c("/v1/auth/login", None), RouteLabel::Rest);
        assert_eq!(
            c("/mcp/create/acme", Some("example.com")),
            RouteLabel::McpCreate
        );
        assert_eq!(
            c("/mcp/run/acme", Some("localhost:8443")),
            RouteLabel::McpRun
        );
        assert_eq!(c("/mcp", Some("acme.run.example.com")), RouteLabel::McpRun);
        assert_eq!(
            c("/mcp", Some("acme.CREATE.example.com:443")),
            RouteLabel::McpCreate
        );
        assert_eq!(c("/mcp", Some("acme.other.example.com")), RouteLabel::Other);
        assert_eq!(c("/metrics", Some("example.com")), RouteLabel::Other);
        assert_eq!(c("/mcp", None), RouteLabel::Other);
    }

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Full(Bytes::from(body.to_owned())),
            close: false,
        }
    }

    #[test]
    fn a_429s_reason_is_its_body_code() {
        for (i, code) in REJECT_REASONS[..4].iter().enumerate() {
            let body = format!(r#"{{"code":"{code}","limit":5,"message":"m"}}"#);
            assert_eq!(reject_reason(&reply(429, &body)), i, "{code}");
        }
        assert_eq!(
            reject_reason(&reply(429, r#"{"code":"RATE_LIMITED_X"}"#)),
            4
        );
        assert_eq!(reject_reason(&reply(429, "")), 4);
        assert_eq!(
            reject_reason(&reply(429, r#"{"message":"QUOTA_EXCEEDED"}"#)),
            4
        );
    }

    #[test]
    fn requests_and_executions_count_by_label() {
        let m = Metrics::new();
        m.record_request(RouteLabel::McpRun, 200, None, Duration::from_micros(300));
        m.record_request(RouteLabel::McpRun, 200, None, Duration::from_micros(300));
        m.record_request(RouteLabel::McpRun, 299, None, Duration::ZERO);
        m.record_request(RouteLabel::Rest, 429, Some(1), Duration::ZERO);
        assert_eq!(m.requests(RouteLabel::McpRun, 200), 2);
        assert_eq!(m.requests(RouteLabel::McpRun, 299), 1);
        assert_eq!(m.requests(RouteLabel::McpRun, 418), 1, "both are `other`");
        assert_eq!(m.rejected[1].load(Ordering::Relaxed), 1);
        assert_eq!(m.request_latency[RouteLabel::McpRun as usize].count(), 3);

        let mut r = ExecutionResult::failed(
            "ex_1",
            paddock_shared::exec::ExecStatus::Timeout,
            "TimeoutError",
            "m",
        );
        r.duration_us = 4_000;
        m.record_execution("pro", &Ok(r), Duration::from_micros(5_000));
        let e = ApiError::new(ErrorCode::NoWorkers, "none");
        m.record_execution("nope", &Err(e), Duration::from_micros(10));
        assert_eq!(m.executions[2][2].load(Ordering::Relaxed), 1);
        assert_eq!(m.executions[4][4].load(Ordering::Relaxed), 1);
        assert_eq!(m.exec_total.count(), 2);
        assert_eq!(m.exec_slot.snapshot().sum_s, 0.004);
        assert_eq!(m.exec_queue_wait.snapshot().sum_s, 0.001);
    }
}
