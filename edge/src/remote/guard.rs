//! The SSRF guard on remote MCP server URLs: only `http`/`https`, and every address the
//! host resolves to must be public unless the operator allowed it
//! (`--allow-private-mcp-hosts`, config `allow_private_mcp_hosts`). Refused: loopback,
//! private (RFC 1918, ULA), link-local, CGNAT (100.64/10), unspecified, multicast,
//! broadcast, documentation/benchmark ranges, IPv4-mapped forms of those, and the cloud
//! metadata addresses (169.254.169.254, fd00:ec2::254). The check runs when a server is
//! added and again on every connect, and the connection is pinned to the address that
//! was checked, so a DNS answer that changes in between (rebinding) cannot redirect it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;
use paddock_shared::ErrorCode;

use super::RemoteCallError;

/// The operator's allow list of otherwise refused networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<IpNet>);

impl AllowList {
    /// Parses `127.0.0.1,10.0.0.0/8,::1` (addresses or CIDR networks, comma separated).
    ///
    /// # Errors
    /// The entry that is neither an address nor a network.
    pub fn parse(text: &str) -> Result<AllowList, String> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            out.push(parse_net(part)?);
        }
        Ok(AllowList(out))
    }

    /// From a list of entries (the config file form).
    ///
    /// # Errors
    /// The first bad entry.
    pub fn from_entries(entries: &[String]) -> Result<AllowList, String> {
        entries
            .iter()
            .map(|e| parse_net(e.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map(AllowList)
    }

    /// Adds the entries of another list.
    pub fn extend(&mut self, other: &AllowList) {
        self.0.extend(other.0.iter().copied());
    }

    /// Whether `ip` is allowed by an entry.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }
}

fn parse_net(s: &str) -> Result<IpNet, String> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n);
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{s:?} is not an IP address or CIDR network"))
}

/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Why an address is not public, or `None` when it is.
pub fn non_public_reason(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some("the cloud metadata address")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if o[0] == 100 && (64..128).contains(&o[1]) {
        Some("carrier-grade NAT")
    } else if ip.is_broadcast() || ip.is_multicast() || o[0] >= 240 {
        Some("broadcast, multicast or reserved")
    } else if ip.is_documentation() || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) {
        Some("documentation or benchmarking")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("IETF protocol assignments")
    } else {
        None
    }
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        Some("the cloud metadata address")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if (s[0] & 0xfe00) == 0xfc00 {
        Some("private (unique local)")
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if s[0] == 0x2001 && s[1] == 0xdb8 {
        Some("documentation")
    } else if s[0] == 0x64 && s[1] == 0xff9b {
        // NAT64 can reach any IPv4 address, private ones included.
        Some("NAT64")
    } else {
        None
    }
}

/// A URL that passed the syntax check: scheme, host, port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: reqwest::Url,
    pub host: String,
    pub port: u16,
}

fn refused(message: String) -> RemoteCallError {
    RemoteCallError::new(ErrorCode::HostNotAllowed, message)
}

/// Parses and checks the form of a server URL: http(s), a host, no fragment.
///
/// # Errors
/// `INVALID_ARGUMENT` for a malformed URL or another scheme.
pub fn parse_url(url: &str) -> Result<Target, RemoteCallError> {
    let bad = |m: &str| RemoteCallError::new(ErrorCode::InvalidArgument, m.to_owned());
    let u = reqwest::Url::parse(url.trim()).map_err(|_| {
        bad("url: not a valid absolute URL — give one like https://mcp.example.com/mcp")
    })?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad(
            "url: only http and https MCP servers can be added (no stdio or other schemes)",
        ));
    }
    let host = match u.host_str() {
        Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']').to_owned(),
        _ => return Err(bad("url: the URL has no host")),
    };
    let port = u.port_or_known_default().unwrap_or(443);
    Ok(Target { url: u, host, port })
}

