//! Sandbox profiles: the tier table, the jail layout and the seccomp policies of
//! `sandbox-profiles/` (embedded defaults or an override directory), validated at start-up
//! and rendered into one nsjail config per tier.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Embedded `sandbox-profiles/tiers.toml`.
pub const EMBEDDED_TIERS: &str = include_str!("../../sandbox-profiles/tiers.toml");
/// Embedded `sandbox-profiles/jail.toml`.
pub const EMBEDDED_JAIL: &str = include_str!("../../sandbox-profiles/jail.toml");
/// Embedded `sandbox-profiles/seccomp/base.kafel`.
pub const EMBEDDED_SECCOMP_BASE: &str = include_str!("../../sandbox-profiles/seccomp/base.kafel");
/// Embedded `sandbox-profiles/seccomp/no-network.kafel`.
pub const EMBEDDED_SECCOMP_NO_NETWORK: &str =
    include_str!("../../sandbox-profiles/seccomp/no-network.kafel");

/// File names inside a profile directory.
pub const TIERS_FILE: &str = "tiers.toml";
pub const JAIL_FILE: &str = "jail.toml";
pub const SECCOMP_BASE_FILE: &str = "seccomp/base.kafel";
pub const SECCOMP_NO_NETWORK_FILE: &str = "seccomp/no-network.kafel";

/// A profile that cannot be used; names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: key `{key}`: {message}")]
    Invalid {
        file: String,
        key: String,
        message: String,
    },
}

/// One tier's limits (one table of `tiers.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub wall_timeout_ms: u64,
    pub memory_mb: u64,
    pub pids: u64,
    pub cpu_time_s: u64,
    pub file_size_mb: u64,
    pub open_files: u64,
    pub workspace_mb: u64,
    pub tmp_mb: u64,
    pub stack_mb: u64,
    /// Egress allow-list entitlement; -1 = unlimited. Not enforced yet.
    pub network_hosts: i64,
    /// Only `none` today.
    pub egress: String,
    pub monthly_executions: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TiersFile {
    tiers: BTreeMap<String, Tier>,
}

/// Which namespaces the jail creates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespaces {
    pub pid: bool,
    pub mount: bool,
    pub net: bool,
    pub user: bool,
    pub ipc: bool,
    pub uts: bool,
    pub cgroup: bool,
}

/// What a mount is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountKind {
    BindRo,
    /// A character device bound read-write (dev nodes need the mount without `nodev`).
    Device,
    Tmpfs,
    Proc,
}

/// One mount of the jail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// Host path; `@runner_dir` and `@slot_init` are filled in by the worker.
    #[serde(default)]
    pub src: Option<String>,
    pub dst: String,
    pub kind: MountKind,
    /// A missing source is skipped instead of failing the jail.
    #[serde(default)]
    pub optional: bool,
    /// For tmpfs: `tmp` or `workspace` (which tier size applies).
    #[serde(default)]
    pub size: Option<String>,
    pub reason: String,
}

/// The jail layout shared by all tiers (`jail.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jail {
    pub hostname: String,
    pub uid: u32,
    pub gid: u32,
    pub cwd: String,
    pub path: String,
    pub namespaces: Namespaces,
    #[serde(rename = "mount")]
    pub mounts: Vec<Mount>,
}

/// Everything of `sandbox-profiles/`, validated.
#[derive(Debug, Clone)]
pub struct Profiles {
    pub tiers: BTreeMap<String, Tier>,
    pub jail: Jail,
    pub seccomp_base: String,
    pub seccomp_no_network: String,
    /// Where the profiles came from (`embedded` or the directory).
    pub source: String,
}

/// Host paths the worker fills into the jail's `@` placeholders.
#[derive(Debug, Clone)]
pub struct HostPaths {
    pub runner_dir: PathBuf,
    pub slot_init: PathBuf,
}

