//! The [`RunTools`] seam of the run endpoint: issue 4 (workers) plugs its code-mode and
//! tool-mode tools in here. Until then [`NoWorkers`] lists no tools and answers every
//! call with a typed `NO_WORKERS` error.

use async_trait::async_trait;
use serde_json::{Map, Value};

use paddock_shared::ErrorCode;

use crate::app::{ApiError, Principal, ToolDef};
use crate::route::RunMode;

/// Tools of the run endpoint of one namespace.
#[async_trait]
pub trait RunTools: Send + Sync + 'static {
    /// The tools listed for this namespace and mode.
    ///
    /// # Errors
    /// A typed error when the list cannot be built.
    async fn list(&self, p: &Principal, ns: &str, mode: &RunMode)
    -> Result<Vec<ToolDef>, ApiError>;
    /// Runs one tool; `Ok` is the execution result (`structuredContent`).
    ///
    /// # Errors
    /// A typed error (`NO_WORKERS`, quota, unknown tool …).
    async fn call(
        &self,
        p: &Principal,
        ns: &str,
        mode: &RunMode,
        tool: &str,
        args: Map<String, Value>,
    ) -> Result<Value, ApiError>;
    /// Runs one tool with the MCP request's cancel token (`notifications/cancelled`);
    /// the outcome carries its own `content[0].text` and `isError`. The default wraps
    /// [`RunTools::call`] (no cancel, never `isError`); [`crate::run::RunTools`] overrides it.
    ///
    /// # Errors
    /// As [`RunTools::call`].
    async fn call_outcome(
        &self,
        p: &Principal,
        ns: &str,
        mode: &RunMode,
        tool: &str,
        args: Map<String, Value>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<crate::run::RunOutcome, ApiError> {
        drop(cancel);
        let v = self.call(p, ns, mode, tool, args).await?;
        Ok(crate::run::RunOutcome {
            text: v.to_string(),
            structured: v,
            is_error: false,
        })
    }
}

/// The run endpoint before workers exist: an empty tool list, and `NO_WORKERS` on call.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoWorkers;

#[async_trait]
impl RunTools for NoWorkers {
    async fn list(&self, _: &Principal, _: &str, _: &RunMode) -> Result<Vec<ToolDef>, ApiError> {
        Ok(Vec::new())
    }

    async fn call(
        &self,
        _: &Principal,
        _: &str,
        _: &RunMode,
        tool: &str,
        _: Map<String, Value>,
    ) -> Result<Value, ApiError> {
        Err(ApiError {
            retry_after: Some(30),
            ..ApiError::new(
                ErrorCode::NoWorkers,
                format!(
                    "no workers yet: tool {tool:?} needs a paddock-worker connected to this edge; \
                     start one and retry"
                ),
            )
        })
    }
}
