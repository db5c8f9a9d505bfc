//! One parsed request: the fields the report needs, borrowed from the line where possible.

use std::borrow::Cow;

use serde_json::Value;

use super::format::{unescape, Field};

/// A parsed log line. Empty strings stand for fields the format does not have.
#[derive(Debug, Default, Clone)]
pub struct Record<'a> {
    pub client: Cow<'a, str>,
    pub user: Cow<'a, str>,
    /// Unix seconds (UTC) and the log's own UTC offset in seconds.
    pub time: Option<i64>,
    pub offset: i32,
    pub method: Cow<'a, str>,
    /// The request path without its query string.
    pub path: Cow<'a, str>,
    pub query: Cow<'a, str>,
    pub protocol: Cow<'a, str>,
    pub status: u16,
    pub bytes: u64,
    pub referrer: Cow<'a, str>,
    pub user_agent: Cow<'a, str>,
    pub vhost: Cow<'a, str>,
    pub latency_us: Option<u64>,
}

impl<'a> Record<'a> {
    /// Stores one field's text; `None` when the text is not valid for the field.
    pub fn set(&mut self, field: Field, text: &'a str) -> Option<()> {
        match field {
            Field::Client => self.client = Cow::Borrowed(text),
            Field::User => self.user = Cow::Borrowed(text),
            Field::Request => self.set_request(text),
            Field::Method => self.method = Cow::Borrowed(text),
            Field::UrlPath => self.path = unescape(text),
            Field::Query => self.query = Cow::Borrowed(text),
            Field::Protocol => self.protocol = Cow::Borrowed(text),
            Field::Status => self.status = parse_status(text)?,
            Field::Bytes => {
                self.bytes = if text == "-" { 0 } else { parse_u64(text)? };
            }
            Field::Referer => self.referrer = unescape(text),
            Field::UserAgent => self.user_agent = unescape(text),
            Field::VHost => self.vhost = Cow::Borrowed(text),
            Field::DurationUs => self.latency_us = Some(parse_u64(text)?),
            Field::DurationMs => self.latency_us = Some(parse_u64(text)?.saturating_mul(1000)),
            Field::DurationS => self.latency_us = Some(seconds_to_us(text.parse().ok()?)?),
            Field::Time | Field::Skip => {}
        }
        Some(())
    }

    /// Stores a request line `METHOD URI PROTOCOL`.
    pub fn set_request(&mut self, text: &'a str) {
        let (method, uri, proto) = split_request(text);
        self.method = Cow::Borrowed(method);
        self.protocol = Cow::Borrowed(proto);
        self.set_uri(uri);
    }

    fn set_uri(&mut self, uri: &'a str) {
        match uri.find('?') {
            Some(q) => {
                self.path = unescape(&uri[..q]);
                self.query = Cow::Borrowed(&uri[q + 1..]);
            }
            None => self.path = unescape(uri),
        }
    }
}

/// Splits a request line into method, URI and protocol. A line that does not split
/// (Apache logs `-` for a request it could not parse) is all URI, method and protocol `-`.
fn split_request(text: &str) -> (&str, &str, &str) {
    let (Some(first), Some(last)) = (text.find(' '), text.rfind(' ')) else {
        return ("-", text, "-");
    };
    if last > first && text[last + 1..].starts_with("HTTP/") {
        (&text[..first], &text[first + 1..last], &text[last + 1..])
    } else {
        (&text[..first], &text[first + 1..], "-")
    }
}

fn parse_status(text: &str) -> Option<u16> {
    let b = text.as_bytes();
    if b.len() != 3 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((b[0] - b'0') as u16 * 100 + (b[1] - b'0') as u16 * 10 + (b[2] - b'0') as u16)
}

