//! Header rewriting for the reverse proxy: hop-by-hop removal (RFC 9110 §7.6.1), the
//! X-Forwarded-* set mod_proxy adds, `Forwarded` (RFC 7239), `Via` (RFC 9110 §7.6.3), and
//! ProxyPassReverse on the response.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1, plus the
/// de-facto `Keep-Alive` and `Proxy-Connection`). Typed names: a `&str` would be parsed
/// again on every request; a `static`, as a `const` array is built and dropped wherever it
/// is used. The order is the bit order of [`hop_bit`].
static HOP_BY_HOP: [HeaderName; 8] = [
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

/// [`hop_bit`]s the scan and the stripping look at by name.
const HOP_CONNECTION: u8 = 1;
const HOP_UPGRADE: u8 = 1 << 6;

/// The bit of a hop-by-hop name in [`HOP_BY_HOP`] (a lowercase name, as `HeaderName`s
/// are), 0 for any other name: one `match` on the text rather than eight comparisons.
fn hop_bit(name: &str) -> u8 {
    match name {
        "connection" => HOP_CONNECTION,
        "keep-alive" => 1 << 1,
        "proxy-connection" => 1 << 2,
        "te" => 1 << 3,
        "trailer" => 1 << 4,
        "transfer-encoding" => 1 << 5,
        "upgrade" => HOP_UPGRADE,
        "proxy-authorization" => 1 << 7,
        _ => 0,
    }
}

/// Removes the hop-by-hop headers, including every header `Connection` names. One pass
/// over the (usually few) names present finds which are there; only those are removed
/// (a removal hashes the name and probes the map, so ten of them for the one or two
/// present was most of the cost).
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    let mut present = 0u8;
    for k in h.keys() {
        present |= hop_bit(k.as_str());
    }
    strip_present(h, present);
}

/// [`strip_hop_by_hop`] when the caller has the [`hop_bit`]s of the names present.
pub fn strip_present(h: &mut HeaderMap, present: u8) {
    if present == 0 {
        return;
    }
    if present & HOP_CONNECTION != 0 {
        // The values are shared (a reference count), not copied, so the map can be
        // changed while their tokens are read; a second Connection line is rare.
        let mut all = h.get_all(header::CONNECTION).iter();
        let first = all.next().cloned();
        let more: Vec<HeaderValue> = all.cloned().collect();
        for v in first.iter().chain(&more) {
            let Ok(v) = v.to_str() else { continue };
            for t in v.split(',').map(str::trim) {
                // A hop-by-hop name is removed below if present: `Connection: keep-alive`
                // costs no lookup. Anything else (`close`, `X-Secret`) is looked up.
                if !t.is_empty()
                    && !HOP_BY_HOP
                        .iter()
                        .any(|n| n.as_str().eq_ignore_ascii_case(t))
                {
                    h.remove(t);
                }
            }
        }
    }
    for (i, n) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            h.remove(n);
        }
    }
}

/// What the proxy reads from a client's request head, found in one pass over its
/// headers instead of a lookup (a hash and a probe) for each.
#[derive(Default)]
pub struct RequestScan {
    /// [`hop_bit`]s of the hop-by-hop names present.
    pub hop: u8,
    /// Bits of the forwarding names present (see [`forward_bit`]).
    forwarding: u8,
    /// The first Host value.
    pub host: Option<HeaderValue>,
    /// The first Upgrade value.
    pub upgrade: Option<HeaderValue>,
    /// A Connection value lists `upgrade`.
    pub connection_upgrade: bool,
    /// Via is present.
    pub via: bool,
}

/// [`forward_bit`]s: forwarding headers the client sent, which ours append to.
const FWD_FOR: u8 = 1;
const FWD_HOST: u8 = 1 << 1;
const FWD_SERVER: u8 = 1 << 2;
const FWD_FORWARDED: u8 = 1 << 3;

fn forward_bit(name: &str) -> u8 {
    match name {
        "x-forwarded-for" => FWD_FOR,
        "x-forwarded-host" => FWD_HOST,
        "x-forwarded-server" => FWD_SERVER,
        "forwarded" => FWD_FORWARDED,
        _ => 0,
    }
}

