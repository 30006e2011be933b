//! The load engine: `concurrency` worker tasks take request tickets.
//! Closed loop: each worker takes the next ticket from one counter and sends back to back.
//! Open loop (`--rate`): ticket `i` is due at `start + i/rate` and its latency is measured
//! from that intended time, so a slow server cannot hide queueing (no coordinated
//! omission). A pacer thread releases each ticket at its time with `nanosleep` precision
//! and any idle worker takes it: tokio's timer rounds every deadline up to the next whole
//! millisecond, which would add up to ~1 ms of the generator's own lateness to every
//! latency (p50 +0.5–1 ms on a sub-millisecond path). Tickets due before the warm-up ends
//! are sent but not measured; the run stops at the duration or count bound, at the hard
//! cap, or when cancelled (Ctrl-C), and the recorders are merged into a report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::{self, ClientError, Outcome};
use super::options::{MAX_DURATION, Plan};
use super::report::{Recorder, Report, RunInfo};

struct Shared {
    plan: Arc<Plan>,
    clients: Vec<reqwest::Client>,
    start: Instant,
    measure_start: Instant,
    deadline: Instant,
    ticket: AtomicU64,
    measured_issued: AtomicU64,
    done_ok: AtomicU64,
    done_err: AtomicU64,
    warm_done: AtomicU64,
    cancel: CancellationToken,
    http_version: OnceLock<String>,
}

impl Shared {
    /// Whether a request due at `intended` may still be sent: it is due before the
    /// deadline and, once measuring, within the count bound (`--requests`), which it then
    /// counts against. Closed and open loop both ask here.
    fn may_send(&self, intended: Instant) -> bool {
        if intended >= self.deadline {
            return false;
        }
        if intended >= self.measure_start
            && let Some(max) = self.plan.requests
            && self.measured_issued.fetch_add(1, Ordering::Relaxed) >= max
        {
            return false;
        }
        true
    }
}

/// One released request: its number and when it was due.
#[derive(Clone, Copy)]
struct Ticket {
    n: u64,
    intended: Instant,
}

/// Longest single sleep of the pacer, so that a cancel is seen within this time even at a
/// low rate.
const PACER_MAX_SLEEP: Duration = Duration::from_millis(20);

/// The open loop's pacer (a plain thread): releases ticket `i` at `start + i/rate` into
/// `tx` until the deadline, the count bound or a cancel, then closes the channel.
fn pace(sh: &Shared, rate: f64, tx: &async_channel::Sender<Ticket>) {
    let start = sh.start.into_std();
    let mut n = 0u64;
    loop {
        let intended = start + Duration::from_secs_f64(n as f64 / rate);
        if !sh.may_send(Instant::from_std(intended)) {
            break;
        }
        loop {
            if sh.cancel.is_cancelled() {
                return;
            }
            let left = intended.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(PACER_MAX_SLEEP));
        }
        let ticket = Ticket {
            n,
            intended: Instant::from_std(intended),
        };
        if tx.send_blocking(ticket).is_err() {
            return;
        }
        n += 1;
    }
}

struct WorkerResult {
    rec: Recorder,
    last_end: Option<Instant>,
}

async fn worker(
    sh: Arc<Shared>,
    index: usize,
    session: Option<String>,
    paced: Option<async_channel::Receiver<Ticket>>,
) -> WorkerResult {
    let plan = &sh.plan;
    let http = &sh.clients[index % sh.clients.len()];
    let mut rec = Recorder::new();
    let mut last_end = None;
    loop {
        if sh.cancel.is_cancelled() {
            break;
        }
        let Ticket {
            n: ticket,
            intended,
        } = match &paced {
            Some(rx) => tokio::select! {
                t = rx.recv() => match t {
                    Ok(t) => t,
                    Err(_) => break,
                },
                () = sh.cancel.cancelled() => break,
            },
            None => {
                let n = sh.ticket.fetch_add(1, Ordering::Relaxed);
                let intended = Instant::now();
                if !sh.may_send(intended) {
                    break;
                }
                Ticket { n, intended }
            }
        };
        let measured = intended >= sh.measure_start;
        let step = &plan.scenario.steps()[plan.scenario.pick(ticket)].0;
        let send = client::send(http, plan, session.as_deref(), step.body(ticket + 1));
        let (outcome, version) = tokio::select! {
            r = send => r,
            () = sh.cancel.cancelled() => break,
        };
        let end = Instant::now();
        if let Some(v) = version {
            let _ = sh.http_version.get_or_init(|| format!("{v:?}"));
        }
        if measured {
            rec.record(step.kind(), end - intended, &outcome);
            let counter = if outcome == Outcome::Ok {
                &sh.done_ok
            } else {
                &sh.done_err
            };
            counter.fetch_add(1, Ordering::Relaxed);
            last_end = Some(end);
        } else {
            sh.warm_done.fetch_add(1, Ordering::Relaxed);
        }
    }
    WorkerResult { rec, last_end }
}

