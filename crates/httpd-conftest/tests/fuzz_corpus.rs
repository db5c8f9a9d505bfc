//! Replays the `config_parser` fuzzer's corpus (`fuzz/corpus/config_parser`) through the same
//! check the fuzz target runs (`fuzz/checks/config_parser.rs`): every input the fuzzer
//! ever found interesting must still load without a panic.

#[path = "../../../fuzz/checks/config_parser.rs"]
mod config_parser;
#[path = "../../../fuzz/checks/replay.rs"]
mod replay;

#[test]
fn fuzz_corpus_loads_without_panic() {
    replay::replay("config_parser", config_parser::check);
}
