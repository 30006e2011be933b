//! The limits hot path (edge::quota): rejections of an over-quota account, admissions of a
//! well-behaved one, and the same admission while another thread floods rejections — beside
//! a naive global-mutex counter in the same run. `cargo bench --bench quota`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use criterion::{Criterion, criterion_group, criterion_main};
use paddock_edge::quota::{LimitTable, Limiter, Month, TierLimits};
use paddock_shared::model::Tier;

/// 2026-11-21T20:30:00Z.
const NOW: u64 = 1_795_293_000_000;

fn limiter() -> Arc<Limiter> {
    let roomy = TierLimits {
        monthly_executions: (1 << 44) - 1,
        executions_per_minute: 1_000_000,
        execution_burst: 1_000_000,
        concurrent_executions: 1_000_000,
        management_per_minute: 60,
        management_burst: 10,
    };
    let over = TierLimits {
        monthly_executions: 1,
        ..roomy
    };
    let l = Limiter::new(
        LimitTable::default()
            .with_tier(Tier::Free, over)
            .with_tier(Tier::Enterprise, roomy),
    );
    // 10 000 other accounts, so the maps are not trivially small.
    for i in 0..10_000 {
        l.seed(&format!("acc_{i:032x}"), Month::of_unix_ms(NOW), 1);
    }
    drop(l.admit("acc_flood", Tier::Free, NOW));
    Arc::new(l)
}

/// The naive version: one global mutex around a map of monthly counts.
struct Naive(Mutex<HashMap<String, u64>>);

impl Naive {
    fn admit(&self, account: &str, limit: u64) -> Result<u64, u64> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let c = m.entry(account.to_owned()).or_insert(0);
        if *c >= limit {
            return Err(*c);
        }
        *c += 1;
        Ok(*c)
    }
}

fn bench(c: &mut Criterion) {
    let l = limiter();
    let mut g = c.benchmark_group("quota");
    g.bench_function("reject_over_quota", |b| {
        b.iter(|| black_box(l.admit(black_box("acc_flood"), Tier::Free, NOW).is_err()))
    });
    g.bench_function("reject_over_quota_rendered_429", |b| {
        b.iter(|| {
            black_box(
                l.admit(black_box("acc_flood"), Tier::Free, NOW)
                    .map_err(|r| r.to_api_error())
                    .is_err(),
            )
        })
    });
    let naive = Naive(Mutex::new(HashMap::from([("acc_flood".to_owned(), 1)])));
    g.bench_function("naive_mutex_reject", |b| {
        b.iter(|| black_box(naive.admit(black_box("acc_flood"), 1).is_err()))
    });
    g.bench_function("admit_and_release", |b| {
        b.iter(|| {
            black_box(
                l.admit(black_box("acc_good"), Tier::Enterprise, NOW)
                    .is_ok(),
            )
        })
    });

    // The well-behaved account while another thread rejects the flooder as fast as it can.
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = {
        let (l, stop) = (Arc::clone(&l), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += u64::from(l.admit("acc_flood", Tier::Free, NOW).is_err());
            }
            n
        })
    };
    g.bench_function("admit_and_release_during_flood", |b| {
        b.iter(|| {
            black_box(
                l.admit(black_box("acc_good"), Tier::Enterprise, NOW)
                    .is_ok(),
            )
        })
    });
    stop.store(true, Ordering::Relaxed);
    let flooded = flooder.join().unwrap_or(0);
    println!("flooding thread: {flooded} rejections during the measurement");

    // The naive version under the same flood: every account waits on one mutex.
    let naive = Arc::new(naive);
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = {
        let (naive, stop) = (Arc::clone(&naive), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += u64::from(naive.admit("acc_flood", 1).is_err());
            }
            n
        })
    };
    g.bench_function("naive_admit_during_flood", |b| {
        b.iter(|| black_box(naive.admit(black_box("acc_good"), u64::MAX).is_ok()))
    });
    stop.store(true, Ordering::Relaxed);
    let flooded = flooder.join().unwrap_or(0);
    println!("naive flooding thread: {flooded} rejections during the measurement");
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
