//! The property the `log_line` fuzz target checks: `httpd-logrotate --stats` turns any
//! bytes into a report without panicking, counts every non-blank line exactly once (as a
//! request or as invalid), and what it parses from a line is plausible (a 3-digit status
//! in Apache formats, an offset within a day). Shared by `fuzz_targets/log_line.rs` and
//! the corpus replay in httpd-logrotate's tests (`tests/fuzz_corpus.rs`).
use httpd_logrotate::stats::aggregate::Stats;
use httpd_logrotate::stats::filter::Filter;
use httpd_logrotate::stats::format::Format;
use httpd_logrotate::stats::record::Record;
use httpd_logrotate::stats::report::{html, json, text, Context, Report};

/// Input: one byte picks the format (common, combined, vcombined, json, detected from the
/// lines, or a LogFormat string on the first line) and `--exact`; the rest is the log.
pub fn check(data: &[u8]) {
    let Some((&pick, log)) = data.split_first() else {
        return;
    };
    let (format, log) = match pick % 6 {
        0 => (Format::from_arg("common").expect("built in"), log),
        1 => (Format::from_arg("combined").expect("built in"), log),
        2 => (Format::from_arg("vcombined").expect("built in"), log),
        3 => (Format::from_arg("json").expect("built in"), log),
        4 => (Format::detect(log), log),
        _ => {
            let (spec, rest) = match log.iter().position(|&b| b == b'\n') {
                Some(i) => (&log[..i], &log[i + 1..]),
                None => (log, &[][..]),
            };
            let Ok(format) = Format::from_arg(&String::from_utf8_lossy(spec)) else {
                return;
            };
            (format, rest)
        }
    };
    let apache = matches!(format, Format::Apache { .. });
    let mut stats = Stats::new(pick & 0x80 != 0, 10);
    let filter = Filter::default();
    let mut lines = 0;
    // As the parser threads do: split on LF, drop a CR, skip blank lines, lossy UTF-8.
    for (n, line) in log.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        lines += 1;
        let text = String::from_utf8_lossy(line);
        match format.parse(&text) {
            Some(rec) => {
                check_record(&rec, apache, &text);
                stats.add(&rec, &filter);
            }
            None => stats.add_invalid(0, n as u64 + 1, line),
        }
    }
    stats.finish();
    assert_eq!(stats.requests + stats.invalid + stats.filtered, lines);
    let ctx = Context {
        format: format.name(),
        sources: vec!["fuzz.log".into()],
        top: 10,
        bucket: None,
    };
    let report = Report::build(&stats, &ctx);
    assert_eq!(report.requests, stats.requests);
    let mut out = Vec::new();
    text::write(&report, &text::Style { color: false }, &mut out).expect("write to memory");
    json::write(&report, &mut out).expect("write to memory");
    let _ = html::render(&report);
}

fn check_record(rec: &Record<'_>, apache: bool, line: &str) {
    if apache {
        assert!(rec.status <= 999, "{line:?}: status {}", rec.status);
    }
    if rec.time.is_some() {
        assert!(
            rec.offset.abs() < 86_400,
            "{line:?}: UTC offset {}",
            rec.offset
        );
    }
}