impl RequestScan {
    pub fn of(h: &HeaderMap) -> RequestScan {
        let mut s = RequestScan::default();
        let mut last: Option<&HeaderName> = None;
        for (k, v) in h {
            // Further values of a name come right after its first one.
            let first = last != Some(k);
            last = Some(k);
            let name = k.as_str();
            let hop = hop_bit(name);
            s.hop |= hop;
            match hop {
                0 => {}
                HOP_CONNECTION => {
                    s.connection_upgrade |= v.to_str().is_ok_and(|v| {
                        v.split(',')
                            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
                    });
                    continue;
                }
                HOP_UPGRADE => {
                    if first {
                        s.upgrade = Some(v.clone());
                    }
                    continue;
                }
                _ => continue,
            }
            if *k == header::HOST {
                if first {
                    s.host = Some(v.clone());
                }
            } else if *k == header::VIA {
                s.via = true;
            } else {
                s.forwarding |= forward_bit(name);
            }
        }
        s
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
/// X-Forwarded-Server value when the caller has it built already; `scan`: what the
/// client's headers (which `h` was copied from) hold, so a name the client did not send
/// is inserted without looking for it first.
pub fn add_forwarded(
    h: &mut HeaderMap,
    c: &ClientSide<'_>,
    server: Option<&HeaderValue>,
    scan: &RequestScan,
) {
    let has = |bit: u8| scan.forwarding & bit != 0;
    let ip = ip_text(c.ip);
    if has(FWD_FOR) {
        append_list(h, X_FORWARDED_FOR, &ip.to_string());
    } else if let Ok(v) = HeaderValue::from_bytes(ip.as_bytes()) {
        h.insert(X_FORWARDED_FOR, v);
    }
    if let Some(host) = c.host {
        // The client's own Host value, shared rather than copied, when it is the first hop.
        let own = scan
            .host
            .as_ref()
            .filter(|v| v.as_bytes() == host.as_bytes());
        match own {
            Some(v) if !has(FWD_HOST) => {
                h.insert(X_FORWARDED_HOST, v.clone());
            }
            _ => append_list(h, X_FORWARDED_HOST, host),
        }
    }
    match server {
        Some(v) if !has(FWD_SERVER) => {
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
    // RFC 7239 §6: IPv6 addresses are quoted and bracketed. Built at its exact length,
    // so its buffer becomes the value's without a copy or a second allocation.
    let v6 = matches!(c.ip, IpAddr::V6(_));
    let host_len = c
        .host
        .map_or(0, |h| 8 + h.bytes().filter(|&b| b != b'"').count());
    let len = 4 + ip.as_bytes().len() + if v6 { 4 } else { 0 } + 7 + c.proto.len() + host_len;
    let mut fwd = String::with_capacity(len);
    fwd.push_str("for=");
    if v6 {
        fwd.push_str("\"[");
        ip.push_to(&mut fwd);
        fwd.push_str("]\"");
    } else {
        ip.push_to(&mut fwd);
    }
    fwd.push_str(";proto=");
    fwd.push_str(c.proto);
    if let Some(host) = c.host {
        fwd.push_str(";host=\"");
        if host.contains('"') {
            fwd.extend(host.chars().filter(|&ch| ch != '"'));
        } else {
            fwd.push_str(host);
        }
        fwd.push('"');
    }
    debug_assert_eq!(fwd.len(), len);
    if has(FWD_FORWARDED) {
        append_owned(h, FORWARDED, fwd);
    } else {
        insert_owned(h, FORWARDED, fwd);
    }
}

/// An address as text, without an allocation for IPv4.
enum IpText {
    V4([u8; 15], usize),
    Other(String),
}

impl IpText {
    fn as_bytes(&self) -> &[u8] {
        match self {
            IpText::V4(b, n) => &b[..*n],
            IpText::Other(s) => s.as_bytes(),
        }
    }

    /// Appends the text (ASCII digits and dots for IPv4: no UTF-8 check needed).
    fn push_to(&self, s: &mut String) {
        match self {
            IpText::V4(b, n) => s.extend(b[..*n].iter().map(|&c| char::from(c))),
            IpText::Other(t) => s.push_str(t),
        }
    }
}

impl std::fmt::Display for IpText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// The address as text; IPv4 written by hand, as `Ipv4Addr`'s Display (which supports
/// padding) is a measurable part of a proxied request.
fn ip_text(ip: IpAddr) -> IpText {
    let IpAddr::V4(a) = ip else {
        return IpText::Other(ip.to_string());
    };
    let mut b = [0u8; 15];
    let mut n = 0;
    let mut put = |c: u8| {
        b[n] = c;
        n += 1;
    };
    for (i, o) in a.octets().into_iter().enumerate() {
        if i > 0 {
            put(b'.');
        }
        if o >= 100 {
            put(b'0' + o / 100);
        }
        if o >= 10 {
            put(b'0' + o / 10 % 10);
        }
        put(b'0' + o % 10);
    }
    IpText::V4(b, n)
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
    fn connection_tokens_in_any_case_and_on_several_lines() {
        let mut h = HeaderMap::new();
        h.append("connection", HeaderValue::from_static("Keep-Alive, X-One"));
        h.append("connection", HeaderValue::from_static("x-two"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-one", HeaderValue::from_static("1"));
        h.insert("x-two", HeaderValue::from_static("2"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        let scan = RequestScan::of(&h);
        assert_eq!(scan.upgrade.as_ref().unwrap(), "websocket");
        assert!(!scan.connection_upgrade);
        strip_present(&mut h, scan.hop);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-kept"]);
    }

    #[test]
    fn request_scan_reads_the_first_values() {
        let mut h = HeaderMap::new();
        h.append("connection", HeaderValue::from_static("keep-alive"));
        h.append("connection", HeaderValue::from_static("Upgrade"));
        h.insert("via", HeaderValue::from_static("1.0 a"));
        h.append("upgrade", HeaderValue::from_static("a"));
        h.append("upgrade", HeaderValue::from_static("b"));
        h.insert("host", HeaderValue::from_static("h"));
        let s = RequestScan::of(&h);
        assert!(s.connection_upgrade);
        assert!(s.via);
        assert_eq!(s.hop, HOP_CONNECTION | HOP_UPGRADE);
        assert_eq!(s.upgrade.unwrap(), "a");
        assert_eq!(s.host.unwrap(), "h");
    }

    #[test]
    fn forwarded_appends() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.9"));
        let scan = RequestScan::of(&h);
        add_forwarded(
            &mut h,
            &ClientSide {
                ip: "::1".parse().unwrap(),
                host: Some("example.org"),
                proto: "https",
                server_name: "front",
            },
            None,
            &scan,
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
            assert_eq!(ip_text(a).to_string(), a.to_string());
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
