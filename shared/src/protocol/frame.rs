//! Frame encoding and the two-step decoder (is a whole frame here? then parse), with the
//! header checked before anything is allocated. The only place that touches bincode.

use bytes::{Buf, BufMut, BytesMut};

use super::{FrameKind, HEADER_LEN, MAGIC, MAX_FRAME_LIMIT, MIN_VERSION, Message, VERSION};
use crate::error::ErrorCode;

/// bincode configuration of frame bodies. The limit bounds every length prefix the
/// decoder trusts (strings, vectors), so a lying body cannot make it allocate more.
fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_LIMIT>()
}

/// Why bytes could not be turned into a message (or a message into bytes).
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The first bytes are not `PDK`: the peer speaks another protocol.
    #[error("bad magic {found:02x?}, expected \"PDK\"")]
    BadMagic { found: Vec<u8> },
    /// The frame's version is outside what this build accepts.
    #[error("unsupported protocol version {got} (this side speaks {min}..={max})")]
    UnsupportedVersion { got: u8, min: u8, max: u8 },
    /// The frame travels in the other direction (e.g. a `FromWorker` sent to a worker).
    #[error("frame kind {got:#04x} where {expected:#04x} was expected")]
    WrongKind { expected: u8, got: u8 },
    /// Reserved flag bits are set.
    #[error("unknown frame flags {flags:#04x}")]
    BadFlags { flags: u8 },
    /// The header announces a body over the cap; refused before allocating.
    #[error("frame body of {len} bytes is over the {max}-byte cap")]
    TooLarge { len: usize, max: usize },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({have} of {need} bytes)")]
    Truncated { have: usize, need: usize },
    /// The body is not a valid message.
    #[error("malformed frame body: {reason}")]
    Malformed { reason: String },
    /// The body decoded but bytes were left over.
    #[error("frame body has {extra} trailing bytes")]
    TrailingBytes { extra: usize },
    /// The message could not be encoded.
    #[error("cannot encode frame: {reason}")]
    Encode { reason: String },
    /// The requested frame cap is not in `1..=MAX_FRAME_LIMIT`.
    #[error("frame cap {max} is outside 1..={limit}")]
    BadCap { max: usize, limit: usize },
    /// Reading or writing the stream failed (only from the tokio-util codec).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// The public code for this failure.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::ProtocolError
    }

    /// True when the peer speaks a protocol version this side does not.
    pub fn is_version_mismatch(&self) -> bool {
        matches!(self, FrameError::UnsupportedVersion { .. })
    }
}

/// A parsed, validated frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub version: u8,
    pub kind: u8,
    pub flags: u8,
    /// Body length in bytes.
    pub len: usize,
}

