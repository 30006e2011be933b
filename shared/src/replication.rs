//! Replication of the control state from the edge to workers, as pure state machines:
//! the replicated [`State`] and its [`Snapshot`], the [`Follower`] that decides what to do
//! with each batch of log entries, and the [`Leader`] plan that picks entries or a
//! snapshot for a follower. No I/O: the edge store and the worker's sled replica are
//! adapters around these types.
//!
//! # Protocol, in one paragraph
//!
//! The edge appends every mutation to a log `seq → ReplOp` (sequence numbers start at 1,
//! no gaps). A worker subscribes with the first sequence it lacks
//! ([`Follower::next_seq`]); the edge answers with [`Leader::plan`]: entries from that
//! sequence, or a snapshot when the log no longer holds them (or the worker is too far
//! behind). For every batch the worker asks [`Follower::decide`] which entries are new,
//! applies them durably together with the new applied sequence, then
//! [`Follower::commit`]s, which yields the [`Reply`] to send: `Ack(seq)`, or
//! `NeedFrom(seq)` when the batch skipped entries. A snapshot larger than a frame
//! travels as [`SnapshotPart`]s ([`Snapshot::into_parts`]) that the follower puts back
//! together with a [`SnapshotAssembler`] before installing it. Only what code execution needs is
//! replicated: namespaces, services, functions, versions and the secret-free view of
//! remote MCP servers — never accounts, keys, key digests, URLs or credentials.

mod follower;
mod leader;
mod parts;
mod state;

pub use follower::{ApplyOutcome, Decision, Follower, FollowerError, Gap, Reply, SnapshotDecision};
pub use leader::{DEFAULT_SNAPSHOT_LAG, Leader, Plan, SnapshotReason};
pub use parts::{SnapshotAssembler, SnapshotPart, SnapshotPartError};
pub use state::{Snapshot, State, Write, writes};
