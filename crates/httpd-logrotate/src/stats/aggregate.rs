//! The running totals of one worker, and how two workers' totals merge.
//!
//! Exact where it is cheap (status codes, methods, bytes, per-minute traffic, latency
//! histograms, the slowest requests); bounded tables ([`TopK`]) for the long tails; a
//! HyperLogLog for unique visitors unless `--exact`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{Hash, Hasher};

use hashbrown::{HashMap, HashSet};
use hdrhistogram::Histogram;

use super::filter::Filter;
use super::hll::{self, HyperLogLog};
use super::record::Record;
use super::topk::{Count, Tally, TopK};

/// Keys per long-tail table before it starts dropping the lightest half.
pub const TABLE_CAP: usize = 200_000;
/// Invalid lines kept as examples.
pub const INVALID_SAMPLES: usize = 5;

/// Per-path totals, with latency when the log has it.
#[derive(Debug, Default)]
pub struct PathTally {
    pub hits: u64,
    pub bytes: u64,
    pub max_us: u64,
    /// Two significant digits: bucket width at most 1/128 of the value (< 1%).
    pub latency: Option<Box<Histogram<u32>>>,
}

impl Tally for PathTally {
    fn hits(&self) -> u64 {
        self.hits
    }
    fn merge(&mut self, other: Self) {
        self.hits = self.hits.saturating_add(other.hits);
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.max_us = self.max_us.max(other.max_us);
        match (&mut self.latency, other.latency) {
            (Some(a), Some(b)) => a.add(&*b).expect("auto-resizing histograms add"),
            (a @ None, b) => *a = b,
            _ => {}
        }
    }
}

/// A user agent's hits and whether it is a crawler.
#[derive(Debug, Default)]
pub struct AgentTally {
    pub hits: u64,
    pub crawler: Option<bool>,
}

impl Tally for AgentTally {
    fn hits(&self) -> u64 {
        self.hits
    }
    fn merge(&mut self, other: Self) {
        self.hits = self.hits.saturating_add(other.hits);
        self.crawler = self.crawler.or(other.crawler);
    }
}

/// One of the slowest requests.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slow {
    pub latency_us: u64,
    pub time: Option<i64>,
    pub path: String,
    pub method: String,
    pub status: u16,
    pub client: String,
}

/// An unparseable line: where it is and how it starts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Invalid {
    pub source: usize,
    pub line: u64,
    pub text: String,
}

/// Unique visitors: exact (a set of 64-bit keys) or estimated.
#[derive(Debug)]
pub enum Visitors {
    Exact(HashSet<u64>),
    Estimated(Box<HyperLogLog>),
}

impl Visitors {
    pub fn count(&self) -> u64 {
        match self {
            Visitors::Exact(s) => s.len() as u64,
            Visitors::Estimated(h) => h.count(),
        }
    }
}

#[derive(Debug)]
pub struct Stats {
    pub requests: u64,
    pub invalid: u64,
    pub filtered: u64,
    pub bytes: u64,
    pub status: Box<[u64; 1000]>,
    pub methods: TopK<Count>,
    pub protocols: TopK<Count>,
    pub paths: TopK<PathTally>,
    pub not_found: TopK<Count>,
    pub clients: TopK<Count>,
    pub referrers: TopK<Count>,
    pub agents: TopK<AgentTally>,
    pub vhosts: TopK<Count>,
    pub crawler_hits: u64,
    pub visitors: Visitors,
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// Requests and bytes per minute (unix minute).
    pub minutes: HashMap<i64, Count>,
    cur_minute: Option<(i64, Count)>,
    pub latency: Option<Histogram<u64>>,
    pub latency_sum: u64,
    pub latency_max: u64,
    pub slowest: BinaryHeap<Reverse<Slow>>,
    slowest_n: usize,
    pub invalid_samples: Vec<Invalid>,
}

