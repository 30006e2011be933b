//! The jail launch: materialises the runtime directory (runners, slot-init, one nsjail
//! config and kafel policy per tier) at start-up and builds the nsjail command of a slot.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use paddock_shared::model::Language;

use crate::profile::{HostPaths, Profiles, Tier};
use crate::runners;

/// Where slot-init is mounted inside the jail.
pub const JAIL_SLOT_INIT: &str = "/paddock/bin/slot-init";
/// Where the sandbox Python packages are mounted inside the jail.
pub const JAIL_PYTHON_PACKAGES: &str = "/opt/paddock/python";

/// Failures preparing the runtime directory.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    #[error("nsjail not found at {0}: run `make deps` (or set PADDOCK_NSJAIL / nsjail_path)")]
    NoNsjail(PathBuf),
    #[error("slot-init binary not found at {0}: build it with `cargo build -p paddock-worker`")]
    NoSlotInit(PathBuf),
    #[error("preparing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JailError + '_ {
    move |source| JailError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The prepared launch data.
#[derive(Debug, Clone)]
pub struct Launcher {
    nsjail: PathBuf,
    configs: BTreeMap<String, PathBuf>,
    profiles: Profiles,
    /// `runner.pyc` was compiled at start-up (else slots run `runner.py`).
    python_compiled: bool,
}

/// Root of the runtime directories used when the data directory cannot be searched by the
/// sandbox user (see [`runtime_dir_for`]).
pub const FALLBACK_RUNTIME_ROOT: &str = "/var/lib/paddock-worker/runtime";

/// Where the runtime directory goes. nsjail binds the runner files and slot-init from inside
/// the jail's user namespace, so uid 65534 must be able to search every directory down to
/// them: a data directory under a `0700` parent (e.g. `mktemp -d`) would make every slot fail
/// to start. Then the runtime directory moves to a directory of its own under
/// [`FALLBACK_RUNTIME_ROOT`], named after the data directory.
pub fn runtime_dir_for(data: &Path) -> PathBuf {
    if searchable_by_others(data) {
        return data.join("runtime");
    }
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    PathBuf::from(FALLBACK_RUNTIME_ROOT).join(format!("{:016x}", h.finish()))
}

/// The file in a fallback runtime directory that names the data directory it serves.
pub const RUNTIME_OWNER_FILE: &str = "data-dir";

/// A fallback runtime directory without [`RUNTIME_OWNER_FILE`] (written by a worker before
/// this file existed, or by one that is starting right now) is removed only when it is
/// older than this.
const OWNERLESS_GRACE: std::time::Duration = std::time::Duration::from_secs(600);

/// Records that `runtime` (a directory under `root`, made by [`Launcher::prepare`]) serves
/// `data`, and removes the other directories under `root` whose data directory no longer
/// exists. Every data directory that was ever private (tests' `mktemp -d`, for one)
/// otherwise leaves its ~10 MB runtime behind for good. Returns how many directories it
/// removed; failures to remove are logged, never fatal.
///
/// # Errors
/// Writing the owner file or listing `root`, naming the path.
pub fn claim_fallback_runtime(
    root: &Path,
    runtime: &Path,
    data: &Path,
) -> Result<usize, JailError> {
    let owner_file = runtime.join(RUNTIME_OWNER_FILE);
    std::fs::write(&owner_file, data.as_os_str().as_encoded_bytes()).map_err(io(&owner_file))?;
    let mut removed = 0;
    for entry in std::fs::read_dir(root).map_err(io(root))?.flatten() {
        let dir = entry.path();
        if dir == runtime || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let stale = match std::fs::read(dir.join(RUNTIME_OWNER_FILE)) {
            Ok(owner) => {
                use std::os::unix::ffi::OsStrExt;
                !Path::new(std::ffi::OsStr::from_bytes(&owner)).exists()
            }
            Err(_) => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > OWNERLESS_GRACE),
        };
        if !stale {
            continue;
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => removed += 1,
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, "stale runtime directory not removed")
            }
        }
    }
    Ok(removed)
}

