//! Durable monthly counters in sled: no overshoot under threads with flushes running,
//! counts that survive a reopen, a background flush that reaches disk, and a kill -9 that
//! loses exactly the executions admitted after the last flush (an under-count, never more).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paddock_edge::quota::{LimitTable, Limiter, Month, TierLimits, UsageCounters};
use paddock_shared::model::Tier;

/// 2026-11-21T20:30:00Z.
const NOW: u64 = 1_795_293_000_000;
/// Set (to the database directory) in the child process that admits until killed.
const CHILD_ENV: &str = "PADDOCK_QUOTA_CRASH_CHILD";
const FLUSHED: u64 = 500;
const UNFLUSHED: u64 = 300;

fn limiter(monthly: u64) -> Arc<Limiter> {
    let l = TierLimits {
        monthly_executions: monthly,
        executions_per_minute: 1_000_000,
        execution_burst: 1_000_000,
        concurrent_executions: 1_000_000,
        management_per_minute: 60,
        management_burst: 10,
    };
    Arc::new(Limiter::new(LimitTable::default().with_tier(Tier::Free, l)))
}

/// Opens sled, polling while a dropped handle's background threads still hold its lock.
fn open_db(dir: &Path) -> sled::Db {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot reopen {}: {e}", dir.display()),
        }
    }
}

fn counters(db: &sled::Db, monthly: u64, flush: Duration) -> UsageCounters {
    UsageCounters::open_in(db, limiter(monthly), flush, NOW).unwrap()
}

#[test]
fn threads_never_exceed_the_limit_while_flushes_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let c = counters(&db, 1_000, Duration::from_millis(5));
    let admitted: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    (0..400)
                        .filter(|_| c.limiter().admit("acc", Tier::Free, NOW).is_ok())
                        .count()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(admitted, 1_000);
    c.shutdown().unwrap();
    assert_eq!(c.stored("acc", Month::of_unix_ms(NOW)).unwrap(), 1_000);
}

#[test]
fn counts_survive_a_reopen_and_only_the_current_month_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open_db(dir.path());
        let c = counters(&db, 10, Duration::from_secs(60));
        for _ in 0..7 {
            drop(c.limiter().admit("acc", Tier::Free, NOW).unwrap());
        }
        // A count of last month, as a long-running edge would have left it.
        c.limiter().seed("old", Month::new(2026, 10), 3);
        drop(c.limiter().admit(
            "old",
            Tier::Free,
            Month::new(2026, 10).start_unix_s() * 1000,
        ));
        // Dropped without shutdown(): Drop flushes.
    }
    let db = open_db(dir.path());
    let c = counters(&db, 10, Duration::from_secs(60));
    assert_eq!(c.limiter().executions("acc", NOW), 7);
    assert_eq!(c.stored("old", Month::new(2026, 10)).unwrap(), 4);
    assert_eq!(c.limiter().executions("old", NOW), 0);
    for n in 8..=10 {
        assert_eq!(c.limiter().admit("acc", Tier::Free, NOW).unwrap().usage, n);
    }
    let r = c.limiter().admit("acc", Tier::Free, NOW).unwrap_err();
    assert_eq!((r.usage, r.limit), (10, 10));
}

#[test]
fn the_background_flusher_writes_within_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let c = counters(&db, 100, Duration::from_millis(20));
    for _ in 0..5 {
        drop(c.limiter().admit("acc", Tier::Free, NOW).unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    // Marked clean only after the batch and sled's flush returned.
    while !c.limiter().dirty().is_empty() {
        assert!(Instant::now() < deadline, "not flushed in 10 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(c.stored("acc", Month::of_unix_ms(NOW)).unwrap(), 5);
}

/// The child: admits [`FLUSHED`] executions and flushes, then [`UNFLUSHED`] more without a
/// flush (the interval is a minute), reports on stdout and waits to be killed.
#[test]
fn crash_child_admitter() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let db = open_db(Path::new(&dir));
    let c = counters(&db, 1_000_000, Duration::from_secs(60));
    for _ in 0..FLUSHED {
        drop(c.limiter().admit("acc", Tier::Free, NOW).unwrap());
    }
    c.flush().unwrap();
    println!("flushed {FLUSHED}");
    for _ in 0..UNFLUSHED {
        drop(c.limiter().admit("acc", Tier::Free, NOW).unwrap());
    }
    println!("admitted {}", FLUSHED + UNFLUSHED);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_kill_9_loses_only_what_was_admitted_since_the_last_flush() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child_admitter",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    // libtest prints its own header and test name on the same stdout.
    while !seen.iter().any(|l: &String| l.contains("admitted ")) {
        seen.push(
            lines
                .next()
                .expect("the child reports before the kill")
                .unwrap(),
        );
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        seen.iter()
            .any(|l| l.ends_with(&format!("flushed {FLUSHED}"))),
        "{seen:?}"
    );

    let db = open_db(dir.path());
    let c = counters(&db, 1_000_000, Duration::from_secs(60));
    // Exactly the flushed count: the later executions are lost (an under-count), none twice.
    assert_eq!(c.limiter().executions("acc", NOW), FLUSHED);
    assert_eq!(
        c.limiter().admit("acc", Tier::Free, NOW).unwrap().usage,
        FLUSHED + 1
    );
}
