//! The piped logger: stdin lines to rotating files, never losing or splitting a line.
//!
//! - [`cli`]: the command line (ours and rotatelogs'), validated into a `Config`.
//! - [`pattern`]: strftime file name patterns and finding a series' files again.
//! - [`lines`]: raw chunks to whole lines; `--max-line` splitting.
//! - [`writer`]: the current file, rotation decisions, collision suffixes, links.
//! - [`archive`]: background `--on-rotate`, `--compress` and retention.
//! - [`retention`]: which files `--keep` and `--max-total` delete.
//! - [`run`]: the event loop (reader thread, signals, back-pressure, `--on-full`).
//!
//! The guarantees are written in the crate's README.md.

pub mod archive;
pub mod cli;
pub mod lines;
pub mod pattern;
pub mod retention;
pub mod run;
pub mod writer;

use std::ffi::OsString;

use crate::error::Error;

/// Runs the rotator with the full argument vector (program name first); returns the exit
/// code (rotatelogs-compatible: 0 done, 1 usage, 2 log file not writable, 3 stdin failed).
pub fn main(args: Vec<OsString>) -> u8 {
    let result = match cli::parse(args) {
        Ok(cli::Parsed::Print(text)) => {
            print!("{text}");
            return 0;
        }
        Ok(cli::Parsed::Run(config)) => run::run(*config),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            report(&e);
            e.exit_code()
        }
    }
}

/// Prints `httpd-logrotate: error: ...`, its causes, and a hint for usage errors.
fn report(e: &Error) {
    eprintln!("httpd-logrotate: error: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        eprintln!("  caused by: {s}");
        source = s.source();
    }
    if matches!(e, Error::Usage(_) | Error::Pattern { .. }) && !e.to_string().contains("--help") {
        eprintln!("  hint: see 'httpd-logrotate --help'");
    }
}
