//! The property the `config_parser` fuzz target checks: the configuration parser, loader
//! and validator never panic or hang on any input. Shared by `fuzz_targets/config_parser.rs`
//! and the corpus replay in httpd-conftest's tests (`tests/fuzz_corpus.rs`).

pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // A ServerRoot with nothing in it, so fuzzed Include lines find no files.
    let opts = httpd_conftest::LoadOptions {
        server_root: Some(std::path::PathBuf::from("/nonexistent-fuzz-root")),
        ..Default::default()
    };
    let loaded = httpd_conftest::load_str(&text, "fuzz.conf", &opts);
    let _ = loaded.render();
}
