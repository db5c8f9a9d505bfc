//! See `checks/config_parser.rs` for the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| httpd_fuzz::config_parser::check(data));
