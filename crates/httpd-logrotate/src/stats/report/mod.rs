//! The report: one model built from the merged totals ([`Report::build`]), written as a
//! terminal table ([`text`]), JSON ([`json`], the schema in STATS.md) or an HTML page
//! ([`html`]).

pub mod html;
pub mod json;
pub mod text;

use std::collections::BTreeMap;

use serde::Serialize;

use super::aggregate::{Stats, Visitors};

/// The JSON schema version; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct Report {
    pub version: u32,
    pub format: String,
    pub sources: Vec<String>,
    pub requests: u64,
    pub invalid: u64,
    pub filtered: u64,
    pub bytes: u64,
    pub unique_visitors: u64,
    pub unique_clients: u64,
    /// Names of the fields whose numbers are estimates.
    pub estimates: Vec<&'static str>,
    pub time: Option<Span>,
    pub status: BTreeMap<String, u64>,
    pub status_classes: BTreeMap<String, u64>,
    pub methods: BTreeMap<String, u64>,
    pub protocols: BTreeMap<String, u64>,
    pub top_paths: Vec<PathRow>,
    pub top_404: Vec<NotFoundRow>,
    pub top_clients: Vec<ClientRow>,
    pub top_referrers: Vec<ReferrerRow>,
    pub top_user_agents: Vec<AgentRow>,
    pub crawlers: Crawlers,
    pub vhosts: Vec<VhostRow>,
    pub traffic: Traffic,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<Latency>,
    pub slowest: Vec<SlowRow>,
    pub invalid_samples: Vec<InvalidRow>,
}

#[derive(Debug, Serialize)]
pub struct Span {
    pub first: String,
    pub last: String,
    pub seconds: i64,
}

