//! The resolved configuration, and the rustls `ServerConfig` built from it.
//!
//! TLS policy follows Mozilla's "intermediate" profile (v5.7): TLS 1.2 and 1.3, ECDHE key
//! exchange with X25519/P-256/P-384, AEAD suites only (AES-GCM and ChaCha20-Poly1305).
//! rustls's ring provider offers exactly that set. One departure: the server's order decides,
//! AES-128-GCM (SHA-256) first, as Go's crypto/tls and BoringSSL servers do: OpenSSL clients
//! list AES-256-GCM-SHA384 first, and every TLS 1.3 key derivation then runs on SHA-384,
//! which ring computes without SIMD on AMD CPUs while SHA-256 uses the SHA extensions
//! (callgrind: about a third of a resumed handshake's instructions went to SHA-512 blocks).
//! Session resumption: stateless tickets
//! (rotating keys, TLS 1.2 and 1.3) plus an in-memory session cache.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};

use crate::certs::{read_certs, CertSource, SniResolver};
use crate::error::{Error, Result};
use crate::proxy_header::ProxyProtocol;

/// Everything the server needs, validated; no `Option` stands for a default.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    pub backend: Backend,
    pub certs: Vec<CertSource>,
    pub proxy_protocol: ProxyProtocol,
    pub alpn: Vec<Vec<u8>>,
    pub min_tls: TlsVersion,
    pub client_ca: Option<(PathBuf, ClientAuth)>,
    pub redirect_http: Option<SocketAddr>,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub backend_timeout: Duration,
    pub max_connections: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Tcp(String),
    Unix(PathBuf),
}

impl Backend {
    pub fn parse(s: &str) -> Result<Backend> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(Error::Config("--backend unix: needs a path".into()));
            }
            return Ok(Backend::Unix(PathBuf::from(path)));
        }
        match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Backend::Tcp(s.to_string()))
            }
            _ => Err(Error::Config(format!(
                "--backend {s:?}: expected HOST:PORT or unix:/path"
            ))),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Tcp(addr) => f.write_str(addr),
            Backend::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsVersion {
    #[value(name = "1.2")]
    Tls12,
    #[value(name = "1.3")]
    Tls13,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientAuth {
    Required,
    Optional,
}

impl Config {
    /// The checks that need the whole picture (after -f merged in its vhosts).
    pub fn check_complete(&self, has_backend: bool) -> Result<()> {
        if self.listen.is_empty() {
            return Err(Error::Config("no --listen address".into()));
        }
        if !has_backend {
            return Err(Error::Config("no --backend given".into()));
        }
        if self.certs.is_empty() {
            return Err(Error::Config(
                "no certificate: give --cert PEM --key PEM (or --self-signed NAME)".into(),
            ));
        }
        Ok(())
    }

    /// The rustls server configuration around `resolver`.
    pub fn server_config(&self, resolver: Arc<SniResolver>) -> Result<ServerConfig> {
        let provider = Arc::new(provider());
        let versions: &[&'static rustls::SupportedProtocolVersion] = match self.min_tls {
            TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .map_err(Error::Tls)?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some((path, auth)) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs(path)? {
                    roots.add(cert).map_err(|_| Error::BadClientCa {
                        path: path.clone(),
                        source: None,
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = match auth {
                    ClientAuth::Required => verifier,
                    ClientAuth::Optional => verifier.allow_unauthenticated(),
                };
                let verifier = verifier.build().map_err(|e| Error::BadClientCa {
                    path: path.clone(),
                    source: Some(e),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(resolver);
        config.alpn_protocols = self.alpn.clone();
        config.ignore_client_order = true;
        config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(Error::Tls)?;
        config.session_storage = ServerSessionMemoryCache::new(20_000);
        // One TLS 1.3 ticket per handshake (rustls sends two by default): a browser reuses
        // one per connection, and each ticket costs an encryption on every handshake.
        config.send_tls13_tickets = 1;
        Ok(config)
    }
}

/// The ring provider with its cipher suites in the server's preference order: per TLS
/// version, AES-128-GCM, then AES-256-GCM, then ChaCha20-Poly1305 (ring's own list, with
/// the SHA-256 suites moved first; nothing added or removed).
pub fn provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|s| {
        use rustls::CipherSuite as C;
        let chacha = matches!(
            s.suite(),
            C::TLS13_CHACHA20_POLY1305_SHA256
                | C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
                | C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        );
        let sha384 = matches!(
            s.suite(),
            C::TLS13_AES_256_GCM_SHA384
                | C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                | C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        );
        let tls12 = s.version().version != rustls::ProtocolVersion::TLSv1_3;
        (tls12, chacha, sha384)
    });
    provider
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_suite_order() {
        let names: Vec<String> = provider()
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert_eq!(
            names,
            [
                "TLS13_AES_128_GCM_SHA256",
                "TLS13_AES_256_GCM_SHA384",
                "TLS13_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            ]
        );
    }

    #[test]
    fn backend_forms() {
        let table: &[(&str, Option<Backend>)] = &[
            (
                "127.0.0.1:8080",
                Some(Backend::Tcp("127.0.0.1:8080".into())),
            ),
            ("[::1]:80", Some(Backend::Tcp("[::1]:80".into()))),
            ("localhost:80", Some(Backend::Tcp("localhost:80".into()))),
            (
                "unix:/run/core.sock",
                Some(Backend::Unix("/run/core.sock".into())),
            ),
            ("unix:", None),
            ("8080", None),
            ("host:http", None),
        ];
        for (input, want) in table {
            assert_eq!(Backend::parse(input).ok(), *want, "{input}");
        }
    }
}