/// True when "others" have search (x) permission on `dir` and every directory above it.
fn searchable_by_others(dir: &Path) -> bool {
    dir.ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .all(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

impl Launcher {
    /// Writes the runtime directory: `runner/` (H3's runners), `bin/slot-init` (copied),
    /// `seccomp/<tier>.kafel`, `nsjail/<tier>.cfg`. Every directory is 0755 and every file
    /// 0644 (slot-init 0755) so nsjail can bind them for uid 65534.
    ///
    /// # Errors
    /// nsjail or slot-init missing, or an I/O failure naming the path.
    pub fn prepare(
        profiles: &Profiles,
        nsjail: &Path,
        slot_init: &Path,
        runtime: &Path,
    ) -> Result<Launcher, JailError> {
        if !nsjail.is_file() {
            return Err(JailError::NoNsjail(nsjail.to_owned()));
        }
        if !slot_init.is_file() {
            return Err(JailError::NoSlotInit(slot_init.to_owned()));
        }
        let mkdir = |p: &Path| -> Result<(), JailError> {
            std::fs::create_dir_all(p).map_err(io(p))?;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).map_err(io(p))
        };
        mkdir(runtime)?;
        let runner_dir = runtime.join("runner");
        mkdir(&runner_dir)?;
        runners::materialize(&runner_dir).map_err(io(&runner_dir))?;
        let jail_source = format!(
            "{}/{}",
            runners::JAIL_RUNNER_DIR,
            runners::PYTHON_RUNNER_FILE
        );
        let python_compiled = match runners::precompile_python(&runner_dir, &jail_source) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "Python runner not precompiled; slots compile runner.py at start-up");
                let _ = std::fs::remove_file(runner_dir.join(runners::PYTHON_RUNNER_PYC));
                false
            }
        };
        let bin = runtime.join("bin");
        mkdir(&bin)?;
        let init = bin.join("slot-init");
        let tmp = bin.join(".slot-init.tmp");
        let _ = std::fs::remove_file(&tmp);
        // A hard link costs nothing (the debug binary is ~100 MB); copy across filesystems.
        if std::fs::hard_link(slot_init, &tmp).is_err() {
            std::fs::copy(slot_init, &tmp).map_err(io(&tmp))?;
        }
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &init).map_err(io(&init))?;
        let seccomp_dir = runtime.join("seccomp");
        let cfg_dir = runtime.join("nsjail");
        mkdir(&seccomp_dir)?;
        mkdir(&cfg_dir)?;
        let paths = HostPaths {
            runner_dir,
            slot_init: init,
        };
        let mut configs = BTreeMap::new();
        for (name, tier) in &profiles.tiers {
            let kafel = seccomp_dir.join(format!("{name}.kafel"));
            std::fs::write(&kafel, profiles.seccomp_policy(tier)).map_err(io(&kafel))?;
            let cfg = cfg_dir.join(format!("{name}.cfg"));
            let text = profiles.render_nsjail(name, tier, &paths, &kafel, &environment(name, tier));
            std::fs::write(&cfg, text).map_err(io(&cfg))?;
            configs.insert(name.clone(), cfg);
        }
        Ok(Launcher {
            nsjail: nsjail.to_owned(),
            configs,
            profiles: profiles.clone(),
            python_compiled,
        })
    }

    /// The profiles the launcher was prepared with.
    pub fn profiles(&self) -> &Profiles {
        &self.profiles
    }

    /// The nsjail command for one slot of `tier_name` running `language`, or `None` for an
    /// unknown tier. Standard streams are left for the caller to pipe. `on_demand`: the
    /// slot is for an execution that is already waiting (the runner skips its warm-up).
    pub fn command(&self, tier_name: &str, language: Language, on_demand: bool) -> Option<Command> {
        let cfg = self.configs.get(tier_name)?;
        let tier = self.profiles.tier(tier_name)?;
        let mut cmd = Command::new(&self.nsjail);
        cmd.arg("--config").arg(cfg).arg("--").arg(JAIL_SLOT_INIT);
        if tier.egress == "none" {
            cmd.arg("--no-network");
        }
        cmd.arg("--");
        let heap = u32::try_from(tier.memory_mb * 3 / 4).ok();
        let start = runners::RunnerStart {
            compiled: self.python_compiled,
            on_demand,
        };
        cmd.args(runners::runner_argv_with(
            language,
            runners::JAIL_RUNNER_DIR,
            heap,
            start,
        ));
        cmd.env_clear();
        Some(cmd)
    }
}

/// The complete environment of a runner (slot-protocol.md "Environment"); never a credential.
pub fn environment(tier_name: &str, tier: &Tier) -> Vec<(String, String)> {
    let _ = tier;
    vec![
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("HOME".into(), "/workspace".into()),
        ("LANG".into(), "C.UTF-8".into()),
        (
            runners::PYTHON_PACKAGES_ENV.into(),
            JAIL_PYTHON_PACKAGES.into(),
        ),
        ("PADDOCK_PROFILE".into(), tier_name.into()),
        ("PADDOCK_NETWORK".into(), "none".into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_dir_stays_in_a_searchable_data_dir_and_moves_out_of_a_private_one() {
        let top = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let data = top.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let moved = runtime_dir_for(&data);
        assert!(
            moved.starts_with(FALLBACK_RUNTIME_ROOT),
            "{}",
            moved.display()
        );
        assert_eq!(
            moved,
            runtime_dir_for(&data),
            "stable for the same data dir"
        );
        std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        assert_eq!(runtime_dir_for(&data), data.join("runtime"));
    }

    #[test]
    fn claiming_a_fallback_runtime_removes_those_of_vanished_data_dirs_only() {
        let root = tempfile::tempdir().expect("tempdir");
        let live_data = tempfile::tempdir().expect("tempdir");
        let mine = root.path().join("mine");
        let live = root.path().join("live");
        let gone = root.path().join("gone");
        let fresh_ownerless = root.path().join("starting");
        for (dir, owner) in [
            (&live, Some(live_data.path().to_owned())),
            (&gone, Some(root.path().join("no-such-data-dir"))),
            (&fresh_ownerless, None),
        ] {
            std::fs::create_dir_all(dir.join("runner")).expect("mkdir");
            std::fs::write(dir.join("runner/runner.py"), "x").expect("write");
            if let Some(owner) = owner {
                std::fs::write(
                    dir.join(RUNTIME_OWNER_FILE),
                    owner.as_os_str().as_encoded_bytes(),
                )
                .expect("write owner");
            }
        }
        std::fs::create_dir_all(&mine).expect("mkdir");
        let removed =
            claim_fallback_runtime(root.path(), &mine, Path::new("/my/data")).expect("claim");
        assert_eq!(removed, 1);
        assert!(
            !gone.exists(),
            "the runtime of a deleted data dir is removed"
        );
        assert!(live.join("runner/runner.py").exists(), "a live one is kept");
        assert!(
            fresh_ownerless.exists(),
            "an ownerless one younger than the grace period may be a worker starting now"
        );
        assert_eq!(
            std::fs::read_to_string(mine.join(RUNTIME_OWNER_FILE)).expect("owner"),
            "/my/data"
        );
        // Claiming again keeps its own directory even though /my/data does not exist.
        assert_eq!(
            claim_fallback_runtime(root.path(), &mine, Path::new("/my/data")).expect("claim"),
            0
        );
        assert!(mine.exists());
    }
}
