//! The worker benchmark of issue 2, in one run: execution round trip through the worker
//! protocol (`result = 1 + 1`, Python, profile `free`) against the real `paddock-worker
//! serve` binary with warm slots, the same with pool size 0 (a fresh jail per
//! execution), their ratio, and the pool refill rate in slots per second per core. The
//! protocol alone (an in-process no-op executor) is measured too, as the floor of the
//! protocol, and a bare `python3` over a pipe (no jail, no worker, no runner) with the same
//! idle gap before each run as the warm case, as the machine's floor for it.
//!
//! Build the worker binaries first, in the profile you bench with:
//!
//! ```text
//! cargo build --release -p paddock-worker --bins     # paddock-worker + paddock-slot-init
//! cargo bench --bench worker_e2e                     # add -- --json for JSON
//! cargo bench --bench worker_e2e -- --runs 500 --fresh-runs 50 --pool 8 --pace full
//! ```
//!
//! The binary is looked up in `$PADDOCK_WORKER_BIN`, else beside the bench executable
//! (`target/<profile>/paddock-worker`). Under `cargo bench -- --test` or `cargo test
//! --benches` only a smoke run of the protocol floor happens (no worker, no jail).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use paddock_shared::exec::{
    ExecStatus, ExecutionRequest, ExecutionResult, PoolStats, Truncation, Usage, WorkerStats,
};
use paddock_shared::model::Language;
use paddock_worker::client::{ClientOptions, WorkerClient};
use paddock_worker::executor::Executor;
use paddock_worker::server::{ServeOptions, serve_unix};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Args {
    smoke: bool,
    json: bool,
    runs: u64,
    fresh_runs: u64,
    pool: u32,
    refill_rounds: u32,
    /// `full`: before each warm run wait until the pool is full again (no refill running
    /// during the measurement); `ready`: wait only for one ready slot.
    pace: String,
    worker_bin: Option<PathBuf>,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        smoke: true,
        json: false,
        runs: 1000,
        fresh_runs: 100,
        pool: 8,
        refill_rounds: 3,
        pace: "full".to_owned(),
        worker_bin: std::env::var_os("PADDOCK_WORKER_BIN").map(PathBuf::from),
    };
    let mut bench = false;
    let mut test = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--bench" => bench = true,
            "--test" => test = true,
            "--json" => a.json = true,
            "--runs" => a.runs = value("--runs")?.parse()?,
            "--fresh-runs" => a.fresh_runs = value("--fresh-runs")?.parse()?,
            "--pool" => a.pool = value("--pool")?.parse()?,
            "--refill-rounds" => a.refill_rounds = value("--refill-rounds")?.parse()?,
            "--pace" => a.pace = value("--pace")?,
            "--worker" => a.worker_bin = Some(value("--worker")?.into()),
            // libtest-style flags cargo may pass; a bare word is a name filter.
            _ => {}
        }
    }
    a.smoke = test || !bench;
    if a.pace != "full" && a.pace != "ready" {
        return Err(format!("--pace must be full or ready, not {}", a.pace).into());
    }
    if a.pool == 0 {
        return Err("--pool must be at least 1 (pool 0 is measured as the fresh case)".into());
    }
    Ok(a)
}

fn histogram() -> Histogram<u64> {
    // Nanoseconds, 1 ns to 10 minutes, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid histogram bounds")
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1));
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn summary(h: &Histogram<u64>) -> Value {
    json!({
        "runs": h.len(),
        "p50_us": us(h.value_at_quantile(0.50)),
        "p90_us": us(h.value_at_quantile(0.90)),
        "p99_us": us(h.value_at_quantile(0.99)),
        "max_us": us(h.max()),
        "mean_us": h.mean() / 1000.0,
    })
}

fn request(i: u64) -> ExecutionRequest {
    ExecutionRequest {
        execution_id: format!("bench-{i}"),
        namespace: String::new(),
        profile: "free".into(),
        language: Language::Python,
        code: "result = 1 + 1".into(),
        input_json: "{}".into(),
        timeout_ms: None,
    }
}

fn check(r: &ExecutionResult) -> Res<()> {
    if r.status != ExecStatus::Completed || r.result_json.as_deref() != Some("2") {
        return Err(format!(
            "unexpected result: status {:?}, result {:?}, error {:?}",
            r.status, r.result_json, r.error
        )
        .into());
    }
    Ok(())
}

/// The protocol floor: a no-op executor answering `2` at once.
struct Noop;

