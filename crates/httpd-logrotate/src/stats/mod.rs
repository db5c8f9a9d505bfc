//! `--stats`: access-log analysis in the terminal, as JSON and as an HTML page.
//!
//! - [`format`]: Apache LogFormat strings, named formats, JSON lines, auto-detection.
//! - [`record`]: one parsed line; time and request-line parsing.
//! - [`input`]: files/stdin (gzip, zstd) cut into line chunks for parallel parser threads.
//! - [`filter`]: the `--since`, `--until`, `--status`, `--path`, `--vhost`, `--exclude-ip`
//!   and `--no-crawlers` filters.
//! - [`aggregate`]: per-thread totals and their merge; [`topk`] and [`hll`] bound memory.
//! - [`report`]: the report model and its text, JSON and HTML writers.
//! - [`live`]: `--tee PATTERN`: rotate through the rotator and keep a running report.
//! - [`error`]: what can stop a run, and its exit code.

pub mod aggregate;
pub mod error;
pub mod filter;
pub mod format;
pub mod hll;
pub mod input;
pub mod live;
pub mod record;
pub mod report;
pub mod topk;

mod progress;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;

use error::StatsError;
use filter::Filter;
use format::Format;
use input::{Plan, Source};
use report::{Context, Report};

/// Analyse access logs: traffic, status codes, top paths, clients, referrers, agents,
/// latency percentiles and the slowest requests.
#[derive(Debug, Parser)]
#[command(name = "httpd-logrotate --stats", version)]
pub struct Args {
    /// Statistics mode (what selects this command line).
    #[arg(long)]
    stats: bool,
    /// Log format: common, combined, vcombined, json, or an Apache LogFormat string
    /// (`%D`/`%T` give latency). Detected from the first lines when absent.
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// Write the report as one JSON document on stdout (schema: STATS.md).
    #[arg(long, conflicts_with = "html")]
    json: bool,
    /// Write a self-contained HTML report to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Rows in each top table, and slowest requests listed.
    #[arg(long, default_value_t = 10, value_name = "N")]
    top: usize,
    /// Only requests at or after this time (2025-03-01, 2025-03-01T12:00:00Z) or this long ago (24h, 30m, 7d).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only requests before this time, absolute or relative like --since.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Only these status codes: 404, 5xx, 400-499, comma-separated.
    #[arg(long, value_name = "CODES")]
    status: Option<String>,
    /// Only requests whose path matches this regular expression.
    #[arg(long, value_name = "REGEX")]
    path: Option<String>,
    /// Only requests to this virtual host (repeatable).
    #[arg(long, value_name = "HOST")]
    vhost: Vec<String>,
    /// Leave out clients in this network, like 10.0.0.0/8 or ::1 (repeatable).
    #[arg(long, value_name = "CIDR")]
    exclude_ip: Vec<String>,
    /// Leave out requests from crawlers (detected by user agent).
    #[arg(long)]
    no_crawlers: bool,
    /// Bucket of the traffic-over-time series; chosen to fit when absent.
    #[arg(long, value_parser = ["1m", "1h", "1d"])]
    bucket: Option<String>,
    /// Count unique visitors exactly (default: a HyperLogLog estimate in bounded memory).
    #[arg(long)]
    exact: bool,
    /// Parser threads (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Live mode: pass stdin on to the rotator (`httpd-logrotate PATTERN`) and keep a
    /// running report in --stats-file.
    #[arg(long, value_name = "PATTERN", requires = "stats_file", conflicts_with_all = ["files", "json", "html"])]
    tee: Option<OsString>,
    /// Live mode: write the report every INTERVAL (seconds, or 10s, 5m, 1h).
    #[arg(long, value_name = "INTERVAL", default_value = "10s", requires = "tee")]
    interval: String,
    /// Live mode: the JSON report file, replaced atomically at each interval and at the end.
    #[arg(long, value_name = "FILE", requires = "tee")]
    stats_file: Option<PathBuf>,
    /// Live mode, passed to the rotator: rotate at every interval boundary.
    #[arg(long, value_name = "INTERVAL", requires = "tee")]
    every: Option<OsString>,
    /// Live mode, passed to the rotator: rotate before a file grows past SIZE.
    #[arg(long, value_name = "SIZE", requires = "tee")]
    max_size: Option<OsString>,
    /// Live mode, passed to the rotator: keep at most N files.
    #[arg(long, value_name = "N", requires = "tee")]
    keep: Option<OsString>,
    /// Live mode, passed to the rotator: gzip closed files.
    #[arg(long, requires = "tee")]
    compress: bool,
    /// Live mode, passed to the rotator: a symbolic link to the current file.
    #[arg(long, value_name = "PATH", requires = "tee")]
    link: Option<OsString>,
    /// Live mode, passed to the rotator: run CMD after each rotation.
    #[arg(long, value_name = "CMD", requires = "tee")]
    on_rotate: Option<OsString>,
    /// Log files (plain, .gz or .zst); stdin when none.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// Where the report goes.
enum Output {
    Text,
    Json,
    Html(PathBuf),
}

/// The validated configuration.
struct Config {
    sources: Vec<Source>,
    format: Option<Format>,
    filter: Filter,
    output: Output,
    top: usize,
    bucket: Option<i64>,
    exact: bool,
    threads: usize,
    live: Option<live::Live>,
}

impl Config {
    fn from_args(a: Args) -> Result<Config, StatsError> {
        let now = chrono::Utc::now().timestamp();
        let filter = Filter {
            since: a
                .since
                .as_deref()
                .map(|s| filter::parse_time("--since", s, now))
                .transpose()?,
            until: a
                .until
                .as_deref()
                .map(|s| filter::parse_time("--until", s, now))
                .transpose()?,
            status: a
                .status
                .as_deref()
                .map(filter::parse_status)
                .transpose()?
                .unwrap_or_default(),
            path: a
                .path
                .as_deref()
                .map(|p| {
                    regex::Regex::new(p).map_err(|e| StatsError::Usage {
                        flag: "--path",
                        value: p.to_string(),
                        reason: e.to_string(),
                    })
                })
                .transpose()?,
            vhosts: a.vhost,
            exclude: a
                .exclude_ip
                .iter()
                .map(|s| parse_net(s))
                .collect::<Result<_, _>>()?,
            no_crawlers: a.no_crawlers,
        };
        let live = match a.tee {
            None => None,
            Some(pattern) => {
                let mut rotate_args: Vec<OsString> = Vec::new();
                for (flag, value) in [
                    ("--every", a.every),
                    ("--max-size", a.max_size),
                    ("--keep", a.keep),
                    ("--link", a.link),
                    ("--on-rotate", a.on_rotate),
                ] {
                    if let Some(v) = value {
                        rotate_args.push(flag.into());
                        rotate_args.push(v);
                    }
                }
                if a.compress {
                    rotate_args.push("--compress".into());
                }
                rotate_args.push("--".into());
                rotate_args.push(pattern);
                Some(live::Live {
                    rotate_args,
                    interval: live::parse_interval(&a.interval)?,
                    stats_file: a.stats_file.expect("clap requires --stats-file with --tee"),
                })
            }
        };
        let output = match (a.json, a.html) {
            (true, _) => Output::Json,
            (false, Some(p)) => Output::Html(p),
            _ => Output::Text,
        };
        let sources = if a.files.is_empty() {
            vec![Source { path: None }]
        } else {
            a.files
                .into_iter()
                .map(|p| Source {
                    path: (p.as_os_str() != "-").then_some(p),
                })
                .collect()
        };
        let threads = a
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        Ok(Config {
            sources,
            format: a.format.as_deref().map(Format::from_arg).transpose()?,
            filter,
            output,
            top: a.top,
            bucket: a.bucket.as_deref().map(|b| match b {
                "1m" => 60,
                "1h" => 3600,
                _ => 86400,
            }),
            exact: a.exact,
            threads,
            live,
        })
    }
}

fn parse_net(s: &str) -> Result<ipnet::IpNet, StatsError> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| StatsError::Usage {
            flag: "--exclude-ip",
            value: s.to_string(),
            reason: "expected an address or a network like 10.0.0.0/8".to_string(),
        })
}

