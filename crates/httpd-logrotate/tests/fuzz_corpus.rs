//! Replays the `log_line` fuzzer's corpus through the same property check the fuzz target
//! runs (`fuzz/checks/log_line.rs`).

#[path = "../../../fuzz/checks/log_line.rs"]
mod log_line;
#[path = "../../../fuzz/checks/replay.rs"]
mod replay;

#[test]
fn log_line_corpus() {
    replay::replay("log_line", log_line::check);
}
