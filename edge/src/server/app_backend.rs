//! Connects the transport to the control plane: [`Backend`] for [`App`], and opening
//! `App` from the edge configuration.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::app::{
    ApiError, App, AppConfig, Endpoint, Principal, RestRequest, RestResponse, ToolDef,
};
use crate::config::EdgeConfig;
use crate::server::backend::Backend;

#[async_trait]
impl Backend for App {
    fn authenticate(&self, raw_key: &str) -> Result<Principal, ApiError> {
        App::authenticate(self, raw_key)
    }
    fn authorize(&self, p: &Principal, endpoint: Endpoint, ns: &str) -> Result<(), ApiError> {
        App::authorize(self, p, endpoint, ns)
    }
    fn create_tools(&self, p: &Principal, ns: &str) -> Vec<ToolDef> {
        App::create_tools(self, p, ns)
    }
    async fn call_create_tool(
        &self,
        p: &Principal,
        ns: &str,
        tool: &str,
        args: Map<String, Value>,
    ) -> Result<Value, ApiError> {
        App::call_create_tool(self, p, ns, tool, args).await
    }
    async fn rest(&self, req: RestRequest) -> RestResponse {
        App::rest(self, req).await
    }
    fn committed_seq(&self) -> u64 {
        App::committed_seq(self)
    }
    fn limiter(&self) -> Option<&crate::quota::Limiter> {
        Some(App::limiter(self).as_ref())
    }
}

/// Opens the control plane; returns the new admin key on first start.
///
/// # Errors
/// The control plane's start-up error (data dir, database, admin account).
pub fn open(
    cfg: &EdgeConfig,
) -> Result<(App, Option<String>), Box<dyn std::error::Error + Send + Sync>> {
    let app_cfg = AppConfig {
        data_dir: cfg.data_dir.clone(),
        registration_enabled: cfg.registration_enabled,
        jwt_secret: cfg.jwt_secret.clone(),
        key_pepper: cfg.key_pepper.clone(),
        admin_email: cfg.admin_email.clone(),
        kek: cfg.kek()?,
        allow_private_mcp_hosts: cfg.mcp_allow_list()?,
        remote_idle: crate::remote::pool::DEFAULT_IDLE,
        limits: cfg.limits.clone(),
    };
    Ok(App::open(app_cfg)?)
}

/// Flushes and closes the control plane after the listeners stopped.
pub fn close(app: &App) {
    app.shutdown();
}
