//! The Python runner, run directly (no jail) through the real slot protocol: return
//! conventions, capture and caps, errors, exits, conversions, limits, files, subprocesses.

mod runners_support;

use paddock_shared::exec::{MAX_RESULT_BYTES, MAX_STDOUT_BYTES};
use paddock_shared::model::Language;
use runners_support::{Runner, py, py_with};
use serde_json::json;

#[test]
fn ready_frame_names_language_and_pid() {
    let runner = Runner::start(Language::Python);
    assert_eq!(runner.ready["type"], "ready");
    assert_eq!(runner.ready["language"], "python");
    assert!(
        runner.ready["pid"].as_u64().unwrap_or(0) > 0,
        "{}",
        runner.ready
    );
    let (code, extra) = runner.close();
    assert_eq!(code, Some(0), "a clean EOF before execute exits 0");
    assert!(!extra, "no frame without an execute");
}

#[test]
fn result_variable() {
    let out = py("result = 1 + 1");
    assert_eq!(out.status(), "completed", "{}", out.frame);
    assert_eq!(out.value(), json!(2));
    assert_eq!(out.frame["error"], json!(null));
    assert_eq!(out.exit_code, Some(0));
    // Usage comes from the slot's cgroup (the worker), not from the runner.
    assert!(out.frame.get("cpu_ms").is_none() && out.frame.get("peak_rss_bytes").is_none());
    eprintln!(
        "python warm round trip for `result = 1 + 1`: {:?}",
        out.round_trip
    );
}

#[test]
fn output_variable_when_no_result() {
    assert_eq!(py("output = {'a': [1, 2]}").value(), json!({"a": [1, 2]}));
}

#[test]
fn result_wins_over_output_and_main() {
    let out = py("result = 'r'\noutput = 'o'\ndef main(i):\n    return 'm'");
    assert_eq!(out.value(), json!("r"));
}

#[test]
fn main_gets_input_data() {
    let out = py_with(
        "def main(data):\n    return {'got': data, 'same': data is input_data}",
        json!({"x": 5}),
        json!({}),
    );
    assert_eq!(out.value(), json!({"got": {"x": 5}, "same": true}));
}

#[test]
fn main_without_parameters_is_called() {
    assert_eq!(py("def main():\n    return 7").value(), json!(7));
}

#[test]
fn handler_gets_input_and_context() {
    let out = py_with(
        "def handler(data, context):\n    return [data['n'], context['namespace']]",
        json!({"n": 3}),
        json!({}),
    );
    assert_eq!(out.value(), json!([3, "tests"]));
}

#[test]
fn async_main_is_awaited() {
    let out =
        py("import asyncio\nasync def main(i):\n    await asyncio.sleep(0)\n    return 'done'");
    assert_eq!(out.value(), json!("done"));
}

#[test]
fn input_data_defaults_to_empty_object() {
    assert_eq!(py("result = input_data").value(), json!({}));
}

#[test]
fn no_convention_gives_null() {
    let out = py("x = 1");
    assert_eq!(out.status(), "completed");
    assert_eq!(out.value(), json!(null));
}

#[test]
fn fresh_main_module_globals() {
    let out = py(
        "import sys\nresult = [__name__, sys.modules['__main__'].__dict__ is globals(), 'execute' in globals()]",
    );
    assert_eq!(out.value(), json!(["__main__", true, false]));
}

#[test]
fn stdout_and_stderr_are_captured() {
    let out = py(
        "import sys\nprint('hello')\nprint('oops', file=sys.stderr)\nsys.stdout.write('no newline')\nresult = 1",
    );
    assert_eq!(out.stdout(), "hello\nno newline");
    assert_eq!(out.stderr(), "oops\n");
    assert_eq!(
        out.frame["truncated"],
        json!({"result": false, "stdout": false, "stderr": false})
    );
}

