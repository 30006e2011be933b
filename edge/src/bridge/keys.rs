//! Bridge keys: one per execution, minted when the edge dispatches it, held only in memory.
//!
//! A key is 256 random bits (sent to the worker as hex with `ExecuteV3`); the edge keeps
//! only its SHA-256 digest, bound to the namespace, the execution id, the worker
//! connection it was sent on and a deadline. A presented key is hashed and looked up by
//! digest (so no comparison runs over the secret itself), then its bindings are checked.
//! Each key also carries the execution's per-server call budgets (fixed at the first call
//! to a server, from its `max_calls_per_execution`) and the log of its calls, which the
//! dispatcher appends to the execution's result.
//!
//! Revocation: [`BridgeKeys::revoke`] when the execution's result (or error) arrives on the
//! link; the [`KeyGuard`] held by the dispatching task removes the key when it is dropped
//! (result returned, `WORKER_LOST`, the caller went away), so no key outlives its
//! execution even if a result never comes. The deadline is a backstop on top of that.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use paddock_shared::ErrorCode;
use paddock_shared::exec::CallRecord;
use paddock_shared::protocol::BRIDGE_KEY_BYTES;
use sha2::{Digest, Sha256};

/// Most calls recorded per execution (later calls still run, unrecorded).
pub const MAX_CALL_RECORDS: usize = 1000;
/// Most distinct server names one execution may call (bounds a key's budget table even
/// when code calls made-up servers).
pub const MAX_SERVERS_PER_KEY: usize = 64;
/// Grace added to an execution's timeout for its key's deadline: the worker may wait for
/// its replica (5 s) and for a slot before the execution's own clock starts.
pub const KEY_GRACE: Duration = Duration::from_secs(15);

type Digest32 = [u8; 32];

fn digest(key: &str) -> Digest32 {
    Sha256::digest(key.as_bytes()).into()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug)]
struct Entry {
    namespace: String,
    execution_id: String,
    conn_id: u64,
    deadline: Instant,
    revoked: bool,
    /// Per server: (limit, calls counted so far).
    budgets: HashMap<String, (u32, u32)>,
    calls: Vec<CallRecord>,
}

/// Why a call was refused at the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub code: ErrorCode,
    pub message: String,
}

impl Denied {
    fn invalid(why: &str) -> Denied {
        Denied {
            code: ErrorCode::BridgeKeyInvalid,
            message: format!("the bridge key is not valid for this call ({why})"),
        }
    }
}

/// A call the key allows: the namespace to call in and the time left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub namespace: String,
    pub remaining: Duration,
}

/// The keys by digest, and the digest of each (worker connection, execution).
#[derive(Debug, Default)]
struct Table {
    by_digest: HashMap<Digest32, Entry>,
    by_execution: HashMap<(u64, String), Digest32>,
}

impl Table {
    fn remove(&mut self, d: &Digest32) -> Option<Entry> {
        let e = self.by_digest.remove(d)?;
        let k = (e.conn_id, e.execution_id.clone());
        if self.by_execution.get(&k) == Some(d) {
            self.by_execution.remove(&k);
        }
        Some(e)
    }
}

/// The live bridge keys of one edge. Cheap to share (`Arc`).
#[derive(Debug, Default)]
pub struct BridgeKeys {
    entries: Mutex<Table>,
}

/// Owns one minted key: dropping it removes the key.
#[derive(Debug)]
pub struct KeyGuard {
    keys: Arc<BridgeKeys>,
    digest: Digest32,
    key: String,
}

impl KeyGuard {
    /// The key as sent to the worker (hex).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Removes the key now and returns the calls recorded under it, in order.
    pub fn finish(self) -> Vec<CallRecord> {
        lock(&self.keys.entries)
            .remove(&self.digest)
            .map(|e| e.calls)
            .unwrap_or_default()
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        lock(&self.keys.entries).remove(&self.digest);
    }
}

impl BridgeKeys {
    /// Mints a key for `execution_id` of `namespace`, sent on worker connection `conn_id`,
    /// valid for `ttl`.
    pub fn mint(
        self: &Arc<Self>,
        namespace: &str,
        execution_id: &str,
        conn_id: u64,
        ttl: Duration,
    ) -> KeyGuard {
        let raw: [u8; BRIDGE_KEY_BYTES] = rand::random();
        let key = hex::encode(raw);
        let d = digest(&key);
        let mut t = lock(&self.entries);
        t.by_execution.insert((conn_id, execution_id.to_owned()), d);
        t.by_digest.insert(
            d,
            Entry {
                namespace: namespace.to_owned(),
                execution_id: execution_id.to_owned(),
                conn_id,
                deadline: Instant::now() + ttl,
                revoked: false,
                budgets: HashMap::new(),
                calls: Vec::new(),
            },
        );
        KeyGuard {
            keys: Arc::clone(self),
            digest: d,
            key,
        }
    }

