//! The PROXY protocol header (HAProxy's spec, versions 1 and 2) that httpd-tls puts in
//! front of each connection: the real client address and the negotiated ALPN.
//! Written by hand: the format is small and fixed, and this parser reads exactly the
//! header's bytes, handing back whatever followed it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const PP2_TYPE_ALPN: u8 = 0x01;
const PP2_TYPE_SSL: u8 = 0x20;
/// In the SSL TLV's `client` byte: the client connected over SSL/TLS.
const PP2_CLIENT_SSL: u8 = 0x01;

#[derive(Debug, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The client address; None for `LOCAL`/`UNKNOWN` (health checks).
    pub source: Option<SocketAddr>,
    pub alpn: Option<Vec<u8>>,
    /// The client connected over TLS (a `PP2_TYPE_SSL` TLV with `PP2_CLIENT_SSL` set).
    pub ssl: bool,
    /// Bytes read past the header: the start of the HTTP stream.
    pub rest: Bytes,
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Reads a PROXY header (v1 or v2) from the start of `stream`.
pub async fn read<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<ProxyHeader> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        match parse(&buf) {
            Ok(Some((header, used))) => {
                return Ok(ProxyHeader {
                    rest: Bytes::copy_from_slice(&buf[used..]),
                    ..header
                })
            }
            Ok(None) => {}
            Err(e) => return Err(e),
        }
        if buf.len() > 64 * 1024 {
            return Err(bad("PROXY header too long"));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("connection closed inside the PROXY header"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Parses a complete header at the start of `buf`: Ok(None) when more bytes are needed.
pub fn parse(buf: &[u8]) -> io::Result<Option<(ProxyHeader, usize)>> {
    let sig_len = buf.len().min(12);
    if buf[..sig_len] == V2_SIG[..sig_len] {
        if buf.len() < 16 {
            return Ok(None);
        }
        return parse_v2(buf);
    }
    let p_len = buf.len().min(6);
    if buf[..p_len] != b"PROXY "[..p_len] {
        return Err(bad("not a PROXY protocol header"));
    }
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() > 107 {
            return Err(bad("PROXY v1 line too long"));
        }
        return Ok(None);
    };
    if end + 2 > 107 {
        return Err(bad("PROXY v1 line too long"));
    }
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| bad("PROXY v1 not ASCII"))?;
    let parts: Vec<&str> = line.split(' ').collect();
    let source = match parts.get(1).copied() {
        Some("UNKNOWN") => None,
        Some(proto @ ("TCP4" | "TCP6")) if parts.len() == 6 => {
            // Both addresses of the named family, both ports plain decimal numbers.
            let addr = |s: &str| match s.parse::<IpAddr>() {
                Ok(ip) if ip.is_ipv4() == (proto == "TCP4") => Ok(ip),
                _ => Err(bad("bad PROXY v1 address")),
            };
            let port = |s: &str| match s.parse::<u16>() {
                Ok(p) if s.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
                _ => Err(bad("bad PROXY v1 port")),
            };
            let (ip, _) = (addr(parts[2])?, addr(parts[3])?);
            let (port, _) = (port(parts[4])?, port(parts[5])?);
            Some(SocketAddr::new(ip, port))
        }
        _ => return Err(bad("bad PROXY v1 line")),
    };
    Ok(Some((
        ProxyHeader {
            source,
            alpn: None,
            ssl: false,
            rest: Bytes::new(),
        },
        end + 2,
    )))
}

