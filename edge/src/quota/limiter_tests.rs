//! Unit tests of [`super::Limiter`] with controlled time: every limit at its edge, the
//! month rollover, bucket refill, `Retry-After` values, guard release and rendering.

use std::sync::Arc;

use paddock_shared::ErrorCode;
use paddock_shared::model::Tier;

use super::config::{LimitTable, TierLimits};
use super::limiter::Limiter;
use super::month::Month;
use super::rejection::LimitKind;

/// 2026-11-21T20:30:00Z.
const NOW: u64 = 1_795_293_000_000;
/// Seconds from [`NOW`] to 2026-12-01T00:00:00Z.
const TO_RESET: u64 = 9 * 86_400 + 3 * 3600 + 1800;

fn limits(monthly: u64, per_minute: u32, burst: u32, concurrency: u32) -> TierLimits {
    TierLimits {
        monthly_executions: monthly,
        executions_per_minute: per_minute,
        execution_burst: burst,
        concurrent_executions: concurrency,
        management_per_minute: 6,
        management_burst: 2,
    }
}

fn limiter(l: TierLimits) -> Limiter {
    Limiter::new(LimitTable::default().with_tier(Tier::Free, l))
}

#[test]
fn quota_limit_minus_one_and_limit_pass_limit_plus_one_is_refused() {
    let lim = limiter(limits(5, 1_000, 1_000, 100));
    for n in 1..=5 {
        let a = lim.admit("acc", Tier::Free, NOW).expect("under the quota");
        assert_eq!((a.usage, a.limit, a.remaining()), (n, 5, 5 - n));
    }
    let r = lim
        .admit("acc", Tier::Free, NOW)
        .expect_err("over the quota");
    assert_eq!(r.kind, LimitKind::MonthlyQuota);
    assert_eq!(r.code(), ErrorCode::QuotaExceeded);
    assert_eq!((r.usage, r.limit, r.tier), (5, 5, Tier::Free));
    assert_eq!(r.retry_after_s, TO_RESET);
    assert_eq!(lim.executions("acc", NOW), 5);
    // Another account is untouched.
    assert!(lim.admit("other", Tier::Free, NOW).is_ok());
}

#[test]
fn the_quota_follows_the_tier_of_the_call() {
    let lim = limiter(limits(2, 1_000, 1_000, 100));
    for _ in 0..2 {
        drop(lim.admit("acc", Tier::Free, NOW).expect("free"));
    }
    assert!(lim.admit("acc", Tier::Free, NOW).is_err());
    // Upgraded: the builder limit applies to the same count at once.
    let a = lim.admit("acc", Tier::Builder, NOW).expect("builder");
    assert_eq!((a.usage, a.limit), (3, 25_000));
}

#[test]
fn a_new_month_resets_the_quota() {
    let lim = limiter(limits(1, 1_000, 1_000, 100));
    let dec = Month::new(2026, 12).start_unix_s() * 1000;
    drop(lim.admit("acc", Tier::Free, dec - 2_000).expect("first"));
    let r = lim.admit("acc", Tier::Free, dec - 1).expect_err("used up");
    assert_eq!(r.retry_after_s, 1);
    assert_eq!(r.month.to_string(), "2026-11");
    let a = lim.admit("acc", Tier::Free, dec).expect("new month");
    assert_eq!((a.usage, a.month.to_string().as_str()), (1, "2026-12"));
    assert_eq!(lim.executions("acc", dec), 1);
    assert_eq!(lim.usage("acc", Tier::Free, dec).remaining, 0);
}

#[test]
fn a_clock_stepping_back_does_not_reset_the_month() {
    let lim = limiter(limits(1, 1_000, 1_000, 100));
    let dec = Month::new(2026, 12).start_unix_s() * 1000;
    drop(lim.admit("acc", Tier::Free, dec).expect("december"));
    assert!(lim.admit("acc", Tier::Free, dec - 10).is_err());
}

