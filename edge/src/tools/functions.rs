//! make_function, update_function (immutable versions), delete_function, list_functions
//! and describe_function.
//!
//! Versioning: make → v1; a change of backend, language, code, config, schemas or
//! requirements → a new version (current = newest); description/tags only → no new
//! version; `restore_version=N` copies vN into a new version.

use paddock_shared::ErrorCode;
use paddock_shared::model::{FunctionRecord, Language, VersionRecord};
use paddock_shared::names;
use serde_json::{Map, Value, json};

use super::args::Args;
use super::checks::{self, MAX_CODE_BYTES, MAX_DESCRIPTION_BYTES, MAX_SCHEMA_BYTES};
use super::scanner::{self, Warning};
use super::templates;
use super::{Ctx, store_error};
use crate::app::ApiError;
use crate::store::{StoreError, now};

/// The only backend.
pub const BACKEND: &str = "code_sandbox";

const CONTENT_FIELDS: &[&str] = &[
    "backend",
    "language",
    "code",
    "config",
    "input_schema",
    "output_schema",
    "requirements",
];

fn backend(b: &str) -> Result<String, ApiError> {
    if b == BACKEND {
        Ok(b.to_owned())
    } else {
        Err(ApiError::new(
            ErrorCode::UnknownBackend,
            format!("Unknown backend '{b}' — use backend=\"{BACKEND}\""),
        ))
    }
}

fn language(s: &str) -> Result<Language, ApiError> {
    Language::parse(s).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnsupportedLanguage,
            format!("Unsupported language '{s}' — use \"python\" or \"typescript\""),
        )
    })
}

fn no_code() -> ApiError {
    ApiError::new(
        ErrorCode::NoCodeProvided,
        "No code provided — pass code, or a template from list_templates (e.g. template=\"hello-world\")",
    )
}

fn parse_json_text(t: Option<&str>) -> Value {
    t.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

fn config_text(v: Option<Value>) -> Result<Option<String>, ApiError> {
    match v {
        None => Ok(None),
        Some(v) => {
            let t = v.to_string();
            checks::size("config", t.len(), MAX_SCHEMA_BYTES)?;
            Ok(Some(t))
        }
    }
}

fn names_of(a: &Args<'_>) -> Result<(String, String), ApiError> {
    let service = a.req_str("service")?;
    names::validate_service(&service).map_err(checks::name_error)?;
    let name = a.req_str("name")?;
    names::validate_function(&name).map_err(checks::name_error)?;
    Ok((service, name))
}

fn not_found(service: &str, name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::FunctionNotFound,
        format!(
            "Function '{service}.{name}' does not exist — see list_functions(service=\"{service}\")"
        ),
    )
}

