//! Warm slots: framing of the slot protocol, one slot's life, outcome mapping, the pools.

pub mod calls;
pub mod frame;
pub mod namespace;
pub mod outcome;
pub mod pool;
pub mod slot;

pub use namespace::{NamespaceSource, SourceError};
pub use pool::{PoolSet, PoolSettings};
pub mod setup;
