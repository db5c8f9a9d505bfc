//! Replays one fuzz target's corpus (`fuzz/corpus/<target>`) through its check, for the
//! crates' ordinary tests: `cargo test` keeps every input a fuzzer found interesting, and
//! every past crash, passing without cargo-fuzz. Included with `#[path]` by
//! `crates/*/tests/fuzz_corpus.rs`.

use std::path::Path;

/// Runs `check` on every file of the target's corpus; each must pass.
pub fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.expect("corpus entry").path();
        let bytes = std::fs::read(&path).expect("read corpus file");
        let outcome = std::panic::catch_unwind(|| check(&bytes));
        assert!(
            outcome.is_ok(),
            "{target}: {} fails its check",
            path.display()
        );
        count += 1;
    }
    assert!(count >= 4, "{target}: the corpus has only {count} inputs");
}