/// make_function(service, name, backend, …).
///
/// # Errors
/// Every validation error of the create endpoint; `SERVICE_NOT_FOUND`, `ALREADY_EXISTS`.
pub fn make(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new(
        "make_function",
        args,
        &[
            "service",
            "name",
            "backend",
            "language",
            "code",
            "config",
            "input_schema",
            "output_schema",
            "description",
            "tags",
            "requirements",
            "template",
        ],
    )?;
    let (service, name) = names_of(&a)?;
    let backend = match a.opt_str("backend")? {
        Some(b) => backend(&b)?,
        None => {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "make_function: missing required argument 'backend' — use backend=\"{BACKEND}\""
                ),
            ));
        }
    };
    let lang_arg = a.opt_str("language")?.map(|l| language(&l)).transpose()?;
    let template = match a.opt_str("template")? {
        Some(t) => Some(templates::find(&t).ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownTemplate,
                format!("Unknown template: {t} — use list_templates to see valid names"),
            )
        })?),
        None => None,
    };
    let lang = match (lang_arg, template) {
        (Some(l), Some(t)) if l != t.language => {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "Template '{}' is {}, but language={l} was given — omit language or pick a {l} template",
                    t.name, t.language
                ),
            ));
        }
        (Some(l), _) => l,
        (None, Some(t)) => t.language,
        (None, None) => Language::Python,
    };
    let code = match a.opt_str("code")?.filter(|c| !c.trim().is_empty()) {
        Some(c) => c,
        None => template.map(|t| t.code.to_owned()).ok_or_else(no_code)?,
    };
    checks::size("code", code.len(), MAX_CODE_BYTES)?;
    let description = a
        .opt_str("description")?
        .or_else(|| template.map(|t| t.description.to_owned()))
        .unwrap_or_default();
    checks::size("description", description.len(), MAX_DESCRIPTION_BYTES)?;
    let input_schema = match a
        .opt_object("input_schema")?
        .or_else(|| template.map(|t| t.input_schema()))
    {
        Some(v) => Some(checks::schema("input_schema", &v)?),
        None => None,
    };
    let output_schema = match a
        .opt_object("output_schema")?
        .or_else(|| template.map(|t| t.output_schema()))
    {
        Some(v) => Some(checks::schema("output_schema", &v)?),
        None => None,
    };
    let config = config_text(a.opt_object("config")?)?.unwrap_or_else(|| "{}".to_owned());
    let reqs = a.opt_str_list("requirements")?.unwrap_or_else(|| {
        template
            .map(|t| t.requirements.iter().map(|s| (*s).to_owned()).collect())
            .unwrap_or_default()
    });
    let requirements = checks::requirements(lang, reqs)?;
    let tags = checks::tags(a.opt_str_list("tags")?.unwrap_or_default())?;
    let ns = ctx.current_namespace()?;
    let warnings = scanner::scan(&code);
    let t = now();
    let f = FunctionRecord {
        namespace: ns.name.clone(),
        service: service.clone(),
        name: name.clone(),
        description,
        tags,
        current_version: 1,
        created_at: t,
        updated_at: t,
    };
    let v = VersionRecord {
        namespace: ns.name.clone(),
        service: service.clone(),
        function: name.clone(),
        version: 1,
        backend,
        language: lang,
        code,
        config_json: config,
        input_schema_json: input_schema,
        output_schema_json: output_schema,
        requirements,
        template: template.map(|t| t.name.to_owned()),
        restored_from: None,
        created_at: t,
    };
    ctx.app.store().create_function(&f, &v).map_err(|e| match e {
        StoreError::Exists { .. } => ApiError::new(
            ErrorCode::AlreadyExists,
            format!("Function '{service}.{name}' already exists — change it with update_function or choose another name"),
        ),
        e => store_error(e),
    })?;
    Ok(json!({
        "qualified_name": format!("{service}.{name}"),
        "service": service,
        "name": name,
        "version": 1,
        "language": lang.as_str(),
        "backend": v.backend,
        "requirements": v.requirements,
        "template": v.template,
        "warnings": warnings,
        "message": format!("Created function {service}.{name} (v1). Call it from the run endpoint: `from functions import {}`.", names::to_identifier(&name)),
    }))
}

