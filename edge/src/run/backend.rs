//! [`RunBackend`]: what the run tools need from the worker link — one execution,
//! dispatched to some worker, with the state sequence it must see and a cancel token.
//! `edge::workers::Dispatcher` is the real one; tests use a fake.

use async_trait::async_trait;
use paddock_shared::exec::{ExecutionRequest, ExecutionResult};
use tokio_util::sync::CancellationToken;

use crate::app::ApiError;

/// Runs one execution somewhere.
#[async_trait]
pub trait RunBackend: Send + Sync + 'static {
    /// Runs `req` on a worker whose replica has applied `min_seq`; `cancel` kills the slot
    /// and yields a `canceled` result.
    ///
    /// # Errors
    /// `NO_WORKERS`, `WORKER_LOST`, `STATE_NOT_READY`, `WORKER_BUSY` … as typed errors.
    async fn execute(
        &self,
        req: ExecutionRequest,
        min_seq: u64,
        cancel: CancellationToken,
    ) -> Result<ExecutionResult, ApiError>;
}
