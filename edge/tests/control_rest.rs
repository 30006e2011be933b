//! REST /v1/auth/* against a real store: register, login (with throttling), refresh, API
//! keys (create, list, revoke), API key → JWT, and the error bodies.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use paddock_edge::app::{App, AppConfig, Endpoint, RestRequest, RestResponse};
use paddock_shared::ErrorCode;
use serde_json::{Value, json};

fn app_with(f: impl FnOnce(&mut AppConfig)) -> (tempfile::TempDir, App) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = AppConfig::new(dir.path());
    f(&mut cfg);
    let (app, _) = App::open(cfg).unwrap();
    (dir, app)
}

fn req(method: &str, path: &str, headers: &[(&str, &str)], body: Value, addr: &str) -> RestRequest {
    RestRequest {
        method: method.into(),
        path: path.into(),
        query: None,
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        body: if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        },
        client_addr: Some(addr.parse::<IpAddr>().unwrap()),
    }
}

async fn post(app: &App, path: &str, body: Value) -> RestResponse {
    app.rest(req("POST", path, &[], body, "10.0.0.1")).await
}

fn code(r: &RestResponse) -> &str {
    r.body["code"].as_str().unwrap_or("")
}

async fn register_and_login(app: &App, email: &str) -> (String, String) {
    let r = post(
        app,
        "/v1/auth/register",
        json!({"email": email, "password": "longenough", "name": "Ann", "accept_tos": true}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = post(
        app,
        "/v1/auth/login",
        json!({"email": email, "password": "longenough"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    (
        r.body["access_token"].as_str().unwrap().to_owned(),
        r.body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn register_login_keys_and_revocation() {
    let (_d, app) = app_with(|_| {});
    let r = post(&app, "/v1/auth/register", json!({"email": "Ann@Example.com", "password": "longenough", "name": "Ann", "accept_tos": true})).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["tier"], "free");
    assert_eq!(r.body["email"], "ann@example.com");
    let r = post(&app, "/v1/auth/register", json!({"email": "ann@example.com", "password": "longenough", "name": "Ann", "accept_tos": true})).await;
    assert_eq!((r.status, code(&r)), (409, "ACCOUNT_EXISTS"));

    let r = post(
        &app,
        "/v1/auth/login",
        json!({"email": "ann@example.com", "password": "longenough"}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["token_type"], "bearer");
    assert_eq!(r.body["expires_in"], 900);
    let access = r.body["access_token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {access}");

    let r = app
        .rest(req("POST", "/v1/auth/api-keys", &[("authorization", &bearer)], json!({"name": "ci", "scopes": ["read", "write"], "namespace": "acme", "expires_in_days": 30}), "10.0.0.1"))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let raw = r.body["key"].as_str().unwrap().to_owned();
    assert!(raw.starts_with("pdk_"));
    assert_eq!(r.body["scopes"], json!(["read", "write"]));
    assert_eq!(r.body["namespace"], "acme");
    let id = r.body["id"].as_str().unwrap().to_owned();

    let p = app.authenticate(&raw).unwrap();
    assert_eq!(p.namespace.as_deref(), Some("acme"));
    assert_eq!(app.authorize(&p, Endpoint::Create, "acme"), Ok(()));

    let r = app
        .rest(req(
            "GET",
            "/v1/auth/api-keys",
            &[("authorization", &bearer)],
            Value::Null,
            "10.0.0.1",
        ))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["count"], 1);
    let listed = r.body["api_keys"][0].clone();
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(listed["status"], "active");
    assert!(listed.get("key").is_none() && listed.get("digest").is_none());
    assert!(
        !r.body.to_string().contains(&raw[12..]),
        "the raw key never comes back"
    );

    // API key → JWT
    let r = app
        .rest(req(
            "POST",
            "/v1/auth/token",
            &[("x-api-key", &raw)],
            Value::Null,
            "10.0.0.1",
        ))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body["access_token"].as_str().unwrap().starts_with("eyJ"));
    let r = app
        .rest(req(
            "POST",
            "/v1/auth/token",
            &[("authorization", &format!("Bearer {raw}"))],
            Value::Null,
            "10.0.0.1",
        ))
        .await;
    assert_eq!(r.status, 200);

    let r = app
        .rest(req(
            "DELETE",
            &format!("/v1/auth/api-keys/{id}"),
            &[("authorization", &bearer)],
            Value::Null,
            "10.0.0.1",
        ))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "revoked");
    let x = app.authenticate(&raw).unwrap_err();
    assert_eq!(x.code, ErrorCode::AuthenticationFailed);
    assert!(x.message.ends_with("was revoked — create a new key"));
    let r = app
        .rest(req(
            "POST",
            "/v1/auth/token",
            &[("x-api-key", &raw)],
            Value::Null,
            "10.0.0.1",
        ))
        .await;
    assert_eq!((r.status, code(&r)), (401, "AUTHENTICATION_FAILED"));
    let r = app
        .rest(req(
            "DELETE",
            "/v1/auth/api-keys/key_nope",
            &[("authorization", &bearer)],
            Value::Null,
            "10.0.0.1",
        ))
        .await;
    assert_eq!((r.status, code(&r)), (404, "API_KEY_NOT_FOUND"));
    assert_eq!(
        r.body["message"],
        "API key 'key_nope' does not exist in your account — list your keys with GET /v1/auth/api-keys"
    );
}

#[tokio::test]
async fn keys_of_another_account_cannot_be_revoked_or_listed() {
    let (_d, app) = app_with(|_| {});
    let (a, _) = register_and_login(&app, "a@example.com").await;
    let (b, _) = register_and_login(&app, "b@example.com").await;
    let r = app
        .rest(req(
            "POST",
            "/v1/auth/api-keys",
            &[("authorization", &format!("Bearer {a}"))],
            json!({"name": "k"}),
            "10.0.0.1",
        ))
        .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["scopes"], json!(["read", "write", "execute"]));
    let r = app
        .rest(req(
            "GET",
            "/v1/auth/api-keys",
            &[("authorization", &format!("Bearer {b}"))],
            Value::Null,
            "10.0.0.1",
        ))
        .await;
    assert_eq!(r.body["count"], 0);
    let r = app
        .rest(req(
            "DELETE",
            &format!("/v1/auth/api-keys/{id}"),
            &[("authorization", &format!("Bearer {b}"))],
            Value::Null,
            "10.0.0.1",
        ))
        .await;
    assert_eq!((r.status, code(&r)), (404, "API_KEY_NOT_FOUND"));
}

#[tokio::test]
async fn input_errors_are_typed() {
    let (_d, app) = app_with(|_| {});
    let cases = [
        (
            json!({"email": "x@y.io", "password": "short", "name": "A", "accept_tos": true}),
            "INVALID_ARGUMENT",
            "password must be 8 to 1024 characters long",
        ),
        (
            json!({"email": "x@y.io", "password": "longenough", "name": "A", "accept_tos": false}),
            "INVALID_ARGUMENT",
            "accept_tos must be true to register (you accept the terms of service)",
        ),
        (
            json!({"email": "not-an-email", "password": "longenough", "name": "A", "accept_tos": true}),
            "INVALID_ARGUMENT",
            "email must be a valid address like name@example.com",
        ),
        (
            json!({"email": "x@y.io", "password": "longenough", "name": "", "accept_tos": true}),
            "INVALID_ARGUMENT",
            "name must be 1 to 200 characters long",
        ),
    ];
    for (b, c, m) in cases {
        let r = post(&app, "/v1/auth/register", b).await;
        assert_eq!(
            (r.status, code(&r), r.body["message"].as_str().unwrap()),
            (400, c, m)
        );
    }
    let r = app
        .rest(RestRequest {
            body: b"{nope".to_vec(),
            ..req("POST", "/v1/auth/login", &[], Value::Null, "10.0.0.9")
        })
        .await;
    assert_eq!((r.status, code(&r)), (400, "BAD_REQUEST"));

    let (access, refresh) = register_and_login(&app, "k@example.com").await;
    let auth = format!("Bearer {access}");
    let key_cases = [
        (
            json!({"name": "k", "scopes": ["admin"]}),
            "unknown scope 'admin': use read, write and/or execute",
        ),
        (
            json!({"name": "k", "scopes": []}),
            "scopes must name at least one of read, write, execute",
        ),
        (json!({"name": ""}), "name must be 1 to 100 characters long"),
        (
            json!({"name": "k", "expires_at": 5}),
            "expires_at is in the past — give a future unix time in seconds",
        ),
        (
            json!({"name": "k", "expires_at": 9999999999u64, "expires_in_days": 1}),
            "give expires_at or expires_in_days, not both",
        ),
        (
            json!({"name": "k", "expires_in_days": 0}),
            "expires_in_days must be 1 to 3650",
        ),
    ];
    for (b, m) in key_cases {
        let r = app
            .rest(req(
                "POST",
                "/v1/auth/api-keys",
                &[("authorization", &auth)],
                b,
                "10.0.0.1",
            ))
            .await;
        assert_eq!((r.status, r.body["message"].as_str().unwrap()), (400, m));
    }
    let r = app
        .rest(req(
            "POST",
            "/v1/auth/api-keys",
            &[("authorization", &auth)],
            json!({"name": "k", "namespace": "Bad!"}),
            "10.0.0.1",
        ))
        .await;
    assert_eq!(code(&r), "INVALID_NAME");

    // A refresh token is not an access token, and vice versa.
    let r = app
        .rest(req(
            "GET",
            "/v1/auth/api-keys",
            &[("authorization", &format!("Bearer {refresh}"))],
            Value::Null,
            "10.0.0.1",
        ))
        .await;
    assert_eq!(
        (r.status, r.body["message"].as_str().unwrap()),
        (
            401,
            "Authentication failed: wrong token kind: expected an Access token"
        )
    );
    let r = post(&app, "/v1/auth/refresh", json!({"refresh_token": refresh})).await;
    assert_eq!(r.status, 200);
    assert!(r.body["access_token"].is_string());
    let r = post(&app, "/v1/auth/refresh", json!({"refresh_token": access})).await;
    assert_eq!(r.status, 401);
    // An API key where a JWT is needed.
    let r = app
        .rest(req(
            "GET",
            "/v1/auth/api-keys",
            &[("authorization", &format!("Bearer pdk_{}", "0".repeat(64)))],
            Value::Null,
            "10.0.0.1",
        ))
        .await;
    assert_eq!(
        r.body["message"],
        "Authentication failed: this endpoint needs a JWT access token, not an API key — exchange the key with POST /v1/auth/token"
    );
    let r = app
        .rest(req(
            "GET",
            "/v1/auth/api-keys",
            &[],
            Value::Null,
            "10.0.0.1",
        ))
        .await;
    assert_eq!((r.status, code(&r)), (401, "AUTHENTICATION_FAILED"));

    let r = app
        .rest(req("GET", "/v1/auth/login", &[], Value::Null, "10.0.0.1"))
        .await;
    assert_eq!((r.status, code(&r)), (405, "METHOD_NOT_ALLOWED"));
    assert_eq!(r.body["allow"], json!(["POST"]));
    let r = app
        .rest(req("GET", "/v1/nothing", &[], Value::Null, "10.0.0.1"))
        .await;
    assert_eq!((r.status, code(&r)), (404, "NOT_FOUND"));
}

#[tokio::test]
async fn registration_can_be_turned_off() {
    let (_d, app) = app_with(|c| c.registration_enabled = false);
    let r = post(
        &app,
        "/v1/auth/register",
        json!({"email": "x@y.io", "password": "longenough", "name": "A", "accept_tos": true}),
    )
    .await;
    assert_eq!((r.status, code(&r)), (403, "REGISTRATION_DISABLED"));
    assert_eq!(
        r.body["message"],
        "Self-registration is turned off on this server — ask the operator for an account"
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_per_address() {
    let (_d, app) = app_with(|_| {});
    register_and_login(&app, "t@example.com").await;
    for i in 0..10 {
        let r = app
            .rest(req(
                "POST",
                "/v1/auth/login",
                &[],
                json!({"email": "t@example.com", "password": "wrong-pass"}),
                "10.0.0.7",
            ))
            .await;
        assert_eq!(
            (r.status, code(&r)),
            (401, "AUTHENTICATION_FAILED"),
            "attempt {i}"
        );
        assert_eq!(
            r.body["message"],
            "Authentication failed: email or password is wrong"
        );
    }
    // Even the right password is refused from that address now.
    let r = app
        .rest(req(
            "POST",
            "/v1/auth/login",
            &[],
            json!({"email": "t@example.com", "password": "longenough"}),
            "10.0.0.7",
        ))
        .await;
    assert_eq!((r.status, code(&r)), (429, "LOGIN_THROTTLED"));
    let retry: u64 = r
        .headers
        .iter()
        .find(|(k, _)| k == "retry-after")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap();
    assert!((1..=300).contains(&retry));
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .starts_with("Too many failed logins from your address — try again in ")
    );
    // Another address is not affected; unknown emails count as failures too.
    let r = app
        .rest(req(
            "POST",
            "/v1/auth/login",
            &[],
            json!({"email": "t@example.com", "password": "longenough"}),
            "10.0.0.8",
        ))
        .await;
    assert_eq!(r.status, 200);
    let r = app
        .rest(req(
            "POST",
            "/v1/auth/login",
            &[],
            json!({"email": "nobody@example.com", "password": "longenough"}),
            "10.0.0.8",
        ))
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn admin_account_cannot_log_in_with_a_password_but_its_key_works() {
    let dir = tempfile::tempdir().unwrap();
    let (app, key) = App::open(AppConfig::new(dir.path())).unwrap();
    let key = key.unwrap();
    let r = post(
        &app,
        "/v1/auth/login",
        json!({"email": "admin@localhost", "password": "anything-at-all"}),
    )
    .await;
    assert_eq!(r.status, 401);
    let r = app
        .rest(req(
            "POST",
            "/v1/auth/token",
            &[("x-api-key", &key)],
            Value::Null,
            "10.0.0.1",
        ))
        .await;
    assert_eq!(r.status, 200);
    // With the exchanged JWT the admin can mint more keys.
    let jwt = r.body["access_token"].as_str().unwrap().to_owned();
    let r = app
        .rest(req(
            "POST",
            "/v1/auth/api-keys",
            &[("authorization", &format!("Bearer {jwt}"))],
            json!({"name": "second"}),
            "10.0.0.1",
        ))
        .await;
    assert_eq!(r.status, 201);
    assert!(
        app.authenticate(r.body["key"].as_str().unwrap())
            .unwrap()
            .is_admin
    );
}
