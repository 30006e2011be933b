//! Hostile Python code against the real sandbox: each attack is contained, its status and
//! error type are right, and the next execution on the same pools is correct.

mod sandbox_support;

use paddock_shared::exec::{ExecStatus, error_type};
use paddock_shared::model::Language;
use sandbox_support::{expect, next_is_healthy, py, run_on};

fn healthy() {
    next_is_healthy(Language::Python);
}

#[test]
fn plain_result_and_input() {
    let r = run_on(
        "free",
        Language::Python,
        "print('hi')\nresult = {'got': input_data}",
        "{\"a\": [1, 2]}",
        None,
    );
    expect(&r, ExecStatus::Completed, None);
    assert_eq!(r.result_value(), serde_json::json!({"got": {"a": [1, 2]}}));
    assert_eq!(r.stdout, "hi\n");
    assert!(
        r.usage.peak_memory_bytes > 1_000_000,
        "peak memory from the cgroup: {:?}",
        r.usage
    );
}

#[test]
fn fork_bomb_is_refused() {
    let r = py("import os\nwhile True:\n    os.fork()");
    expect(&r, ExecStatus::Failed, Some("PermissionError"));
    // Below the runner's own guard the kernel refuses too (seccomp EPERM).
    let r = py(
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nresult = [libc.fork(), ctypes.get_errno()]",
    );
    expect(&r, ExecStatus::Completed, None);
    assert_eq!(r.result_value(), serde_json::json!([-1, 1]));
    healthy();
}

#[test]
fn raw_execve_at_any_address_is_refused_by_the_runner_filter() {
    // slot-init's exec-once rule compares the filename pointer; the Python runner's own
    // filter must refuse execve whatever address the path sits at. Place the path in a
    // fixed mapping and in heap memory, and call the raw syscalls (execve 59, execveat 322).
    let code = r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
addr = libc.mmap(0x10000000, 4096, 3, 0x22 | 0x10, -1, 0)
ctypes.memmove(addr, b'/usr/bin/python3\0', 17)
heap = ctypes.create_string_buffer(b'/usr/bin/python3')
out = []
for p in (addr, ctypes.addressof(heap)):
    out.append([libc.syscall(59, ctypes.c_void_p(p), None, None), ctypes.get_errno()])
    out.append([libc.syscall(322, -100, ctypes.c_void_p(p), None, None, 0), ctypes.get_errno()])
result = out
"#;
    let r = py(code);
    expect(&r, ExecStatus::Completed, None);
    assert_eq!(
        r.result_value(),
        serde_json::json!([[-1, 1], [-1, 1], [-1, 1], [-1, 1]])
    );
    // The layer is there: nsjail's policy + slot-init's three (no-network tier) + the runner's.
    let r = py(
        "result = [l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp_filters')]",
    );
    expect(&r, ExecStatus::Completed, None);
    assert_eq!(r.result_value(), serde_json::json!(["5"]));
    healthy();
}

#[test]
fn thread_bomb_hits_the_pids_limit() {
    let r = py(
        "import threading, time\nts = [threading.Thread(target=time.sleep, args=(5,)) for _ in range(64)]\nfor t in ts: t.start()",
    );
    expect(&r, ExecStatus::Failed, Some(error_type::PIDS_LIMIT));
    healthy();
}

#[test]
fn memory_bomb_is_killed_by_the_cgroup() {
    let r = py("x = []\nwhile True:\n    x.append(bytearray(16 * 1024 * 1024))");
    expect(&r, ExecStatus::Failed, Some(error_type::MEMORY_LIMIT));
    assert!(
        r.usage.peak_memory_bytes <= 128 * 1024 * 1024,
        "{:?}",
        r.usage
    );
    healthy();
}

#[test]
fn cpu_spin_and_sleep_time_out() {
    let r = py("while True: pass");
    expect(&r, ExecStatus::Timeout, Some(error_type::TIMEOUT));
    assert!(
        r.duration_us >= 1_500_000 && r.duration_us < 5_000_000,
        "{}",
        r.duration_us
    );
    let r = py("import time\ntime.sleep(60)");
    expect(&r, ExecStatus::Timeout, Some(error_type::TIMEOUT));
    healthy();
}

