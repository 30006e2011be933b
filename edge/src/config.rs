//! Edge configuration: one TOML file, every key defaulted by a named constant,
//! `deny_unknown_fields`, `PADDOCK_EDGE_*` environment overrides, command-line overrides,
//! and validation at load that reports every problem at once, naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./data/edge";
/// Default TLS listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
/// Default base domain.
pub const DEFAULT_DOMAIN: &str = "localhost";
/// Default request body limit (4 MiB).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;
/// Default grace period on SIGTERM, seconds.
pub const DEFAULT_GRACE_PERIOD_SECS: u64 = 5;
/// Default worker threads of the HTTP service.
pub const DEFAULT_THREADS: usize = 2;
/// Default log format.
pub const DEFAULT_LOG_FORMAT: &str = "text";
/// Default admin (metrics) listener; used best-effort when `admin_listen` is not set.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9464";
/// `admin_listen` value that turns the admin listener off.
pub const ADMIN_LISTEN_OFF: &str = "off";
/// Default: MCP sessions off (stateless JSON replies).
pub const DEFAULT_MCP_SESSIONS: bool = false;
/// Default: self-registration on.
pub const DEFAULT_REGISTRATION_ENABLED: bool = true;
/// Default admin account email.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@localhost";
/// Largest accepted body limit (64 MiB).
pub const MAX_MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

fn d_data_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DATA_DIR)
}
fn d_listen() -> String {
    DEFAULT_LISTEN.to_owned()
}
fn d_domain() -> String {
    DEFAULT_DOMAIN.to_owned()
}
fn d_max_body() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}
fn d_grace() -> u64 {
    DEFAULT_GRACE_PERIOD_SECS
}
fn d_threads() -> usize {
    DEFAULT_THREADS
}
fn d_log_format() -> String {
    DEFAULT_LOG_FORMAT.to_owned()
}
fn d_sessions() -> bool {
    DEFAULT_MCP_SESSIONS
}
fn d_registration() -> bool {
    DEFAULT_REGISTRATION_ENABLED
}
fn d_admin_email() -> String {
    DEFAULT_ADMIN_EMAIL.to_owned()
}

/// One operator certificate (PEM chain + PEM key). SNI picks among them by their names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The edge configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// Data directory (sled database, admin key, generated certificate).
    #[serde(default = "d_data_dir")]
    pub data_dir: PathBuf,
    /// TLS listener address.
    #[serde(default = "d_listen")]
    pub listen: String,
    /// Plain-HTTP listener for use behind another TLS terminator; empty = off.
    #[serde(default)]
    pub http_listen: String,
    /// Base domain of `{ns}.create.{domain}` and `{ns}.run.{domain}`.
    #[serde(default = "d_domain")]
    pub domain: String,
    /// Operator certificates; empty = a development certificate generated in the data dir.
    #[serde(default)]
    pub tls_certs: Vec<CertConfig>,
    /// Request body limit in bytes (413 above it).
    #[serde(default = "d_max_body")]
    pub max_body_bytes: u64,
    /// Seconds to drain in-flight requests after SIGTERM.
    #[serde(default = "d_grace")]
    pub grace_period_secs: u64,
    /// Worker threads of the HTTP service.
    #[serde(default = "d_threads")]
    pub threads: usize,
    /// `text` or `json`.
    #[serde(default = "d_log_format")]
    pub log_format: String,
    /// Admin listener (plain HTTP, `GET /metrics`): an address, or `off`. Unset = the
    /// default address, skipped with a warning when it is taken; set = must bind.
    #[serde(default)]
    pub admin_listen: Option<String>,
    /// Keep MCP sessions (`Mcp-Session-Id`) instead of stateless JSON replies.
    #[serde(default = "d_sessions")]
    pub mcp_sessions: bool,
    /// `POST /v1/auth/register` allowed.
    #[serde(default = "d_registration")]
    pub registration_enabled: bool,
    /// Email of the admin account created on first start.
    #[serde(default = "d_admin_email")]
    pub admin_email: String,
    /// JWT signing secret; unset = generated and kept in the data dir.
    #[serde(default)]
    pub jwt_secret: Option<String>,
    /// API-key digest pepper; unset = generated and kept in the data dir.
    #[serde(default)]
    pub key_pepper: Option<String>,
    /// File holding the key-encryption key of stored secrets (64 hex characters, mode
    /// 0600); env `PADDOCK_EDGE_KEK_FILE`. `PADDOCK_EDGE_KEK` gives the key itself.
    #[serde(default)]
    pub kek_file: Option<PathBuf>,
    /// The key-encryption key itself (64 hex characters); prefer `kek_file`.
    #[serde(default)]
    pub kek: Option<String>,
    /// Addresses or CIDR networks that remote MCP servers may resolve to although they are
    /// loopback, private, link-local… (the SSRF guard refuses those otherwise).
    #[serde(default)]
    pub allow_private_mcp_hosts: Vec<String>,
    /// `[limits]`: monthly executions, rates and concurrency per tier (see
    /// [`crate::quota::config`]); env `PADDOCK_EDGE_LIMITS_<TIER>_<KEY>`.
    #[serde(default)]
    pub limits: crate::quota::LimitsConfig,
    /// TCP address where workers on other hosts dial in (TLS); empty = off (workers on
    /// this host use `<data-dir>/workers.sock`).
    #[serde(default)]
    pub workers_listen: String,
    /// Certificate chain (PEM) of the workers' TCP listener; unset = the edge's own
    /// certificates (`tls_certs`, or the generated development certificate).
    #[serde(default)]
    pub workers_tls_cert: Option<PathBuf>,
    /// Private key (PEM) for `workers_tls_cert`.
    #[serde(default)]
    pub workers_tls_key: Option<PathBuf>,
    /// Serve `workers_listen` as plain TCP without TLS (trusted networks only; logged as
    /// a warning). Workers then dial `tcp:HOST:PORT` instead of `tls:HOST:PORT`.
    #[serde(default)]
    pub workers_tcp_insecure: bool,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        // An empty document takes every default.
        toml::from_str("").unwrap_or_else(|_| unreachable!("empty config always parses"))
    }
}

