//! Shared fixtures for the package tests: a sample namespace (Python and TypeScript
//! functions, hyphenated names, schemas with required/optional properties, no schema),
//! and helpers that write a generated package to a temporary directory and run the real
//! interpreters there.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use paddock_shared::model::{FunctionRecord, Language, VersionRecord};
use paddock_worker::package::Package;

pub const NAMESPACE: &str = "demo";

/// One function with its current version.
pub fn function(
    service: &str,
    name: &str,
    description: &str,
    language: Language,
    version: u32,
    schema: Option<&str>,
    code: &str,
) -> (FunctionRecord, VersionRecord) {
    let f = FunctionRecord {
        namespace: NAMESPACE.into(),
        service: service.into(),
        name: name.into(),
        description: description.into(),
        tags: Vec::new(),
        current_version: version,
        created_at: 0,
        updated_at: 0,
    };
    let v = VersionRecord {
        namespace: NAMESPACE.into(),
        service: service.into(),
        function: name.into(),
        version,
        backend: "code_sandbox".into(),
        language,
        code: code.into(),
        config_json: "{}".into(),
        input_schema_json: schema.map(str::to_owned),
        output_schema_json: None,
        requirements: Vec::new(),
        template: None,
        restored_from: None,
        created_at: 0,
    };
    (f, v)
}

const HELLO_SCHEMA: &str = r#"{"type":"object","properties":{"name":{"type":"string"},"greeting":{"type":"string"}},"required":["name"]}"#;
const WORD_COUNT_SCHEMA: &str = r#"{"type":"object","properties":{"lang":{"type":"string"},"text":{"type":"string"}},"required":["text"]}"#;
const TEXT_SCHEMA: &str =
    r#"{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}"#;

/// The sample namespace, sorted by service then function.
pub fn sample() -> Vec<(FunctionRecord, VersionRecord)> {
    use Language::{Python, TypeScript};
    vec![
        function(
            "greetings",
            "async-main",
            "Greets asynchronously",
            Python,
            1,
            None,
            "import asyncio\n\nasync def main(input_data):\n    await asyncio.sleep(0)\n    return {\"via\": \"async\", \"got\": input_data}\n",
        ),
        function(
            "greetings",
            "hello",
            "Say hello to someone",
            Python,
            2,
            Some(HELLO_SCHEMA),
            "def main(input_data):\n    greeting = input_data.get(\"greeting\") or \"Hello\"\n    return {\"message\": f\"{greeting}, {input_data['name']}!\", \"module\": __name__}\n",
        ),
        function(
            "greetings",
            "hello-result",
            "Answers through result",
            Python,
            1,
            None,
            "result = {\"via\": \"result\", \"got\": input_data}\n",
        ),
        function(
            "greetings",
            "with-handler",
            "Answers through handler",
            Python,
            4,
            Some(r#"{"type":"object","properties":{}}"#),
            "def handler(input_data, context):\n    return {\"via\": \"handler\", \"context\": context}\n",
        ),
        function(
            "greetings",
            "with-output",
            "Answers through output",
            Python,
            1,
            None,
            "output = {\"via\": \"output\"}\n\ndef main(input_data):\n    return \"main must not win over output\"\n",
        ),
        function(
            "text-tools",
            "failing",
            "Always raises",
            Python,
            1,
            None,
            "def helper():\n    raise ValueError(\"bad input\")\n\ndef main(input_data):\n    helper()\n",
        ),
        function(
            "text-tools",
            "hello-twice",
            "Calls hello twice",
            Python,
            1,
            Some(HELLO_SCHEMA),
            "from functions import hello\n\ndef main(input_data):\n    a = hello(name=input_data['name'])\n    b = hello(input_data['name'], greeting='Hi')\n    return [a['message'], b['message']]\n",
        ),
        function(
            "text-tools",
            "word-count",
            "Count the words of a text",
            Python,
            3,
            Some(WORD_COUNT_SCHEMA),
            "def main(input_data):\n    return len(input_data['text'].split())\n",
        ),
        function(
            "ts-tools",
            "add-async",
            "Adds two numbers, asynchronously",
            TypeScript,
            1,
            Some(
                r#"{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}},"required":["a","b"]}"#,
            ),
            "export async function main(input: { a: number; b: number }): Promise<number> {\n  await new Promise((r) => setTimeout(r, 1));\n  return input.a + input.b;\n}\n",
        ),
        function(
            "ts-tools",
            "shout",
            "Upper-cases a text",
            TypeScript,
            3,
            Some(TEXT_SCHEMA),
            "interface In { text: string }\nexport default function (input: In): string {\n  return input.text.toUpperCase() + \"!\";\n}\n",
        ),
        function(
            "ts-tools",
            "shout-twice",
            "Calls shout twice",
            TypeScript,
            1,
            Some(TEXT_SCHEMA),
            "import { shout } from \"./functions\";\nexport function handler(input: { text: string }, context: any) {\n  return [shout({ text: input.text }), shout({ text: input.text + \"?\" }), context.function];\n}\n",
        ),
        function(
            "ts-tools",
            "ts-result",
            "Answers through result",
            TypeScript,
            1,
            None,
            "const result: number = 40 + 2;\n",
        ),
        function(
            "ts-tools",
            "waits",
            "Uses top-level await",
            TypeScript,
            1,
            None,
            "const v: number = await Promise.resolve(7);\nexport const result = v * 6;\n",
        ),
    ]
}

/// Writes the package's files under `dir`.
pub fn write(package: &Package, dir: &Path) {
    for (rel, text) in &package.files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("file has a parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write package file");
    }
}

/// Output of one interpreter run.
#[derive(Debug)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub ok: bool,
}

impl Run {
    /// The last stdout line parsed as JSON; panics with the whole output otherwise.
    pub fn json(&self) -> serde_json::Value {
        assert!(
            self.ok,
            "interpreter failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        let last = self.stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {last}\nstderr:\n{}", self.stderr))
    }
}

fn run(program: &str, args: &[&str], dir: &Path) -> Run {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        ok: out.status.success(),
    }
}

/// Runs `script` with `/usr/bin/python3` in `dir` (the package's parent).
pub fn python(dir: &Path, script: &str) -> Run {
    std::fs::write(dir.join("main.py"), script).expect("write script");
    run("/usr/bin/python3", &["-B", "main.py"], dir)
}

/// Runs `script` with `/usr/bin/node` in `dir` (the package's parent).
pub fn node(dir: &Path, script: &str) -> Run {
    std::fs::write(dir.join("main.js"), script).expect("write script");
    run("/usr/bin/node", &["main.js"], dir)
}
