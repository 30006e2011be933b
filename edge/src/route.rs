//! Request routing: a pure function from request parts (SNI, Host, path, query) to a
//! [`Route`]. No I/O; the HTTP layer renders [`RouteError`] through the one error function.
//!
//! Accepted forms (`{domain}` is the configured base domain, `localhost` by default):
//! - `https://{ns}.create.{domain}/mcp` and `https://{ns}.run.{domain}/mcp`
//! - `https://{domain}/mcp/{create|run}/{ns}` (also on `localhost`, `127.0.0.1`, `[::1]`)
//! - `?mode=tools&tags=a,b` on run endpoints
//! - `/v1/health`, `/v1/health/live`, `/v1/health/ready` on any host, without auth
//! - every other `/v1/...` path on any host goes to the REST handlers

use paddock_shared::ErrorCode;
use paddock_shared::names::validate_namespace;

use crate::app::{ApiError, Endpoint};

/// Which health probe was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// `/v1/health`: overall status with details.
    Status,
    /// `/v1/health/live`: the process answers.
    Live,
    /// `/v1/health/ready`: the edge accepts work (not starting, not draining).
    Ready,
}

/// How a run endpoint presents its tools (`?mode=tools&tags=a,b`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunMode {
    /// `mode=tools`: one tool per function instead of the code-mode tools.
    pub tools: bool,
    /// `tags=a,b`: only functions carrying one of these tags (tool mode).
    pub tags: Vec<String>,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health(Health),
    /// Any other `/v1/...` path: handled by `App::rest`.
    Rest,
    /// An MCP endpoint of one namespace.
    Mcp {
        endpoint: Endpoint,
        namespace: String,
        run_mode: RunMode,
    },
}

/// Why a request could not be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No accepted form matches.
    #[error("no route for host {host:?} and path {path:?}")]
    NoRoute { host: String, path: String },
    /// The namespace label breaks the naming rules.
    #[error("invalid namespace {namespace:?} in the request")]
    BadNamespace { namespace: String, rule: String },
    /// TLS SNI and Host name different hosts.
    #[error("TLS server name {sni:?} does not match Host {host:?}")]
    Misdirected { sni: String, host: String },
    /// Unknown `mode` value on a run endpoint.
    #[error("unknown mode {0:?}")]
    BadMode(String),
}

impl RouteError {
    /// The typed, user-visible error for this routing failure.
    pub fn to_api_error(&self, domain: &str) -> ApiError {
        match self {
            RouteError::NoRoute { host, path } => ApiError::new(
                ErrorCode::InvalidHost,
                format!(
                    "no MCP endpoint at host {host:?} path {path:?}; use \
                     https://{{namespace}}.create.{domain}/mcp, \
                     https://{{namespace}}.run.{domain}/mcp, or the path form \
                     https://{domain}/mcp/create/{{namespace}} and \
                     https://{domain}/mcp/run/{{namespace}}"
                ),
            ),
            RouteError::BadNamespace { namespace, rule } => ApiError::new(
                ErrorCode::InvalidHost,
                format!("namespace {namespace:?} in the URL is not a valid name: {rule}"),
            ),
            RouteError::Misdirected { sni, host } => ApiError::new(
                ErrorCode::MisdirectedRequest,
                format!(
                    "the TLS server name {sni:?} does not match the Host header {host:?}; \
                     open a new connection for this host"
                ),
            ),
            RouteError::BadMode(mode) => ApiError::new(
                ErrorCode::InvalidHost,
                format!("unknown run mode {mode:?}; use ?mode=code (default) or ?mode=tools"),
            ),
        }
    }
}

/// Strips a `:port` suffix (and IPv6 brackets stay) and lower-cases.
fn host_name(host: &str) -> String {
    let h = host.trim().trim_end_matches('.');
    let name = if h.starts_with('[') {
        match h.find(']') {
            Some(end) => &h[..=end],
            None => h,
        }
    } else {
        match h.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => h,
        }
    };
    name.to_ascii_lowercase()
}

