//! `paddock-edge` library: the transport (config, TLS, routing, HTTP serving, MCP) and the
//! control plane behind the [`app::App`] seam.

pub mod app;
pub mod config;
pub mod mcp;
pub mod route;
pub mod server;
pub mod tls;
pub mod identity;
pub mod rest;
pub mod store;
pub mod tools;
pub mod quota;
pub mod loadgen;
pub mod run;
pub mod workers;
