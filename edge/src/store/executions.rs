//! Execution records: one per execution (code mode and tool mode), kept per namespace with
//! a retention cap. Usage data, not control state: written outside transactions, never
//! replicated.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `executions` | `ns` `\0` started_at µs (u64 BE) execution id | [`ExecutionRecord`] |
//! | `execution_ids` | `ns` `\0` execution id | the `executions` key |
//!
//! Keys sort oldest first inside a namespace, so trimming removes from the front and
//! listing walks from the back.

use paddock_shared::exec::CallRecord;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, codec};

/// Tree of the records.
pub const EXECUTIONS_TREE: &str = "executions";
/// Tree of the id index.
pub const EXECUTION_IDS_TREE: &str = "execution_ids";

/// One execution, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    pub namespace: String,
    pub execution_id: String,
    /// `service.function` in tool mode, `None` in code mode.
    pub function: Option<String>,
    /// SHA-256 (hex) of the code in code mode, `None` in tool mode.
    pub code_sha256: Option<String>,
    /// `python` or `typescript`.
    pub language: String,
    /// `completed`, `failed`, `timeout`, `canceled`, or `error` (refused before running).
    pub status: String,
    /// `error.type` of the result, or the error code when the execution was refused.
    pub error_type: Option<String>,
    /// Wall time seen by the edge, in microseconds.
    pub duration_us: u64,
    pub cpu_ms: u64,
    pub peak_memory_bytes: u64,
    /// Names of the calls the code made, in order.
    pub calls: Vec<String>,
    /// Unix time in microseconds.
    pub started_at_us: u64,
    /// Id of the worker the execution was sent to (`None` when none was chosen; records
    /// written before this field existed decode with `None`).
    pub worker: Option<String>,
    /// The calls with their status, latency and size (remote MCP calls as the edge's
    /// bridge recorded them); empty in records written before this field existed.
    pub call_details: Vec<CallRecord>,
}

/// [`ExecutionRecord`] as written before `worker` existed (the codec is not
/// self-describing, so old bytes decode only into the old shape).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct ExecutionRecordV1 {
    namespace: String,
    execution_id: String,
    function: Option<String>,
    code_sha256: Option<String>,
    language: String,
    status: String,
    error_type: Option<String>,
    duration_us: u64,
    cpu_ms: u64,
    peak_memory_bytes: u64,
    calls: Vec<String>,
    started_at_us: u64,
}

/// Decodes a stored record, current or older shape. The older shapes are prefixes of the
/// current one: the fields of [`ExecutionRecordV1`], then `worker`, then `call_details`.
fn decode_record(b: &[u8]) -> Result<ExecutionRecord, StoreError> {
    let current = codec::decode::<ExecutionRecord>(b);
    let Err(e) = current else {
        return current;
    };
    let Ok((v1, used)) = codec::decode_prefix::<ExecutionRecordV1>(b) else {
        return Err(e);
    };
    // A record written before `call_details` existed carries `worker` after the V1 fields.
    let worker = codec::decode::<Option<String>>(&b[used..]).ok().flatten();
    Ok(ExecutionRecord {
        namespace: v1.namespace,
        execution_id: v1.execution_id,
        function: v1.function,
        code_sha256: v1.code_sha256,
        language: v1.language,
        status: v1.status,
        error_type: v1.error_type,
        duration_us: v1.duration_us,
        cpu_ms: v1.cpu_ms,
        peak_memory_bytes: v1.peak_memory_bytes,
        calls: v1.calls,
        started_at_us: v1.started_at_us,
        worker,
        call_details: Vec::new(),
    })
}

/// Filters of [`Store::list_executions`].
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    pub status: Option<String>,
    pub function: Option<String>,
    /// Only records started at or after this unix time (µs).
    pub since_us: Option<u64>,
    pub limit: usize,
}

fn ns_prefix(ns: &str) -> Vec<u8> {
    let mut k = ns.as_bytes().to_vec();
    k.push(0);
    k
}

fn record_key(r: &ExecutionRecord) -> Vec<u8> {
    let mut k = ns_prefix(&r.namespace);
    k.extend_from_slice(&r.started_at_us.to_be_bytes());
    k.extend_from_slice(r.execution_id.as_bytes());
    k
}

fn id_key(ns: &str, id: &str) -> Vec<u8> {
    let mut k = ns_prefix(ns);
    k.extend_from_slice(id.as_bytes());
    k
}

impl Store {
    fn execution_trees(&self) -> Result<(sled::Tree, sled::Tree), StoreError> {
        Ok((
            self.db.open_tree(EXECUTIONS_TREE)?,
            self.db.open_tree(EXECUTION_IDS_TREE)?,
        ))
    }

