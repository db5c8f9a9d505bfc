//! The one error type of httpd-tls, and how the binary reports it.
//!
//! Exit codes follow STYLE.md: 66 an input file missing or unreadable, 74 an I/O failure
//! (bind), 78 an invalid configuration (bad PEM, a key that does not match its certificate).

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: no certificate found (expected a PEM `BEGIN CERTIFICATE` block)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no private key found (expected a PEM `BEGIN ... PRIVATE KEY` block)", path.display())]
    NoKey { path: PathBuf },
    #[error("{}: malformed PEM", path.display())]
    Pem {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: unusable private key", path.display())]
    BadKey {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("{}: unusable certificate", path.display())]
    BadCertificate {
        path: PathBuf,
        #[source]
        source: webpki::Error,
    },
    #[error("private key {} does not match certificate {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("{}: unusable OCSP response (expected DER bytes)", path.display())]
    BadOcsp { path: PathBuf },
    #[error("{}: no usable CA certificate for client authentication", path.display())]
    BadClientCa {
        path: PathBuf,
        #[source]
        source: Option<rustls::server::VerifierBuilderError>,
    },
    #[error("cannot generate a self-signed certificate for {names}")]
    SelfSigned {
        names: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{}: configuration has errors", path.display())]
    ConfFile {
        path: PathBuf,
        messages: Vec<String>,
    },
    #[error("TLS setup failed")]
    Tls(#[source] rustls::Error),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the runtime")]
    Runtime(#[source] io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The process exit code for this error (STYLE.md).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Read { .. } => 66,
            Error::Bind { .. } | Error::Runtime(_) => 74,
            _ => 78,
        }
    }

    /// A hint for the user, where one helps.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::KeyMismatch { .. } => Some(
                "give each --key right after the --cert it belongs to; \
                 compare `openssl x509 -noout -pubkey` with `openssl pkey -pubout`",
            ),
            Error::NoKey { .. } => Some("--key takes the PEM file holding the private key"),
            Error::Bind { .. } => {
                Some("is another server listening there? ports below 1024 need privileges")
            }
            _ => None,
        }
    }

    /// Prints `httpd-tls: error: <message>`, one `caused by:` line per source and a hint.
    pub fn report(&self) {
        eprintln!("httpd-tls: error: {self}");
        if let Error::ConfFile { messages, .. } = self {
            for m in messages {
                eprintln!("{m}");
            }
        }
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            eprintln!("  caused by: {cause}");
            source = cause.source();
        }
        if let Some(hint) = self.hint() {
            eprintln!("  hint: {hint}");
        }
    }
}
