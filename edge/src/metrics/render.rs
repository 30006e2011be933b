//! One scrape: asks every connected worker for fresh [`WorkerStats`] (bounded wait), reads
//! [`METRICS`](super::METRICS) and the dispatcher's per-worker state, and encodes it all in
//! the OpenMetrics text format through a `prometheus-client` [`Collector`].

use std::collections::HashSet;
use std::fmt::Error;
use std::sync::atomic::Ordering;
use std::time::Duration;

use paddock_shared::ErrorCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::{
    EXEC_ERRORS, EXEC_STATUSES, HistogramSnapshot, METRICS, REJECT_REASONS, RouteLabel, STATUSES,
    TIERS,
};
use crate::app::App;
use crate::workers::{Dispatcher, WorkerInfo};

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a scrape waits for the workers' `Stats` answers before using the last ones.
const STATS_WAIT: Duration = Duration::from_millis(500);

/// Where a scrape reads the state it does not record itself.
#[derive(Clone)]
pub struct Sources {
    pub dispatcher: Dispatcher,
    pub app: App,
}

/// Everything one scrape encodes (a consistent-enough copy; counters are read relaxed).
#[derive(Debug)]
struct Snapshot {
    workers: Vec<WorkerInfo>,
    committed: u64,
}

/// Renders every metric (see `docs/operations.md`), refreshing worker stats first.
pub async fn render(sources: &Sources) -> String {
    sources.dispatcher.refresh_stats(STATS_WAIT).await;
    let mut seen = HashSet::new();
    let workers = sources
        .dispatcher
        .stats()
        .into_iter()
        // Two connections claiming one worker id would make duplicate series: keep one.
        .filter(|w| seen.insert(w.worker_id.clone()))
        .collect();
    encode(Snapshot {
        workers,
        committed: sources.app.committed_seq(),
    })
}

fn encode(snapshot: Snapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut out = String::with_capacity(16 * 1024);
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
        out.push_str("# EOF\n");
    }
    out
}

fn counter<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in series {
        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, i64)>,
) -> Result<(), Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in series {
        ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn histogram<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, HistogramSnapshot)>,
) -> Result<(), Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in series {
        m.encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(h.sum_s, h.count, &h.buckets, None)?;
    }
    Ok(())
}

/// One histogram without labels.
fn histogram1(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    h: &HistogramSnapshot,
) -> Result<(), Error> {
    enc.encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(h.sum_s, h.count, &h.buckets, None)
}

/// One series without labels (`name value`, not `name{} value`).
fn single(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    v: u64,
) -> Result<(), Error> {
    let m = enc.encode_descriptor(name, help, None, kind)?;
    match kind {
        MetricType::Counter => ConstCounter::new(v).encode(m),
        _ => ConstGauge::new(gauge_i(v)).encode(m),
    }
}

