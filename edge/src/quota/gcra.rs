//! A lock-free token bucket (GCRA, the generic cell rate algorithm) on one `AtomicU64`:
//! the "theoretical arrival time" in microseconds. Pure: time is passed in.
//!
//! With `interval = 60 s / per_minute` and a bucket of `burst` tokens, a request at `now`
//! is admitted when `max(tat, now) + interval - now <= burst * interval`, and then `tat`
//! becomes `max(tat, now) + interval`. This is exactly a bucket of `burst` tokens refilled
//! at one token per `interval`; a full bucket is `tat <= now`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Microseconds in a minute.
const MINUTE_US: u64 = 60_000_000;

/// The shape of a bucket: refill interval and capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateParams {
    /// Microseconds per token.
    pub interval_us: u64,
    /// Bucket capacity in tokens (≥ 1).
    pub burst: u64,
}

impl RateParams {
    /// `per_minute` tokens a minute (≥ 1) in a bucket of `burst` (≥ 1).
    pub fn per_minute(per_minute: u32, burst: u32) -> RateParams {
        RateParams {
            interval_us: MINUTE_US / u64::from(per_minute.max(1)),
            burst: u64::from(burst.max(1)),
        }
    }

    fn tolerance_us(self) -> u64 {
        self.interval_us.saturating_mul(self.burst)
    }
}

/// One bucket. A new bucket is full.
#[derive(Debug, Default)]
pub struct Gcra {
    tat_us: AtomicU64,
}

impl Gcra {
    /// Takes one token at `now_us`.
    ///
    /// # Errors
    /// The wait in microseconds until a token will be available.
    pub fn try_take(&self, p: RateParams, now_us: u64) -> Result<(), u64> {
        let mut tat = self.tat_us.load(Ordering::Relaxed);
        loop {
            let new = tat.max(now_us) + p.interval_us;
            let ahead = new - now_us;
            if ahead > p.tolerance_us() {
                return Err(ahead - p.tolerance_us());
            }
            match self
                .tat_us
                .compare_exchange_weak(tat, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(cur) => tat = cur,
            }
        }
    }

    /// Gives back a token taken by [`Gcra::try_take`] (a later check rejected the request).
    pub fn refund(&self, p: RateParams) {
        let _ = self
            .tat_us
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(p.interval_us))
            });
    }

    /// Whole tokens available at `now_us`.
    pub fn available(&self, p: RateParams, now_us: u64) -> u64 {
        let ahead = self.tat_us.load(Ordering::Relaxed).saturating_sub(now_us);
        p.tolerance_us().saturating_sub(ahead) / p.interval_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_795_293_000_000_000;

    #[test]
    fn burst_then_one_token_per_interval() {
        let p = RateParams::per_minute(60, 3); // one token a second, bucket of 3
        let b = Gcra::default();
        assert_eq!(b.available(p, T0), 3);
        for _ in 0..3 {
            assert_eq!(b.try_take(p, T0), Ok(()));
        }
        assert_eq!(b.available(p, T0), 0);
        // The 4th waits exactly one interval.
        assert_eq!(b.try_take(p, T0), Err(1_000_000));
        assert_eq!(b.try_take(p, T0 + 400_000), Err(600_000));
        // One interval later: exactly one token.
        assert_eq!(b.available(p, T0 + 1_000_000), 1);
        assert_eq!(b.try_take(p, T0 + 1_000_000), Ok(()));
        assert_eq!(b.try_take(p, T0 + 1_000_000), Err(1_000_000));
        // Long idle: refilled to the burst, never beyond.
        assert_eq!(b.available(p, T0 + 3_600_000_000), 3);
    }

    #[test]
    fn refund_gives_the_token_back() {
        let p = RateParams::per_minute(60, 1);
        let b = Gcra::default();
        assert_eq!(b.try_take(p, T0), Ok(()));
        assert!(b.try_take(p, T0).is_err());
        b.refund(p);
        assert_eq!(b.available(p, T0), 1);
        assert_eq!(b.try_take(p, T0), Ok(()));
    }

    #[test]
    fn sustained_rate_matches_per_minute() {
        let p = RateParams::per_minute(600, 10);
        let b = Gcra::default();
        let mut admitted = 0;
        // One attempt every millisecond for a minute.
        for ms in 0..60_000u64 {
            if b.try_take(p, T0 + ms * 1000).is_ok() {
                admitted += 1;
            }
        }
        // The burst of 10 at once, then one every 100 ms (at 100 ms … 59.9 s).
        assert_eq!(admitted, 10 + 599);
    }
}
