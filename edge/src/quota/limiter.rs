//! The limit checks, in memory and lock-light: [`Limiter::admit`] checks the monthly quota,
//! then the per-minute rate, then concurrency, and returns an [`Admission`] guard that holds
//! the concurrency slot until dropped. Pure: time is passed in, nothing touches a disk (the
//! sled adapter in [`super::durable`] seeds and flushes the counters).
//!
//! Accounts live in [`SHARDS`] read-mostly maps; each account's state is atomics only:
//! - quota: one `AtomicU64` packing `month index << 44 | executions`, so a month rollover
//!   and the increment are one compare-and-swap (no overshoot, no lost reset);
//! - rates: lock-free token buckets ([`Gcra`]);
//! - concurrency: an `AtomicU32` of executions in flight.
//!
//! An over-quota request costs one hash, one shared read lock and one atomic load, and
//! writes nothing shared, so a flood from one account does not slow the others.
//!
//! Check order and refunds: the quota is *checked* first (load), the rate token and the
//! concurrency slot are then taken, and the quota is *reserved* last (compare-and-swap
//! bounded by the limit); a later failure gives back what earlier steps took, so a refused
//! request consumes nothing.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use paddock_shared::model::Tier;

use super::charge::Charge;
use super::config::{LimitTable, TierLimits, tier_index};
use super::gcra::{Gcra, RateParams};
use super::month::Month;
use super::rejection::{ConcurrencyUsage, LimitKind, RateUsage, Rejection, UsageReport};

/// Number of account map shards.
pub const SHARDS: usize = 64;
/// Bits of the packed quota word that hold the count.
const COUNT_BITS: u32 = 44;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

fn pack(month: Month, count: u64) -> u64 {
    (u64::from(month.index()) << COUNT_BITS) | (count & COUNT_MASK)
}

fn unpack(v: u64) -> (Month, u64) {
    (Month::from_index((v >> COUNT_BITS) as u32), v & COUNT_MASK)
}

/// Executions counted in `month` given a packed word; a word of an earlier month counts 0.
fn count_in(v: u64, month: Month) -> u64 {
    let (m, c) = unpack(v);
    if m >= month { c } else { 0 }
}

/// One account's counters, on cache lines of its own (an account flooding rejections
/// reads its `quota` word in a loop; a neighbour's writes must not share those lines).
#[derive(Debug, Default)]
#[repr(align(128))]
struct AccountState {
    /// `month << 44 | executions`; a later month than the clock's (clock stepped back) is
    /// kept and counted, never reset.
    quota: AtomicU64,
    /// The packed word last written to disk (the sled adapter's dirty check).
    flushed: AtomicU64,
    exec_rate: Gcra,
    mgmt_rate: Gcra,
    in_flight: AtomicU32,
}

impl AccountState {
    /// Reserves one execution in `month` unless `limit` is reached.
    ///
    /// Returns the count after the reservation, or the count that refused it.
    fn reserve(&self, month: Month, limit: u64) -> Result<u64, u64> {
        let mut cur = self.quota.load(Ordering::Acquire);
        loop {
            let (m, c) = unpack(cur);
            let (m, c) = if m >= month { (m, c) } else { (month, 0) };
            if c >= limit {
                return Err(c);
            }
            match self.quota.compare_exchange_weak(
                cur,
                pack(m, c + 1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(c + 1),
                Err(v) => cur = v,
            }
        }
    }

    fn enter(&self, limit: u32) -> Result<(), u32> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .map(|_| ())
    }

    fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

type Shard = RwLock<HashMap<Box<str>, Arc<AccountState>>>;

/// A shard on its own cache lines, so readers of neighbouring shards (whose read locks
/// write the lock word) do not bounce each other's lines.
#[derive(Default)]
#[repr(align(128))]
struct Padded(Shard);

/// Quota, rate and concurrency limits of every account. Share it in an `Arc`.
pub struct Limiter {
    table: LimitTable,
    exec_params: [RateParams; 4],
    mgmt_params: [RateParams; 4],
    hasher: std::collections::hash_map::RandomState,
    shards: Box<[Padded]>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// An admitted execution: holds its concurrency slot until dropped. The execution is
/// already counted against the month (a failed or canceled execution still counts).
#[derive(Debug)]
pub struct Admission {
    state: Arc<AccountState>,
    /// Executions this month, this one included.
    pub usage: u64,
    /// The monthly limit.
    pub limit: u64,
    /// The month it was counted in.
    pub month: Month,
}

impl Admission {
    /// Executions left this month after this one.
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.usage)
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.state.leave();
    }
}

/// What an admitted request holds until its reply is complete: the [`Admission`]s of its
/// executions (none for free and management requests).
#[derive(Debug, Default)]
pub struct Held {
    admissions: Vec<Admission>,
}

impl Held {
    /// The admissions (executions) held.
    pub fn admissions(&self) -> &[Admission] {
        &self.admissions
    }
}

/// A counter that changed since it was last written (see [`Limiter::dirty`]).
#[derive(Debug, Clone)]
pub struct DirtyCount {
    pub account: String,
    pub month: Month,
    pub count: u64,
    packed: u64,
    state: Arc<AccountState>,
}