/// Checks the header at the start of `buf` for a message of kind `kind`.
///
/// Returns `Ok(None)` while fewer than [`HEADER_LEN`] bytes are there (after checking
/// the magic bytes that are). Checks happen in wire order: magic, version, kind, flags,
/// length against `max_frame_len`.
///
/// # Errors
/// Every header violation of [`FrameError`].
pub fn parse_header(
    buf: &[u8],
    kind: FrameKind,
    max_frame_len: usize,
) -> Result<Option<FrameHeader>, FrameError> {
    let magic_have = buf.len().min(MAGIC.len());
    if buf[..magic_have] != MAGIC[..magic_have] {
        return Err(FrameError::BadMagic {
            found: buf[..magic_have].to_vec(),
        });
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let version = buf[3];
    if !(MIN_VERSION..=VERSION).contains(&version) {
        return Err(FrameError::UnsupportedVersion {
            got: version,
            min: MIN_VERSION,
            max: VERSION,
        });
    }
    if buf[4] != kind.byte() {
        return Err(FrameError::WrongKind {
            expected: kind.byte(),
            got: buf[4],
        });
    }
    if buf[5] != 0 {
        return Err(FrameError::BadFlags { flags: buf[5] });
    }
    let len = u32::from_be_bytes([buf[6], buf[7], buf[8], buf[9]]) as usize;
    if len > max_frame_len.min(MAX_FRAME_LIMIT) {
        return Err(FrameError::TooLarge {
            len,
            max: max_frame_len.min(MAX_FRAME_LIMIT),
        });
    }
    Ok(Some(FrameHeader {
        version,
        kind: buf[4],
        flags: buf[5],
        len,
    }))
}

/// Appends `msg` as one frame of the current [`VERSION`] to `buf`.
///
/// # Errors
/// [`FrameError::TooLarge`] when the body would be over `max_frame_len` (the peer would
/// refuse it), [`FrameError::Encode`] when bincode fails. `buf` is left as it was.
pub fn encode_frame<T: Message>(
    msg: &T,
    buf: &mut BytesMut,
    max_frame_len: usize,
) -> Result<(), FrameError> {
    encode_frame_as(VERSION, msg, buf, max_frame_len)
}

/// Like [`encode_frame`] with an explicit header version (a negotiated lower version,
/// or tests of version handling).
///
/// # Errors
/// As [`encode_frame`].
pub fn encode_frame_as<T: Message>(
    version: u8,
    msg: &T,
    buf: &mut BytesMut,
    max_frame_len: usize,
) -> Result<(), FrameError> {
    let start = buf.len();
    buf.reserve(HEADER_LEN + 64);
    buf.put_slice(&MAGIC);
    buf.put_u8(version);
    buf.put_u8(T::KIND.byte());
    buf.put_u8(0);
    buf.put_u32(0); // patched below
    let mut writer = buf.writer();
    let written = bincode::serde::encode_into_std_write(msg, &mut writer, bincode_config());
    let buf = writer.into_inner();
    let body_len = match written {
        Ok(n) => n,
        Err(e) => {
            buf.truncate(start);
            return Err(FrameError::Encode {
                reason: e.to_string(),
            });
        }
    };
    let max = max_frame_len.min(MAX_FRAME_LIMIT);
    if body_len > max {
        buf.truncate(start);
        return Err(FrameError::TooLarge { len: body_len, max });
    }
    // body_len ≤ MAX_FRAME_LIMIT < u32::MAX, so the cast is exact.
    buf[start + 6..start + HEADER_LEN].copy_from_slice(&(body_len as u32).to_be_bytes());
    Ok(())
}

/// Takes one whole frame off the front of `buf` and decodes it.
///
/// Returns `Ok(None)` when `buf` does not yet hold a whole frame (more bytes are
/// needed); the bytes stay in `buf`. Header problems are reported as soon as the header
/// is there, before the body is buffered.
///
/// # Errors
/// Any [`FrameError`] except `Truncated`, `Encode` and `Io`. After an error the stream
/// is out of sync and the connection should be closed.
pub fn decode_frame<T: Message>(
    buf: &mut BytesMut,
    max_frame_len: usize,
) -> Result<Option<T>, FrameError> {
    let Some(header) = parse_header(buf, T::KIND, max_frame_len)? else {
        return Ok(None);
    };
    let need = HEADER_LEN + header.len;
    if buf.len() < need {
        buf.reserve(need - buf.len());
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    let body = buf.split_to(header.len);
    let (msg, used) =
        bincode::serde::decode_from_slice::<T, _>(&body, bincode_config()).map_err(|e| {
            FrameError::Malformed {
                reason: e.to_string(),
            }
        })?;
    if used != body.len() {
        return Err(FrameError::TrailingBytes {
            extra: body.len() - used,
        });
    }
    Ok(Some(msg))
}

/// [`decode_frame`] at the end of the stream: a clean EOF (empty `buf`) is `Ok(None)`,
/// leftover bytes that do not form a whole frame are [`FrameError::Truncated`].
///
/// # Errors
/// As [`decode_frame`], plus `Truncated`.
pub fn decode_frame_eof<T: Message>(
    buf: &mut BytesMut,
    max_frame_len: usize,
) -> Result<Option<T>, FrameError> {
    match decode_frame(buf, max_frame_len)? {
        Some(msg) => Ok(Some(msg)),
        None if buf.is_empty() => Ok(None),
        None => {
            let need = if buf.len() >= HEADER_LEN {
                HEADER_LEN + u32::from_be_bytes([buf[6], buf[7], buf[8], buf[9]]) as usize
            } else {
                HEADER_LEN
            };
            Err(FrameError::Truncated {
                have: buf.len(),
                need,
            })
        }
    }
}
