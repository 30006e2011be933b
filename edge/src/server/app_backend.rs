//! Connects the transport to the control plane. The control plane (`App`) has not landed
//! yet: until it does, `open` refuses to start with a clear message.

use crate::config::EdgeConfig;
use crate::server::backend::Backend;

/// Placeholder for the control plane handle.
#[derive(Clone)]
pub struct App;

/// Opens the control plane.
///
/// # Errors
/// Always, until the control plane lands.
pub fn open(_cfg: &EdgeConfig) -> Result<(NoApp, Option<String>), Box<dyn std::error::Error + Send + Sync>> {
    Err("the control plane (App) is not built yet".into())
}

/// Never constructed.
#[derive(Clone)]
pub enum NoApp {}

#[async_trait::async_trait]
impl Backend for NoApp {
    fn authenticate(&self, _: &str) -> Result<crate::app::Principal, crate::app::ApiError> {
        match *self {}
    }
    fn authorize(&self, _: &crate::app::Principal, _: crate::app::Endpoint, _: &str) -> Result<(), crate::app::ApiError> {
        match *self {}
    }
    fn create_tools(&self, _: &crate::app::Principal, _: &str) -> Vec<crate::app::ToolDef> {
        match *self {}
    }
    async fn call_create_tool(
        &self,
        _: &crate::app::Principal,
        _: &str,
        _: &str,
        _: serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Value, crate::app::ApiError> {
        match *self {}
    }
    async fn rest(&self, _: crate::app::RestRequest) -> crate::app::RestResponse {
        match *self {}
    }
    fn committed_seq(&self) -> u64 {
        match *self {}
    }
}

/// Closes the control plane.
pub fn close(_: &NoApp) {}