fn gauge_i(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), Error> {
        let m = &METRICS;
        let e = &mut enc;
        gauge(
            e,
            "paddock_edge_info",
            "Build information of this edge (always 1).",
            [([("version", env!("CARGO_PKG_VERSION"))], 1)],
        )?;

        // Requests.
        let mut requests = Vec::new();
        for route in RouteLabel::ALL {
            for (i, c) in m.requests[route as usize].iter().enumerate() {
                let v = c.load(Ordering::Relaxed);
                if v > 0 {
                    let status = STATUSES.get(i).map_or("other".to_owned(), u16::to_string);
                    requests.push((
                        [("route", route.as_str().to_owned()), ("status", status)],
                        v,
                    ));
                }
            }
        }
        counter(
            e,
            "paddock_http_requests",
            "HTTP requests answered on the public listener, by route and status.",
            requests,
        )?;
        histogram(
            e,
            "paddock_http_request_duration_seconds",
            "Edge latency: from the request head read to the reply written, by route.",
            RouteLabel::ALL.map(|r| {
                (
                    [("route", r.as_str())],
                    m.request_latency[r as usize].snapshot(),
                )
            }),
        )?;
        counter(
            e,
            "paddock_http_rejections",
            "429 answers by reason (the error code of the body).",
            REJECT_REASONS
                .iter()
                .zip(&m.rejected)
                .map(|(r, c)| ([("reason", *r)], c.load(Ordering::Relaxed))),
        )?;

        // Executions.
        let mut executions = Vec::new();
        for (t, tier) in TIERS.iter().enumerate() {
            for (s, status) in EXEC_STATUSES.iter().enumerate() {
                let v = m.executions[t][s].load(Ordering::Relaxed);
                if v > 0 || (*tier != "other" && s == 0) {
                    executions.push(([("tier", *tier), ("status", *status)], v));
                }
            }
        }
        counter(
            e,
            "paddock_executions",
            "Run-tool executions by account tier and outcome (`error`: a typed dispatch error, see paddock_execution_errors_total).",
            executions,
        )?;
        counter(
            e,
            "paddock_execution_errors",
            "Executions that got a typed error instead of a result, by error code.",
            ErrorCode::ALL
                .iter()
                .zip(EXEC_ERRORS.iter())
                .map(|(code, c)| ([("code", code.as_str())], c.load(Ordering::Relaxed)))
                .filter(|(_, v)| *v > 0),
        )?;
        histogram1(
            e,
            "paddock_execution_duration_seconds",
            "Total execution latency at the edge: dispatch to answer (results and errors).",
            &m.exec_total.snapshot(),
        )?;
        histogram1(
            e,
            "paddock_execution_slot_duration_seconds",
            "Time in the slot as the worker reports it (durationMs of the result).",
            &m.exec_slot.snapshot(),
        )?;
        histogram1(
            e,
            "paddock_execution_queue_wait_seconds",
            "Total minus slot time: link, replica catch-up, worker queue and slot hand-over.",
            &m.exec_queue_wait.snapshot(),
        )?;

        // Workers.
        single(
            e,
            "paddock_workers_connected",
            "Workers joined to this edge right now.",
            MetricType::Gauge,
            self.workers.len() as u64,
        )?;
        single(
            e,
            "paddock_worker_joins",
            "Worker connections accepted (Join with a valid token).",
            MetricType::Counter,
            m.worker_joins.load(Ordering::Relaxed),
        )?;
        single(
            e,
            "paddock_worker_disconnects",
            "Worker connections that ended (any reason; the log says which).",
            MetricType::Counter,
            m.worker_disconnects.load(Ordering::Relaxed),
        )?;
        single(
            e,
            "paddock_replication_committed_seq",
            "Last committed sequence of the replication log.",
            MetricType::Gauge,
            self.committed,
        )?;
        let w = |f: fn(&WorkerInfo) -> i64| {
            self.workers
                .iter()
                .map(move |wi| ([("worker", wi.worker_id.clone())], f(wi)))
        };
        gauge(
            e,
            "paddock_worker_capacity",
            "Executions a worker accepts at once.",
            w(|wi| i64::from(wi.capacity)),
        )?;
        gauge(
            e,
            "paddock_worker_in_flight",
            "Executions this edge has running on the worker.",
            w(|wi| i64::from(wi.in_flight)),
        )?;
        gauge(
            e,
            "paddock_worker_replication_acked_seq",
            "Highest replication sequence the worker acknowledged.",
            w(|wi| gauge_i(wi.acked_seq)),
        )?;
        let committed = self.committed;
        gauge(
            e,
            "paddock_worker_replication_lag",
            "Replication lag in log entries: committed sequence minus the worker's acknowledged one.",
            self.workers.iter().map(|wi| {
                (
                    [("worker", wi.worker_id.clone())],
                    gauge_i(committed.saturating_sub(wi.acked_seq)),
                )
            }),
        )?;
        let reported = || {
            self.workers
                .iter()
                .filter_map(|wi| wi.stats.as_ref().map(|s| (wi.worker_id.as_str(), s)))
        };
        counter(
            e,
            "paddock_worker_executions",
            "Executions the worker finished since it started (its own count).",
            reported().map(|(id, s)| ([("worker", id)], s.executions_total)),
        )?;
        let pools = || {
            reported().flat_map(|(id, s)| {
                s.pools.iter().map(move |p| {
                    (
                        [
                            ("worker", id),
                            ("profile", p.profile.as_str()),
                            ("language", p.language.as_str()),
                        ],
                        p,
                    )
                })
            })
        };
        gauge(
            e,
            "paddock_worker_pool_target",
            "Warm slots the pool is configured to keep.",
            pools().map(|(l, p)| (l, i64::from(p.target))),
        )?;
        gauge(
            e,
            "paddock_worker_pool_ready",
            "Warm slots started and waiting for an execution.",
            pools().map(|(l, p)| (l, i64::from(p.ready))),
        )?;
        gauge(
            e,
            "paddock_worker_pool_starting",
            "Slots being started (refill in progress).",
            pools().map(|(l, p)| (l, i64::from(p.starting))),
        )?;
        counter(
            e,
            "paddock_worker_pool_slots_started",
            "Slots started since the worker began; rate() of it is the refill rate.",
            pools().map(|(l, p)| (l, p.spawned_total)),
        )?;
        counter(
            e,
            "paddock_worker_pool_slot_start_failures",
            "Slot start-ups that failed since the worker began.",
            pools().map(|(l, p)| (l, p.failed_total)),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_shared::exec::{PoolStats, WorkerStats};
    use paddock_shared::model::Language;

    #[test]
    fn a_snapshot_encodes_every_family_with_its_labels() {
        let worker = WorkerInfo {
            worker_id: "w1".into(),
            peer: "unix".into(),
            capacity: 8,
            in_flight: 1,
            profiles: vec!["free".into()],
            languages: vec![Language::Python],
            acked_seq: 7,
            stats: Some(WorkerStats {
                in_flight: 1,
                executions_total: 3,
                pools: vec![PoolStats {
                    profile: "free".into(),
                    language: Language::Python,
                    target: 2,
                    ready: 1,
                    starting: 1,
                    spawned_total: 5,
                    failed_total: 0,
                }],
            }),
        };
        let text = encode(Snapshot {
            workers: vec![worker],
            committed: 10,
        });
        for line in [
            "# TYPE paddock_http_requests counter",
            "# TYPE paddock_http_request_duration_seconds histogram",
            "paddock_http_rejections_total{reason=\"QUOTA_EXCEEDED\"} ",
            "paddock_http_rejections_total{reason=\"CONCURRENCY_LIMITED\"} ",
            "paddock_executions_total{tier=\"free\",status=\"completed\"} ",
            "paddock_execution_queue_wait_seconds_bucket{le=\"+Inf\"} ",
            "paddock_workers_connected 1",
            "paddock_execution_queue_wait_seconds_count 0",
            "paddock_worker_replication_lag{worker=\"w1\"} 3",
            "paddock_worker_pool_ready{worker=\"w1\",profile=\"free\",language=\"python\"} 1",
            "paddock_worker_pool_slots_started_total{worker=\"w1\",profile=\"free\",language=\"python\"} 5",
            "paddock_worker_executions_total{worker=\"w1\"} 3",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
