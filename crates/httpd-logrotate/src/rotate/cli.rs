//! The rotator's command line: [`Args`] is exactly what was typed (clap derive, the doc
//! comments are `--help`), [`Config`] is validated and resolved.
//!
//! Apache rotatelogs' command line is accepted too, so an existing
//! `CustomLog "|rotatelogs -l /var/log/access.%Y%m%d 86400" combined` switches by changing
//! the program name: its flags `-l -L -p -f -D -t -e -c -n -v` and its positional form
//! `PATTERN ROTATIONTIME|SIZE(B|K|M|G) [OFFSET_MINUTES]`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use super::pattern::Pattern;
use crate::error::Error;

/// Read log lines on stdin and write them to rotating files named by a strftime PATTERN,
/// never losing or splitting a line.
#[derive(Debug, Parser)]
#[command(
    name = "httpd-logrotate",
    version,
    after_help = "Also accepts Apache rotatelogs' form: httpd-logrotate [-l] [-L LINK] [-p PROG] [-f] [-c] [-e] [-t] [-n NUM] PATTERN ROTATIONTIME|SIZE(B|K|M|G) [OFFSET_MINUTES]\n\nSignals: HUP or USR1 rotate now; TERM, INT and end of input flush and exit 0."
)]
pub struct Args {
    /// File name pattern with strftime fields, e.g. /var/log/httpd/access.%Y-%m-%d.log
    /// (UTC unless --local-time); parent directories are created
    #[arg(value_name = "PATTERN")]
    pub pattern: String,

    /// rotatelogs' positional form: rotation time in seconds or a size with B, K, M or G,
    /// then an offset from UTC in minutes
    #[arg(value_name = "ROTATIONTIME|SIZE", allow_negative_numbers = true)]
    pub positional: Vec<String>,

    /// Rotate at every interval boundary: 1h, 1d (at midnight), 15m, 30s or seconds
    #[arg(long, value_name = "INTERVAL")]
    pub every: Option<String>,

    /// Rotate before a file would grow past SIZE (bytes, or with K, M, G)
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,

    /// Keep at most N files of the series (the current one included); older ones are deleted
    #[arg(long, value_name = "N")]
    pub keep: Option<u32>,

    /// Delete the oldest files while the series takes more than SIZE on disk
    #[arg(long, value_name = "SIZE")]
    pub max_total: Option<String>,

    /// Gzip closed files in the background (never the current one)
    #[arg(long)]
    pub compress: bool,

    /// Keep a symbolic link at PATH to the current file (for tail -F)
    #[arg(long, value_name = "PATH")]
    pub link: Option<PathBuf>,

    /// rotatelogs -L: keep a hard link at PATH to the current file
    #[arg(short = 'L', value_name = "PATH")]
    pub hard_link: Option<PathBuf>,

    /// Run CMD (through sh) after a new file is opened, with the new and the previous file
    /// names as arguments (rotatelogs -p)
    #[arg(long = "on-rotate", short = 'p', value_name = "CMD")]
    pub on_rotate: Option<String>,

    /// Format PATTERN and align intervals in local time instead of UTC (rotatelogs -l)
    #[arg(long = "local-time", short = 'l')]
    pub local_time: bool,

    /// Split lines longer than SIZE into several lines, each but the last ending with
    /// " [continued]"
    #[arg(long, value_name = "SIZE", default_value = "64K")]
    pub max_line: String,

    /// When the disk is full or a write fails: block (stop reading until writes succeed
    /// again) or drop (discard new lines, then log how many)
    #[arg(long, value_enum, default_value_t = OnFull::Block)]
    pub on_full: OnFull,

    /// When to fsync the current file: after every write, once a second, or never
    #[arg(long, value_enum, default_value_t = Fsync::Interval)]
    pub fsync: Fsync,

    /// rotatelogs -n: a circular list of NUM files (PATTERN, PATTERN.1, ... PATTERN.NUM-1),
    /// the oldest truncated and reused
    #[arg(short = 'n', value_name = "NUM")]
    pub circular: Option<u32>,

    /// Open the log file at start, not at the first line (rotatelogs -f)
    #[arg(short = 'f')]
    pub force_open: bool,

    /// Create the file of a new interval even if no line arrives (rotatelogs -c)
    #[arg(short = 'c')]
    pub create_empty: bool,

    /// Echo every line to stdout too (rotatelogs -e)
    #[arg(short = 'e')]
    pub echo: bool,

    /// Truncate the file when opening it instead of appending (rotatelogs -t)
    #[arg(short = 't')]
    pub truncate: bool,

    /// Say on stderr when files are opened and closed (rotatelogs -v)
    #[arg(short = 'v')]
    pub verbose: bool,

    /// rotatelogs -D: create parent directories (always done)
    #[arg(short = 'D', hide = true)]
    pub create_dirs: bool,
}

/// What to do while the log file cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnFull {
    /// Stop reading stdin until writes succeed again (the writer then waits)
    Block,
    /// Keep reading and discard new lines; log how many once writes succeed
    Drop,
}

