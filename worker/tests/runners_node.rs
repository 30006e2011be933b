//! The Node runner, run directly (no jail) through the real slot protocol, with code
//! produced by the worker's TypeScript transform: export conventions, capture and caps,
//! errors with source-mapped stacks, exits, serialization, limits, files, subprocesses.

mod runners_support;

use paddock_shared::exec::{MAX_RESULT_BYTES, MAX_STDOUT_BYTES};
use paddock_shared::model::Language;
use paddock_worker::typescript::{TransformError, transform};
use runners_support::{Runner, js, ts, ts_with};
use serde_json::json;

#[test]
fn ready_frame_names_language_and_pid() {
    let runner = Runner::start(Language::TypeScript);
    assert_eq!(runner.ready["type"], "ready");
    assert_eq!(runner.ready["language"], "typescript");
    assert!(
        runner.ready["pid"].as_u64().unwrap_or(0) > 0,
        "{}",
        runner.ready
    );
    let (code, extra) = runner.close();
    assert_eq!(code, Some(0));
    assert!(!extra);
}

#[test]
fn top_level_result() {
    let out = ts("const result: number = 1 + 1;");
    assert_eq!(out.status(), "completed", "{}", out.frame);
    assert_eq!(out.value(), json!(2));
    assert_eq!(out.exit_code, Some(0));
    // Usage comes from the slot's cgroup (the worker), not from the runner.
    assert!(out.frame.get("cpu_ms").is_none() && out.frame.get("peak_rss_bytes").is_none());
    eprintln!(
        "node warm round trip for `result = 1 + 1`: {:?}",
        out.round_trip
    );
}

#[test]
fn undeclared_result_assignment_and_output() {
    assert_eq!(
        js("result = 'sloppy global'").value(),
        json!("sloppy global")
    );
    assert_eq!(
        ts("let output = { a: [1, 2] };").value(),
        json!({"a": [1, 2]})
    );
}

#[test]
fn default_export_function_gets_input() {
    let out = ts_with(
        "export default function main(input: { n: number }) {\n  return input.n * 2;\n}\n",
        json!({"n": 21}),
        json!({}),
    );
    assert_eq!(out.value(), json!(42), "{}", out.frame);
}

#[test]
fn default_export_value_and_async_default() {
    assert_eq!(
        ts("export default { ok: true };").value(),
        json!({"ok": true})
    );
    let out = ts_with(
        "export default async (input: any, context: any) => [input.x, context.namespace];",
        json!({"x": 1}),
        json!({}),
    );
    assert_eq!(out.value(), json!([1, "tests"]));
}

#[test]
fn exported_main_and_handler() {
    let out = ts_with(
        "export function main(input: any): string { return 'main:' + input.v; }",
        json!({"v": "a"}),
        json!({}),
    );
    assert_eq!(out.value(), json!("main:a"));
    let out = ts_with(
        "export const handler = async (input: any, context: any): Promise<string> => `${input.v}@${context.namespace}`;",
        json!({"v": "b"}),
        json!({}),
    );
    assert_eq!(out.value(), json!("b@tests"));
}

#[test]
fn convention_order_default_then_main_then_handler_then_result() {
    let out = ts(
        "export default () => 'default';\nexport function main() { return 'main'; }\nconst result = 'result';",
    );
    assert_eq!(out.value(), json!("default"));
    let out = ts(
        "export function main() { return 'main'; }\nexport const handler = () => 'handler';\nconst result = 'result';",
    );
    assert_eq!(out.value(), json!("main"));
    let out = ts("export const handler = () => 'handler';\nconst result = 'result';");
    assert_eq!(out.value(), json!("handler"));
}

#[test]
fn commonjs_exports_and_top_level_main() {
    assert_eq!(
        js("module.exports.main = (i) => ({ got: i })").value(),
        json!({"got": {}})
    );
    assert_eq!(
        js("module.exports = async (i) => 'fn export'").value(),
        json!("fn export")
    );
    assert_eq!(
        js("function main(input) { return 'top-level main' }").value(),
        json!("top-level main")
    );
}

#[test]
fn promises_and_top_level_await() {
    let out = ts(
        "const v = await new Promise<number>((r) => setTimeout(() => r(5), 1));\nconst result = v * 2;",
    );
    assert_eq!(out.value(), json!(10));
    assert_eq!(
        js("result = Promise.resolve('awaited')").value(),
        json!("awaited")
    );
}

#[test]
fn input_data_is_global() {
    let out = ts_with(
        "declare const input_data: any;\nconst result = input_data.q;",
        json!({"q": [1]}),
        json!({}),
    );
    assert_eq!(out.value(), json!([1]));
    assert_eq!(js("result = input_data").value(), json!({}));
}