impl Profiles {
    /// The profiles compiled into the binary.
    ///
    /// # Errors
    /// Only if the embedded data is broken (a build-time mistake; tested).
    pub fn embedded() -> Result<Profiles, ProfileError> {
        Profiles::parse(
            "embedded",
            EMBEDDED_TIERS,
            EMBEDDED_JAIL,
            EMBEDDED_SECCOMP_BASE,
            EMBEDDED_SECCOMP_NO_NETWORK,
        )
    }

    /// Loads an override directory laid out like `sandbox-profiles/`.
    ///
    /// # Errors
    /// A missing file, a parse error or an invalid value, naming the file and key.
    pub fn load_dir(dir: &Path) -> Result<Profiles, ProfileError> {
        let read = |name: &str| {
            let file = dir.join(name);
            std::fs::read_to_string(&file).map_err(|source| ProfileError::Read { file, source })
        };
        Profiles::parse(
            &dir.display().to_string(),
            &read(TIERS_FILE)?,
            &read(JAIL_FILE)?,
            &read(SECCOMP_BASE_FILE)?,
            &read(SECCOMP_NO_NETWORK_FILE)?,
        )
    }

    fn parse(
        source: &str,
        tiers: &str,
        jail: &str,
        base: &str,
        no_net: &str,
    ) -> Result<Profiles, ProfileError> {
        let tiers_name = format!("{source}/{TIERS_FILE}");
        let jail_name = format!("{source}/{JAIL_FILE}");
        let tf: TiersFile = toml::from_str(tiers).map_err(|e| ProfileError::Parse {
            file: tiers_name.clone(),
            message: e.to_string(),
        })?;
        let jail: Jail = toml::from_str(jail).map_err(|e| ProfileError::Parse {
            file: jail_name.clone(),
            message: e.to_string(),
        })?;
        for (name, tier) in &tf.tiers {
            validate_tier(&tiers_name, name, tier)?;
        }
        if tf.tiers.is_empty() {
            return Err(invalid(&tiers_name, "tiers", "no tier defined"));
        }
        validate_jail(&jail_name, &jail)?;
        for (file, text) in [(SECCOMP_BASE_FILE, base), (SECCOMP_NO_NETWORK_FILE, no_net)] {
            if text.contains("DEFAULT") {
                return Err(invalid(
                    &format!("{source}/{file}"),
                    "DEFAULT",
                    "the worker appends `DEFAULT ALLOW` itself",
                ));
            }
        }
        Ok(Profiles {
            tiers: tf.tiers,
            jail,
            seccomp_base: base.to_owned(),
            seccomp_no_network: no_net.to_owned(),
            source: source.to_owned(),
        })
    }

    /// The tier named `name`.
    pub fn tier(&self, name: &str) -> Option<&Tier> {
        self.tiers.get(name)
    }

    /// The kafel policy for a tier (base rules, then the no-network rules, then the default).
    pub fn seccomp_policy(&self, tier: &Tier) -> String {
        let mut p = self.seccomp_base.clone();
        if tier.egress == "none" {
            p.push('\n');
            p.push_str(&self.seccomp_no_network);
        }
        p.push_str("\nDEFAULT ALLOW\n");
        p
    }

