//! Crash safety of the replica: a writer killed with SIGKILL between (or during) batches,
//! or dropped without a flush, reopens with its applied sequence never ahead of its data
//! (the data is exactly the history up to the applied sequence) and resumes from there.

mod replica_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use paddock_shared::replication::{Reply, Snapshot, State};
use paddock_worker::replica::Replica;
use replica_support::{history, reopen};

/// Set (to the replica directory) in the child process that writes until killed.
const CHILD_ENV: &str = "PADDOCK_REPLICA_CRASH_CHILD";
const BATCH: u64 = 25;
const FLUSH_AT: u64 = 1000;
/// The child stops by itself here if nobody kills it.
const CHILD_LIMIT: u64 = 200_000;

fn expected(upto: u64) -> Snapshot {
    State::fold(history(1, upto).iter().map(|e| &e.op)).to_snapshot(upto)
}

/// The child: applies the history in batches of [`BATCH`], flushes once at [`FLUSH_AT`],
/// reports every batch on stdout, and keeps going until killed. A no-op in a normal run.
#[test]
fn crash_child_writer() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let replica = Replica::open(dir).unwrap();
    let mut seq = replica.applied_seq();
    while seq < CHILD_LIMIT {
        replica.apply_batch(&history(seq + 1, seq + BATCH)).unwrap();
        seq += BATCH;
        if seq == FLUSH_AT {
            replica.flush().unwrap();
            println!("flushed {seq}");
        } else {
            println!("applied {seq}");
        }
    }
}

#[test]
fn a_killed_writer_reopens_consistent_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child_writer",
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
    let mut flushed = false;
    let mut last_seen = 0;
    // Kill it well after the flush, while it is applying unflushed batches.
    while last_seen < FLUSH_AT + 40 * BATCH {
        let line = lines.next().expect("child wrote until the kill").unwrap();
        if let Some(n) = line.strip_prefix("flushed ") {
            flushed = true;
            last_seen = n.parse().unwrap();
        } else if let Some(n) = line.strip_prefix("applied ") {
            last_seen = n.parse().unwrap();
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(flushed);

    let replica = reopen(dir.path());
    let applied = replica.applied_seq();
    println!("killed after seq {last_seen}; reopened at {applied}");
    assert!(
        applied >= FLUSH_AT,
        "the flushed prefix survives (reopened at {applied})"
    );
    assert!(applied.is_multiple_of(BATCH), "batches are atomic");
    assert_eq!(
        replica.snapshot().unwrap(),
        expected(applied),
        "data is exactly the history up to {applied}"
    );

    // Resume where the replica says it is.
    let out = replica
        .apply_batch(&history(applied + 1, applied + 10))
        .unwrap();
    assert_eq!(out.reply, Reply::Ack(applied + 10));
    assert_eq!(replica.snapshot().unwrap(), expected(applied + 10));
}

#[test]
fn a_replica_dropped_without_flush_reopens_consistent() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3u64 {
        let replica = reopen(dir.path());
        let applied = replica.applied_seq();
        assert_eq!(
            replica.snapshot().unwrap(),
            expected(applied),
            "round {round}"
        );
        replica
            .apply_batch(&history(applied + 1, applied + 100))
            .unwrap();
        // Dropped here, no flush.
    }
    let replica = reopen(dir.path());
    assert_eq!(replica.snapshot().unwrap(), expected(replica.applied_seq()));
}
