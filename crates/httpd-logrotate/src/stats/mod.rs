//! `--stats`: access-log analysis.

use std::ffi::OsString;

/// Runs the analyser with the full argument vector (program name first); returns the exit code.
pub fn main(_args: Vec<OsString>) -> u8 {
    0
}
