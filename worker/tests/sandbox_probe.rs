//! The inside view: a probe prints what the sandboxed process sees (identity, mounts,
//! limits, network, environment, capabilities, seccomp) as JSON, compared with the profile.

mod sandbox_support;

use paddock_shared::exec::ExecStatus;
use paddock_shared::model::Language;
use paddock_worker::profile::Profiles;
use sandbox_support::{expect, run_on};
use serde_json::Value;

const PROBE: &str = r#"
import os, resource, socket
def rl(r):
    return list(resource.getrlimit(r))
mounts = []
for line in open('/proc/self/mounts'):
    dev, dst, fstype, opts = line.split()[:4]
    mounts.append({'dst': dst, 'fstype': fstype, 'opts': opts.split(',')})
status = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l)
ifaces = [l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]]
result = {
    'uid': os.getuid(), 'gid': os.getgid(), 'euid': os.geteuid(),
    'hostname': socket.gethostname(), 'cwd': os.getcwd(),
    'mounts': mounts,
    'limits': {'nofile': rl(resource.RLIMIT_NOFILE), 'fsize': rl(resource.RLIMIT_FSIZE),
               'cpu': rl(resource.RLIMIT_CPU), 'stack': rl(resource.RLIMIT_STACK)},
    'interfaces': ifaces,
    'env': sorted(os.environ),
    'cap_eff': status['CapEff'].strip(),
    'no_new_privs': status['NoNewPrivs'].strip(),
    'seccomp': status['Seccomp'].strip(),
    'seccomp_filters': int(status.get('Seccomp_filters', '0').strip()),
    'pids': sorted(int(p) for p in os.listdir('/proc') if p.isdigit()),
}
"#;

#[test]
fn inside_view_matches_the_free_profile() {
    let profiles = Profiles::embedded().expect("profiles");
    let tier = profiles.tier("free").expect("free").clone();
    let r = run_on("free", Language::Python, PROBE, "{}", None);
    expect(&r, ExecStatus::Completed, None);
    let v = r.result_value();
    assert_eq!(
        (v["uid"].clone(), v["gid"].clone(), v["euid"].clone()),
        (65534.into(), 65534.into(), 65534.into())
    );
    assert_eq!(v["hostname"], "paddock");
    assert_eq!(v["cwd"], "/workspace");
    assert_eq!(v["cap_eff"], "0000000000000000", "no capabilities");
    assert_eq!(v["no_new_privs"], "1");
    assert_eq!(v["seccomp"], "2", "seccomp filter mode");
    assert!(
        v["seccomp_filters"].as_u64().unwrap_or(0) >= 4,
        "nsjail's policy + slot-init's three: {}",
        v["seccomp_filters"]
    );
    assert_eq!(v["pids"], serde_json::json!([1]));
    assert_eq!(
        v["interfaces"],
        serde_json::json!(["lo"]),
        "empty network namespace"
    );
    let env: Vec<String> = serde_json::from_value(v["env"].clone()).expect("env");
    let mut want_env: Vec<String> = paddock_worker::jail::environment("free", &tier)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    want_env.sort();
    // The interpreter may add LC_CTYPE when coercing the locale; nothing else.
    let extra: Vec<&String> = env
        .iter()
        .filter(|k| !want_env.contains(k) && k.as_str() != "LC_CTYPE")
        .collect();
    assert!(extra.is_empty(), "unexpected environment: {extra:?}");

    let mb = 1024 * 1024;
    let lim = &v["limits"];
    assert_eq!(
        lim["nofile"],
        serde_json::json!([tier.open_files, tier.open_files])
    );
    assert_eq!(
        lim["fsize"],
        serde_json::json!([tier.file_size_mb * mb, tier.file_size_mb * mb])
    );
    assert_eq!(
        lim["cpu"],
        serde_json::json!([tier.cpu_time_s, tier.cpu_time_s])
    );
    assert_eq!(lim["stack"][0], serde_json::json!(tier.stack_mb * mb));

    let mounts = v["mounts"].as_array().expect("mounts");
    let find = |dst: &str| -> &Value {
        mounts
            .iter()
            .find(|m| m["dst"] == dst)
            .unwrap_or_else(|| panic!("no mount at {dst}: {mounts:?}"))
    };
    let opts =
        |m: &Value| -> Vec<String> { serde_json::from_value(m["opts"].clone()).expect("opts") };
    for (dst, mb_size) in [("/workspace", tier.workspace_mb), ("/tmp", tier.tmp_mb)] {
        let o = opts(find(dst));
        for flag in ["rw", "nosuid", "nodev", "noexec"] {
            assert!(o.contains(&flag.to_owned()), "{dst} lacks {flag}: {o:?}");
        }
        assert!(
            o.contains(&format!("size={}k", mb_size * 1024)),
            "{dst} size: {o:?}"
        );
    }
    for dst in [
        "/usr",
        "/lib",
        "/bin",
        "/paddock/runner",
        "/paddock/bin/slot-init",
    ] {
        assert!(
            opts(find(dst)).contains(&"ro".to_owned()),
            "{dst} must be read-only"
        );
    }
    assert_eq!(find("/proc")["fstype"], "proc");
    let allowed: Vec<String> = profiles
        .jail
        .mounts
        .iter()
        .map(|m| m.dst.clone())
        .chain(["/".to_owned()])
        .collect();
    for m in mounts {
        let dst = m["dst"].as_str().unwrap_or_default().to_owned();
        assert!(allowed.contains(&dst), "mount {dst} is not in jail.toml");
    }
}