fn micros(now_ms: u64) -> u64 {
    now_ms.saturating_mul(1000)
}

fn retry_secs(wait_us: u64) -> u64 {
    wait_us.div_ceil(1_000_000).max(1)
}

impl Limiter {
    /// A limiter with validated limits (see [`super::LimitsConfig::table`]).
    pub fn new(table: LimitTable) -> Limiter {
        let exec_params = table
            .tiers
            .map(|t| RateParams::per_minute(t.executions_per_minute, t.execution_burst));
        let mgmt_params = table
            .tiers
            .map(|t| RateParams::per_minute(t.management_per_minute, t.management_burst));
        Limiter {
            table,
            exec_params,
            mgmt_params,
            hasher: std::collections::hash_map::RandomState::new(),
            shards: (0..SHARDS).map(|_| Padded::default()).collect(),
        }
    }

    /// The limits in force.
    pub fn table(&self) -> &LimitTable {
        &self.table
    }

    /// The limits of `tier`.
    pub fn limits(&self, tier: Tier) -> &TierLimits {
        self.table.tier(tier)
    }

    fn shard(&self, account: &str) -> &Shard {
        let h = self.hasher.hash_one(account);
        &self.shards[(h as usize) % SHARDS].0
    }

    fn existing(&self, account: &str) -> Option<Arc<AccountState>> {
        let map = self
            .shard(account)
            .read()
            .unwrap_or_else(|e| e.into_inner());
        map.get(account).cloned()
    }

    /// Runs `f` on the account's state, creating it on first sight.
    fn with_state<R>(&self, account: &str, f: impl FnOnce(&Arc<AccountState>) -> R) -> R {
        let shard = self.shard(account);
        {
            let map = shard.read().unwrap_or_else(|e| e.into_inner());
            if let Some(st) = map.get(account) {
                return f(st);
            }
        }
        let st = {
            let mut map = shard.write().unwrap_or_else(|e| e.into_inner());
            Arc::clone(map.entry(account.into()).or_default())
        };
        f(&st)
    }

    /// Admits one execution of `account` (of `tier`) at `now_ms` (unix milliseconds):
    /// checks the monthly quota, then the per-minute rate, then concurrency.
    ///
    /// # Errors
    /// The [`Rejection`] of the first limit that refuses; a refused request consumes nothing.
    pub fn admit(&self, account: &str, tier: Tier, now_ms: u64) -> Result<Admission, Rejection> {
        let lim = self.table.tier(tier);
        let params = self.exec_params[tier_index(tier)];
        let month = Month::of_unix_ms(now_ms);
        let now_us = micros(now_ms);
        let quota = |usage| Rejection {
            kind: LimitKind::MonthlyQuota,
            usage,
            limit: lim.monthly_executions,
            tier,
            retry_after_s: month.seconds_to_reset(now_ms),
            month,
        };
        self.with_state(account, |st| {
            let used = count_in(st.quota.load(Ordering::Acquire), month);
            if used >= lim.monthly_executions {
                return Err(quota(used));
            }
            if let Err(wait_us) = st.exec_rate.try_take(params, now_us) {
                return Err(Rejection {
                    kind: LimitKind::ExecutionRate,
                    usage: params.burst,
                    limit: u64::from(lim.executions_per_minute),
                    tier,
                    retry_after_s: retry_secs(wait_us),
                    month,
                });
            }
            if let Err(n) = st.enter(lim.concurrent_executions) {
                st.exec_rate.refund(params);
                return Err(Rejection {
                    kind: LimitKind::Concurrency,
                    usage: u64::from(n),
                    limit: u64::from(lim.concurrent_executions),
                    tier,
                    retry_after_s: self.table.concurrency_retry_after_s,
                    month,
                });
            }
            match st.reserve(month, lim.monthly_executions) {
                Ok(usage) => Ok(Admission {
                    state: Arc::clone(st),
                    usage,
                    limit: lim.monthly_executions,
                    month,
                }),
                Err(used) => {
                    st.leave();
                    st.exec_rate.refund(params);
                    Err(quota(used))
                }
            }
        })
    }

    /// Admits one mutating create-tool call (make_*, update_*, delete_*, add_*, …) of
    /// `account` at `now_ms` against the tier's management bucket.
    ///
    /// # Errors
    /// A [`LimitKind::ManagementRate`] rejection (`RATE_LIMITED`).
    pub fn admit_management(
        &self,
        account: &str,
        tier: Tier,
        now_ms: u64,
    ) -> Result<(), Rejection> {
        let lim = self.table.tier(tier);
        let params = self.mgmt_params[tier_index(tier)];
        self.with_state(account, |st| {
            st.mgmt_rate
                .try_take(params, micros(now_ms))
                .map_err(|wait_us| Rejection {
                    kind: LimitKind::ManagementRate,
                    usage: params.burst,
                    limit: u64::from(lim.management_per_minute),
                    tier,
                    retry_after_s: retry_secs(wait_us),
                    month: Month::of_unix_ms(now_ms),
                })
        })
    }