#[test]
fn stdout_is_capped_with_a_marker() {
    let out = py(
        "import sys\nfor _ in range(200):\n    print('y' * 1000)\nprint('x' * 100000, file=sys.stderr)\nresult = 'ok'",
    );
    assert_eq!(out.status(), "completed");
    assert_eq!(out.value(), json!("ok"));
    assert!(
        out.stdout().len() <= MAX_STDOUT_BYTES,
        "{}",
        out.stdout().len()
    );
    assert!(out.stdout().len() > MAX_STDOUT_BYTES - 100);
    assert!(
        out.stdout()
            .ends_with("[paddock: stdout truncated at 65536 bytes]\n"),
        "{}",
        &out.stdout()[out.stdout().len() - 80..]
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
    let out = py(
        "import os\nos.write(1, b'\\x00\\x00\\x00\\x05junk!')\nos.write(0, b'x') if False else None\nresult = 'fine'",
    );
    assert_eq!(out.value(), json!("fine"));
    assert!(
        out.diagnostics.contains("junk!"),
        "fd 1 goes to the diagnostics pipe: {:?}",
        out.diagnostics
    );
}

#[test]
fn exception_has_trimmed_traceback() {
    let out = py("x = 1\ndef f():\n    raise ValueError('bad value')\nf()");
    assert_eq!(out.status(), "failed");
    assert_eq!(out.error_type(), "ValueError");
    assert_eq!(out.message(), "bad value");
    let tb = out.traceback();
    assert!(
        tb.starts_with("Traceback (most recent call last):\n  File \"<code>\", line 4"),
        "{tb}"
    );
    assert!(
        tb.contains("File \"<code>\", line 3, in f\n    raise ValueError('bad value')"),
        "{tb}"
    );
    assert!(!tb.contains("runner.py"), "{tb}");
}

#[test]
fn stdout_is_kept_on_failure() {
    let out = py("print('before')\nraise KeyError('k')");
    assert_eq!(out.error_type(), "KeyError");
    assert_eq!(out.stdout(), "before\n");
}

#[test]
fn exception_in_main_is_reported() {
    let out = py("def main(i):\n    return 1 / 0");
    assert_eq!(out.error_type(), "ZeroDivisionError");
    assert!(
        out.traceback().contains("line 2, in main"),
        "{}",
        out.traceback()
    );
}

#[test]
fn syntax_error_points_at_the_line() {
    let out = py("a = 1\nb = (\n");
    assert_eq!(out.error_type(), "SyntaxError");
    assert!(out.traceback().contains("<code>"), "{}", out.traceback());
    assert!(!out.traceback().contains("runner.py"));
}

#[test]
fn sys_exit_is_sandbox_exit_with_stdout() {
    let out = py("import sys\nprint('kept')\nsys.exit(3)");
    assert_eq!(out.status(), "failed");
    assert_eq!(out.error_type(), "SandboxExit");
    assert!(out.message().contains("sys.exit(3)"), "{}", out.message());
    assert_eq!(out.stdout(), "kept\n");
    assert_eq!(out.exit_code, Some(0));
}

#[test]
fn os_exit_sends_the_result_first() {
    let out = py("import os\nprint('kept')\nos._exit(4)");
    assert_eq!(out.error_type(), "SandboxExit");
    assert!(out.message().contains("os._exit(4)"), "{}", out.message());
    assert_eq!(out.stdout(), "kept\n");
    assert_eq!(out.exit_code, Some(0));
}

#[test]
fn common_types_are_converted() {
    let code = r#"
import datetime, decimal, uuid, enum, collections
class Color(enum.Enum):
    RED = 'red'
P = collections.namedtuple('P', 'x y')
result = {
    'dt': datetime.datetime(2024, 5, 6, 7, 8, 9),
    'd': datetime.date(2024, 5, 6),
    't': datetime.time(1, 2, 3),
    'dec': decimal.Decimal('1.25'),
    'deci': decimal.Decimal('10'),
    'set': {3, 1, 2},
    'fs': frozenset(['a']),
    'tuple': (1, 'two'),
    'nt': P(1, 2),
    'bytes': b'hello',
    'uuid': uuid.UUID('12345678-1234-5678-1234-567812345678'),
    'td': datetime.timedelta(seconds=90),
    'enum': Color.RED,
    'nan': float('nan'),
    'inf': [float('inf')],
}
"#;
    let out = py(code);
    assert_eq!(out.status(), "completed", "{}", out.frame);
    assert_eq!(
        out.value(),
        json!({
            "dt": "2024-05-06T07:08:09", "d": "2024-05-06", "t": "01:02:03",
            "dec": 1.25, "deci": 10, "set": [1, 2, 3], "fs": ["a"], "tuple": [1, "two"],
            "nt": [1, 2], "bytes": "aGVsbG8=", "uuid": "12345678-1234-5678-1234-567812345678",
            "td": 90.0, "enum": "red", "nan": null, "inf": [null],
        })
    );
}

#[test]
fn numpy_and_pandas_like_objects_use_tolist_and_to_dict() {
    // Import-free checks by type module: fake classes living in modules named numpy/pandas.
    let code = r#"
class Arr:
    def tolist(self):
        return [[1, 2], [3, 4]]
Arr.__module__ = 'numpy'
class DataFrame:
    def to_dict(self, orient='dict'):
        return [{'a': 1}] if orient == 'records' else {'a': {0: 1}}
DataFrame.__module__ = 'pandas.core.frame'
result = {'arr': Arr(), 'df': DataFrame()}
"#;
    let out = py(code);
    assert_eq!(
        out.value(),
        json!({"arr": [[1, 2], [3, 4]], "df": [{"a": 1}]})
    );
}

#[test]
fn unserializable_result_names_the_type() {
    let out = py("class Widget:\n    pass\nresult = {'w': Widget()}");
    assert_eq!(out.status(), "failed");
    assert_eq!(out.error_type(), "ResultNotSerializable");
    assert!(
        out.message().contains("__main__.Widget"),
        "{}",
        out.message()
    );
    assert_eq!(out.frame["result"], json!(null));
}

#[test]
fn circular_result_is_not_serializable() {
    let out = py("a = []\na.append(a)\nresult = a");
    assert_eq!(out.error_type(), "ResultNotSerializable");
    assert!(out.message().contains("circular"), "{}", out.message());
}

#[test]
fn result_just_under_the_cap_passes() {
    // A JSON string of n characters is n + 2 bytes.
    let out = py(&format!("result = 'x' * {}", MAX_RESULT_BYTES - 2));
    assert_eq!(out.status(), "completed", "{}", out.message());
    assert_eq!(
        out.frame["result"].as_str().map(str::len),
        Some(MAX_RESULT_BYTES)
    );
    assert_eq!(out.frame["truncated"]["result"], json!(false));
}

#[test]
fn result_just_over_the_cap_fails() {
    let out = py(&format!(
        "print('kept')\nresult = 'x' * {}",
        MAX_RESULT_BYTES - 1
    ));
    assert_eq!(out.status(), "failed");
    assert_eq!(out.error_type(), "ResultTooLarge");
    assert!(out.message().contains("1048577 bytes"), "{}", out.message());
    assert_eq!(out.frame["truncated"]["result"], json!(true));
    assert_eq!(out.frame["result"], json!(null));
    assert_eq!(out.stdout(), "kept\n");
}

#[test]
fn invalid_utf8_and_surrogates_do_not_crash() {
    let out = py(
        "import sys\nsys.stdout.buffer.write(b'a\\xffb\\n')\nprint('\\udc80')\nresult = {'s': '\\ud800x'}",
    );
    assert_eq!(out.status(), "completed", "{}", out.frame);
    assert_eq!(out.stdout(), "a\u{fffd}b\n\u{fffd}\n");
    assert_eq!(out.value(), json!({"s": "\u{fffd}x"}));
}

#[test]
fn files_are_written_and_importable() {
    let files = json!({
        "functions/__init__.py": "from .tools import double\n",
        "functions/tools.py": "def double(x):\n    return 2 * x\n",
        "data/in.txt": "héllo",
    });
    let out = py_with(
        "import functions\nresult = [functions.double(21), open('data/in.txt').read()]",
        json!({}),
        files,
    );
    assert_eq!(out.status(), "completed", "{}", out.frame);
    assert_eq!(out.value(), json!([42, "héllo"]));
    let on_disk = std::fs::read_to_string(out.workspace.path().join("functions/tools.py"))
        .expect("file on disk");
    assert!(on_disk.contains("def double"));
}

#[test]
fn files_outside_the_workspace_are_refused() {
    for bad in ["../escape.py", "/etc/evil", "a/../../b", "a//b", "./x"] {
        let out = py_with("result = 1", json!({}), json!({ bad: "x" }));
        assert_eq!(out.status(), "failed", "{bad}");
        assert_eq!(out.error_type(), "SandboxFailure", "{bad}");
        assert!(
            out.message().contains("refused"),
            "{bad}: {}",
            out.message()
        );
    }
}

#[test]
fn subprocess_entry_points_raise_permission_error() {
    for stmt in [
        "import os; os.system('true')",
        "import os; os.popen('true')",
        "import os; os.fork()",
        "import os; os.execv('/bin/true', ['true'])",
        "import os; os.posix_spawn('/bin/true', ['true'], {})",
        "import subprocess; subprocess.run(['true'])",
        "import subprocess; subprocess.check_output(['true'])",
        "import pty; pty.spawn('/bin/true')",
    ] {
        let code = format!(
            "try:\n    {stmt}\n    result = 'ran'\nexcept PermissionError as e:\n    result = str(e)"
        );
        let out = py(&code);
        let text = out.value();
        let msg = text.as_str().unwrap_or_default();
        assert!(
            msg.starts_with("subprocesses are not allowed in the Paddock sandbox"),
            "{stmt}: {}",
            out.frame
        );
    }
    let out = py("import subprocess\nsubprocess.run(['true'])");
    assert_eq!(out.error_type(), "PermissionError");
    assert!(
        !out.traceback().contains("runner.py"),
        "{}",
        out.traceback()
    );
}

#[test]
fn packages_dir_goes_on_sys_path() {
    let pkgs = tempfile::tempdir().expect("pkgs");
    std::fs::write(
        pkgs.path().join("paddock_probe.py"),
        "VALUE = 'from packages'\n",
    )
    .expect("write probe");
    let dir = pkgs.path().to_str().expect("utf-8").to_owned();
    let runner = Runner::start_with_env(Language::Python, &[("PADDOCK_PYTHON_PACKAGES", &dir)]);
    let out = runner.execute(
        "import paddock_probe\nresult = paddock_probe.VALUE",
        json!({}),
        json!({}),
    );
    assert_eq!(out.value(), json!("from packages"), "{}", out.frame);
}

#[test]
fn call_helper_round_trips_over_the_protocol() {
    let code = "import _paddock\nok = _paddock.call('function', {'x': 1})\ntry:\n    _paddock.call('mcp', {})\nexcept _paddock.CallError as e:\n    err = [e.type, e.message]\nresult = [ok, err]";
    let mut seen = Vec::new();
    let out =
        Runner::start(Language::Python).execute_with_calls(code, json!({}), json!({}), |call| {
            seen.push((call["target"].clone(), call["args"].clone()));
            if call["target"] == "function" {
                json!({"ok": true, "value": {"doubled": 2}})
            } else {
                json!({"ok": false, "error": {"type": "ToolError", "message": "no such tool"}})
            }
        });
    assert_eq!(out.status(), "completed", "{}", out.frame);
    assert_eq!(
        out.value(),
        json!([{"doubled": 2}, ["ToolError", "no such tool"]])
    );
    assert_eq!(
        seen,
        vec![
            (json!("function"), json!({"x": 1})),
            (json!("mcp"), json!({}))
        ]
    );
}

#[test]
fn protocol_fds_moved_by_the_launcher() {
    let runner = Runner::start_prearranged(Language::Python);
    assert_eq!(runner.ready["type"], "ready");
    let out = runner.execute("import os\nos.write(1, b'junk!')\nimport sys\nprint('out')\nresult = [os.environ.get('PADDOCK_PROTOCOL_FDS'), sys.stdin.read()]", json!({}), json!({}));
    assert_eq!(out.status(), "completed", "{}", out.frame);
    assert_eq!(
        out.value(),
        json!([null, ""]),
        "the variable is consumed; fd 0 is /dev/null"
    );
    assert_eq!(out.stdout(), "out\n");
    assert!(out.diagnostics.contains("junk!"), "{:?}", out.diagnostics);
}
