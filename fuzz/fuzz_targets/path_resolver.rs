//! See `checks/core/path_resolver.rs` for the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| httpd_fuzz::core_checks::path_resolver::check(data));