/// The URL for display: scheme, host, port and path — no user info, query or fragment.
pub fn display_url(t: &Target) -> String {
    let mut u = t.url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// Resolves the target's host and checks every address; returns the address to pin the
/// connection to.
///
/// # Errors
/// `HOST_NOT_ALLOWED` when an address is not public and not allowed (naming the address
/// class and the operator setting), `MCP_SERVER_UNAVAILABLE` when the name does not
/// resolve.
pub async fn resolve_checked(t: &Target, allow: &AllowList) -> Result<SocketAddr, RemoteCallError> {
    let addrs: Vec<SocketAddr> = match t.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, t.port)],
        Err(_) => tokio::net::lookup_host((t.host.as_str(), t.port))
            .await
            .map_err(|_| {
                RemoteCallError::new(
                    ErrorCode::McpServerUnavailable,
                    format!("cannot resolve the MCP server host {}", t.host),
                )
            })?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(RemoteCallError::new(
            ErrorCode::McpServerUnavailable,
            format!("the MCP server host {} has no addresses", t.host),
        ));
    }
    for a in &addrs {
        if let Some(reason) = non_public_reason(a.ip())
            && !allow.allows(a.ip())
        {
            return Err(refused(format!(
                "the MCP server host {} resolves to {} ({reason}); such addresses are refused unless the operator allows them with `paddock-edge serve --allow-private-mcp-hosts` (config `allow_private_mcp_hosts`)",
                t.host,
                a.ip()
            )));
        }
    }
    Ok(addrs[0])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_non_public_addresses() {
        for (ip, want) in [
            ("127.0.0.1", Some("loopback")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("192.168.1.1", Some("private")),
            ("169.254.169.254", Some("the cloud metadata address")),
            ("169.254.1.1", Some("link-local")),
            ("100.64.0.1", Some("carrier-grade NAT")),
            ("100.127.255.255", Some("carrier-grade NAT")),
            ("0.0.0.0", Some("unspecified")),
            ("::", Some("unspecified")),
            ("::1", Some("loopback")),
            ("fd00:ec2::254", Some("the cloud metadata address")),
            ("fc00::1", Some("private (unique local)")),
            ("fe80::1", Some("link-local")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:169.254.169.254", Some("the cloud metadata address")),
            ("8.8.8.8", None),
            ("100.128.0.1", None),
            ("2606:4700::1111", None),
        ] {
            assert_eq!(non_public_reason(ip.parse().unwrap()), want, "{ip}");
        }
    }

    #[test]
    fn allow_list_parses_addresses_and_networks() {
        let a = AllowList::parse("127.0.0.1, 10.0.0.0/8,::1").unwrap();
        assert!(a.allows("127.0.0.1".parse().unwrap()));
        assert!(a.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(a.allows("10.200.0.1".parse().unwrap()));
        assert!(!a.allows("127.0.0.2".parse().unwrap()));
        assert!(!a.allows("192.168.0.1".parse().unwrap()));
        assert!(AllowList::parse("10.0.0.0/33").is_err());
        assert!(AllowList::parse("localhost").is_err());
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_allowed() {
        let t = parse_url("http://127.0.0.1:9/mcp").unwrap();
        let e = resolve_checked(&t, &AllowList::default())
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::HostNotAllowed);
        assert!(e.message.contains("loopback"), "{}", e.message);
        let allow = AllowList::parse("127.0.0.0/8").unwrap();
        assert_eq!(
            resolve_checked(&t, &allow).await.unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        // A name resolving to loopback is refused the same way.
        let t = parse_url("http://localhost:9/mcp").unwrap();
        assert!(resolve_checked(&t, &AllowList::default()).await.is_err());
    }

    #[test]
    fn url_form_and_display() {
        assert!(parse_url("ftp://x/").is_err());
        assert!(parse_url("stdio:///bin/sh").is_err());
        assert!(parse_url("not a url").is_err());
        let t = parse_url("https://user:pw@mcp.example.com/mcp?token=s3cret#x").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("mcp.example.com", 443));
        assert_eq!(display_url(&t), "https://mcp.example.com/mcp");
    }
}
