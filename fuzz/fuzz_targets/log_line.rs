//! See `checks/log_line.rs` for the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| httpd_fuzz::log_line::check(data));
