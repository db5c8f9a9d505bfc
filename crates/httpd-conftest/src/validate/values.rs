//! Pure value parsers: addresses, URLs, networks, durations, log formats.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::model::*;

/// An RFC 9110 token (header names).
pub(crate) fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A host name (letters, digits, `-`, `.`), an IP, optionally with scheme and port.
pub(crate) fn valid_server_name(name: &str) -> bool {
    let name = host_of(name);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    // Only a name of digits, dots and colons can be an address; skip the parse otherwise.
    if name
        .bytes()
        .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':')
        && name.parse::<IpAddr>().is_ok()
    {
        return true;
    }
    // One pass over the bytes: labels of 1 to 63 name characters between dots.
    let mut label = 0usize;
    for b in name.bytes() {
        match b {
            b'.' if label == 0 => return false,
            b'.' => label = 0,
            b if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' => {
                label += 1;
                if label > 63 {
                    return false;
                }
            }
            _ => return false,
        }
    }
    label > 0
}

/// `https://www.example.com:443` → `www.example.com` (ServerName accepts
/// `[scheme://]name[:port]`).
pub(crate) fn strip_scheme_port(name: &str) -> String {
    host_of(name).to_ascii_lowercase()
}

/// The host part of `[scheme://]name[:port]`, as written.
fn host_of(name: &str) -> &str {
    // Most names have neither scheme nor port.
    if !name.contains(':') {
        return name;
    }
    let rest = name.split_once("://").map(|(_, r)| r).unwrap_or(name);
    if let Some(v6) = rest.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    match rest.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => rest,
    }
}

pub(crate) fn valid_substitute(s: &str) -> bool {
    let mut chars = s.chars();
    if chars.next() != Some('s') {
        return false;
    }
    let Some(delim) = chars.next() else {
        return false;
    };
    s[1 + delim.len_utf8()..].split(delim).count() >= 3
}

/// Seconds, optionally with an `ms` suffix.
pub fn parse_duration(s: &str) -> Option<Duration> {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.parse::<u64>().ok().map(Duration::from_millis);
    }
    s.parse::<u64>().ok().map(Duration::from_secs)
}

/// `Listen` argument: `80`, `0.0.0.0:80`, `[::]:443`, `unix:/run/httpd.sock`.
pub fn parse_listen(s: &str) -> Result<ListenAddr, String> {
    if let Some(path) = s.strip_prefix("unix:") {
        if !path.starts_with('/') {
            return Err(format!(
                "Listen unix:{path}: the socket path must be absolute"
            ));
        }
        return Ok(ListenAddr::Unix(PathBuf::from(path)));
    }
    let port_of = |p: &str| -> Result<u16, String> {
        match p.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
            Ok(0) => Ok(0),
            Ok(n) => Err(format!("port {n} is out of range (1-65535)")),
            Err(_) => Err(format!("{p:?} is not a port number")),
        }
    };
    if !s.contains(':') || s.chars().all(|c| c.is_ascii_digit()) {
        let port = port_of(s)?;
        return Ok(ListenAddr::Tcp(SocketAddr::from(([0, 0, 0, 0], port))));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        // Port 0 asks the system for a free port (used by tests and httpd-dev).
        return Ok(ListenAddr::Tcp(addr));
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not [IP:]port"))?;
    let port = port_of(port)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(ListenAddr::Tcp(SocketAddr::new(ip, port))),
        Err(_) if host == "*" => Ok(ListenAddr::Tcp(SocketAddr::from(([0, 0, 0, 0], port)))),
        Err(_) => Err(format!(
            "Listen {s}: {host:?} is not an IP address (Listen takes IP addresses, not host names)"
        )),
    }
}

