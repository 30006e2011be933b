//! Typed access to a tool's JSON arguments, with `INVALID_ARGUMENT` errors that name the
//! argument, the expected type and the tool.

use paddock_shared::ErrorCode;
use serde_json::{Map, Value};

use crate::app::ApiError;

/// The arguments of one tool call.
pub struct Args<'a> {
    tool: &'a str,
    map: Map<String, Value>,
}

fn bad(tool: &str, msg: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidArgument, format!("{tool}: {msg}"))
}

impl<'a> Args<'a> {
    /// Wraps the arguments, refusing names the tool does not take.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` listing the accepted names.
    pub fn new(
        tool: &'a str,
        map: Map<String, Value>,
        accepted: &[&str],
    ) -> Result<Self, ApiError> {
        if let Some(k) = map.keys().find(|k| !accepted.contains(&k.as_str())) {
            let list = if accepted.is_empty() {
                "none".to_owned()
            } else {
                accepted.join(", ")
            };
            return Err(bad(
                tool,
                format!("unknown argument '{k}'; accepted arguments: {list}"),
            ));
        }
        Ok(Args { tool, map })
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// Whether an argument was given (and is not null).
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A required string.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` when missing or not a string.
    pub fn req_str(&self, name: &str) -> Result<String, ApiError> {
        self.opt_str(name)?.ok_or_else(|| {
            bad(
                self.tool,
                format!("missing required argument '{name}' (a string)"),
            )
        })
    }

    /// An optional string.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` when not a string.
    pub fn opt_str(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(bad(
                self.tool,
                format!("argument '{name}' must be a string, got {}", kind(other)),
            )),
        }
    }

    /// An optional list of strings (a single string is accepted as a list of one).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` when not a list of strings.
    pub fn opt_str_list(&self, name: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(bad(
                        self.tool,
                        format!(
                            "argument '{name}' must be a list of strings, found an item of type {}",
                            kind(other)
                        ),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(bad(
                self.tool,
                format!(
                    "argument '{name}' must be a list of strings, got {}",
                    kind(other)
                ),
            )),
        }
    }

    /// An optional JSON object; a string holding a JSON object is accepted too.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` when not an object.
    pub fn opt_object(&self, name: &str) -> Result<Option<Value>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(v @ Value::Object(_)) => Ok(Some(v)),
                _ => Err(bad(
                    self.tool,
                    format!("argument '{name}' must be a JSON object"),
                )),
            },
            Some(other) => Err(bad(
                self.tool,
                format!(
                    "argument '{name}' must be a JSON object, got {}",
                    kind(other)
                ),
            )),
        }
    }

    /// An optional positive integer.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` when not a positive integer that fits in u32.
    pub fn opt_u32(&self, name: &str) -> Result<Option<u32>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0)
                .map(Some)
                .ok_or_else(|| {
                    bad(
                        self.tool,
                        format!("argument '{name}' must be a positive integer"),
                    )
                }),
        }
    }
}

/// The JSON type name of a value, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
