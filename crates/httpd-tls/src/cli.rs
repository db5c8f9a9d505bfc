//! The command line (`Args`, exactly what was typed) and its resolution into a [`Config`].

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};

use crate::certs::CertSource;
use crate::config::{Backend, ClientAuth, Config, TlsVersion};
use crate::error::{Error, Result};
use crate::proxy_header::ProxyProtocol;

/// Terminate TLS and forward the plaintext stream, preceded by a PROXY protocol header,
/// to a backend (httpd-core with `RemoteIPProxyProtocol On`, or any server).
///
/// Certificates are chosen by SNI among the --cert/--key pairs (by their subjectAltName
/// DNS names, wildcards included); the first pair is the default. SIGHUP reloads the
/// certificate files; SIGTERM stops accepting and lets open connections finish.
#[derive(Debug, Parser)]
#[command(name = "httpd-tls", version)]
pub struct Args {
    /// Address to accept TLS on (repeatable), e.g. 0.0.0.0:443 or 127.0.0.1:0.
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<String>,

    /// Where to forward the plaintext: HOST:PORT or unix:/path/to/socket.
    #[arg(long, value_name = "ADDR|unix:PATH")]
    pub backend: Option<String>,

    /// A certificate PEM file (leaf first, then its chain). Repeatable; pairs with --key.
    #[arg(long, value_name = "PEM")]
    pub cert: Vec<PathBuf>,

    /// The private key PEM file for the --cert of the same position.
    #[arg(long, value_name = "PEM")]
    pub key: Vec<PathBuf>,

    /// A DER OCSP response to staple for the --cert given just before it.
    #[arg(long, value_name = "DER")]
    pub ocsp: Vec<PathBuf>,

    /// Generate a throwaway self-signed certificate for these names (development only).
    #[arg(long, value_name = "NAME", num_args = 1..)]
    pub self_signed: Vec<String>,

    /// The header sent to the backend before the stream.
    #[arg(long, value_enum, default_value = "v2")]
    pub proxy_protocol: ProxyProtocol,

    /// ALPN protocols to offer, in preference order (comma-separated; "" for none).
    #[arg(long, value_name = "LIST", default_value = "h2,http/1.1")]
    pub alpn: String,

    /// Lowest TLS version accepted.
    #[arg(long, value_enum, default_value = "1.2")]
    pub min_tls: TlsVersion,

    /// Ask clients for a certificate signed by one of the CAs in this PEM file.
    #[arg(long, value_name = "PEM")]
    pub client_ca: Option<PathBuf>,

    /// With --client-ca: whether a client certificate is required or optional.
    #[arg(long, value_enum, default_value = "required", requires = "client_ca")]
    pub client_auth: ClientAuth,

    /// Also answer plain HTTP here with a 301 to the https:// URL.
    #[arg(long, value_name = "ADDR")]
    pub redirect_http: Option<String>,

    /// Time allowed for a TLS handshake (e.g. 10s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,

    /// Close a connection when no byte moved in either direction for this long.
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Time allowed to connect to the backend.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub backend_timeout: Duration,

    /// Most connections open at once; further clients wait in the listen backlog.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Take listeners and certificates from the `<VirtualHost>` sections of an Apache
    /// style config (`SSLEngine on`, `SSLCertificateFile`, `SSLCertificateKeyFile`, ...).
    #[arg(short = 'f', value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// With -f: ServerRoot, for relative paths (default: the config file's directory).
    #[arg(short = 'd', value_name = "DIR", requires = "config_file")]
    pub server_root: Option<PathBuf>,

    /// With -f: define a name for <IfDefine>.
    #[arg(short = 'D', value_name = "NAME", requires = "config_file")]
    pub define: Vec<String>,

    /// Where each --ocsp sits relative to the --cert flags (filled from the raw matches).
    #[arg(skip)]
    pub ocsp_owner: Vec<usize>,
}