#[test]
fn filling_workspace_and_tmp_fails_cleanly() {
    for path in ["/workspace/big", "/tmp/big"] {
        let code = format!(
            "with open('{path}', 'wb') as f:\n    while True:\n        f.write(b'x' * 1048576)"
        );
        let r = py(&code);
        assert_eq!(
            r.status,
            ExecStatus::Failed,
            "{path}: {:?}",
            r.to_structured()
        );
        let t = r
            .error
            .as_ref()
            .map(|e| e.error_type.clone())
            .unwrap_or_default();
        assert!(
            t == "OSError" || t == error_type::MEMORY_LIMIT,
            "{path}: {t}"
        );
    }
    healthy();
}

#[test]
fn huge_stdout_is_truncated() {
    let r = py(
        "import sys\nfor _ in range(10 * 1024):\n    sys.stdout.write('y' * 1023 + '\\n')\nresult = 'done'",
    );
    expect(&r, ExecStatus::Completed, None);
    assert!(
        r.truncated.stdout && r.stdout.len() <= 64 * 1024 + 256,
        "{}",
        r.stdout.len()
    );
    assert_eq!(r.result_value(), serde_json::json!("done"));
    healthy();
}

#[test]
fn five_megabyte_result_is_refused() {
    let r = py("result = 'z' * (5 * 1024 * 1024)");
    expect(&r, ExecStatus::Failed, Some(error_type::RESULT_TOO_LARGE));
    assert!(r.truncated.result);
    healthy();
}

#[test]
fn exits_and_crashes_are_reported() {
    let r = py("import sys\nprint('before')\nsys.exit(3)");
    expect(&r, ExecStatus::Failed, Some(error_type::EXITED));
    assert!(r.stdout.contains("before"));
    let r = py("import os\nos._exit(0)");
    expect(&r, ExecStatus::Failed, Some(error_type::EXITED));
    let r = py("import ctypes\nctypes.string_at(0)");
    expect(&r, ExecStatus::Failed, Some(error_type::CRASHED));
    assert!(
        r.error
            .as_ref()
            .is_some_and(|e| e.message.contains("SIGSEGV"))
    );
    let r = py("import os\nos.kill(-1, 9)\nresult = 'alive'");
    assert_ne!(
        r.status,
        ExecStatus::Completed,
        "kill(-1) has nothing to kill but itself: {:?}",
        r.to_structured()
    );
    healthy();
}

#[test]
fn subprocess_and_exec_are_refused() {
    for code in [
        "import subprocess\nsubprocess.run(['/bin/ls'])",
        "import os\nos.system('ls')",
        "import os\nos.execv('/usr/bin/python3', ['python3', '-c', 'print(1)'])",
    ] {
        let r = py(code);
        expect(&r, ExecStatus::Failed, Some("PermissionError"));
    }
    // The kernel refuses exec even when the runner's guard is bypassed.
    let r = py("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n\
                result = [libc.execv(b'/usr/bin/python3', None), ctypes.get_errno()]");
    expect(&r, ExecStatus::Completed, None);
    assert_eq!(r.result_value(), serde_json::json!([-1, 1]));
    healthy();
}

#[test]
fn sockets_are_refused_but_unix_sockets_work() {
    let r = py("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)");
    expect(&r, ExecStatus::Failed, Some("PermissionError"));
    let r =
        py("import socket\na, b = socket.socketpair()\na.send(b'k')\nresult = b.recv(1).decode()");
    expect(&r, ExecStatus::Completed, None);
    healthy();
}

#[test]
fn host_files_are_invisible_and_usr_is_read_only() {
    for p in ["/etc/shadow", "/root", "/work", "/home"] {
        let r = py(&format!("import os\nresult = os.path.exists('{p}')"));
        expect(&r, ExecStatus::Completed, None);
        assert_eq!(r.result_value(), serde_json::json!(false), "{p} is visible");
    }
    let r = py("open('/usr/pwned', 'w').write('x')");
    expect(&r, ExecStatus::Failed, Some("OSError"));
    let r = py("import os\nresult = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())");
    expect(&r, ExecStatus::Completed, None);
    assert_eq!(
        r.result_value(),
        serde_json::json!([1]),
        "only the runner itself is visible"
    );
    healthy();
}

