//! Django runserver's addrport forms: `8001`, `0:8000`, `ADDR:PORT`, `[::1]:8000`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::error::Error;

pub const DEFAULT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8000);

/// Parses an addrport; `0` as the address means all IPv4 interfaces (as in Django).
pub fn parse(s: &str) -> Result<SocketAddr, Error> {
    let bad = || Error::AddrPort(s.to_string());
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::new(DEFAULT.ip(), port));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (ip, port) = rest.split_once("]:").ok_or_else(bad)?;
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        return Ok(SocketAddr::new(ip, port.parse().map_err(|_| bad())?));
    }
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let ip = match host {
        "0" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => DEFAULT.ip(),
        h => h.parse().map_err(|_| bad())?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// Whether the first positional argument looks like an addrport rather than a directory.
pub fn looks_like(s: &str) -> bool {
    s.parse::<u16>().is_ok() || s.starts_with('[') || parse(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let table: &[(&str, Option<&str>)] = &[
            ("8001", Some("127.0.0.1:8001")),
            ("0:8000", Some("0.0.0.0:8000")),
            ("127.0.0.2:80", Some("127.0.0.2:80")),
            ("[::1]:8000", Some("[::1]:8000")),
            ("localhost:9000", Some("127.0.0.1:9000")),
            ("abc", None),
            ("1.2.3.4:x", None),
            ("[::1]8000", None),
            ("70000", None),
        ];
        for (input, want) in table {
            let got = parse(input).ok().map(|a| a.to_string());
            assert_eq!(got.as_deref(), *want, "{input}");
        }
    }
}
