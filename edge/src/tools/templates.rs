//! Function templates: real, working code (files under `edge/templates/`) with input and
//! output schemas and requirements; `make_function(template=…)` uses them as defaults.

use paddock_shared::model::Language;
use serde_json::{Value, json};

/// One template.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: &'static str,
    pub description: &'static str,
    pub language: Language,
    pub code: &'static str,
    pub requirements: &'static [&'static str],
    input_schema: fn() -> Value,
    output_schema: fn() -> Value,
}

impl Template {
    /// The input schema.
    pub fn input_schema(&self) -> Value {
        (self.input_schema)()
    }

    /// The output schema.
    pub fn output_schema(&self) -> Value {
        (self.output_schema)()
    }

    /// `list_templates` entry.
    pub fn summary(&self) -> Value {
        json!({
            "name": self.name,
            "description": self.description,
            "language": self.language.as_str(),
            "requirements": self.requirements,
        })
    }

    /// `describe_template` output.
    pub fn details(&self) -> Value {
        json!({
            "name": self.name,
            "description": self.description,
            "language": self.language.as_str(),
            "requirements": self.requirements,
            "code": self.code,
            "input_schema": self.input_schema(),
            "output_schema": self.output_schema(),
            "usage": format!("make_function(service=\"…\", name=\"…\", backend=\"code_sandbox\", template=\"{}\")", self.name),
        })
    }
}

