//! Code mode: the one listed tool `execute` (plus the unlisted `execute_python` and
//! `execute_typescript` call names) and the checks that turn its arguments into an
//! [`ExecutionRequest`] before any worker is involved.

use paddock_shared::ErrorCode;
use paddock_shared::exec::{ExecutionRequest, MAX_CODE_BYTES, MAX_INPUT_BYTES};
use paddock_shared::model::Language;
use serde_json::{Map, Value, json};

use crate::app::{ApiError, ToolDef};

/// The listed code-mode tool.
pub const EXECUTE: &str = "execute";
/// Call names accepted for compatibility (not listed), with the language they force.
pub const ALIASES: [(&str, Language); 2] = [
    ("execute_python", Language::Python),
    ("execute_typescript", Language::TypeScript),
];

const DESCRIPTION: &str = "Run Python or TypeScript in a sandbox next to this namespace's functions; \
set `result` (Python) or return a value / export default main(input) (TypeScript). \
Discover functions first: Python `import functions; print(functions.__doc__)` \
(then `from functions import name`), TypeScript `const functions = require(\"./functions\")`. \
`input` arrives as `input_data` (Python) or the default export's argument; stdout is returned.";

/// The `execute` tool definition.
pub fn tool() -> ToolDef {
    ToolDef {
        name: EXECUTE.to_owned(),
        description: DESCRIPTION.to_owned(),
        input_schema: json!({
            "type": "object",
            "properties": {
                "code": { "type": "string", "description": "Source code (≤ 100 KiB)" },
                "language": { "type": "string", "enum": ["python", "typescript"], "description": "Default python" },
                "input": { "type": "object", "description": "Input document: input_data in Python, the argument of main in TypeScript" },
                "timeoutMs": { "type": "integer", "minimum": 1, "description": "Wall timeout in ms; may shorten, never lengthen, your tier's timeout" },
            },
            "required": ["code"],
        }),
    }
}

/// The language a call name forces, if it is a code-mode name at all
/// (`Some(None)`: `execute`, language from the arguments).
pub fn call_name(tool: &str) -> Option<Option<Language>> {
    if tool == EXECUTE {
        return Some(None);
    }
    ALIASES
        .iter()
        .find(|(n, _)| *n == tool)
        .map(|(_, l)| Some(*l))
}

fn bad(msg: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidArgument, msg)
}

/// What a code-mode call asked for, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeCall {
    pub language: Language,
    pub code: String,
    pub input_json: String,
    pub timeout_ms: Option<u64>,
}

/// Checks the arguments of a code-mode call.
///
/// # Errors
/// `NO_CODE_PROVIDED`, `INPUT_TOO_LARGE`, `UNSUPPORTED_LANGUAGE`, `INVALID_ARGUMENT`.
pub fn parse(forced: Option<Language>, args: &Map<String, Value>) -> Result<CodeCall, ApiError> {
    let code = match args.get("code") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(bad(format!(
                "execute: argument 'code' must be a string, got {}",
                crate::tools::args::kind(other)
            )));
        }
    };
    let Some(code) = code.filter(|c| !c.trim().is_empty()) else {
        return Err(ApiError::new(
            ErrorCode::NoCodeProvided,
            "execute: no code given — pass the source in 'code', e.g. \
             {\"code\": \"import functions; print(functions.__doc__)\"}",
        ));
    };
    if code.len() > MAX_CODE_BYTES {
        return Err(ApiError::new(
            ErrorCode::InputTooLarge,
            format!(
                "execute: code is {} bytes, over the {MAX_CODE_BYTES}-byte limit — move logic into functions (make_function) and call them",
                code.len()
            ),
        ));
    }
    let language = match (forced, args.get("language")) {
        (Some(l), _) => l,
        (None, None | Some(Value::Null)) => Language::Python,
        (None, Some(Value::String(s))) => Language::parse(&s.to_ascii_lowercase()).ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnsupportedLanguage,
                format!("execute: language {s:?} is not supported — use \"python\" or \"typescript\""),
            )
        })?,
        (None, Some(other)) => {
            return Err(bad(format!(
                "execute: argument 'language' must be \"python\" or \"typescript\", got {}",
                crate::tools::args::kind(other)
            )));
        }
    };
    let input = match args.get("input").or_else(|| args.get("input_data")) {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(other) => {
            return Err(bad(format!(
                "execute: argument 'input' must be a JSON object, got {}",
                crate::tools::args::kind(other)
            )));
        }
    };
    let input_json = input.to_string();
    if input_json.len() > MAX_INPUT_BYTES {
        return Err(ApiError::new(
            ErrorCode::InputTooLarge,
            format!(
                "execute: input is {} bytes, over the {MAX_INPUT_BYTES}-byte limit — pass less data",
                input_json.len()
            ),
        ));
    }
    let timeout_ms = match args.get("timeoutMs").or_else(|| args.get("timeout_ms")) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
            bad("execute: argument 'timeoutMs' must be a positive integer (milliseconds)".into())
        })?),
    };
    Ok(CodeCall {
        language,
        code,
        input_json,
        timeout_ms,
    })
}

impl CodeCall {
    /// The request for a worker.
    pub fn into_request(self, execution_id: String, ns: &str, profile: &str) -> ExecutionRequest {
        ExecutionRequest {
            execution_id,
            namespace: ns.to_owned(),
            profile: profile.to_owned(),
            language: self.language,
            code: self.code,
            input_json: self.input_json,
            timeout_ms: self.timeout_ms,
        }
    }
}
