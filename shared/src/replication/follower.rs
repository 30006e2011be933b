//! The follower step: for each batch of log entries (or snapshot) decide what to apply,
//! and after the caller has stored it durably, advance and produce the reply.
//!
//! The two phases keep storage out of the state machine: [`Follower::decide`] is pure,
//! the adapter writes the decided entries together with the new applied sequence in one
//! transaction, and only then calls [`Follower::commit`]. A crash between the two leaves
//! the follower where its storage says it is.

use serde::{Deserialize, Serialize};

use crate::model::ReplEntry;

/// What a follower tells the leader after a batch or a snapshot (it travels in the
/// worker's acknowledgement frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reply {
    /// Everything up to and including this sequence is applied.
    Ack(u64),
    /// The batch skipped entries: send again from this sequence (everything before it is
    /// applied, so this also acknowledges `seq - 1`). The leader answers with
    /// [`Leader::plan`](super::Leader::plan): entries, or a snapshot.
    NeedFrom(u64),
}

/// A batch that does not continue where the follower is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gap {
    /// The sequence the follower needed next.
    pub expected: u64,
    /// The sequence it found instead.
    pub found: u64,
}

/// What to do with one batch: the entries to apply, in order. Made by
/// [`Follower::decide`], passed back to [`Follower::commit`] once they are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "apply the entries, then commit the decision"]
pub struct Decision<'a> {
    base: u64,
    apply: Vec<&'a ReplEntry>,
    duplicates: usize,
    gap: Option<Gap>,
}

impl<'a> Decision<'a> {
    /// The new entries to apply, in order; their sequences are `base + 1, base + 2, …`.
    pub fn entries(&self) -> &[&'a ReplEntry] {
        &self.apply
    }

    /// The applied sequence the decision was made at.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The applied sequence once the entries are applied (store it with them).
    pub fn target(&self) -> u64 {
        self.apply.last().map_or(self.base, |e| e.seq)
    }

    /// How many entries of the batch were applied already and are skipped.
    pub fn duplicates(&self) -> usize {
        self.duplicates
    }

    /// Set when the batch skipped entries (the entries before the gap are still applied).
    pub fn gap(&self) -> Option<Gap> {
        self.gap
    }
}

/// The result of committing a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Entries applied by this batch.
    pub applied: usize,
    /// Entries skipped because they were applied already.
    pub duplicates: usize,
    /// The applied sequence after the batch.
    pub applied_seq: u64,
    /// Set when the batch skipped entries.
    pub gap: Option<Gap>,
    /// What to tell the leader.
    pub reply: Reply,
}

/// Whether to install a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotDecision {
    /// The snapshot is at or after the applied sequence: replace the state with it.
    Install,
    /// The snapshot is older than what is applied: ignore it, acknowledge `applied`.
    Stale { snapshot: u64, applied: u64 },
}

/// A misuse of the follower by its adapter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowerError {
    /// A decision was committed after the follower had moved on.
    #[error(
        "decision made at applied sequence {decided_at} committed at applied sequence {applied}"
    )]
    StaleDecision { decided_at: u64, applied: u64 },
    /// A snapshot older than the applied sequence was installed.
    #[error("snapshot at sequence {snapshot} is older than the applied sequence {applied}")]
    StaleSnapshot { snapshot: u64, applied: u64 },
}

/// The follower's replication position: everything up to `applied` is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Follower {
    applied: u64,
}

impl Follower {
    /// A follower whose storage has applied everything up to `applied` (0: nothing).
    pub fn new(applied: u64) -> Follower {
        Follower { applied }
    }

    /// The last applied sequence.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The first sequence the follower lacks: subscribe from here.
    pub fn next_seq(&self) -> u64 {
        self.applied.saturating_add(1)
    }