fn progress_bar(plan: &Plan, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let (len, template) = match (plan.requests, plan.duration) {
        (Some(n), _) => (n, "{bar:30} {pos}/{len} requests  {msg}"),
        (None, d) => (
            d.unwrap_or(MAX_DURATION).as_millis() as u64,
            "{bar:30} {elapsed}  {msg}",
        ),
    };
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    pb
}

async fn show_progress(sh: Arc<Shared>, pb: ProgressBar) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let (mut prev_n, mut prev_t) = (0u64, Instant::now());
    loop {
        tick.tick().await;
        let now = Instant::now();
        let ok = sh.done_ok.load(Ordering::Relaxed);
        let err = sh.done_err.load(Ordering::Relaxed);
        let n = ok + err;
        let dt = (now - prev_t).as_secs_f64();
        let rps = if dt > 0.0 {
            (n - prev_n) as f64 / dt
        } else {
            0.0
        };
        (prev_n, prev_t) = (n, now);
        if now < sh.measure_start {
            let warm = sh.warm_done.load(Ordering::Relaxed);
            pb.set_message(format!("warm-up: {warm} requests"));
            continue;
        }
        match sh.plan.requests {
            Some(_) => pb.set_position(n),
            None => pb.set_position((now - sh.measure_start).as_millis() as u64),
        }
        pb.set_message(format!("{rps:.0} req/s  {ok} ok  {err} errors"));
    }
}

/// Runs a validated plan to its end (or until `cancel`) and returns the report.
///
/// # Errors
/// The client cannot be built, or a session cannot be opened (with `--session`).
pub async fn run(
    plan: Plan,
    cancel: CancellationToken,
    show_progress_bar: bool,
) -> Result<Report, ClientError> {
    let plan = Arc::new(plan);
    let mut clients = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        clients.push(client::build(&plan)?);
    }
    let mut sessions = Vec::new();
    if plan.session {
        let opened = futures::future::join_all(
            (0..plan.concurrency).map(|i| client::open_session(&clients[i % clients.len()], &plan)),
        )
        .await;
        for s in opened {
            sessions.push(s?);
        }
    }
    let start = Instant::now();
    let measure_start = start + plan.warmup;
    let deadline = measure_start + plan.duration.unwrap_or(MAX_DURATION);
    let sh = Arc::new(Shared {
        plan: plan.clone(),
        clients: clients.clone(),
        start,
        measure_start,
        deadline,
        ticket: AtomicU64::new(0),
        measured_issued: AtomicU64::new(0),
        done_ok: AtomicU64::new(0),
        done_err: AtomicU64::new(0),
        warm_done: AtomicU64::new(0),
        cancel: cancel.clone(),
        http_version: OnceLock::new(),
    });
    let pb = progress_bar(&plan, show_progress_bar);
    let ticker = tokio::spawn(show_progress(sh.clone(), pb.clone()));
    // Open loop: the pacer's queue holds at most one ticket per worker; when every worker
    // is busy the pacer waits, and the tickets it releases late still count from their
    // intended time.
    let (pacer, paced) = match plan.rate {
        Some(rate) => {
            let (tx, rx) = async_channel::bounded(plan.concurrency.max(1));
            let sh = sh.clone();
            let pacer = std::thread::Builder::new()
                .name("paddock-bench-pacer".into())
                .spawn(move || pace(&sh, rate, &tx))
                .ok();
            (pacer, Some(rx))
        }
        None => (None, None),
    };
    let handles: Vec<_> = (0..plan.concurrency)
        .map(|i| {
            tokio::spawn(worker(
                sh.clone(),
                i,
                sessions.get(i).cloned(),
                paced.clone(),
            ))
        })
        .collect();
    drop(paced);
    let mut rec = Recorder::new();
    let mut last_end: Option<Instant> = None;
    for h in handles {
        if let Ok(w) = h.await {
            rec.merge(&w.rec);
            last_end = last_end.max(w.last_end);
        }
    }
    ticker.abort();
    pb.finish_and_clear();
    if let Some(p) = pacer {
        // The workers are gone, so the channel is closed and the pacer's next send fails.
        let _ = tokio::task::spawn_blocking(move || p.join()).await;
    }
    for (i, sid) in sessions.iter().enumerate() {
        client::close_session(&clients[i % clients.len()], &plan, sid).await;
    }
    let end = last_end.unwrap_or_else(Instant::now);
    let info = RunInfo {
        target: plan.url.to_string(),
        endpoint: plan.endpoint.clone(),
        scenario: plan.scenario.label(),
        rate: plan.rate,
        concurrency: plan.concurrency,
        connections: plan.connections,
        session: plan.session,
        http_version: sh.http_version.get().cloned(),
        warmup_requests: sh.warm_done.load(Ordering::Relaxed),
        elapsed: end.saturating_duration_since(measure_start),
        interrupted: cancel.is_cancelled(),
    };
    Ok(Report::new(&rec, info))
}
