//! Snapshots cut into parts that each fit a frame, and put back together in order on the
//! follower before it installs them (a half-received snapshot is never installed).

use serde::{Deserialize, Serialize};

use super::Snapshot;
use crate::model::{
    FunctionRecord, NamespaceRecord, RemoteServerRecord, ServiceRecord, VersionRecord,
};

/// Fixed allowance per record on top of its text fields (numbers, lengths, enum tags).
const RECORD_OVERHEAD: usize = 64;

/// One part of a snapshot: parts `0..count` of the snapshot at `seq`, each carrying some of
/// its records (in the snapshot's order) in `records` (whose own `seq` is `seq` too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPart {
    pub seq: u64,
    pub index: u32,
    pub count: u32,
    pub records: Snapshot,
}

/// A part that does not continue the snapshot being assembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotPartError {
    /// The part is not the next one of the snapshot under way (parts start at index 0).
    #[error(
        "snapshot part {index}/{count} at sequence {seq} out of order (expected part {expected})"
    )]
    OutOfOrder {
        seq: u64,
        index: u32,
        count: u32,
        expected: u32,
    },
    /// The part claims an index beyond its count, or a count of 0.
    #[error("snapshot part {index}/{count} at sequence {seq} is malformed")]
    Malformed { seq: u64, index: u32, count: u32 },
}

impl Snapshot {
    /// Cuts the snapshot into parts whose records add up to about `max_bytes` each (a
    /// single larger record gets a part of its own). Always at least one part, so an
    /// empty state travels too. Size is estimated from the text fields plus a fixed
    /// allowance per record: leave headroom under the frame cap.
    pub fn into_parts(self, max_bytes: usize) -> Vec<SnapshotPart> {
        let seq = self.seq;
        let mut parts: Vec<Snapshot> = vec![Snapshot {
            seq,
            ..Snapshot::default()
        }];
        let mut size = 0;
        let mut fit = |parts: &mut Vec<Snapshot>, bytes: usize| -> usize {
            if size > 0 && size + bytes > max_bytes {
                parts.push(Snapshot {
                    seq,
                    ..Snapshot::default()
                });
                size = 0;
            }
            size += bytes;
            parts.len() - 1
        };
        for r in self.namespaces {
            let i = fit(&mut parts, namespace_size(&r));
            parts[i].namespaces.push(r);
        }
        for r in self.services {
            let i = fit(&mut parts, service_size(&r));
            parts[i].services.push(r);
        }
        for r in self.functions {
            let i = fit(&mut parts, function_size(&r));
            parts[i].functions.push(r);
        }
        for r in self.versions {
            let i = fit(&mut parts, version_size(&r));
            parts[i].versions.push(r);
        }
        for r in self.remote_servers {
            let i = fit(&mut parts, remote_server_size(&r));
            parts[i].remote_servers.push(r);
        }
        let count = u32::try_from(parts.len()).unwrap_or(u32::MAX);
        parts
            .into_iter()
            .zip(0..)
            .map(|(records, index)| SnapshotPart {
                seq,
                index,
                count,
                records,
            })
            .collect()
    }
}

/// Puts snapshot parts back together. A part with index 0 starts a new snapshot (and
/// drops any unfinished one).
#[derive(Debug, Default)]
pub struct SnapshotAssembler {
    current: Option<(u32, Snapshot)>,
}

impl SnapshotAssembler {
    /// An assembler with nothing under way.
    pub fn new() -> SnapshotAssembler {
        SnapshotAssembler::default()
    }

    /// Whether a snapshot is partly received.
    pub fn in_progress(&self) -> bool {
        self.current.is_some()
    }