impl Stats {
    pub fn new(exact: bool, top: usize) -> Stats {
        Stats {
            requests: 0,
            invalid: 0,
            filtered: 0,
            bytes: 0,
            status: Box::new([0; 1000]),
            methods: TopK::new(1000),
            protocols: TopK::new(1000),
            paths: TopK::new(TABLE_CAP),
            not_found: TopK::new(TABLE_CAP),
            clients: TopK::new(TABLE_CAP),
            referrers: TopK::new(TABLE_CAP),
            agents: TopK::new(TABLE_CAP),
            vhosts: TopK::new(10_000),
            crawler_hits: 0,
            visitors: if exact {
                Visitors::Exact(HashSet::new())
            } else {
                Visitors::Estimated(Box::default())
            },
            first: None,
            last: None,
            minutes: HashMap::new(),
            cur_minute: None,
            latency: None,
            latency_sum: 0,
            latency_max: 0,
            slowest: BinaryHeap::new(),
            slowest_n: top,
            invalid_samples: Vec::new(),
        }
    }

    /// Counts an unparseable line.
    pub fn add_invalid(&mut self, source: usize, line: u64, text: &[u8]) {
        self.invalid = self.invalid.saturating_add(1);
        if self.invalid_samples.len() < INVALID_SAMPLES {
            let text = String::from_utf8_lossy(&text[..text.len().min(200)]).into_owned();
            self.invalid_samples.push(Invalid { source, line, text });
        }
    }

    /// Counts a parsed record, unless a filter drops it. Every sum saturates: a log can
    /// claim any byte count or latency (`%b` takes 19 digits), and the report must still come.
    pub fn add(&mut self, r: &Record<'_>, filter: &Filter) {
        if !filter.accepts(r) {
            self.filtered = self.filtered.saturating_add(1);
            return;
        }
        let agent = self.agents.entry(&r.user_agent);
        let crawler = *agent
            .crawler
            .get_or_insert_with(|| is_crawler(&r.user_agent));
        if crawler && filter.no_crawlers {
            self.filtered = self.filtered.saturating_add(1);
            return;
        }
        agent.hits = agent.hits.saturating_add(1);
        if crawler {
            self.crawler_hits = self.crawler_hits.saturating_add(1);
        }
        self.requests = self.requests.saturating_add(1);
        self.bytes = self.bytes.saturating_add(r.bytes);
        let code = &mut self.status[(r.status as usize).min(999)];
        *code = code.saturating_add(1);
        bump(self.methods.entry(&r.method), r.bytes);
        bump(self.protocols.entry(&r.protocol), r.bytes);
        bump(self.clients.entry(&r.client), r.bytes);
        if !r.referrer.is_empty() && r.referrer != "-" {
            bump(self.referrers.entry(&r.referrer), r.bytes);
        }
        if !r.vhost.is_empty() {
            bump(self.vhosts.entry(&r.vhost), r.bytes);
        }
        if r.status == 404 {
            bump(self.not_found.entry(&r.path), r.bytes);
        }
        let path = self.paths.entry(&r.path);
        path.hits = path.hits.saturating_add(1);
        path.bytes = path.bytes.saturating_add(r.bytes);
        if let Some(us) = r.latency_us {
            path.max_us = path.max_us.max(us);
            record(
                path.latency.get_or_insert_with(|| {
                    Box::new(Histogram::new(2).expect("2 significant digits is valid"))
                }),
                us,
            );
            record(
                self.latency.get_or_insert_with(|| {
                    Histogram::new(3).expect("3 significant digits is valid")
                }),
                us,
            );
            self.latency_sum = self.latency_sum.saturating_add(us);
            self.latency_max = self.latency_max.max(us);
            self.note_slow(r, us);
        }
        if let Some(t) = r.time {
            self.first = Some(self.first.map_or(t, |f| f.min(t)));
            self.last = Some(self.last.map_or(t, |l| l.max(t)));
            self.count_minute(t.div_euclid(60), r.bytes);
        }
        // GoAccess's unique visitor: same IP, same day (as the log writes it), same agent;
        // like GoAccess (without --4xx-to-unique-count), client errors do not make one.
        if r.status / 100 == 4 {
            return;
        }
        let day = r
            .time
            .map_or(0, |t| t.saturating_add(r.offset as i64).div_euclid(86400));
        let mut h = rustc_hash::FxHasher::default();
        r.client.hash(&mut h);
        day.hash(&mut h);
        r.user_agent.hash(&mut h);
        let key = hll::mix(h.finish());
        match &mut self.visitors {
            Visitors::Exact(set) => {
                set.insert(key);
            }
            Visitors::Estimated(hll) => hll.insert(key),
        }
    }