/// update_function(service, name, …, restore_version?).
///
/// # Errors
/// Every validation error of the create endpoint; `FUNCTION_NOT_FOUND`, `VERSION_NOT_FOUND`.
pub fn update(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new(
        "update_function",
        args,
        &[
            "service",
            "name",
            "backend",
            "language",
            "code",
            "config",
            "input_schema",
            "output_schema",
            "description",
            "tags",
            "requirements",
            "restore_version",
        ],
    )?;
    let (service, name) = names_of(&a)?;
    let ns = ctx.current_namespace()?;
    let store = ctx.app.store();
    let mut f = store
        .function(&ns.name, &service, &name)
        .map_err(store_error)?
        .ok_or_else(|| not_found(&service, &name))?;
    let cur = store
        .version(&ns.name, &service, &name, f.current_version)
        .map_err(store_error)?
        .ok_or_else(|| not_found(&service, &name))?;
    let restore = a.opt_u32("restore_version")?;
    let mut candidate = cur.clone();
    if let Some(n) = restore {
        if let Some(field) = CONTENT_FIELDS.iter().find(|f| a.has(f)) {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "update_function: restore_version cannot be combined with '{field}' — restore first, then update"
                ),
            ));
        }
        let old = store.version(&ns.name, &service, &name, n).map_err(store_error)?.ok_or_else(|| {
            ApiError::new(
                ErrorCode::VersionNotFound,
                format!(
                    "Version {n} of {service}.{name} does not exist (versions 1-{}) — see describe_function for the history",
                    f.current_version
                ),
            )
        })?;
        candidate = old;
        candidate.restored_from = Some(n);
    } else {
        if let Some(b) = a.opt_str("backend")? {
            candidate.backend = backend(&b)?;
        }
        if let Some(l) = a.opt_str("language")? {
            candidate.language = language(&l)?;
            if candidate.language != cur.language && !a.has("code") {
                return Err(ApiError::new(
                    ErrorCode::InvalidArgument,
                    format!(
                        "update_function: changing the language to {} needs new code — pass code written in {}",
                        candidate.language, candidate.language
                    ),
                ));
            }
        }
        if a.has("code") {
            let code = a
                .opt_str("code")?
                .filter(|c| !c.trim().is_empty())
                .ok_or_else(no_code)?;
            checks::size("code", code.len(), MAX_CODE_BYTES)?;
            candidate.code = code;
        }
        if let Some(c) = config_text(a.opt_object("config")?)? {
            candidate.config_json = c;
        }
        if let Some(v) = a.opt_object("input_schema")? {
            candidate.input_schema_json = Some(checks::schema("input_schema", &v)?);
        }
        if let Some(v) = a.opt_object("output_schema")? {
            candidate.output_schema_json = Some(checks::schema("output_schema", &v)?);
        }
        let reqs = a
            .opt_str_list("requirements")?
            .unwrap_or_else(|| candidate.requirements.clone());
        candidate.requirements = checks::requirements(candidate.language, reqs)?;
        candidate.restored_from = None;
    }
    let content_changed = restore.is_some()
        || candidate.backend != cur.backend
        || candidate.language != cur.language
        || candidate.code != cur.code
        || candidate.config_json != cur.config_json
        || candidate.input_schema_json != cur.input_schema_json
        || candidate.output_schema_json != cur.output_schema_json
        || candidate.requirements != cur.requirements;
    let mut meta_changed = false;
    if let Some(d) = a.opt_str("description")? {
        checks::size("description", d.len(), MAX_DESCRIPTION_BYTES)?;
        meta_changed |= d != f.description;
        f.description = d;
    }
    if let Some(t) = a.opt_str_list("tags")? {
        let t = checks::tags(t)?;
        meta_changed |= t != f.tags;
        f.tags = t;
    }
    let warnings: Vec<Warning> = if a.has("code") {
        scanner::scan(&candidate.code)
    } else {
        Vec::new()
    };
    let previous = f.current_version;
    if !content_changed && !meta_changed {
        return Ok(json!({
            "qualified_name": format!("{service}.{name}"),
            "version": previous,
            "new_version": false,
            "changed": false,
            "warnings": warnings,
            "message": format!("No changes: {service}.{name} stays at v{previous}."),
        }));
    }
    let t = now();
    f.updated_at = t;
    let new_version = if content_changed {
        candidate.version = previous + 1;
        candidate.created_at = t;
        candidate.template = if restore.is_some() {
            candidate.template
        } else {
            cur.template.clone()
        };
        f.current_version = candidate.version;
        Some(candidate)
    } else {
        None
    };
    store
        .update_function(&f, new_version.as_ref())
        .map_err(|e| match e {
            StoreError::Exists { .. } => ApiError::new(
                ErrorCode::AlreadyExists,
                format!(
                    "{service}.{name} was changed concurrently — call describe_function and retry"
                ),
            ),
            e => store_error(e),
        })?;
    let message = match (&new_version, restore) {
        (Some(v), Some(n)) => format!(
            "Restored {service}.{name} v{n} as new version v{}.",
            v.version
        ),
        (Some(v), None) => format!(
            "Updated {service}.{name}: new version v{} (was v{previous}).",
            v.version
        ),
        (None, _) => format!(
            "Updated the description/tags of {service}.{name}; still v{previous} (metadata changes make no new version)."
        ),
    };
    Ok(json!({
        "qualified_name": format!("{service}.{name}"),
        "version": f.current_version,
        "previous_version": previous,
        "new_version": new_version.is_some(),
        "changed": true,
        "warnings": warnings,
        "message": message,
    }))
}

