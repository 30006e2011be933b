//! The protocol's messages: one enum per direction, named by direction so that the same
//! enums serve whichever side dials (the edge today, the worker in issue 4).
//!
//! Wire-compatibility rule: append variants, never reorder, remove or change them; a
//! golden-bytes test pins each variant's encoding.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::FrameKind;
use super::bridge::{BridgeCall, BridgeOutcome};
use crate::error::ErrorCode;
use crate::exec::{ExecutionRequest, ExecutionResult, WorkerStats};
use crate::model::{Language, ReplEntry};
use crate::replication::SnapshotPart;

/// A message type that travels in frames of one [`FrameKind`].
pub trait Message: Serialize + DeserializeOwned + std::fmt::Debug + Send + 'static {
    /// The header's direction byte for this message type.
    const KIND: FrameKind;
}

/// First frame from the dialing edge or client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Highest protocol version the sender speaks.
    pub version: u8,
    /// Who is speaking (edge id, `bench`, a test name), for the worker's logs.
    pub peer_id: String,
}

/// The worker's handshake answer: who it is and what it can run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Protocol version the worker will speak on this connection.
    pub version: u8,
    /// Stable worker id (for logs and, in issue 4, load spreading).
    pub worker_id: String,
    /// Executions the worker can run at once across all connections.
    pub capacity: u32,
    /// Executions this connection may have in flight; the worker stops reading
    /// `Execute` frames past it, so a client should not exceed it.
    pub max_in_flight: u32,
    /// Largest frame body the worker accepts, in bytes.
    pub max_frame_len: u32,
    /// Sandbox profiles the worker serves (tier names).
    pub profiles: Vec<String>,
    /// Languages the worker serves.
    pub languages: Vec<Language>,
}

/// Frames sent to a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// Handshake; must be the first frame.
    Hello(Hello),
    /// Run one execution; answered by [`FromWorker::Result`] (or an `Error` naming it).
    Execute(ExecutionRequest),
    /// Cancel a running execution; its result comes back with status `canceled`.
    /// Unknown ids are ignored (the execution may have just finished).
    Cancel { execution_id: String },
    /// Ask for [`FromWorker::Stats`]; answers come back in request order.
    StatsRequest,
    /// Liveness probe; answered by [`FromWorker::Pong`] with the same nonce.
    Ping { nonce: u64 },
    /// v2 (edge link): replication log entries in sequence order, answered by
    /// [`FromWorker::Ack`] (or [`FromWorker::NeedFrom`] when they skip entries).
    Replicate { entries: Vec<ReplEntry> },
    /// v2: one part of a snapshot of the replicated state. With `reset` the worker
    /// installs it unconditionally (its replica diverged from the edge's log).
    Snapshot { part: SnapshotPart, reset: bool },
    /// v2: run one execution once the worker has applied the replication log up to
    /// `min_seq` (read-your-writes); answered like [`ToWorker::Execute`].
    ExecuteV2 {
        request: ExecutionRequest,
        min_seq: u64,
    },
    /// v2: answer to [`FromWorker::Ping`].
    Pong { nonce: u64 },
    /// v2: a connection-level refusal from the edge (bad join token, bad first frame);
    /// the edge closes the connection after sending it.
    Error {
        #[serde(with = "code_as_u16")]
        code: ErrorCode,
        message: String,
    },
    /// v3: [`ToWorker::ExecuteV2`] plus the execution's bridge key (hex, 256 random bits),
    /// which the worker keeps next to the running execution (never in the sandbox) and
    /// sends back with each [`FromWorker::BridgeCall`] of that execution.
    ExecuteV3 {
        request: ExecutionRequest,
        min_seq: u64,
        bridge_key: String,
    },
    /// v3: the answer to the worker's [`FromWorker::BridgeCall`] with the same `call_id`.
    BridgeResult {
        call_id: u64,
        outcome: BridgeOutcome,
    },
}

impl Message for ToWorker {
    const KIND: FrameKind = FrameKind::ToWorker;
}

/// Frames sent by a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromWorker {
    /// Handshake answer; the first frame the worker sends.
    Welcome(Welcome),
    /// The result of one execution (results come back in completion order).
    Result(ExecutionResult),
    /// Answer to [`ToWorker::StatsRequest`].
    Stats(WorkerStats),
    /// Answer to [`ToWorker::Ping`].
    Pong { nonce: u64 },
    /// A typed refusal. With an `execution_id` it ends that execution (e.g. a
    /// duplicate id); without one it concerns the connection, which the worker closes
    /// after sending it (version mismatch, malformed frame).
    Error {
        execution_id: Option<String>,
        #[serde(with = "code_as_u16")]
        code: ErrorCode,
        message: String,
    },
    /// v2 (edge link): the first frame of a worker dialing the edge. The edge answers
    /// [`ToWorker::Hello`], or an `Error` and closes (bad token, bad version). `from_seq`
    /// is the first replication sequence the worker lacks.
    Join {
        join_token: String,
        from_seq: u64,
        welcome: Welcome,
    },
    /// v2: the worker has durably applied the replication log up to `applied_seq`.
    Ack { applied_seq: u64 },
    /// v2: a batch skipped entries; resend from `seq`.
    NeedFrom { seq: u64 },
    /// v2: liveness probe from the worker; answered by [`ToWorker::Pong`].
    Ping { nonce: u64 },
    /// v3: sandboxed code calls a remote MCP tool; answered by [`ToWorker::BridgeResult`].
    BridgeCall(BridgeCall),
}

impl Message for FromWorker {
    const KIND: FrameKind = FrameKind::FromWorker;
}

/// [`ErrorCode`] travels as its stable numeric value, not as the enum's declaration
/// index, so adding a code never shifts the encoding. A value this build does not know
/// (a newer peer) decodes as [`ErrorCode::Internal`].
pub(super) mod code_as_u16 {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::error::ErrorCode;

    pub fn serialize<S: Serializer>(code: &ErrorCode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(code.value())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ErrorCode, D::Error> {
        let value = u16::deserialize(d)?;
        Ok(ErrorCode::ALL
            .iter()
            .copied()
            .find(|c| c.value() == value)
            .unwrap_or(ErrorCode::Internal))
    }
}
