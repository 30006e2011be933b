//! REST handlers under `/v1/auth/*`: register, login, refresh, API keys (create, list,
//! revoke) and API key → JWT. JSON in, JSON out; errors are [`ApiError`] bodies with the
//! code's HTTP status (and `Retry-After` for 429).

use std::sync::OnceLock;
use std::time::Instant;

use paddock_shared::ErrorCode;
use paddock_shared::model::Tier;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::{ALL_SCOPES, ApiError, App, RestRequest, RestResponse, Scope, new_id};
use crate::identity::jwt::{ACCESS_TTL_SECS, REFRESH_TTL_SECS, TokenError, TokenKind};
use crate::identity::password::{self, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
use crate::store::records::{AccountRecord, ApiKeyRecord};
use crate::store::{StoreError, now};

/// Longest key name.
pub const MAX_KEY_NAME: usize = 100;
/// Longest key lifetime in days.
pub const MAX_KEY_DAYS: u64 = 3650;

/// Renders an error as a response.
pub fn error_response(e: &ApiError) -> RestResponse {
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    if let Some(s) = e.retry_after {
        headers.push(("retry-after".to_owned(), s.to_string()));
    }
    RestResponse {
        status: e.code.http_status(),
        body: e.body(),
        headers,
    }
}

fn ok(status: u16, body: Value) -> RestResponse {
    RestResponse {
        status,
        body,
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("cache-control".to_owned(), "no-store".to_owned()),
        ],
    }
}

fn bad(code: ErrorCode, msg: impl Into<String>) -> ApiError {
    ApiError::new(code, msg)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    let id = uuid::Uuid::new_v4().simple().to_string();
    tracing::error!(error = %e, error_id = %id, "REST internal failure");
    ApiError::new(
        ErrorCode::Internal,
        format!("internal error (id {id}); try again, and report the id if it persists"),
    )
}

fn header<'a>(req: &'a RestRequest, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

fn bearer(req: &RestRequest) -> Option<&str> {
    let v = header(req, "authorization")?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

fn body<T: for<'de> Deserialize<'de>>(req: &RestRequest) -> Result<T, ApiError> {
    serde_json::from_slice(&req.body).map_err(|e| {
        bad(
            ErrorCode::BadRequest,
            format!("The request body must be a JSON object with the documented fields: {e}"),
        )
    })
}

/// Routes one request.
pub fn handle(app: &App, req: RestRequest) -> RestResponse {
    let path = req.path.trim_end_matches('/');
    let r = match (req.method.as_str(), path) {
        ("POST", "/v1/auth/register") => register(app, &req),
        ("POST", "/v1/auth/login") => login(app, &req),
        ("POST", "/v1/auth/refresh") => refresh(app, &req),
        ("POST", "/v1/auth/token") => token(app, &req),
        ("POST", "/v1/auth/api-keys") => create_key(app, &req),
        ("GET", "/v1/auth/api-keys") => list_keys(app, &req),
        ("GET", "/v1/usage") => usage(app, &req),
        ("DELETE", p) if p.starts_with("/v1/auth/api-keys/") => {
            revoke_key(app, &req, &p["/v1/auth/api-keys/".len()..])
        }
        (m, p) => Err(route_error(m, p)),
    };
    r.unwrap_or_else(|e| error_response(&e))
}

fn route_error(method: &str, path: &str) -> ApiError {
    let allowed: &[&str] = match path {
        "/v1/auth/register" | "/v1/auth/login" | "/v1/auth/refresh" | "/v1/auth/token" => &["POST"],
        "/v1/auth/api-keys" => &["GET", "POST"],
        "/v1/usage" => &["GET"],
        p if p.starts_with("/v1/auth/api-keys/") => &["DELETE"],
        _ => {
            return bad(
                ErrorCode::RouteNotFound,
                format!(
                    "No route {method} {path} — the REST API has /v1/auth/register, /login, /refresh, /token, /api-keys and /v1/usage"
                ),
            );
        }
    };
    let mut e = bad(
        ErrorCode::MethodNotAllowed,
        format!(
            "{method} is not allowed on {path}; use {}",
            allowed.join(" or ")
        ),
    );
    e.details = Some(json!({ "allow": allowed }));
    e
}

#[derive(Deserialize)]
struct Register {
    email: Option<String>,
    password: Option<String>,
    name: Option<String>,
    accept_tos: Option<bool>,
}

fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}

