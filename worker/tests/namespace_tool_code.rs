//! `package::tool_call_code` on its own: the snippet names the function by its original
//! names, quoted safely for Python and for the TypeScript transform.

use std::process::Command;

use paddock_shared::model::Language;
use paddock_worker::package::tool_call_code;

#[test]
fn python_snippet_quotes_names_and_compiles() {
    let code = tool_call_code(Language::Python, "my-tools", "say\"hi\u{2028}");
    assert!(
        code.contains(r#"call_by_name("my-tools", "say\"hi\u2028", input_data)"#),
        "{code}"
    );
    assert!(code.starts_with("import functions"), "{code}");
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys; compile(sys.argv[1], '<tool>', 'exec')",
            &code,
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn typescript_snippet_transforms() {
    let code = tool_call_code(Language::TypeScript, "tools", "shout");
    assert!(
        code.contains(r#"callByName("tools", "shout", input)"#),
        "{code}"
    );
    let js = paddock_worker::typescript::transform(&code).expect("transform");
    assert!(js.contains("require(\"./functions/_runtime.js\")"), "{js}");
}