    /// Decides what to do with `batch`: entries with a sequence ≤ the applied one are
    /// duplicates and skipped; the following entries are applied while their sequences
    /// follow on without a hole; the first entry after a hole ends the batch with a
    /// [`Gap`] (it and the entries after it are dropped).
    pub fn decide<'a>(&self, batch: &'a [ReplEntry]) -> Decision<'a> {
        let mut expected = self.next_seq();
        let mut apply = Vec::with_capacity(batch.len());
        let mut duplicates = 0;
        let mut gap = None;
        for entry in batch {
            if entry.seq < expected {
                duplicates += 1;
            } else if entry.seq == expected {
                apply.push(entry);
                expected = expected.saturating_add(1);
            } else {
                gap = Some(Gap {
                    expected,
                    found: entry.seq,
                });
                break;
            }
        }
        Decision {
            base: self.applied,
            apply,
            duplicates,
            gap,
        }
    }

    /// Advances past a decision whose entries are stored, and says what to reply.
    ///
    /// # Errors
    /// [`FollowerError::StaleDecision`] when the decision was made at another applied
    /// sequence (a second applier, or a decision committed twice).
    pub fn commit(&mut self, decision: &Decision<'_>) -> Result<ApplyOutcome, FollowerError> {
        if decision.base != self.applied {
            return Err(FollowerError::StaleDecision {
                decided_at: decision.base,
                applied: self.applied,
            });
        }
        self.applied = decision.target();
        let reply = match decision.gap {
            Some(_) => Reply::NeedFrom(self.next_seq()),
            None => Reply::Ack(self.applied),
        };
        Ok(ApplyOutcome {
            applied: decision.apply.len(),
            duplicates: decision.duplicates,
            applied_seq: self.applied,
            gap: decision.gap,
            reply,
        })
    }

    /// Whether to install a snapshot taken at `snapshot_seq`. A snapshot at the applied
    /// sequence is installed (it is idempotent and repairs a damaged replica).
    pub fn decide_snapshot(&self, snapshot_seq: u64) -> SnapshotDecision {
        if snapshot_seq >= self.applied {
            SnapshotDecision::Install
        } else {
            SnapshotDecision::Stale {
                snapshot: snapshot_seq,
                applied: self.applied,
            }
        }
    }

    /// Advances to a snapshot that is stored; returns the acknowledgement.
    ///
    /// # Errors
    /// [`FollowerError::StaleSnapshot`] when the snapshot is older than the applied
    /// sequence (use [`Follower::reset`] when that is intended).
    pub fn install_snapshot(&mut self, snapshot_seq: u64) -> Result<Reply, FollowerError> {
        match self.decide_snapshot(snapshot_seq) {
            SnapshotDecision::Install => Ok(self.reset(snapshot_seq)),
            SnapshotDecision::Stale { snapshot, applied } => {
                Err(FollowerError::StaleSnapshot { snapshot, applied })
            }
        }
    }

    /// Moves to `snapshot_seq` unconditionally, even backwards: after a stored reset
    /// snapshot, when the leader found the follower ahead of its log
    /// ([`Plan::Diverged`](super::Plan::Diverged)).
    pub fn reset(&mut self, snapshot_seq: u64) -> Reply {
        self.applied = snapshot_seq;
        Reply::Ack(snapshot_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::state::tests::ns;

    fn entries(seqs: &[u64]) -> Vec<ReplEntry> {
        seqs.iter()
            .map(|&seq| ReplEntry {
                seq,
                op: ns(&format!("n{seq}")),
            })
            .collect()
    }

    fn seqs(d: &Decision<'_>) -> Vec<u64> {
        d.entries().iter().map(|e| e.seq).collect()
    }

    #[test]
    fn a_contiguous_batch_is_applied_in_order_and_acked() {
        let mut f = Follower::new(0);
        assert_eq!(f.next_seq(), 1);
        let batch = entries(&[1, 2, 3]);
        let d = f.decide(&batch);
        assert_eq!(seqs(&d), [1, 2, 3]);
        assert_eq!(
            (d.base(), d.target(), d.duplicates(), d.gap()),
            (0, 3, 0, None)
        );
        let out = f.commit(&d).unwrap();
        assert_eq!(
            out,
            ApplyOutcome {
                applied: 3,
                duplicates: 0,
                applied_seq: 3,
                gap: None,
                reply: Reply::Ack(3)
            }
        );
        assert_eq!((f.applied(), f.next_seq()), (3, 4));
    }

    #[test]
    fn duplicates_are_skipped_and_the_rest_applied() {
        let mut f = Follower::new(4);
        let batch = entries(&[3, 4, 5, 6]);
        let d = f.decide(&batch);
        assert_eq!(seqs(&d), [5, 6]);
        assert_eq!(d.duplicates(), 2);
        assert_eq!(f.commit(&d).unwrap().reply, Reply::Ack(6));
    }

    #[test]
    fn an_all_duplicate_batch_changes_nothing_and_reacks() {
        let mut f = Follower::new(5);
        let batch = entries(&[1, 2, 5]);
        let d = f.decide(&batch);
        assert!(d.entries().is_empty());
        assert_eq!(d.target(), 5);
        let out = f.commit(&d).unwrap();
        assert_eq!(
            (out.applied, out.duplicates, out.reply),
            (0, 3, Reply::Ack(5))
        );
        assert_eq!(f.applied(), 5);
    }

    #[test]
    fn an_empty_batch_reacks() {
        let mut f = Follower::new(2);
        let d = f.decide(&[]);
        assert_eq!(f.commit(&d).unwrap().reply, Reply::Ack(2));
    }

    #[test]
    fn a_batch_starting_after_a_hole_asks_from_the_hole() {
        let mut f = Follower::new(3);
        let batch = entries(&[6, 7]);
        let d = f.decide(&batch);
        assert!(d.entries().is_empty());
        assert_eq!(
            d.gap(),
            Some(Gap {
                expected: 4,
                found: 6
            })
        );
        let out = f.commit(&d).unwrap();
        assert_eq!(out.reply, Reply::NeedFrom(4));
        assert_eq!(f.applied(), 3);
    }

    #[test]
    fn a_hole_inside_a_batch_applies_the_prefix_then_asks() {
        let mut f = Follower::new(0);
        let batch = entries(&[1, 2, 4, 5]);
        let d = f.decide(&batch);
        assert_eq!(seqs(&d), [1, 2]);
        assert_eq!(
            d.gap(),
            Some(Gap {
                expected: 3,
                found: 4
            })
        );
        assert_eq!(f.commit(&d).unwrap().reply, Reply::NeedFrom(3));
        assert_eq!(f.applied(), 2);
    }

    #[test]
    fn a_replayed_entry_inside_a_batch_is_a_duplicate() {
        let f = Follower::new(0);
        let batch = entries(&[1, 2, 1, 3]);
        let d = f.decide(&batch);
        assert_eq!(seqs(&d), [1, 2, 3]);
        assert_eq!(d.duplicates(), 1);
    }

    #[test]
    fn a_decision_commits_once_and_only_at_its_base() {
        let mut f = Follower::new(0);
        let batch = entries(&[1]);
        let d = f.decide(&batch);
        f.commit(&d).unwrap();
        assert_eq!(
            f.commit(&d),
            Err(FollowerError::StaleDecision {
                decided_at: 0,
                applied: 1
            })
        );
        assert_eq!(f.applied(), 1);
    }

    #[test]
    fn snapshots_at_or_after_applied_install_older_ones_are_stale() {
        let mut f = Follower::new(10);
        assert_eq!(f.decide_snapshot(10), SnapshotDecision::Install);
        assert_eq!(
            f.decide_snapshot(9),
            SnapshotDecision::Stale {
                snapshot: 9,
                applied: 10
            }
        );
        assert_eq!(
            f.install_snapshot(9),
            Err(FollowerError::StaleSnapshot {
                snapshot: 9,
                applied: 10
            })
        );
        assert_eq!(f.applied(), 10);
        assert_eq!(f.install_snapshot(50), Ok(Reply::Ack(50)));
        assert_eq!(f.next_seq(), 51);
        // Entries continue after the snapshot; older ones are duplicates.
        let batch = entries(&[50, 51]);
        let d = f.decide(&batch);
        assert_eq!((seqs(&d), d.duplicates()), (vec![51], 1));
    }

    #[test]
    fn reset_moves_backwards() {
        let mut f = Follower::new(10);
        assert_eq!(f.reset(4), Reply::Ack(4));
        assert_eq!(f.next_seq(), 5);
    }
}