    /// Renders the nsjail protobuf-text config of one tier. `seccomp_file` is the host path
    /// of the tier's kafel policy; `env` the complete environment of the runner.
    pub fn render_nsjail(
        &self,
        tier_name: &str,
        tier: &Tier,
        paths: &HostPaths,
        seccomp_file: &Path,
        env: &[(String, String)],
    ) -> String {
        let j = &self.jail;
        let ns = &j.namespaces;
        let mut c = String::new();
        let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let _ = writeln!(
            c,
            "# generated by paddock-worker from {} for tier {tier_name}; do not edit",
            self.source
        );
        let _ = writeln!(c, "name: {}", q(&format!("paddock-{tier_name}")));
        let _ = writeln!(
            c,
            "mode: ONCE\nhostname: {}\ncwd: {}",
            q(&j.hostname),
            q(&j.cwd)
        );
        // The worker enforces the wall timeout itself (it kills the slot's cgroup).
        let _ = writeln!(
            c,
            "time_limit: 0\nlog_level: FATAL\nnice_level: 0\nkeep_env: false"
        );
        let _ = writeln!(
            c,
            "clone_newnet: {}\nclone_newuser: {}\nclone_newns: {}",
            ns.net, ns.user, ns.mount
        );
        let _ = writeln!(
            c,
            "clone_newpid: {}\nclone_newipc: {}\nclone_newuts: {}",
            ns.pid, ns.ipc, ns.uts
        );
        let _ = writeln!(c, "clone_newcgroup: {}", ns.cgroup);
        let _ = writeln!(
            c,
            "uidmap {{ inside_id: \"{0}\" outside_id: \"{0}\" count: 1 }}",
            j.uid
        );
        let _ = writeln!(
            c,
            "gidmap {{ inside_id: \"{0}\" outside_id: \"{0}\" count: 1 }}",
            j.gid
        );
        // Memory is the cgroup's job (RLIMIT_AS breaks node and numpy); the rest are rlimits.
        let _ = writeln!(c, "rlimit_as_type: INF\nrlimit_core: 0");
        let _ = writeln!(
            c,
            "rlimit_cpu: {}\nrlimit_fsize: {}",
            tier.cpu_time_s, tier.file_size_mb
        );
        let _ = writeln!(
            c,
            "rlimit_nofile: {}\nrlimit_stack: {}",
            tier.open_files, tier.stack_mb
        );
        let _ = writeln!(c, "rlimit_nproc_type: SOFT");
        for (k, v) in env {
            let _ = writeln!(c, "envar: {}", q(&format!("{k}={v}")));
        }
        let mut proc = false;
        for m in &j.mounts {
            let src = match m.src.as_deref() {
                Some("@runner_dir") => Some(paths.runner_dir.display().to_string()),
                Some("@slot_init") => Some(paths.slot_init.display().to_string()),
                Some(s) => Some(s.to_owned()),
                None => None,
            };
            match m.kind {
                MountKind::BindRo => {
                    let src = src.unwrap_or_default();
                    if m.optional && !Path::new(&src).exists() {
                        continue;
                    }
                    let _ = writeln!(
                        c,
                        "mount {{ src: {} dst: {} is_bind: true rw: false nosuid: true nodev: true }}",
                        q(&src),
                        q(&m.dst)
                    );
                }
                MountKind::Device => {
                    let src = src.unwrap_or_default();
                    let _ = writeln!(
                        c,
                        "mount {{ src: {} dst: {} is_bind: true rw: true nosuid: true noexec: true }}",
                        q(&src),
                        q(&m.dst)
                    );
                }
                MountKind::Tmpfs => {
                    let mb = if m.size.as_deref() == Some("workspace") {
                        tier.workspace_mb
                    } else {
                        tier.tmp_mb
                    };
                    let _ = writeln!(
                        c,
                        "mount {{ dst: {} fstype: \"tmpfs\" options: \"size={},mode=0700\" rw: true is_bind: false \
                         nosuid: true nodev: true noexec: true }}",
                        q(&m.dst),
                        mb * 1024 * 1024
                    );
                }
                MountKind::Proc => proc = true,
            }
        }
        let _ = writeln!(c, "mount_proc: {proc}");
        let _ = writeln!(
            c,
            "seccomp_policy_file: {}",
            q(&seccomp_file.display().to_string())
        );
        c
    }
}

fn invalid(file: &str, key: &str, message: &str) -> ProfileError {
    ProfileError::Invalid {
        file: file.to_owned(),
        key: key.to_owned(),
        message: message.to_owned(),
    }
}

