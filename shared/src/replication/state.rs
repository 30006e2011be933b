//! The replicated state: what a [`ReplOp`] changes ([`writes`]), an in-memory [`State`]
//! that applies them, and the [`Snapshot`] that carries a whole state at one sequence.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{
    FunctionRecord, NamespaceRecord, RemoteServerRecord, ReplEntry, ReplOp, ServiceRecord,
    VersionRecord,
};

/// The whole replicated state at sequence `seq`, as sorted lists of records (sorted by
/// their keys, each key once). Sent to a follower that is too far behind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last log sequence whose change is included.
    pub seq: u64,
    /// Sorted by name.
    pub namespaces: Vec<NamespaceRecord>,
    /// Sorted by (namespace, name).
    pub services: Vec<ServiceRecord>,
    /// Sorted by (namespace, service, name).
    pub functions: Vec<FunctionRecord>,
    /// Sorted by (namespace, service, function, version).
    pub versions: Vec<VersionRecord>,
    /// Sorted by (namespace, name).
    pub remote_servers: Vec<RemoteServerRecord>,
}

impl Snapshot {
    /// The snapshot made by applying `entries`, in order, to an empty state; its sequence
    /// is the last entry's (0 when there are none).
    pub fn from_entries(entries: &[ReplEntry]) -> Snapshot {
        let state = State::fold(entries.iter().map(|e| &e.op));
        state.to_snapshot(entries.last().map_or(0, |e| e.seq))
    }
}

