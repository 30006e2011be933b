//! Create tools against a real sled store in a temp dir: the seed's workflow, every
//! validation error, versioning, two-step deletes, tenant isolation, replication entries
//! and durability across reopen.
#![allow(clippy::unwrap_used)]

use paddock_edge::app::{ApiError, App, AppConfig, Endpoint, Principal, Scope};
use paddock_shared::ErrorCode;
use paddock_shared::model::{ReplOp, Tier};
use serde_json::{Map, Value, json};

mod account_support;
use account_support::{ALL, account};

struct Env {
    _dir: tempfile::TempDir,
    app: App,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let (app, key) = App::open(AppConfig::new(dir.path())).unwrap();
    assert!(key.is_some());
    Env { _dir: dir, app }
}

/// An account with a key of the given scopes (and optional namespace binding).
fn args(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("args must be an object"),
    }
}

async fn call(app: &App, p: &Principal, ns: &str, tool: &str, a: Value) -> Result<Value, ApiError> {
    app.call_create_tool(p, ns, tool, args(a)).await
}

async fn ok(app: &App, p: &Principal, ns: &str, tool: &str, a: Value) -> Value {
    match call(app, p, ns, tool, a).await {
        Ok(v) => v,
        Err(e) => panic!("{tool} failed: {e}"),
    }
}

async fn err(app: &App, p: &Principal, ns: &str, tool: &str, a: Value) -> ApiError {
    match call(app, p, ns, tool, a).await {
        Ok(v) => panic!("{tool} should fail, got {v}"),
        Err(e) => e,
    }
}

/// acme/tools with hello from the hello-world template.
async fn seed(app: &App, p: &Principal) {
    ok(
        app,
        p,
        "acme",
        "make_namespace",
        json!({"name": "acme", "description": "Acme"}),
    )
    .await;
    ok(app, p, "acme", "make_service", json!({"name": "tools"})).await;
    ok(app, p, "acme", "make_function", json!({"service": "tools", "name": "hello", "backend": "code_sandbox", "template": "hello-world"})).await;
}

#[tokio::test]
async fn the_seed_workflow_and_listings() {
    let e = env();
    let (p, _) = account(&e.app, "a@x.io", ALL, None);
    let v = ok(
        &e.app,
        &p,
        "acme",
        "make_namespace",
        json!({"name": "acme", "description": "Acme"}),
    )
    .await;
    assert_eq!(v["name"], "acme");
    let v = ok(
        &e.app,
        &p,
        "acme",
        "make_service",
        json!({"name": "tools", "description": "Tools"}),
    )
    .await;
    assert_eq!(v["name"], "tools");
    let v = ok(&e.app, &p, "acme", "make_function", json!({"service": "tools", "name": "hello", "backend": "code_sandbox", "template": "hello-world"})).await;
    assert_eq!(v["qualified_name"], "tools.hello");
    assert_eq!(v["version"], 1);
    assert_eq!(v["language"], "python");
    assert_eq!(v["warnings"], json!([]));

    let v = ok(&e.app, &p, "acme", "list_namespaces", json!({})).await;
    assert_eq!(v["namespaces"][0]["name"], "acme");
    assert_eq!(v["namespaces"][0]["service_count"], 1);

    e.app.record_call("acme", "tools", "hello");
    e.app.record_call("acme", "tools", "hello");
    let v = ok(&e.app, &p, "acme", "list_services", json!({})).await;
    assert_eq!(
        v["services"],
        json!([{"name": "tools", "description": "Tools", "function_count": 1, "call_count": 2}])
    );

    let v = ok(
        &e.app,
        &p,
        "acme",
        "list_functions",
        json!({"service": "tools"}),
    )
    .await;
    assert_eq!(v["functions"][0]["name"], "tools.hello");

    let v = ok(
        &e.app,
        &p,
        "acme",
        "describe_function",
        json!({"service": "tools", "name": "hello"}),
    )
    .await;
    assert!(v["code"].as_str().unwrap().contains("def main(input_data)"));
    assert_eq!(v["input_schema"]["properties"]["name"]["type"], "string");
    assert_eq!(v["requirements"], json!([]));
    assert_eq!(v["versions"].as_array().unwrap().len(), 1);
    assert_eq!(v["call_count"], 2);

    let v = ok(&e.app, &p, "acme", "list_templates", json!({})).await;
    assert_eq!(v["count"], 8);
    let v = ok(
        &e.app,
        &p,
        "acme",
        "describe_template",
        json!({"name": "api-connector"}),
    )
    .await;
    assert_eq!(v["requirements"], json!(["httpx"]));
    let v = ok(
        &e.app,
        &p,
        "acme",
        "list_packages",
        json!({"language": "python"}),
    )
    .await;
    assert_eq!(v["python"]["count"], 59);

    let v = ok(&e.app, &p, "acme", "make_function", json!({"service": "tools", "name": "hi-ts", "backend": "code_sandbox", "template": "hello-world-ts", "tags": ["Demo"]})).await;
    assert_eq!(v["language"], "typescript");
    let v = ok(
        &e.app,
        &p,
        "acme",
        "list_functions",
        json!({"service": "tools", "tag": "demo"}),
    )
    .await;
    assert_eq!(v["functions"].as_array().unwrap().len(), 1);
    assert_eq!(v["functions"][0]["name"], "tools.hi-ts");

    ok(
        &e.app,
        &p,
        "acme",
        "delete_function",
        json!({"service": "tools", "name": "hi-ts"}),
    )
    .await;
    let x = err(
        &e.app,
        &p,
        "acme",
        "describe_function",
        json!({"service": "tools", "name": "hi-ts"}),
    )
    .await;
    assert_eq!(x.code, ErrorCode::FunctionNotFound);
    assert_eq!(
        x.message,
        "Function 'tools.hi-ts' does not exist — see list_functions(service=\"tools\")"
    );
}