fn register(app: &App, req: &RestRequest) -> Result<RestResponse, ApiError> {
    if !app.config().registration_enabled {
        return Err(bad(
            ErrorCode::RegistrationDisabled,
            "Self-registration is turned off on this server — ask the operator for an account",
        ));
    }
    let b: Register = body(req)?;
    let email = b.email.unwrap_or_default().trim().to_ascii_lowercase();
    if !valid_email(&email) {
        return Err(bad(
            ErrorCode::InvalidArgument,
            "email must be a valid address like name@example.com",
        ));
    }
    let pw = b.password.unwrap_or_default();
    if pw.chars().count() < MIN_PASSWORD_LEN || pw.len() > MAX_PASSWORD_LEN {
        return Err(bad(
            ErrorCode::InvalidArgument,
            format!("password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters long"),
        ));
    }
    let name = b.name.unwrap_or_default().trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(bad(
            ErrorCode::InvalidArgument,
            "name must be 1 to 200 characters long",
        ));
    }
    if b.accept_tos != Some(true) {
        return Err(bad(
            ErrorCode::InvalidArgument,
            "accept_tos must be true to register (you accept the terms of service)",
        ));
    }
    let exists = || {
        bad(
            ErrorCode::AccountExists,
            format!(
                "An account with email '{email}' exists already — log in with POST /v1/auth/login"
            ),
        )
    };
    if app
        .store()
        .account_by_email(&email)
        .map_err(internal)?
        .is_some()
    {
        return Err(exists());
    }
    let acc = AccountRecord {
        id: new_id("acc"),
        email: email.clone(),
        name,
        tier: Tier::Free,
        password_hash: Some(password::hash(&pw).map_err(internal)?),
        is_admin: false,
        created_at: now(),
    };
    app.store().create_account(&acc).map_err(|e| match e {
        StoreError::Exists { .. } => exists(),
        e => internal(e),
    })?;
    Ok(ok(
        201,
        json!({
            "id": acc.id, "email": acc.email, "name": acc.name, "tier": acc.tier.as_str(),
            "created_at": acc.created_at,
            "message": "Account created. Log in with POST /v1/auth/login, then create an API key with POST /v1/auth/api-keys.",
        }),
    ))
}

#[derive(Deserialize)]
struct Login {
    email: Option<String>,
    password: Option<String>,
}

fn dummy_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| password::hash("paddock-dummy-password").unwrap_or_default())
}

fn tokens(app: &App, account_id: &str) -> Result<Value, ApiError> {
    let t = now();
    Ok(json!({
        "access_token": app.jwt().issue(account_id, TokenKind::Access, t).map_err(internal)?,
        "refresh_token": app.jwt().issue(account_id, TokenKind::Refresh, t).map_err(internal)?,
        "token_type": "bearer",
        "expires_in": ACCESS_TTL_SECS,
        "refresh_expires_in": REFRESH_TTL_SECS,
    }))
}

fn login(app: &App, req: &RestRequest) -> Result<RestResponse, ApiError> {
    let addr = req.client_addr;
    if let Some(secs) = app.throttle().check(addr, Instant::now()) {
        let mut e = bad(
            ErrorCode::LoginThrottled,
            format!("Too many failed logins from your address — try again in {secs} seconds"),
        );
        e.retry_after = Some(secs);
        return Err(e);
    }
    let b: Login = body(req)?;
    let email = b.email.unwrap_or_default().trim().to_ascii_lowercase();
    let pw = b.password.unwrap_or_default();
    let acc = app.store().account_by_email(&email).map_err(internal)?;
    let verified = match acc.as_ref().and_then(|a| a.password_hash.as_deref()) {
        Some(h) if pw.len() <= MAX_PASSWORD_LEN => password::verify(&pw, h),
        _ => {
            // Same work as a real check, so timing does not tell which emails exist.
            let _ = password::verify(&pw, dummy_hash());
            false
        }
    };
    match acc {
        Some(a) if verified => {
            app.throttle().succeeded(addr);
            Ok(ok(200, tokens(app, &a.id)?))
        }
        _ => {
            app.throttle().failed(addr, Instant::now());
            Err(bad(
                ErrorCode::AuthenticationFailed,
                "Authentication failed: email or password is wrong",
            ))
        }
    }
}