fn is_local_host(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

fn namespace(ns: &str) -> Result<String, RouteError> {
    validate_namespace(ns).map_err(|e| RouteError::BadNamespace {
        namespace: ns.to_owned(),
        rule: e.rule.to_owned(),
    })?;
    Ok(ns.to_owned())
}

fn run_mode(query: Option<&str>) -> Result<RunMode, RouteError> {
    let mut mode = RunMode::default();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "mode" => match v {
                "tools" => mode.tools = true,
                "code" | "" => mode.tools = false,
                other => return Err(RouteError::BadMode(other.to_owned())),
            },
            "tags" => {
                mode.tags = v
                    .split(',')
                    .map(|t| t.replace("%20", " ").trim().to_owned())
                    .filter(|t| !t.is_empty())
                    .collect();
            }
            _ => {}
        }
    }
    Ok(mode)
}

/// Routes a request. `sni` is the TLS server name (None on plain HTTP or when the
/// client sent none, e.g. when it connected to an IP address).
///
/// # Errors
/// [`RouteError`] when no accepted form matches, the namespace label is invalid, or
/// SNI and Host disagree.
pub fn route(
    sni: Option<&str>,
    host: Option<&str>,
    path: &str,
    query: Option<&str>,
    domain: &str,
) -> Result<Route, RouteError> {
    let host = host.map(host_name).unwrap_or_default();
    if let Some(sni) = sni {
        let sni = sni.trim_end_matches('.').to_ascii_lowercase();
        if !host.is_empty() && sni != host {
            return Err(RouteError::Misdirected { sni, host });
        }
    }
    let path_trimmed = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    match path_trimmed {
        "/v1/health" => return Ok(Route::Health(Health::Status)),
        "/v1/health/live" => return Ok(Route::Health(Health::Live)),
        "/v1/health/ready" => return Ok(Route::Health(Health::Ready)),
        p if p == "/v1" || p.starts_with("/v1/") => return Ok(Route::Rest),
        _ => {}
    }
    let no_route = || RouteError::NoRoute {
        host: host.clone(),
        path: path.to_owned(),
    };
    let domain = domain.to_ascii_lowercase();

    // Subdomain form: {ns}.{create|run}.{domain}/mcp
    if let Some(prefix) = host.strip_suffix(&domain).and_then(|p| p.strip_suffix('.'))
        && let Some((ns, kind)) = prefix.split_once('.')
    {
        {
            let endpoint = match kind {
                "create" => Some(Endpoint::Create),
                "run" => Some(Endpoint::Run),
                _ => None,
            };
            if let Some(endpoint) = endpoint {
                if path_trimmed != "/mcp" {
                    return Err(no_route());
                }
                return mcp_route(endpoint, ns, query);
            }
        }
    }
    // Path form: {domain}/mcp/{create|run}/{ns}
    if host == domain || is_local_host(&host) || host.is_empty() {
        let mut parts = path_trimmed
            .strip_prefix("/mcp/")
            .ok_or_else(no_route)?
            .split('/');
        let endpoint = match parts.next() {
            Some("create") => Endpoint::Create,
            Some("run") => Endpoint::Run,
            _ => return Err(no_route()),
        };
        let ns = parts.next().ok_or_else(no_route)?;
        if parts.next().is_some() {
            return Err(no_route());
        }
        return mcp_route(endpoint, ns, query);
    }
    Err(no_route())
}

