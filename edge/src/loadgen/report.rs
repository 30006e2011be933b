//! Measurements of a run: a per-worker [`Recorder`] (HDR histogram in microseconds and
//! error counts), merged into a [`Report`] rendered as text or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::client::Outcome;

/// 429 reason codes reported on their own.
pub const LIMIT_REASONS: [&str; 3] = ["QUOTA_EXCEEDED", "RATE_LIMITED", "CONCURRENCY_LIMITED"];
const MAX_US: u64 = 3_600_000_000;

/// Counts and latencies of one worker.
#[derive(Debug, Clone)]
pub struct Recorder {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
    by_status: BTreeMap<String, u64>,
    by_code: BTreeMap<String, u64>,
    limited: BTreeMap<String, u64>,
    by_step: BTreeMap<String, (u64, u64)>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// Empty, 1 µs to 1 h at 3 significant figures.
    pub fn new() -> Recorder {
        let hist = Histogram::new_with_bounds(1, MAX_US, 3).expect("constant, valid bounds");
        Recorder {
            hist,
            ok: 0,
            errors: 0,
            by_status: BTreeMap::new(),
            by_code: BTreeMap::new(),
            limited: BTreeMap::new(),
            by_step: BTreeMap::new(),
        }
    }

    /// Records one measured request.
    pub fn record(&mut self, step: &str, latency: Duration, outcome: &Outcome) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(MAX_US)
            .clamp(1, MAX_US);
        self.hist.saturating_record(us);
        let s = self.by_step.entry(step.to_owned()).or_default();
        s.0 += 1;
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Error { status, code } => {
                self.errors += 1;
                s.1 += 1;
                let st = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
                *self.by_status.entry(st).or_default() += 1;
                *self.by_code.entry(code.clone()).or_default() += 1;
                if *status == Some(429) {
                    let reason = if LIMIT_REASONS.contains(&code.as_str()) {
                        code.clone()
                    } else {
                        "OTHER".to_owned()
                    };
                    *self.limited.entry(reason).or_default() += 1;
                }
            }
        }
    }

    /// Adds another recorder's counts.
    pub fn merge(&mut self, other: &Recorder) {
        let _ = self.hist.add(&other.hist);
        self.ok += other.ok;
        self.errors += other.errors;
        for (k, v) in &other.by_status {
            *self.by_status.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.by_code {
            *self.by_code.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.limited {
            *self.limited.entry(k.clone()).or_default() += v;
        }
        for (k, (n, e)) in &other.by_step {
            let s = self.by_step.entry(k.clone()).or_default();
            s.0 += n;
            s.1 += e;
        }
    }

    /// Measured requests so far.
    pub fn count(&self) -> u64 {
        self.ok + self.errors
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    pub p99_9: f64,
    /// Largest.
    pub max: f64,
}

/// Per-step counts in a mix.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepCount {
    /// Measured requests.
    pub requests: u64,
    /// Of which errors.
    pub errors: u64,
}

/// The final report (`--json` prints exactly this).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The target URL.
    pub target: String,
    /// Which routing form and endpoint.
    pub endpoint: String,
    /// Scenario label.
    pub scenario: String,
    /// `open` (with `rate`) or `closed`.
    pub mode: &'static str,
    /// Target rate, open loop.
    pub rate: Option<f64>,
    /// Workers.
    pub concurrency: usize,
    /// Client connections the workers share.
    pub connections: usize,
    /// Sessions used.
    pub session: bool,
    /// HTTP version seen (e.g. `HTTP/2.0`).
    pub http_version: Option<String>,
    /// Warm-up requests completed (not measured).
    pub warmup_requests: u64,
    /// Measured phase wall time, seconds.
    pub duration_s: f64,
    /// Measured requests completed.
    pub requests: u64,
    /// Of which ok.
    pub ok: u64,
    /// Of which errors.
    pub errors: u64,
    /// Completed requests per second.
    pub throughput_rps: f64,
    /// Ok requests per second.
    pub ok_rps: f64,
    /// Latency of every measured request (open loop: from its intended start).
    pub latency_ms: Latency,
    /// Errors by HTTP status (`none` when no answer came).
    pub errors_by_status: BTreeMap<String, u64>,
    /// Errors by code.
    pub errors_by_code: BTreeMap<String, u64>,
    /// HTTP 429 answers by reason code.
    pub rate_limited: BTreeMap<String, u64>,
    /// Counts per step.
    pub by_step: BTreeMap<String, StepCount>,
    /// Stopped by Ctrl-C.
    pub interrupted: bool,
}

/// Run facts the recorder does not know.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// Target URL.
    pub target: String,
    /// Routing form.
    pub endpoint: String,
    /// Scenario label.
    pub scenario: String,
    /// Open-loop rate.
    pub rate: Option<f64>,
    /// Workers.
    pub concurrency: usize,
    /// Client connections.
    pub connections: usize,
    /// Sessions.
    pub session: bool,
    /// HTTP version seen.
    pub http_version: Option<String>,
    /// Warm-up requests.
    pub warmup_requests: u64,
    /// Measured wall time.
    pub elapsed: Duration,
    /// Ctrl-C.
    pub interrupted: bool,
}

fn ms(us: u64) -> f64 {
    (us as f64) / 1000.0
}