#[derive(Deserialize)]
struct Refresh {
    refresh_token: Option<String>,
}

fn token_error(e: TokenError) -> ApiError {
    bad(
        ErrorCode::AuthenticationFailed,
        format!("Authentication failed: {e}"),
    )
}

fn refresh(app: &App, req: &RestRequest) -> Result<RestResponse, ApiError> {
    let b: Refresh = body(req)?;
    let t = b
        .refresh_token
        .ok_or_else(|| bad(ErrorCode::InvalidArgument, "refresh_token is required"))?;
    let c = app
        .jwt()
        .verify(&t, TokenKind::Refresh)
        .map_err(token_error)?;
    if app.store().account(&c.sub).map_err(internal)?.is_none() {
        return Err(bad(
            ErrorCode::AuthenticationFailed,
            "Authentication failed: the account no longer exists",
        ));
    }
    Ok(ok(200, tokens(app, &c.sub)?))
}

fn token(app: &App, req: &RestRequest) -> Result<RestResponse, ApiError> {
    let raw = header(req, "x-api-key").or_else(|| bearer(req)).ok_or_else(|| {
        bad(ErrorCode::AuthenticationFailed, "Authentication failed: send the API key as 'x-api-key: pdk_…' or 'Authorization: Bearer pdk_…'")
    })?;
    let p = app.authenticate(raw)?;
    let access = app
        .jwt()
        .issue(&p.account_id, TokenKind::Access, now())
        .map_err(internal)?;
    Ok(ok(
        200,
        json!({ "access_token": access, "token_type": "bearer", "expires_in": ACCESS_TTL_SECS }),
    ))
}

/// `GET /v1/usage`: this month's executions, limit, remaining, reset time, rate and
/// concurrency of the caller's account — with an API key (`x-api-key` or `Authorization:
/// Bearer pdk_…`) or a JWT access token.
fn usage(app: &App, req: &RestRequest) -> Result<RestResponse, ApiError> {
    let key = header(req, "x-api-key")
        .or_else(|| bearer(req).filter(|t| t.starts_with(crate::identity::keys::KEY_PREFIX)));
    let (account, tier) = match key {
        Some(raw) => {
            let p = app.authenticate(raw)?;
            (p.account_id, p.tier)
        }
        None => {
            let acc = jwt_account(app, req)?;
            (acc.id, acc.tier)
        }
    };
    let report = app.limiter().usage(&account, tier, crate::quota::now_ms());
    Ok(ok(200, report.to_json()))
}

/// The account behind a JWT access token.
fn jwt_account(app: &App, req: &RestRequest) -> Result<AccountRecord, ApiError> {
    let t = bearer(req).ok_or_else(|| {
        bad(ErrorCode::AuthenticationFailed, "Authentication failed: send 'Authorization: Bearer <access token>' from POST /v1/auth/login")
    })?;
    if t.starts_with(crate::identity::keys::KEY_PREFIX) {
        return Err(bad(
            ErrorCode::AuthenticationFailed,
            "Authentication failed: this endpoint needs a JWT access token, not an API key — exchange the key with POST /v1/auth/token",
        ));
    }
    let c = app
        .jwt()
        .verify(t, TokenKind::Access)
        .map_err(token_error)?;
    app.store()
        .account(&c.sub)
        .map_err(internal)?
        .ok_or_else(|| {
            bad(
                ErrorCode::AuthenticationFailed,
                "Authentication failed: the account no longer exists",
            )
        })
}

#[derive(Deserialize)]
struct NewKey {
    name: Option<String>,
    scopes: Option<Vec<String>>,
    namespace: Option<String>,
    expires_at: Option<Value>,
    expires_in_days: Option<u64>,
}

fn parse_scope(s: &str) -> Option<Scope> {
    match s {
        "read" => Some(Scope::Read),
        "write" => Some(Scope::Write),
        "execute" => Some(Scope::Execute),
        _ => None,
    }
}

fn scope_str(s: Scope) -> &'static str {
    match s {
        Scope::Read => "read",
        Scope::Write => "write",
        Scope::Execute => "execute",
    }
}