#[tokio::test]
async fn validation_errors_have_stable_codes_and_text() {
    let e = env();
    let (p, _) = account(&e.app, "a@x.io", ALL, None);
    let app = &e.app;
    let x = err(app, &p, "acme", "make_service", json!({"name": "tools"})).await;
    assert_eq!(x.code, ErrorCode::NamespaceNotFound);
    assert_eq!(
        x.message,
        "Namespace 'acme' does not exist — create it with make_namespace(name=\"acme\")"
    );
    let x = err(
        app,
        &p,
        "acme",
        "make_namespace",
        json!({"name": "Bad_Name"}),
    )
    .await;
    assert_eq!(x.code, ErrorCode::InvalidName);
    seed(app, &p).await;
    let x = err(app, &p, "acme", "make_namespace", json!({"name": "acme"})).await;
    assert_eq!(x.code, ErrorCode::AlreadyExists);
    assert_eq!(
        x.message,
        "Namespace 'acme' already exists — choose another name (see list_namespaces for yours)"
    );
    let x = err(app, &p, "acme", "make_service", json!({"name": "tools"})).await;
    assert_eq!(
        (x.code, x.message.as_str()),
        (
            ErrorCode::AlreadyExists,
            "Service 'tools' already exists — choose another name"
        )
    );
    let x = err(app, &p, "acme", "make_service", json!({"name": "-x"})).await;
    assert_eq!(x.code, ErrorCode::InvalidName);

    let mk = |extra: Value| {
        let mut base = json!({"service": "tools", "name": "f", "backend": "code_sandbox"});
        if let (Value::Object(b), Value::Object(x)) = (&mut base, extra) {
            b.extend(x);
        }
        base
    };
    let cases: Vec<(Value, ErrorCode, &str)> = vec![
        (
            mk(json!({"template": "nope"})),
            ErrorCode::UnknownTemplate,
            "Unknown template: nope — use list_templates to see valid names",
        ),
        (
            mk(json!({})),
            ErrorCode::NoCodeProvided,
            "No code provided — pass code, or a template from list_templates (e.g. template=\"hello-world\")",
        ),
        (
            mk(json!({"code": "  "})),
            ErrorCode::NoCodeProvided,
            "No code provided — pass code, or a template from list_templates (e.g. template=\"hello-world\")",
        ),
        (
            mk(json!({"code": "result = 1", "backend": "lambda"})),
            ErrorCode::UnknownBackend,
            "Unknown backend 'lambda' — use backend=\"code_sandbox\"",
        ),
        (
            mk(json!({"code": "result = 1", "language": "ruby"})),
            ErrorCode::UnsupportedLanguage,
            "Unsupported language 'ruby' — use \"python\" or \"typescript\"",
        ),
        (
            mk(json!({"code": "x", "requirements": ["left-pad"]})),
            ErrorCode::PackageNotAllowed,
            "Package 'left-pad' is not in the allowed list for python — see list_packages(language=\"python\"); packages cannot be installed at run time",
        ),
        (
            mk(json!({"code": "x", "language": "typescript", "requirements": ["pandas"]})),
            ErrorCode::PackageNotAllowed,
            "Package 'pandas' is not in the allowed list for typescript — see list_packages(language=\"typescript\"); packages cannot be installed at run time",
        ),
        (
            mk(json!({"code": "x", "bogus": 1})),
            ErrorCode::InvalidArgument,
            "make_function: unknown argument 'bogus'; accepted arguments: service, name, backend, language, code, config, input_schema, output_schema, description, tags, requirements, template",
        ),
        (
            mk(json!({"code": "x", "input_schema": {"type": 12}})),
            ErrorCode::InvalidSchema,
            "",
        ),
        (
            mk(json!({"code": "x", "output_schema": {"type": "object", "minProperties": -1}})),
            ErrorCode::InvalidSchema,
            "",
        ),
        (
            mk(json!({"code": "x", "template": "hello-world-ts", "language": "python"})),
            ErrorCode::InvalidArgument,
            "Template 'hello-world-ts' is typescript, but language=python was given — omit language or pick a python template",
        ),
        (
            json!({"service": "nope", "name": "f", "backend": "code_sandbox", "code": "x"}),
            ErrorCode::ServiceNotFound,
            "Service 'nope' does not exist — see list_services or create it with make_service",
        ),
        (
            json!({"service": "tools", "name": "f", "code": "x"}),
            ErrorCode::InvalidArgument,
            "make_function: missing required argument 'backend' — use backend=\"code_sandbox\"",
        ),
        (
            json!({"service": "tools", "name": "Hello", "backend": "code_sandbox", "code": "x"}),
            ErrorCode::InvalidName,
            "",
        ),
        (
            mk(json!({"name": "hello", "code": "x"})),
            ErrorCode::AlreadyExists,
            "Function 'tools.hello' already exists — change it with update_function or choose another name",
        ),
    ];
    for (a, code, msg) in cases {
        let x = err(app, &p, "acme", "make_function", a.clone()).await;
        assert_eq!(x.code, code, "{a}: {}", x.message);
        if !msg.is_empty() {
            assert_eq!(x.message, msg, "{a}");
        }
    }
    // Requirements with aliases resolve to canonical names.
    let v = ok(
        app,
        &p,
        "acme",
        "make_function",
        mk(json!({"name": "soup", "code": "import bs4", "requirements": ["bs4", "yaml"]})),
    )
    .await;
    assert_eq!(v["requirements"], json!(["beautifulsoup4", "pyyaml"]));

    let x = err(app, &p, "acme", "no_such_tool", json!({})).await;
    assert_eq!(
        (x.code, x.message.as_str()),
        (
            ErrorCode::UnknownTool,
            "Unknown tool: no_such_tool — call tools/list to see the tools of the create endpoint"
        )
    );
    let x = err(
        app,
        &p,
        "acme",
        "set_account_tier",
        json!({"email": "a@x.io", "tier": "pro"}),
    )
    .await;
    assert_eq!(x.code, ErrorCode::UnknownTool);
}

