//! The PROXY protocol header written to the backend before the plaintext stream.
//!
//! Spec: HAProxy's "The PROXY protocol", versions 1 and 2
//! (<https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>). The framing and
//! address block come from the `ppp` crate; the `PP2_TYPE_SSL` value (a client flags byte,
//! a 32-bit verify result, then sub-TLVs, §2.2.5) is laid out here because `ppp` writes a
//! TLV's value as opaque bytes.

use std::net::SocketAddr;

use ppp::v2::{Builder, Command, Protocol, Type, Version};

/// Which header, if any, precedes the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProxyProtocol {
    V2,
    V1,
    Off,
}

/// What the backend learns about a connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnInfo {
    pub client: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
    /// The negotiated ALPN protocol (`PP2_TYPE_ALPN`).
    pub alpn: Option<Vec<u8>>,
    /// The SNI host name (`PP2_TYPE_AUTHORITY`).
    pub sni: Option<String>,
    /// `TLSv1.2` / `TLSv1.3` (`PP2_SUBTYPE_SSL_VERSION`).
    pub version: Option<&'static str>,
    /// The cipher suite, OpenSSL's name as mod_ssl's `SSL_CIPHER` shows it (`PP2_SUBTYPE_SSL_CIPHER`).
    pub cipher: Option<&'static str>,
    /// A client certificate was presented on this connection, and whether it was verified.
    pub client_cert: Option<ClientCert>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// Subject commonName (`PP2_SUBTYPE_SSL_CN`).
    pub common_name: Option<String>,
    pub verified: bool,
}

const PP2_TYPE_AUTHORITY: u8 = 0x02;
const PP2_CLIENT_SSL: u8 = 0x01;
const PP2_CLIENT_CERT_CONN: u8 = 0x02;
const PP2_CLIENT_CERT_SESS: u8 = 0x04;
const PP2_SUBTYPE_SSL_VERSION: u8 = 0x21;
const PP2_SUBTYPE_SSL_CN: u8 = 0x22;
const PP2_SUBTYPE_SSL_CIPHER: u8 = 0x23;

/// The header bytes for `info` (empty for [`ProxyProtocol::Off`]).
pub fn encode(mode: ProxyProtocol, info: &ConnInfo) -> Vec<u8> {
    match mode {
        ProxyProtocol::Off => Vec::new(),
        ProxyProtocol::V1 => encode_v1(info),
        ProxyProtocol::V2 => encode_v2(info),
    }
}

/// Both addresses in one family (a v4 client on a dual-stack v6 socket shows up as
/// v4-mapped; the header must not mix families).
fn addresses(info: &ConnInfo) -> Option<(SocketAddr, SocketAddr)> {
    let canon = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (src, dst) = (canon(info.client?), canon(info.local?));
    match (src, dst) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => {
            Some((src, dst))
        }
        (SocketAddr::V4(s), d @ SocketAddr::V6(_)) => {
            Some((SocketAddr::new(s.ip().to_ipv6_mapped().into(), s.port()), d))
        }
        (s @ SocketAddr::V6(_), SocketAddr::V4(d)) => {
            Some((s, SocketAddr::new(d.ip().to_ipv6_mapped().into(), d.port())))
        }
    }
}

fn encode_v1(info: &ConnInfo) -> Vec<u8> {
    let addrs = match addresses(info) {
        Some(pair) => ppp::v1::Addresses::from(pair),
        None => ppp::v1::Addresses::Unknown,
    };
    addrs.to_string().into_bytes()
}

fn encode_v2(info: &ConnInfo) -> Vec<u8> {
    let addrs = match addresses(info) {
        Some(pair) => ppp::v2::Addresses::from(pair),
        None => ppp::v2::Addresses::Unspecified,
    };
    // Without addresses it is a LOCAL header with family and protocol UNSPEC (§2.2).
    let (command, protocol) = if addrs == ppp::v2::Addresses::Unspecified {
        (Command::Local, Protocol::Unspecified)
    } else {
        (Command::Proxy, Protocol::Stream)
    };
    let header = Builder::with_addresses(Version::Two | command, protocol, addrs);
    let build = || -> std::io::Result<Vec<u8>> {
        let mut header = header;
        if let Some(alpn) = &info.alpn {
            header = header.write_tlv(Type::ALPN, alpn)?;
        }
        if let Some(sni) = &info.sni {
            header = header.write_tlv(PP2_TYPE_AUTHORITY, sni.as_bytes())?;
        }
        if info.version.is_some() {
            header = header.write_tlv(Type::SSL, &ssl_value(info))?;
        }
        header.build()
    };
    // Writing into a Vec cannot fail and every TLV here is far below 64 KiB.
    build().unwrap_or_default()
}

