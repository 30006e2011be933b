//! The leader's plan for one follower: stream log entries from where it is, or send a
//! snapshot when the log no longer holds them or the follower is too far behind.

/// Beyond this many missing entries a snapshot is sent even when the log still holds
/// them: replaying a long history costs more than copying the state.
pub const DEFAULT_SNAPSHOT_LAG: u64 = 100_000;

/// Why a follower gets a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnapshotReason {
    /// The log was truncated past the first entry the follower needs.
    Truncated,
    /// The follower lacks more than [`Leader::snapshot_lag`] entries.
    TooFarBehind,
}

/// What to send a follower that needs everything from `from_seq` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plan {
    /// The follower has everything committed: send new entries as they commit.
    UpToDate,
    /// Send the entries `from..=to` (in batches), then new ones as they commit.
    Entries { from: u64, to: u64 },
    /// Send a snapshot of the current state, then entries after it.
    Snapshot(SnapshotReason),
    /// The follower claims entries the leader never committed (the edge lost the tail of
    /// its log, or the worker followed another edge): send a snapshot that the follower
    /// installs unconditionally ([`Follower::reset`](super::Follower::reset)).
    Diverged { follower_next: u64, committed: u64 },
}

/// The leader's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leader {
    /// A follower missing more entries than this gets a snapshot.
    pub snapshot_lag: u64,
}

impl Default for Leader {
    fn default() -> Leader {
        Leader {
            snapshot_lag: DEFAULT_SNAPSHOT_LAG,
        }
    }
}

impl Leader {
    /// Plans what to send a follower whose first missing sequence is `from_seq`
    /// ([`Follower::next_seq`](super::Follower::next_seq); 0 is read as 1), when the log
    /// holds the entries `oldest_retained..=committed` (`oldest_retained` is
    /// `committed + 1` when it holds none).
    pub fn plan(&self, from_seq: u64, oldest_retained: u64, committed: u64) -> Plan {
        let from = from_seq.max(1);
        let next = committed.saturating_add(1);
        if from > next {
            Plan::Diverged {
                follower_next: from,
                committed,
            }
        } else if from == next {
            Plan::UpToDate
        } else if from < oldest_retained {
            Plan::Snapshot(SnapshotReason::Truncated)
        } else if committed - from >= self.snapshot_lag {
            Plan::Snapshot(SnapshotReason::TooFarBehind)
        } else {
            Plan::Entries {
                from,
                to: committed,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Leader = Leader { snapshot_lag: 100 };

    #[test]
    fn a_caught_up_follower_waits_for_new_entries() {
        assert_eq!(L.plan(1, 1, 0), Plan::UpToDate);
        assert_eq!(L.plan(0, 1, 0), Plan::UpToDate);
        assert_eq!(L.plan(11, 1, 10), Plan::UpToDate);
        // Even when the log retains nothing.
        assert_eq!(L.plan(11, 11, 10), Plan::UpToDate);
    }

    #[test]
    fn a_follower_within_the_log_gets_entries() {
        assert_eq!(L.plan(1, 1, 10), Plan::Entries { from: 1, to: 10 });
        assert_eq!(L.plan(0, 1, 10), Plan::Entries { from: 1, to: 10 });
        assert_eq!(L.plan(5, 5, 10), Plan::Entries { from: 5, to: 10 });
        assert_eq!(L.plan(10, 3, 10), Plan::Entries { from: 10, to: 10 });
    }

    #[test]
    fn a_follower_before_the_retained_log_gets_a_snapshot() {
        assert_eq!(L.plan(4, 5, 10), Plan::Snapshot(SnapshotReason::Truncated));
        assert_eq!(L.plan(1, 11, 10), Plan::Snapshot(SnapshotReason::Truncated));
    }

    #[test]
    fn a_follower_too_far_behind_gets_a_snapshot() {
        // 100 missing entries (1..=100) are still replayed, 101 are not.
        assert_eq!(L.plan(1, 1, 100), Plan::Entries { from: 1, to: 100 });
        assert_eq!(
            L.plan(1, 1, 101),
            Plan::Snapshot(SnapshotReason::TooFarBehind)
        );
        assert_eq!(
            Leader::default().plan(1, 1, 101),
            Plan::Entries { from: 1, to: 101 }
        );
    }

    #[test]
    fn a_follower_ahead_of_the_log_has_diverged() {
        assert_eq!(
            L.plan(12, 1, 10),
            Plan::Diverged {
                follower_next: 12,
                committed: 10
            }
        );
        assert_eq!(
            L.plan(2, 1, 0),
            Plan::Diverged {
                follower_next: 2,
                committed: 0
            }
        );
    }
}
