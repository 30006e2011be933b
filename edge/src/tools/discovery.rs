//! list_packages, list_templates, describe_template and the admin set_account_tier.

use paddock_shared::ErrorCode;
use paddock_shared::model::Tier;
use serde_json::{Map, Value, json};

use super::Ctx;
use super::args::Args;
use super::catalogue::Catalogue;
use super::templates::{self, TEMPLATES};
use crate::app::ApiError;

/// list_packages(language?).
///
/// # Errors
/// `UNSUPPORTED_LANGUAGE`.
pub fn list_packages(_ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new("list_packages", args, &["language"])?;
    let lang = match a.opt_str("language")? {
        Some(l) => Some(paddock_shared::model::Language::parse(&l).ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnsupportedLanguage,
                format!("Unsupported language '{l}' — use \"python\" or \"typescript\""),
            )
        })?),
        None => None,
    };
    let mut v = Catalogue::get().listing(lang);
    if let Value::Object(m) = &mut v {
        m.insert("note".into(), json!("Declare packages in make_function(requirements=[…]); nothing is installed at run time."));
    }
    Ok(v)
}

/// list_templates().
///
/// # Errors
/// `INVALID_ARGUMENT` for unknown arguments.
pub fn list_templates(_ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    Args::new("list_templates", args, &[])?;
    let list: Vec<Value> = TEMPLATES.iter().map(|t| t.summary()).collect();
    Ok(json!({ "templates": list, "count": list.len() }))
}

/// describe_template(name).
///
/// # Errors
/// `UNKNOWN_TEMPLATE`.
pub fn describe_template(_ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new("describe_template", args, &["name"])?;
    let name = a.req_str("name")?;
    templates::find(&name).map(|t| t.details()).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownTemplate,
            format!("Unknown template: {name} — use list_templates to see valid names"),
        )
    })
}

/// set_account_tier(email, tier) — admin keys only.
///
/// # Errors
/// `INVALID_ARGUMENT` (tier, unknown account).
pub fn set_account_tier(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new("set_account_tier", args, &["email", "tier"])?;
    let email = a.req_str("email")?.trim().to_ascii_lowercase();
    let tier_s = a.req_str("tier")?;
    let tier = Tier::parse(&tier_s).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidArgument,
            format!("Unknown tier '{tier_s}' — use free, builder, pro or enterprise"),
        )
    })?;
    let acc = ctx.app.set_tier(&email, tier)?;
    Ok(json!({ "email": acc.email, "account_id": acc.id, "tier": acc.tier.as_str() }))
}
