//! Worker configuration: one TOML file (`--config`), every key defaulted by a named
//! constant, unknown keys refused, `PADDOCK_WORKER_*` environment overrides, validation
//! that reports every problem at once and names the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./data/worker";
/// Default nsjail binary.
pub const DEFAULT_NSJAIL_PATH: &str = "/opt/paddock/bin/nsjail";
/// Default warm slots for a pool not listed in `pools`.
pub const DEFAULT_POOL_TARGET: u32 = 1;
/// Default warm pool sizes, good for a 2-core machine: the free tier is the busy one.
pub const DEFAULT_POOLS: &[(&str, u32)] = &[("free/python", 4), ("free/typescript", 2)];
/// Default slot start-ups running at once in the background.
pub const DEFAULT_REFILL_PARALLELISM: usize = 2;
/// Default time a slot may take to become ready, in milliseconds.
pub const DEFAULT_SLOT_START_TIMEOUT_MS: u64 = 15_000;
/// Default drain deadline at shutdown, in milliseconds.
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;
/// Default log format.
pub const DEFAULT_LOG_FORMAT: &str = "text";

/// The worker configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// State directory (socket, runtime files).
    pub data_dir: PathBuf,
    /// Unix socket of the protocol server (default `<data_dir>/worker.sock`).
    pub listen_unix: Option<PathBuf>,
    /// Optional TCP address of the protocol server.
    pub listen_tcp: Option<String>,
    /// nsjail binary.
    pub nsjail_path: PathBuf,
    /// slot-init binary (default: `paddock-slot-init` beside this executable).
    pub slot_init_path: Option<PathBuf>,
    /// Directory overriding the embedded sandbox-profiles.
    pub sandbox_profiles_dir: Option<PathBuf>,
    /// Warm slots per `"profile/language"`; 0 = a fresh jail per execution.
    pub pools: BTreeMap<String, u32>,
    /// Warm slots for pools not listed.
    pub default_pool_target: u32,
    pub refill_parallelism: usize,
    pub slot_start_timeout_ms: u64,
    pub shutdown_grace_ms: u64,
    /// `text` or `json`.
    pub log_format: String,
    /// Edge address (a later issue).
    pub edge: Option<String>,
    pub join_token: Option<String>,
    pub join_token_file: Option<PathBuf>,
    /// PEM certificate(s) to trust for a `tls:` edge (its CA or its self-signed
    /// certificate); unset = the system roots.
    pub edge_ca: Option<PathBuf>,
    /// Name the edge's certificate must carry (SNI too); unset = the host of `edge`.
    pub edge_server_name: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            listen_unix: None,
            listen_tcp: None,
            nsjail_path: PathBuf::from(DEFAULT_NSJAIL_PATH),
            slot_init_path: None,
            sandbox_profiles_dir: None,
            pools: DEFAULT_POOLS
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            default_pool_target: DEFAULT_POOL_TARGET,
            refill_parallelism: DEFAULT_REFILL_PARALLELISM,
            slot_start_timeout_ms: DEFAULT_SLOT_START_TIMEOUT_MS,
            shutdown_grace_ms: DEFAULT_SHUTDOWN_GRACE_MS,
            log_format: DEFAULT_LOG_FORMAT.to_owned(),
            edge: None,
            join_token: None,
            join_token_file: None,
            edge_ca: None,
            edge_server_name: None,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("invalid configuration:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

impl Config {
    /// Loads `file` (or the defaults), then applies `PADDOCK_WORKER_*` from `env`.
    ///
    /// # Errors
    /// An unreadable file, a parse error naming the key, or every invalid value at once.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut cfg = match file {
            Some(f) => {
                let text = std::fs::read_to_string(f).map_err(|source| ConfigError::Read {
                    file: f.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    file: f.to_owned(),
                    message: e.to_string(),
                })?
            }
            None => Config::default(),
        };
        let mut problems = Vec::new();
        for (k, v) in env {
            let Some(key) = k.strip_prefix("PADDOCK_WORKER_") else {
                continue;
            };
            let num = |p: &mut Vec<String>| -> Option<u64> {
                v.parse()
                    .map_err(|_| p.push(format!("{k}: `{v}` is not a number")))
                    .ok()
            };
            match key {
                "DATA_DIR" => cfg.data_dir = v.clone().into(),
                "LISTEN_UNIX" => cfg.listen_unix = Some(v.clone().into()),
                "LISTEN_TCP" => cfg.listen_tcp = Some(v.clone()),
                "NSJAIL_PATH" => cfg.nsjail_path = v.clone().into(),
                "SLOT_INIT_PATH" => cfg.slot_init_path = Some(v.clone().into()),
                "SANDBOX_PROFILES_DIR" => cfg.sandbox_profiles_dir = Some(v.clone().into()),
                "DEFAULT_POOL_TARGET" => {
                    if let Some(n) = num(&mut problems) {
                        cfg.default_pool_target = n as u32;
                    }
                }
                "REFILL_PARALLELISM" => {
                    if let Some(n) = num(&mut problems) {
                        cfg.refill_parallelism = n as usize;
                    }
                }
                "SLOT_START_TIMEOUT_MS" => {
                    if let Some(n) = num(&mut problems) {
                        cfg.slot_start_timeout_ms = n;
                    }
                }
                "SHUTDOWN_GRACE_MS" => {
                    if let Some(n) = num(&mut problems) {
                        cfg.shutdown_grace_ms = n;
                    }
                }
                "LOG_FORMAT" => cfg.log_format = v.clone(),
                "EDGE" => cfg.edge = Some(v.clone()),
                "JOIN_TOKEN" => cfg.join_token = Some(v.clone()),
                "JOIN_TOKEN_FILE" => cfg.join_token_file = Some(v.clone().into()),
                "EDGE_CA" => cfg.edge_ca = Some(v.clone().into()),
                "EDGE_SERVER_NAME" => cfg.edge_server_name = Some(v.clone()),
                _ if key.starts_with("POOL_") => {
                    // PADDOCK_WORKER_POOL_FREE_PYTHON=4 → pools["free/python"] = 4
                    let rest = key["POOL_".len()..].to_ascii_lowercase();
                    match (rest.rsplit_once('_'), num(&mut problems)) {
                        (Some((p, l)), Some(n)) => {
                            cfg.pools.insert(format!("{p}/{l}"), n as u32);
                        }
                        (None, _) => problems.push(format!(
                            "{k}: expected PADDOCK_WORKER_POOL_<PROFILE>_<LANGUAGE>"
                        )),
                        _ => {}
                    }
                }
                // Variables tools use to point at the binary (tests, benches, run.sh) are
                // not settings, like PADDOCK_EDGE_BIN / PADDOCK_EDGE_LOG on the edge.
                "BIN" | "LOG" => {}
                _ => problems.push(format!("{k}: unknown setting")),
            }
        }
        problems.extend(cfg.problems());
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Every invalid value, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !matches!(self.log_format.as_str(), "text" | "json") {
            p.push(format!(
                "log_format: `{}` is not `text` or `json`",
                self.log_format
            ));
        }
        if self.refill_parallelism == 0 || self.refill_parallelism > 64 {
            p.push(format!(
                "refill_parallelism: {} is outside 1..=64",
                self.refill_parallelism
            ));
        }
        if !(100..=600_000).contains(&self.slot_start_timeout_ms) {
            p.push(format!(
                "slot_start_timeout_ms: {} is outside 100..=600000",
                self.slot_start_timeout_ms
            ));
        }
        if self.default_pool_target > 256 {
            p.push(format!(
                "default_pool_target: {} is over 256",
                self.default_pool_target
            ));
        }
        for (k, v) in &self.pools {
            let ok = k.split_once('/').is_some_and(|(prof, lang)| {
                !prof.is_empty() && paddock_shared::model::Language::parse(lang).is_some()
            });
            if !ok {
                p.push(format!(
                    "pools.\"{k}\": keys are \"<profile>/<python|typescript>\""
                ));
            }
            if *v > 256 {
                p.push(format!("pools.\"{k}\": {v} is over 256"));
            }
        }
        if let Some(t) = &self.listen_tcp
            && t.parse::<std::net::SocketAddr>().is_err()
        {
            p.push(format!(
                "listen_tcp: `{t}` is not an address like 127.0.0.1:7700"
            ));
        }
        p
    }

    /// The Unix socket path (default `<data_dir>/worker.sock`).
    pub fn unix_socket(&self) -> PathBuf {
        self.listen_unix
            .clone()
            .unwrap_or_else(|| self.data_dir.join("worker.sock"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_and_env_overrides() {
        let c = Config::load(
            None,
            env(&[("PADDOCK_WORKER_POOL_PRO_PYTHON", "3"), ("HOME", "/root")]),
        )
        .expect("ok");
        assert_eq!(c.pools.get("pro/python"), Some(&3));
        assert_eq!(c.pools.get("free/python"), Some(&4));
        assert_eq!(c.unix_socket(), PathBuf::from("./data/worker/worker.sock"));
    }

    #[test]
    fn tooling_variables_are_not_settings_but_typos_are_errors() {
        let ok = Config::load(
            None,
            env(&[
                ("PADDOCK_WORKER_BIN", "/x/paddock-worker"),
                ("PADDOCK_WORKER_LOG", "debug"),
            ]),
        );
        assert!(ok.is_ok(), "{ok:?}");
        let e = Config::load(None, env(&[("PADDOCK_WORKER_DATADIR", "/x")])).unwrap_err();
        assert!(
            e.to_string()
                .contains("PADDOCK_WORKER_DATADIR: unknown setting"),
            "{e}"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let e = Config::load(
            None,
            env(&[
                ("PADDOCK_WORKER_LOG_FORMAT", "xml"),
                ("PADDOCK_WORKER_REFILL_PARALLELISM", "x"),
            ]),
        )
        .expect_err("bad");
        let text = e.to_string();
        assert!(
            text.contains("log_format: `xml`")
                && text.contains("PADDOCK_WORKER_REFILL_PARALLELISM"),
            "{text}"
        );
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("w.toml");
        std::fs::write(&f, "refill_paralelism = 2\n").expect("write");
        let e = Config::load(Some(&f), Vec::new()).expect_err("typo");
        assert!(e.to_string().contains("refill_paralelism"), "{e}");
        std::fs::write(&f, "[pools]\n\"free/ruby\" = 1\n").expect("write");
        let e = Config::load(Some(&f), Vec::new()).expect_err("bad pool");
        assert!(e.to_string().contains("pools.\"free/ruby\""), "{e}");
    }
}