    /// Takes the next part; returns the whole snapshot with its last part.
    ///
    /// # Errors
    /// [`SnapshotPartError`] for a malformed part or one that does not follow the
    /// previous part; the unfinished snapshot is dropped then (ask for a new one).
    pub fn push(&mut self, part: SnapshotPart) -> Result<Option<Snapshot>, SnapshotPartError> {
        let SnapshotPart {
            seq,
            index,
            count,
            records,
        } = part;
        if count == 0 || index >= count {
            self.current = None;
            return Err(SnapshotPartError::Malformed { seq, index, count });
        }
        let (next, mut snap) = match self.current.take() {
            _ if index == 0 => (
                0,
                Snapshot {
                    seq,
                    ..Snapshot::default()
                },
            ),
            Some((next, snap)) if snap.seq == seq => (next, snap),
            _ => {
                return Err(SnapshotPartError::OutOfOrder {
                    seq,
                    index,
                    count,
                    expected: 0,
                });
            }
        };
        if index != next {
            return Err(SnapshotPartError::OutOfOrder {
                seq,
                index,
                count,
                expected: next,
            });
        }
        snap.namespaces.extend(records.namespaces);
        snap.services.extend(records.services);
        snap.functions.extend(records.functions);
        snap.versions.extend(records.versions);
        snap.remote_servers.extend(records.remote_servers);
        if index + 1 == count {
            Ok(Some(snap))
        } else {
            self.current = Some((index + 1, snap));
            Ok(None)
        }
    }
}

fn namespace_size(r: &NamespaceRecord) -> usize {
    RECORD_OVERHEAD + r.name.len() + r.description.len() + r.owner.len()
}

fn service_size(r: &ServiceRecord) -> usize {
    RECORD_OVERHEAD + r.namespace.len() + r.name.len() + r.description.len()
}

fn function_size(r: &FunctionRecord) -> usize {
    let tags: usize = r.tags.iter().map(|t| t.len() + 8).sum();
    RECORD_OVERHEAD
        + r.namespace.len()
        + r.service.len()
        + r.name.len()
        + r.description.len()
        + tags
}

fn version_size(r: &VersionRecord) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    let reqs: usize = r.requirements.iter().map(|t| t.len() + 8).sum();
    RECORD_OVERHEAD
        + r.namespace.len()
        + r.service.len()
        + r.function.len()
        + r.backend.len()
        + r.code.len()
        + r.config_json.len()
        + opt(&r.input_schema_json)
        + opt(&r.output_schema_json)
        + opt(&r.template)
        + reqs
}

