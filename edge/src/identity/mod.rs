//! Identity: API keys (keyed digests), passwords (Argon2id), JWTs, login throttling and
//! the server secrets they rely on.

pub mod jwt;
pub mod keys;
pub mod password;
pub mod secrets;
pub mod throttle;
