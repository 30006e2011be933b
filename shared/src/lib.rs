//! Paddock's shared vocabulary: the wire protocol, the domain model, name rules, the
//! public error codes and envelope crypto. This crate does no I/O (no tokio, sled or
//! sockets) so that both daemons, the tests and the fuzzers can use it freely.
#![forbid(unsafe_code)]

pub mod error;
pub mod exec;
pub mod model;
pub mod names;
pub mod protocol;
pub mod replication;
pub mod snippet;

pub use error::ErrorCode;
