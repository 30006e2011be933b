//! Shared helpers of the replica tests: record builders and a deterministic history of
//! replication operations (with cascading deletes) keyed by sequence number.
#![allow(dead_code)]

use paddock_shared::model::{
    FunctionRecord, Language, NamespaceRecord, RemoteServerRecord, RemoteToolRecord, ReplEntry,
    ReplOp, ServiceRecord, VersionRecord,
};

pub fn ns(name: &str) -> ReplOp {
    ReplOp::PutNamespace(NamespaceRecord {
        name: name.into(),
        description: format!("namespace {name}"),
        owner: "acct".into(),
        created_at: 1,
    })
}

pub fn svc(ns: &str, name: &str) -> ReplOp {
    ReplOp::PutService(ServiceRecord {
        namespace: ns.into(),
        name: name.into(),
        description: format!("service {name}"),
        created_at: 1,
    })
}

pub fn version(ns: &str, svc: &str, f: &str, v: u32) -> VersionRecord {
    VersionRecord {
        namespace: ns.into(),
        service: svc.into(),
        function: f.into(),
        version: v,
        backend: "code_sandbox".into(),
        language: if v.is_multiple_of(2) {
            Language::TypeScript
        } else {
            Language::Python
        },
        code: format!("def main(name):\n    return 'v{v} ' + name\n"),
        config_json: "{}".into(),
        input_schema_json: Some(r#"{"type":"object"}"#.into()),
        output_schema_json: None,
        requirements: vec!["httpx".into()],
        template: None,
        restored_from: None,
        created_at: u64::from(v),
    }
}

pub fn function(ns: &str, svc: &str, f: &str, current: u32) -> FunctionRecord {
    FunctionRecord {
        namespace: ns.into(),
        service: svc.into(),
        name: f.into(),
        description: format!("{f} at v{current}"),
        tags: vec!["t".into()],
        current_version: current,
        created_at: 1,
        updated_at: u64::from(current),
    }
}

/// Puts function (ns, svc, f) with a new version `v`, which becomes current.
pub fn func(ns: &str, svc: &str, f: &str, v: u32) -> ReplOp {
    ReplOp::PutFunction {
        function: function(ns, svc, f, v),
        version: Some(version(ns, svc, f, v)),
    }
}

pub fn del_svc(ns: &str, name: &str) -> ReplOp {
    ReplOp::DeleteService {
        namespace: ns.into(),
        name: name.into(),
    }
}

pub fn del_fn(ns: &str, svc: &str, name: &str) -> ReplOp {
    ReplOp::DeleteFunction {
        namespace: ns.into(),
        service: svc.into(),
        name: name.into(),
    }
}

/// The secret-free view of remote MCP server (ns, name) exposing `tools`.
pub fn remote_record(ns: &str, name: &str, tools: &[&str]) -> RemoteServerRecord {
    RemoteServerRecord {
        namespace: ns.into(),
        name: name.into(),
        description: format!("server {name}"),
        enabled: true,
        tools: tools
            .iter()
            .map(|t| RemoteToolRecord {
                name: (*t).into(),
                description: format!("tool {t}"),
                input_schema_json: r#"{"type":"object","properties":{"q":{"type":"string"}}}"#
                    .into(),
            })
            .collect(),
        schema_hash: format!("{:064x}", tools.len()),
        max_calls_per_execution: 50,
        timeout_seconds: 30,
        updated_at: 1,
    }
}

/// Puts remote MCP server (ns, name) exposing `tools`.
pub fn remote(ns: &str, name: &str, tools: &[&str]) -> ReplOp {
    ReplOp::PutRemoteServer(remote_record(ns, name, tools))
}

pub fn del_remote(ns: &str, name: &str) -> ReplOp {
    ReplOp::DeleteRemoteServer {
        namespace: ns.into(),
        name: name.into(),
    }
}

/// Numbers `ops` from `first` on.
pub fn numbered(first: u64, ops: impl IntoIterator<Item = ReplOp>) -> Vec<ReplEntry> {
    ops.into_iter()
        .zip(first..)
        .map(|(op, seq)| ReplEntry { seq, op })
        .collect()
}

/// The operation at `seq` of a deterministic mixed history over 3 namespaces, 4 services
/// and 7 functions: mostly new versions, some metadata-only updates, function deletes and
/// (rarer) service deletes, remote MCP server puts and deletes.
pub fn op_at(seq: u64) -> ReplOp {
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    let n = format!("ns{}", x % 3);
    let s = format!("svc-{}", (x >> 8) % 4);
    let f = format!("fn_{}", (x >> 16) % 7);
    let v = u32::try_from(seq % u64::from(u32::MAX)).unwrap_or(1);
    let r = format!("srv-{}", (x >> 32) % 3);
    match (x >> 24) % 22 {
        0 => ns(&n),
        1 => svc(&n, &s),
        2 => ReplOp::PutFunction {
            function: function(&n, &s, &f, v),
            version: None,
        },
        3 | 4 => del_fn(&n, &s, &f),
        5 => del_svc(&n, &s),
        20 => remote(&n, &r, &["echo", &f]),
        21 => del_remote(&n, &r),
        _ => func(&n, &s, &f, v),
    }
}

/// Entries `from..=to` of the [`op_at`] history.
pub fn history(from: u64, to: u64) -> Vec<ReplEntry> {
    (from..=to)
        .map(|seq| ReplEntry {
            seq,
            op: op_at(seq),
        })
        .collect()
}

/// Opens the replica at `path`, polling (up to 10 s) while the background I/O threads of
/// a just-dropped instance in this process still hold sled's file lock.
pub fn reopen(path: &std::path::Path) -> paddock_worker::replica::Replica {
    use paddock_worker::replica::{Replica, ReplicaError};
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Replica::open(path) {
            Ok(replica) => return replica,
            Err(ReplicaError::Open { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("reopen {}: {e:?}", path.display()),
        }
    }
}
