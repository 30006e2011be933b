//! Paddock worker library: slot pools, nsjail launch, runners, protocol servers.

pub mod cgroup;
pub mod client;
pub mod config;
pub mod executor;
pub mod jail;
pub mod link;
pub mod package;
pub mod profile;
pub mod replica;
pub mod runners;
pub mod server;
pub mod slots;
pub mod sys;
pub mod typescript;
