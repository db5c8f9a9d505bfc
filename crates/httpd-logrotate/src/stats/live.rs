//! Live mode for the piped setup: `CustomLog "|httpd-logrotate --stats --tee PATTERN
//! --stats-file FILE" combined`. Every line goes on to the rotator unchanged and is
//! counted here; the running report is written to FILE every `--interval` (a piped
//! logger never sees end of input) and once more at the end.
//!
//! The rotation itself is the rotator's: this process runs the same executable without
//! `--stats` as a child (the rotation options passed through), writes every byte it reads
//! to the child's stdin before counting it, and exits with the child's status. So the
//! rotation guarantees are exactly those of `httpd-logrotate PATTERN`.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, RecvTimeoutError};

use super::aggregate::Stats;
use super::error::StatsError;
use super::filter::Filter;
use super::format::Format;
use super::report::{self, Context, Report};

/// What live mode needs beyond the analysis settings.
pub struct Live {
    /// The rotator's arguments: rotation options, then PATTERN.
    pub rotate_args: Vec<OsString>,
    pub interval: Duration,
    pub stats_file: PathBuf,
}

/// Analysis settings shared with the batch mode.
pub struct Settings<'a> {
    pub format: Option<Format>,
    pub filter: &'a Filter,
    pub exact: bool,
    pub top: usize,
    pub bucket: Option<i64>,
}

/// Parses `--interval`: seconds, or a number with s, m or h.
pub fn parse_interval(arg: &str) -> Result<Duration, StatsError> {
    let bad = || StatsError::Usage {
        flag: "--interval",
        value: arg.to_string(),
        reason: "expected seconds, or a duration like 10s, 5m, 1h".to_string(),
    };
    let (num, unit) = match arg.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&arg[..i], &arg[i..]),
        None => (arg, "s"),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if !(secs.is_finite() && secs >= 0.05) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Runs the tee: returns the exit code (the rotator's when it failed).
pub fn run(live: &Live, settings: &Settings<'_>) -> Result<u8, StatsError> {
    let exe = std::env::current_exe().map_err(|e| StatsError::Read {
        name: "the current executable".to_string(),
        source: e,
    })?;
    let mut child = Command::new(&exe)
        .args(&live.rotate_args)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| StatsError::Write {
            name: format!("rotator {}", exe.display()),
            source: e,
        })?;
    let mut to_rotator = child.stdin.take().expect("stdin was piped");

    let (tx, rx) = unbounded::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    });

    let mut counter = Counter {
        stats: Stats::new(settings.exact, settings.top),
        format: settings.format.clone(),
        pending: Vec::new(),
        line: 0,
    };
    let mut rotator_failed = None;
    let mut next = Instant::now() + live.interval;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(bytes) => {
                // The rotator first: a line is never lost because counting it failed.
                if rotator_failed.is_none() {
                    if let Err(e) = to_rotator.write_all(&bytes) {
                        rotator_failed = Some(e);
                    }
                }
                counter.feed(&bytes, settings.filter);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if Instant::now() >= next {
            write_report(&mut counter, settings, &live.stats_file)?;
            next = Instant::now() + live.interval;
        }
    }
    counter.finish(settings.filter);
    drop(to_rotator);
    let status = child.wait().map_err(|e| StatsError::Write {
        name: "rotator".to_string(),
        source: e,
    })?;
    write_report(&mut counter, settings, &live.stats_file)?;
    if let Some(e) = rotator_failed {
        eprintln!("httpd-logrotate: error: the rotator stopped reading\ncaused by: {e}");
    }
    Ok(match status.code() {
        Some(0) => 0,
        Some(c) => u8::try_from(c).unwrap_or(1),
        None => 1,
    })
}

/// Counts whole lines as they arrive.
struct Counter {
    stats: Stats,
    format: Option<Format>,
    pending: Vec<u8>,
    line: u64,
}

impl Counter {
    fn feed(&mut self, bytes: &[u8], filter: &Filter) {
        self.pending.extend_from_slice(bytes);
        let Some(last) = memchr::memrchr(b'\n', &self.pending) else {
            return;
        };
        let complete: Vec<u8> = self.pending.drain(..=last).collect();
        self.count(&complete, filter);
    }

    fn finish(&mut self, filter: &Filter) {
        let rest = std::mem::take(&mut self.pending);
        self.count(&rest, filter);
    }

    fn count(&mut self, data: &[u8], filter: &Filter) {
        if data.is_empty() {
            return;
        }
        let format = self.format.get_or_insert_with(|| Format::detect(data));
        for line in data.split(|&b| b == b'\n') {
            self.line += 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let text = String::from_utf8_lossy(line);
            match format.parse(&text) {
                Some(rec) => self.stats.add(&rec, filter),
                None => self.stats.add_invalid(0, self.line, line),
            }
        }
        // `split` yields an empty piece after the final newline: it is not a line.
        if data.ends_with(b"\n") {
            self.line -= 1;
        }
    }
}

/// Writes the report as JSON to a temporary file and renames it over FILE, so a reader
/// never sees half a report.
fn write_report(
    counter: &mut Counter,
    settings: &Settings<'_>,
    path: &Path,
) -> Result<(), StatsError> {
    counter.stats.finish();
    let format_name = counter
        .format
        .as_ref()
        .map_or("unknown", |f| f.name())
        .to_string();
    let ctx = Context {
        format: &format_name,
        sources: vec!["<stdin>".to_string()],
        top: settings.top,
        bucket: settings.bucket,
    };
    let report = Report::build(&counter.stats, &ctx);
    let err = |e| StatsError::Write {
        name: path.display().to_string(),
        source: e,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp).map_err(err)?;
    report::json::write(&report, &mut file).map_err(err)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        let cases: &[(&str, Option<f64>)] = &[
            ("10", Some(10.0)),
            ("2s", Some(2.0)),
            ("1.5m", Some(90.0)),
            ("1h", Some(3600.0)),
            ("0.1", Some(0.1)),
            ("0", None),
            ("5d", None),
            ("x", None),
        ];
        for (arg, want) in cases {
            assert_eq!(
                parse_interval(arg).ok().map(|d| d.as_secs_f64()),
                *want,
                "{arg}"
            );
        }
    }

    #[test]
    fn counts_lines_split_across_reads() {
        let line = r#"1.2.3.4 - - [01/Mar/2025:00:00:01 +0000] "GET /a HTTP/1.1" 200 10 "-" "x""#;
        let all = format!("{line}\n{line}\nbad line\n{line}");
        let mut c = Counter {
            stats: Stats::new(true, 5),
            format: None,
            pending: Vec::new(),
            line: 0,
        };
        let filter = Filter::default();
        for piece in all.as_bytes().chunks(7) {
            c.feed(piece, &filter);
        }
        c.finish(&filter);
        assert_eq!((c.stats.requests, c.stats.invalid), (3, 1));
        assert_eq!(c.stats.invalid_samples[0].line, 3);
    }
}