fn validate_tier(file: &str, name: &str, t: &Tier) -> Result<(), ProfileError> {
    let key = |k: &str| format!("tiers.{name}.{k}");
    let names_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !names_ok {
        return Err(invalid(
            file,
            &format!("tiers.{name}"),
            "tier names are lower-case letters, digits and `-`",
        ));
    }
    let checks: [(&str, u64, u64, u64); 9] = [
        ("wall_timeout_ms", t.wall_timeout_ms, 100, 3_600_000),
        ("memory_mb", t.memory_mb, 32, 65_536),
        ("pids", t.pids, 2, 4096),
        ("cpu_time_s", t.cpu_time_s, 1, 3600),
        ("file_size_mb", t.file_size_mb, 1, 65_536),
        ("open_files", t.open_files, 16, 65_536),
        ("workspace_mb", t.workspace_mb, 1, 65_536),
        ("tmp_mb", t.tmp_mb, 1, 65_536),
        ("stack_mb", t.stack_mb, 1, 1024),
    ];
    for (k, v, lo, hi) in checks {
        if v < lo || v > hi {
            return Err(invalid(
                file,
                &key(k),
                &format!("{v} is outside {lo}..={hi}"),
            ));
        }
    }
    if t.network_hosts < -1 {
        return Err(invalid(
            file,
            &key("network_hosts"),
            "must be -1 (unlimited) or a count",
        ));
    }
    if t.egress != "none" {
        return Err(invalid(
            file,
            &key("egress"),
            &format!(
                "`{}` is not supported: allow-listed egress is not enforced yet, only `none`",
                t.egress
            ),
        ));
    }
    Ok(())
}

