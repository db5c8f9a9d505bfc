//! Header rewriting for the reverse proxy: the request's fields as the backend gets them
//! (written straight into the request head: hop-by-hop fields left out (RFC 9110 §7.6.1),
//! the X-Forwarded-* set mod_proxy adds, `Forwarded` (RFC 7239), `Via` (RFC 9110
//! §7.6.3)), and ProxyPassReverse on the response. The response's hop-by-hop fields are
//! left out as its head is parsed (`wire`).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_SERVER: HeaderName = HeaderName::from_static("x-forwarded-server");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// [`hop_bit`]s looked at by name.
pub(super) const HOP_CONNECTION: u8 = 1;
pub(super) const HOP_UPGRADE: u8 = 1 << 6;

/// The bit of a field that describes one connection and is never forwarded (RFC 9110
/// §7.6.1, plus the de-facto `Keep-Alive` and `Proxy-Connection`), 0 for any other
/// name. A lowercase name, as `HeaderName`s are: one `match` on the text rather than a
/// comparison for each.
pub(super) fn hop_bit(name: &str) -> u8 {
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
    /// The Content-Length value, when it is a number.
    pub length: Option<u64>,
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
            } else if *k == header::CONTENT_LENGTH {
                if first {
                    s.length = v.to_str().ok().and_then(|v| v.parse().ok());
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

/// What is added to the fields the backend gets.
pub struct Adds<'a> {
    pub client: &'a ClientSide<'a>,
    /// ProxyAddHeaders: mod_proxy's X-Forwarded-For/-Host/-Server (appended to a list a
    /// previous proxy started), X-Forwarded-Proto, and `Forwarded` (RFC 7239 §4).
    pub forwarded: bool,
    /// ProxyVia: the protocol version for `Via: 1.1 name` (RFC 9110 §7.6.3), appended
    /// to what earlier hops wrote.
    pub via: Option<&'static str>,
}

/// The request's fields as the backend gets them, each line ending in CRLF, written
/// once for every attempt: the client's fields but the hop-by-hop ones (and those its
/// Connection names), Host and Content-Length (written with the request line and the
/// framing), then the [`Adds`]. `scan`: what `h` holds.
pub fn write_fields(out: &mut Vec<u8>, h: &HeaderMap, scan: &RequestScan, adds: &Adds<'_>) {
    // Names the Connection field lists besides the hop-by-hop ones (rare).
    let mut named: Vec<&str> = Vec::new();
    if scan.hop & HOP_CONNECTION != 0 {
        for v in h.get_all(header::CONNECTION) {
            let Ok(v) = v.to_str() else { continue };
            named.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty() && hop_bit(&t.to_ascii_lowercase()) == 0),
            );
        }
    }
    for (k, v) in h {
        let name = k.as_str();
        let ours = (adds.forwarded && (forward_bit(name) != 0 || name == "x-forwarded-proto"))
            || (adds.via.is_some() && *k == header::VIA);
        if ours
            || hop_bit(name) != 0
            || *k == header::HOST
            || *k == header::CONTENT_LENGTH
            || named.iter().any(|t| t.eq_ignore_ascii_case(name))
        {
            continue;
        }
        field(out, name, &[v.as_bytes()]);
    }
    let c = adds.client;
    let host = c.host.map(str::as_bytes).filter(|v| valid(v));
    let server = Some(c.server_name.as_bytes()).filter(|v| valid(v));
    if adds.forwarded {
        let has = |bit: u8| scan.forwarding & bit != 0;
        let ip = ip_text(c.ip);
        list(out, h, has(FWD_FOR), X_FORWARDED_FOR, Some(ip.as_bytes()));
        list(out, h, has(FWD_HOST), X_FORWARDED_HOST, host);
        list(out, h, has(FWD_SERVER), X_FORWARDED_SERVER, server);
        let proto = Some(c.proto.as_bytes()).filter(|v| valid(v));
        if let Some(proto) = proto {
            field(out, "x-forwarded-proto", &[proto]);
            // RFC 7239 §6: IPv6 addresses are quoted and bracketed; the host is a
            // quoted-string, so it loses any quote of its own.
            let (open, close): (&[u8], &[u8]) = match c.ip {
                IpAddr::V6(_) => (b"for=\"[", b"]\";proto="),
                IpAddr::V4(_) => (b"for=", b";proto="),
            };
            let unquoted: Option<Vec<u8>> = host
                .filter(|v| v.contains(&b'"'))
                .map(|v| v.iter().copied().filter(|&b| b != b'"').collect());
            let fwd: [&[u8]; 7] = match unquoted.as_deref().or(host) {
                Some(host) => [open, ip.as_bytes(), close, proto, b";host=\"", host, b"\""],
                None => [open, ip.as_bytes(), close, proto, b"", b"", b""],
            };
            list_of(out, h, has(FWD_FORWARDED), FORWARDED, Some(&fwd));
        }
    }
    if let Some(version) = adds.via {
        let ours = server.map(|s| [version.as_bytes(), &b" "[..], s]);
        list_of(out, h, scan.via, header::VIA, ours.as_ref().map(|p| &p[..]));
    }
}