fn hello_in() -> Value {
    json!({"type": "object", "properties": {"name": {"type": "string", "description": "Who to greet (default World)"}}})
}
fn hello_out() -> Value {
    json!({"type": "object", "properties": {"greeting": {"type": "string"}}, "required": ["greeting"]})
}
fn csv_in() -> Value {
    json!({"type": "object", "properties": {
        "csv": {"type": "string", "description": "CSV text with a header row"},
        "delimiter": {"type": "string", "description": "Field delimiter (default ,)", "maxLength": 1}
    }, "required": ["csv"]})
}
fn csv_out() -> Value {
    json!({"type": "object", "properties": {
        "rows": {"type": "integer"},
        "columns": {"type": "array", "items": {"type": "string"}},
        "summary": {"type": "object", "additionalProperties": {"type": "object"}}
    }, "required": ["rows", "columns", "summary"]})
}
fn api_in() -> Value {
    json!({"type": "object", "properties": {
        "url": {"type": "string", "description": "URL to call"},
        "method": {"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"], "description": "HTTP method (default GET)"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "params": {"type": "object", "description": "Query parameters"},
        "json": {"description": "JSON body"},
        "timeout_seconds": {"type": "number", "minimum": 0.1, "maximum": 60}
    }, "required": ["url"]})
}
fn api_out() -> Value {
    json!({"type": "object", "properties": {
        "status": {"type": "integer"}, "ok": {"type": "boolean"},
        "content_type": {"type": "string"}, "body": {}
    }, "required": ["status", "ok", "body"]})
}
fn api_ts_in() -> Value {
    json!({"type": "object", "properties": {
        "url": {"type": "string", "description": "URL to call"},
        "method": {"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "body": {"description": "JSON body"},
        "timeout_seconds": {"type": "number", "minimum": 0.1, "maximum": 60}
    }, "required": ["url"]})
}
fn slack_in() -> Value {
    json!({"type": "object", "properties": {
        "webhook_url": {"type": "string", "description": "Slack incoming webhook URL (https://hooks.slack.com/…)"},
        "text": {"type": "string", "description": "Message text (Slack mrkdwn)"},
        "channel": {"type": "string"}, "username": {"type": "string"}, "icon_emoji": {"type": "string"}
    }, "required": ["webhook_url", "text"]})
}
fn slack_out() -> Value {
    json!({"type": "object", "properties": {
        "ok": {"type": "boolean"}, "status": {"type": "integer"},
        "response": {"type": "string"}, "error": {"type": "string"}
    }, "required": ["ok", "status"]})
}
fn report_in() -> Value {
    json!({"type": "object", "properties": {
        "title": {"type": "string"},
        "items": {"type": "array", "items": {"type": "object", "properties": {
            "label": {"type": "string"}, "value": {}
        }, "required": ["label"]}},
        "format": {"type": "string", "enum": ["markdown", "json"], "description": "Default markdown"}
    }, "required": ["items"]})
}
fn report_out() -> Value {
    json!({"type": "object", "properties": {
        "format": {"type": "string"}, "report": {}, "summary": {"type": "object"}
    }, "required": ["format", "report", "summary"]})
}
fn json_in() -> Value {
    json!({"type": "object", "properties": {
        "data": {"type": ["array", "object"], "description": "A record or a list of records"},
        "pick": {"type": "array", "items": {"type": "string"}, "description": "Fields to keep (default all)"},
        "rename": {"type": "object", "additionalProperties": {"type": "string"}, "description": "old name → new name"},
        "filter": {"type": "object", "properties": {"field": {"type": "string"}, "equals": {}}, "required": ["field", "equals"]}
    }, "required": ["data"]})
}
fn json_out() -> Value {
    json!({"type": "object", "properties": {
        "count": {"type": "integer"}, "data": {"type": "array", "items": {"type": "object"}}
    }, "required": ["count", "data"]})
}

/// Every template, in listing order.
pub const TEMPLATES: &[Template] = &[
    Template {
        name: "hello-world",
        description: "Greet by name; proves the system works",
        language: Language::Python,
        code: include_str!("../../templates/hello-world.py"),
        requirements: &[],
        input_schema: hello_in,
        output_schema: hello_out,
    },
    Template {
        name: "csv-analyzer",
        description: "Parse CSV text and return summary statistics per column",
        language: Language::Python,
        code: include_str!("../../templates/csv-analyzer.py"),
        requirements: &[],
        input_schema: csv_in,
        output_schema: csv_out,
    },
    Template {
        name: "api-connector",
        description: "Call an external HTTP API and return the response",
        language: Language::Python,
        code: include_str!("../../templates/api-connector.py"),
        requirements: &["httpx"],
        input_schema: api_in,
        output_schema: api_out,
    },
    Template {
        name: "slack-notifier",
        description: "Post a message to a Slack incoming webhook",
        language: Language::Python,
        code: include_str!("../../templates/slack-notifier.py"),
        requirements: &["httpx"],
        input_schema: slack_in,
        output_schema: slack_out,
    },
    Template {
        name: "scheduled-report",
        description: "Generate a Markdown or JSON report from metrics",
        language: Language::Python,
        code: include_str!("../../templates/scheduled-report.py"),
        requirements: &[],
        input_schema: report_in,
        output_schema: report_out,
    },
    Template {
        name: "hello-world-ts",
        description: "Greet by name (TypeScript)",
        language: Language::TypeScript,
        code: include_str!("../../templates/hello-world-ts.ts"),
        requirements: &[],
        input_schema: hello_in,
        output_schema: hello_out,
    },
    Template {
        name: "api-connector-ts",
        description: "Call an external HTTP API with fetch (TypeScript)",
        language: Language::TypeScript,
        code: include_str!("../../templates/api-connector-ts.ts"),
        requirements: &[],
        input_schema: api_ts_in,
        output_schema: api_out,
    },
    Template {
        name: "json-transformer-ts",
        description: "Filter, pick and rename fields of JSON records (TypeScript)",
        language: Language::TypeScript,
        code: include_str!("../../templates/json-transformer-ts.ts"),
        requirements: &[],
        input_schema: json_in,
        output_schema: json_out,
    },
];

/// A template by name.
pub fn find(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_template_has_code_and_valid_schemas() {
        assert_eq!(TEMPLATES.len(), 8);
        for t in TEMPLATES {
            assert!(!t.code.is_empty(), "{}", t.name);
            assert!(
                jsonschema::validator_for(&t.input_schema()).is_ok(),
                "{}",
                t.name
            );
            assert!(
                jsonschema::validator_for(&t.output_schema()).is_ok(),
                "{}",
                t.name
            );
            match t.language {
                Language::Python => assert!(t.code.contains("def main(input_data)"), "{}", t.name),
                Language::TypeScript => assert!(t.code.contains("export default"), "{}", t.name),
            }
        }
        assert_eq!(
            find("api-connector").map(|t| t.requirements),
            Some(&["httpx"][..])
        );
        assert!(find("nope").is_none());
    }

    /// Runs the offline Python templates with the system interpreter, the way the runner
    /// does (`main(input_data)`), and checks their results.
    #[test]
    fn python_templates_run() {
        let cases = [
            (
                "hello-world",
                r#"{"name": "Ann"}"#,
                r#"{"greeting": "Hello, Ann!"}"#,
            ),
            (
                "csv-analyzer",
                r#"{"csv": "a,b\n1,x\n3,y\n"}"#,
                r#"{"rows": 2, "columns": ["a", "b"], "summary": {"a": {"count": 2, "missing": 0, "type": "number", "min": 1.0, "max": 3.0, "mean": 2.0, "median": 2.0}, "b": {"count": 2, "missing": 0, "type": "text", "unique": 2}}}"#,
            ),
            (
                "scheduled-report",
                r#"{"title": "T", "items": [{"label": "x", "value": 2}], "format": "json"}"#,
                "",
            ),
        ];
        for (name, input, expect) in cases {
            let t = find(name).unwrap();
            let script = format!(
                "import json, sys\n{}\nprint(json.dumps(main(json.loads(sys.argv[1]))))\n",
                t.code
            );
            let out = std::process::Command::new("python3")
                .arg("-c")
                .arg(&script)
                .arg(input)
                .output();
            let Ok(out) = out else {
                eprintln!("python3 not available; skipping {name}");
                return;
            };
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            if expect.is_empty() {
                assert_eq!(got["summary"]["total"], 2, "{name}");
                assert_eq!(got["report"]["title"], "T", "{name}");
            } else {
                assert_eq!(
                    got,
                    serde_json::from_str::<serde_json::Value>(expect).unwrap(),
                    "{name}"
                );
            }
        }
    }
}
