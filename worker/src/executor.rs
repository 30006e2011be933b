//! The seam between the protocol servers (Unix/TCP, later the edge link) and the slot
//! pools: anything that can run an [`ExecutionRequest`] to an [`ExecutionResult`].

use std::future::Future;

use paddock_shared::exec::{ExecutionRequest, ExecutionResult, WorkerStats};
use tokio_util::sync::CancellationToken;

/// Runs executions. Implemented by the slot pools; protocol servers are generic over it
/// so they can be tested with a small in-process executor.
pub trait Executor: Send + Sync + 'static {
    /// Runs one execution to its result. Never fails: every outcome, including a
    /// sandbox failure or `cancel` firing (→ `canceled`), is an `ExecutionResult`.
    fn execute(
        &self,
        request: ExecutionRequest,
        cancel: CancellationToken,
    ) -> impl Future<Output = ExecutionResult> + Send;

    /// Current load and pool accounting.
    fn stats(&self) -> WorkerStats;

    /// Sends the calls sandboxed code makes to remote MCP tools to `remote` (the edge
    /// link); false when the executor cannot make such calls (the default) or already
    /// has a destination.
    fn attach_remote(&self, remote: std::sync::Arc<dyn crate::slots::calls::RemoteCaller>) -> bool {
        let _ = remote;
        false
    }
}