/// One field line from its value's pieces.
fn field(out: &mut Vec<u8>, name: &str, value: &[&[u8]]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    for p in value {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(b"\r\n");
}

/// A list field: the values the client sent (`present`), then ours; nothing when there
/// is neither.
fn list(out: &mut Vec<u8>, h: &HeaderMap, present: bool, name: HeaderName, ours: Option<&[u8]>) {
    list_of(
        out,
        h,
        present,
        name,
        ours.as_ref().map(std::slice::from_ref),
    );
}

fn list_of(
    out: &mut Vec<u8>,
    h: &HeaderMap,
    present: bool,
    name: HeaderName,
    ours: Option<&[&[u8]]>,
) {
    let start = out.len();
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    let empty = out.len();
    if present {
        for v in h.get_all(&name).iter().filter(|v| !v.is_empty()) {
            if out.len() > empty {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(v.as_bytes());
        }
    }
    if let Some(ours) = ours {
        if out.len() > empty {
            out.extend_from_slice(b", ");
        }
        for p in ours {
            out.extend_from_slice(p);
        }
    }
    if out.len() == empty {
        out.truncate(start);
    } else {
        out.extend_from_slice(b"\r\n");
    }
}

/// A value that can go in a field line as it is (RFC 9110 §5.5: no CR, LF or NUL, no
/// other control but tab).
fn valid(v: &[u8]) -> bool {
    // A fold rather than `all`: no early exit, so it runs over whole vectors.
    v.iter()
        .fold(true, |ok, &b| ok & (b == b'\t' || (b >= 0x20 && b != 0x7f)))
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

    fn fields(h: &HeaderMap, adds: &Adds<'_>) -> String {
        let mut out = Vec::new();
        write_fields(&mut out, h, &RequestScan::of(h), adds);
        String::from_utf8(out).unwrap()
    }

    /// A map of `fields` in order (a name given twice has two values).
    fn map(fields: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for &(name, value) in fields {
            h.append(name, HeaderValue::from_static(value));
        }
        h
    }

    fn client(ip: &str) -> ClientSide<'static> {
        ClientSide {
            ip: ip.parse().unwrap(),
            host: Some("example.org"),
            proto: "https",
            server_name: "front",
        }
    }

    #[test]
    fn hop_by_hop_left_out_with_connection_tokens() {
        let h = map(&[
            ("connection", "Keep-Alive, X-One"),
            ("connection", "x-two"),
            ("keep-alive", "timeout=5"),
            ("x-one", "1"),
            ("x-two", "2"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("host", "h"),
            ("content-length", "5"),
            ("x-kept", "1"),
        ]);
        let c = client("192.0.2.1");
        let adds = Adds {
            client: &c,
            forwarded: false,
            via: None,
        };
        assert_eq!(fields(&h, &adds), "x-kept: 1\r\n");
    }

    #[test]
    fn request_scan_reads_the_first_values() {
        let h = map(&[
            ("connection", "keep-alive"),
            ("connection", "Upgrade"),
            ("via", "1.0 a"),
            ("upgrade", "a"),
            ("upgrade", "b"),
            ("host", "h"),
        ]);
        let s = RequestScan::of(&h);
        assert!(s.connection_upgrade);
        assert!(s.via);
        assert_eq!(s.hop, HOP_CONNECTION | HOP_UPGRADE);
        assert_eq!(s.upgrade.unwrap(), "a");
        assert_eq!(s.host.unwrap(), "h");
    }

    #[test]
    fn forwarding_fields_extend_what_earlier_proxies_wrote() {
        let h = map(&[
            ("x-forwarded-for", "192.0.2.9"),
            ("x-forwarded-for", "192.0.2.10"),
            ("x-forwarded-proto", "http"),
            ("via", "1.0 a"),
            ("accept", "*/*"),
        ]);
        let c = client("::1");
        let adds = Adds {
            client: &c,
            forwarded: true,
            via: Some("1.1"),
        };
        assert_eq!(
            fields(&h, &adds),
            "accept: */*\r\n\
             x-forwarded-for: 192.0.2.9, 192.0.2.10, ::1\r\n\
             x-forwarded-host: example.org\r\n\
             x-forwarded-server: front\r\n\
             x-forwarded-proto: https\r\n\
             forwarded: for=\"[::1]\";proto=https;host=\"example.org\"\r\n\
             via: 1.0 a, 1.1 front\r\n"
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
