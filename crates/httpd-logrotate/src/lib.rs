//! httpd-logrotate: two jobs behind one binary.
//!
//! - [`rotate`]: the piped logger (`CustomLog "|httpd-logrotate PATTERN ..."`): reads lines
//!   on stdin and writes them to rotating files without ever losing or splitting one.
//! - [`stats`]: `--stats`, access-log analysis in the terminal, JSON and HTML.
//! - [`error`]: the crate's error type and its rotatelogs-compatible exit codes.
//!
//! `main.rs` picks the job: any `--stats` argument means statistics.

pub mod error;
pub mod rotate;
pub mod stats;
