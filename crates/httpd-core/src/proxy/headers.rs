//! Header rewriting for the reverse proxy: hop-by-hop removal (RFC 9110 §7.6.1), the
//! X-Forwarded-* set mod_proxy adds, `Forwarded` (RFC 7239), `Via` (RFC 9110 §7.6.3), and
//! ProxyPassReverse on the response.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1, plus the
/// de-facto `Keep-Alive` and `Proxy-Connection`). Typed names: a `&str` would be parsed
/// again on every request.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_SERVER: HeaderName = HeaderName::from_static("x-forwarded-server");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Removes the hop-by-hop headers, including every header `Connection` names. One pass
/// over the (usually few) names present rather than a lookup per hop-by-hop name.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    if !h.keys().any(|k| HOP_BY_HOP.contains(k)) {
        return;
    }
    if h.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = h
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for n in named {
            h.remove(n);
        }
    }
    for n in &HOP_BY_HOP {
        h.remove(n);
    }
}

/// What the proxy knows about the client side of a request.
pub struct ClientSide<'a> {
    pub ip: IpAddr,
    /// The Host the client sent.
    pub host: Option<&'a str>,
    /// "http" or "https".
    pub proto: &'a str,
    /// This server's name, for X-Forwarded-Server and Via.
    pub server_name: &'a str,
}

/// mod_proxy's X-Forwarded-For/-Host/-Server (appending to a list a previous proxy
/// started), X-Forwarded-Proto, and `Forwarded` (RFC 7239 §4). `server`: the
/// X-Forwarded-Server value when the caller has it built already.
pub fn add_forwarded(h: &mut HeaderMap, c: &ClientSide<'_>, server: Option<&HeaderValue>) {
    let ip = ip_text(c.ip);
    append_list(h, X_FORWARDED_FOR, &ip);
    if let Some(host) = c.host {
        // The client's own Host value, shared rather than copied, when it is the first hop.
        let own = h
            .get(header::HOST)
            .filter(|v| v.as_bytes() == host.as_bytes())
            .cloned();
        match own {
            Some(v) if !h.contains_key(X_FORWARDED_HOST) => {
                h.insert(X_FORWARDED_HOST, v);
            }
            _ => append_list(h, X_FORWARDED_HOST, host),
        }
    }
    match server {
        Some(v) if !h.contains_key(X_FORWARDED_SERVER) => {
            h.insert(X_FORWARDED_SERVER, v.clone());
        }
        _ => append_list(h, X_FORWARDED_SERVER, c.server_name),
    }
    let proto = match c.proto {
        "http" => Some(HeaderValue::from_static("http")),
        "https" => Some(HeaderValue::from_static("https")),
        p => HeaderValue::from_str(p).ok(),
    };
    if let Some(v) = proto {
        h.insert(X_FORWARDED_PROTO, v);
    }
    // RFC 7239 §6: IPv6 addresses are quoted and bracketed.
    let mut fwd = String::with_capacity(40 + c.host.map_or(0, str::len));
    fwd.push_str("for=");
    match c.ip {
        IpAddr::V4(_) => fwd.push_str(&ip),
        IpAddr::V6(_) => {
            fwd.push_str("\"[");
            fwd.push_str(&ip);
            fwd.push_str("]\"");
        }
    }
    fwd.push_str(";proto=");
    fwd.push_str(c.proto);
    if let Some(host) = c.host {
        fwd.push_str(";host=\"");
        fwd.extend(host.chars().filter(|&ch| ch != '"'));
        fwd.push('"');
    }
    append_owned(h, FORWARDED, fwd);
}

/// The address as text; IPv4 written by hand, as `Ipv4Addr`'s Display (which supports
/// padding) is a measurable part of a proxied request.
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(a) = ip else {
        return ip.to_string();
    };
    let mut s = String::with_capacity(15);
    for (i, o) in a.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if o >= 100 {
            s.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            s.push(char::from(b'0' + o / 10 % 10));
        }
        s.push(char::from(b'0' + o % 10));
    }
    s
}

/// `Via: 1.1 name` (RFC 9110 §7.6.3), appended to what earlier hops wrote.
pub fn add_via(h: &mut HeaderMap, version: http::Version, server_name: &str) {
    let v = match version {
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2.0",
        _ => "1.1",
    };
    append_list(h, header::VIA, &format!("{v} {server_name}"));
}

fn append_list(h: &mut HeaderMap, name: HeaderName, value: &str) {
    match h.get(&name).and_then(|v| v.to_str().ok()) {
        Some(old) if !old.is_empty() => {
            let joined = format!("{old}, {value}");
            insert_owned(h, name, joined);
        }
        _ => {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(name, v);
            }
        }
    }
}

/// [`append_list`] with a value already owned (no second copy when it is the first).
fn append_owned(h: &mut HeaderMap, name: HeaderName, value: String) {
    match h.get(&name).and_then(|v| v.to_str().ok()) {
        Some(old) if !old.is_empty() => {
            let joined = format!("{old}, {value}");
            insert_owned(h, name, joined);
        }
        _ => insert_owned(h, name, value),
    }
}

/// The text as a header value, its buffer handed over rather than copied.
fn insert_owned(h: &mut HeaderMap, name: HeaderName, value: String) {
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
        h.insert(name, v);
    }
}

/// ProxyPassReverse: a Location, Content-Location or URI header that starts with a
/// backend URL gets that prefix replaced by the public path.
pub fn reverse(h: &mut HeaderMap, pairs: &[(String, String)], front: &str) {
    for name in [
        header::LOCATION,
        header::CONTENT_LOCATION,
        HeaderName::from_static("uri"),
    ] {
        let Some(v) = h.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        for (path, url) in pairs {
            if let Some(rest) = v.strip_prefix(url.as_str()) {
                let mut out = format!("{front}{path}");
                if out.ends_with('/') && rest.starts_with('/') {
                    out.pop();
                }
                out.push_str(rest);
                if let Ok(nv) = HeaderValue::from_str(&out) {
                    h.insert(name.clone(), nv);
                }
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_removed_with_connection_tokens() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, X-Secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-kept"]);
    }

    #[test]
    fn forwarded_appends() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.9"));
        add_forwarded(
            &mut h,
            &ClientSide {
                ip: "::1".parse().unwrap(),
                host: Some("example.org"),
                proto: "https",
                server_name: "front",
            },
            None,
        );
        assert_eq!(h["x-forwarded-for"], "192.0.2.9, ::1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(
            h["forwarded"],
            "for=\"[::1]\";proto=https;host=\"example.org\""
        );
    }

    #[test]
    fn ip_text_matches_display() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.100.255",
            "192.0.2.9",
            "::1",
            "2001:db8::7",
        ] {
            let a: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(a), a.to_string());
        }
    }

    #[test]
    fn reverse_table() {
        let pairs = vec![("/app/".to_string(), "http://127.0.0.1:8080/".to_string())];
        let cases = [
            ("http://127.0.0.1:8080/login", "http://front/app/login"),
            ("http://other/x", "http://other/x"),
            ("http://127.0.0.1:8080/", "http://front/app/"),
        ];
        for (from, want) in cases {
            let mut h = HeaderMap::new();
            h.insert(header::LOCATION, HeaderValue::from_str(from).unwrap());
            reverse(&mut h, &pairs, "http://front");
            assert_eq!(h[header::LOCATION], want, "{from}");
        }
    }
}
