//! Slot-protocol framing (docs/slot-protocol.md): a 4-byte big-endian length, then that
//! many bytes of UTF-8 JSON; frames over 16 MiB are a protocol violation.

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame a runner may send.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// A broken frame stream.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("slot pipe: {0}")]
    Io(#[from] std::io::Error),
    #[error("runner frame of {0} bytes is over the 16 MiB cap")]
    TooLarge(usize),
    #[error("runner frame is not a JSON object with a `type`: {0}")]
    Malformed(String),
    #[error("runner closed its pipe in the middle of a frame")]
    Truncated,
}

/// Reads one frame; `Ok(None)` on a clean end of stream before a frame.
///
/// # Errors
/// I/O errors, an oversized length, EOF inside a frame, or a body that is not a JSON object
/// with a string `type`.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Value>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut len[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Truncated
        } else {
            FrameError::Io(e)
        }
    })?;
    let v: Value =
        serde_json::from_slice(&body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if !v.get("type").is_some_and(Value::is_string) {
        return Err(FrameError::Malformed("missing `type`".into()));
    }
    Ok(Some(v))
}

/// Writes one frame and flushes.
///
/// # Errors
/// I/O errors (a dead slot gives `BrokenPipe`).
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, v: &Value) -> Result<(), FrameError> {
    let body = serde_json::to_vec(v).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let mut buf = Vec::with_capacity(body.len() + 4);
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(&body);
    w.write_all(&buf).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn round_trip_eof_and_bad_frames() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &json!({"type": "ready", "pid": 1}))
            .await
            .expect("write");
        let mut r = &buf[..];
        assert_eq!(
            read_frame(&mut r).await.expect("read"),
            Some(json!({"type": "ready", "pid": 1}))
        );
        assert!(read_frame(&mut r).await.expect("eof").is_none());
        let mut r = &buf[..6];
        assert!(matches!(
            read_frame(&mut r).await,
            Err(FrameError::Truncated)
        ));
        let big = ((MAX_FRAME_BYTES + 1) as u32).to_be_bytes();
        assert!(matches!(
            read_frame(&mut &big[..]).await,
            Err(FrameError::TooLarge(_))
        ));
        let mut nt = 2u32.to_be_bytes().to_vec();
        nt.extend_from_slice(b"[]");
        assert!(matches!(
            read_frame(&mut &nt[..]).await,
            Err(FrameError::Malformed(_))
        ));
    }
}