fn mcp_route(endpoint: Endpoint, ns: &str, query: Option<&str>) -> Result<Route, RouteError> {
    let namespace = namespace(ns)?;
    let run_mode = match endpoint {
        Endpoint::Run => run_mode(query)?,
        Endpoint::Create => RunMode::default(),
    };
    Ok(Route::Mcp {
        endpoint,
        namespace,
        run_mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mcp(endpoint: Endpoint, ns: &str) -> Route {
        Route::Mcp {
            endpoint,
            namespace: ns.into(),
            run_mode: RunMode::default(),
        }
    }

    #[test]
    fn subdomain_form() {
        let r = route(
            Some("acme.create.localhost"),
            Some("acme.create.localhost:8443"),
            "/mcp",
            None,
            "localhost",
        );
        assert_eq!(r, Ok(mcp(Endpoint::Create, "acme")));
        let r = route(
            None,
            Some("Acme.RUN.example.com"),
            "/mcp/",
            None,
            "example.com",
        );
        assert_eq!(r, Ok(mcp(Endpoint::Run, "acme")));
    }

    #[test]
    fn path_form_on_domain_and_loopback() {
        for host in [
            "localhost:8443",
            "127.0.0.1:8443",
            "[::1]:8443",
            "example.com",
        ] {
            let r = route(None, Some(host), "/mcp/create/acme", None, "example.com");
            assert_eq!(r, Ok(mcp(Endpoint::Create, "acme")), "{host}");
        }
        let r = route(None, Some("localhost"), "/mcp/run/acme", None, "localhost");
        assert_eq!(r, Ok(mcp(Endpoint::Run, "acme")));
    }

    #[test]
    fn run_mode_query() {
        let r = route(
            None,
            Some("localhost"),
            "/mcp/run/acme",
            Some("mode=tools&tags=a,b"),
            "localhost",
        );
        assert_eq!(
            r,
            Ok(Route::Mcp {
                endpoint: Endpoint::Run,
                namespace: "acme".into(),
                run_mode: RunMode {
                    tools: true,
                    tags: vec!["a".into(), "b".into()]
                },
            })
        );
        let r = route(
            None,
            Some("localhost"),
            "/mcp/run/acme",
            Some("mode=fast"),
            "localhost",
        );
        assert_eq!(r, Err(RouteError::BadMode("fast".into())));
    }

    #[test]
    fn health_and_rest_on_any_host() {
        assert_eq!(
            route(None, Some("x.y"), "/v1/health", None, "localhost"),
            Ok(Route::Health(Health::Status))
        );
        assert_eq!(
            route(None, None, "/v1/health/live", None, "localhost"),
            Ok(Route::Health(Health::Live))
        );
        assert_eq!(
            route(None, None, "/v1/health/ready/", None, "localhost"),
            Ok(Route::Health(Health::Ready))
        );
        assert_eq!(
            route(None, Some("localhost"), "/v1/auth/login", None, "localhost"),
            Ok(Route::Rest)
        );
    }

    #[test]
    fn invalid_forms() {
        for (host, path) in [
            ("localhost", "/"),
            ("localhost", "/mcp"),
            ("localhost", "/mcp/delete/acme"),
            ("localhost", "/mcp/create/acme/extra"),
            ("acme.create.localhost", "/other"),
            ("acme.build.localhost", "/mcp"),
            ("evil.com", "/mcp/create/acme"),
            ("v1x", "/v1x"),
        ] {
            let r = route(None, Some(host), path, None, "localhost");
            assert!(
                matches!(r, Err(RouteError::NoRoute { .. })),
                "{host}{path}: {r:?}"
            );
        }
        let e = route(None, Some("localhost"), "/", None, "localhost").unwrap_err();
        let api = e.to_api_error("localhost");
        assert_eq!(api.code, ErrorCode::InvalidHost);
        assert!(
            api.message
                .contains("https://{namespace}.create.localhost/mcp"),
            "{}",
            api.message
        );
        assert!(
            api.message
                .contains("https://localhost/mcp/run/{namespace}"),
            "{}",
            api.message
        );
    }

    #[test]
    fn bad_namespace_label() {
        let r = route(
            None,
            Some("localhost"),
            "/mcp/create/Bad_NS",
            None,
            "localhost",
        );
        assert!(matches!(r, Err(RouteError::BadNamespace { .. })));
        let r = route(None, Some("-x.create.localhost"), "/mcp", None, "localhost");
        assert!(matches!(r, Err(RouteError::BadNamespace { .. })));
    }

    #[test]
    fn sni_host_mismatch_is_misdirected() {
        let r = route(
            Some("a.create.localhost"),
            Some("b.create.localhost"),
            "/mcp",
            None,
            "localhost",
        );
        let e = r.unwrap_err();
        assert!(matches!(e, RouteError::Misdirected { .. }));
        assert_eq!(e.to_api_error("localhost").code.http_status(), 421);
        // Same name, different case and a port: fine.
        let r = route(
            Some("A.create.localhost"),
            Some("a.create.localhost:8443"),
            "/mcp",
            None,
            "localhost",
        );
        assert_eq!(r, Ok(mcp(Endpoint::Create, "a")));
    }
}
