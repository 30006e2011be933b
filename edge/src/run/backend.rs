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

    /// [`RunBackend::execute`], also naming the worker the execution was sent to (for the
    /// record; `None` when no worker was chosen or the backend has no workers).
    async fn execute_traced(
        &self,
        req: ExecutionRequest,
        min_seq: u64,
        cancel: CancellationToken,
    ) -> (Option<String>, Result<ExecutionResult, ApiError>) {
        (None, self.execute(req, min_seq, cancel).await)
    }
}

/// The real backend: the worker link's dispatcher.
#[async_trait]
impl RunBackend for crate::workers::Dispatcher {
    async fn execute(
        &self,
        req: ExecutionRequest,
        min_seq: u64,
        cancel: CancellationToken,
    ) -> Result<ExecutionResult, ApiError> {
        crate::workers::Dispatcher::execute(self, req, min_seq, cancel).await
    }

    async fn execute_traced(
        &self,
        req: ExecutionRequest,
        min_seq: u64,
        cancel: CancellationToken,
    ) -> (Option<String>, Result<ExecutionResult, ApiError>) {
        crate::workers::Dispatcher::execute_traced(self, req, min_seq, cancel).await
    }
}

/// A backend without workers: every execution answers `NO_WORKERS` (an edge started
/// without the worker link, and tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoBackend;

#[async_trait]
impl RunBackend for NoBackend {
    async fn execute(
        &self,
        _: ExecutionRequest,
        _: u64,
        _: CancellationToken,
    ) -> Result<ExecutionResult, ApiError> {
        Err(ApiError {
            retry_after: Some(30),
            ..ApiError::new(
                paddock_shared::ErrorCode::NoWorkers,
                "no worker is connected to this edge; start one with paddock-worker serve and retry",
            )
        })
    }
}