/// One storage-level change that a [`ReplOp`] makes. Deletions are spelled out as the
/// ranges they cover, so every store (the in-memory [`State`], the worker's sled replica)
/// cascades the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write<'a> {
    /// Insert or replace the namespace keyed by its name.
    PutNamespace(&'a NamespaceRecord),
    /// Insert or replace the service keyed by (namespace, name).
    PutService(&'a ServiceRecord),
    /// Insert or replace the function keyed by (namespace, service, name).
    PutFunction(&'a FunctionRecord),
    /// Insert or replace the version keyed by (namespace, service, function, version).
    PutVersion(&'a VersionRecord),
    /// Remove the service (namespace, service).
    RemoveService {
        namespace: &'a str,
        service: &'a str,
    },
    /// Remove every function of the service (namespace, service).
    RemoveServiceFunctions {
        namespace: &'a str,
        service: &'a str,
    },
    /// Remove every version of every function of the service (namespace, service).
    RemoveServiceVersions {
        namespace: &'a str,
        service: &'a str,
    },
    /// Remove the function (namespace, service, function).
    RemoveFunction {
        namespace: &'a str,
        service: &'a str,
        function: &'a str,
    },
    /// Remove every version of the function (namespace, service, function).
    RemoveFunctionVersions {
        namespace: &'a str,
        service: &'a str,
        function: &'a str,
    },
    /// Insert or replace the remote MCP server keyed by (namespace, name).
    PutRemoteServer(&'a RemoteServerRecord),
    /// Remove the remote MCP server (namespace, name).
    RemoveRemoteServer { namespace: &'a str, name: &'a str },
}

impl Write<'_> {
    /// The namespace this write touches.
    pub fn namespace(&self) -> &str {
        match self {
            Write::PutNamespace(n) => &n.name,
            Write::PutService(s) => &s.namespace,
            Write::PutFunction(f) => &f.namespace,
            Write::PutVersion(v) => &v.namespace,
            Write::PutRemoteServer(r) => &r.namespace,
            Write::RemoveService { namespace, .. }
            | Write::RemoveServiceFunctions { namespace, .. }
            | Write::RemoveServiceVersions { namespace, .. }
            | Write::RemoveFunction { namespace, .. }
            | Write::RemoveFunctionVersions { namespace, .. }
            | Write::RemoveRemoteServer { namespace, .. } => namespace,
        }
    }
}

/// The writes `op` makes, in the order they must be applied. Deleting a service removes
/// its functions and their versions; deleting a function removes its versions.
pub fn writes(op: &ReplOp) -> Vec<Write<'_>> {
    match op {
        ReplOp::PutNamespace(n) => vec![Write::PutNamespace(n)],
        ReplOp::PutService(s) => vec![Write::PutService(s)],
        ReplOp::DeleteService { namespace, name } => vec![
            Write::RemoveServiceVersions {
                namespace,
                service: name,
            },
            Write::RemoveServiceFunctions {
                namespace,
                service: name,
            },
            Write::RemoveService {
                namespace,
                service: name,
            },
        ],
        ReplOp::PutFunction { function, version } => {
            let mut w = vec![Write::PutFunction(function)];
            w.extend(version.iter().map(Write::PutVersion));
            w
        }
        ReplOp::DeleteFunction {
            namespace,
            service,
            name,
        } => vec![
            Write::RemoveFunctionVersions {
                namespace,
                service,
                function: name,
            },
            Write::RemoveFunction {
                namespace,
                service,
                function: name,
            },
        ],
        ReplOp::PutRemoteServer(r) => vec![Write::PutRemoteServer(r)],
        ReplOp::DeleteRemoteServer { namespace, name } => {
            vec![Write::RemoveRemoteServer { namespace, name }]
        }
    }
}

type ServiceKey = (String, String);
type FunctionKey = (String, String, String);
type VersionKey = (String, String, String, u32);

/// The replicated state in memory: the reference semantics of [`ReplOp`]s, used by tests
/// and by the edge to build snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    namespaces: BTreeMap<String, NamespaceRecord>,
    services: BTreeMap<ServiceKey, ServiceRecord>,
    functions: BTreeMap<FunctionKey, FunctionRecord>,
    versions: BTreeMap<VersionKey, VersionRecord>,
    remote_servers: BTreeMap<ServiceKey, RemoteServerRecord>,
}

impl State {
    /// An empty state.
    pub fn new() -> State {
        State::default()
    }

    /// The state made by applying `ops`, in order, to an empty state.
    pub fn fold<'a>(ops: impl IntoIterator<Item = &'a ReplOp>) -> State {
        let mut state = State::new();
        for op in ops {
            state.apply(op);
        }
        state
    }

    /// Applies one operation.
    pub fn apply(&mut self, op: &ReplOp) {
        for w in writes(op) {
            self.write(w);
        }
    }

    fn write(&mut self, w: Write<'_>) {
        match w {
            Write::PutNamespace(n) => {
                self.namespaces.insert(n.name.clone(), n.clone());
            }
            Write::PutService(s) => {
                self.services.insert(skey(&s.namespace, &s.name), s.clone());
            }
            Write::PutFunction(f) => {
                self.functions
                    .insert(fkey(&f.namespace, &f.service, &f.name), f.clone());
            }
            Write::PutVersion(v) => {
                self.versions.insert(vkey(v), v.clone());
            }
            Write::RemoveService { namespace, service } => {
                self.services.remove(&skey(namespace, service));
            }
            Write::RemoveServiceFunctions { namespace, service } => {
                self.functions
                    .retain(|(n, s, _), _| !(n == namespace && s == service));
            }
            Write::RemoveServiceVersions { namespace, service } => {
                self.versions
                    .retain(|(n, s, _, _), _| !(n == namespace && s == service));
            }
            Write::RemoveFunction {
                namespace,
                service,
                function,
            } => {
                self.functions.remove(&fkey(namespace, service, function));
            }
            Write::RemoveFunctionVersions {
                namespace,
                service,
                function,
            } => {
                self.versions
                    .retain(|(n, s, f, _), _| !(n == namespace && s == service && f == function));
            }
            Write::PutRemoteServer(r) => {
                self.remote_servers
                    .insert(skey(&r.namespace, &r.name), r.clone());
            }
            Write::RemoveRemoteServer { namespace, name } => {
                self.remote_servers.remove(&skey(namespace, name));
            }
        }
    }

    /// The whole state as a snapshot at `seq`.
    pub fn to_snapshot(&self, seq: u64) -> Snapshot {
        Snapshot {
            seq,
            namespaces: self.namespaces.values().cloned().collect(),
            services: self.services.values().cloned().collect(),
            functions: self.functions.values().cloned().collect(),
            versions: self.versions.values().cloned().collect(),
            remote_servers: self.remote_servers.values().cloned().collect(),
        }
    }

    /// The state a snapshot carries (a record repeated in the snapshot keeps its last
    /// occurrence).
    pub fn from_snapshot(snapshot: Snapshot) -> State {
        let mut state = State::new();
        for n in snapshot.namespaces {
            state.namespaces.insert(n.name.clone(), n);
        }
        for s in snapshot.services {
            state.services.insert(skey(&s.namespace, &s.name), s);
        }
        for f in snapshot.functions {
            state
                .functions
                .insert(fkey(&f.namespace, &f.service, &f.name), f);
        }
        for v in snapshot.versions {
            state.versions.insert(vkey(&v), v);
        }
        for r in snapshot.remote_servers {
            state.remote_servers.insert(skey(&r.namespace, &r.name), r);
        }
        state
    }

    /// The namespace `ns`.
    pub fn namespace(&self, ns: &str) -> Option<&NamespaceRecord> {
        self.namespaces.get(ns)
    }

    /// The services of `ns`, sorted by name.
    pub fn services(&self, ns: &str) -> Vec<&ServiceRecord> {
        self.services
            .values()
            .filter(|s| s.namespace == ns)
            .collect()
    }

    /// The functions of `ns`, sorted by service then name.
    pub fn functions(&self, ns: &str) -> Vec<&FunctionRecord> {
        self.functions
            .values()
            .filter(|f| f.namespace == ns)
            .collect()
    }

    /// The function (ns, svc, name).
    pub fn function(&self, ns: &str, svc: &str, name: &str) -> Option<&FunctionRecord> {
        self.functions.get(&fkey(ns, svc, name))
    }

    /// Version `version` of the function (ns, svc, function).
    pub fn version(
        &self,
        ns: &str,
        svc: &str,
        function: &str,
        version: u32,
    ) -> Option<&VersionRecord> {
        let key = (ns.to_owned(), svc.to_owned(), function.to_owned(), version);
        self.versions.get(&key)
    }

    /// The remote MCP servers of `ns`, sorted by name.
    pub fn remote_servers(&self, ns: &str) -> Vec<&RemoteServerRecord> {
        self.remote_servers
            .values()
            .filter(|r| r.namespace == ns)
            .collect()
    }

    /// The remote MCP server (ns, name).
    pub fn remote_server(&self, ns: &str, name: &str) -> Option<&RemoteServerRecord> {
        self.remote_servers.get(&skey(ns, name))
    }

    /// Record counts: (namespaces, services, functions, versions).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        (
            self.namespaces.len(),
            self.services.len(),
            self.functions.len(),
            self.versions.len(),
        )
    }
}

