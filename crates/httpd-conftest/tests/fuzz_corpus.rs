//! Replays the fuzzer's corpus (`fuzz/corpus/config`) through the loader: every input the
//! fuzzer ever found interesting must still load without a panic. `cargo fuzz run
//! config_parser` explores further; this keeps what it found.

use std::path::Path;

#[test]
fn fuzz_corpus_loads_without_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/config");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read corpus file");
        let text = String::from_utf8_lossy(&bytes);
        let opts = httpd_conftest::LoadOptions {
            server_root: Some("/nonexistent-fuzz-root".into()),
            ..Default::default()
        };
        let loaded = httpd_conftest::load_str(&text, "fuzz.conf", &opts);
        let _ = loaded.render();
        count += 1;
    }
    assert!(count >= 4, "corpus has only {count} inputs");
}
