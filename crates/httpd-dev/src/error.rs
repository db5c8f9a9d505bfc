//! The one error type of httpd-dev.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad address or port {0:?} (use PORT, ADDR:PORT or [IPv6]:PORT)")]
    AddrPort(String),
    #[error("no such directory: {}", .0.display())]
    MissingDir(PathBuf),
    #[error("not a directory: {}", .0.display())]
    NotADirectory(PathBuf),
    #[error("port {} on {} is already in use", .0.port(), .0.ip())]
    PortInUse(std::net::SocketAddr),
    #[error("cannot find {0} next to httpd-dev or on PATH")]
    MissingBinary(&'static str),
    #[error("the app command was not found: {0}")]
    AppNotFound(String),
    #[error("the server did not start: {0}")]
    CoreFailed(String),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot watch {}", .path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

impl Error {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }

    /// The process exit code (STYLE.md: 66 input missing, 74 I/O failure).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::AddrPort(_) => 2,
            Error::MissingDir(_)
            | Error::NotADirectory(_)
            | Error::MissingBinary(_)
            | Error::AppNotFound(_) => 66,
            Error::PortInUse(_) | Error::Io { .. } | Error::Watch { .. } => 74,
            Error::CoreFailed(_) => 78,
        }
    }

    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::PortInUse(_) => {
                Some("stop the other server or give another port, e.g. httpd-dev . 8001")
            }
            Error::MissingBinary(_) => {
                Some("build the workspace (cargo build) so httpd-core sits beside httpd-dev")
            }
            Error::AppNotFound(_) => Some("check the --app command runs in a shell: sh -c \"CMD\""),
            _ => None,
        }
    }
}
