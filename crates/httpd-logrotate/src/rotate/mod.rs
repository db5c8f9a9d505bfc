//! The piped logger: stdin lines to rotating files.

use std::ffi::OsString;

/// Runs the rotator with the full argument vector (program name first); returns the exit code.
pub fn main(_args: Vec<OsString>) -> u8 {
    0
}
