//! The one rendering of [`ApiError`] at the HTTP boundary: JSON body from
//! [`ApiError::body`], status from `ErrorCode::http_status`, `Retry-After` when set.

use bytes::Bytes;

use crate::app::ApiError;
use crate::server::reply::Reply;

/// Renders `err` as an HTTP reply.
pub fn error_reply(err: &ApiError) -> Reply {
    let mut reply = Reply::json(err.code.http_status(), &err.body());
    if let Some(secs) = err.retry_after {
        reply.headers.push(("retry-after".into(), secs.to_string()));
    }
    reply
}

/// A plain JSON reply body from bytes (used by the MCP and REST paths).
pub fn json_bytes(v: &serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_shared::ErrorCode;

    #[test]
    fn status_body_and_retry_after() {
        let err = ApiError {
            retry_after: Some(7),
            details: Some(serde_json::json!({"usage": 5, "limit": 5})),
            ..ApiError::new(ErrorCode::QuotaExceeded, "monthly quota used up")
        };
        let r = error_reply(&err);
        assert_eq!(r.status, 429);
        assert!(
            r.headers
                .contains(&("retry-after".to_owned(), "7".to_owned()))
        );
        let crate::server::reply::Body::Full(b) = &r.body else {
            panic!("full body")
        };
        let v: serde_json::Value = serde_json::from_slice(b).expect("json");
        assert_eq!(v["code"], "QUOTA_EXCEEDED");
        assert_eq!(v["usage"], 5);
        assert_eq!(
            error_reply(&ApiError::new(ErrorCode::InvalidHost, "x")).status,
            404
        );
    }
}
