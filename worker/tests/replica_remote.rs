//! Remote MCP servers in the sled replica: puts, replacements and deletes per namespace,
//! reads sorted by name, namespace stamps, snapshots that replace them, reopen.
#![allow(clippy::unwrap_used)]

mod replica_support;

use paddock_shared::replication::{Snapshot, State};
use paddock_worker::replica::Replica;
use replica_support::*;

fn names(replica: &Replica, ns: &str) -> Vec<(String, Vec<String>)> {
    replica
        .remote_servers(ns)
        .unwrap()
        .into_iter()
        .map(|r| (r.name, r.tools.into_iter().map(|t| t.name).collect()))
        .collect()
}

#[test]
fn remote_servers_are_put_replaced_deleted_and_read_sorted_per_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let entries = numbered(
        1,
        [
            ns("a"),
            ns("ab"),
            remote("a", "zeta", &["z1"]),
            remote("a", "alpha", &["a1", "a2"]),
            remote("ab", "alpha", &["other"]),
            remote("a", "zeta", &["z1", "z2"]),
            remote("a", "gone", &["g"]),
            del_remote("a", "gone"),
            del_remote("a", "never-there"),
        ],
    );
    {
        let replica = Replica::open(dir.path()).unwrap();
        replica.apply_batch(&entries).unwrap();
        assert_eq!(
            names(&replica, "a"),
            [
                (
                    "alpha".to_string(),
                    vec!["a1".to_string(), "a2".to_string()]
                ),
                ("zeta".to_string(), vec!["z1".to_string(), "z2".to_string()]),
            ]
        );
        assert_eq!(names(&replica, "ab").len(), 1);
        assert!(replica.remote_servers("missing").unwrap().is_empty());
        // The record read back is the record replicated, field for field.
        assert_eq!(
            replica.remote_servers("ab").unwrap(),
            [remote_record("ab", "alpha", &["other"])]
        );
        let want = State::fold(entries.iter().map(|e| &e.op)).to_snapshot(9);
        assert_eq!(replica.snapshot().unwrap(), want);
        replica.flush().unwrap();
    }
    let replica = reopen(dir.path());
    assert_eq!(names(&replica, "a").len(), 2);
}

#[test]
fn a_remote_server_change_moves_only_its_namespace_stamp() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path()).unwrap();
    replica
        .apply_batch(&numbered(1, [ns("a"), ns("b")]))
        .unwrap();
    replica
        .apply_batch(&numbered(3, [remote("a", "s", &["t"])]))
        .unwrap();
    assert_eq!(replica.namespace_stamp("a").unwrap(), 3);
    assert_eq!(replica.namespace_stamp("b").unwrap(), 2);
    replica
        .apply_batch(&numbered(4, [del_remote("a", "s")]))
        .unwrap();
    let (stamp, functions, servers) = replica.namespace_contents_stamped("a").unwrap();
    assert_eq!((stamp, functions.len(), servers.len()), (4, 0, 0));
    assert_eq!(replica.namespace_stamp("b").unwrap(), 2);
}

#[test]
fn a_snapshot_replaces_the_remote_servers() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path()).unwrap();
    replica
        .apply_batch(&numbered(
            1,
            [remote("a", "old", &["x"]), remote("a", "kept", &["x"])],
        ))
        .unwrap();
    let snap = Snapshot {
        seq: 50,
        ..Snapshot::from_entries(&numbered(
            1,
            [remote("a", "kept", &["y"]), remote("b", "new", &["z"])],
        ))
    };
    replica.install_snapshot(&snap).unwrap();
    assert_eq!(
        names(&replica, "a"),
        [("kept".to_string(), vec!["y".to_string()])]
    );
    assert_eq!(names(&replica, "b").len(), 1);
    assert_eq!(replica.snapshot().unwrap(), snap);
}
