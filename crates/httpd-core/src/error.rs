//! The one error type of httpd-core: what can stop the server from starting or reloading.
//! Per-connection and per-request failures are logged where they happen, never returned
//! here.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file is missing or unreadable (exit 66).
    #[error("cannot read {path}")]
    ConfigUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The configuration has errors (exit 78); the diagnostics were already printed.
    #[error("invalid configuration {path}: {count} error(s)")]
    ConfigInvalid { path: String, count: usize },
    /// A setting that parses but that the server cannot use (exit 78).
    #[error("{0}")]
    Setting(String),
    /// Binding a listener failed (exit 74).
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// Opening a log file or starting a piped logger failed (exit 74).
    #[error("cannot open log {target}")]
    Log {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit code for this error (STYLE.md: 66 unreadable input, 74 I/O,
    /// 78 invalid config).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::ConfigUnreadable { .. } => 66,
            Error::ConfigInvalid { .. } | Error::Setting(_) => 78,
            Error::Bind { .. } | Error::Log { .. } | Error::Io { .. } => 74,
        }
    }
}
