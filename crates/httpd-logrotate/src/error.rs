//! The crate's error type. Rotation errors are listed first; each variant names the object
//! it is about (a path, an argument).

use std::path::PathBuf;

/// Everything that can stop httpd-logrotate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad command line: the message is what to print after `error: `.
    #[error("{0}")]
    Usage(String),
    /// PATTERN is not a usable strftime file name pattern.
    #[error("invalid PATTERN '{pattern}': {reason}")]
    Pattern { pattern: String, reason: String },
    /// The log file (or its directory) could not be created or opened.
    #[error("could not open log file '{}'", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading standard input failed (not EOF: an I/O error).
    #[error("could not read standard input")]
    ReadStdin(#[source] std::io::Error),
    /// Lines could not be written before a stop (SIGTERM or EOF) and were lost.
    #[error("{lines} line(s) could not be written to '{}' before exiting", path.display())]
    Unwritten {
        path: PathBuf,
        lines: u64,
        #[source]
        source: std::io::Error,
    },
    /// Installing the signal handlers failed.
    #[error("could not install signal handlers")]
    Signals(#[source] std::io::Error),
}

impl Error {
    /// The exit code, compatible with Apache's rotatelogs: 1 for a usage error (rotatelogs
    /// prints its usage and exits 1), 2 when the log file cannot be opened or written, 3 when
    /// standard input cannot be read.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Pattern { .. } => 1,
            Error::Open { .. } | Error::Unwritten { .. } | Error::Signals(_) => 2,
            Error::ReadStdin(_) => 3,
        }
    }
}