#[test]
fn rate_burst_then_refill_with_retry_after_to_the_next_token() {
    // 60 a minute = one token a second; bucket of 3.
    let lim = limiter(limits(1_000, 60, 3, 100));
    for _ in 0..3 {
        drop(lim.admit("acc", Tier::Free, NOW).expect("burst"));
    }
    let r = lim.admit("acc", Tier::Free, NOW).expect_err("bucket empty");
    assert_eq!(r.kind, LimitKind::ExecutionRate);
    assert_eq!(r.code(), ErrorCode::RateLimited);
    assert_eq!((r.usage, r.limit, r.retry_after_s), (3, 60, 1));
    // Not counted: a refused request consumes no quota.
    assert_eq!(lim.executions("acc", NOW), 3);
    assert!(lim.admit("acc", Tier::Free, NOW + 999).is_err());
    drop(
        lim.admit("acc", Tier::Free, NOW + 1_000)
            .expect("refilled one token"),
    );
    assert!(lim.admit("acc", Tier::Free, NOW + 1_000).is_err());
    assert_eq!(lim.usage("acc", Tier::Free, NOW + 60_000).rate.available, 3);
}

#[test]
fn rate_retry_after_rounds_up_to_whole_seconds() {
    // 6 a minute: one token every 10 s.
    let lim = limiter(limits(1_000, 6, 1, 100));
    drop(lim.admit("acc", Tier::Free, NOW).expect("one"));
    assert_eq!(
        lim.admit("acc", Tier::Free, NOW)
            .expect_err("empty")
            .retry_after_s,
        10
    );
    assert_eq!(
        lim.admit("acc", Tier::Free, NOW + 8_500)
            .expect_err("empty")
            .retry_after_s,
        2
    );
    assert!(lim.admit("acc", Tier::Free, NOW + 10_000).is_ok());
}

#[test]
fn concurrency_limit_and_release_on_drop() {
    let lim = limiter(limits(1_000, 1_000, 1_000, 2));
    let a = lim.admit("acc", Tier::Free, NOW).expect("1");
    let b = lim.admit("acc", Tier::Free, NOW).expect("2");
    let r = lim.admit("acc", Tier::Free, NOW).expect_err("3 in flight");
    assert_eq!(r.kind, LimitKind::Concurrency);
    assert_eq!(r.code(), ErrorCode::ConcurrencyLimited);
    assert_eq!((r.usage, r.limit, r.retry_after_s), (2, 2, 1));
    assert_eq!(lim.usage("acc", Tier::Free, NOW).concurrency.in_flight, 2);
    // The refused one took neither a token nor quota.
    assert_eq!(lim.executions("acc", NOW), 2);
    assert_eq!(lim.usage("acc", Tier::Free, NOW).rate.available, 998);
    drop(a);
    let c = lim
        .admit("acc", Tier::Free, NOW)
        .expect("a slot was released");
    drop((b, c));
    assert_eq!(lim.usage("acc", Tier::Free, NOW).concurrency.in_flight, 0);
}

#[test]
fn checks_run_quota_then_rate_then_concurrency() {
    let lim = limiter(limits(2, 60, 2, 1));
    let held = lim.admit("acc", Tier::Free, NOW).expect("1");
    // Concurrency is what refuses while the bucket still has a token.
    assert_eq!(
        lim.admit("acc", Tier::Free, NOW).expect_err("busy").kind,
        LimitKind::Concurrency
    );
    drop(held);
    drop(lim.admit("acc", Tier::Free, NOW).expect("2"));
    // Quota used up and bucket empty: the quota answers.
    assert_eq!(
        lim.admit("acc", Tier::Free, NOW).expect_err("all").kind,
        LimitKind::MonthlyQuota
    );
}

#[test]
fn management_calls_have_their_own_bucket() {
    let lim = limiter(limits(1, 1_000, 1_000, 100));
    // 6 a minute, bucket of 2.
    lim.admit_management("acc", Tier::Free, NOW).expect("1");
    lim.admit_management("acc", Tier::Free, NOW).expect("2");
    let r = lim.admit_management("acc", Tier::Free, NOW).expect_err("3");
    assert_eq!(r.kind, LimitKind::ManagementRate);
    assert_eq!(r.code(), ErrorCode::RateLimited);
    assert_eq!((r.limit, r.retry_after_s), (6, 10));
    // Executions are not affected.
    assert!(lim.admit("acc", Tier::Free, NOW).is_ok());
    assert!(
        lim.admit_management("acc", Tier::Free, NOW + 10_000)
            .is_ok()
    );
}

