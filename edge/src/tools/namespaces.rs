//! make_namespace and list_namespaces.

use paddock_shared::ErrorCode;
use paddock_shared::model::NamespaceRecord;
use paddock_shared::names;
use serde_json::{Map, Value, json};

use super::args::Args;
use super::checks::{self, MAX_DESCRIPTION_BYTES};
use super::{Ctx, store_error};
use crate::app::ApiError;
use crate::store::now;

/// make_namespace(name, description?).
///
/// # Errors
/// `INVALID_NAME`, `INPUT_TOO_LARGE`, `NAMESPACE_DENIED` (bound key), `ALREADY_EXISTS`.
pub fn make(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new("make_namespace", args, &["name", "description"])?;
    let name = a.req_str("name")?;
    names::validate_namespace(&name).map_err(checks::name_error)?;
    let description = a.opt_str("description")?.unwrap_or_default();
    checks::size("description", description.len(), MAX_DESCRIPTION_BYTES)?;
    if let Some(bound) = &ctx.p.namespace
        && *bound != name
    {
        return Err(ApiError::new(
            ErrorCode::NamespaceDenied,
            format!(
                "This API key is bound to namespace '{bound}' and cannot create namespace '{name}'"
            ),
        ));
    }
    let rec = NamespaceRecord {
        name: name.clone(),
        description,
        owner: ctx.p.account_id.clone(),
        created_at: now(),
    };
    ctx.app.store().create_namespace(&rec).map_err(|e| match store_error(e) {
        e if e.code == ErrorCode::AlreadyExists => ApiError::new(
            ErrorCode::AlreadyExists,
            format!("Namespace '{name}' already exists — choose another name (see list_namespaces for yours)"),
        ),
        e => e,
    })?;
    Ok(json!({
        "name": rec.name,
        "description": rec.description,
        "created_at": rec.created_at,
        "message": format!("Created namespace '{name}'. Connect to its create endpoint to add services and functions, and to its run endpoint to execute code."),
    }))
}

/// list_namespaces().
///
/// # Errors
/// `INVALID_ARGUMENT` for unknown arguments; store failures.
pub fn list(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    Args::new("list_namespaces", args, &[])?;
    let store = ctx.app.store();
    let mut out = Vec::new();
    for n in store
        .namespaces_of(&ctx.p.account_id)
        .map_err(store_error)?
    {
        if ctx.p.namespace.as_ref().is_some_and(|b| *b != n.name) {
            continue;
        }
        let services = store.services(&n.name).map_err(store_error)?.len();
        out.push(json!({
            "name": n.name,
            "description": n.description,
            "service_count": services,
            "created_at": n.created_at,
        }));
    }
    Ok(json!({ "namespaces": out, "count": out.len() }))
}
