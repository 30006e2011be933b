//! Command-line options of `bench` and their validation into a [`Plan`]: one target URL in
//! a Paddock routing form, one scenario, a load model and hard bounds.

use std::path::PathBuf;
use std::time::Duration;

use super::scenario::{Language, Scenario, Step};

/// Longest run accepted (`--duration` plus `--warmup`).
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Most measured requests accepted (`--requests`).
pub const MAX_REQUESTS: u64 = 10_000_000;
/// Most concurrent requests accepted (`--concurrency`).
pub const MAX_CONCURRENCY: usize = 4096;
/// Highest target rate accepted (`--rate`, requests/s).
pub const MAX_RATE: f64 = 1_000_000.0;
/// Run length when neither `--duration` nor `--requests` is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Per-request timeout when `--timeout` is not given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// `paddock-edge bench`: MCP-aware load generator.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BenchArgs {
    /// Scenario: `tools-list`, `execute`, `tool` or `mix`.
    #[arg(default_value = "tools-list")]
    pub scenario: String,
    /// The MCP endpoint: `https://HOST[:PORT]/mcp/{create|run}/{ns}` or
    /// `https://{ns}.{create|run}.DOMAIN[:PORT]/mcp`. Only this target is ever contacted.
    #[arg(long)]
    pub url: String,
    /// API key sent as `Authorization: Bearer` (env `PADDOCK_API_KEY`).
    #[arg(long, env = "PADDOCK_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// File holding the API key (first line).
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// PEM file of the CA (or self-signed certificate) to trust for the target.
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// Skip TLS certificate verification (test deployments only).
    #[arg(long)]
    pub insecure: bool,
    /// `execute`: the code to run.
    #[arg(long)]
    pub code: Option<String>,
    /// `execute`: a file holding the code to run.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// `execute`: `python` (default) or `typescript`.
    #[arg(long)]
    pub language: Option<String>,
    /// `tool`: the tool to call (e.g. `svc.fn` in tool mode, `list_namespaces` on create).
    #[arg(long)]
    pub name: Option<String>,
    /// `tool`: the arguments, a JSON object (default `{}`).
    #[arg(long)]
    pub args: Option<String>,
    /// `mix`: weights, e.g. `tools-list=8,execute=1,tool=1`.
    #[arg(long)]
    pub mix: Option<String>,
    /// Requests in flight at most (workers).
    #[arg(long, short = 'c', default_value_t = 16)]
    pub concurrency: usize,
    /// Client connections (each its own keep-alive pool); workers share them round-robin.
    /// Default: one per worker.
    #[arg(long)]
    pub connections: Option<usize>,
    /// Target rate in requests/s (open loop, latency from the intended start); closed loop
    /// when absent.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured run length, e.g. `30s`, `500ms`, `2m` (default 10s unless `--requests`).
    #[arg(long)]
    pub duration: Option<String>,
    /// Measured requests; with `--duration` the first bound reached ends the run.
    #[arg(long, short = 'n')]
    pub requests: Option<u64>,
    /// Unmeasured warm-up before the run, e.g. `5s`.
    #[arg(long)]
    pub warmup: Option<String>,
    /// Per-request timeout (default 30s).
    #[arg(long)]
    pub timeout: Option<String>,
    /// Each worker initializes an MCP session first and sends `Mcp-Session-Id`.
    #[arg(long)]
    pub session: bool,
    /// HTTP version: `auto` (ALPN), `1` (HTTP/1.1 only) or `2` (h2 prior knowledge).
    #[arg(long, default_value = "auto")]
    pub http: String,
    /// Print the report as JSON on stdout (no progress bar).
    #[arg(long)]
    pub json: bool,
    /// No live progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// HTTP protocol choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// ALPN picks (h2 when offered).
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 without negotiation.
    Http2,
}

/// TLS trust for the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The platform's roots.
    System,
    /// Only this PEM file.
    CaCert(PathBuf),
    /// No verification.
    Insecure,
}

