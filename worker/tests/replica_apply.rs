//! The sled replica against the pure state machine: batches, duplicates, gaps, reopen,
//! snapshots, reads for the functions package, namespace stamps and throughput.

mod replica_support;

use std::time::Instant;

use paddock_shared::model::ReplOp;
use paddock_shared::replication::{Gap, Reply, Snapshot, State};
use paddock_worker::replica::{Replica, SnapshotOutcome};
use replica_support::*;

fn expected(entries: &[paddock_shared::model::ReplEntry], upto: u64) -> Snapshot {
    State::fold(entries.iter().filter(|e| e.seq <= upto).map(|e| &e.op)).to_snapshot(upto)
}

#[test]
fn batches_apply_in_order_and_reopen_resumes_at_the_applied_seq() {
    let dir = tempfile::tempdir().unwrap();
    let all = history(1, 60);
    {
        let replica = Replica::open(dir.path()).unwrap();
        assert_eq!(replica.applied_seq(), 0);
        for chunk in all[..50].chunks(7) {
            let out = replica.apply_batch(chunk).unwrap();
            assert_eq!(out.reply, Reply::Ack(chunk.last().unwrap().seq));
            assert_eq!(out.applied, chunk.len());
        }
        assert_eq!(replica.applied_seq(), 50);
        assert_eq!(replica.snapshot().unwrap(), expected(&all, 50));
        replica.flush().unwrap();
    }
    let replica = reopen(dir.path());
    assert_eq!((replica.applied_seq(), replica.next_seq()), (50, 51));
    assert_eq!(replica.snapshot().unwrap(), expected(&all, 50));
    // A resent overlap is skipped, the rest applied.
    let out = replica.apply_batch(&all[44..]).unwrap();
    assert_eq!((out.duplicates, out.applied, out.applied_seq), (6, 10, 60));
    assert_eq!(replica.snapshot().unwrap(), expected(&all, 60));
}

#[test]
fn a_gap_applies_the_prefix_and_asks_from_the_hole() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path()).unwrap();
    let entries = numbered(
        1,
        [
            ns("a"),
            svc("a", "s"),
            func("a", "s", "f", 1),
            func("a", "s", "g", 1),
        ],
    );
    let batch = [entries[0].clone(), entries[1].clone(), entries[3].clone()];
    let out = replica.apply_batch(&batch).unwrap();
    assert_eq!(
        out.gap,
        Some(Gap {
            expected: 3,
            found: 4
        })
    );
    assert_eq!(out.reply, Reply::NeedFrom(3));
    assert_eq!(replica.applied_seq(), 2);
    assert!(
        replica.function("a", "s", "g").unwrap().is_none(),
        "nothing past the hole is stored"
    );
    let out = replica.apply_batch(&entries[2..]).unwrap();
    assert_eq!(out.reply, Reply::Ack(4));
    assert_eq!(replica.snapshot().unwrap(), expected(&entries, 4));
}

#[test]
fn a_long_generated_history_matches_the_pure_state_at_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path()).unwrap();
    let all = history(1, 1500);
    let mut at = 0;
    // Uneven batch sizes, including batches that put and then cascade-delete the same keys.
    for size in [1usize, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144].iter().cycle() {
        if at >= all.len() {
            break;
        }
        let end = (at + size).min(all.len());
        replica.apply_batch(&all[at..end]).unwrap();
        at = end;
        let seq = all[end - 1].seq;
        assert_eq!(
            replica.snapshot().unwrap(),
            expected(&all, seq),
            "after seq {seq}"
        );
    }
    let snap = replica.snapshot().unwrap();
    assert!(
        snap.versions.len() > 50 && !snap.functions.is_empty(),
        "history exercises the replica"
    );
}

#[test]
fn a_batch_that_puts_then_deletes_a_service_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path()).unwrap();
    replica
        .apply_batch(&numbered(1, [svc("a", "s"), func("a", "s", "old", 1)]))
        .unwrap();
    let batch = numbered(
        3,
        [
            func("a", "s", "new", 1),
            func("a", "s", "new", 2),
            func("a", "s2", "keep", 1),
            del_svc("a", "s"),
        ],
    );
    replica.apply_batch(&batch).unwrap();
    let snap = replica.snapshot().unwrap();
    assert!(snap.services.is_empty());
    assert_eq!(
        snap.functions
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["keep"]
    );
    assert_eq!(snap.versions.len(), 1);
}

#[test]
fn reads_serve_the_functions_package() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path()).unwrap();
    let ops = [
        ns("a"),
        ns("ab"),
        svc("a", "zeta"),
        svc("a", "alpha"),
        func("a", "zeta", "f", 1),
        func("a", "alpha", "x", 1),
        func("a", "alpha", "x", 2),
        func("a", "alpha", "b", 1),
        func("ab", "alpha", "other", 1),
        // Current version 3 that was never replicated: left out of the package.
        ReplOp::PutFunction {
            function: function("a", "alpha", "broken", 3),
            version: None,
        },
    ];
    replica.apply_batch(&numbered(1, ops)).unwrap();

    let got = replica.namespace_functions("a").unwrap();
    let names: Vec<_> = got
        .iter()
        .map(|(f, v)| (f.service.as_str(), f.name.as_str(), v.version))
        .collect();
    assert_eq!(
        names,
        [("alpha", "b", 1), ("alpha", "x", 2), ("zeta", "f", 1)]
    );
    assert!(
        got.iter()
            .all(|(f, v)| f.current_version == v.version && f.name == v.function)
    );

    let services: Vec<_> = replica
        .services("a")
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(services, ["alpha", "zeta"]);
    assert_eq!(
        replica.namespace("ab").unwrap().map(|n| n.name),
        Some("ab".into())
    );
    assert!(replica.namespace("nope").unwrap().is_none());
    assert_eq!(
        replica
            .function("a", "alpha", "x")
            .unwrap()
            .map(|f| f.current_version),
        Some(2)
    );
    assert!(replica.function("a", "alpha", "nope").unwrap().is_none());
    assert_eq!(
        replica.version("a", "alpha", "x", 1).unwrap(),
        Some(version("a", "alpha", "x", 1))
    );
    assert!(replica.version("a", "alpha", "x", 3).unwrap().is_none());
    assert!(replica.namespace_functions("missing").unwrap().is_empty());
}