#[test]
fn a_quota_rejection_renders_as_the_429_body() {
    let lim = limiter(limits(1, 1_000, 1_000, 100));
    drop(lim.admit("acc", Tier::Free, NOW).expect("1"));
    let e = lim
        .admit("acc", Tier::Free, NOW)
        .expect_err("2")
        .to_api_error();
    assert_eq!(e.code.http_status(), 429);
    assert_eq!(e.retry_after, Some(TO_RESET));
    let body = e.body();
    assert_eq!(body["code"], "QUOTA_EXCEEDED");
    assert_eq!(body["usage"], 1);
    assert_eq!(body["limit"], 1);
    assert_eq!(body["tier"], "free");
    assert_eq!(body.as_object().map(|o| o.len()), Some(5), "{body}");
    assert_eq!(
        body["message"],
        "Monthly execution quota of the free tier is used up (1 of 1 executions in 2026-11); it resets at 2026-12-01T00:00:00Z (in 790200 s) — wait for the reset or move the account to a higher tier"
    );
}

#[test]
fn usage_report_of_a_new_and_a_busy_account() {
    let lim = limiter(limits(10, 60, 5, 3));
    let fresh = lim.usage("nobody", Tier::Free, NOW);
    assert_eq!(
        fresh.to_json(),
        serde_json::json!({
            "tier": "free", "month": "2026-11", "executions": 0, "limit": 10, "remaining": 10,
            "resets_at": "2026-12-01T00:00:00Z",
            "rate": {"limit_per_minute": 60, "burst": 5, "available": 5},
            "concurrency": {"limit": 3, "in_flight": 0}
        })
    );
    let _held = lim.admit("acc", Tier::Free, NOW).expect("1");
    drop(lim.admit("acc", Tier::Free, NOW).expect("2"));
    let u = lim.usage("acc", Tier::Free, NOW);
    assert_eq!((u.executions, u.remaining), (2, 8));
    assert_eq!((u.rate.available, u.concurrency.in_flight), (3, 1));
}

#[test]
fn seed_dirty_and_mark_flushed() {
    let lim = limiter(limits(10, 1_000, 1_000, 100));
    let nov = Month::of_unix_ms(NOW);
    lim.seed("acc", nov, 7);
    assert!(lim.dirty().is_empty(), "a seeded count is already on disk");
    assert_eq!(lim.executions("acc", NOW), 7);
    drop(lim.admit("acc", Tier::Free, NOW).expect("8"));
    let d = lim.dirty();
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].account.as_str(), d[0].month, d[0].count),
        ("acc", nov, 8)
    );
    lim.mark_flushed(&d);
    assert!(lim.dirty().is_empty());
    // An older month on disk never overrides a newer one in memory.
    lim.seed("acc", Month::new(2026, 10), 100);
    assert_eq!(lim.executions("acc", NOW), 8);
}

#[test]
fn concurrent_admissions_never_exceed_the_quota() {
    let lim = Arc::new(limiter(limits(1_000, 1_000_000, 1_000_000, 1_000_000)));
    let admitted: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let lim = Arc::clone(&lim);
                s.spawn(move || {
                    (0..500)
                        .filter(|_| lim.admit("acc", Tier::Free, NOW).is_ok())
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    assert_eq!(admitted, 1_000);
    assert_eq!(lim.executions("acc", NOW), 1_000);
}

#[test]
fn a_charge_is_all_or_nothing() {
    use super::charge::Charge;
    let lim = limiter(limits(5, 1_000, 1_000, 3));
    // Two executions of three concurrency slots, held.
    let held = lim
        .admit_charge("acc", Tier::Free, Charge::Executions(2), NOW)
        .expect("two fit");
    assert_eq!(held.admissions().len(), 2);
    // Two more do not fit the concurrency limit: the first one is given back.
    let r = lim
        .admit_charge("acc", Tier::Free, Charge::Executions(2), NOW)
        .expect_err("only one slot left");
    assert_eq!(r.kind, LimitKind::Concurrency);
    let u = lim.usage("acc", Tier::Free, NOW);
    assert_eq!((u.executions, u.concurrency.in_flight), (2, 2));
    drop(held);
    assert_eq!(lim.usage("acc", Tier::Free, NOW).concurrency.in_flight, 0);
    // Free requests hold nothing and count nothing.
    let free = lim
        .admit_charge("acc", Tier::Free, Charge::Free, NOW)
        .expect("free");
    assert!(free.admissions().is_empty());
    assert_eq!(lim.executions("acc", NOW), 2);
    // Management: a burst of 2; a request of 3 takes none.
    let r = lim
        .admit_charge("acc", Tier::Free, Charge::Management(3), NOW)
        .expect_err("over the burst");
    assert_eq!(r.kind, LimitKind::ManagementRate);
    lim.admit_charge("acc", Tier::Free, Charge::Management(2), NOW)
        .expect("the burst is intact");
    assert!(lim.admit_management("acc", Tier::Free, NOW).is_err());
}