fn key_json(k: &ApiKeyRecord) -> Value {
    let t = now();
    let status = if k.revoked_at.is_some() {
        "revoked"
    } else if k.expires_at.is_some_and(|e| t >= e) {
        "expired"
    } else {
        "active"
    };
    json!({
        "id": k.id,
        "name": k.name,
        "prefix": k.prefix,
        "scopes": k.scopes.iter().map(|s| scope_str(*s)).collect::<Vec<_>>(),
        "namespace": k.namespace,
        "expires_at": k.expires_at,
        "revoked_at": k.revoked_at,
        "created_at": k.created_at,
        "status": status,
    })
}

fn create_key(app: &App, req: &RestRequest) -> Result<RestResponse, ApiError> {
    let acc = jwt_account(app, req)?;
    let b: NewKey = body(req)?;
    let name = b.name.unwrap_or_default().trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_KEY_NAME {
        return Err(bad(
            ErrorCode::InvalidArgument,
            format!("name must be 1 to {MAX_KEY_NAME} characters long"),
        ));
    }
    let scopes = match b.scopes {
        None => ALL_SCOPES.to_vec(),
        Some(list) => {
            let mut out = Vec::new();
            for s in &list {
                let sc = parse_scope(s.trim()).ok_or_else(|| {
                    bad(
                        ErrorCode::InvalidArgument,
                        format!("unknown scope '{s}': use read, write and/or execute"),
                    )
                })?;
                if !out.contains(&sc) {
                    out.push(sc);
                }
            }
            if out.is_empty() {
                return Err(bad(
                    ErrorCode::InvalidArgument,
                    "scopes must name at least one of read, write, execute",
                ));
            }
            out
        }
    };
    let namespace = match b
        .namespace
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
    {
        Some(n) => {
            paddock_shared::names::validate_namespace(&n)
                .map_err(crate::tools::checks::name_error)?;
            if let Some(rec) = app.store().namespace(&n).map_err(internal)?
                && rec.owner != acc.id
            {
                return Err(crate::tools::namespace_denied(&n));
            }
            Some(n)
        }
        None => None,
    };
    let t = now();
    let expires_at = match (b.expires_at, b.expires_in_days) {
        (Some(_), Some(_)) => {
            return Err(bad(
                ErrorCode::InvalidArgument,
                "give expires_at or expires_in_days, not both",
            ));
        }
        (Some(v), None) => {
            let at = v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| {
                    bad(
                        ErrorCode::InvalidArgument,
                        "expires_at must be a unix time in seconds (e.g. 1767225600)",
                    )
                })?;
            if at <= t {
                return Err(bad(
                    ErrorCode::InvalidArgument,
                    "expires_at is in the past — give a future unix time in seconds",
                ));
            }
            Some(at)
        }
        (None, Some(d)) => {
            if d == 0 || d > MAX_KEY_DAYS {
                return Err(bad(
                    ErrorCode::InvalidArgument,
                    format!("expires_in_days must be 1 to {MAX_KEY_DAYS}"),
                ));
            }
            Some(t + d * 86_400)
        }
        (None, None) => None,
    };
    let (raw, rec) = app.create_key(&acc.id, &name, scopes, namespace, expires_at)?;
    let mut v = key_json(&rec);
    if let Value::Object(m) = &mut v {
        m.insert("key".into(), json!(raw));
        m.insert("message".into(), json!("Store this key now: it is shown only once. Use it as 'Authorization: Bearer <key>'."));
    }
    Ok(ok(201, v))
}

fn list_keys(app: &App, req: &RestRequest) -> Result<RestResponse, ApiError> {
    let acc = jwt_account(app, req)?;
    let keys: Vec<Value> = app
        .store()
        .keys_of(&acc.id)
        .map_err(internal)?
        .iter()
        .map(key_json)
        .collect();
    Ok(ok(200, json!({ "api_keys": keys, "count": keys.len() })))
}

fn revoke_key(app: &App, req: &RestRequest, id: &str) -> Result<RestResponse, ApiError> {
    let acc = jwt_account(app, req)?;
    let k = app.store().revoke_key(&acc.id, id, now()).map_err(|e| match e {
        StoreError::Missing { .. } => bad(
            ErrorCode::ApiKeyNotFound,
            format!("API key '{id}' does not exist in your account — list your keys with GET /v1/auth/api-keys"),
        ),
        e => internal(e),
    })?;
    let mut v = key_json(&k);
    if let Value::Object(m) = &mut v {
        m.insert("revoked".into(), json!(true));
    }
    Ok(ok(200, v))
}