impl Executor for Noop {
    async fn execute(&self, req: ExecutionRequest, _cancel: CancellationToken) -> ExecutionResult {
        ExecutionResult {
            execution_id: req.execution_id,
            status: ExecStatus::Completed,
            result_json: Some("2".into()),
            stdout: String::new(),
            stderr: String::new(),
            error: None,
            duration_us: 0,
            usage: Usage::default(),
            calls: Vec::new(),
            truncated: Truncation::default(),
        }
    }

    fn stats(&self) -> WorkerStats {
        WorkerStats::default()
    }
}

async fn protocol_floor(runs: u64) -> Res<Histogram<u64>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("floor.sock");
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve_unix(
        path.clone(),
        Arc::new(Noop),
        ServeOptions::default(),
        shutdown.clone(),
    ));
    let client = connect(&path, Duration::from_secs(10), None).await?;
    let mut h = histogram();
    for i in 0..runs {
        let t = Instant::now();
        let r = client.execute(request(i)).await?;
        record(&mut h, t.elapsed());
        check(&r)?;
    }
    shutdown.cancel();
    server.await??;
    Ok(h)
}

/// Connects, retrying while the socket is not there yet.
async fn connect(path: &Path, within: Duration, child: Option<&mut Child>) -> Res<WorkerClient> {
    let deadline = Instant::now() + within;
    let mut child = child;
    loop {
        let opts = ClientOptions {
            peer_id: "worker_e2e bench".into(),
            ..ClientOptions::default()
        };
        match WorkerClient::connect_unix(path, opts).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => {}
        }
        if let Some(c) = child.as_deref_mut()
            && let Some(status) = c.try_wait()?
        {
            return Err(format!("paddock-worker exited during start-up: {status}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn python_pool(stats: &WorkerStats) -> Option<&PoolStats> {
    stats
        .pools
        .iter()
        .find(|p| p.profile == "free" && p.language == Language::Python)
}

/// Waits (pacing, not a test) until the Python pool holds `want` ready slots.
async fn wait_ready(client: &WorkerClient, want: u32, within: Duration) -> Res<PoolStats> {
    let deadline = Instant::now() + within;
    loop {
        let stats = client.stats().await?;
        let pool = python_pool(&stats).ok_or("the worker reports no free/python pool")?;
        if pool.ready >= want {
            return Ok(pool.clone());
        }
        if Instant::now() > deadline {
            return Err(
                format!("pool did not reach {want} ready slots in {within:?}: {pool:?}").into(),
            );
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

/// A `paddock-worker serve` process with its own temp dir; SIGTERM on drop.
struct WorkerProc {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl WorkerProc {
    fn start(bin: &Path, pool: u32) -> Res<WorkerProc> {
        let dir = tempfile::tempdir()?;
        let socket = dir.path().join("worker.sock");
        let config = dir.path().join("worker.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {data:?}\nlisten_unix = {sock:?}\ndefault_pool_target = 0\n\n\
                 [pools]\n\"free/python\" = {pool}\n\"free/typescript\" = 0\n",
                data = dir.path().join("data").display().to_string(),
                sock = socket.display().to_string(),
            ),
        )?;
        let log = std::fs::File::create(dir.path().join("worker.log"))?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        Ok(WorkerProc { child, dir, socket })
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("worker.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn worker_bin(args: &Args) -> Res<PathBuf> {
    let bin = match &args.worker_bin {
        Some(b) => b.clone(),
        None => {
            // target/<profile>/deps/worker_e2e-<hash> → target/<profile>/paddock-worker
            let exe = std::env::current_exe()?;
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .ok_or("cannot locate the target directory")?;
            profile_dir.join("paddock-worker")
        }
    };
    if !bin.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release -p paddock-worker --bins` first \
             (or set PADDOCK_WORKER_BIN)",
            bin.display()
        )
        .into());
    }
    Ok(bin)
}

/// Warm round trips, the worker-reported in-slot durations of the same executions, and
/// the refill figures.
/// What the warm case measured: round trips, the worker-reported time in the slot, the
/// idle gaps before each run (waiting for the pool) and the refill figures.
struct Warm {
    round_trip: Histogram<u64>,
    in_slot: Histogram<u64>,
    gaps: Histogram<u64>,
    refill: Value,
}

async fn warm(args: &Args, bin: &Path) -> Res<Warm> {
    let mut proc = WorkerProc::start(bin, args.pool)?;
    let client = connect(
        &proc.socket.clone(),
        Duration::from_secs(60),
        Some(&mut proc.child),
    )
    .await
    .map_err(|e| format!("{e}\nworker log:\n{}", proc.log_tail()))?;
    wait_ready(&client, args.pool, Duration::from_secs(180)).await?;
    let want = if args.pace == "full" { args.pool } else { 1 };
    let mut h = histogram();
    let mut in_slot = histogram();
    let mut gaps = histogram();
    let mut last_end = None;
    for i in 0..args.runs {
        wait_ready(&client, want, Duration::from_secs(60)).await?;
        let t = Instant::now();
        if let Some(end) = last_end {
            record(&mut gaps, t.duration_since(end));
        }
        let r = client.execute(request(i)).await?;
        record(&mut h, t.elapsed());
        record(&mut in_slot, Duration::from_micros(r.duration_us));
        check(&r).map_err(|e| format!("{e}\nworker log:\n{}", proc.log_tail()))?;
        last_end = Some(Instant::now());
    }
    // Refill: empty the full pool at once, time until it is full again.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rates = Vec::new();
    for round in 0..args.refill_rounds {
        let before = wait_ready(&client, args.pool, Duration::from_secs(180)).await?;
        let t = Instant::now();
        let batch = (0..u64::from(args.pool)).map(|k| {
            let client = client.clone();
            async move {
                client
                    .execute(request(1_000_000 + u64::from(round) * 1000 + k))
                    .await
            }
        });
        for r in futures::future::join_all(batch).await {
            check(&r?)?;
        }
        let after = wait_ready(&client, args.pool, Duration::from_secs(180)).await?;
        let secs = t.elapsed().as_secs_f64();
        let spawned = after.spawned_total.saturating_sub(before.spawned_total);
        rates.push(spawned as f64 / secs);
    }
    rates.sort_by(f64::total_cmp);
    let median = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
    let refill = json!({
        "pool": args.pool,
        "rounds": args.refill_rounds,
        "slots_per_second": median,
        "slots_per_second_per_core": median / cores as f64,
        "cores": cores,
        "all_rounds_slots_per_second": rates,
    });
    Ok(Warm {
        round_trip: h,
        in_slot,
        gaps,
        refill,
    })
}

/// The machine's floor for the warm case: a bare `/usr/bin/python3` (no jail, no worker,
/// no runner) already started and blocked on a pipe gets a length-prefixed JSON execute
/// frame, compiles and runs `result = 1 + 1` and answers a JSON result frame, with the
/// same idle gap before each run as the warm case had. Nothing of Paddock is on this path,
/// so it is the least any slot-per-process design can take here (cache and wake-up costs
/// after an idle gap included).
const BARE_PYTHON: &str = r#"
import os, json
def rd(n):
    b = b""
    while len(b) < n:
        c = os.read(0, n - len(b))
        if not c:
            raise SystemExit(0)
        b += c
    return b
os.write(1, b"\0\0\0\0")
while True:
    f = json.loads(rd(int.from_bytes(rd(4), "big")))
    g = {"__builtins__": __builtins__, "input_data": f["input"]}
    exec(compile(f["code"], "<code>", "exec"), g)
    out = json.dumps({"type": "result", "status": "completed", "result": json.dumps(g.get("result"))}).encode()
    os.write(1, len(out).to_bytes(4, "big") + out)
"#;

fn bare_python_floor(runs: u64, gap: Duration) -> Res<Histogram<u64>> {
    use std::io::{Read, Write};
    let mut child = Command::new("/usr/bin/python3")
        .args(["-I", "-S", "-c", BARE_PYTHON])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start /usr/bin/python3: {e}"))?;
    let (Some(mut to), Some(mut from)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("python3 without pipes".into());
    };
    let mut head = [0u8; 4];
    from.read_exact(&mut head)?;
    let body = json!({"type": "execute", "execution_id": "floor", "code": "result = 1 + 1",
        "input": {}, "timeout_ms": 10_000, "files": {}, "context": {}})
    .to_string();
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body.as_bytes());
    let mut h = histogram();
    let mut answer = Vec::new();
    for _ in 0..runs {
        std::thread::sleep(gap);
        let t = Instant::now();
        to.write_all(&frame)?;
        from.read_exact(&mut head)?;
        answer.resize(u32::from_be_bytes(head) as usize, 0);
        from.read_exact(&mut answer)?;
        record(&mut h, t.elapsed());
    }
    drop(to);
    let _ = child.wait();
    let v: Value = serde_json::from_slice(&answer)?;
    if v["result"] != "2" {
        return Err(format!("bare python answered {v}").into());
    }
    Ok(h)
}

async fn fresh(args: &Args, bin: &Path) -> Res<Histogram<u64>> {
    let mut proc = WorkerProc::start(bin, 0)?;
    let client = connect(
        &proc.socket.clone(),
        Duration::from_secs(60),
        Some(&mut proc.child),
    )
    .await
    .map_err(|e| format!("{e}\nworker log:\n{}", proc.log_tail()))?;
    let mut h = histogram();
    for i in 0..args.fresh_runs {
        let t = Instant::now();
        let r = client.execute(request(i)).await?;
        record(&mut h, t.elapsed());
        check(&r).map_err(|e| format!("{e}\nworker log:\n{}", proc.log_tail()))?;
    }
    Ok(h)
}

fn row(name: &str, h: &Histogram<u64>) -> String {
    format!(
        "{name:<34} {:>6} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
        h.len(),
        us(h.value_at_quantile(0.5)),
        us(h.value_at_quantile(0.9)),
        us(h.value_at_quantile(0.99)),
        us(h.max()),
    )
}

async fn run(args: Args) -> Res<()> {
    let floor_runs = if args.smoke { 50 } else { args.runs };
    let floor = protocol_floor(floor_runs).await?;
    if args.smoke {
        println!(
            "worker_e2e smoke: protocol floor p50 {:.1} µs over {} runs; real-worker part skipped \
             (run `cargo bench --bench worker_e2e` for it)",
            us(floor.value_at_quantile(0.5)),
            floor.len()
        );
        return Ok(());
    }
    let bin = worker_bin(&args)?;
    let Warm {
        round_trip: warm_h,
        in_slot: in_slot_h,
        gaps,
        refill,
    } = warm(&args, &bin).await?;
    let gap = Duration::from_nanos(gaps.value_at_quantile(0.5));
    let bare = {
        let runs = args.runs.min(500);
        tokio::task::spawn_blocking(move || bare_python_floor(runs, gap).map_err(|e| e.to_string()))
            .await??
    };
    let over_bare =
        warm_h.value_at_quantile(0.5) as f64 / bare.value_at_quantile(0.5).max(1) as f64;
    let fresh_h = fresh(&args, &bin).await?;
    let ratio = fresh_h.value_at_quantile(0.5) as f64 / warm_h.value_at_quantile(0.5).max(1) as f64;
    let warm_label = format!("warm slot (pool {}, pace {})", args.pool, args.pace);
    if args.json {
        let report = json!({
            "bench": "worker_e2e",
            "worker": bin.display().to_string(),
            "code": "result = 1 + 1",
            "profile": "free",
            "language": "python",
            "protocol_floor": summary(&floor),
            "warm": summary(&warm_h),
            "warm_in_slot_reported_by_worker": summary(&in_slot_h),
            "warm_idle_gap_before_each_run": summary(&gaps),
            "bare_python_floor": summary(&bare),
            "warm_over_bare_python_p50": over_bare,
            "warm_pace": args.pace,
            "warm_pool": args.pool,
            "fresh": summary(&fresh_h),
            "fresh_over_warm_p50": ratio,
            "refill": refill,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "worker_e2e: `result = 1 + 1`, python, profile free, round trip via WorkerClient over the unix socket"
    );
    println!(
        "{:<34} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "case", "runs", "p50 µs", "p90 µs", "p99 µs", "max µs"
    );
    println!("{}", row("protocol only (no-op executor)", &floor));
    println!("{}", row(&warm_label, &warm_h));
    println!(
        "{}",
        row("  of which in slot (worker-reported)", &in_slot_h)
    );
    println!(
        "{}",
        row(
            &format!(
                "bare python3 over a pipe, gap {:.1} ms",
                us(gap.as_nanos() as u64) / 1000.0
            ),
            &bare
        )
    );
    println!("{}", row("fresh jail (pool 0)", &fresh_h));
    println!("fresh / warm (p50): {ratio:.1}x");
    println!(
        "warm / bare python (p50): {over_bare:.2}x (idle gap before each warm run: p50 {:.1} ms; the bare row waits the same)",
        us(gap.as_nanos() as u64) / 1000.0
    );
    println!(
        "refill: {:.1} slots/s = {:.1} slots/s/core ({} cores; median of {} rounds emptying a pool of {})",
        refill["slots_per_second"].as_f64().unwrap_or(0.0),
        refill["slots_per_second_per_core"].as_f64().unwrap_or(0.0),
        refill["cores"],
        args.refill_rounds,
        args.pool
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("worker_e2e: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("worker_e2e: cannot start tokio: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker_e2e: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