    /// Marks the key of `execution_id` on `conn_id` revoked (its result arrived); its call
    /// log stays until the guard collects it.
    pub fn revoke(&self, conn_id: u64, execution_id: &str) {
        let mut t = lock(&self.entries);
        let Some(d) = t
            .by_execution
            .get(&(conn_id, execution_id.to_owned()))
            .copied()
        else {
            return;
        };
        if let Some(e) = t.by_digest.get_mut(&d) {
            e.revoked = true;
        }
    }

    /// Number of keys alive (revoked ones included until their guard drops).
    pub fn len(&self) -> usize {
        lock(&self.entries).by_digest.len()
    }

    /// True when no key is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check<'a>(
        entries: &'a mut Table,
        d: &Digest32,
        execution_id: &str,
        conn_id: u64,
    ) -> Result<&'a mut Entry, Denied> {
        let Some(e) = entries.by_digest.get_mut(d) else {
            return Err(Denied::invalid("unknown or ended execution"));
        };
        if e.revoked {
            return Err(Denied::invalid("the execution has ended"));
        }
        if Instant::now() >= e.deadline {
            return Err(Denied::invalid("expired"));
        }
        if e.execution_id != execution_id || e.conn_id != conn_id {
            return Err(Denied::invalid("issued to another execution"));
        }
        Ok(e)
    }

    /// Checks the key for a call by `execution_id` on `conn_id` without counting it:
    /// the key's namespace, and whether the budget of `server` is fixed on the key
    /// already (so the caller reads the server's setting only for a first call).
    ///
    /// # Errors
    /// [`Denied`] (`BRIDGE_KEY_INVALID`) when the key is not valid for this call.
    pub fn lookup(
        &self,
        key: &str,
        execution_id: &str,
        conn_id: u64,
        server: &str,
    ) -> Result<(String, bool), Denied> {
        let d = digest(key);
        let mut entries = lock(&self.entries);
        let e = Self::check(&mut entries, &d, execution_id, conn_id)?;
        Ok((e.namespace.clone(), e.budgets.contains_key(server)))
    }

    /// Checks the key for a call to `server` by `execution_id` on `conn_id` and counts
    /// the call against the server's budget (`limit` fixes the budget on the first call
    /// to that server; later values are ignored).
    ///
    /// # Errors
    /// `BRIDGE_KEY_INVALID` (unknown, expired, revoked, another execution or connection),
    /// `CALL_BUDGET_EXCEEDED` (recorded in the call log).
    pub fn authorize(
        &self,
        key: &str,
        execution_id: &str,
        conn_id: u64,
        server: &str,
        tool_name: &str,
        limit: u32,
    ) -> Result<Allowed, Denied> {
        let d = digest(key);
        let mut entries = lock(&self.entries);
        let e = Self::check(&mut entries, &d, execution_id, conn_id)?;
        if !e.budgets.contains_key(server) && e.budgets.len() >= MAX_SERVERS_PER_KEY {
            return Err(Denied {
                code: ErrorCode::CallBudgetExceeded,
                message: format!(
                    "this execution already called {MAX_SERVERS_PER_KEY} different servers, the most one execution may call"
                ),
            });
        }
        let (max, used) = e.budgets.entry(server.to_owned()).or_insert((limit, 0));
        if *used >= *max {
            let max = *max;
            let denied = Denied {
                code: ErrorCode::CallBudgetExceeded,
                message: format!(
                    "this execution already made {max} call{} to server {server:?}, its \
                     max_calls_per_execution; make fewer calls per execution or raise the setting",
                    if max == 1 { "" } else { "s" }
                ),
            };
            push(
                &mut e.calls,
                CallRecord {
                    name: tool_name.to_owned(),
                    status: denied.code.as_str().to_owned(),
                    duration_us: 0,
                    bytes: 0,
                },
            );
            return Err(denied);
        }
        *used += 1;
        Ok(Allowed {
            namespace: e.namespace.clone(),
            remaining: e.deadline.saturating_duration_since(Instant::now()),
        })
    }

    /// Records a finished call under `key` (ignored when the key is gone).
    pub fn record(&self, key: &str, call: CallRecord) {
        let d = digest(key);
        if let Some(e) = lock(&self.entries).by_digest.get_mut(&d) {
            push(&mut e.calls, call);
        }
    }
}