fn remote_server_size(r: &RemoteServerRecord) -> usize {
    let tools: usize = r
        .tools
        .iter()
        .map(|t| 16 + t.name.len() + t.description.len() + t.input_schema_json.len())
        .sum();
    RECORD_OVERHEAD
        + r.namespace.len()
        + r.name.len()
        + r.description.len()
        + r.schema_hash.len()
        + tools
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ReplEntry;
    use crate::replication::state::tests::{func, ns, remote, svc};

    fn sample() -> Snapshot {
        let mut ops = vec![ns("a"), svc("a", "s")];
        for i in 0..40 {
            ops.push(func("a", "s", &format!("f{i:02}"), 1));
        }
        for i in 0..5 {
            ops.push(remote("a", &format!("r{i}"), &["t1", "t2"]));
        }
        let entries: Vec<ReplEntry> = ops
            .into_iter()
            .zip(1..)
            .map(|(op, seq)| ReplEntry { seq, op })
            .collect();
        Snapshot::from_entries(&entries)
    }

    fn assemble(parts: Vec<SnapshotPart>) -> Snapshot {
        let mut a = SnapshotAssembler::new();
        let n = parts.len();
        let mut out = None;
        for (i, p) in parts.into_iter().enumerate() {
            let got = a.push(p).unwrap();
            assert_eq!(
                got.is_some(),
                i + 1 == n,
                "complete exactly at the last part"
            );
            out = got;
        }
        assert!(!a.in_progress());
        out.unwrap()
    }

    #[test]
    fn parts_respect_the_budget_and_reassemble_exactly() {
        let snap = sample();
        let parts = snap.clone().into_parts(1000);
        assert!(parts.len() > 5, "{} parts", parts.len());
        for p in &parts {
            assert_eq!(
                (p.seq, p.count, p.records.seq),
                (snap.seq, parts.len() as u32, snap.seq)
            );
            let r = &p.records;
            let size: usize = r.namespaces.iter().map(namespace_size).sum::<usize>()
                + r.services.iter().map(service_size).sum::<usize>()
                + r.functions.iter().map(function_size).sum::<usize>()
                + r.versions.iter().map(version_size).sum::<usize>()
                + r.remote_servers
                    .iter()
                    .map(remote_server_size)
                    .sum::<usize>();
            let records = r.namespaces.len()
                + r.services.len()
                + r.functions.len()
                + r.versions.len()
                + r.remote_servers.len();
            assert!(
                size <= 1000 || records == 1,
                "{size} bytes in {records} records"
            );
        }
        assert_eq!(assemble(parts), snap);
    }

    #[test]
    fn a_small_or_empty_snapshot_is_one_part_and_a_huge_record_gets_its_own() {
        assert_eq!(sample().into_parts(usize::MAX).len(), 1);
        let empty = Snapshot {
            seq: 9,
            ..Snapshot::default()
        };
        let parts = empty.clone().into_parts(10);
        assert_eq!(parts.len(), 1);
        assert_eq!(assemble(parts), empty);
        let snap = sample();
        let parts = snap.clone().into_parts(1);
        assert_eq!(parts.len(), 2 + 40 + 40 + 5);
        assert_eq!(assemble(parts), snap);
    }

    #[test]
    fn out_of_order_parts_are_refused_and_index_zero_restarts() {
        let parts = sample().into_parts(1000);
        let mut a = SnapshotAssembler::new();
        let err = a.push(parts[1].clone()).unwrap_err();
        assert!(
            matches!(
                err,
                SnapshotPartError::OutOfOrder {
                    index: 1,
                    expected: 0,
                    ..
                }
            ),
            "{err}"
        );
        a.push(parts[0].clone()).unwrap();
        let err = a.push(parts[2].clone()).unwrap_err();
        assert!(
            matches!(
                err,
                SnapshotPartError::OutOfOrder {
                    index: 2,
                    expected: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert!(!a.in_progress(), "the broken snapshot is dropped");
        // A new snapshot (here a later one) starts cleanly at part 0, even mid-way.
        a.push(parts[0].clone()).unwrap();
        assert!(a.in_progress());
        let later = Snapshot {
            seq: 99,
            ..sample()
        };
        let mut got = None;
        for p in later.clone().into_parts(1000) {
            got = a.push(p).unwrap();
        }
        assert_eq!(got, Some(later));
    }

    #[test]
    fn a_part_from_another_snapshot_is_refused() {
        let parts = sample().into_parts(1000);
        let other = Snapshot {
            seq: 77,
            ..sample()
        }
        .into_parts(1000);
        let mut a = SnapshotAssembler::new();
        a.push(parts[0].clone()).unwrap();
        assert!(matches!(
            a.push(other[1].clone()),
            Err(SnapshotPartError::OutOfOrder { seq: 77, .. })
        ));
    }

    #[test]
    fn malformed_parts_are_refused() {
        let mut a = SnapshotAssembler::new();
        let bad = SnapshotPart {
            seq: 1,
            index: 0,
            count: 0,
            records: Snapshot::default(),
        };
        assert_eq!(
            a.push(bad),
            Err(SnapshotPartError::Malformed {
                seq: 1,
                index: 0,
                count: 0
            })
        );
        let bad = SnapshotPart {
            seq: 1,
            index: 3,
            count: 3,
            records: Snapshot::default(),
        };
        assert!(matches!(
            a.push(bad),
            Err(SnapshotPartError::Malformed { .. })
        ));
    }
}
