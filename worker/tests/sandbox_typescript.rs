//! The same hostile-code contract for TypeScript (node): each attack is contained, typed,
//! and the next execution on the same pools is correct.

mod sandbox_support;

use paddock_shared::exec::{ExecStatus, error_type};
use paddock_shared::model::Language;
use sandbox_support::{expect, next_is_healthy, run_on, ts};

fn healthy() {
    next_is_healthy(Language::TypeScript);
}

#[test]
fn default_export_gets_input() {
    let r = run_on(
        "free",
        Language::TypeScript,
        "export default function (input: { n: number }): number { console.log('hi'); return input.n * 2; }",
        "{\"n\": 21}",
        None,
    );
    expect(&r, ExecStatus::Completed, None);
    assert_eq!(r.result_value(), serde_json::json!(42));
    assert_eq!(r.stdout, "hi\n");
}

#[test]
fn child_process_is_refused() {
    for code in [
        "import { execSync } from 'child_process'; export default () => execSync('ls').toString();",
        "import { spawnSync } from 'child_process'; export default () => spawnSync('/bin/ls').status;",
    ] {
        let r = ts(code);
        expect(&r, ExecStatus::Failed, Some("Error"));
        assert!(
            r.error
                .as_ref()
                .is_some_and(|e| e.message.contains("not allowed")),
            "{:?}",
            r.error
        );
    }
    healthy();
}

#[test]
fn sockets_are_refused() {
    let r = ts(
        "import * as net from 'net';\nexport default () => new Promise((ok, fail) => {\n\
                const s = net.connect(80, '1.1.1.1'); s.on('error', fail); s.on('connect', ok); });",
    );
    expect(&r, ExecStatus::Failed, Some("Error"));
    assert!(
        r.error
            .as_ref()
            .is_some_and(|e| e.message.contains("EACCES")),
        "{:?}",
        r.error
    );
    healthy();
}

#[test]
fn memory_bomb_is_stopped() {
    let r = ts("const a: number[][] = []; while (true) a.push(new Array(1e6).fill(1));");
    expect(&r, ExecStatus::Failed, Some(error_type::MEMORY_LIMIT));
    healthy();
}

#[test]
fn spin_and_pending_promise_time_out() {
    let r = ts("while (true) {}");
    expect(&r, ExecStatus::Timeout, Some(error_type::TIMEOUT));
    let r = ts("export default async () => { await new Promise(r => setTimeout(r, 60000)); }");
    expect(&r, ExecStatus::Timeout, Some(error_type::TIMEOUT));
    healthy();
}

#[test]
fn thread_bomb_hits_the_pids_limit() {
    let r = ts("import { Worker } from 'worker_threads';\n\
                for (let i = 0; i < 40; i++) new Worker('setInterval(() => {}, 1000)', { eval: true });\n\
                export default () => new Promise(r => setTimeout(r, 1000));");
    expect(&r, ExecStatus::Failed, Some(error_type::PIDS_LIMIT));
    healthy();
}

#[test]
fn exit_files_and_outputs() {
    let r = ts("process.exit(3)");
    expect(&r, ExecStatus::Failed, Some(error_type::EXITED));
    let r = ts(
        "import * as fs from 'fs'; export default () => fs.readFileSync('/etc/shadow', 'utf8');",
    );
    expect(&r, ExecStatus::Failed, Some("Error"));
    let r =
        ts("import * as fs from 'fs'; export default () => fs.writeFileSync('/usr/pwned', 'x');");
    expect(&r, ExecStatus::Failed, Some("Error"));
    assert!(
        r.error
            .as_ref()
            .is_some_and(|e| e.message.contains("EROFS"))
    );
    let r = ts("export default () => 'z'.repeat(5 * 1024 * 1024);");
    expect(&r, ExecStatus::Failed, Some(error_type::RESULT_TOO_LARGE));
    let r = ts("for (let i = 0; i < 10240; i++) console.log('y'.repeat(1023));\nexport default 1;");
    expect(&r, ExecStatus::Completed, None);
    assert!(r.truncated.stdout);
    let r = ts("export default () => { const o: any = {}; o.self = o; return o; }");
    expect(&r, ExecStatus::Failed, Some(error_type::NOT_SERIALIZABLE));
    let r = ts(
        "import * as fs from 'fs';\nexport default () => { fs.writeFileSync('/workspace/f', Buffer.alloc(64 << 20)); }",
    );
    expect(&r, ExecStatus::Failed, Some("Error"));
    healthy();
}

#[test]
fn syntax_errors_are_rejected_before_a_slot() {
    let r = ts("export default function ( {");
    expect(&r, ExecStatus::Failed, Some(error_type::INVALID_CODE));
    healthy();
}