#[test]
fn console_and_stream_writes_are_captured() {
    let out = js(
        "console.log('hi', { a: 1 }); console.info('info'); console.error('err'); console.warn('warn');\nprocess.stdout.write('raw'); process.stderr.write(Buffer.from('buf'));\nresult = 1",
    );
    assert_eq!(out.stdout(), "hi { a: 1 }\ninfo\nraw");
    assert_eq!(out.stderr(), "err\nwarn\nbuf");
}

#[test]
fn stdout_is_capped_with_a_marker() {
    let out = js(
        "for (let i = 0; i < 200; i++) console.log('y'.repeat(1000));\nconsole.error('x'.repeat(100000));\nresult = 'ok'",
    );
    assert_eq!(out.value(), json!("ok"));
    assert!(out.stdout().len() <= MAX_STDOUT_BYTES);
    assert!(out.stdout().len() > MAX_STDOUT_BYTES - 100);
    assert!(
        out.stdout()
            .ends_with("[paddock: stdout truncated at 65536 bytes]\n")
    );
    assert!(
        out.stderr()
            .ends_with("[paddock: stderr truncated at 65536 bytes]\n")
    );
    assert_eq!(
        out.frame["truncated"],
        json!({"result": false, "stdout": true, "stderr": true})
    );
}

#[test]
fn writes_to_fd_1_cannot_corrupt_the_protocol() {
    let out = js("require('fs').writeSync(1, 'junk!'); result = 'fine'");
    assert_eq!(out.value(), json!("fine"));
    assert!(out.diagnostics.contains("junk!"), "{:?}", out.diagnostics);
}

#[test]
fn error_stack_points_into_the_typescript_source() {
    let src = "interface Row {\n  id: number;\n}\nfunction check(row: Row): void {\n  throw new TypeError(`bad row ${row.id}`);\n}\ncheck({ id: 7 });\n";
    let out = ts(src);
    assert_eq!(out.status(), "failed");
    assert_eq!(out.error_type(), "TypeError");
    assert_eq!(out.message(), "bad row 7");
    let tb = out.traceback();
    assert!(tb.contains("at check (<code>:5:"), "{tb}");
    assert!(tb.contains("<code>:7:"), "{tb}");
    assert!(!tb.contains("runner.js"), "{tb}");
    assert!(!tb.contains("node:internal"), "{tb}");
}

#[test]
fn custom_error_class_name_and_stdout_kept() {
    let out = ts(
        "class QuotaError extends Error {}\nconsole.log('before');\nthrow new QuotaError('over');",
    );
    assert_eq!(out.error_type(), "QuotaError");
    assert_eq!(out.stdout(), "before\n");
}

#[test]
fn async_errors_and_unhandled_rejections_fail_the_execution() {
    let out = js(
        "setTimeout(() => { throw new RangeError('later') }, 1);\nawait new Promise((r) => setTimeout(r, 1000));",
    );
    assert_eq!(out.error_type(), "RangeError");
    assert_eq!(out.message(), "later");
    let out = js(
        "Promise.reject(new SyntaxError('rejected'));\nawait new Promise((r) => setTimeout(r, 1000));",
    );
    assert_eq!(out.error_type(), "SyntaxError");
    let out = js("module.exports.main = async () => { throw new Error('in main') }");
    assert_eq!(out.error_type(), "Error");
    assert_eq!(out.message(), "in main");
    let out = js("throw 'a string'");
    assert_eq!(out.error_type(), "Error");
    assert!(out.message().contains("a string"));
}

#[test]
fn promise_that_never_settles_still_answers() {
    let out = js("await new Promise(() => {})");
    assert_eq!(out.status(), "failed");
    assert_eq!(out.error_type(), "UnsettledPromise");
}

#[test]
fn process_exit_is_sandbox_exit_with_stdout() {
    let out = js("console.log('kept'); process.exit(3)");
    assert_eq!(out.error_type(), "SandboxExit");
    assert!(
        out.message().contains("process.exit(3)"),
        "{}",
        out.message()
    );
    assert_eq!(out.stdout(), "kept\n");
    assert_eq!(out.exit_code, Some(0));
}

#[test]
fn serialization_conversions() {
    let out = js(
        "result = { big: 10n ** 20n, u: undefined, arr: [undefined, 1], m: new Map([['k', 1]]), s: new Set([1, 2]), buf: Buffer.from('hi'), d: new Date(0), nan: NaN, bytes: new Uint8Array([1, 2]), f: () => 1 }",
    );
    assert_eq!(out.status(), "completed", "{}", out.frame);
    assert_eq!(
        out.value(),
        json!({
            "big": "100000000000000000000", "u": null, "arr": [null, 1], "m": {"k": 1}, "s": [1, 2],
            "buf": "aGk=", "d": "1970-01-01T00:00:00.000Z", "nan": null, "bytes": "AQI=",
        })
    );
    assert_eq!(js("result = 5n").value(), json!("5"));
}