/// A validated run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The one target.
    pub url: reqwest::Url,
    /// The routing form the URL uses, for the report.
    pub endpoint: String,
    /// The API key (may be empty only if the user passed an empty one on purpose).
    pub api_key: String,
    /// TLS trust.
    pub trust: Trust,
    /// Scenario and its steps.
    pub scenario: Scenario,
    /// Workers.
    pub concurrency: usize,
    /// Client connections (keep-alive clients), 1..=concurrency.
    pub connections: usize,
    /// Open loop rate, requests/s.
    pub rate: Option<f64>,
    /// Measured phase length bound.
    pub duration: Option<Duration>,
    /// Measured request bound.
    pub requests: Option<u64>,
    /// Warm-up length.
    pub warmup: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Initialize a session per worker.
    pub session: bool,
    /// HTTP version.
    pub http: HttpVersion,
}

/// A rejected option, naming it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--{option}: {message}")]
pub struct OptionError {
    /// The option's name without dashes.
    pub option: &'static str,
    /// What was wrong and what to do.
    pub message: String,
}

fn err(option: &'static str, message: impl Into<String>) -> OptionError {
    OptionError {
        option,
        message: message.into(),
    }
}

/// Parses `250ms`, `30s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, mul_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000.0)
    } else {
        (s, 1000.0)
    };
    let v: f64 = num.trim().parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(v * mul_ms / 1000.0))
}

fn duration_opt(option: &'static str, v: Option<&str>) -> Result<Option<Duration>, OptionError> {
    match v {
        None => Ok(None),
        Some(s) => parse_duration(s).map(Some).ok_or_else(|| {
            err(
                option,
                format!("`{s}` is not a duration (use e.g. 500ms, 30s, 2m)"),
            )
        }),
    }
}

/// Checks that `url` is one MCP endpoint of Paddock and names its form.
///
/// # Errors
/// Not http(s), credentials or a fragment in the URL, no host, or neither routing form.
pub fn check_url(raw: &str) -> Result<(reqwest::Url, String), OptionError> {
    let forms = "use https://HOST[:PORT]/mcp/{create|run}/{namespace} or \
                 https://{namespace}.{create|run}.DOMAIN[:PORT]/mcp";
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|e| err("url", format!("`{raw}` is not a URL ({e}); {forms}")))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(err(
            "url",
            format!("scheme `{}` is not http(s); {forms}", url.scheme()),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err(
            "url",
            "credentials in the URL are refused; pass --api-key or --api-key-file",
        ));
    }
    if url.fragment().is_some() {
        return Err(err("url", "a fragment (#…) has no meaning here; remove it"));
    }
    let Some(host) = url.host_str() else {
        return Err(err("url", format!("no host; {forms}")));
    };
    let segs: Vec<&str> = url.path().trim_end_matches('/').split('/').collect();
    let endpoint = match segs.as_slice() {
        ["", "mcp", kind @ ("create" | "run"), ns] if !ns.is_empty() => {
            format!("path form: {kind} endpoint of namespace `{ns}`")
        }
        ["", "mcp"] => {
            let labels: Vec<&str> = host.split('.').collect();
            match labels.as_slice() {
                [ns, kind @ ("create" | "run"), _, ..] if !ns.is_empty() => {
                    format!("subdomain form: {kind} endpoint of namespace `{ns}`")
                }
                _ => {
                    return Err(err(
                        "url",
                        format!(
                            "host `{host}` is not {{namespace}}.{{create|run}}.DOMAIN; {forms}"
                        ),
                    ));
                }
            }
        }
        _ => {
            return Err(err(
                "url",
                format!("path `{}` is not an MCP endpoint; {forms}", url.path()),
            ));
        }
    };
    Ok((url, endpoint))
}

