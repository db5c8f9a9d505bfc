//! The errors `--stats` reports to the user, and the exit code of each.

use std::path::PathBuf;

/// Everything that stops an analysis. Bad log lines are not errors: they are counted.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("cannot open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {name}")]
    Read {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {name}")]
    Write {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid value {value:?} for {flag}: {reason}")]
    Usage {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("invalid log format {format:?}: {reason}")]
    Format { format: String, reason: String },
}

impl StatsError {
    /// The exit code (STYLE.md): 2 usage, 66 unreadable input, 74 I/O failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            StatsError::Open { .. } => 66,
            StatsError::Read { .. } | StatsError::Write { .. } => 74,
            StatsError::Usage { .. } | StatsError::Format { .. } => 2,
        }
    }

    /// A hint printed under the message, where one helps.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            StatsError::Format { .. } => Some(
                "use common, combined, vcombined, json or an Apache LogFormat string like '%h %l %u %t \"%r\" %>s %b %D'",
            ),
            StatsError::Usage { flag: "--since" | "--until", .. } => {
                Some("give a time like 2025-03-01, 2025-03-01T12:00:00Z, or a duration back from now like 24h, 30m, 7d")
            }
            _ => None,
        }
    }
}