#[test]
fn ptrace_mount_unshare_are_refused() {
    let r = py(
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nout = []\n\
                for args in [(101, 16, 1, 0, 0), (165, b'none', b'/tmp', b'tmpfs', 0, None), (272, 0x10000000), (272, 0x20000)]:\n\
                \x20   out.append([libc.syscall(*args), ctypes.get_errno()])\nresult = out",
    );
    expect(&r, ExecStatus::Completed, None);
    assert_eq!(
        r.result_value(),
        serde_json::json!([[-1, 1], [-1, 1], [-1, 1], [-1, 1]])
    );
    healthy();
}

#[test]
fn unserializable_result_and_bad_utf8() {
    let r = py("result = object()");
    expect(&r, ExecStatus::Failed, Some(error_type::NOT_SERIALIZABLE));
    let r = py(
        "import os, sys\nsys.stdout.buffer.write(b'\\xff\\xfe ok\\n')\nos.write(2, b'\\xc3\\x28 native\\n')\nresult = 1",
    );
    expect(&r, ExecStatus::Completed, None);
    assert!(r.stdout.contains("ok"));
    healthy();
}

#[test]
fn oversized_empty_code_and_unknown_profile_are_rejected_before_a_slot() {
    // builder/typescript is used by no other test, so its slot counter is ours alone.
    let pools = &sandbox_support::SANDBOX.pools;
    let used = || pools.slots_used("builder", Language::TypeScript);
    let before = used();
    let big = "let x = 1;\n".repeat(12_000);
    for (code, input) in [
        (big.as_str(), "{}"),
        ("   ", "{}"),
        ("export default 1", "{not json"),
    ] {
        let r = run_on("builder", Language::TypeScript, code, input, None);
        expect(&r, ExecStatus::Failed, Some(error_type::INVALID_CODE));
    }
    let r = run_on("platinum", Language::Python, "result = 1", "{}", None);
    expect(&r, ExecStatus::Failed, Some(error_type::SANDBOX_FAILURE));
    assert!(
        r.error
            .as_ref()
            .is_some_and(|e| e.message.contains("platinum"))
    );
    assert_eq!(used(), before, "no slot was used");
    let r = py(&"x = 1\n".repeat(20_000));
    expect(&r, ExecStatus::Failed, Some(error_type::INVALID_CODE));
    healthy();
}

#[test]
fn code_of_exactly_the_size_limit_runs() {
    // The execute frame is then larger than one pipe read (64 KiB): the runner reads the
    // rest of the frame after the first chunk.
    let limit = paddock_shared::exec::MAX_CODE_BYTES;
    let head = "x = 0\n";
    let tail = "result = x\n";
    let line = "x += 1  # padding to the limit\n";
    let mut code = head.to_owned();
    while code.len() + line.len() + tail.len() <= limit {
        code.push_str(line);
    }
    let lines = (code.len() - head.len()) / line.len();
    code.push_str(&"#".repeat(limit - code.len() - tail.len() - 1));
    code.push('\n');
    code.push_str(tail);
    assert_eq!(code.len(), limit);
    let r = py(&code);
    expect(&r, ExecStatus::Completed, None);
    assert_eq!(r.result_json.as_deref(), Some(lines.to_string().as_str()));
    let r = py(&format!("{code} "));
    expect(&r, ExecStatus::Failed, Some(error_type::INVALID_CODE));
    healthy();
}

#[test]
fn cancel_kills_the_slot_and_reports_canceled() {
    use paddock_shared::exec::ExecutionRequest;
    use paddock_worker::executor::Executor;
    use tokio_util::sync::CancellationToken;
    let s = &*sandbox_support::SANDBOX;
    let cancel = CancellationToken::new();
    let req = ExecutionRequest {
        execution_id: "cancel-1".into(),
        namespace: "tests".into(),
        profile: "free".into(),
        language: Language::Python,
        code: "import time\nprint('started', flush=True)\ntime.sleep(60)".into(),
        input_json: "{}".into(),
        timeout_ms: None,
    };
    let started = std::time::Instant::now();
    let r = s.rt.block_on(async {
        let trigger = cancel.clone();
        // The caller cancels 300 ms in (a timer driving the cancel, not a wait in the test).
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            trigger.cancel();
        });
        s.pools.execute(req, cancel).await
    });
    expect(&r, ExecStatus::Canceled, Some(error_type::CANCELED));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "cancel took {:?}",
        started.elapsed()
    );
    healthy();
}