#[tokio::test]
async fn size_limits_at_the_edge() {
    let e = env();
    let (p, _) = account(&e.app, "a@x.io", ALL, None);
    seed(&e.app, &p).await;
    let code_ok = format!("result = 1\n{}", "#".repeat(100 * 1024 - 11));
    assert_eq!(code_ok.len(), 100 * 1024);
    ok(
        &e.app,
        &p,
        "acme",
        "make_function",
        json!({"service": "tools", "name": "big", "backend": "code_sandbox", "code": code_ok}),
    )
    .await;
    let code_big = format!("{code_ok}#");
    let x = err(
        &e.app,
        &p,
        "acme",
        "make_function",
        json!({"service": "tools", "name": "big2", "backend": "code_sandbox", "code": code_big}),
    )
    .await;
    assert_eq!(x.code, ErrorCode::InputTooLarge);
    assert_eq!(
        x.message,
        "code is 102401 bytes; the limit is 102400 bytes (100 KiB) — make it smaller"
    );
    let x = err(
        &e.app,
        &p,
        "acme",
        "update_function",
        json!({"service": "tools", "name": "big", "code": code_big}),
    )
    .await;
    assert_eq!(x.code, ErrorCode::InputTooLarge);

    let d_ok = "d".repeat(10 * 1024);
    ok(
        &e.app,
        &p,
        "acme",
        "update_function",
        json!({"service": "tools", "name": "big", "description": d_ok}),
    )
    .await;
    let x = err(
        &e.app,
        &p,
        "acme",
        "update_function",
        json!({"service": "tools", "name": "big", "description": format!("{d_ok}d")}),
    )
    .await;
    assert_eq!(
        x.message,
        "description is 10241 bytes; the limit is 10240 bytes (10 KiB) — make it smaller"
    );

    // A schema of exactly 50 KiB of compact JSON passes; one byte more fails.
    let base = json!({"type": "object", "description": ""})
        .to_string()
        .len();
    let s_ok = json!({"type": "object", "description": "x".repeat(50 * 1024 - base)});
    assert_eq!(s_ok.to_string().len(), 50 * 1024);
    ok(
        &e.app,
        &p,
        "acme",
        "update_function",
        json!({"service": "tools", "name": "big", "input_schema": s_ok}),
    )
    .await;
    let s_big = json!({"type": "object", "description": "x".repeat(50 * 1024 - base + 1)});
    let x = err(
        &e.app,
        &p,
        "acme",
        "update_function",
        json!({"service": "tools", "name": "big", "output_schema": s_big}),
    )
    .await;
    assert_eq!(
        x.message,
        "output_schema is 51201 bytes; the limit is 51200 bytes (50 KiB) — make it smaller"
    );
}