    /// Writes one record (no flush: sled flushes in the background).
    ///
    /// # Errors
    /// [`StoreError`] on sled or codec failure.
    pub fn put_execution(&self, r: &ExecutionRecord) -> Result<(), StoreError> {
        let (recs, ids) = self.execution_trees()?;
        let key = record_key(r);
        recs.insert(&key, codec::encode(r)?)?;
        ids.insert(id_key(&r.namespace, &r.execution_id), key)?;
        Ok(())
    }

    /// How many records a namespace holds.
    ///
    /// # Errors
    /// [`StoreError::Db`] on sled failure.
    pub fn count_executions(&self, ns: &str) -> Result<usize, StoreError> {
        let (recs, _) = self.execution_trees()?;
        Ok(recs.scan_prefix(ns_prefix(ns)).keys().count())
    }

    /// Removes the oldest `n` records of a namespace; returns how many went.
    ///
    /// # Errors
    /// [`StoreError`] on sled or codec failure.
    pub fn trim_executions(&self, ns: &str, n: usize) -> Result<usize, StoreError> {
        let (recs, ids) = self.execution_trees()?;
        let mut gone = 0;
        for item in recs.scan_prefix(ns_prefix(ns)).take(n) {
            let (k, v) = item?;
            let r = decode_record(&v)?;
            ids.remove(id_key(ns, &r.execution_id))?;
            recs.remove(k)?;
            gone += 1;
        }
        Ok(gone)
    }

    /// One record of a namespace by execution id.
    ///
    /// # Errors
    /// [`StoreError`] on sled or codec failure.
    pub fn execution(&self, ns: &str, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        let (recs, ids) = self.execution_trees()?;
        let Some(key) = ids.get(id_key(ns, id))? else {
            return Ok(None);
        };
        match recs.get(key)? {
            Some(v) => Ok(Some(decode_record(&v)?)),
            None => Ok(None),
        }
    }

    /// Records of a namespace, newest first, filtered.
    ///
    /// # Errors
    /// [`StoreError`] on sled or codec failure.
    pub fn list_executions(
        &self,
        ns: &str,
        f: &ExecutionFilter,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        let (recs, _) = self.execution_trees()?;
        let mut out = Vec::new();
        for item in recs.scan_prefix(ns_prefix(ns)).rev() {
            if out.len() >= f.limit {
                break;
            }
            let (_, v) = item?;
            let r = decode_record(&v)?;
            if f.since_us.is_some_and(|s| r.started_at_us < s) {
                break;
            }
            if f.status.as_ref().is_some_and(|s| *s != r.status)
                || f.function
                    .as_ref()
                    .is_some_and(|x| Some(x) != r.function.as_ref())
            {
                continue;
            }
            out.push(r);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_the_older_shape_still_decode() {
        let old = ExecutionRecordV1 {
            namespace: "ns".into(),
            execution_id: "ex_1".into(),
            function: None,
            code_sha256: Some("ab".into()),
            language: "python".into(),
            status: "completed".into(),
            error_type: None,
            duration_us: 5,
            cpu_ms: 1,
            peak_memory_bytes: 2,
            calls: vec!["s.f".into()],
            started_at_us: 9,
        };
        let r = decode_record(&codec::encode(&old).expect("encode")).expect("decode");
        assert_eq!(
            (r.execution_id.as_str(), r.calls.len(), r.started_at_us),
            ("ex_1", 1, 9)
        );
        assert_eq!(r.worker, None);
        // The shape written before `call_details` existed: the V1 fields, then `worker`.
        let v2 = ExecutionRecordV1 {
            calls: vec!["mcp__s__t".into()],
            code_sha256: None,
            ..old
        };
        let mut v2 = codec::encode(&v2).expect("encode");
        v2.extend(codec::encode(&Some("worker-3")).expect("encode"));
        let r2 = decode_record(&v2).expect("decode");
        assert_eq!(
            (r2.worker.as_deref(), r2.calls.len(), r2.call_details.len()),
            (Some("worker-3"), 1, 0)
        );
        let new = ExecutionRecord {
            worker: Some("worker-7".into()),
            call_details: vec![CallRecord {
                name: "mcp__s__t".into(),
                status: "ok".into(),
                duration_us: 7,
                bytes: 11,
            }],
            ..r
        };
        let back = decode_record(&codec::encode(&new).expect("encode")).expect("decode");
        assert_eq!(back, new);
    }
}
