//! See `checks/core/proxy_header.rs` for the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| httpd_fuzz::core_checks::proxy_header::check(data));