/// Command-line overrides (highest precedence).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--allow-private-mcp-hosts` (added to `allow_private_mcp_hosts`).
    pub allow_private_mcp_hosts: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub domain: Option<String>,
    pub http_listen: Option<String>,
    pub log_format: Option<String>,
    pub admin_listen: Option<String>,
    /// `--workers-listen`.
    pub workers_listen: Option<String>,
    /// `--workers-tcp-insecure`.
    pub workers_tcp_insecure: bool,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl EdgeConfig {
    /// Loads the file (if any), applies `PADDOCK_EDGE_*` variables from `env`, then the
    /// command-line overrides, then validates.
    ///
    /// # Errors
    /// [`ConfigError`] for an unreadable or malformed file, or every invalid key at once.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        cli: &Overrides,
    ) -> Result<EdgeConfig, ConfigError> {
        let mut cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str::<EdgeConfig>(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?
            }
            None => EdgeConfig::default(),
        };
        let mut problems = cfg.apply_env(env);
        if let Some(v) = &cli.data_dir {
            cfg.data_dir = v.clone();
        }
        if let Some(v) = &cli.listen {
            cfg.listen = v.clone();
        }
        if let Some(v) = &cli.domain {
            cfg.domain = v.clone();
        }
        if let Some(v) = &cli.http_listen {
            cfg.http_listen = v.clone();
        }
        if let Some(v) = &cli.log_format {
            cfg.log_format = v.clone();
        }
        if let Some(v) = &cli.allow_private_mcp_hosts {
            cfg.allow_private_mcp_hosts.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
        }
        if let Some(v) = &cli.admin_listen {
            cfg.admin_listen = Some(v.clone());
        }
        if let Some(v) = &cli.workers_listen {
            cfg.workers_listen = v.clone();
        }
        if cli.workers_tcp_insecure {
            cfg.workers_tcp_insecure = true;
        }
        problems.extend(cfg.problems());
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    fn apply_env(&mut self, env: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, value) in env {
            let Some(key) = name.strip_prefix("PADDOCK_EDGE_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            let bad = |what: &str| format!("{name} (key `{key}`): {value:?} is not {what}");
            match key.as_str() {
                "data_dir" => self.data_dir = PathBuf::from(&value),
                "listen" => self.listen = value,
                "http_listen" => self.http_listen = value,
                "domain" => self.domain = value,
                "log_format" => self.log_format = value,
                "admin_listen" => self.admin_listen = Some(value),
                "admin_email" => self.admin_email = value,
                "jwt_secret" => self.jwt_secret = Some(value),
                "key_pepper" => self.key_pepper = Some(value),
                "kek" => self.kek = Some(value),
                "kek_file" => self.kek_file = Some(PathBuf::from(value)),
                "workers_listen" => self.workers_listen = value,
                "workers_tls_cert" => self.workers_tls_cert = Some(PathBuf::from(value)),
                "workers_tls_key" => self.workers_tls_key = Some(PathBuf::from(value)),
                "workers_tcp_insecure" => match value.parse() {
                    Ok(v) => self.workers_tcp_insecure = v,
                    Err(_) => problems.push(bad("true or false")),
                },
                "allow_private_mcp_hosts" => {
                    self.allow_private_mcp_hosts = value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect();
                }
                "max_body_bytes" => match value.parse() {
                    Ok(v) => self.max_body_bytes = v,
                    Err(_) => problems.push(bad("a number of bytes")),
                },
                "grace_period_secs" => match value.parse() {
                    Ok(v) => self.grace_period_secs = v,
                    Err(_) => problems.push(bad("a number of seconds")),
                },
                "threads" => match value.parse() {
                    Ok(v) => self.threads = v,
                    Err(_) => problems.push(bad("a number")),
                },
                "mcp_sessions" => match value.parse() {
                    Ok(v) => self.mcp_sessions = v,
                    Err(_) => problems.push(bad("true or false")),
                },
                "registration_enabled" => match value.parse() {
                    Ok(v) => self.registration_enabled = v,
                    Err(_) => problems.push(bad("true or false")),
                },
                k if k.starts_with("limits_") => {
                    if let Err(e) = self.limits.set_env(&k["limits_".len()..], &value) {
                        problems.push(format!("{name}: {e}"));
                    }
                }
                // Variables the edge reads elsewhere (e.g. PADDOCK_EDGE_LOG) are not keys.
                "log" | "bin" => {}
                _ => problems.push(format!("{name}: unknown key `{key}`")),
            }
        }
        problems
    }

    /// Every problem with the values, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.data_dir.as_os_str().is_empty() {
            p.push("data_dir: must not be empty".to_owned());
        }
        if self.listen.parse::<SocketAddr>().is_err() {
            p.push(format!(
                "listen: {:?} is not an address like 127.0.0.1:8443",
                self.listen
            ));
        }
        if !self.http_listen.is_empty() && self.http_listen.parse::<SocketAddr>().is_err() {
            p.push(format!(
                "http_listen: {:?} is not an address like 127.0.0.1:8080 (or empty for off)",
                self.http_listen
            ));
        }
        if !self.http_listen.is_empty() && self.http_listen == self.listen {
            p.push("http_listen: must differ from listen".to_owned());
        }
        let domain_ok = !self.domain.is_empty()
            && self.domain.len() <= 253
            && self.domain.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
        if !domain_ok {
            p.push(format!(
                "domain: {:?} is not a lower-case DNS name like example.com",
                self.domain
            ));
        }
        for (i, c) in self.tls_certs.iter().enumerate() {
            if !c.cert.is_file() {
                p.push(format!(
                    "tls_certs[{i}].cert: {} is not a readable file",
                    c.cert.display()
                ));
            }
            if !c.key.is_file() {
                p.push(format!(
                    "tls_certs[{i}].key: {} is not a readable file",
                    c.key.display()
                ));
            }
        }
        if self.max_body_bytes < 1024 || self.max_body_bytes > MAX_MAX_BODY_BYTES {
            p.push(format!(
                "max_body_bytes: {} is outside 1024..={MAX_MAX_BODY_BYTES}",
                self.max_body_bytes
            ));
        }
        if self.grace_period_secs > 3600 {
            p.push(format!(
                "grace_period_secs: {} is over 3600",
                self.grace_period_secs
            ));
        }
        if self.threads == 0 || self.threads > 256 {
            p.push(format!("threads: {} is outside 1..=256", self.threads));
        }
        if let Some(a) = &self.admin_listen
            && a != ADMIN_LISTEN_OFF
        {
            if a.parse::<SocketAddr>().is_err() {
                p.push(format!(
                    "admin_listen: {a:?} is not an address like 127.0.0.1:9464 (or \"off\")"
                ));
            } else if *a == self.listen || *a == self.http_listen {
                p.push("admin_listen: must differ from listen and http_listen".to_owned());
            }
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            p.push(format!(
                "log_format: {:?} is not text or json",
                self.log_format
            ));
        }
        if let Err(e) = crate::remote::guard::AllowList::from_entries(&self.allow_private_mcp_hosts)
        {
            p.push(format!("allow_private_mcp_hosts: {e}"));
        }
        if self.kek.is_some() && self.kek_file.is_some() {
            p.push("kek: set either kek or kek_file, not both".to_owned());
        }
        if let Some(k) = &self.kek
            && crate::secrets::Kek::from_hex(k, "kek").is_err()
        {
            p.push("kek: must be 64 hex characters (32 bytes)".to_owned());
        }
        if let Some(f) = &self.kek_file
            && !f.is_file()
        {
            p.push(format!("kek_file: {} is not a readable file", f.display()));
        }
        p.extend(self.workers_problems());
        if !self.admin_email.contains('@') {
            p.push(format!(
                "admin_email: {:?} is not an email address",
                self.admin_email
            ));
        }
        if let Err(problems) = self.limits.table() {
            p.extend(problems);
        }
        for (key, v) in [
            ("jwt_secret", &self.jwt_secret),
            ("key_pepper", &self.key_pepper),
        ] {
            if let Some(s) = v
                && s.len() < 16
            {
                p.push(format!("{key}: must be at least 16 characters"));
            }
        }
        p
    }

    /// Problems with the `workers_*` keys.
    fn workers_problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !self.workers_listen.is_empty() {
            match self.workers_listen.parse::<SocketAddr>() {
                Err(_) => p.push(format!(
                    "workers_listen: {:?} is not an address like 0.0.0.0:7443 (or empty for off)",
                    self.workers_listen
                )),
                Ok(_) if [&self.listen, &self.http_listen].contains(&&self.workers_listen) => {
                    p.push("workers_listen: must differ from listen and http_listen".to_owned());
                }
                Ok(_) => {}
            }
        }
        match (&self.workers_tls_cert, &self.workers_tls_key) {
            (Some(_), None) | (None, Some(_)) => p.push(
                "workers_tls_cert / workers_tls_key: set both (or neither for the edge's own certificate)"
                    .to_owned(),
            ),
            (Some(c), Some(k)) => {
                for (key, f) in [("workers_tls_cert", c), ("workers_tls_key", k)] {
                    if !f.is_file() {
                        p.push(format!("{key}: {} is not a readable file", f.display()));
                    }
                }
                if self.workers_tcp_insecure {
                    p.push(
                        "workers_tcp_insecure: conflicts with workers_tls_cert (plain TCP uses no certificate)"
                            .to_owned(),
                    );
                }
            }
            (None, None) => {}
        }
        p
    }

    /// The workers' TCP listener address, if one is configured.
    pub fn workers_listen_addr(&self) -> Option<SocketAddr> {
        if self.workers_listen.is_empty() {
            None
        } else {
            self.workers_listen.parse().ok()
        }
    }

    /// The key-encryption key from `kek` or `kek_file`, if either is set.
    ///
    /// # Errors
    /// The file cannot be read or does not hold 64 hex characters.
    pub fn kek(&self) -> Result<Option<crate::secrets::Kek>, crate::secrets::SecretError> {
        match (&self.kek, &self.kek_file) {
            (Some(k), _) => crate::secrets::Kek::from_hex(k, "kek (PADDOCK_EDGE_KEK)").map(Some),
            (None, Some(f)) => crate::secrets::Kek::from_file(f).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// The SSRF allow list from `allow_private_mcp_hosts`.
    ///
    /// # Errors
    /// An entry that is not an address or network (also reported by validation).
    pub fn mcp_allow_list(&self) -> Result<crate::remote::guard::AllowList, ConfigError> {
        crate::remote::guard::AllowList::from_entries(&self.allow_private_mcp_hosts)
            .map_err(|e| ConfigError::Invalid(vec![format!("allow_private_mcp_hosts: {e}")]))
    }

    /// The listener addresses.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }

    /// The admin listener to start: `(address, required)`; `None` when it is `off`.
    /// `required` is false for the unset default (a taken port is then only a warning).
    pub fn admin_listener(&self) -> Option<(&str, bool)> {
        match self.admin_listen.as_deref() {
            None => Some((DEFAULT_ADMIN_LISTEN, false)),
            Some(ADMIN_LISTEN_OFF) => None,
            Some(a) => Some((a, true)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let cfg = EdgeConfig::load(None, env(&[]), &Overrides::default()).expect("defaults");
        assert_eq!(cfg.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(cfg.listen, DEFAULT_LISTEN);
        assert_eq!(cfg.domain, "localhost");
        assert_eq!(cfg.http_listen, "");
        assert_eq!(cfg.max_body_bytes, 4 * 1024 * 1024);
        assert!(!cfg.mcp_sessions);
    }

    #[test]
    fn unknown_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("edge.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\nlisten_port = 3\n").expect("write");
        let err = EdgeConfig::load(Some(&path), env(&[]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("listen_port"), "{err}");
    }

    #[test]
    fn all_problems_at_once_naming_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("edge.toml");
        std::fs::write(
            &path,
            "listen = \"nope\"\ndomain = \"Bad Domain\"\nmax_body_bytes = 1\nlog_format = \"xml\"\n",
        )
        .expect("write");
        let err = EdgeConfig::load(
            Some(&path),
            env(&[("PADDOCK_EDGE_THREADS", "x")]),
            &Overrides::default(),
        )
        .unwrap_err();
        let ConfigError::Invalid(problems) = err else {
            panic!("expected Invalid")
        };
        let text = problems.join("\n");
        for key in [
            "listen:",
            "domain:",
            "max_body_bytes:",
            "log_format:",
            "PADDOCK_EDGE_THREADS",
        ] {
            assert!(text.contains(key), "missing {key} in {text}");
        }
        assert_eq!(problems.len(), 5, "{text}");
    }

    #[test]
    fn kek_and_mcp_allow_list_from_file_env_and_command_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kek = dir.path().join("kek.key");
        let k = crate::secrets::Kek::generate();
        std::fs::write(&kek, format!("{}\n", k.to_hex().as_str())).expect("write");
        let path = dir.path().join("edge.toml");
        std::fs::write(&path, "allow_private_mcp_hosts = [\"10.0.0.0/8\"]\n").expect("write");
        let cli = Overrides {
            allow_private_mcp_hosts: Some("127.0.0.1, ::1".into()),
            ..Overrides::default()
        };
        let kek_env = kek.display().to_string();
        let cfg = EdgeConfig::load(
            Some(&path),
            env(&[("PADDOCK_EDGE_KEK_FILE", &kek_env)]),
            &cli,
        )
        .expect("valid");
        assert_eq!(
            cfg.kek().expect("reads").map(|x| x.id().to_owned()),
            Some(k.id().to_owned())
        );
        let allow = cfg.mcp_allow_list().expect("allow list");
        for ip in ["10.1.2.3", "127.0.0.1", "::1"] {
            assert!(allow.allows(ip.parse().expect("ip")), "{ip}");
        }
        assert!(!allow.allows("192.168.0.1".parse().expect("ip")));
        let ConfigError::Invalid(p) = EdgeConfig::load(
            None,
            env(&[
                ("PADDOCK_EDGE_KEK", "abcd"),
                ("PADDOCK_EDGE_ALLOW_PRIVATE_MCP_HOSTS", "10.0.0.0/99"),
            ]),
            &Overrides::default(),
        )
        .unwrap_err() else {
            panic!("expected Invalid")
        };
        let text = p.join("\n");
        assert!(
            text.contains("kek:") && text.contains("allow_private_mcp_hosts:"),
            "{text}"
        );
        assert!(EdgeConfig::default().kek().expect("none").is_none());
    }

    #[test]
    fn limits_from_file_and_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("edge.toml");
        std::fs::write(
            &path,
            "[limits]\nflush_interval_ms = 250\n[limits.free]\nmonthly_executions = 3\n",
        )
        .expect("write");
        let cfg = EdgeConfig::load(
            Some(&path),
            env(&[("PADDOCK_EDGE_LIMITS_FREE_CONCURRENT_EXECUTIONS", "1")]),
            &Overrides::default(),
        )
        .expect("load");
        let t = cfg.limits.table().expect("valid");
        let free = t.tier(paddock_shared::model::Tier::Free);
        assert_eq!(
            (free.monthly_executions, free.concurrent_executions),
            (3, 1)
        );
        assert_eq!(cfg.limits.flush_interval_ms, 250);
        let err = EdgeConfig::load(
            None,
            env(&[
                ("PADDOCK_EDGE_LIMITS_FREE_EXECUTION_BURST", "0"),
                ("PADDOCK_EDGE_LIMITS_GOLD_MONTHLY_EXECUTIONS", "1"),
            ]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("limits.free.execution_burst"), "{err}");
        assert!(
            err.contains("PADDOCK_EDGE_LIMITS_GOLD_MONTHLY_EXECUTIONS"),
            "{err}"
        );
    }

    #[test]
    fn admin_listen_default_off_address_and_problems() {
        let cfg = EdgeConfig::load(None, env(&[]), &Overrides::default()).expect("defaults");
        assert_eq!(cfg.admin_listener(), Some((DEFAULT_ADMIN_LISTEN, false)));
        let cfg = EdgeConfig::load(
            None,
            env(&[("PADDOCK_EDGE_ADMIN_LISTEN", "off")]),
            &Overrides::default(),
        )
        .expect("off");
        assert_eq!(cfg.admin_listener(), None);
        let cfg = EdgeConfig::load(
            None,
            env(&[("PADDOCK_EDGE_ADMIN_LISTEN", "off")]),
            &Overrides {
                admin_listen: Some("127.0.0.1:9999".into()),
                ..Overrides::default()
            },
        )
        .expect("cli wins");
        assert_eq!(cfg.admin_listener(), Some(("127.0.0.1:9999", true)));
        for bad in ["nope", DEFAULT_LISTEN] {
            let err = EdgeConfig::load(
                None,
                env(&[("PADDOCK_EDGE_ADMIN_LISTEN", bad)]),
                &Overrides::default(),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("admin_listen:"), "{err}");
        }
    }

    #[test]
    fn workers_listener_keys_validate_together() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("w.crt");
        std::fs::write(&cert, "x").expect("write");
        let cert_s = cert.display().to_string();
        let cfg = EdgeConfig::load(
            None,
            env(&[("PADDOCK_EDGE_WORKERS_LISTEN", "0.0.0.0:7443")]),
            &Overrides::default(),
        )
        .expect("tls by default");
        assert_eq!(cfg.workers_listen_addr(), Some(([0, 0, 0, 0], 7443).into()));
        assert!(!cfg.workers_tcp_insecure);
        assert_eq!(EdgeConfig::default().workers_listen_addr(), None);
        let cfg = EdgeConfig::load(
            None,
            env(&[("PADDOCK_EDGE_WORKERS_TCP_INSECURE", "false")]),
            &Overrides {
                workers_listen: Some("127.0.0.1:7444".into()),
                workers_tcp_insecure: true,
                ..Overrides::default()
            },
        )
        .expect("cli opt-out");
        assert!(cfg.workers_tcp_insecure);
        for (vars, want) in [
            (
                vec![("PADDOCK_EDGE_WORKERS_LISTEN", "nope")],
                "workers_listen:",
            ),
            (
                vec![("PADDOCK_EDGE_WORKERS_LISTEN", DEFAULT_LISTEN)],
                "must differ from listen",
            ),
            (
                vec![("PADDOCK_EDGE_WORKERS_TLS_CERT", cert_s.as_str())],
                "set both",
            ),
            (
                vec![
                    ("PADDOCK_EDGE_WORKERS_TLS_CERT", cert_s.as_str()),
                    ("PADDOCK_EDGE_WORKERS_TLS_KEY", "/nonexistent/w.key"),
                ],
                "workers_tls_key: /nonexistent/w.key is not a readable file",
            ),
            (
                vec![
                    ("PADDOCK_EDGE_WORKERS_TLS_CERT", cert_s.as_str()),
                    ("PADDOCK_EDGE_WORKERS_TLS_KEY", cert_s.as_str()),
                    ("PADDOCK_EDGE_WORKERS_TCP_INSECURE", "true"),
                ],
                "workers_tcp_insecure: conflicts",
            ),
            (
                vec![("PADDOCK_EDGE_WORKERS_TCP_INSECURE", "yes")],
                "true or false",
            ),
        ] {
            let err = EdgeConfig::load(None, env(&vars), &Overrides::default())
                .expect_err("invalid")
                .to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn env_then_cli_override() {
        let cfg = EdgeConfig::load(
            None,
            env(&[
                ("PADDOCK_EDGE_LISTEN", "127.0.0.1:9000"),
                ("PADDOCK_EDGE_DOMAIN", "a.example"),
            ]),
            &Overrides {
                domain: Some("b.example".into()),
                ..Overrides::default()
            },
        )
        .expect("load");
        assert_eq!(cfg.listen, "127.0.0.1:9000");
        assert_eq!(cfg.domain, "b.example");
        let err = EdgeConfig::load(
            None,
            env(&[("PADDOCK_EDGE_NOPE", "1")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown key `nope`"), "{err}");
    }
}
