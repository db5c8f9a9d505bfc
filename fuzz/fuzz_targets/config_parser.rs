//! The configuration parser, loader and validator must never panic or hang on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // A ServerRoot with nothing in it, so fuzzed Include lines find no files.
    let opts = httpd_conftest::LoadOptions {
        server_root: Some(std::path::PathBuf::from("/nonexistent-fuzz-root")),
        ..Default::default()
    };
    let loaded = httpd_conftest::load_str(&text, "fuzz.conf", &opts);
    let _ = loaded.render();
});