#[test]
fn unserializable_results() {
    let out = js("const a = { name: 'a' }; a.self = a; result = a");
    assert_eq!(out.error_type(), "ResultNotSerializable");
    assert!(out.message().contains("circular"), "{}", out.message());
    let out = js("module.exports.default = Symbol('s')");
    assert_eq!(out.error_type(), "ResultNotSerializable");
}

#[test]
fn result_at_the_edge_of_the_cap() {
    let out = js(&format!("result = 'x'.repeat({})", MAX_RESULT_BYTES - 2));
    assert_eq!(out.status(), "completed", "{}", out.message());
    assert_eq!(
        out.frame["result"].as_str().map(str::len),
        Some(MAX_RESULT_BYTES)
    );
    let out = js(&format!(
        "console.log('kept'); result = 'x'.repeat({})",
        MAX_RESULT_BYTES - 1
    ));
    assert_eq!(out.error_type(), "ResultTooLarge");
    assert_eq!(out.frame["truncated"]["result"], json!(true));
    assert_eq!(out.frame["result"], json!(null));
    assert_eq!(out.stdout(), "kept\n");
}

#[test]
fn invalid_utf8_and_lone_surrogates_do_not_crash() {
    let out = js(
        "process.stdout.write(Buffer.from([0x61, 0xff, 0x62])); console.log('\\ud800'); result = { s: '\\udc00x' }",
    );
    assert_eq!(out.status(), "completed", "{}", out.frame);
    assert_eq!(out.stdout(), "a\u{fffd}b\u{fffd}\n");
    assert_eq!(out.value(), json!({"s": "\u{fffd}x"}));
}

#[test]
fn files_and_imports_of_the_functions_package() {
    let files = json!({
        "functions/index.js": "exports.double = (x) => 2 * x;\nexports.default = 'dflt';\n",
        "data.json": "{\"k\": 3}",
    });
    let src = "import { double } from \"./functions\";\nimport fns from \"./functions\";\nconst fs = require('fs');\nexport default function main(): unknown {\n  return [double(21), fns.double(1), JSON.parse(fs.readFileSync('data.json', 'utf8')).k];\n}\n";
    let out = ts_with(src, json!({}), files);
    assert_eq!(out.status(), "completed", "{}", out.frame);
    assert_eq!(out.value(), json!([42, 2, 3]));
    assert!(out.workspace.path().join("functions/index.js").is_file());
}

#[test]
fn files_outside_the_workspace_are_refused() {
    for bad in ["../escape.js", "/etc/evil", "a/../../b", "a//b"] {
        let out = Runner::start(Language::TypeScript).execute(
            "result = 1",
            json!({}),
            json!({ bad: "x" }),
        );
        assert_eq!(out.error_type(), "SandboxFailure", "{bad}");
        assert!(
            out.message().contains("refused"),
            "{bad}: {}",
            out.message()
        );
    }
}

#[test]
fn child_process_is_replaced() {
    for call in [
        "execSync('true')",
        "exec('true')",
        "spawn('true')",
        "spawnSync('true')",
        "execFile('true')",
        "execFileSync('true')",
        "fork('x.js')",
    ] {
        let code = format!(
            "const cp = require('child_process');\ntry {{ cp.{call}; result = 'ran' }} catch (e) {{ result = [e.code, e.message] }}"
        );
        let out = js(&code);
        let v = out.value();
        assert_eq!(v[0], json!("ERR_PADDOCK_SANDBOX"), "{call}: {}", out.frame);
        assert!(
            v[1].as_str()
                .unwrap_or_default()
                .contains("subprocesses are not allowed"),
            "{call}"
        );
    }
    let out = ts("import { execSync } from 'child_process';\nexecSync('id');");
    assert_eq!(out.error_type(), "Error");
    assert!(out.message().contains("not allowed in the Paddock sandbox"));
}