/// `<VirtualHost>` address: `*:80`, `_default_:443`, `10.0.0.1:80`, `[::1]:8080`, `*`.
pub(crate) fn parse_vhost_addr(s: &str) -> Result<VhostAddr, String> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (h, rest) = v6
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: unclosed '['"))?;
        (h, rest.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (s, None),
        }
    };
    let port = match port {
        None | Some("*") => None,
        Some(p) => match p.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Some(n as u16),
            _ => {
                return Err(format!(
                    "<VirtualHost {s}>: {p:?} is not a port (1-65535 or *)"
                ))
            }
        },
    };
    let ip = match host {
        "*" | "_default_" => None,
        h => match h.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                return Err(format!(
                    "<VirtualHost {s}>: {h:?} is not an IP address; use *:port and ServerName for name-based hosts"
                ))
            }
        },
    };
    Ok(VhostAddr { ip, port })
}

/// `Require ip` value: full or partial address, CIDR, or address/netmask.
pub(crate) fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    if let Ok(n) = s.parse::<ipnet::IpNet>() {
        return Some(n);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ipnet::IpNet::from(ip));
    }
    if let Some((ip, mask)) = s.split_once('/') {
        let ip: std::net::Ipv4Addr = ip.parse().ok()?;
        let mask: std::net::Ipv4Addr = mask.parse().ok()?;
        let prefix = u32::from(mask).leading_ones() as u8;
        return ipnet::Ipv4Net::new(ip, prefix).ok().map(Into::into);
    }
    // Apache's partial form: `10.1` means 10.1.0.0/16.
    let parts: Vec<&str> = s.trim_end_matches('.').split('.').collect();
    if (1..4).contains(&parts.len()) {
        let mut octets = [0u8; 4];
        for (i, p) in parts.iter().enumerate() {
            octets[i] = p.parse().ok()?;
        }
        return ipnet::Ipv4Net::new(octets.into(), (parts.len() * 8) as u8)
            .ok()
            .map(Into::into);
    }
    None
}

/// A ProxyPass / BalancerMember target.
pub fn parse_proxy_target(s: &str) -> Result<ProxyTarget, String> {
    if s == "!" {
        return Ok(ProxyTarget::Exclude);
    }
    if let Some(rest) = s.strip_prefix("unix:") {
        let Some((socket, url)) = rest.split_once('|') else {
            return Err(format!(
                "{s:?}: a unix socket target is written unix:/path.sock|http://localhost/"
            ));
        };
        if !socket.starts_with('/') {
            return Err(format!("{s:?}: the socket path must be absolute"));
        }
        check_url(url)?;
        return Ok(ProxyTarget::Unix {
            socket: PathBuf::from(socket),
            url: url.to_string(),
        });
    }
    if let Some(rest) = s.strip_prefix("balancer://") {
        let (name, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if name.is_empty() {
            return Err(format!("{s:?}: the balancer needs a name"));
        }
        return Ok(ProxyTarget::Balancer {
            name: format!("balancer://{name}"),
            path: path.to_string(),
        });
    }
    check_url(s)?;
    Ok(ProxyTarget::Url { url: s.to_string() })
}

pub(crate) fn check_url(s: &str) -> Result<(), String> {
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(format!("{s:?} is not a URL (http://host:port/path)"));
    };
    let scheme = scheme.to_ascii_lowercase();
    if !["http", "https", "ws", "wss", "h2c", "h2"].contains(&scheme.as_str()) {
        return Err(format!(
            "{s:?}: scheme {scheme:?} is not supported (http, https, ws, wss; fcgi/ajp are not)"
        ));
    }
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("{s:?} has no host"));
    }
    if let Some((_, port)) = authority
        .rsplit_once(':')
        .filter(|_| !authority.ends_with(']'))
    {
        match port.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => {}
            _ => return Err(format!("{s:?}: port {port:?} is not 1-65535")),
        }
    }
    Ok(())
}