#[test]
fn stamps_change_only_for_the_namespaces_an_entry_touches() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path()).unwrap();
    assert_eq!(replica.namespace_stamp("a").unwrap(), 0);
    replica
        .apply_batch(&numbered(1, [ns("a"), ns("b"), func("a", "s", "f", 1)]))
        .unwrap();
    assert_eq!(replica.namespace_stamp("a").unwrap(), 3);
    assert_eq!(replica.namespace_stamp("b").unwrap(), 2);
    assert_eq!(replica.namespace_stamp("c").unwrap(), 0);
    replica
        .apply_batch(&numbered(4, [del_svc("b", "s"), func("a", "s", "f", 2)]))
        .unwrap();
    assert_eq!(replica.namespace_stamp("b").unwrap(), 4);
    let (stamp, functions) = replica.namespace_functions_stamped("a").unwrap();
    assert_eq!((stamp, functions[0].1.version), (5, 2));
    // A snapshot may change anything: every stamp moves to its sequence.
    let snap = Snapshot::from_entries(&numbered(1, [ns("a"), ns("b")]));
    let snap = Snapshot { seq: 20, ..snap };
    replica.install_snapshot(&snap).unwrap();
    for n in ["a", "b", "c"] {
        assert_eq!(replica.namespace_stamp(n).unwrap(), 20, "{n}");
    }
    replica.apply_batch(&numbered(21, [ns("b")])).unwrap();
    assert_eq!(
        (
            replica.namespace_stamp("a").unwrap(),
            replica.namespace_stamp("b").unwrap()
        ),
        (20, 21)
    );
}

#[test]
fn a_snapshot_replaces_stale_state_and_an_older_one_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = numbered(1, [ns("new"), svc("new", "s"), func("new", "s", "f", 7)]);
    let snap = Snapshot {
        seq: 100,
        ..Snapshot::from_entries(&fresh)
    };
    {
        let replica = Replica::open(dir.path()).unwrap();
        replica
            .apply_batch(&numbered(
                1,
                [
                    ns("old"),
                    svc("old", "s"),
                    func("old", "s", "f", 1),
                    func("new", "s", "stale", 1),
                ],
            ))
            .unwrap();
        let out = replica.install_snapshot(&snap).unwrap();
        assert_eq!(out, SnapshotOutcome::Installed { seq: 100 });
        assert_eq!(out.reply(), Reply::Ack(100));
        assert_eq!(replica.applied_seq(), 100);
        assert_eq!(replica.snapshot().unwrap(), snap);
        assert!(replica.function("new", "s", "stale").unwrap().is_none());

        let older = Snapshot {
            seq: 50,
            ..Snapshot::default()
        };
        let out = replica.install_snapshot(&older).unwrap();
        assert_eq!(
            out,
            SnapshotOutcome::Stale {
                snapshot: 50,
                applied: 100
            }
        );
        assert_eq!(out.reply(), Reply::Ack(100));
        assert_eq!(replica.snapshot().unwrap(), snap);

        // Entries continue after the snapshot.
        assert_eq!(
            replica
                .apply_batch(&numbered(100, [ns("dup"), ns("x")]))
                .unwrap()
                .reply,
            Reply::Ack(101)
        );
        replica.flush().unwrap();
    }
    let replica = reopen(dir.path());
    assert_eq!(replica.applied_seq(), 101);
    assert!(replica.namespace("x").unwrap().is_some());
    assert!(replica.namespace("dup").unwrap().is_none());
    assert!(replica.namespace("old").unwrap().is_none());
}

#[test]
fn reset_installs_a_snapshot_older_than_the_replica() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path()).unwrap();
    replica.apply_batch(&history(1, 30)).unwrap();
    let snap = Snapshot::from_entries(&numbered(1, [ns("edge")]));
    assert_eq!(replica.reset(&snap).unwrap(), Reply::Ack(1));
    assert_eq!(replica.applied_seq(), 1);
    assert_eq!(replica.snapshot().unwrap(), snap);
    assert_eq!(
        replica
            .apply_batch(&numbered(2, [ns("next")]))
            .unwrap()
            .reply,
        Reply::Ack(2)
    );
}

#[test]
fn ten_thousand_entries_apply_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path()).unwrap();
    let all = history(1, 10_000);
    let started = Instant::now();
    for chunk in all.chunks(500) {
        replica.apply_batch(chunk).unwrap();
    }
    let took = started.elapsed();
    assert_eq!(replica.applied_seq(), 10_000);
    println!(
        "replica apply: 10000 entries in batches of 500 in {:.1} ms = {:.0} entries/s (debug build)",
        took.as_secs_f64() * 1e3,
        10_000.0 / took.as_secs_f64()
    );
    assert_eq!(replica.snapshot().unwrap(), expected(&all, 10_000));
}