#[tokio::test]
async fn versioning_follows_the_seed_rules() {
    let e = env();
    let (p, _) = account(&e.app, "a@x.io", ALL, None);
    seed(&e.app, &p).await;
    let up = |a: Value| {
        let mut base = json!({"service": "tools", "name": "hello"});
        if let (Value::Object(b), Value::Object(x)) = (&mut base, a) {
            b.extend(x);
        }
        base
    };
    let v = ok(
        &e.app,
        &p,
        "acme",
        "update_function",
        up(json!({"description": "Says hi", "tags": ["x"]})),
    )
    .await;
    assert_eq!(
        (v["version"].clone(), v["new_version"].clone()),
        (json!(1), json!(false))
    );
    let v = ok(
        &e.app,
        &p,
        "acme",
        "update_function",
        up(json!({"code": "result = 2"})),
    )
    .await;
    assert_eq!(
        (
            v["version"].clone(),
            v["previous_version"].clone(),
            v["new_version"].clone()
        ),
        (json!(2), json!(1), json!(true))
    );
    let v = ok(
        &e.app,
        &p,
        "acme",
        "update_function",
        up(json!({"code": "result = 2"})),
    )
    .await;
    assert_eq!(
        (v["version"].clone(), v["changed"].clone()),
        (json!(2), json!(false))
    );
    let v = ok(
        &e.app,
        &p,
        "acme",
        "update_function",
        up(json!({"config": {"a": 1}})),
    )
    .await;
    assert_eq!(v["version"], 3);
    let v = ok(
        &e.app,
        &p,
        "acme",
        "update_function",
        up(json!({"requirements": ["httpx"]})),
    )
    .await;
    assert_eq!(v["version"], 4);
    let v = ok(
        &e.app,
        &p,
        "acme",
        "update_function",
        up(json!({"input_schema": {"type": "object"}})),
    )
    .await;
    assert_eq!(v["version"], 5);
    let v = ok(
        &e.app,
        &p,
        "acme",
        "update_function",
        up(json!({"restore_version": 1})),
    )
    .await;
    assert_eq!(v["version"], 6);
    assert_eq!(v["message"], "Restored tools.hello v1 as new version v6.");
    let d = ok(
        &e.app,
        &p,
        "acme",
        "describe_function",
        json!({"service": "tools", "name": "hello"}),
    )
    .await;
    assert!(d["code"].as_str().unwrap().contains("Hello, {name}!"));
    assert_eq!(d["description"], "Says hi");
    assert_eq!(d["tags"], json!(["x"]));
    let hist = d["versions"].as_array().unwrap();
    assert_eq!(hist.len(), 6);
    assert_eq!(hist[1]["code"], "result = 2");
    assert_eq!(hist[5]["restored_from"], 1);
    assert_eq!(hist[5]["current"], true);
    let x = err(
        &e.app,
        &p,
        "acme",
        "update_function",
        up(json!({"restore_version": 9})),
    )
    .await;
    assert_eq!(
        (x.code, x.message.as_str()),
        (
            ErrorCode::VersionNotFound,
            "Version 9 of tools.hello does not exist (versions 1-6) — see describe_function for the history"
        )
    );
    let x = err(
        &e.app,
        &p,
        "acme",
        "update_function",
        up(json!({"restore_version": 1, "code": "x"})),
    )
    .await;
    assert_eq!(x.code, ErrorCode::InvalidArgument);
    let x = err(
        &e.app,
        &p,
        "acme",
        "update_function",
        json!({"service": "tools", "name": "nope", "code": "x"}),
    )
    .await;
    assert_eq!(x.code, ErrorCode::FunctionNotFound);
    let x = err(
        &e.app,
        &p,
        "acme",
        "update_function",
        up(json!({"language": "typescript"})),
    )
    .await;
    assert_eq!(
        (x.code, x.message.as_str()),
        (
            ErrorCode::InvalidArgument,
            "update_function: changing the language to typescript needs new code — pass code written in typescript"
        )
    );
    let v = ok(
        &e.app,
        &p,
        "acme",
        "update_function",
        up(json!({"language": "typescript", "code": "export default function main() { return 1; }"})),
    )
    .await;
    assert_eq!(v["version"], 7);
}

