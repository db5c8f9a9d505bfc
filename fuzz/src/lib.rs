//! The properties each fuzz target checks. The files live in `checks/` so that each
//! crate's corpus replay test can include the same code with `#[path]` (the crates cannot
//! depend on this package, which needs libFuzzer).

#[path = "../checks/config_parser.rs"]
pub mod config_parser;
#[path = "../checks/core/mod.rs"]
pub mod core_checks;
#[path = "../checks/log_line.rs"]
pub mod log_line;