/// Runs the analyser with the full argument vector (program name first); returns the exit code.
pub fn main(args: Vec<OsString>) -> u8 {
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("httpd-logrotate: error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("caused by: {s}");
                source = s.source();
            }
            if let Some(h) = e.hint() {
                eprintln!("hint: {h}");
            }
            e.exit_code()
        }
    }
}

fn run(args: Args) -> Result<u8, StatsError> {
    let cfg = Config::from_args(args)?;
    if let Some(l) = &cfg.live {
        let settings = live::Settings {
            format: cfg.format.clone(),
            filter: &cfg.filter,
            exact: cfg.exact,
            top: cfg.top,
            bucket: cfg.bucket,
        };
        return live::run(l, &settings);
    }
    let progress = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let total_size: u64 = cfg
        .sources
        .iter()
        .filter_map(|s| s.path.as_ref())
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let show_progress =
        std::io::stderr().is_terminal() && cfg.sources.iter().all(|s| s.path.is_some());
    let bar = show_progress.then(|| progress::Bar::start(Arc::clone(&progress), total_size));
    let plan = Plan {
        sources: &cfg.sources,
        format: cfg.format.clone(),
        filter: &cfg.filter,
        exact: cfg.exact,
        top: cfg.top,
        threads: cfg.threads,
        progress,
    };
    let result = input::analyse(&plan);
    drop(bar);
    let (stats, format) = result?;
    let ctx = Context {
        format: format.name(),
        sources: cfg.sources.iter().map(Source::name).collect(),
        top: cfg.top,
        bucket: cfg.bucket,
    };
    let report = Report::build(&stats, &ctx);
    let stdout_err = |e| StatsError::Write {
        name: "stdout".to_string(),
        source: e,
    };
    let written = match &cfg.output {
        Output::Json => {
            let mut out = std::io::stdout().lock();
            report::json::write(&report, &mut out)
                .and_then(|_| out.flush())
                .map_err(stdout_err)
        }
        Output::Text => {
            let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            report::text::write(&report, &report::text::Style { color }, &mut out)
                .and_then(|_| out.flush())
                .map_err(stdout_err)
        }
        Output::Html(path) => {
            let page = report::html::render(&report);
            if path.as_os_str() == "-" {
                std::io::stdout()
                    .write_all(page.as_bytes())
                    .map_err(stdout_err)
            } else {
                std::fs::write(path, page).map_err(|e| StatsError::Write {
                    name: path.display().to_string(),
                    source: e,
                })
            }
        }
    };
    written.map(|()| 0)
}