#[test]
fn typescript_features_run() {
    let src = r#"
enum Level { Low = 1, High = 10 }
interface Item<T> { value: T; level: Level }
type Pair = [string, number];
function pick<T>(items: Item<T>[], min: Level): T[] {
  return items.filter((i) => i.level >= min).map((i) => i.value);
}
class Box<T> {
  constructor(private readonly inner: T) {}
  get(): T { return this.inner; }
}
namespace Util { export const twice = (n: number): number => n * 2; }
const pair: Pair = ["a", 1];
export const result = {
  picked: pick<string>([{ value: "x", level: Level.High }, { value: "y", level: Level.Low }], Level.High),
  box: new Box<number>(3).get(),
  twice: Util.twice(4),
  pair,
  level: Level[10],
  sat: ({ a: 1 } satisfies Record<string, number>).a,
  nonNull: (null as string | null)!,
};
"#;
    let out = ts(src);
    assert_eq!(out.status(), "completed", "{}", out.frame);
    assert_eq!(
        out.value(),
        json!({"picked": ["x"], "box": 3, "twice": 8, "pair": ["a", 1], "level": "High", "sat": 1, "nonNull": null})
    );
}

#[test]
fn typescript_syntax_error_has_a_position() {
    let err =
        transform("const ok = 1;\nfunction broken( {\n  return 1;\n}\n").expect_err("syntax error");
    match &err {
        TransformError::Syntax {
            line,
            column,
            message,
        } => {
            assert!(*line >= 2, "{err}");
            assert!(*column >= 1, "{err}");
            assert!(!message.is_empty());
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert!(err.to_string().starts_with("syntax error at "), "{err}");
}

#[test]
fn transform_time_of_a_hundred_line_file() {
    let mut src = String::from(
        "import { helper } from \"./functions\";\ninterface Row { id: number; name: string; tags: string[] }\n",
    );
    for i in 0..24 {
        src.push_str(&format!(
            "export function f{i}(rows: Row[], limit: number = {i}): Row[] {{\n  const out: Row[] = rows.filter((r) => r.id > limit);\n  return out.map((r) => ({{ ...r, name: r.name.toUpperCase() }}));\n}}\n"
        ));
    }
    src.push_str("export default async function main(input: { rows: Row[] }) { return f1(input.rows).length + helper; }\n");
    assert!(src.lines().count() >= 98, "{}", src.lines().count());
    transform(&src).expect("warm-up");
    let runs = 20;
    let started = std::time::Instant::now();
    for _ in 0..runs {
        transform(&src).expect("transform");
    }
    let each = started.elapsed() / runs;
    eprintln!(
        "transform of a {}-line TypeScript file: {each:?} per run (debug build)",
        src.lines().count()
    );
}

#[test]
fn call_helper_round_trips_over_the_protocol() {
    let code = "const rt = globalThis.__paddock_runtime;\nconst ok = rt.call('function', { x: 1 });\nlet err;\ntry { rt.call('mcp', {}); } catch (e) { err = [e.type, e.message, e instanceof rt.CallError]; }\nresult = [ok, err];";
    let mut targets = Vec::new();
    let out = Runner::start(Language::TypeScript).execute_with_calls(
        code,
        json!({}),
        json!({}),
        |call| {
            targets.push(call["target"].clone());
            if call["target"] == "function" {
                json!({"ok": true, "value": {"doubled": 2}})
            } else {
                json!({"ok": false, "error": {"type": "ToolError", "message": "no such tool"}})
            }
        },
    );
    assert_eq!(out.status(), "completed", "{}", out.frame);
    assert_eq!(
        out.value(),
        json!([{"doubled": 2}, ["ToolError", "no such tool", true]])
    );
    assert_eq!(targets, vec![json!("function"), json!("mcp")]);
}

#[test]
fn dynamic_import_works_through_require() {
    let src = "const { platform } = await import(\"os\");\nconst fns = await import(\"./functions\");\nexport const result = [typeof platform, fns.default.x, fns.x];\n";
    let out = ts_with(
        src,
        json!({}),
        json!({"functions/index.js": "exports.x = 1;"}),
    );
    assert_eq!(out.status(), "completed", "{}", out.frame);
    assert_eq!(out.value(), json!(["function", 1, 1]));
}

#[test]
fn protocol_fds_moved_by_the_launcher() {
    let runner = Runner::start_prearranged(Language::TypeScript);
    assert_eq!(runner.ready["type"], "ready");
    let out = runner.execute("require('fs').writeSync(1, 'junk!');\nconsole.log('out');\nresult = [process.env.PADDOCK_PROTOCOL_FDS ?? null, require('fs').readFileSync(0, 'utf8')]", json!({}), json!({}));
    assert_eq!(out.status(), "completed", "{}", out.frame);
    assert_eq!(
        out.value(),
        json!([null, ""]),
        "the variable is consumed; fd 0 is /dev/null"
    );
    assert_eq!(out.stdout(), "out\n");
    assert!(out.diagnostics.contains("junk!"), "{:?}", out.diagnostics);
}