    /// Admits what one request costs ([`Charge`]): `n` executions or `n` management calls,
    /// all or nothing — when the k-th is refused, the ones already taken are given back
    /// (quota, rate tokens, concurrency), so a refused request consumes nothing.
    ///
    /// The returned [`Held`] keeps the concurrency slots until dropped: hold it until the
    /// reply is complete.
    ///
    /// # Errors
    /// The [`Rejection`] of the first limit that refuses.
    pub fn admit_charge(
        &self,
        account: &str,
        tier: Tier,
        charge: Charge,
        now_ms: u64,
    ) -> Result<Held, Rejection> {
        match charge {
            Charge::Free => Ok(Held::default()),
            Charge::Executions(n) => {
                let mut held = Held {
                    admissions: Vec::with_capacity(n.min(16) as usize),
                };
                for _ in 0..n {
                    match self.admit(account, tier, now_ms) {
                        Ok(a) => held.admissions.push(a),
                        Err(r) => {
                            for a in held.admissions.drain(..) {
                                self.revoke(a, tier);
                            }
                            return Err(r);
                        }
                    }
                }
                Ok(held)
            }
            Charge::Management(n) => {
                let params = self.mgmt_params[tier_index(tier)];
                for i in 0..n {
                    if let Err(r) = self.admit_management(account, tier, now_ms) {
                        if i > 0
                            && let Some(st) = self.existing(account)
                        {
                            for _ in 0..i {
                                st.mgmt_rate.refund(params);
                            }
                        }
                        return Err(r);
                    }
                }
                Ok(Held::default())
            }
        }
    }

    /// Gives back everything `a` took: its count in the month, its rate token and (by
    /// dropping it) its concurrency slot. Only for an execution that never started.
    pub fn revoke(&self, a: Admission, tier: Tier) {
        let _ = a
            .state
            .quota
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                let (m, c) = unpack(cur);
                (m == a.month && c > 0).then(|| pack(m, c - 1))
            });
        a.state.exec_rate.refund(self.exec_params[tier_index(tier)]);
        drop(a);
    }

    /// Executions of `account` counted in the month of `now_ms`.
    pub fn executions(&self, account: &str, now_ms: u64) -> u64 {
        self.existing(account).map_or(0, |st| {
            count_in(st.quota.load(Ordering::Acquire), Month::of_unix_ms(now_ms))
        })
    }

    /// The usage report of `account` (of `tier`) at `now_ms`.
    pub fn usage(&self, account: &str, tier: Tier, now_ms: u64) -> UsageReport {
        let lim = self.table.tier(tier);
        let params = self.exec_params[tier_index(tier)];
        let month = Month::of_unix_ms(now_ms);
        let st = self.existing(account);
        let executions = st
            .as_ref()
            .map_or(0, |s| count_in(s.quota.load(Ordering::Acquire), month));
        UsageReport {
            tier,
            month: month.to_string(),
            executions,
            limit: lim.monthly_executions,
            remaining: lim.monthly_executions.saturating_sub(executions),
            resets_at: month.next().start_rfc3339(),
            rate: RateUsage {
                limit_per_minute: lim.executions_per_minute,
                burst: lim.execution_burst,
                available: st.as_ref().map_or(params.burst, |s| {
                    s.exec_rate.available(params, micros(now_ms))
                }),
            },
            concurrency: ConcurrencyUsage {
                limit: lim.concurrent_executions,
                in_flight: st
                    .as_ref()
                    .map_or(0, |s| s.in_flight.load(Ordering::Acquire)),
            },
        }
    }

    /// Sets a counter loaded from disk: the account's count for `month` becomes at least
    /// `count` (a later month already in memory wins), and is marked as written.
    pub fn seed(&self, account: &str, month: Month, count: u64) {
        self.with_state(account, |st| {
            let _ = st
                .quota
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                    let (m, c) = unpack(cur);
                    if m > month || (m == month && c >= count) {
                        None
                    } else {
                        Some(pack(month, count.min(COUNT_MASK)))
                    }
                });
            let now = st.quota.load(Ordering::Acquire);
            if unpack(now) == (month, count) {
                st.flushed.store(now, Ordering::Release);
            }
        });
    }

    /// Counters changed since they were last marked written.
    pub fn dirty(&self) -> Vec<DirtyCount> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let map = shard.0.read().unwrap_or_else(|e| e.into_inner());
            for (account, st) in map.iter() {
                let packed = st.quota.load(Ordering::Acquire);
                if packed != st.flushed.load(Ordering::Acquire) {
                    let (month, count) = unpack(packed);
                    out.push(DirtyCount {
                        account: account.to_string(),
                        month,
                        count,
                        packed,
                        state: Arc::clone(st),
                    });
                }
            }
        }
        out
    }

    /// Marks counters returned by [`Limiter::dirty`] as written (after they reached disk).
    pub fn mark_flushed(&self, written: &[DirtyCount]) {
        for d in written {
            d.state.flushed.store(d.packed, Ordering::Release);
        }
    }
}
