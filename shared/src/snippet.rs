//! Generated code snippets both daemons agree on: [`tool_call_code`], the code of a
//! tool-mode call (the edge sends it, the worker's functions package runs it).

use crate::model::Language;

/// Code that runs function `service.function` (original names) of the execution's
/// namespace with the execution's `input_data` as its arguments, and returns its value:
/// what the edge sends as the code of a tool-mode call. It imports the `functions`
/// package, so the call is recorded in the result's `calls`.
pub fn tool_call_code(language: Language, service: &str, function: &str) -> String {
    let (service, function) = (json_str(service), json_str(function));
    match language {
        Language::Python => format!(
            "import functions as _functions\n\
             result = _functions._runtime.call_by_name({service}, {function}, input_data)\n"
        ),
        Language::TypeScript => format!(
            "const __paddock_functions = require(\"./functions/_runtime.js\");\n\
             export default function (input: any) {{\n  \
             return __paddock_functions.callByName({service}, {function}, input);\n}}\n"
        ),
    }
}

/// A string literal valid in Python and JavaScript (JSON text, with the line separators
/// escaped too).
fn json_str(text: &str) -> String {
    serde_json::Value::String(text.to_owned())
        .to_string()
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_literals() {
        let py = tool_call_code(Language::Python, "svc", "say\"hi");
        assert!(py.contains(r#"call_by_name("svc", "say\"hi", input_data)"#));
        let ts = tool_call_code(Language::TypeScript, "svc", "f\u{2028}");
        assert!(ts.contains(r#"callByName("svc", "f\u2028", input)"#));
    }
}