impl Report {
    /// Builds the report from the merged recorder.
    pub fn new(rec: &Recorder, info: RunInfo) -> Report {
        let h = &rec.hist;
        let empty = h.is_empty();
        let q = |p: f64| {
            if empty {
                0.0
            } else {
                ms(h.value_at_quantile(p))
            }
        };
        let latency_ms = Latency {
            min: if empty { 0.0 } else { ms(h.min()) },
            mean: if empty { 0.0 } else { h.mean() / 1000.0 },
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p99_9: q(0.999),
            max: if empty { 0.0 } else { ms(h.max()) },
        };
        let secs = info.elapsed.as_secs_f64();
        let per_s = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let mut rate_limited: BTreeMap<String, u64> =
            LIMIT_REASONS.iter().map(|r| ((*r).to_owned(), 0)).collect();
        for (k, v) in &rec.limited {
            *rate_limited.entry(k.clone()).or_default() += v;
        }
        Report {
            target: info.target,
            endpoint: info.endpoint,
            scenario: info.scenario,
            mode: if info.rate.is_some() {
                "open"
            } else {
                "closed"
            },
            rate: info.rate,
            concurrency: info.concurrency,
            connections: info.connections,
            session: info.session,
            http_version: info.http_version,
            warmup_requests: info.warmup_requests,
            duration_s: secs,
            requests: rec.count(),
            ok: rec.ok,
            errors: rec.errors,
            throughput_rps: per_s(rec.count()),
            ok_rps: per_s(rec.ok),
            latency_ms,
            errors_by_status: rec.by_status.clone(),
            errors_by_code: rec.by_code.clone(),
            rate_limited,
            by_step: rec
                .by_step
                .iter()
                .map(|(k, (n, e))| {
                    (
                        k.clone(),
                        StepCount {
                            requests: *n,
                            errors: *e,
                        },
                    )
                })
                .collect(),
            interrupted: info.interrupted,
        }
    }

    /// The human-readable rendering.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let l = &self.latency_ms;
        let mode = match self.rate {
            Some(r) => format!("open loop at {r} req/s (latency from the intended start)"),
            None => "closed loop".to_owned(),
        };
        let _ = writeln!(
            s,
            "target     {} ({})\nscenario   {}, {mode}, concurrency {} over {} connections{}{}",
            self.target,
            self.endpoint,
            self.scenario,
            self.concurrency,
            self.connections,
            if self.session {
                ", sessions"
            } else {
                ", stateless"
            },
            self.http_version
                .as_deref()
                .map(|v| format!(", {v}"))
                .unwrap_or_default()
        );
        if self.interrupted {
            let _ = writeln!(s, "INTERRUPTED: partial report");
        }
        let _ = writeln!(
            s,
            "requests   {} in {:.2} s ({} warm-up not counted)\nthroughput {:.1} req/s ({:.1} ok/s)\nok         {}   errors {}",
            self.requests,
            self.duration_s,
            self.warmup_requests,
            self.throughput_rps,
            self.ok_rps,
            self.ok,
            self.errors
        );
        let _ = writeln!(
            s,
            "latency ms min {:.3}  mean {:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            l.min, l.mean, l.p50, l.p90, l.p99, l.p99_9, l.max
        );
        if self.errors > 0 {
            let join = |m: &BTreeMap<String, u64>| {
                m.iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(s, "errors by HTTP status  {}", join(&self.errors_by_status));
            let _ = writeln!(s, "errors by code         {}", join(&self.errors_by_code));
        }
        let limited: u64 = self.rate_limited.values().sum();
        if limited > 0 {
            let parts: Vec<String> = self
                .rate_limited
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(s, "429 by reason          {}", parts.join(", "));
        }
        if self.by_step.len() > 1 {
            for (k, c) in &self.by_step {
                let _ = writeln!(s, "  {k:<12} {} requests, {} errors", c.requests, c.errors);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_report() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        for i in 1..=100u64 {
            a.record("tools-list", Duration::from_millis(i), &Outcome::Ok);
        }
        b.record(
            "tools-list",
            Duration::from_millis(5),
            &Outcome::Error {
                status: Some(429),
                code: "RATE_LIMITED".into(),
            },
        );
        b.record(
            "tool",
            Duration::from_millis(5),
            &Outcome::Error {
                status: None,
                code: "TIMEOUT".into(),
            },
        );
        a.merge(&b);
        let info = RunInfo {
            target: "t".into(),
            endpoint: "e".into(),
            scenario: "s".into(),
            rate: None,
            concurrency: 1,
            connections: 1,
            session: false,
            http_version: None,
            warmup_requests: 0,
            elapsed: Duration::from_secs(2),
            interrupted: false,
        };
        let r = Report::new(&a, info);
        assert_eq!((r.requests, r.ok, r.errors), (102, 100, 2));
        assert!((r.throughput_rps - 51.0).abs() < 1e-9);
        assert!((r.latency_ms.max - 100.0).abs() < 0.1, "{:?}", r.latency_ms);
        assert!((r.latency_ms.p50 - 50.0).abs() < 1.0, "{:?}", r.latency_ms);
        assert_eq!(r.rate_limited["RATE_LIMITED"], 1);
        assert_eq!(r.rate_limited["QUOTA_EXCEEDED"], 0);
        assert_eq!(r.errors_by_status["none"], 1);
        assert_eq!(r.by_step["tool"].errors, 1);
        assert!(r.text().contains("429 by reason"), "{}", r.text());
    }
}
