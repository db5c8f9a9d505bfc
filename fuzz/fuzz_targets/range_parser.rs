//! See `checks/core/range_parser.rs` for the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| httpd_fuzz::core_checks::range_parser::check(data));