/// The durability setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fsync {
    /// fsync after every write (every batch of lines read)
    Every,
    /// fsync at most once a second, and at rotation and exit
    Interval,
    /// never fsync: leave it to the kernel
    Never,
}

/// How a link to the current file is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    Symbolic,
    Hard,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub pattern: Pattern,
    /// Rotation interval in seconds, aligned to multiples of it (plus `offset`).
    pub every: Option<i64>,
    /// rotatelogs' offset from UTC in seconds, for interval alignment.
    pub offset: i64,
    /// A new file whenever the formatted name changes (not in rotatelogs' form).
    pub follow_name: bool,
    pub max_size: Option<u64>,
    pub keep: Option<u32>,
    pub max_total: Option<u64>,
    pub compress: bool,
    pub links: Vec<(PathBuf, LinkKind)>,
    pub on_rotate: Option<String>,
    pub max_line: usize,
    pub on_full: OnFull,
    pub fsync: Fsync,
    pub circular: Option<u32>,
    pub open_at_start: bool,
    pub create_empty: bool,
    pub echo: bool,
    pub truncate: bool,
    pub verbose: bool,
    /// The interval of `--fsync interval`.
    pub fsync_interval: Duration,
}

/// The outcome of parsing the command line.
pub enum Parsed {
    Run(Box<Config>),
    /// `--help` or `--version`: print this on stdout and exit 0.
    Print(String),
}

/// Parses the full argument vector (program name first).
pub fn parse(args: Vec<OsString>) -> Result<Parsed, Error> {
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                return Ok(Parsed::Print(e.render().to_string()));
            }
            // clap's first paragraph says what is wrong; the usage block after it is noise in a
            // server's error log.
            let text = e.render().to_string();
            let first: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let first = first.join(" ");
            return Err(Error::Usage(
                first.trim_start_matches("error: ").to_string(),
            ));
        }
    };
    Config::from_args(args).map(|c| Parsed::Run(Box::new(c)))
}

impl Config {
    fn from_args(args: Args) -> Result<Config, Error> {
        let usage = |m: String| Error::Usage(m);
        let mut every = args.every.as_deref().map(parse_interval).transpose()?;
        let mut max_size = args
            .max_size
            .as_deref()
            .map(|s| parse_size(s, "--max-size"))
            .transpose()?;
        let mut offset = 0;
        let positional = !args.positional.is_empty();
        if args.positional.len() > 3 {
            return Err(usage(format!(
                "too many arguments after PATTERN: '{}'",
                args.positional.join(" ")
            )));
        }
        let mut time_seen = false;
        for value in &args.positional {
            let last = value.chars().last().unwrap_or(' ').to_ascii_uppercase();
            if "BKMG".contains(last) && !value[..value.len() - 1].is_empty() {
                if max_size.is_some() {
                    return Err(usage(format!("size '{value}' given twice")));
                }
                max_size = Some(parse_size(value, "SIZE")?);
            } else if !time_seen {
                time_seen = true;
                let secs: i64 = value.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    usage(format!(
                        "invalid rotation time or size '{value}' (seconds, or a size ending in B, K, M or G)"
                    ))
                })?;
                if every.is_some() {
                    return Err(usage(
                        "rotation time given twice (--every and ROTATIONTIME)".into(),
                    ));
                }
                every = Some(secs);
            } else {
                let minutes: i64 = value
                    .parse()
                    .map_err(|_| usage(format!("invalid offset '{value}' (minutes from UTC)")))?;
                offset = minutes * 60;
            }
        }
        let mut pattern_text = args.pattern.clone();
        // rotatelogs appends the nominal start time when the name has no strftime field
        // (not with -n or -t, which keep the name as given).
        if positional && !pattern_text.contains('%') && args.circular.is_none() && !args.truncate {
            pattern_text.push_str(".%s");
        }
        let pattern = Pattern::parse(&pattern_text, args.local_time)?;
        if args.keep == Some(0) {
            return Err(usage("--keep must be at least 1 (the current file)".into()));
        }
        if let Some(n) = args.circular {
            if n == 0 {
                return Err(usage("-n must be at least 1".into()));
            }
            if pattern.has_fields() {
                return Err(usage(
                    "-n takes a plain file name, not a strftime pattern".into(),
                ));
            }
        }
        let max_total = args
            .max_total
            .as_deref()
            .map(|s| parse_size(s, "--max-total"))
            .transpose()?;
        let max_line = parse_size(&args.max_line, "--max-line")?;
        if max_line < 16 {
            return Err(usage(format!(
                "--max-line must be at least 16 bytes, not {max_line}"
            )));
        }
        let max_line = usize::try_from(max_line)
            .ok()
            .filter(|m| *m <= 64 << 20)
            .ok_or_else(|| usage("--max-line must be at most 64M".into()))?;
        if max_size == Some(0) {
            return Err(usage("the maximum size must be more than 0".into()));
        }
        let mut links = Vec::new();
        if let Some(p) = args.link {
            links.push((p, LinkKind::Symbolic));
        }
        if let Some(p) = args.hard_link {
            links.push((p, LinkKind::Hard));
        }
        Ok(Config {
            pattern,
            every,
            offset,
            follow_name: !positional,
            max_size,
            keep: args.keep,
            max_total,
            compress: args.compress,
            links,
            on_rotate: args.on_rotate,
            max_line,
            on_full: args.on_full,
            fsync: args.fsync,
            circular: args.circular,
            open_at_start: args.force_open,
            create_empty: args.create_empty,
            echo: args.echo,
            truncate: args.truncate,
            verbose: args.verbose,
            fsync_interval: Duration::from_secs(1),
        })
    }
}

