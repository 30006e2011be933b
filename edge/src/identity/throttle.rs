//! Login throttling: at most [`MAX_FAILURES`] failed logins per client address within
//! [`WINDOW`]; beyond that, logins from the address are refused until the oldest failure
//! leaves the window. In memory (a restart forgets), bounded by [`MAX_TRACKED`] addresses.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per window.
pub const MAX_FAILURES: usize = 10;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(300);
/// Addresses tracked at most (the table is cleared of stale entries when full).
pub const MAX_TRACKED: usize = 100_000;

/// Per-address failure windows.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<Option<IpAddr>, VecDeque<Instant>>>,
}

impl LoginThrottle {
    /// `Some(retry_after_secs)` when `addr` may not try now.
    pub fn check(&self, addr: Option<IpAddr>, now: Instant) -> Option<u64> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let q = map.get_mut(&addr)?;
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        if q.len() >= MAX_FAILURES {
            let oldest = q.front().copied().unwrap_or(now);
            let left = WINDOW.saturating_sub(now.duration_since(oldest));
            Some(left.as_secs().max(1))
        } else {
            None
        }
    }

    /// Records one failure.
    pub fn failed(&self, addr: Option<IpAddr>, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED {
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        let q = map.entry(addr).or_default();
        q.push_back(now);
        while q.len() > MAX_FAILURES {
            q.pop_front();
        }
    }

    /// Forgets an address's failures (after a successful login).
    pub fn succeeded(&self, addr: Option<IpAddr>) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&addr);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_block_until_the_window_passes() {
        let t = LoginThrottle::default();
        let a = Some("10.0.0.1".parse().unwrap());
        let b = Some("10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            assert_eq!(t.check(a, t0), None, "attempt {i}");
            t.failed(a, t0);
        }
        assert_eq!(t.check(a, t0), Some(300));
        assert_eq!(t.check(b, t0), None);
        assert_eq!(t.check(a, t0 + Duration::from_secs(100)), Some(200));
        assert_eq!(t.check(a, t0 + WINDOW), None);
    }

    #[test]
    fn success_clears() {
        let t = LoginThrottle::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            t.failed(None, t0);
        }
        assert!(t.check(None, t0).is_some());
        t.succeeded(None);
        assert_eq!(t.check(None, t0), None);
    }
}