#[derive(Debug, Serialize, Clone, Copy)]
pub struct Latency {
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct PathRow {
    pub path: String,
    pub hits: u64,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<Latency>,
}

#[derive(Debug, Serialize)]
pub struct NotFoundRow {
    pub path: String,
    pub hits: u64,
}

#[derive(Debug, Serialize)]
pub struct ClientRow {
    pub client: String,
    pub hits: u64,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct ReferrerRow {
    pub referrer: String,
    pub hits: u64,
}

#[derive(Debug, Serialize)]
pub struct AgentRow {
    pub user_agent: String,
    pub hits: u64,
    pub crawler: bool,
}

#[derive(Debug, Serialize)]
pub struct Crawlers {
    pub hits: u64,
    pub share: f64,
}

#[derive(Debug, Serialize)]
pub struct VhostRow {
    pub vhost: String,
    pub hits: u64,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct Traffic {
    pub bucket: String,
    pub bucket_seconds: i64,
    pub series: Vec<Bucket>,
    pub peak: Option<Peak>,
}

#[derive(Debug, Serialize)]
pub struct Bucket {
    pub start: String,
    pub hits: u64,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct Peak {
    /// The busiest minute, its requests, and their rate per second.
    pub minute: String,
    pub hits: u64,
    pub per_second: f64,
}

#[derive(Debug, Serialize)]
pub struct SlowRow {
    pub time: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub latency_us: u64,
    pub client: String,
}

#[derive(Debug, Serialize)]
pub struct InvalidRow {
    pub source: String,
    pub line: u64,
    pub text: String,
}

/// What the report needs besides the totals.
pub struct Context<'a> {
    pub format: &'a str,
    pub sources: Vec<String>,
    pub top: usize,
    /// `--bucket` in seconds; `None` picks one to fit.
    pub bucket: Option<i64>,
}

/// RFC 3339 UTC time of unix seconds.
pub fn iso(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

fn latency_of(h: &hdrhistogram::Histogram<impl hdrhistogram::Counter>, max: u64) -> Latency {
    // `value_at_quantile` answers with the top of the bucket holding the quantile, within
    // the histogram's precision; never above the exact maximum.
    let q = |p: f64| h.value_at_quantile(p).min(max);
    Latency {
        p50: q(0.50),
        p95: q(0.95),
        p99: q(0.99),
        max,
        mean: None,
        count: None,
    }
}

impl Report {
    pub fn build(stats: &Stats, ctx: &Context<'_>) -> Report {
        let top = ctx.top;
        let mut estimates = Vec::new();
        if matches!(stats.visitors, Visitors::Estimated(_)) {
            estimates.push("unique_visitors");
        }
        for (name, est) in [
            ("top_paths", stats.paths.is_estimate()),
            ("top_404", stats.not_found.is_estimate()),
            ("top_clients", stats.clients.is_estimate()),
            ("unique_clients", stats.clients.is_estimate()),
            ("top_referrers", stats.referrers.is_estimate()),
            ("top_user_agents", stats.agents.is_estimate()),
            ("vhosts", stats.vhosts.is_estimate()),
        ] {
            if est {
                estimates.push(name);
            }
        }
        let mut status = BTreeMap::new();
        let mut classes = BTreeMap::new();
        for (code, &n) in stats.status.iter().enumerate().filter(|(_, n)| **n > 0) {
            status.insert(code.to_string(), n);
            let class = classes.entry(format!("{}xx", code / 100)).or_insert(0u64);
            *class = class.saturating_add(n);
        }
        let small = |t: &super::topk::TopK<super::topk::Count>| -> BTreeMap<String, u64> {
            t.iter().map(|(k, v)| (k.to_string(), v.hits)).collect()
        };
        let top_paths = stats
            .paths
            .top(top)
            .into_iter()
            .map(|(p, v)| PathRow {
                path: p.to_string(),
                hits: v.hits,
                bytes: v.bytes,
                latency_us: v.latency.as_ref().map(|h| latency_of(h, v.max_us)),
            })
            .collect();
        let latency_us = stats.latency.as_ref().map(|h| Latency {
            mean: Some(stats.latency_sum / h.len().max(1)),
            count: Some(h.len()),
            ..latency_of(h, stats.latency_max)
        });
        let mut slowest: Vec<SlowRow> = stats
            .slowest
            .iter()
            .map(|std::cmp::Reverse(s)| SlowRow {
                time: s.time.map(iso),
                method: s.method.clone(),
                path: s.path.clone(),
                status: s.status,
                latency_us: s.latency_us,
                client: s.client.clone(),
            })
            .collect();
        slowest.sort_by(|a, b| b.latency_us.cmp(&a.latency_us).then(a.time.cmp(&b.time)));
        Report {
            version: SCHEMA_VERSION,
            format: ctx.format.to_string(),
            sources: ctx.sources.clone(),
            requests: stats.requests,
            invalid: stats.invalid,
            filtered: stats.filtered,
            bytes: stats.bytes,
            unique_visitors: stats.visitors.count(),
            unique_clients: stats.clients.len() as u64,
            estimates,
            time: stats.first.zip(stats.last).map(|(f, l)| Span {
                first: iso(f),
                last: iso(l),
                seconds: l.saturating_sub(f),
            }),
            status,
            status_classes: classes,
            methods: small(&stats.methods),
            protocols: small(&stats.protocols),
            top_paths,
            top_404: stats
                .not_found
                .top(top)
                .into_iter()
                .map(|(p, v)| NotFoundRow {
                    path: p.to_string(),
                    hits: v.hits,
                })
                .collect(),
            top_clients: stats
                .clients
                .top(top)
                .into_iter()
                .map(|(c, v)| ClientRow {
                    client: c.to_string(),
                    hits: v.hits,
                    bytes: v.bytes,
                })
                .collect(),
            top_referrers: stats
                .referrers
                .top(top)
                .into_iter()
                .map(|(r, v)| ReferrerRow {
                    referrer: r.to_string(),
                    hits: v.hits,
                })
                .collect(),
            top_user_agents: stats
                .agents
                .top(top)
                .into_iter()
                .map(|(a, v)| AgentRow {
                    user_agent: a.to_string(),
                    hits: v.hits,
                    crawler: v.crawler.unwrap_or(false),
                })
                .collect(),
            crawlers: Crawlers {
                hits: stats.crawler_hits,
                share: if stats.requests == 0 {
                    0.0
                } else {
                    stats.crawler_hits as f64 / stats.requests as f64
                },
            },
            vhosts: stats
                .vhosts
                .top(top)
                .into_iter()
                .map(|(h, v)| VhostRow {
                    vhost: h.to_string(),
                    hits: v.hits,
                    bytes: v.bytes,
                })
                .collect(),
            traffic: traffic(stats, ctx.bucket),
            latency_us,
            slowest,
            invalid_samples: stats
                .invalid_samples
                .iter()
                .map(|i| InvalidRow {
                    source: ctx.sources.get(i.source).cloned().unwrap_or_default(),
                    line: i.line,
                    text: i.text.clone(),
                })
                .collect(),
        }
    }
}

/// Most points the series has when the bucket is chosen to fit.
pub const AUTO_BUCKETS: i64 = 400;
/// Most points the series has with an explicit `--bucket` (1m covers a week of log, 1h
/// over a year); past that the bucket widens as if chosen to fit from that width up.
pub const MAX_BUCKETS: i64 = 10_000;

/// Bucket widths tried in order: 1m, 1h, 1d, 7d, 30d, 365d, then 365d times 2, 5, 10, 20,
/// 50, … (fixed widths, aligned to the Unix epoch, so `bucket_seconds` says it all).
fn widths() -> impl Iterator<Item = i64> {
    const YEAR: i64 = 365 * 86400;
    [60, 3600, 86400, 7 * 86400, 30 * 86400, YEAR]
        .into_iter()
        .chain((0..).flat_map(|e: u32| [2, 5, 10].map(move |m| m * 10i64.saturating_pow(e) * YEAR)))
        .take_while(|&w| w < i64::MAX / 100)
}

/// How many buckets of `size` seconds cover `first..=last` (no overflow for any input).
fn buckets(first: i64, last: i64, size: i64) -> i64 {
    let n = last.div_euclid(size) as i128 - first.div_euclid(size) as i128 + 1;
    n.clamp(0, i64::MAX as i128) as i64
}

/// The bucket width for a span: `--bucket` when it keeps the series within
/// [`MAX_BUCKETS`], otherwise the smallest width of [`widths`], not finer than `--bucket`,
/// that keeps it within [`AUTO_BUCKETS`] points (a log from year 1 to 9999 gets 50-year
/// buckets and a 200-point series, not 3.6 million days).
fn bucket_size(first: i64, last: i64, bucket: Option<i64>) -> i64 {
    if let Some(b) = bucket {
        if buckets(first, last, b) <= MAX_BUCKETS {
            return b;
        }
    }
    let floor = bucket.unwrap_or(60);
    widths()
        .filter(|&w| w >= floor)
        .find(|&w| buckets(first, last, w) <= AUTO_BUCKETS)
        .unwrap_or(i64::MAX / 100)
}

/// The series over time, in buckets of `bucket` seconds or, when `None`, of the smallest
/// width of [`widths`] that keeps it within [`AUTO_BUCKETS`] points. Empty buckets are listed.
fn traffic(stats: &Stats, bucket: Option<i64>) -> Traffic {
    let (Some(first), Some(last)) = (stats.first, stats.last) else {
        return Traffic {
            bucket: name_of(bucket.unwrap_or(3600)),
            bucket_seconds: bucket.unwrap_or(3600),
            series: Vec::new(),
            peak: None,
        };
    };
    let size = bucket_size(first, last, bucket);
    let start = first.div_euclid(size);
    let n = buckets(first, last, size) as usize;
    let mut series: Vec<Bucket> = (0..n)
        .map(|i| Bucket {
            start: iso((start + i as i64) * size),
            hits: 0,
            bytes: 0,
        })
        .collect();
    let mut peak: Option<(i64, u64)> = None;
    for (&minute, c) in &stats.minutes {
        let i = minute.saturating_mul(60).div_euclid(size) - start;
        if let Some(b) = usize::try_from(i).ok().and_then(|i| series.get_mut(i)) {
            b.hits = b.hits.saturating_add(c.hits);
            b.bytes = b.bytes.saturating_add(c.bytes);
        }
        if peak.is_none_or(|(m, h)| c.hits > h || (c.hits == h && minute < m)) {
            peak = Some((minute, c.hits));
        }
    }
    Traffic {
        bucket: name_of(size),
        bucket_seconds: size,
        series,
        peak: peak.map(|(m, hits)| Peak {
            minute: iso(m * 60),
            hits,
            per_second: hits as f64 / 60.0,
        }),
    }
}

fn name_of(size: i64) -> String {
    match size {
        60 => "1m".into(),
        3600 => "1h".into(),
        s if s % (365 * 86400) == 0 => format!("{}y", s / (365 * 86400)),
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s => format!("{s}s"),
    }
}
