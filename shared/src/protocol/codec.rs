//! `tokio_util::codec` adapter over the pure frame functions, for `FramedRead` /
//! `FramedWrite`. tokio-util's `codec` feature pulls in no tokio runtime.

use std::marker::PhantomData;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::frame::{FrameError, decode_frame, decode_frame_eof, encode_frame};
use super::{DEFAULT_MAX_FRAME_LEN, MAX_FRAME_LIMIT, Message};

/// Decodes frames of `In` and encodes frames of `Out`, refusing bodies over a cap.
///
/// A worker uses `FrameCodec<ToWorker, FromWorker>`, the edge or a client the reverse.
#[derive(Debug)]
pub struct FrameCodec<In, Out> {
    max_frame_len: usize,
    _types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> FrameCodec<In, Out> {
    /// A codec with the given frame cap.
    ///
    /// # Errors
    /// [`FrameError::BadCap`] unless `1 <= max_frame_len <= MAX_FRAME_LIMIT`.
    pub fn new(max_frame_len: usize) -> Result<Self, FrameError> {
        if max_frame_len == 0 || max_frame_len > MAX_FRAME_LIMIT {
            return Err(FrameError::BadCap {
                max: max_frame_len,
                limit: MAX_FRAME_LIMIT,
            });
        }
        Ok(FrameCodec {
            max_frame_len,
            _types: PhantomData,
        })
    }

    /// The frame cap in bytes.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }
}

impl<In, Out> Default for FrameCodec<In, Out> {
    fn default() -> Self {
        FrameCodec {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            _types: PhantomData,
        }
    }
}

impl<In, Out> Clone for FrameCodec<In, Out> {
    fn clone(&self) -> Self {
        FrameCodec {
            max_frame_len: self.max_frame_len,
            _types: PhantomData,
        }
    }
}

impl<In: Message, Out> Decoder for FrameCodec<In, Out> {
    type Item = In;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, FrameError> {
        decode_frame(src, self.max_frame_len)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<In>, FrameError> {
        decode_frame_eof(src, self.max_frame_len)
    }
}

impl<In, Out: Message> Encoder<Out> for FrameCodec<In, Out> {
    type Error = FrameError;

    fn encode(&mut self, item: Out, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame(&item, dst, self.max_frame_len)
    }
}
