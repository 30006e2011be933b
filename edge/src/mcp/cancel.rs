//! MCP cancellation in stateless mode: a `notifications/cancelled` {requestId} sent as its
//! own POST reaches the run call it names.
//!
//! rmcp serves each stateless POST with a fresh service, so a cancel notification in a
//! later POST finds no request to cancel (rmcp answers 202 and drops it). The edge keeps
//! its own table instead: every run-endpoint call registers the cancel token of its
//! request under (account, API key, JSON-RPC request id) for as long as it runs, and
//! [`CancelService`] looks a posted cancel up there before handing the POST to rmcp. A
//! caller can only reach calls made with the same key of the same account: request ids are
//! chosen by clients, so keying by id alone would let anyone cancel anyone's work.
//!
//! With sessions (`mcp_sessions = true`) rmcp routes cancels within the session itself and
//! this table is not consulted. Clients of the 2026-07-28 generation cancel by closing the
//! request's response stream instead of posting a notification; the HTTP layer
//! (`server::http`) watches the connection during a run call and drops it then.
//! A cancel that arrives before its call has registered (a race only a client that cancels
//! within microseconds can lose) is dropped like any notification nobody waits for.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use rmcp::model::NumberOrString;
use rmcp::transport::streamable_http_server::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{CallCtx, McpHandler};
use crate::app::Principal;

/// Method name of an MCP cancellation.
pub const CANCELLED_METHOD: &str = "notifications/cancelled";

/// A JSON-RPC request id as clients send it (`1` and `"1"` are different ids).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RequestKey {
    Number(i64),
    String(String),
}

impl From<&NumberOrString> for RequestKey {
    fn from(id: &NumberOrString) -> RequestKey {
        match id {
            NumberOrString::Number(n) => RequestKey::Number(*n),
            NumberOrString::String(s) => RequestKey::String(s.to_string()),
        }
    }
}