fn api_key(a: &BenchArgs) -> Result<String, OptionError> {
    match (&a.api_key, &a.api_key_file) {
        (Some(_), Some(_)) => Err(err(
            "api-key-file",
            "give either --api-key (or PADDOCK_API_KEY) or --api-key-file, not both",
        )),
        (Some(k), None) => Ok(k.trim().to_owned()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                err(
                    "api-key-file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let key = text.lines().next().unwrap_or("").trim().to_owned();
            if key.is_empty() {
                return Err(err("api-key-file", format!("{} is empty", path.display())));
            }
            Ok(key)
        }
        (None, None) => Err(err(
            "api-key",
            "an API key is required (--api-key, PADDOCK_API_KEY or --api-key-file)",
        )),
    }
}

fn step(a: &BenchArgs, kind: &str) -> Result<Step, OptionError> {
    match kind {
        "tools-list" => Ok(Step::ToolsList),
        "execute" => {
            let code = match (&a.code, &a.file) {
                (Some(_), Some(_)) => {
                    return Err(err("file", "give either --code or --file, not both"));
                }
                (Some(c), None) => c.clone(),
                (None, Some(p)) => std::fs::read_to_string(p)
                    .map_err(|e| err("file", format!("cannot read {}: {e}", p.display())))?,
                (None, None) => {
                    return Err(err("code", "the execute scenario needs --code or --file"));
                }
            };
            if code.trim().is_empty() {
                return Err(err("code", "the code is empty"));
            }
            let language = match a.language.as_deref().unwrap_or("python") {
                "python" | "py" => Language::Python,
                "typescript" | "ts" => Language::TypeScript,
                other => {
                    return Err(err(
                        "language",
                        format!("`{other}` is not python or typescript"),
                    ));
                }
            };
            Ok(Step::Execute { code, language })
        }
        "tool" => {
            let Some(name) = a.name.clone().filter(|n| !n.trim().is_empty()) else {
                return Err(err(
                    "name",
                    "the tool scenario needs --name (e.g. svc.fn or list_namespaces)",
                ));
            };
            let args: serde_json::Value = match &a.args {
                None => serde_json::json!({}),
                Some(s) => {
                    serde_json::from_str(s).map_err(|e| err("args", format!("not JSON: {e}")))?
                }
            };
            if !args.is_object() {
                return Err(err("args", "must be a JSON object, e.g. '{\"x\": 1}'"));
            }
            Ok(Step::Tool { name, args })
        }
        other => Err(err(
            "scenario",
            format!("`{other}` is not tools-list, execute, tool or mix"),
        )),
    }
}

fn scenario(a: &BenchArgs) -> Result<Scenario, OptionError> {
    if a.scenario != "mix" {
        if a.mix.is_some() {
            return Err(err("mix", "only with the mix scenario"));
        }
        return Ok(Scenario::single(step(a, &a.scenario)?));
    }
    let Some(spec) = a.mix.as_deref() else {
        return Err(err(
            "mix",
            "the mix scenario needs weights, e.g. --mix tools-list=8,execute=1,tool=1",
        ));
    };
    let mut parts = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((kind, w)) = item.split_once('=') else {
            return Err(err("mix", format!("`{item}` is not NAME=WEIGHT")));
        };
        let w: u32 = w
            .trim()
            .parse()
            .map_err(|_| err("mix", format!("weight `{w}` is not a whole number")))?;
        if kind.trim() == "mix" {
            return Err(err("mix", "a mix cannot contain mix"));
        }
        if w > 0 {
            parts.push((step(a, kind.trim())?, w));
        }
    }
    Scenario::mix(parts).ok_or_else(|| err("mix", "the weights must add up to at least 1"))
}