fn skey(ns: &str, svc: &str) -> ServiceKey {
    (ns.to_owned(), svc.to_owned())
}

fn fkey(ns: &str, svc: &str, name: &str) -> FunctionKey {
    (ns.to_owned(), svc.to_owned(), name.to_owned())
}

fn vkey(v: &VersionRecord) -> VersionKey {
    (
        v.namespace.clone(),
        v.service.clone(),
        v.function.clone(),
        v.version,
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::Language;

    pub(crate) fn ns(name: &str) -> ReplOp {
        ReplOp::PutNamespace(NamespaceRecord {
            name: name.into(),
            description: format!("{name} ns"),
            owner: "acct".into(),
            created_at: 1,
        })
    }

    pub(crate) fn svc(ns: &str, name: &str) -> ReplOp {
        ReplOp::PutService(ServiceRecord {
            namespace: ns.into(),
            name: name.into(),
            description: String::new(),
            created_at: 1,
        })
    }

    pub(crate) fn version(ns: &str, svc: &str, f: &str, v: u32) -> VersionRecord {
        VersionRecord {
            namespace: ns.into(),
            service: svc.into(),
            function: f.into(),
            version: v,
            backend: "code_sandbox".into(),
            language: Language::Python,
            code: format!("def main(): return {v}"),
            config_json: "{}".into(),
            input_schema_json: None,
            output_schema_json: None,
            requirements: vec![],
            template: None,
            restored_from: None,
            created_at: 1,
        }
    }

    /// Puts function (ns, svc, f) with a new version `v` (which becomes current).
    pub(crate) fn func(ns: &str, svc: &str, f: &str, v: u32) -> ReplOp {
        ReplOp::PutFunction {
            function: FunctionRecord {
                namespace: ns.into(),
                service: svc.into(),
                name: f.into(),
                description: format!("{f} v{v}"),
                tags: vec![],
                current_version: v,
                created_at: 1,
                updated_at: u64::from(v),
            },
            version: Some(version(ns, svc, f, v)),
        }
    }

    fn del_svc(ns: &str, name: &str) -> ReplOp {
        ReplOp::DeleteService {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    pub(crate) fn remote(ns: &str, name: &str, tools: &[&str]) -> ReplOp {
        ReplOp::PutRemoteServer(RemoteServerRecord {
            namespace: ns.into(),
            name: name.into(),
            description: format!("{name} server"),
            enabled: true,
            tools: tools
                .iter()
                .map(|t| crate::model::RemoteToolRecord {
                    name: (*t).into(),
                    description: format!("{t} tool"),
                    input_schema_json: r#"{"type":"object"}"#.into(),
                })
                .collect(),
            schema_hash: "00".into(),
            max_calls_per_execution: 50,
            timeout_seconds: 30,
            updated_at: 1,
        })
    }

    fn del_remote(ns: &str, name: &str) -> ReplOp {
        ReplOp::DeleteRemoteServer {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    fn del_fn(ns: &str, svc: &str, name: &str) -> ReplOp {
        ReplOp::DeleteFunction {
            namespace: ns.into(),
            service: svc.into(),
            name: name.into(),
        }
    }

    #[test]
    fn puts_insert_and_replace() {
        let s = State::fold(&[
            ns("a"),
            svc("a", "s"),
            func("a", "s", "f", 1),
            func("a", "s", "f", 2),
        ]);
        assert_eq!(s.counts(), (1, 1, 1, 2));
        assert_eq!(
            s.function("a", "s", "f").map(|f| f.current_version),
            Some(2)
        );
        assert!(s.version("a", "s", "f", 1).is_some());
        assert_eq!(
            s.version("a", "s", "f", 2).map(|v| v.code.as_str()),
            Some("def main(): return 2")
        );
        assert!(s.version("a", "s", "f", 3).is_none());
    }

    #[test]
    fn a_metadata_only_function_put_keeps_versions() {
        let mut s = State::fold(&[func("a", "s", "f", 1)]);
        let ReplOp::PutFunction { mut function, .. } = func("a", "s", "f", 1) else {
            unreachable!()
        };
        function.description = "changed".into();
        s.apply(&ReplOp::PutFunction {
            function,
            version: None,
        });
        assert_eq!(
            s.function("a", "s", "f").map(|f| f.description.as_str()),
            Some("changed")
        );
        assert!(s.version("a", "s", "f", 1).is_some());
    }

    #[test]
    fn deleting_a_service_cascades_to_its_functions_and_versions_only() {
        let mut s = State::fold(&[
            ns("a"),
            ns("b"),
            svc("a", "s"),
            svc("a", "s2"),
            svc("b", "s"),
            func("a", "s", "f", 1),
            func("a", "s", "f", 2),
            func("a", "s", "g", 1),
            func("a", "s2", "f", 1),
            func("b", "s", "f", 1),
        ]);
        s.apply(&del_svc("a", "s"));
        assert_eq!(s.counts(), (2, 2, 2, 2));
        assert!(s.function("a", "s", "f").is_none());
        assert!(s.version("a", "s", "g", 1).is_none());
        assert!(s.function("a", "s2", "f").is_some());
        assert!(s.version("b", "s", "f", 1).is_some());
        assert_eq!(
            s.services("a")
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["s2"]
        );
    }

    #[test]
    fn deleting_a_function_removes_its_versions_only() {
        let mut s = State::fold(&[
            func("a", "s", "f", 1),
            func("a", "s", "f", 2),
            func("a", "s", "ff", 1),
        ]);
        s.apply(&del_fn("a", "s", "f"));
        assert_eq!(s.counts(), (0, 0, 1, 1));
        assert!(s.version("a", "s", "ff", 1).is_some());
        // Recreating starts from a clean slate.
        s.apply(&func("a", "s", "f", 1));
        assert!(s.version("a", "s", "f", 2).is_none());
    }

    #[test]
    fn deletes_of_missing_things_are_no_ops() {
        let mut s = State::fold(&[ns("a")]);
        let before = s.clone();
        s.apply(&del_svc("a", "nope"));
        s.apply(&del_fn("a", "nope", "f"));
        assert_eq!(s, before);
    }

    #[test]
    fn functions_are_sorted_by_service_then_name_with_prefix_names_apart() {
        let s = State::fold(&[
            func("a", "s-b", "x", 1),
            func("a", "s", "z", 1),
            func("a", "s", "a", 1),
            func("ab", "s", "a", 1),
        ]);
        let got: Vec<_> = s
            .functions("a")
            .iter()
            .map(|f| (f.service.as_str(), f.name.as_str()))
            .collect();
        assert_eq!(got, [("s", "a"), ("s", "z"), ("s-b", "x")]);
    }

    #[test]
    fn snapshot_round_trips_and_from_entries_matches_fold() {
        let ops = [
            ns("a"),
            svc("a", "s"),
            func("a", "s", "f", 1),
            func("a", "s", "g", 1),
            del_fn("a", "s", "g"),
        ];
        let entries: Vec<ReplEntry> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| ReplEntry {
                seq: i as u64 + 1,
                op: op.clone(),
            })
            .collect();
        let snap = Snapshot::from_entries(&entries);
        assert_eq!(snap.seq, 5);
        assert_eq!(snap.functions.len(), 1);
        assert_eq!(snap, State::fold(&ops).to_snapshot(5));
        assert_eq!(State::from_snapshot(snap.clone()).to_snapshot(5), snap);
        assert_eq!(Snapshot::from_entries(&[]), Snapshot::default());
    }

    #[test]
    fn remote_servers_put_replace_delete_and_sort_per_namespace() {
        let mut s = State::fold(&[
            remote("a", "zeta", &["x"]),
            remote("a", "alpha", &["y"]),
            remote("ab", "alpha", &["z"]),
            remote("a", "zeta", &["x", "x2"]),
        ]);
        let names: Vec<_> = s
            .remote_servers("a")
            .iter()
            .map(|r| (r.name.as_str(), r.tools.len()))
            .collect();
        assert_eq!(names, [("alpha", 1), ("zeta", 2)]);
        s.apply(&del_remote("a", "zeta"));
        s.apply(&del_remote("a", "missing"));
        assert!(s.remote_server("a", "zeta").is_none());
        assert!(s.remote_server("ab", "alpha").is_some());
        let snap = s.to_snapshot(9);
        assert_eq!(
            snap.remote_servers
                .iter()
                .map(|r| (r.namespace.as_str(), r.name.as_str()))
                .collect::<Vec<_>>(),
            [("a", "alpha"), ("ab", "alpha")]
        );
        assert_eq!(State::from_snapshot(snap.clone()).to_snapshot(9), snap);
    }

    #[test]
    fn every_write_names_the_namespace_it_touches() {
        for op in [
            ns("a"),
            svc("a", "s"),
            func("a", "s", "f", 1),
            del_svc("a", "s"),
            del_fn("a", "s", "f"),
            remote("a", "r", &["t"]),
            del_remote("a", "r"),
        ] {
            let w = writes(&op);
            assert!(!w.is_empty());
            assert!(w.iter().all(|w| w.namespace() == "a"), "{op:?}");
        }
    }
}