/// mod_proxy worker parameters we understand, with their value checks.
pub(crate) fn check_worker_param(key: &str, v: &str) -> Result<(), String> {
    let seconds = |v: &str| {
        parse_duration(v)
            .map(|_| ())
            .ok_or_else(|| format!("{key}={v}: expected seconds"))
    };
    match key {
        "timeout" | "connectiontimeout" | "retry" | "ttl" | "hcinterval" | "ping" => seconds(v),
        "loadfactor" | "lbset" | "max" | "min" | "smax" | "hcpasses" | "hcfails" => v
            .parse::<u32>()
            .map(|_| ())
            .map_err(|_| format!("{key}={v}: expected a whole number")),
        "lbmethod" => match v {
            "byrequests" | "bybusyness" | "bytraffic" | "heartbeat" => Ok(()),
            _ => Err(format!("lbmethod={v}: expected byrequests or bybusyness")),
        },
        "status" => {
            if v.chars().all(|c| "+-DHIENSRCd".contains(c)) {
                Ok(())
            } else {
                Err(format!("status={v}: expected flags like +H or -D"))
            }
        }
        "hcmethod" | "hcuri" | "hcexpr" | "upgrade" | "keepalive" | "disablereuse"
        | "enablereuse" | "flushpackets" | "flushwait" | "iobuffersize" | "receivebuffersize"
        | "redirect" | "route" | "secret" | "stickysession" | "nofailover" | "forcerecovery"
        | "growth" | "maxattempts" | "scolonpathdelim" | "failonstatus" | "failontimeout"
        | "nonce" | "timeoutdelay" | "addressttl" | "responsefieldsize" | "mapping"
        | "hctemplate" | "ping_timeout" | "stickysessionsep" | "lbpolicy" => Ok(()),
        _ => Err(format!("unknown proxy parameter {key:?}")),
    }
}

/// Validates the `%` directives of a LogFormat string.
pub fn check_log_format(fmt: &str) -> Result<(), String> {
    let bytes = fmt.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        i += 1;
        // Optional status conditions (`%400,501{User-agent}i`) and `<`/`>` modifiers.
        while i < bytes.len() && (bytes[i].is_ascii_digit() || b",!<>".contains(&bytes[i])) {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'{' {
            match fmt[i..].find('}') {
                Some(end) => i += end + 1,
                None => return Err(format!("LogFormat {fmt:?}: '{{' without '}}'")),
            }
        }
        let Some(&c) = bytes.get(i) else {
            return Err(format!("LogFormat {fmt:?} ends with a lone '%'"));
        };
        if !b"%aABbCDefhHiklLmnopPqrRstTuUvVXIOSM^".contains(&c) {
            return Err(format!(
                "LogFormat {fmt:?}: unknown directive %{}",
                c as char
            ));
        }
        if c == b'^' {
            // %^ti / %^to (trailers): two more letters.
            i += 2;
        }
        i += 1;
    }
    Ok(())
}

/// `MaxRanges`: `default` (200), `unlimited`, `none`, or a positive number (Apache
/// refuses 0 and negatives).
pub fn max_ranges(v: &str) -> Option<crate::model::MaxRanges> {
    use crate::model::MaxRanges;
    match v.to_ascii_lowercase().as_str() {
        "default" => Some(MaxRanges::DEFAULT),
        "unlimited" => Some(MaxRanges::Unlimited),
        "none" => Some(MaxRanges::None),
        n => match n.parse::<u32>() {
            Ok(n) if n > 0 => Some(MaxRanges::Limit(n)),
            _ => None,
        },
    }
}

/// What `User`/`Group` names on this machine.
#[derive(Debug, PartialEq, Eq)]
pub enum Account {
    Known,
    Unknown,
    /// `User root` (or `#0`).
    Root,
}

/// Looks a `User` (`is_user`) or `Group` up: a name, or `#N` (an id, always accepted).
pub fn account_check(is_user: bool, v: &str) -> Account {
    use nix::unistd::{Group, User};
    if let Some(id) = v.strip_prefix('#') {
        return match id.parse::<u32>() {
            Ok(0) if is_user => Account::Root,
            Ok(_) => Account::Known,
            Err(_) => Account::Unknown,
        };
    }
    if is_user {
        match User::from_name(v) {
            Ok(Some(u)) if u.uid.is_root() => Account::Root,
            Ok(Some(_)) => Account::Known,
            _ => Account::Unknown,
        }
    } else {
        match Group::from_name(v) {
            Ok(Some(_)) => Account::Known,
            _ => Account::Unknown,
        }
    }
}