/// The value of the `PP2_TYPE_SSL` TLV: `client` flags, `verify` (0 = verified or no
/// certificate), then the sub-TLVs.
fn ssl_value(info: &ConnInfo) -> Vec<u8> {
    let mut client = PP2_CLIENT_SSL;
    let mut verify: u32 = 0;
    if let Some(cert) = &info.client_cert {
        client |= PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS;
        if !cert.verified {
            verify = 1;
        }
    }
    let mut value = vec![client];
    value.extend_from_slice(&verify.to_be_bytes());
    let mut sub = |kind: u8, bytes: &[u8]| {
        value.push(kind);
        value.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        value.extend_from_slice(bytes);
    };
    if let Some(version) = info.version {
        sub(PP2_SUBTYPE_SSL_VERSION, version.as_bytes());
    }
    if let Some(cn) = info
        .client_cert
        .as_ref()
        .and_then(|c| c.common_name.as_ref())
    {
        sub(PP2_SUBTYPE_SSL_CN, cn.as_bytes());
    }
    if let Some(cipher) = info.cipher {
        sub(PP2_SUBTYPE_SSL_CIPHER, cipher.as_bytes());
    }
    value
}

/// OpenSSL's name for a rustls cipher suite (what nginx's `$ssl_cipher` and mod_ssl's
/// `SSL_CIPHER` show).
pub fn openssl_cipher_name(suite: rustls::CipherSuite) -> &'static str {
    use rustls::CipherSuite as C;
    match suite {
        C::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        C::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        C::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => "UNKNOWN",
    }
}

/// `TLSv1.2` / `TLSv1.3`, as OpenSSL and the PROXY spec's examples spell them.
pub fn version_name(version: rustls::ProtocolVersion) -> &'static str {
    match version {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

    fn info() -> ConnInfo {
        ConnInfo {
            client: Some("192.0.2.1:50000".parse().unwrap()),
            local: Some("127.0.0.1:443".parse().unwrap()),
            alpn: Some(b"h2".to_vec()),
            sni: Some("a.test".into()),
            version: Some("TLSv1.3"),
            cipher: Some("TLS_AES_128_GCM_SHA256"),
            client_cert: None,
        }
    }

    #[test]
    fn v2_bytes() {
        let mut want = SIG.to_vec();
        let tlvs: Vec<u8> = [
            &[0x01, 0, 2][..],
            b"h2",
            &[0x02, 0, 6],
            b"a.test",
            &[0x20, 0, 40, 0x01, 0, 0, 0, 0, 0x21, 0, 7],
            b"TLSv1.3",
            &[0x23, 0, 22],
            b"TLS_AES_128_GCM_SHA256",
        ]
        .concat();
        want.extend_from_slice(&[0x21, 0x11]);
        want.extend_from_slice(&((12 + tlvs.len()) as u16).to_be_bytes());
        want.extend_from_slice(&[192, 0, 2, 1, 127, 0, 0, 1, 0xc3, 0x50, 0x01, 0xbb]);
        want.extend_from_slice(&tlvs);
        assert_eq!(encode(ProxyProtocol::V2, &info()), want);
    }

    #[test]
    fn v2_client_cert_and_families() {
        let mut i = info();
        i.alpn = None;
        i.sni = None;
        i.cipher = None;
        i.client_cert = Some(ClientCert {
            common_name: Some("alice".into()),
            verified: false,
        });
        let bytes = encode(ProxyProtocol::V2, &i);
        let tail: Vec<u8> = [
            &[0x20, 0, 23, 0x07, 0, 0, 0, 1, 0x21, 0, 7][..],
            b"TLSv1.3",
            &[0x22, 0, 5],
            b"alice",
        ]
        .concat();
        assert!(bytes.ends_with(&tail), "{bytes:x?}");

        let mut i = info();
        i.local = Some("[::ffff:127.0.0.1]:443".parse().unwrap());
        assert_eq!(encode(ProxyProtocol::V2, &i)[13], 0x11, "mapped v4 is v4");
        i.client = Some("[2001:db8::1]:1".parse().unwrap());
        assert_eq!(encode(ProxyProtocol::V2, &i)[13], 0x21, "mixed becomes v6");
        let local = ConnInfo::default();
        assert_eq!(encode(ProxyProtocol::V2, &local)[12..], [0x20, 0x00, 0, 0]);
    }

    #[test]
    fn v1_and_off() {
        let table: &[(ProxyProtocol, ConnInfo, &[u8])] = &[
            (
                ProxyProtocol::V1,
                info(),
                b"PROXY TCP4 192.0.2.1 127.0.0.1 50000 443\r\n",
            ),
            (
                ProxyProtocol::V1,
                ConnInfo {
                    client: Some("[2001:db8::1]:1".parse().unwrap()),
                    local: Some("[::1]:2".parse().unwrap()),
                    ..ConnInfo::default()
                },
                b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n",
            ),
            (ProxyProtocol::V1, ConnInfo::default(), b"PROXY UNKNOWN\r\n"),
            (ProxyProtocol::Off, info(), b""),
        ];
        for (mode, info, want) in table {
            assert_eq!(
                encode(*mode, info),
                *want,
                "{mode:?} {:?}",
                String::from_utf8_lossy(want)
            );
        }
    }
}
