//! make_service, list_services and the two-step delete_service.

use paddock_shared::ErrorCode;
use paddock_shared::model::ServiceRecord;
use paddock_shared::names;
use rand::RngCore;
use serde_json::{Map, Value, json};

use super::args::Args;
use super::checks::{self, MAX_DESCRIPTION_BYTES};
use super::{Ctx, store_error};
use crate::app::ApiError;
use crate::store::now;
use crate::store::records::Confirmation;

/// Lifetime of a delete confirmation token, seconds.
pub const CONFIRMATION_TTL_SECS: u64 = 60;

/// make_service(name, description?).
///
/// # Errors
/// `INVALID_NAME`, `INPUT_TOO_LARGE`, `NAMESPACE_NOT_FOUND`, `ALREADY_EXISTS`.
pub fn make(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new("make_service", args, &["name", "description"])?;
    let name = a.req_str("name")?;
    names::validate_service(&name).map_err(checks::name_error)?;
    let description = a.opt_str("description")?.unwrap_or_default();
    checks::size("description", description.len(), MAX_DESCRIPTION_BYTES)?;
    let ns = ctx.current_namespace()?;
    let rec = ServiceRecord {
        namespace: ns.name.clone(),
        name: name.clone(),
        description,
        created_at: now(),
    };
    ctx.app.store().create_service(&rec).map_err(store_error)?;
    Ok(json!({
        "namespace": ns.name,
        "name": name,
        "description": rec.description,
        "created_at": rec.created_at,
        "message": format!("Created service '{name}'. Add functions with make_function(service=\"{name}\", …)."),
    }))
}

/// list_services().
///
/// # Errors
/// `NAMESPACE_NOT_FOUND`; store failures.
pub fn list(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    Args::new("list_services", args, &[])?;
    let ns = ctx.current_namespace()?;
    let store = ctx.app.store();
    let mut out = Vec::new();
    for s in store.services(&ns.name).map_err(store_error)? {
        let fns = store.functions(&ns.name, &s.name).map_err(store_error)?;
        let mut calls = 0u64;
        for f in &fns {
            calls += store
                .call_count(&ns.name, &s.name, &f.name)
                .map_err(store_error)?;
        }
        out.push(json!({
            "name": s.name,
            "description": s.description,
            "function_count": fns.len(),
            "call_count": calls,
        }));
    }
    Ok(json!({ "namespace": ns.name, "services": out, "count": out.len() }))
}

fn token() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    format!("del_{}", hex::encode(b))
}

/// delete_service(name, confirmation_token?).
///
/// # Errors
/// `SERVICE_NOT_FOUND`, `CONFIRMATION_INVALID`.
pub fn delete(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new("delete_service", args, &["name", "confirmation_token"])?;
    let name = a.req_str("name")?;
    let ns = ctx.current_namespace()?;
    let store = ctx.app.store();
    let target = format!("service:{name}");
    match a.opt_str("confirmation_token")? {
        None => {
            if store
                .service(&ns.name, &name)
                .map_err(store_error)?
                .is_none()
            {
                return Err(store_error(crate::store::StoreError::Missing {
                    kind: "service",
                    name,
                }));
            }
            let count = store.functions(&ns.name, &name).map_err(store_error)?.len();
            let t = token();
            let c = Confirmation {
                account_id: ctx.p.account_id.clone(),
                namespace: ns.name.clone(),
                target,
                expires_at: now() + CONFIRMATION_TTL_SECS,
            };
            store.put_confirmation(&t, &c).map_err(store_error)?;
            Ok(json!({
                "confirmation_required": true,
                "confirmation_token": t,
                "expires_in": CONFIRMATION_TTL_SECS,
                "function_count": count,
                "message": format!(
                    "Deleting service '{name}' also deletes its {count} function(s). To confirm, call delete_service(name=\"{name}\", confirmation_token=\"{t}\") within {CONFIRMATION_TTL_SECS} seconds."
                ),
            }))
        }
        Some(t) => {
            let invalid = || {
                ApiError::new(
                    ErrorCode::ConfirmationInvalid,
                    format!(
                        "The confirmation token is wrong or expired — call delete_service(name=\"{name}\") without a token to get a new one"
                    ),
                )
            };
            let c = store
                .take_confirmation(&t)
                .map_err(store_error)?
                .ok_or_else(invalid)?;
            if c.account_id != ctx.p.account_id
                || c.namespace != ns.name
                || c.target != target
                || now() > c.expires_at
            {
                return Err(invalid());
            }
            let deleted = store.delete_service(&ns.name, &name).map_err(store_error)?;
            Ok(json!({
                "deleted": true,
                "name": name,
                "functions_deleted": deleted,
                "message": format!("Deleted service '{name}' and {deleted} function(s)."),
            }))
        }
    }
}