impl RequestKey {
    /// The id of a `requestId` value; `None` for anything but an integer or a string.
    pub fn of_value(v: &Value) -> Option<RequestKey> {
        match v {
            Value::Number(n) => n.as_i64().map(RequestKey::Number),
            Value::String(s) => Some(RequestKey::String(s.clone())),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    account: String,
    api_key: String,
    request: RequestKey,
}

impl Key {
    fn new(p: &Principal, request: RequestKey) -> Key {
        Key {
            account: p.account_id.clone(),
            api_key: p.key_id.clone(),
            request,
        }
    }
}

/// The running run-endpoint calls, by caller and request id.
#[derive(Default)]
pub struct Cancels {
    entries: Mutex<HashMap<Key, Vec<(u64, CancellationToken)>>>,
    next: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Cancels {
    /// Registers `token` as the cancel token of request `id` of `p` until the returned
    /// guard drops.
    pub fn register(
        self: &Arc<Self>,
        p: &Principal,
        id: RequestKey,
        token: CancellationToken,
    ) -> Registration {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let key = Key::new(p, id);
        lock(&self.entries)
            .entry(key.clone())
            .or_default()
            .push((n, token));
        Registration {
            cancels: self.clone(),
            key: Some(key),
            n,
        }
    }

    /// Cancels every running call of `p` with request id `id` (normally one; two clients
    /// sharing a key may reuse an id). Returns how many were canceled.
    pub fn cancel(&self, p: &Principal, id: RequestKey) -> usize {
        let key = Key::new(p, id);
        let tokens: Vec<CancellationToken> = lock(&self.entries)
            .get(&key)
            .map(|v| v.iter().map(|(_, t)| t.clone()).collect())
            .unwrap_or_default();
        for t in &tokens {
            t.cancel();
        }
        tokens.len()
    }

    /// Calls registered now (tests and diagnostics).
    pub fn len(&self) -> usize {
        lock(&self.entries).values().map(Vec::len).sum()
    }

    /// True when no call is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Removes its call from [`Cancels`] on drop.
pub struct Registration {
    cancels: Arc<Cancels>,
    key: Option<Key>,
    n: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut map = lock(&self.cancels.entries);
        if let Some(v) = map.get_mut(&key) {
            v.retain(|(n, _)| *n != self.n);
            if v.is_empty() {
                map.remove(&key);
            }
        }
    }
}

#[derive(Deserialize)]
struct Notification {
    jsonrpc: String,
    method: String,
    #[serde(default)]
    params: Option<CancelParams>,
    /// A notification has no id; a body with one is a (malformed) request.
    #[serde(default)]
    id: Option<Value>,
}

#[derive(Deserialize)]
struct CancelParams {
    #[serde(rename = "requestId", default)]
    request_id: Option<Value>,
}

/// The request id a POST body cancels, when it is a single JSON-RPC
/// `notifications/cancelled` naming one.
pub fn cancelled_request(body: &[u8]) -> Option<RequestKey> {
    // Cheap check first: this runs on every stateless MCP POST.
    if !body
        .windows(CANCELLED_METHOD.len())
        .any(|w| w == CANCELLED_METHOD.as_bytes())
    {
        return None;
    }
    let n: Notification = serde_json::from_slice(body).ok()?;
    if n.jsonrpc != "2.0" || n.method != CANCELLED_METHOD || n.id.is_some() {
        return None;
    }
    RequestKey::of_value(n.params?.request_id.as_ref()?)
}

/// The rmcp service with stateless cancellation in front of it (see the module doc).
#[derive(Clone)]
pub struct CancelService {
    pub(super) inner: StreamableHttpService<McpHandler, LocalSessionManager>,
    pub(super) cancels: Arc<Cancels>,
    /// True when the edge runs MCP stateless (then posted cancels are looked up here).
    pub(super) stateless: bool,
}

impl CancelService {
    /// The stateless cancel table (the fast path registers its calls here too).
    pub fn cancels(&self) -> &Arc<Cancels> {
        &self.cancels
    }
}

/// What rmcp's service answers.
pub type McpResponse = http::Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>;

impl tower_service::Service<http::Request<Full<Bytes>>> for CancelService {
    type Response = McpResponse;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<McpResponse, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Full<Bytes>>) -> Self::Future {
        let mut inner = self.inner.clone();
        let watch = self.stateless
            && req.method() == http::Method::POST
            && !req.headers().contains_key("mcp-session-id");
        if !watch {
            return Box::pin(async move { inner.call(req).await });
        }
        let cancels = self.cancels.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let bytes = match body.collect().await {
                Ok(c) => c.to_bytes(),
                Err(never) => match never {},
            };
            if let (Some(id), Some(ctx)) =
                (cancelled_request(&bytes), parts.extensions.get::<CallCtx>())
            {
                let n = cancels.cancel(&ctx.principal, id.clone());
                tracing::debug!(request_id = ?id, canceled = n, "stateless notifications/cancelled");
            }
            inner
                .call(http::Request::from_parts(parts, Full::new(bytes)))
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_shared::model::Tier;

    fn principal(account: &str, key: &str) -> Principal {
        Principal {
            account_id: account.into(),
            key_id: key.into(),
            tier: Tier::Free,
            scopes: Vec::new(),
            namespace: None,
            is_admin: false,
        }
    }

    #[test]
    fn parses_only_single_cancel_notifications() {
        let ok = br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"x"}}"#;
        assert_eq!(cancelled_request(ok), Some(RequestKey::Number(7)));
        let s =
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"7"}}"#;
        assert_eq!(cancelled_request(s), Some(RequestKey::String("7".into())));
        for other in [
            &br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"method":"notifications/cancelled","params":{"requestId":7}}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{}}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1.5}}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled"}"#,
            br#"[{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}]"#,
            br#"{"jsonrpc":"1.0","method":"notifications/cancelled","params":{"requestId":7}}"#,
            b"notifications/cancelled",
        ] {
            assert_eq!(cancelled_request(other), None, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn cancels_only_the_same_callers_request_and_forgets_finished_ones() {
        let cancels = Arc::new(Cancels::default());
        let alice = principal("acc_a", "key_a");
        let t = CancellationToken::new();
        let reg = cancels.register(&alice, RequestKey::Number(3), t.clone());
        assert_eq!(cancels.len(), 1);
        // Another account, another key of the same account, another id: nothing.
        assert_eq!(
            cancels.cancel(&principal("acc_b", "key_a"), RequestKey::Number(3)),
            0
        );
        assert_eq!(
            cancels.cancel(&principal("acc_a", "key_2"), RequestKey::Number(3)),
            0
        );
        assert_eq!(cancels.cancel(&alice, RequestKey::String("3".into())), 0);
        assert!(!t.is_cancelled());
        assert_eq!(cancels.cancel(&alice, RequestKey::Number(3)), 1);
        assert!(t.is_cancelled());
        drop(reg);
        assert!(cancels.is_empty());
        assert_eq!(cancels.cancel(&alice, RequestKey::Number(3)), 0);
    }

    #[test]
    fn a_reused_id_cancels_both_and_each_guard_removes_only_its_own() {
        let cancels = Arc::new(Cancels::default());
        let p = principal("acc", "key");
        let (t1, t2) = (CancellationToken::new(), CancellationToken::new());
        let r1 = cancels.register(&p, RequestKey::Number(1), t1.clone());
        let r2 = cancels.register(&p, RequestKey::Number(1), t2.clone());
        drop(r1);
        assert_eq!(cancels.len(), 1);
        assert_eq!(cancels.cancel(&p, RequestKey::Number(1)), 1);
        assert!(!t1.is_cancelled() && t2.is_cancelled());
        drop(r2);
        assert!(cancels.is_empty());
    }
}