/// `1h`, `1d`, `15m`, `30s`, `2w` or plain seconds.
fn parse_interval(text: &str) -> Result<i64, Error> {
    let bad = || {
        Error::Usage(format!(
            "invalid --every '{text}' (expected seconds or a number with s, m, h, d or w, like 1h or 1d)"
        ))
    };
    let t = text.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let n: i64 = num.parse().map_err(|_| bad())?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "s" | "sec" | "secs" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).filter(|s| *s > 0).ok_or_else(bad)
}

/// A size in bytes: a number with an optional B, K, M or G (powers of 1024, as rotatelogs).
pub fn parse_size(text: &str, what: &str) -> Result<u64, Error> {
    let bad = || {
        Error::Usage(format!(
            "invalid {what} '{text}' (expected bytes or a number with K, M or G, like 100M)"
        ))
    };
    let t = text.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix("ib"))
        .unwrap_or(t);
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('B') => (&t[..t.len() - 1], 1u64),
        Some('K') => (&t[..t.len() - 1], 1 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    n.checked_mul(mult).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, Error> {
        let mut v: Vec<OsString> = vec!["httpd-logrotate".into()];
        v.extend(args.iter().map(OsString::from));
        match parse(v)? {
            Parsed::Run(c) => Ok(*c),
            Parsed::Print(_) => panic!("printed help"),
        }
    }

    #[test]
    fn sizes() {
        for (text, want) in [
            ("100", Some(100)),
            ("100B", Some(100)),
            ("5K", Some(5120)),
            ("5k", Some(5120)),
            ("100M", Some(100 << 20)),
            ("1G", Some(1 << 30)),
            ("1GiB", Some(1 << 30)),
            ("x", None),
            ("5Q", None),
            ("", None),
        ] {
            assert_eq!(parse_size(text, "SIZE").ok(), want, "{text}");
        }
    }

    #[test]
    fn intervals() {
        for (text, want) in [
            ("1h", Some(3600)),
            ("1d", Some(86_400)),
            ("15m", Some(900)),
            ("30", Some(30)),
            ("30s", Some(30)),
            ("0", None),
            ("1y", None),
            ("h", None),
        ] {
            assert_eq!(parse_interval(text).ok(), want, "{text}");
        }
    }

    #[test]
    fn rotatelogs_positional_form() {
        let c = config(&["/l/access.%Y%m%d", "86400"]).unwrap();
        assert_eq!(c.every, Some(86_400));
        assert_eq!(c.max_size, None);
        assert!(!c.follow_name);
        let c = config(&["/l/access", "5M"]).unwrap();
        assert_eq!(c.max_size, Some(5 << 20));
        assert_eq!(c.pattern.text(), "/l/access.%s");
        let c = config(&["-l", "-f", "/l/a.%H", "3600", "5M", "-60"]).unwrap();
        assert_eq!(
            (c.every, c.max_size, c.offset),
            (Some(3600), Some(5 << 20), -3600)
        );
        assert!(c.pattern.is_local() && c.open_at_start);
        let c = config(&["-n", "3", "/l/access", "100K"]).unwrap();
        assert_eq!(c.pattern.text(), "/l/access");
        assert_eq!(c.circular, Some(3));
    }

    #[test]
    fn native_form() {
        let c = config(&[
            "/l/a.%Y-%m-%d.log",
            "--every",
            "1d",
            "--keep",
            "14",
            "--compress",
        ])
        .unwrap();
        assert_eq!(
            (c.every, c.keep, c.compress),
            (Some(86_400), Some(14), true)
        );
        assert!(c.follow_name);
        assert_eq!(c.max_line, 64 << 10);
    }

    #[test]
    fn usage_errors() {
        for args in [
            &["a.log", "--every", "1y"][..],
            &["a.log", "--keep", "0"],
            &["a.log", "--max-size", "big"],
            &["a.log", "86400", "3600", "7", "9"],
            &["a.log", "abc"],
            &["a.%Q.log"],
            &["a.log", "--bogus"],
            &["-n", "2", "a.%Y.log", "1M"],
            &[],
        ] {
            let e = config(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} accepted"));
            assert_eq!(e.exit_code(), 1, "{args:?}: {e}");
        }
    }
}