impl Args {
    /// Parses the process arguments; `--ocsp` is attached to the `--cert` before it.
    pub fn parse_args() -> Args {
        let matches = Args::command().get_matches();
        let mut args = match Args::from_arg_matches(&matches) {
            Ok(args) => args,
            Err(e) => e.exit(),
        };
        args.ocsp_owner = ocsp_owners(&matches);
        args
    }
}

fn ocsp_owners(matches: &ArgMatches) -> Vec<usize> {
    let certs: Vec<usize> = matches
        .indices_of("cert")
        .map(|i| i.collect())
        .unwrap_or_default();
    matches
        .indices_of("ocsp")
        .map(|i| i.collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|at| certs.iter().filter(|&&c| c < at).count().saturating_sub(1))
        .collect()
}

/// `10`, `10s`, `500ms`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (e.g. 10s, 500ms)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("invalid duration unit in {s:?} (ms, s or m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

pub fn resolve_addr(addr: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::Config(format!("{addr:?} is not a HOST:PORT address")))
}

impl Config {
    /// Resolves the command line (without -f) into a config.
    pub fn from_args(args: &Args) -> Result<Config> {
        let listen = args
            .listen
            .iter()
            .map(|a| resolve_addr(a))
            .collect::<Result<Vec<_>>>()?;
        let backend = match &args.backend {
            Some(b) => Some(Backend::parse(b)?),
            None => None,
        };
        if args.cert.len() != args.key.len() {
            return Err(Error::Config(format!(
                "{} --cert but {} --key: give each certificate its key",
                args.cert.len(),
                args.key.len()
            )));
        }
        let mut certs: Vec<CertSource> = args
            .cert
            .iter()
            .zip(&args.key)
            .map(|(cert, key)| CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
                chain: None,
                ocsp: None,
            })
            .collect();
        for (ocsp, owner) in args.ocsp.iter().zip(&args.ocsp_owner) {
            match certs.get_mut(*owner) {
                Some(CertSource::Files { ocsp: slot, .. }) if args.cert.len() > *owner => {
                    *slot = Some(ocsp.clone())
                }
                _ => {
                    return Err(Error::Config(
                        "--ocsp must follow the --cert it belongs to".into(),
                    ))
                }
            }
        }
        if !args.self_signed.is_empty() {
            certs.push(CertSource::SelfSigned(args.self_signed.clone()));
        }
        let alpn = args
            .alpn
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.as_bytes().to_vec())
            .collect();
        let redirect_http = match &args.redirect_http {
            Some(a) => Some(resolve_addr(a)?),
            None => None,
        };
        let config = Config {
            listen,
            backend: backend.unwrap_or(Backend::Tcp(String::new())),
            certs,
            proxy_protocol: args.proxy_protocol,
            alpn,
            min_tls: args.min_tls,
            client_ca: args.client_ca.clone().map(|p| (p, args.client_auth)),
            redirect_http,
            handshake_timeout: args.handshake_timeout,
            idle_timeout: args.idle_timeout,
            backend_timeout: args.backend_timeout,
            max_connections: args.max_connections as usize,
        };
        if args.config_file.is_none() {
            config.check_complete(args.backend.is_some())?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let table: &[(&str, Option<Duration>)] = &[
            ("10", Some(Duration::from_secs(10))),
            ("10s", Some(Duration::from_secs(10))),
            ("500ms", Some(Duration::from_millis(500))),
            ("2m", Some(Duration::from_secs(120))),
            ("1.5s", Some(Duration::from_millis(1500))),
            ("x", None),
            ("5h", None),
        ];
        for (input, want) in table {
            assert_eq!(parse_duration(input).ok(), *want, "{input}");
        }
    }

    #[test]
    fn ocsp_attaches_to_the_cert_before_it() {
        let m = Args::command()
            .try_get_matches_from([
                "httpd-tls",
                "--cert",
                "a",
                "--key",
                "ka",
                "--cert",
                "b",
                "--ocsp",
                "ob",
                "--key",
                "kb",
            ])
            .unwrap();
        assert_eq!(ocsp_owners(&m), vec![1]);
    }
}