/// delete_function(service, name).
///
/// # Errors
/// `FUNCTION_NOT_FOUND`.
pub fn delete(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new("delete_function", args, &["service", "name"])?;
    let (service, name) = names_of(&a)?;
    let ns = ctx.current_namespace()?;
    ctx.app
        .store()
        .delete_function(&ns.name, &service, &name)
        .map_err(|e| match e {
            StoreError::Missing { .. } => not_found(&service, &name),
            e => store_error(e),
        })?;
    Ok(json!({
        "deleted": true,
        "qualified_name": format!("{service}.{name}"),
        "message": format!("Deleted function {service}.{name} and all its versions."),
    }))
}

/// list_functions(service, tag?).
///
/// # Errors
/// `SERVICE_NOT_FOUND`.
pub fn list(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new("list_functions", args, &["service", "tag"])?;
    let service = a.req_str("service")?;
    let tag = a.opt_str("tag")?.map(|t| t.trim().to_ascii_lowercase());
    let ns = ctx.current_namespace()?;
    let store = ctx.app.store();
    if store
        .service(&ns.name, &service)
        .map_err(store_error)?
        .is_none()
    {
        return Err(store_error(StoreError::Missing {
            kind: "service",
            name: service,
        }));
    }
    let mut out = Vec::new();
    for f in store.functions(&ns.name, &service).map_err(store_error)? {
        if tag.as_ref().is_some_and(|t| !f.tags.contains(t)) {
            continue;
        }
        let lang = store
            .version(&ns.name, &service, &f.name, f.current_version)
            .map_err(store_error)?
            .map(|v| v.language.as_str());
        out.push(json!({
            "name": format!("{}.{}", f.service, f.name),
            "description": f.description,
            "tags": f.tags,
            "version": f.current_version,
            "language": lang,
        }));
    }
    Ok(json!({ "service": service, "tag": tag, "functions": out, "count": out.len() }))
}

/// describe_function(service, name).
///
/// # Errors
/// `FUNCTION_NOT_FOUND`.
pub fn describe(ctx: &Ctx<'_>, args: Map<String, Value>) -> Result<Value, ApiError> {
    let a = Args::new("describe_function", args, &["service", "name"])?;
    let (service, name) = names_of(&a)?;
    let ns = ctx.current_namespace()?;
    let store = ctx.app.store();
    let f = store
        .function(&ns.name, &service, &name)
        .map_err(store_error)?
        .ok_or_else(|| not_found(&service, &name))?;
    let versions = store
        .versions(&ns.name, &service, &name)
        .map_err(store_error)?;
    let cur = versions
        .iter()
        .find(|v| v.version == f.current_version)
        .ok_or_else(|| not_found(&service, &name))?;
    let history: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({
                "version": v.version,
                "created_at": v.created_at,
                "language": v.language.as_str(),
                "backend": v.backend,
                "requirements": v.requirements,
                "template": v.template,
                "restored_from": v.restored_from,
                "code": v.code,
                "config": parse_json_text(Some(&v.config_json)),
                "input_schema": parse_json_text(v.input_schema_json.as_deref()),
                "output_schema": parse_json_text(v.output_schema_json.as_deref()),
                "current": v.version == f.current_version,
            })
        })
        .collect();
    Ok(json!({
        "qualified_name": format!("{service}.{name}"),
        "namespace": ns.name,
        "service": service,
        "name": name,
        "identifier": names::to_identifier(&name),
        "description": f.description,
        "tags": f.tags,
        "backend": cur.backend,
        "language": cur.language.as_str(),
        "current_version": f.current_version,
        "code": cur.code,
        "config": parse_json_text(Some(&cur.config_json)),
        "input_schema": parse_json_text(cur.input_schema_json.as_deref()),
        "output_schema": parse_json_text(cur.output_schema_json.as_deref()),
        "requirements": cur.requirements,
        "call_count": store.call_count(&ns.name, &service, &name).map_err(store_error)?,
        "created_at": f.created_at,
        "updated_at": f.updated_at,
        "versions": history,
    }))
}
