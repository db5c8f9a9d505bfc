//! `-f httpd.conf`: listeners and certificates from the `<VirtualHost>` sections with
//! `SSLEngine on`, read through the shared config library (httpd-conftest), so an Apache
//! user's TLS vhosts work from the same file. Following mod_ssl:
//! - `SSLCertificateFile`/`SSLCertificateKeyFile` pair up in order; a certificate without
//!   a key file carries its key in the same PEM (as mod_ssl allows);
//! - `SSLCertificateChainFile` is appended to every certificate of its vhost;
//! - the first SSL vhost's certificate is the default (mod_ssl's default vhost);
//! - `SSLProtocol`: the lowest version any SSL vhost allows is the minimum;
//! - `SSLCACertificateFile` with `SSLVerifyClient require|optional` asks for client certs.
//!
//! `--listen` on the command line replaces the vhost addresses; `--backend` is required
//! (the file says where core listens for plain HTTP only by convention).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use httpd_conftest::{load, LoadOptions, ReadError};

use crate::certs::CertSource;
use crate::cli::Args;
use crate::config::{ClientAuth, Config, TlsVersion};
use crate::error::{Error, Result};

/// Builds the config from an Apache-style file plus the command line.
pub fn config_from_file(args: &Args) -> Result<Config> {
    let path = args.config_file.clone().unwrap_or_default();
    let opts = LoadOptions {
        server_root: args.server_root.clone(),
        defines: args.define.clone(),
        ..Default::default()
    };
    let loaded = load(&path, &opts).map_err(|e| match e {
        ReadError::Io { path, source } => Error::Read { path, source },
        other => Error::Read {
            path: path.clone(),
            source: std::io::Error::other(other.to_string()),
        },
    })?;
    if loaded.has_errors() {
        return Err(Error::ConfFile {
            path,
            messages: vec![loaded.render()],
        });
    }
    if loaded.has_warnings() {
        eprint!("{}", loaded.render());
    }
    let mut config = Config::from_args(args)?;
    let mut listen = Vec::new();
    let mut min_tls: Option<TlsVersion> = None;
    let mut vhost_certs = Vec::new();
    for vhost in loaded.config.vhosts.iter().filter(|v| v.host.ssl.engine) {
        let ssl = &vhost.host.ssl;
        for (i, cert) in ssl.certificate_files.iter().enumerate() {
            let key = ssl.certificate_key_files.get(i).unwrap_or(cert);
            vhost_certs.push(CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
                chain: ssl.certificate_chain_file.clone(),
                ocsp: None,
            });
        }
        let lowest = if ssl.protocols.iter().any(|p| p == "TLSv1.2") {
            TlsVersion::Tls12
        } else {
            TlsVersion::Tls13
        };
        min_tls = Some(match min_tls {
            Some(TlsVersion::Tls12) => TlsVersion::Tls12,
            _ => lowest,
        });
        for addr in &vhost.addrs {
            let Some(port) = addr.port else {
                return Err(Error::Config(format!(
                    "{}: <VirtualHost> with SSLEngine on needs a port (e.g. *:443)",
                    path.display()
                )));
            };
            let ip = addr.ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            let sock = SocketAddr::new(ip, port);
            if !listen.contains(&sock) {
                listen.push(sock);
            }
        }
        if config.client_ca.is_none() {
            if let Some(ca) = &ssl.ca_certificate_file {
                match ssl.verify_client.as_str() {
                    "require" => config.client_ca = Some((ca.clone(), ClientAuth::Required)),
                    "optional" | "optional_no_ca" => {
                        config.client_ca = Some((ca.clone(), ClientAuth::Optional))
                    }
                    _ => {}
                }
            }
        }
    }
    if vhost_certs.is_empty() && config.certs.is_empty() {
        return Err(Error::Config(format!(
            "{}: no <VirtualHost> with SSLEngine on and SSLCertificateFile",
            path.display()
        )));
    }
    config.certs.extend(vhost_certs);
    if config.listen.is_empty() {
        config.listen = listen;
    }
    if let Some(min) = min_tls {
        if args.min_tls == TlsVersion::Tls12 {
            config.min_tls = min;
        }
    }
    config.check_complete(args.backend.is_some())?;
    Ok(config)
}
