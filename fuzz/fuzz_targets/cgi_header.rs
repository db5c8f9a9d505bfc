//! See `checks/core/cgi_header.rs` for the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| httpd_fuzz::core_checks::cgi_header::check(data));