fn push(calls: &mut Vec<CallRecord>, call: CallRecord) {
    if calls.len() < MAX_CALL_RECORDS {
        calls.push(call);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Arc<BridgeKeys> {
        Arc::new(BridgeKeys::default())
    }

    #[test]
    fn keys_are_random_hex_and_stored_hashed() {
        let k = keys();
        let a = k.mint("ns", "e1", 1, Duration::from_secs(60));
        let b = k.mint("ns", "e2", 1, Duration::from_secs(60));
        assert_eq!(a.key().len(), 2 * BRIDGE_KEY_BYTES);
        assert!(a.key().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.key(), b.key());
        let stored = format!("{:?}", k.entries);
        assert!(!stored.contains(a.key()), "the raw key is never stored");
        assert_eq!(k.len(), 2);
        drop(a);
        assert_eq!(k.len(), 1);
    }

    #[test]
    fn bindings_are_checked() {
        let k = keys();
        let g = k.mint("ns", "e1", 7, Duration::from_secs(60));
        let ok = k.authorize(g.key(), "e1", 7, "s", "mcp__s__t", 5);
        assert_eq!(ok.as_ref().map(|a| a.namespace.as_str()), Ok("ns"));
        let code = |r: Result<Allowed, Denied>| r.err().map(|d| d.code);
        let invalid = Some(ErrorCode::BridgeKeyInvalid);
        assert_eq!(code(k.authorize(g.key(), "e2", 7, "s", "t", 5)), invalid);
        assert_eq!(code(k.authorize(g.key(), "e1", 8, "s", "t", 5)), invalid);
        let mut other = g.key().to_owned();
        other.replace_range(0..1, if other.starts_with('0') { "1" } else { "0" });
        assert_eq!(code(k.authorize(&other, "e1", 7, "s", "t", 5)), invalid);
        assert_eq!(code(k.authorize("", "e1", 7, "s", "t", 5)), invalid);
        k.revoke(7, "e1");
        let revoked = k.authorize(g.key(), "e1", 7, "s", "t", 5);
        assert_eq!(
            revoked.err().map(|d| d.message),
            Some("the bridge key is not valid for this call (the execution has ended)".into())
        );
        let key = g.key().to_owned();
        let calls = g.finish();
        assert!(calls.is_empty());
        assert_eq!(code(k.authorize(&key, "e1", 7, "s", "t", 5)), invalid);
        assert!(k.is_empty());
    }

    #[test]
    fn expired_keys_are_refused() {
        let k = keys();
        let g = k.mint("ns", "e1", 1, Duration::ZERO);
        let r = k.authorize(g.key(), "e1", 1, "s", "t", 5);
        assert_eq!(
            r.err().map(|d| d.message),
            Some("the bridge key is not valid for this call (expired)".into())
        );
    }

    #[test]
    fn budgets_hold_per_server_and_are_fixed_at_first_use() {
        let k = keys();
        let g = k.mint("ns", "e1", 1, Duration::from_secs(60));
        assert_eq!(k.lookup(g.key(), "e1", 1, "a"), Ok(("ns".into(), false)));
        for _ in 0..2 {
            assert!(k.authorize(g.key(), "e1", 1, "a", "mcp__a__t", 2).is_ok());
        }
        assert_eq!(k.lookup(g.key(), "e1", 1, "a"), Ok(("ns".into(), true)));
        // A later, larger limit does not reopen the budget.
        let third = k.authorize(g.key(), "e1", 1, "a", "mcp__a__t", 100);
        assert_eq!(
            third.as_ref().err().map(|d| d.code),
            Some(ErrorCode::CallBudgetExceeded)
        );
        assert!(
            third
                .err()
                .is_some_and(|d| d.message.contains("already made 2 calls to server \"a\""))
        );
        // Another server has its own budget; zero allows nothing.
        assert!(k.authorize(g.key(), "e1", 1, "b", "mcp__b__t", 1).is_ok());
        assert!(k.authorize(g.key(), "e1", 1, "c", "mcp__c__t", 0).is_err());
        // At most MAX_SERVERS_PER_KEY distinct servers (a, b, c and the rest).
        for i in 3..MAX_SERVERS_PER_KEY {
            assert!(
                k.authorize(g.key(), "e1", 1, &format!("s{i}"), "t", 1)
                    .is_ok()
            );
        }
        let many = k.authorize(g.key(), "e1", 1, "one-too-many", "t", 1);
        assert_eq!(
            many.err().map(|d| d.code),
            Some(ErrorCode::CallBudgetExceeded)
        );
        assert!(k.authorize(g.key(), "e1", 1, "b", "mcp__b__t", 1).is_err());
        k.record(
            g.key(),
            CallRecord {
                name: "mcp__a__t".into(),
                status: "ok".into(),
                duration_us: 5,
                bytes: 9,
            },
        );
        let calls = g.finish();
        let names: Vec<(&str, &str)> = calls
            .iter()
            .map(|c| (c.name.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("mcp__a__t", "CALL_BUDGET_EXCEEDED"),
                ("mcp__c__t", "CALL_BUDGET_EXCEEDED"),
                ("mcp__b__t", "CALL_BUDGET_EXCEEDED"),
                ("mcp__a__t", "ok")
            ]
        );
    }
}
