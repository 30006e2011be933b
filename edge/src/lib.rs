//! `paddock-edge` library: the transport (config, TLS, routing, HTTP serving, MCP) and the
//! control plane behind the [`app::App`] seam.

pub mod app;
pub mod bridge;
pub mod config;
pub mod identity;
pub mod loadgen;
pub mod mcp;
pub mod metrics;
pub mod quota;
pub mod remote;
pub mod rest;
pub mod route;
pub mod run;
pub mod secrets;
pub mod server;
pub mod store;
pub mod tls;
pub mod tools;
pub mod workers;
