//! Version 3: the bridge frames. Sandboxed code calls a remote MCP tool; the worker
//! forwards the call to the edge over the link ([`BridgeCall`]) with the execution's
//! bridge key, the edge checks the key and the call budget, calls the server and answers
//! with a [`BridgeOutcome`] matched by `call_id`.
//!
//! Sizes are bounded here (checked by both sides before anything is sent or done), well
//! under the frame cap, so a call or its answer always fits one frame.

use serde::{Deserialize, Serialize};

use super::message::code_as_u16;
use crate::error::ErrorCode;

/// Length of a bridge key in bytes (256 random bits), hex-encoded on the wire.
pub const BRIDGE_KEY_BYTES: usize = 32;
/// Longest server or tool name accepted in a [`BridgeCall`], in bytes.
pub const MAX_BRIDGE_NAME_BYTES: usize = 256;
/// Largest arguments document (JSON text) of one call, in bytes.
pub const MAX_BRIDGE_INPUT_BYTES: usize = 1024 * 1024;
/// Largest value (JSON text) of one answer, in bytes. The edge's per-server
/// `response_limit_bytes` truncates long before this; a value over it is refused.
pub const MAX_BRIDGE_VALUE_BYTES: usize = 4 * 1024 * 1024;
/// Longest error message of one answer, in bytes (longer ones are cut).
pub const MAX_BRIDGE_MESSAGE_BYTES: usize = 4096;

/// A call from sandboxed code to a remote MCP tool, worker → edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeCall {
    /// The execution the call belongs to (the top-level one for nested function calls).
    pub execution_id: String,
    /// The bridge key the edge sent with that execution (hex).
    pub bridge_key: String,
    /// Chosen by the worker, unique on its link; echoed in [`BridgeResult`].
    pub call_id: u64,
    /// Server name as attached to the namespace.
    pub server: String,
    /// Exposed tool name (after renames).
    pub tool: String,
    /// The arguments: a JSON object, as text.
    pub input_json: String,
}

/// A successful call: the tool answered (possibly with a tool-level error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeReply {
    /// The tool's result as JSON text.
    pub value_json: String,
    /// The tool reported an error (`isError: true`); the value holds its content.
    pub is_error: bool,
    /// The response was cut at the server's `response_limit_bytes`.
    pub truncated: bool,
    /// Size of the response received from the server, in bytes.
    pub bytes: u64,
    /// Time the edge spent on the call, in microseconds.
    pub latency_us: u64,
}

/// The answer to one [`BridgeCall`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BridgeOutcome {
    /// The server answered.
    Ok(BridgeReply),
    /// The call was refused or failed: `BRIDGE_KEY_INVALID`, `CALL_BUDGET_EXCEEDED`,
    /// `RULE_BLOCKED`, `MCP_SERVER_TIMEOUT`, `MCP_SERVER_UNAVAILABLE`, … with a sanitized
    /// message (never a credential or a server URL).
    Err {
        #[serde(with = "code_as_u16")]
        code: ErrorCode,
        message: String,
        /// Time the edge spent before failing, in microseconds.
        latency_us: u64,
    },
}

/// Why a [`BridgeCall`] is malformed (checked before it is sent or served).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BridgeCallError {
    #[error("the {field} is empty or longer than {MAX_BRIDGE_NAME_BYTES} bytes")]
    BadName { field: &'static str },
    #[error("the arguments are {len} bytes, over the {MAX_BRIDGE_INPUT_BYTES}-byte limit")]
    InputTooLarge { len: usize },
}

impl BridgeCall {
    /// Checks the names and the size of the arguments.
    ///
    /// # Errors
    /// [`BridgeCallError`] naming what is wrong.
    pub fn check(&self) -> Result<(), BridgeCallError> {
        for (field, v) in [("server name", &self.server), ("tool name", &self.tool)] {
            if v.is_empty() || v.len() > MAX_BRIDGE_NAME_BYTES {
                return Err(BridgeCallError::BadName { field });
            }
        }
        if self.input_json.len() > MAX_BRIDGE_INPUT_BYTES {
            return Err(BridgeCallError::InputTooLarge {
                len: self.input_json.len(),
            });
        }
        Ok(())
    }
}

/// `message` cut to [`MAX_BRIDGE_MESSAGE_BYTES`] on a character boundary.
pub fn clip_message(message: &str) -> String {
    if message.len() <= MAX_BRIDGE_MESSAGE_BYTES {
        return message.to_owned();
    }
    let mut end = MAX_BRIDGE_MESSAGE_BYTES - 3;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}
