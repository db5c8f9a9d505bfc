//! Which records the report counts: `--since/--until`, `--status`, `--path`, `--vhost`,
//! `--exclude-ip`, `--no-crawlers`.

use std::net::IpAddr;

use ipnet::IpNet;
use regex::Regex;

use super::error::StatsError;
use super::record::Record;

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Inclusive status ranges; empty means all.
    pub status: Vec<(u16, u16)>,
    pub path: Option<Regex>,
    pub vhosts: Vec<String>,
    pub exclude: Vec<IpNet>,
    pub no_crawlers: bool,
}

impl Filter {
    /// Whether the record passes every filter except the crawler one (which needs the
    /// agent table, see `aggregate`).
    pub fn accepts(&self, r: &Record<'_>) -> bool {
        if self.since.is_some() || self.until.is_some() {
            let Some(t) = r.time else { return false };
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t >= u) {
                return false;
            }
        }
        if !self.status.is_empty()
            && !self
                .status
                .iter()
                .any(|&(lo, hi)| (lo..=hi).contains(&r.status))
        {
            return false;
        }
        if let Some(re) = &self.path {
            if !re.is_match(&r.path) {
                return false;
            }
        }
        if !self.vhosts.is_empty() {
            let host = r.vhost.split(':').next().unwrap_or("");
            if !self
                .vhosts
                .iter()
                .any(|v| v.eq_ignore_ascii_case(host) || v.eq_ignore_ascii_case(&r.vhost))
            {
                return false;
            }
        }
        if !self.exclude.is_empty() {
            if let Ok(ip) = r.client.parse::<IpAddr>() {
                if self.exclude.iter().any(|net| net.contains(&ip)) {
                    return false;
                }
            }
        }
        true
    }
}

/// Parses `--status`: `5xx`, `404`, `400-499`, comma-separated.
pub fn parse_status(arg: &str) -> Result<Vec<(u16, u16)>, StatsError> {
    let bad = |reason: &str| StatsError::Usage {
        flag: "--status",
        value: arg.to_string(),
        reason: reason.to_string(),
    };
    let mut out = Vec::new();
    for part in arg.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let lower = part.to_ascii_lowercase();
        if let Some(class) = lower.strip_suffix("xx") {
            let d: u16 = class
                .parse()
                .ok()
                .filter(|d| (1..=5).contains(d))
                .ok_or_else(|| bad("expected a class like 5xx"))?;
            out.push((d * 100, d * 100 + 99));
        } else if let Some((lo, hi)) = part.split_once('-') {
            let lo: u16 = lo
                .parse()
                .map_err(|_| bad("expected a range like 400-499"))?;
            let hi: u16 = hi
                .parse()
                .map_err(|_| bad("expected a range like 400-499"))?;
            out.push((lo, hi));
        } else {
            let c: u16 = part
                .parse()
                .map_err(|_| bad("expected a code, a class like 5xx or a range"))?;
            out.push((c, c));
        }
    }
    if out.is_empty() {
        return Err(bad("empty"));
    }
    Ok(out)
}

/// Parses `--since/--until`: a duration back from `now` (`90s`, `30m`, `24h`, `7d`) or an
/// absolute time (RFC 3339, `YYYY-MM-DD[ T]HH:MM[:SS]` in UTC, or `YYYY-MM-DD`).
pub fn parse_time(flag: &'static str, arg: &str, now: i64) -> Result<i64, StatsError> {
    let bad = || StatsError::Usage {
        flag,
        value: arg.to_string(),
        reason: "not a time or a duration".to_string(),
    };
    let s = arg.trim();
    if let Some(unit) = s.chars().last().filter(|c| c.is_ascii_alphabetic()) {
        if let Ok(n) = s[..s.len() - 1].parse::<i64>() {
            let secs = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86400,
                'w' => 7 * 86400,
                _ => return Err(bad()),
            };
            return Ok(now - n * secs);
        }
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(t.and_utc().timestamp());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp());
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        type Ranges = Option<Vec<(u16, u16)>>;
        let cases: &[(&str, Ranges)] = &[
            ("5xx", Some(vec![(500, 599)])),
            ("404,4XX", Some(vec![(404, 404), (400, 499)])),
            ("200-299", Some(vec![(200, 299)])),
            ("6xx", None),
            ("abc", None),
            ("", None),
        ];
        for (arg, want) in cases {
            assert_eq!(parse_status(arg).ok(), *want, "{arg}");
        }
    }

    #[test]
    fn times() {
        let now = 1_000_000;
        let cases: &[(&str, Option<i64>)] = &[
            ("24h", Some(now - 86400)),
            ("30m", Some(now - 1800)),
            ("2d", Some(now - 172800)),
            ("1970-01-02", Some(86400)),
            ("1970-01-01T00:01:00Z", Some(60)),
            ("1970-01-01 00:00:10", Some(10)),
            ("1970-01-01T01:00:00+01:00", Some(0)),
            ("tomorrow", None),
            ("5y", None),
        ];
        for (arg, want) in cases {
            assert_eq!(parse_time("--since", arg, now).ok(), *want, "{arg}");
        }
    }
}
