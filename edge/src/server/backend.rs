//! The [`Backend`] seam the transport calls: authentication, authorization, create tools
//! and REST. [`crate::app::App`] implements it in production; tests use fakes.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::app::{ApiError, Endpoint, Principal, RestRequest, RestResponse, ToolDef};

/// What the transport needs from the control plane (mirrors the `App` API).
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Checks a raw API key (microseconds).
    ///
    /// # Errors
    /// `AUTHENTICATION_FAILED` for an unknown, expired or revoked key.
    fn authenticate(&self, raw_key: &str) -> Result<Principal, ApiError>;
    /// Checks that `p` may use `endpoint` of namespace `ns`.
    ///
    /// # Errors
    /// `SCOPE_DENIED` / `NAMESPACE_DENIED`.
    fn authorize(&self, p: &Principal, endpoint: Endpoint, ns: &str) -> Result<(), ApiError>;
    /// The create tools of namespace `ns` as `p` sees them.
    fn create_tools(&self, p: &Principal, ns: &str) -> Vec<ToolDef>;
    /// Calls one create tool.
    ///
    /// # Errors
    /// The tool's typed error.
    async fn call_create_tool(
        &self,
        p: &Principal,
        ns: &str,
        tool: &str,
        args: Map<String, Value>,
    ) -> Result<Value, ApiError>;
    /// Everything under `/v1/` except health.
    async fn rest(&self, req: RestRequest) -> RestResponse;
    /// The highest committed replication sequence.
    fn committed_seq(&self) -> u64;
    /// The limiter that admits MCP requests (quota, rates, concurrency); `None` = no limits.
    fn limiter(&self) -> Option<&crate::quota::Limiter> {
        None
    }
}