fn parse_u64(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn seconds_to_us(secs: f64) -> Option<u64> {
    (secs.is_finite() && secs >= 0.0).then(|| (secs * 1e6).round() as u64)
}

/// Parses Apache's `%t` body, `10/Oct/2000:13:55:36 -0700`, to (UTC unix seconds, offset).
/// Written by hand: it runs once per line and chrono's format parser is several times slower.
pub fn parse_clf_time(s: &str) -> Option<(i64, i32)> {
    let b = s.as_bytes();
    if b.len() != 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[20] != b' ' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (c - b'0') as i64;
        }
        Some(v)
    };
    let day = num(0..2)?;
    let month = match [b[3], b[4], b[5]] {
        [b'J', b'a', b'n'] => 1,
        [b'F', b'e', b'b'] => 2,
        [b'M', b'a', b'r'] => 3,
        [b'A', b'p', b'r'] => 4,
        [b'M', b'a', b'y'] => 5,
        [b'J', b'u', b'n'] => 6,
        [b'J', b'u', b'l'] => 7,
        [b'A', b'u', b'g'] => 8,
        [b'S', b'e', b'p'] => 9,
        [b'O', b'c', b't'] => 10,
        [b'N', b'o', b'v'] => 11,
        [b'D', b'e', b'c'] => 12,
        _ => return None,
    };
    let year = num(7..11)?;
    let (h, m, sec) = (num(12..14)?, num(15..17)?, num(18..20)?);
    let sign = match b[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (oh, om) = (num(22..24)?, num(24..26)?);
    let offset = sign * (oh * 3600 + om * 60);
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 || oh > 23 || om > 59 {
        return None;
    }
    let local = days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + sec;
    Some((local - offset, offset as i32))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Parses one JSON line: httpd-core's json format, Caddy's and nginx's usual keys.
pub fn from_json(line: &str) -> Option<Record<'static>> {
    let v: Value = serde_json::from_str(line).ok()?;
    let obj = v.as_object()?;
    // Caddy nests the request; its header values are lists.
    let req = obj.get("request").and_then(Value::as_object);
    let get = |keys: &[&str]| -> Option<&Value> {
        keys.iter()
            .find_map(|k| obj.get(*k).or_else(|| req.and_then(|r| r.get(*k))))
            .filter(|v| !v.is_null())
    };
    let header = |name: &str| -> Option<String> {
        let h = req?.get("headers")?.as_object()?;
        let (_, v) = h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))?;
        match v {
            Value::Array(a) => a.first()?.as_str().map(str::to_string),
            Value::String(s) => Some(s.clone()),
            _ => None,
        }
    };
    let text = |keys: &[&str]| -> Option<String> {
        get(keys).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let mut rec = Record::default();
    let status = get(&["status", "status_code", "code"])?;
    rec.status = match status {
        Value::Number(n) => u16::try_from(n.as_u64()?).ok()?,
        Value::String(s) => parse_status(s)?,
        _ => return None,
    };
    if let Some(Value::String(line)) = get(&["request"]) {
        let (method, uri, proto) = split_request(line);
        rec.method = method.to_string().into();
        rec.protocol = proto.to_string().into();
        set_owned_uri(&mut rec, uri);
    }
    if let Some(m) = text(&["method", "request_method"]) {
        rec.method = m.into();
    }
    if let Some(uri) = text(&["uri", "request_uri", "url", "path"]) {
        set_owned_uri(&mut rec, &uri);
    }
    if rec.path.is_empty() {
        return None;
    }
    if let Some(p) = text(&["protocol", "proto", "server_protocol"]) {
        rec.protocol = p.into();
    }
    rec.client = text(&[
        "client",
        "remote_addr",
        "client_ip",
        "remote_ip",
        "ip",
        "remote_host",
    ])
    .unwrap_or_default()
    .into();
    rec.user = text(&["user", "remote_user", "user_id"])
        .unwrap_or_default()
        .into();
    rec.vhost = text(&["vhost", "server_name", "http_host", "host"])
        .unwrap_or_default()
        .into();
    rec.bytes = get(&[
        "bytes",
        "bytes_sent",
        "body_bytes_sent",
        "size",
        "response_bytes",
    ])
    .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
    .unwrap_or(0);
    rec.referrer = text(&["referer", "referrer", "http_referer"])
        .or_else(|| header("referer"))
        .unwrap_or_default()
        .into();
    rec.user_agent = text(&["user_agent", "http_user_agent", "ua"])
        .or_else(|| header("user-agent"))
        .unwrap_or_default()
        .into();
    rec.latency_us = json_latency(obj);
    if let Some(t) = get(&[
        "time",
        "timestamp",
        "ts",
        "time_iso8601",
        "@timestamp",
        "time_local",
    ]) {
        let (secs, offset) = json_time(t)?;
        rec.time = Some(secs);
        rec.offset = offset;
    }
    Some(rec)
}