fn validate_jail(file: &str, j: &Jail) -> Result<(), ProfileError> {
    let ns = &j.namespaces;
    for (k, on) in [
        ("pid", ns.pid),
        ("mount", ns.mount),
        ("net", ns.net),
        ("user", ns.user),
        ("ipc", ns.ipc),
        ("uts", ns.uts),
        ("cgroup", ns.cgroup),
    ] {
        if !on {
            return Err(invalid(
                file,
                &format!("namespaces.{k}"),
                "every namespace is required by the security model",
            ));
        }
    }
    if j.uid == 0 || j.gid == 0 {
        return Err(invalid(file, "uid", "the sandbox never runs as root"));
    }
    if !j.cwd.starts_with('/') {
        return Err(invalid(file, "cwd", "must be an absolute path"));
    }
    for (i, m) in j.mounts.iter().enumerate() {
        let key = |k: &str| format!("mount[{i}].{k}");
        if m.reason.trim().is_empty() {
            return Err(invalid(
                file,
                &key("reason"),
                "every mount carries its reason",
            ));
        }
        if !m.dst.starts_with('/') {
            return Err(invalid(file, &key("dst"), "must be an absolute path"));
        }
        match m.kind {
            MountKind::BindRo | MountKind::Device
                if m.src.as_deref().is_none_or(|s| s.is_empty()) =>
            {
                return Err(invalid(file, &key("src"), "a bind mount needs a source"));
            }
            MountKind::Tmpfs if !matches!(m.size.as_deref(), Some("tmp") | Some("workspace")) => {
                return Err(invalid(
                    file,
                    &key("size"),
                    "a tmpfs takes `size = \"tmp\"` or `\"workspace\"`",
                ));
            }
            _ => {}
        }
        if m.kind == MountKind::Device && !m.dst.starts_with("/dev/") {
            return Err(invalid(
                file,
                &key("dst"),
                "devices are mounted under /dev/",
            ));
        }
    }
    for needed in [
        "/paddock/runner",
        "/paddock/bin/slot-init",
        "/workspace",
        "/tmp",
    ] {
        if !j.mounts.iter().any(|m| m.dst == needed) {
            return Err(invalid(
                file,
                "mount",
                &format!("a mount at {needed} is required"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_profiles_are_valid_and_match_the_seed() {
        let p = Profiles::embedded().expect("embedded profiles");
        let t = |n: &str| p.tier(n).expect("tier").clone();
        let want = [
            ("free", 10_000, 128, 16),
            ("builder", 30_000, 256, 32),
            ("pro", 90_000, 512, 64),
            ("enterprise", 300_000, 2048, 128),
        ];
        for (name, ms, mb, pids) in want {
            let tier = t(name);
            assert_eq!(
                (tier.wall_timeout_ms, tier.memory_mb, tier.pids),
                (ms, mb, pids),
                "{name}"
            );
        }
        assert_eq!(t("enterprise").network_hosts, -1);
        assert!(p.seccomp_policy(&t("free")).contains("socket(domain"));
    }

    fn with_tiers(edit: impl Fn(String) -> String) -> Result<Profiles, ProfileError> {
        Profiles::parse(
            "dir",
            &edit(EMBEDDED_TIERS.to_owned()),
            EMBEDDED_JAIL,
            EMBEDDED_SECCOMP_BASE,
            EMBEDDED_SECCOMP_NO_NETWORK,
        )
    }

    #[test]
    fn broken_values_name_file_and_key() {
        let e = with_tiers(|s| s.replacen("memory_mb = 128", "memory_mb = 1", 1))
            .expect_err("too small");
        assert_eq!(
            e.to_string(),
            "dir/tiers.toml: key `tiers.free.memory_mb`: 1 is outside 32..=65536"
        );
        let e = with_tiers(|s| s.replacen("\negress = \"none\"", "\negress = \"allow-list\"", 1))
            .expect_err("egress");
        assert!(e.to_string().contains("key `tiers.free.egress`"), "{e}");
        let e = with_tiers(|s| s.replacen("pids = 16", "pids = 16\nbogus = 1", 1))
            .expect_err("unknown key");
        assert!(
            e.to_string().contains("dir/tiers.toml") && e.to_string().contains("bogus"),
            "{e}"
        );
    }

    #[test]
    fn broken_jail_names_the_mount() {
        let jail = EMBEDDED_JAIL.replacen(
            "reason = \"interpreters (/usr/bin/python3, /usr/bin/node) and their standard libraries, read-only\"",
            "reason = \"\"",
            1,
        );
        let e = Profiles::parse(
            "d",
            EMBEDDED_TIERS,
            &jail,
            EMBEDDED_SECCOMP_BASE,
            EMBEDDED_SECCOMP_NO_NETWORK,
        )
        .expect_err("empty reason");
        assert_eq!(
            e.to_string(),
            "d/jail.toml: key `mount[0].reason`: every mount carries its reason"
        );
        let jail = EMBEDDED_JAIL.replacen("net = true", "net = false", 1);
        let e = Profiles::parse(
            "d",
            EMBEDDED_TIERS,
            &jail,
            EMBEDDED_SECCOMP_BASE,
            EMBEDDED_SECCOMP_NO_NETWORK,
        )
        .expect_err("net off");
        assert!(e.to_string().contains("namespaces.net"), "{e}");
    }

    #[test]
    fn override_dir_missing_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = Profiles::load_dir(dir.path()).expect_err("empty dir");
        assert!(e.to_string().contains("tiers.toml"), "{e}");
    }

    #[test]
    fn rendered_config_carries_limits_and_mounts() {
        let p = Profiles::embedded().expect("embedded");
        let tier = p.tier("free").expect("free").clone();
        let paths = HostPaths {
            runner_dir: "/run/r".into(),
            slot_init: "/run/s".into(),
        };
        let cfg = p.render_nsjail(
            "free",
            &tier,
            &paths,
            Path::new("/run/free.kafel"),
            &[("HOME".into(), "/workspace".into())],
        );
        assert!(cfg.contains("rlimit_cpu: 10\n"));
        assert!(cfg.contains("src: \"/run/r\" dst: \"/paddock/runner\""));
        assert!(cfg.contains("size=16777216"));
        assert!(cfg.contains("envar: \"HOME=/workspace\""));
        assert!(cfg.contains("mount_proc: true"));
    }
}
