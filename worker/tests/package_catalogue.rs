//! Catalogue text and identifier rules (golden), compactness, digests and the package
//! cache; the tricky names are also imported by the real interpreters.

mod package_support;

use std::cell::Cell;
use std::convert::Infallible;

use package_support::{NAMESPACE, function, node, python, sample, write};
use paddock_shared::model::Language::{self, Python, TypeScript};
use paddock_worker::package::{PackageCache, generate};
use serde_json::json;

/// Names that clash: a reserved top-level name, keywords, `a-b` vs `a_b`, one short name
/// in two services, a function named like a service, a name starting with a digit, and
/// descriptions that need escaping or cutting.
fn tricky() -> Vec<(
    paddock_shared::model::FunctionRecord,
    paddock_shared::model::VersionRecord,
)> {
    let code = "def main(input_data):\n    return __name__\n";
    vec![
        function("1st", "class", "Keyword name", Python, 1, None, code),
        function("alpha", "a-b", "Hyphen", Python, 1, None, code),
        function("alpha", "a_b", "Underscore", Python, 1, None, code),
        function(
            "alpha",
            "beta",
            "Named like a service",
            Python,
            1,
            None,
            code,
        ),
        function(
            "alpha",
            "hello",
            "Ends with a quote \"",
            Python,
            1,
            Some(r#"{"properties":{"zeta":{},"alpha":{},"mid":{}},"required":["mid","ghost"]}"#),
            code,
        ),
        function(
            "beta",
            "hello",
            "Back\\slash \"\"\" and */ too",
            Python,
            1,
            None,
            code,
        ),
        function(
            "search",
            "find",
            "Multi\nline\tdescription that is rather long and keeps going well past the limit of one hundred characters, surely",
            Python,
            1,
            Some("not json"),
            code,
        ),
        function(
            "search",
            "none-props",
            "",
            Python,
            1,
            Some(r#"{"properties":[1]}"#),
            code,
        ),
    ]
}

const TRICKY_PYTHON: &str = "\
Namespace demo: 8 functions. Use: from functions import NAME; NAME(arg=...). Find more: functions.search(\"words\"), functions.describe(\"NAME\").
[Services]
[_1st]
class_(**kwargs) — Keyword name
[alpha]
a_b(**kwargs) — Hyphen
a_b_2(**kwargs) — Underscore
alpha.beta(**kwargs) — Named like a service
alpha.hello(mid, ghost, zeta=None, alpha=None) — Ends with a quote \"
[beta]
beta.hello(**kwargs) — Back\\slash \"\"\" and */ too
[search_]
find(**kwargs) — Multi line description that is rather long and keeps going well past the limit…
none_props(**kwargs)
[RemoteMCP]
none
";

#[test]
fn tricky_names_golden_catalogue() {
    let p = generate(NAMESPACE, &tricky(), Python);
    assert_eq!(p.catalogue, TRICKY_PYTHON);
    let js = generate(NAMESPACE, &tricky(), TypeScript);
    assert!(
        js.catalogue
            .contains("alpha.hello({mid, ghost, zeta?, alpha?}) — Ends with a quote \"\n"),
        "{}",
        js.catalogue
    );
}

#[test]
fn tricky_names_import_in_python() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(&generate(NAMESPACE, &tricky(), Python), dir.path());
    let run = python(
        dir.path(),
        r#"
import json
import functions
from functions import class_, a_b, a_b_2, find, none_props
out = {
    "doc": functions.__doc__,
    "names": [class_(), a_b(), a_b_2(), find(), none_props(),
              functions.alpha.beta(), functions.alpha.hello(mid=1, ghost=2), functions.beta.hello()],
    "top_hello": hasattr(functions, "hello"),
    "search_is_api": callable(functions.search) and functions.search_.find is find,
    "all": sorted(functions.__all__),
}
print(json.dumps(out))
"#,
    );
    let v = run.json();
    assert_eq!(v["doc"], json!(TRICKY_PYTHON));
    assert_eq!(
        v["names"],
        json!([
            "functions._1st.class_",
            "functions.alpha.a_b",
            "functions.alpha.a_b_2",
            "functions.search_.find",
            "functions.search_.none_props",
            "functions.alpha.beta",
            "functions.alpha.hello",
            "functions.beta.hello"
        ])
    );
    assert_eq!(v["top_hello"], json!(false));
    assert_eq!(v["search_is_api"], json!(true));
    assert_eq!(
        v["all"],
        json!([
            "FunctionCallError",
            "RemoteBlocked",
            "RemoteBudgetExceeded",
            "RemoteTimeout",
            "RemoteToolError",
            "RemoteToolFailed",
            "RemoteUnavailable",
            "_1st",
            "a_b",
            "a_b_2",
            "alpha",
            "beta",
            "class_",
            "describe",
            "find",
            "last_remote_call",
            "none_props",
            "search",
            "search_"
        ])
    );
}

#[test]
fn tricky_names_require_in_node() {
    let mut functions = tricky();
    for (_, v) in &mut functions {
        v.language = TypeScript;
        v.code = "export default function () { return module.id.split(\"/\").pop(); }\n".into();
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let package = generate(NAMESPACE, &functions, TypeScript);
    write(&package, dir.path());
    let run = node(
        dir.path(),
        r#"
const f = require("./functions");
const { class_, a_b_2 } = f;
console.log(JSON.stringify({
  doc: f.__doc__,
  names: [class_(), a_b_2(), f.alpha.hello({ mid: 1, ghost: 2 }), f.beta.hello(), f.search_.find()],
  top_hello: "hello" in f,
}));
"#,
    );
    let v = run.json();
    assert_eq!(v["doc"], json!(package.catalogue));
    assert_eq!(
        v["names"],
        json!([
            "_1st__class_.js",
            "alpha__a_b_2.js",
            "alpha__hello.js",
            "beta__hello.js",
            "search___find.js"
        ])
    );
    assert_eq!(v["top_hello"], json!(false));
}

#[test]
fn thirty_functions_fit_the_token_budget() {
    let services = ["billing", "crm-sync", "reports", "notifications"];
    let descriptions = [
        "Create an invoice for an account",
        "List unpaid invoices since a date",
        "Sync contacts from the CRM",
        "Summarise weekly revenue by plan",
        "Send a Slack message to a channel",
        "Look up a customer by email address",
    ];
    let mut functions = Vec::new();
    for i in 0..30 {
        let service = services[i % services.len()];
        functions.push(function(
            service,
            &format!("do-task-{i:02}"),
            descriptions[i % descriptions.len()],
            Python,
            1,
            Some(r#"{"properties":{"account_id":{},"since":{},"limit":{}},"required":["account_id"]}"#),
            "result = 1\n",
        ));
    }
    functions.sort_by(|a, b| (&a.0.service, &a.0.name).cmp(&(&b.0.service, &b.0.name)));
    for language in Language::ALL {
        let text = generate(NAMESPACE, &functions, language).catalogue;
        // ~4 characters per token for English and code.
        let chars = text.chars().count();
        assert!(chars / 4 < 800, "{chars} chars:\n{text}");
        assert_eq!(
            text.lines().count(),
            1 + 1 + services.len() + 30 + 2,
            "{text}"
        );
    }
}

#[test]
fn digest_is_stable_and_follows_content() {
    let a = generate(NAMESPACE, &sample(), Python);
    let b = generate(NAMESPACE, &sample(), Python);
    assert_eq!(a, b);
    assert_eq!(a.digest.len(), 64);
    let mut changed = sample();
    changed[1].1.code.push_str("# v3\n");
    assert_ne!(generate(NAMESPACE, &changed, Python).digest, a.digest);
    assert_ne!(generate(NAMESPACE, &sample(), TypeScript).digest, a.digest);
    assert!(a.files.contains_key("functions/_code/greetings__hello.py"));
    assert!(
        !a.files
            .keys()
            .any(|k| k.starts_with("functions/_code/ts_tools__"))
    );
}

#[test]
fn empty_namespace_has_an_empty_catalogue() {
    let p = generate("empty", &[], Python);
    assert_eq!(
        p.catalogue,
        "Namespace empty: 0 functions. Use: from functions import NAME; NAME(arg=...). Find more: \
         functions.search(\"words\"), functions.describe(\"NAME\").\n[Services]\nnone\n[RemoteMCP]\nnone\n"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    write(&p, dir.path());
    let run = python(
        dir.path(),
        "import json, functions\nprint(json.dumps([functions.search('x'), functions._calls]))\n",
    );
    assert_eq!(run.json(), json!([[], []]));
}

#[test]
fn cache_hits_generate_once_and_evict_the_least_recently_used() {
    let cache = PackageCache::new(2);
    let loads = Cell::new(0);
    let load = || {
        loads.set(loads.get() + 1);
        Ok::<_, Infallible>((1, sample()))
    };
    let first = cache.get_or_generate("a", 1, Python, load).expect("load");
    let again = cache.get_or_generate("a", 1, Python, load).expect("load");
    assert!(std::sync::Arc::ptr_eq(&first, &again));
    assert_eq!(loads.get(), 1);

    cache
        .get_or_generate("a", 1, TypeScript, load)
        .expect("load");
    assert_eq!(loads.get(), 2);
    assert!(cache.get("a", 1, Python).is_some()); // touch: TypeScript is now the oldest
    let load2 = || Ok::<_, Infallible>((2, sample()));
    cache.get_or_generate("a", 2, Python, load2).expect("load");
    assert_eq!(cache.len(), 2);
    assert!(cache.get("a", 1, TypeScript).is_none());
    assert!(cache.get("a", 1, Python).is_some());
    assert!(cache.get("a", 2, Python).is_some());

    // Cached under the stamp the functions were read at, not the one asked for.
    let read_later = || Ok::<_, Infallible>((7, sample()));
    cache
        .get_or_generate("c", 5, Python, read_later)
        .expect("load");
    assert!(cache.get("c", 7, Python).is_some());
    assert!(cache.get("c", 5, Python).is_none());

    let failed: Result<_, &str> = cache.get_or_generate("b", 1, Python, || Err("replica"));
    assert_eq!(failed.err(), Some("replica"));
    assert!(cache.get("b", 1, Python).is_none());
}