fn set_owned_uri(rec: &mut Record<'static>, uri: &str) {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    rec.path = path.to_string().into();
    rec.query = query.to_string().into();
}

fn json_latency(obj: &serde_json::Map<String, Value>) -> Option<u64> {
    let num = |k: &str| -> Option<f64> {
        let v = obj.get(k)?;
        v.as_f64().or_else(|| v.as_str()?.parse().ok())
    };
    if let Some(us) = num("duration_us").or_else(|| num("latency_us")) {
        return Some(us.max(0.0).round() as u64);
    }
    if let Some(ms) = num("duration_ms").or_else(|| num("latency_ms")) {
        return Some((ms.max(0.0) * 1000.0).round() as u64);
    }
    // nginx's $request_time and Caddy's duration are seconds.
    let secs = num("request_time").or_else(|| num("duration"))?;
    seconds_to_us(secs)
}

fn json_time(v: &Value) -> Option<(i64, i32)> {
    match v {
        Value::Number(n) => {
            let f = n.as_f64()?;
            // Milliseconds when too large to be seconds.
            let secs = if f > 1e11 { f / 1000.0 } else { f };
            // Years 1 to 9999, as a `%t` can write: anything else is not a time of a request.
            (-62_135_596_800.0..=253_402_300_799.0)
                .contains(&secs)
                .then_some((secs.floor() as i64, 0))
        }
        Value::String(s) => {
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                return Some((t.timestamp(), t.offset().local_minus_utc()));
            }
            parse_clf_time(s.trim_start_matches('[').trim_end_matches(']'))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_times() {
        let cases: &[(&str, Option<(i64, i32)>)] = &[
            ("01/Jan/1970:00:00:00 +0000", Some((0, 0))),
            ("10/Oct/2000:13:55:36 -0700", Some((971211336, -25200))),
            ("29/Feb/2024:23:59:59 +0000", Some((1709251199, 0))),
            ("10/Oct/2000:13:55:36", None),
            // Found by the log_line fuzzer: an offset of 99h99m is not a UTC offset.
            ("31/Dec/9999:23:59:59 +9999", None),
            ("10/Oct/2000:13:55:36 +2360", None),
            ("10/Xyz/2000:13:55:36 +0000", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_clf_time(s), *want, "{s}");
        }
    }

    #[test]
    fn json_lines() {
        let caddy = r#"{"level":"info","ts":1740787200.5,"msg":"handled request","request":{"remote_ip":"::1","proto":"HTTP/2.0","method":"GET","host":"a.test","uri":"/x?y=1","headers":{"User-Agent":["curl/8"],"Referer":["http://r/"]}},"duration":0.0125,"size":42,"status":503}"#;
        let r = from_json(caddy).unwrap();
        assert_eq!(
            (&*r.client, &*r.method, &*r.path, r.status, r.bytes),
            ("::1", "GET", "/x", 503, 42)
        );
        assert_eq!(
            (&*r.user_agent, &*r.referrer, &*r.vhost),
            ("curl/8", "http://r/", "a.test")
        );
        assert_eq!((r.latency_us, r.time), (Some(12500), Some(1740787200)));
        let nginx = r#"{"remote_addr":"1.2.3.4","time_local":"01/Mar/2025:00:00:00 +0000","request":"POST /api HTTP/1.1","status":"201","body_bytes_sent":"7","http_referer":"","http_user_agent":"ua","request_time":"0.002"}"#;
        let r = from_json(nginx).unwrap();
        assert_eq!(
            (&*r.method, &*r.path, r.status, r.bytes, r.latency_us),
            ("POST", "/api", 201, 7, Some(2000))
        );
        assert_eq!(r.time, Some(1740787200));
        assert!(from_json(r#"{"msg":"no status"}"#).is_none());
        assert!(from_json("not json").is_none());
    }
}