    fn count_minute(&mut self, minute: i64, bytes: u64) {
        match &mut self.cur_minute {
            Some((m, c)) if *m == minute => bump(c, bytes),
            cur => {
                if let Some((m, c)) = cur.take() {
                    self.minutes.entry(m).or_default().merge(c);
                }
                *cur = Some((minute, Count { hits: 1, bytes }));
            }
        }
    }

    fn note_slow(&mut self, r: &Record<'_>, us: u64) {
        if self.slowest_n == 0 {
            return;
        }
        if self.slowest.len() >= self.slowest_n {
            let Some(Reverse(min)) = self.slowest.peek() else {
                return;
            };
            if us <= min.latency_us {
                return;
            }
            self.slowest.pop();
        }
        self.slowest.push(Reverse(Slow {
            latency_us: us,
            time: r.time,
            path: r.path.to_string(),
            method: r.method.to_string(),
            status: r.status,
            client: r.client.to_string(),
        }));
    }

    /// Folds the pending minute into the table (call before reading `minutes`).
    pub fn finish(&mut self) {
        if let Some((m, c)) = self.cur_minute.take() {
            self.minutes.entry(m).or_default().merge(c);
        }
    }

    pub fn merge(&mut self, mut other: Stats) {
        other.finish();
        self.finish();
        self.requests = self.requests.saturating_add(other.requests);
        self.invalid = self.invalid.saturating_add(other.invalid);
        self.filtered = self.filtered.saturating_add(other.filtered);
        self.bytes = self.bytes.saturating_add(other.bytes);
        for (a, b) in self.status.iter_mut().zip(other.status.iter()) {
            *a = a.saturating_add(*b);
        }
        self.methods.merge(other.methods);
        self.protocols.merge(other.protocols);
        self.paths.merge(other.paths);
        self.not_found.merge(other.not_found);
        self.clients.merge(other.clients);
        self.referrers.merge(other.referrers);
        self.agents.merge(other.agents);
        self.vhosts.merge(other.vhosts);
        self.crawler_hits = self.crawler_hits.saturating_add(other.crawler_hits);
        match (&mut self.visitors, other.visitors) {
            (Visitors::Exact(a), Visitors::Exact(b)) => a.extend(b),
            (Visitors::Estimated(a), Visitors::Estimated(b)) => a.merge(&b),
            _ => unreachable!("all workers use the same visitor mode"),
        }
        self.first = min_opt(self.first, other.first);
        self.last = self.last.max(other.last);
        for (m, c) in other.minutes {
            self.minutes.entry(m).or_default().merge(c);
        }
        match (&mut self.latency, other.latency) {
            (Some(a), Some(b)) => a.add(&b).expect("auto-resizing histograms add"),
            (a @ None, b) => *a = b,
            _ => {}
        }
        self.latency_sum = self.latency_sum.saturating_add(other.latency_sum);
        self.latency_max = self.latency_max.max(other.latency_max);
        for s in other.slowest {
            self.slowest.push(s);
            if self.slowest.len() > self.slowest_n {
                self.slowest.pop();
            }
        }
        self.invalid_samples.extend(other.invalid_samples);
        self.invalid_samples.sort();
        self.invalid_samples.truncate(INVALID_SAMPLES);
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Records into an auto-resizing histogram (`saturating_record` would clamp instead).
fn record<T: hdrhistogram::Counter>(h: &mut Histogram<T>, us: u64) {
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

fn bump(c: &mut Count, bytes: u64) {
    c.merge(Count { hits: 1, bytes });
}

/// Crawler detection by the words crawlers put in their User-Agent (Googlebot, bingbot,
/// AhrefsBot, YandexBot, Baiduspider, Slurp, facebookexternalhit, ...).
pub fn is_crawler(ua: &str) -> bool {
    const WORDS: [&str; 9] = [
        "bot",
        "crawl",
        "spider",
        "slurp",
        "facebookexternalhit",
        "archiver",
        "zgrab",
        "scanner",
        "headlesschrome",
    ];
    let lower = ua.to_ascii_lowercase();
    WORDS.iter().any(|w| lower.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crawlers() {
        let cases = [
            (
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                true,
            ),
            ("Mozilla/5.0 (compatible; Yahoo! Slurp)", true),
            ("Baiduspider-image", true),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0.0.0 Safari/537.36",
                false,
            ),
            ("curl/8.0", false),
            ("", false),
        ];
        for (ua, want) in cases {
            assert_eq!(is_crawler(ua), want, "{ua}");
        }
    }
}