impl BenchArgs {
    /// Validates every option into a [`Plan`].
    ///
    /// # Errors
    /// The first rejected option, named, with what to do.
    pub fn plan(&self) -> Result<Plan, OptionError> {
        let (url, endpoint) = check_url(&self.url)?;
        let trust = match (&self.cacert, self.insecure) {
            (Some(_), true) => return Err(err("insecure", "give either --cacert or --insecure")),
            (Some(p), false) => {
                if !p.is_file() {
                    return Err(err("cacert", format!("{} is not a file", p.display())));
                }
                Trust::CaCert(p.clone())
            }
            (None, true) => Trust::Insecure,
            (None, false) => Trust::System,
        };
        let api_key = api_key(self)?;
        let scenario = scenario(self)?;
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return Err(err("concurrency", format!("must be 1..={MAX_CONCURRENCY}")));
        }
        let connections = self.connections.unwrap_or(self.concurrency);
        if connections == 0 || connections > self.concurrency {
            return Err(err(
                "connections",
                format!("must be 1..={} (the concurrency)", self.concurrency),
            ));
        }
        if let Some(r) = self.rate
            && !(r.is_finite() && r > 0.0 && r <= MAX_RATE)
        {
            return Err(err(
                "rate",
                format!("must be > 0 and ≤ {MAX_RATE} requests/s"),
            ));
        }
        let mut duration = duration_opt("duration", self.duration.as_deref())?;
        if duration == Some(Duration::ZERO) {
            return Err(err("duration", "must be longer than zero"));
        }
        if let Some(n) = self.requests
            && (n == 0 || n > MAX_REQUESTS)
        {
            return Err(err("requests", format!("must be 1..={MAX_REQUESTS}")));
        }
        if duration.is_none() && self.requests.is_none() {
            duration = Some(DEFAULT_DURATION);
        }
        let warmup = duration_opt("warmup", self.warmup.as_deref())?.unwrap_or(Duration::ZERO);
        if duration.unwrap_or(Duration::ZERO) + warmup > MAX_DURATION {
            return Err(err(
                "duration",
                format!(
                    "duration plus warm-up must stay within {} s",
                    MAX_DURATION.as_secs()
                ),
            ));
        }
        let timeout = duration_opt("timeout", self.timeout.as_deref())?.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() || timeout > Duration::from_secs(600) {
            return Err(err("timeout", "must be within (0, 600s]"));
        }
        let http = match self.http.as_str() {
            "auto" => HttpVersion::Auto,
            "1" | "1.1" | "http1" => HttpVersion::Http1,
            "2" | "h2" | "http2" => HttpVersion::Http2,
            other => return Err(err("http", format!("`{other}` is not auto, 1 or 2"))),
        };
        Ok(Plan {
            url,
            endpoint,
            api_key,
            trust,
            scenario,
            concurrency: self.concurrency,
            connections,
            rate: self.rate,
            duration,
            requests: self.requests,
            warmup,
            timeout,
            session: self.session,
            http,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str) -> BenchArgs {
        BenchArgs {
            scenario: "tools-list".into(),
            url: url.into(),
            api_key: Some("k".into()),
            concurrency: 4,
            http: "auto".into(),
            ..BenchArgs::default()
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("soon"), None);
    }

    #[test]
    fn both_routing_forms_pass() {
        let (_, f) = check_url("https://localhost:8443/mcp/create/acme").expect("path");
        assert!(f.starts_with("path form: create"), "{f}");
        let (_, f) = check_url("https://acme.run.localhost:8443/mcp").expect("sub");
        assert!(f.starts_with("subdomain form: run"), "{f}");
    }

    #[test]
    fn bad_urls_are_refused_with_the_forms() {
        for bad in [
            "ftp://localhost/mcp/create/a",
            "https://localhost/somewhere",
            "https://localhost/mcp/build/a",
            "https://localhost/mcp",
            "https://u:p@localhost/mcp/create/a",
            "not a url",
        ] {
            let e = check_url(bad).expect_err(bad);
            assert_eq!(e.option, "url", "{bad}");
        }
        let e = check_url("https://localhost/somewhere").expect_err("path");
        assert!(e.message.contains("/mcp/{create|run}/{namespace}"), "{e}");
    }

    #[test]
    fn options_are_checked() {
        let ok = args("https://localhost/mcp/create/a").plan().expect("plan");
        assert_eq!(ok.duration, Some(DEFAULT_DURATION));
        let mut a = args("https://localhost/mcp/create/a");
        a.concurrency = 0;
        assert_eq!(a.plan().expect_err("c").option, "concurrency");
        let mut a = args("https://localhost/mcp/create/a");
        a.rate = Some(-3.0);
        assert_eq!(a.plan().expect_err("r").option, "rate");
        let mut a = args("https://localhost/mcp/create/a");
        a.duration = Some("2h".into());
        assert_eq!(a.plan().expect_err("d").option, "duration");
        let mut a = args("https://localhost/mcp/create/a");
        a.scenario = "execute".into();
        assert_eq!(a.plan().expect_err("e").option, "code");
        let mut a = args("https://localhost/mcp/create/a");
        a.scenario = "tool".into();
        a.name = Some("x".into());
        a.args = Some("[1]".into());
        assert_eq!(a.plan().expect_err("t").option, "args");
        let mut a = args("https://localhost/mcp/create/a");
        a.api_key = None;
        assert_eq!(a.plan().expect_err("k").option, "api-key");
        let mut a = args("https://localhost/mcp/create/a");
        a.scenario = "mix".into();
        a.mix = Some("tools-list=3,tool=1".into());
        a.name = Some("list_namespaces".into());
        let p = a.plan().expect("mix");
        assert_eq!(p.scenario.label(), "mix(tools-list=3,tool=1)");
    }
}
