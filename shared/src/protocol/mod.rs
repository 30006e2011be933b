//! Edge ⇄ worker wire protocol: the frame layout, the two message enums (one per
//! direction) and the codec that turns them into bytes and back. No I/O here.
//!
//! # Frame layout
//!
//! Every message travels in one frame; all integers are big-endian.
//!
//! | offset | size | field   | meaning                                                   |
//! |-------:|-----:|---------|-----------------------------------------------------------|
//! | 0      | 3    | magic   | `P` `D` `K` (`0x50 0x44 0x4b`)                            |
//! | 3      | 1    | version | protocol version of the sender ([`VERSION`])              |
//! | 4      | 1    | kind    | direction of the body: `0x01` [`ToWorker`], `0x02` [`FromWorker`] |
//! | 5      | 1    | flags   | reserved, must be `0`                                      |
//! | 6      | 4    | length  | body length `n` in bytes, `n ≤` the receiver's frame cap   |
//! | 10     | n    | body    | the message, bincode 2 (standard config: varint, little-endian) |
//!
//! The header is checked before the body is buffered or allocated: a bad magic, an
//! unsupported version, the wrong direction, unknown flags or a length over the cap
//! ([`DEFAULT_MAX_FRAME_LEN`], at most [`MAX_FRAME_LIMIT`]) is an error and the
//! receiver closes the connection. The body is decoded with a byte limit and must be
//! consumed exactly.
//!
//! # Handshake
//!
//! The first frame each way is the handshake: the dialing edge (or client) sends
//! [`ToWorker::Hello`], the worker answers [`FromWorker::Welcome`]. A version the worker
//! does not speak is answered with [`FromWorker::Error`] (`PROTOCOL_ERROR`) and the
//! connection is closed. When the worker dials the edge (version 2, the edge link) the
//! worker speaks first with [`FromWorker::Join`] (join token, first missing replication
//! sequence, its `Welcome`), the edge answers `Hello`; the enums stay the same.
//!
//! # Version 2 (edge link)
//!
//! Appended variants: `ToWorker::{Replicate, Snapshot, ExecuteV2, Pong, Error}` and
//! `FromWorker::{Join, Ack, NeedFrom, Ping}`. Version-1 variants encode exactly as before
//! (only the header's version byte says which version the sender speaks).
//!
//! # Version 3 (bridge)
//!
//! Appended variants: `ToWorker::{ExecuteV3, BridgeResult}` and `FromWorker::BridgeCall`
//! (see [`BridgeCall`]): an execution carries a bridge key, and sandboxed code's calls to
//! remote MCP tools travel slot → worker → edge over the link. A side sends them only
//! when the peer announced version 3 or later (`Welcome.version` / `Hello.version`).
//!
//! # Versioning
//!
//! Variants are only ever appended, never reordered or changed; a new variant or a new
//! message field means a new version (a new variant carrying the extended struct).
//! Decoders accept versions [`MIN_VERSION`]`..=`[`VERSION`]. docs/protocol.md has the
//! rules and the plan for the edge link.
//!
//! bincode is an implementation detail of [`encode_frame`] / [`decode_frame`] so that it
//! can be swapped (bincode is unmaintained upstream).

mod bridge;
mod codec;
mod frame;
mod message;

#[cfg(test)]
mod tests;

pub use bridge::{
    BRIDGE_KEY_BYTES, BridgeCall, BridgeCallError, BridgeOutcome, BridgeReply,
    MAX_BRIDGE_INPUT_BYTES, MAX_BRIDGE_MESSAGE_BYTES, MAX_BRIDGE_NAME_BYTES,
    MAX_BRIDGE_VALUE_BYTES, clip_message,
};
pub use codec::FrameCodec;
pub use frame::{
    FrameError, FrameHeader, decode_frame, decode_frame_eof, encode_frame, encode_frame_as,
    parse_header,
};
pub use message::{FromWorker, Hello, Message, ToWorker, Welcome};

/// The three magic bytes that open every frame.
pub const MAGIC: [u8; 3] = *b"PDK";
/// The protocol version this build speaks (and writes into every frame it sends).
pub const VERSION: u8 = 3;
/// The oldest protocol version this build still accepts.
pub const MIN_VERSION: u8 = 1;
/// Size of the fixed frame header, in bytes.
pub const HEADER_LEN: usize = 10;
/// Default cap on a frame's body, in bytes (8 MiB: a 1 MiB result plus outputs fits
/// many times over).
pub const DEFAULT_MAX_FRAME_LEN: usize = 8 * 1024 * 1024;
/// Hard ceiling of any configured frame cap; also the byte limit of the body decoder.
pub const MAX_FRAME_LIMIT: usize = 16 * 1024 * 1024;

/// The direction byte of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// Edge (or client) → worker: [`ToWorker`].
    ToWorker = 0x01,
    /// Worker → edge (or client): [`FromWorker`].
    FromWorker = 0x02,
}

impl FrameKind {
    /// The header byte.
    pub fn byte(self) -> u8 {
        self as u8
    }
}
