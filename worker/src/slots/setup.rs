//! Start-up of the sandbox: profiles (embedded or override), cgroup detection, the runtime
//! directory, and the pool set, from a [`Config`]; every failure names what to fix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use paddock_shared::model::Language;

use super::{PoolSet, PoolSettings};
use crate::cgroup::{CgroupError, Cgroups};
use crate::config::Config;
use crate::jail::{JailError, Launcher};
use crate::profile::{ProfileError, Profiles};

/// Environment variable that overrides the nsjail binary (tests, development).
pub const NSJAIL_ENV: &str = "PADDOCK_NSJAIL";

/// Why the sandbox cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("sandbox profile: {0}")]
    Profile(#[from] ProfileError),
    #[error("cgroups: {0}")]
    Cgroup(#[from] CgroupError),
    #[error("jail: {0}")]
    Jail(#[from] JailError),
    #[error("data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("pools.\"{0}\": no such profile in the sandbox profiles")]
    UnknownPoolProfile(String),
}

/// Loads and validates the profiles the config names.
///
/// # Errors
/// A broken profile, naming the file and key.
pub fn load_profiles(cfg: &Config) -> Result<Profiles, StartError> {
    Ok(match &cfg.sandbox_profiles_dir {
        Some(d) => Profiles::load_dir(d)?,
        None => Profiles::embedded()?,
    })
}

/// The nsjail binary to use: `PADDOCK_NSJAIL` when set, else the config's `nsjail_path`.
pub fn nsjail_path(cfg: &Config) -> PathBuf {
    std::env::var_os(NSJAIL_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| cfg.nsjail_path.clone())
}

/// The pool settings of the config.
///
/// # Errors
/// A `pools` key naming a profile that does not exist.
pub fn pool_settings(cfg: &Config, profiles: &Profiles) -> Result<PoolSettings, StartError> {
    let mut targets = BTreeMap::new();
    for (k, v) in &cfg.pools {
        let (p, l) = k.split_once('/').unwrap_or((k.as_str(), ""));
        let lang = Language::parse(l).ok_or_else(|| StartError::UnknownPoolProfile(k.clone()))?;
        if profiles.tier(p).is_none() {
            return Err(StartError::UnknownPoolProfile(k.clone()));
        }
        targets.insert((p.to_owned(), lang), *v);
    }
    Ok(PoolSettings {
        targets,
        default_target: cfg.default_pool_target,
        refill_parallelism: cfg.refill_parallelism,
        start_timeout: Duration::from_millis(cfg.slot_start_timeout_ms),
    })
}

/// Everything short of starting pools: validated profiles, cgroups, runtime dir.
///
/// # Errors
/// See [`StartError`].
pub fn prepare(
    cfg: &Config,
    slot_init: &Path,
) -> Result<(Launcher, Arc<Cgroups>, PoolSettings), StartError> {
    let profiles = load_profiles(cfg)?;
    let settings = pool_settings(cfg, &profiles)?;
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| StartError::DataDir {
        path: cfg.data_dir.clone(),
        source,
    })?;
    let data = cfg
        .data_dir
        .canonicalize()
        .map_err(|source| StartError::DataDir {
            path: cfg.data_dir.clone(),
            source,
        })?;
    let runtime = crate::jail::runtime_dir_for(&data);
    let launcher = Launcher::prepare(&profiles, &nsjail_path(cfg), slot_init, &runtime)?;
    let fallback_root = Path::new(crate::jail::FALLBACK_RUNTIME_ROOT);
    if runtime.starts_with(fallback_root) {
        let removed = crate::jail::claim_fallback_runtime(fallback_root, &runtime, &data)?;
        if removed > 0 {
            tracing::info!(removed, root = %fallback_root.display(), "removed stale runtime directories");
        }
    }
    let cgroups = Arc::new(Cgroups::detect()?);
    tracing::info!(layout = ?cgroups.layout(), profiles = %profiles.source, "sandbox prepared");
    Ok((launcher, cgroups, settings))
}

/// Prepares and starts the pool set (inside a tokio runtime).
///
/// # Errors
/// See [`StartError`].
pub fn start(cfg: &Config, slot_init: &Path) -> Result<PoolSet, StartError> {
    let (launcher, cgroups, settings) = prepare(cfg, slot_init)?;
    Ok(PoolSet::start(launcher, cgroups, settings))
}
