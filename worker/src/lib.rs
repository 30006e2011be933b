//! Paddock worker library: slot pools, nsjail launch, runners, protocol servers.

pub mod executor;
pub mod runners;
pub mod typescript;
pub mod client;
pub mod server;
pub mod cgroup;
pub mod config;
pub mod jail;
pub mod profile;
pub mod slots;
pub mod sys;
pub mod package;
pub mod replica;
pub mod link;