#[tokio::test]
async fn credential_warnings_name_the_line_and_hide_the_secret() {
    let e = env();
    let (p, _) = account(&e.app, "a@x.io", ALL, None);
    seed(&e.app, &p).await;
    let code =
        "import httpx\nKEY = 'AKIAIOSFODNN7EXAMPLE'\npassword = \"hunter2hunter2\"\nresult = 1\n";
    let v = ok(
        &e.app,
        &p,
        "acme",
        "make_function",
        json!({"service": "tools", "name": "leaky", "backend": "code_sandbox", "code": code}),
    )
    .await;
    let w = v["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 2);
    assert_eq!(
        (w[0]["line"].clone(), w[0]["kind"].clone()),
        (json!(2), json!("aws_access_key"))
    );
    assert_eq!(
        (w[1]["line"].clone(), w[1]["kind"].clone()),
        (json!(3), json!("password_assignment"))
    );
    assert!(!v.to_string().contains("AKIAIOSFODNN7EXAMPLE"));
    assert!(!v.to_string().contains("hunter2hunter2"));
}

#[tokio::test]
async fn delete_service_takes_two_steps() {
    let e = env();
    let (p, _) = account(&e.app, "a@x.io", ALL, None);
    seed(&e.app, &p).await;
    let v = ok(
        &e.app,
        &p,
        "acme",
        "delete_service",
        json!({"name": "tools"}),
    )
    .await;
    assert_eq!(v["confirmation_required"], true);
    assert_eq!(v["expires_in"], 60);
    assert_eq!(v["function_count"], 1);
    let t = v["confirmation_token"].as_str().unwrap().to_owned();
    let x = err(
        &e.app,
        &p,
        "acme",
        "delete_service",
        json!({"name": "tools", "confirmation_token": "del_wrong"}),
    )
    .await;
    assert_eq!(
        (x.code, x.message.as_str()),
        (
            ErrorCode::ConfirmationInvalid,
            "The confirmation token is wrong or expired — call delete_service(name=\"tools\") without a token to get a new one"
        )
    );
    // still there
    ok(
        &e.app,
        &p,
        "acme",
        "describe_function",
        json!({"service": "tools", "name": "hello"}),
    )
    .await;
    let v = ok(
        &e.app,
        &p,
        "acme",
        "delete_service",
        json!({"name": "tools", "confirmation_token": t}),
    )
    .await;
    assert_eq!(v["functions_deleted"], 1);
    let x = err(
        &e.app,
        &p,
        "acme",
        "list_functions",
        json!({"service": "tools"}),
    )
    .await;
    assert_eq!(x.code, ErrorCode::ServiceNotFound);
    // the token is single-use
    let x = err(
        &e.app,
        &p,
        "acme",
        "delete_service",
        json!({"name": "tools", "confirmation_token": t}),
    )
    .await;
    assert_eq!(x.code, ErrorCode::ConfirmationInvalid);
    let x = err(
        &e.app,
        &p,
        "acme",
        "delete_service",
        json!({"name": "tools"}),
    )
    .await;
    assert_eq!(x.code, ErrorCode::ServiceNotFound);
    // a re-made service starts empty
    ok(&e.app, &p, "acme", "make_service", json!({"name": "tools"})).await;
    let v = ok(
        &e.app,
        &p,
        "acme",
        "list_functions",
        json!({"service": "tools"}),
    )
    .await;
    assert_eq!(v["count"], 0);
}

/// Every tool, with arguments that would succeed for the owner.
fn every_tool() -> Vec<(&'static str, Value)> {
    vec![
        ("make_namespace", json!({"name": "acme"})),
        ("list_namespaces", json!({})),
        ("make_service", json!({"name": "other"})),
        ("list_services", json!({})),
        ("delete_service", json!({"name": "tools"})),
        (
            "make_function",
            json!({"service": "tools", "name": "g", "backend": "code_sandbox", "code": "result = 1"}),
        ),
        (
            "update_function",
            json!({"service": "tools", "name": "hello", "code": "result = 3"}),
        ),
        (
            "delete_function",
            json!({"service": "tools", "name": "hello"}),
        ),
        ("list_functions", json!({"service": "tools"})),
        (
            "describe_function",
            json!({"service": "tools", "name": "hello"}),
        ),
        ("list_packages", json!({})),
        ("list_templates", json!({})),
        ("describe_template", json!({"name": "hello-world"})),
    ]
}

#[tokio::test]
async fn another_account_never_sees_or_changes_a_namespace() {
    let e = env();
    let (a, _) = account(&e.app, "a@x.io", ALL, None);
    let (b, _) = account(&e.app, "b@x.io", ALL, None);
    seed(&e.app, &a).await;
    let before = e.app.committed_seq();
    let x = e.app.authorize(&b, Endpoint::Create, "acme").unwrap_err();
    assert_eq!(
        (x.code, x.message.as_str()),
        (
            ErrorCode::NamespaceDenied,
            "You have no access to namespace 'acme' — use a namespace of your account"
        )
    );
    assert_eq!(
        e.app.authorize(&b, Endpoint::Run, "acme").unwrap_err().code,
        ErrorCode::NamespaceDenied
    );
    for (tool, a_) in every_tool() {
        let x = err(&e.app, &b, "acme", tool, a_).await;
        assert_eq!(x.code, ErrorCode::NamespaceDenied, "{tool}: {}", x.message);
    }
    // From its own namespace, b cannot take acme's name, and lists only its own.
    ok(&e.app, &b, "bns", "make_namespace", json!({"name": "bns"})).await;
    let x = err(&e.app, &b, "bns", "make_namespace", json!({"name": "acme"})).await;
    assert_eq!(x.code, ErrorCode::AlreadyExists);
    let v = ok(&e.app, &b, "bns", "list_namespaces", json!({})).await;
    assert_eq!(v["namespaces"].as_array().unwrap().len(), 1);
    assert_eq!(v["namespaces"][0]["name"], "bns");
    // Nothing of a's changed.
    let d = ok(
        &e.app,
        &a,
        "acme",
        "describe_function",
        json!({"service": "tools", "name": "hello"}),
    )
    .await;
    assert_eq!(d["current_version"], 1);
    assert_eq!(
        e.app.committed_seq(),
        before + 1,
        "only b's own namespace was logged"
    );
}

#[tokio::test]
async fn a_bound_key_reaches_only_its_namespace() {
    let e = env();
    let (a, _) = account(&e.app, "a@x.io", ALL, None);
    seed(&e.app, &a).await;
    ok(
        &e.app,
        &a,
        "other",
        "make_namespace",
        json!({"name": "other"}),
    )
    .await;
    ok(
        &e.app,
        &a,
        "other",
        "make_service",
        json!({"name": "tools"}),
    )
    .await;
    let (bound, _) = account(&e.app, "a@x.io", ALL, Some("acme"));
    assert_eq!(e.app.authorize(&bound, Endpoint::Create, "acme"), Ok(()));
    let x = e
        .app
        .authorize(&bound, Endpoint::Create, "other")
        .unwrap_err();
    assert_eq!(
        (x.code, x.message.as_str()),
        (
            ErrorCode::NamespaceDenied,
            "This API key is bound to namespace 'acme' and cannot reach 'other'"
        )
    );
    for (tool, a_) in every_tool() {
        let x = err(&e.app, &bound, "other", tool, a_).await;
        assert_eq!(x.code, ErrorCode::NamespaceDenied, "{tool}");
    }
    let x = err(
        &e.app,
        &bound,
        "acme",
        "make_namespace",
        json!({"name": "third"}),
    )
    .await;
    assert_eq!(
        (x.code, x.message.as_str()),
        (
            ErrorCode::NamespaceDenied,
            "This API key is bound to namespace 'acme' and cannot create namespace 'third'"
        )
    );
    let v = ok(&e.app, &bound, "acme", "list_namespaces", json!({})).await;
    assert_eq!(v["namespaces"].as_array().unwrap().len(), 1);
    ok(
        &e.app,
        &bound,
        "acme",
        "describe_function",
        json!({"service": "tools", "name": "hello"}),
    )
    .await;
}

#[tokio::test]
async fn scopes_gate_tools_and_endpoints() {
    let e = env();
    let (a, _) = account(&e.app, "a@x.io", ALL, None);
    seed(&e.app, &a).await;
    let (ro, _) = account(&e.app, "a@x.io", &[Scope::Read], None);
    let (ex, _) = account(&e.app, "a@x.io", &[Scope::Execute], None);
    ok(&e.app, &ro, "acme", "list_services", json!({})).await;
    let x = err(&e.app, &ro, "acme", "make_service", json!({"name": "s2"})).await;
    assert_eq!(
        (x.code, x.message.as_str()),
        (
            ErrorCode::ScopeDenied,
            "make_service needs the 'write' scope, which this API key lacks — create a key with it (POST /v1/auth/api-keys)"
        )
    );
    for (tool, a_) in every_tool() {
        let x = err(&e.app, &ex, "acme", tool, a_).await;
        assert_eq!(x.code, ErrorCode::ScopeDenied, "{tool}");
    }
    assert_eq!(
        e.app
            .authorize(&ro, Endpoint::Run, "acme")
            .unwrap_err()
            .code,
        ErrorCode::ScopeDenied
    );
    assert_eq!(
        e.app
            .authorize(&ex, Endpoint::Create, "acme")
            .unwrap_err()
            .code,
        ErrorCode::ScopeDenied
    );
    assert_eq!(e.app.authorize(&ex, Endpoint::Run, "acme"), Ok(()));
    let x = e.app.authorize(&ex, Endpoint::Run, "ghost").unwrap_err();
    assert_eq!(x.code, ErrorCode::NamespaceNotFound);
    assert_eq!(e.app.authorize(&ro, Endpoint::Create, "ghost"), Ok(()));
    let names: Vec<String> = e
        .app
        .create_tools(&ro, "acme")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(
        names.len(),
        16 + paddock_edge::tools::mcp_servers::TOOLS.len()
    );
    assert!(!names.contains(&"set_account_tier".to_owned()));
}

#[tokio::test]
async fn replication_log_carries_only_what_workers_need() {
    let e = env();
    let (p, raw) = account(&e.app, "a@x.io", ALL, None);
    assert_eq!(
        e.app.committed_seq(),
        0,
        "accounts and keys are not replicated"
    );
    seed(&e.app, &p).await;
    ok(
        &e.app,
        &p,
        "acme",
        "update_function",
        json!({"service": "tools", "name": "hello", "code": "result = 5"}),
    )
    .await;
    ok(
        &e.app,
        &p,
        "acme",
        "update_function",
        json!({"service": "tools", "name": "hello", "description": "d"}),
    )
    .await;
    ok(
        &e.app,
        &p,
        "acme",
        "delete_function",
        json!({"service": "tools", "name": "hello"}),
    )
    .await;
    assert_eq!(e.app.committed_seq(), 6);
    let entries = e.app.replication().read_from(1, 100).unwrap();
    let kinds: Vec<String> = entries
        .iter()
        .map(|en| match &en.op {
            ReplOp::PutNamespace(_) => "ns".into(),
            ReplOp::PutService(_) => "svc".into(),
            ReplOp::DeleteService { .. } => "-svc".into(),
            ReplOp::PutFunction { version, .. } => {
                format!("fn:{}", version.as_ref().map_or(0, |v| v.version))
            }
            ReplOp::DeleteFunction { .. } => "-fn".into(),
            ReplOp::PutRemoteServer(_) => "mcp".into(),
            ReplOp::DeleteRemoteServer { .. } => "-mcp".into(),
        })
        .collect();
    assert_eq!(kinds, ["ns", "svc", "fn:1", "fn:2", "fn:0", "-fn"]);
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    // No key material anywhere in the log.
    let key_rec = e.app.store().keys_of(&p.account_id).unwrap().remove(0);
    for (_, v) in e
        .app
        .store()
        .tree(paddock_edge::store::T::Repl)
        .iter()
        .flatten()
    {
        let bytes = v.to_vec();
        assert!(
            !bytes
                .windows(key_rec.digest.len())
                .any(|w| w == key_rec.digest.as_slice())
        );
        assert!(!String::from_utf8_lossy(&bytes).contains(&raw));
    }
}

#[tokio::test]
async fn state_survives_reopen_and_the_admin_key_is_made_once() {
    let dir = tempfile::tempdir().unwrap();
    let admin_key;
    {
        let (app, key) = App::open(AppConfig::new(dir.path())).unwrap();
        admin_key = key.unwrap();
        let file = std::fs::read_to_string(dir.path().join("admin.key")).unwrap();
        assert_eq!(file.trim(), admin_key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in ["admin.key", "key.pepper", "jwt.secret"] {
                let mode = std::fs::metadata(dir.path().join(f))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }
        let p = app.authenticate(&admin_key).unwrap();
        assert!(p.is_admin);
        assert_eq!(p.tier, Tier::Enterprise);
        assert_eq!(p.scopes, vec![Scope::Read, Scope::Write, Scope::Execute]);
        seed(&app, &p).await;
        let (u, _) = account(&app, "u@x.io", ALL, None);
        assert_eq!(u.tier, Tier::Free);
        let v = ok(
            &app,
            &p,
            "acme",
            "set_account_tier",
            json!({"email": "u@x.io", "tier": "pro"}),
        )
        .await;
        assert_eq!(v["tier"], "pro");
        // dropped without shutdown(): writes were flushed before each reply
    }
    // sled's background threads may hold the dropped handle's lock for a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (app, key) = loop {
        match App::open(AppConfig::new(dir.path())) {
            Ok(opened) => break opened,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("cannot reopen: {e}"),
        }
    };
    assert_eq!(key, None);
    let p = app.authenticate(&admin_key).unwrap();
    let d = ok(
        &app,
        &p,
        "acme",
        "describe_function",
        json!({"service": "tools", "name": "hello"}),
    )
    .await;
    assert_eq!(d["current_version"], 1);
    assert_eq!(app.committed_seq(), 3);
    assert_eq!(
        app.store()
            .account_by_email("u@x.io")
            .unwrap()
            .unwrap()
            .tier,
        Tier::Pro
    );
    app.shutdown();
}

#[tokio::test]
async fn authentication_errors_say_what_was_wrong_and_checks_are_fast() {
    let e = env();
    let (_, raw) = account(&e.app, "a@x.io", ALL, None);
    let x = e.app.authenticate("nope").unwrap_err();
    assert_eq!(
        (x.code, x.message.as_str()),
        (
            ErrorCode::AuthenticationFailed,
            "Authentication failed: malformed API key: keys start with 'pdk_' followed by 64 hex characters"
        )
    );
    let x = e
        .app
        .authenticate(&format!("pdk_{}", "0".repeat(64)))
        .unwrap_err();
    assert_eq!(
        x.message,
        "Authentication failed: unknown API key — check the key, or create one with POST /v1/auth/api-keys"
    );
    let id = e.app.store().keys_of("acc_a_x_io").unwrap()[0].id.clone();
    // Expired key.
    let (old, _) = e
        .app
        .create_key("acc_a_x_io", "old", vec![Scope::Read], None, Some(1))
        .unwrap();
    let x = e.app.authenticate(&old).unwrap_err();
    assert!(
        x.message
            .starts_with("Authentication failed: API key 'old' (pdk_"),
        "{}",
        x.message
    );
    assert!(x.message.ends_with(") has expired — create a new key"));
    // Cost of a check: HMAC + two sled reads.
    let n = 2000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        e.app.authenticate(&raw).unwrap();
    }
    let per = t.elapsed() / n;
    eprintln!(
        "authenticate: {per:?} per check ({} build)",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    assert!(per < std::time::Duration::from_millis(1), "{per:?}");
    e.app.store().revoke_key("acc_a_x_io", &id, 5).unwrap();
    let x = e.app.authenticate(&raw).unwrap_err();
    assert!(
        x.message.ends_with(") was revoked — create a new key"),
        "{}",
        x.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_get_a_gapless_log_and_one_winner_per_name() {
    let e = env();
    let (p, _) = account(&e.app, "a@x.io", ALL, None);
    ok(
        &e.app,
        &p,
        "acme",
        "make_namespace",
        json!({"name": "acme"}),
    )
    .await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (app, p) = (e.app.clone(), p.clone());
        tasks.push(tokio::spawn(async move {
            let own = call(
                &app,
                &p,
                "acme",
                "make_service",
                json!({"name": format!("s{i}")}),
            )
            .await;
            let shared = call(&app, &p, "acme", "make_service", json!({"name": "same"})).await;
            (own.is_ok(), shared.map_err(|e| e.code))
        }));
    }
    let mut winners = 0;
    for t in tasks {
        let (own, shared) = t.await.unwrap();
        assert!(own);
        match shared {
            Ok(_) => winners += 1,
            Err(code) => assert_eq!(code, ErrorCode::AlreadyExists),
        }
    }
    assert_eq!(winners, 1);
    let seqs: Vec<u64> = e
        .app
        .replication()
        .read_from(1, 1000)
        .unwrap()
        .iter()
        .map(|en| en.seq)
        .collect();
    assert_eq!(seqs, (1..=18).collect::<Vec<u64>>());
    assert_eq!(e.app.committed_seq(), 18);
    let snap = e.app.replication_snapshot().unwrap();
    assert_eq!((snap.seq, snap.services.len()), (18, 17));
}
