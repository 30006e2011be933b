//! An HTTP reply as the edge produces it: status, headers and a full or streamed body.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;

/// A reply body: complete bytes, or a stream (SSE from rmcp sessions).
pub enum Body {
    Full(Bytes),
    Stream(BoxBody<Bytes, Infallible>),
}

/// One HTTP reply.
pub struct Reply {
    pub status: u16,
    /// Lower-case header names.
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// Close the connection after this reply (e.g. the request body was not read).
    pub close: bool,
}

impl Reply {
    /// A JSON reply.
    pub fn json(status: u16, v: &serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Body::Full(crate::server::error::json_bytes(v)),
            close: false,
        }
    }
}