fn parse_v2(buf: &[u8]) -> io::Result<Option<(ProxyHeader, usize)>> {
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(bad("unsupported PROXY protocol version"));
    }
    let fam = buf[13];
    let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    if buf.len() < 16 + len {
        return Ok(None);
    }
    let body = &buf[16..16 + len];
    // Commands: 0 LOCAL, 1 PROXY; the spec says to drop anything else.
    if ver_cmd & 0x0f > 1 {
        return Err(bad("unsupported PROXY v2 command"));
    }
    let local = ver_cmd & 0x0f == 0;
    let (source, tlvs) = match fam >> 4 {
        1 if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let port = u16::from_be_bytes([body[8], body[9]]);
            (Some(SocketAddr::new(ip.into(), port)), &body[12..])
        }
        2 if body.len() >= 36 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&body[..16]);
            let port = u16::from_be_bytes([body[32], body[33]]);
            (
                Some(SocketAddr::new(Ipv6Addr::from(a).into(), port)),
                &body[36..],
            )
        }
        3 if body.len() >= 216 => (None, &body[216..]),
        0 => (None, body),
        _ => return Err(bad("bad PROXY v2 address block")),
    };
    let mut alpn = None;
    let mut ssl = false;
    let mut t = tlvs;
    while t.len() >= 3 {
        let kind = t[0];
        let l = u16::from_be_bytes([t[1], t[2]]) as usize;
        if t.len() < 3 + l {
            return Err(bad("truncated PROXY v2 TLV"));
        }
        match kind {
            PP2_TYPE_ALPN => alpn = Some(t[3..3 + l].to_vec()),
            // The value starts with the `client` flags byte (then verify and sub-TLVs).
            PP2_TYPE_SSL => ssl = t.get(3).is_some_and(|c| l > 0 && c & PP2_CLIENT_SSL != 0),
            _ => {}
        }
        t = &t[3 + l..];
    }
    Ok(Some((
        ProxyHeader {
            source: if local { None } else { source },
            alpn,
            ssl,
            rest: Bytes::new(),
        },
        16 + len,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_table() {
        let (h, used) = parse(b"PROXY TCP4 192.0.2.1 127.0.0.1 5555 80\r\nGET")
            .unwrap()
            .unwrap();
        assert_eq!(h.source, Some("192.0.2.1:5555".parse().unwrap()));
        assert_eq!(used, 40);
        let (h, _) = parse(b"PROXY TCP6 2001:db8::1 ::1 4000 443\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.source, Some("[2001:db8::1]:4000".parse().unwrap()));
        assert!(parse(b"PROXY UNKNOWN\r\n")
            .unwrap()
            .unwrap()
            .0
            .source
            .is_none());
        assert!(parse(b"PROXY TCP4 1.2.3.4").unwrap().is_none());
        assert!(parse(b"GET / HTTP/1.1\r\n").is_err());
        assert!(parse(b"PROXY TCP4 x y 1 2\r\n").is_err());
        // Found by the proxy_header fuzzer: the family must match the addresses, and the
        // destination and the ports are checked too.
        for bad in [
            &b"PROXY TCP4 ::1 ::1 1 2\r\n"[..],
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 junk 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 443\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80 x\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn v2_with_alpn() {
        let mut b = V2_SIG.to_vec();
        b.push(0x21);
        b.push(0x11);
        let mut body = vec![203, 0, 113, 7, 127, 0, 0, 1, 0x1f, 0x90, 0, 80];
        body.extend_from_slice(&[PP2_TYPE_ALPN, 0, 2, b'h', b'2']);
        b.extend_from_slice(&(body.len() as u16).to_be_bytes());
        b.extend_from_slice(&body);
        b.extend_from_slice(b"PRI");
        let (h, used) = parse(&b).unwrap().unwrap();
        assert_eq!(h.source, Some("203.0.113.7:8080".parse().unwrap()));
        assert_eq!(h.alpn.as_deref(), Some(b"h2".as_slice()));
        assert!(!h.ssl);
        assert_eq!(&b[used..], b"PRI");
        assert!(parse(&b[..20]).unwrap().is_none());
        // Only LOCAL (0) and PROXY (1) are commands.
        b[12] = 0x22;
        assert!(parse(&b).is_err());
    }

    fn v2_with_tlv(tlv: &[u8]) -> Vec<u8> {
        let mut b = V2_SIG.to_vec();
        b.extend_from_slice(&[0x21, 0x11]);
        let mut body = vec![203, 0, 113, 7, 127, 0, 0, 1, 0x1f, 0x90, 0, 80];
        body.extend_from_slice(tlv);
        b.extend_from_slice(&(body.len() as u16).to_be_bytes());
        b.extend_from_slice(&body);
        b
    }

    #[test]
    fn v2_ssl_tlv() {
        // client = PP2_CLIENT_SSL, verify = 0, a version sub-TLV.
        let ssl = [
            PP2_TYPE_SSL,
            0,
            10,
            0x01,
            0,
            0,
            0,
            0,
            0x21,
            0,
            2,
            b'1',
            b'3',
        ];
        let (h, _) = parse(&v2_with_tlv(&ssl)).unwrap().unwrap();
        assert!(h.ssl);
        // The TLV present but the client flag clear: not TLS.
        let (h, _) = parse(&v2_with_tlv(&[PP2_TYPE_SSL, 0, 5, 0x00, 0, 0, 0, 0]))
            .unwrap()
            .unwrap();
        assert!(!h.ssl);
        // An empty SSL TLV is not TLS either; a truncated one is an error.
        let (h, _) = parse(&v2_with_tlv(&[PP2_TYPE_SSL, 0, 0])).unwrap().unwrap();
        assert!(!h.ssl);
        assert!(parse(&v2_with_tlv(&[PP2_TYPE_SSL, 0, 9, 0x01])).is_err());
    }
}
