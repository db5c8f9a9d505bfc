//! Black-box tests of `httpd-logrotate --stats`: logs generated here with known ground
//! truth (every field, odd user agents, escaped quotes, IPv6, `-` sizes, invalid lines),
//! checked number by number against the `--json` report; GoAccess on the same log; the
//! HTML page dumped by headless Chromium.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::process::Command;

use httpd_blackbox::*;
use serde_json::Value;

/// A small deterministic generator (xorshift64*), so every run sees the same log.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// One request as the test means it (unescaped); rendered into each log format below.
#[derive(Clone, Debug)]
struct Req {
    ip: String,
    user: String,
    time: i64,
    method: String,
    path: String,
    query: String,
    proto: String,
    status: u16,
    bytes: Option<u64>,
    referrer: String,
    ua: String,
    vhost: String,
    latency_us: u64,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Apache's `%t`: `[01/Mar/2025:10:00:00 +0100]` in the given UTC offset.
fn clf_time(t: i64, offset_min: i64) -> String {
    let local = t + offset_min * 60;
    let days = local.div_euclid(86400);
    let secs = local.rem_euclid(86400);
    // civil_from_days (Howard Hinnant).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    let sign = if offset_min < 0 { '-' } else { '+' };
    let o = offset_min.abs();
    format!(
        "[{:02}/{}/{}:{:02}:{:02}:{:02} {}{:02}{:02}]",
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        sign,
        o / 60,
        o % 60
    )
}

/// Apache's escaping of `"` and `\` inside quoted fields (mod_log_config).
fn apache_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

impl Req {
    fn uri(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }
    fn size(&self) -> String {
        self.bytes.map_or("-".into(), |b| b.to_string())
    }
    fn common(&self) -> String {
        format!(
            "{} - {} {} \"{} {} {}\" {} {}",
            self.ip,
            self.user,
            clf_time(self.time, 60),
            self.method,
            apache_escape(&self.uri()),
            self.proto,
            self.status,
            self.size()
        )
    }
    fn combined(&self) -> String {
        format!(
            "{} \"{}\" \"{}\"",
            self.common(),
            apache_escape(&self.referrer),
            apache_escape(&self.ua)
        )
    }
    fn vcombined(&self) -> String {
        format!("{}:443 {}", self.vhost, self.combined())
    }
    fn with_latency(&self) -> String {
        format!("{} {}", self.combined(), self.latency_us)
    }
    fn json(&self) -> String {
        serde_json::json!({
            "remote_addr": self.ip,
            "time_local": clf_time(self.time, 0).trim_matches(|c| c == '[' || c == ']'),
            "request": format!("{} {} {}", self.method, self.uri(), self.proto),
            "status": self.status,
            "body_bytes_sent": self.bytes.unwrap_or(0),
            "http_referer": self.referrer,
            "http_user_agent": self.ua,
            "host": self.vhost,
            "request_time": self.latency_us as f64 / 1e6,
        })
        .to_string()
    }
}

const UAS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.5.0",
    "odd \"quoted\" agent \\ with backslash",
    "Ünïcödé-agent/1.0 (テスト)",
    "-",
    "",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
];

/// `n` requests from `start` on, one every few seconds, every field varied.
fn generate(n: usize, seed: u64, start: i64) -> Vec<Req> {
    let mut rng = Rng(seed);
    let ips: Vec<String> = (0..40)
        .map(|i| {
            if i % 4 == 0 {
                format!("2001:db8::{:x}", i + 1)
            } else {
                format!("10.{}.{}.{}", i % 3, i / 3, i + 1)
            }
        })
        .collect();
    let paths = [
        "/",
        "/index.html",
        "/a/b.css",
        "/api/items",
        "/api/users",
        "/missing",
        "/x y",
        "/img/logo.png",
        "/quote\"d",
        "/deep/path/with/many/segments",
    ];
    let mut t = start;
    (0..n)
        .map(|_| {
            t += rng.below(7) as i64;
            let status = *rng.pick(&[200, 200, 200, 200, 304, 301, 404, 404, 500, 503, 201, 206]);
            let path = rng.pick(&paths).to_string();
            Req {
                ip: rng.pick(&ips).clone(),
                user: rng.pick(&["-", "alice", "bob"]).to_string(),
                time: t,
                method: rng
                    .pick(&["GET", "GET", "GET", "POST", "HEAD", "PUT", "DELETE"])
                    .to_string(),
                query: if rng.below(4) == 0 {
                    format!("q={}", rng.below(100))
                } else {
                    String::new()
                },
                path,
                proto: rng
                    .pick(&["HTTP/1.1", "HTTP/1.1", "HTTP/2.0", "HTTP/1.0"])
                    .to_string(),
                status,
                bytes: if status == 304 || rng.below(10) == 0 {
                    None
                } else {
                    Some(rng.below(50_000))
                },
                referrer: rng
                    .pick(&[
                        "-",
                        "https://example.com/",
                        "https://search.test/?q=a\"b",
                        "http://[::1]/x",
                    ])
                    .to_string(),
                ua: rng.pick(UAS).to_string(),
                vhost: rng
                    .pick(&["a.example", "b.example", "c.example"])
                    .to_string(),
                latency_us: 50 + rng.below(1000) * rng.below(1000),
            }
        })
        .collect()
}

const INVALID: &[&str] = &[
    "this is not a log line",
    "10.0.0.1 - - [01/Mar/2025:00:00:00 +0000] \"GET / HTTP/1.1\" abc 12 \"-\" \"-\"",
    "10.0.0.1 - - [not a time] \"GET / HTTP/1.1\" 200 12 \"-\" \"-\"",
    "\u{1}\u{2}binary\u{7f}",
];

/// Renders requests with `render` and mixes in invalid lines every `every` lines; returns
/// the text and the 1-based line numbers of the invalid ones.
fn render(reqs: &[Req], render: fn(&Req) -> String, every: usize) -> (String, Vec<u64>) {
    let mut out = String::new();
    let mut bad = Vec::new();
    let mut line = 0u64;
    for (i, r) in reqs.iter().enumerate() {
        if every > 0 && i % every == every / 2 {
            line += 1;
            out.push_str(INVALID[(i / every) % INVALID.len()]);
            out.push('\n');
            bad.push(line);
        }
        line += 1;
        out.push_str(&render(r));
        out.push('\n');
    }
    (out, bad)
}

/// Runs `--stats --json` with extra args on the given files (or stdin) and parses the report.
fn stats_json(dir: &std::path::Path, args: &[&str], stdin: Option<&[u8]>) -> Value {
    let mut cmd = Command::new(bin("httpd-logrotate"));
    cmd.current_dir(dir).args(["--stats", "--json"]).args(args);
    let run = run_with(&mut cmd, stdin);
    assert_eq!(run.status, Some(0), "{run:?}");
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {run:?}"))
}

fn count_by<K: Ord>(reqs: &[Req], key: impl Fn(&Req) -> K) -> BTreeMap<K, u64> {
    let mut m = BTreeMap::new();
    for r in reqs {
        *m.entry(key(r)).or_insert(0) += 1;
    }
    m
}

/// A JSON object of counts as a map.
fn obj_counts(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("count")))
        .collect()
}

/// A JSON list of rows as `key field -> (hits, bytes)`.
fn rows(v: &Value, key: &str) -> BTreeMap<String, (u64, u64)> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|r| {
            (
                r[key].as_str().expect("key").to_string(),
                (
                    r["hits"].as_u64().expect("hits"),
                    r["bytes"].as_u64().unwrap_or(0),
                ),
            )
        })
        .collect()
}

/// GoAccess's unique visitors: distinct (client, day, agent) over requests that were not
/// client errors.
fn visitors(reqs: &[Req], offset_s: i64) -> u64 {
    reqs.iter()
        .filter(|r| r.status / 100 != 4)
        .map(|r| {
            (
                r.ip.clone(),
                (r.time + offset_s).div_euclid(86400),
                r.ua.clone(),
            )
        })
        .collect::<HashSet<_>>()
        .len() as u64
}

/// Checks every count of a combined-format report against the requests.
fn check_combined(report: &Value, reqs: &[Req], invalid_lines: &[u64]) {
    let total_bytes: u64 = reqs.iter().map(|r| r.bytes.unwrap_or(0)).sum();
    assert_eq!(report["requests"], reqs.len() as u64);
    assert_eq!(report["invalid"], invalid_lines.len() as u64);
    assert_eq!(report["bytes"], total_bytes);
    let status = count_by(reqs, |r| r.status.to_string());
    assert_eq!(obj_counts(&report["status"]), status);
    let classes = count_by(reqs, |r| format!("{}xx", r.status / 100));
    assert_eq!(obj_counts(&report["status_classes"]), classes);
    assert_eq!(
        obj_counts(&report["methods"]),
        count_by(reqs, |r| r.method.clone())
    );
    assert_eq!(
        obj_counts(&report["protocols"]),
        count_by(reqs, |r| r.proto.clone())
    );

    let mut paths: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut clients: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut not_found: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for r in reqs {
        let b = r.bytes.unwrap_or(0);
        for (map, key) in [(&mut paths, &r.path), (&mut clients, &r.ip)] {
            let e = map.entry(key.clone()).or_default();
            e.0 += 1;
            e.1 += b;
        }
        if r.status == 404 {
            not_found.entry(r.path.clone()).or_default().0 += 1;
        }
    }
    assert_eq!(rows(&report["top_paths"], "path"), paths);
    assert_eq!(rows(&report["top_clients"], "client"), clients);
    assert_eq!(rows(&report["top_404"], "path"), not_found);
    let referrers = count_by(
        &reqs
            .iter()
            .filter(|r| r.referrer != "-")
            .cloned()
            .collect::<Vec<_>>(),
        |r| r.referrer.clone(),
    );
    let got: BTreeMap<String, u64> = rows(&report["top_referrers"], "referrer")
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    assert_eq!(got, referrers);
    let agents: BTreeMap<String, u64> = report["top_user_agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| {
            (
                a["user_agent"].as_str().unwrap().to_string(),
                a["hits"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(agents, count_by(reqs, |r| r.ua.clone()));
    let crawlers = reqs.iter().filter(|r| r.ua.contains("bot")).count() as u64;
    assert_eq!(report["crawlers"]["hits"], crawlers);
    for a in report["top_user_agents"].as_array().unwrap() {
        let ua = a["user_agent"].as_str().unwrap();
        assert_eq!(a["crawler"], ua.contains("bot"), "{ua}");
    }
    // Days as the log writes them (+0100).
    assert_eq!(report["unique_visitors"], visitors(reqs, 3600));
    assert_eq!(report["unique_clients"], clients.len() as u64);
    let first = reqs.iter().map(|r| r.time).min().unwrap();
    let last = reqs.iter().map(|r| r.time).max().unwrap();
    assert_eq!(report["time"]["seconds"], last - first);
    let series_hits: u64 = report["traffic"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["hits"].as_u64().unwrap())
        .sum();
    assert_eq!(series_hits, reqs.len() as u64);
    let mut per_minute: HashMap<i64, u64> = HashMap::new();
    for r in reqs {
        *per_minute.entry(r.time.div_euclid(60)).or_default() += 1;
    }
    assert_eq!(
        report["traffic"]["peak"]["hits"],
        *per_minute.values().max().unwrap()
    );
    let lines: Vec<u64> = report["invalid_samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["line"].as_u64().unwrap())
        .collect();
    let want: Vec<u64> = invalid_lines.iter().take(5).copied().collect();
    assert_eq!(lines, want);
    assert!(
        report.get("latency_us").is_none(),
        "combined has no latency"
    );
}

const START: i64 = 1_740_787_200; // 2025-03-01T00:00:00Z

#[test]
fn combined_log_counts_are_exact_from_file_gz_and_stdin() {
    let sb = Sandbox::new();
    // Large enough for several 1 MiB chunks, so parallel parsing and line numbers across
    // chunk boundaries are exercised.
    let reqs = generate(16_000, 7, START);
    let (text, bad) = render(&reqs, Req::combined, 997);
    let log = sb.write("access.log", &text);
    let top = ["--top", "1000", "--exact", "--threads", "3"];

    let from_file = stats_json(
        sb.path(),
        &[&top[..], &[log.to_str().unwrap()]].concat(),
        None,
    );
    check_combined(&from_file, &reqs, &bad);
    assert_eq!(from_file["format"], "combined", "auto-detected");
    assert!(from_file["estimates"].as_array().unwrap().is_empty());

    let mut gz = flate2_free_gzip(text.as_bytes());
    let gz_path = sb.write("access.log.gz", &gz);
    let from_gz = stats_json(
        sb.path(),
        &[&top[..], &[gz_path.to_str().unwrap()]].concat(),
        None,
    );
    check_combined(&from_gz, &reqs, &bad);

    let from_stdin = stats_json(
        sb.path(),
        &[&top[..], &["--format", "combined"]].concat(),
        Some(text.as_bytes()),
    );
    check_combined(&from_stdin, &reqs, &bad);
    gz.clear();

    // Two files merged: every count doubles, line numbers are per file.
    let both = stats_json(
        sb.path(),
        &[
            &top[..],
            &[log.to_str().unwrap(), gz_path.to_str().unwrap()],
        ]
        .concat(),
        None,
    );
    assert_eq!(both["requests"], 2 * reqs.len() as u64);
    assert_eq!(both["invalid"], 2 * bad.len() as u64);
    assert_eq!(both["unique_visitors"], from_file["unique_visitors"]);
}

/// Gzips with the system `gzip` (the test crate has no compression dependency).
fn flate2_free_gzip(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().expect("gzip output");
    writer.join().unwrap().expect("write to gzip");
    assert!(out.status.success());
    out.stdout
}

#[test]
fn top_n_ranks_by_hits_and_unique_visitors_estimate_is_close() {
    let sb = Sandbox::new();
    let reqs = generate(3000, 11, START);
    let (text, _) = render(&reqs, Req::combined, 0);
    let log = sb.write("a.log", &text);
    let r = stats_json(sb.path(), &["--top", "3", log.to_str().unwrap()], None);
    let mut want: Vec<(String, u64)> = count_by(&reqs, |r| r.path.clone()).into_iter().collect();
    want.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let got: Vec<(String, u64)> = r["top_paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap().to_string(),
                p["hits"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want[..3].to_vec());
    let exact = visitors(&reqs, 3600) as f64;
    let est = r["unique_visitors"].as_u64().unwrap() as f64;
    assert!(
        (est - exact).abs() / exact < 0.03,
        "estimate {est} vs {exact}"
    );
    assert!(r["estimates"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "unique_visitors"));
}

/// The nearest-rank percentile.
fn percentile(sorted: &[u64], q: f64) -> u64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

fn within_1pct(got: &Value, want: u64, what: &str) {
    let got = got.as_u64().unwrap_or_else(|| panic!("{what}: {got}"));
    let err = (got as f64 - want as f64).abs() / (want as f64).max(1.0);
    assert!(
        err <= 0.01,
        "{what}: got {got}, want {want} (error {err:.4})"
    );
}

#[test]
fn latency_percentiles_within_one_percent_max_and_slowest_exact() {
    let sb = Sandbox::new();
    let reqs = generate(5000, 3, START);
    let (text, _) = render(&reqs, Req::with_latency, 0);
    let log = sb.write("lat.log", &text);
    for args in [
        vec![
            "--format",
            r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D"#,
        ],
        vec![
            "--format",
            r#"%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\" %{us}T"#,
        ],
        vec![],
    ] {
        let mut all = args.clone();
        all.extend(["--top", "5", log.to_str().unwrap()]);
        let r = stats_json(sb.path(), &all, None);
        assert_eq!(r["requests"], 5000, "{args:?}");
        let mut lat: Vec<u64> = reqs.iter().map(|r| r.latency_us).collect();
        lat.sort_unstable();
        let l = &r["latency_us"];
        assert_eq!(l["max"], *lat.last().unwrap());
        for (k, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
            within_1pct(&l[k], percentile(&lat, q), k);
        }
        // Per path, for the top paths.
        for p in r["top_paths"].as_array().unwrap() {
            let path = p["path"].as_str().unwrap();
            let mut pl: Vec<u64> = reqs
                .iter()
                .filter(|r| r.path == path)
                .map(|r| r.latency_us)
                .collect();
            pl.sort_unstable();
            assert_eq!(p["latency_us"]["max"], *pl.last().unwrap(), "{path}");
            for (k, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
                within_1pct(
                    &p["latency_us"][k],
                    percentile(&pl, q),
                    &format!("{path} {k}"),
                );
            }
        }
        let slowest: Vec<u64> = r["slowest"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["latency_us"].as_u64().unwrap())
            .collect();
        let want: Vec<u64> = lat.iter().rev().take(5).copied().collect();
        assert_eq!(slowest, want);
    }
    // %T: whole seconds.
    let secs: String = reqs
        .iter()
        .map(|r| format!("{} {}\n", r.common(), r.latency_us / 100_000))
        .collect();
    let log = sb.write("secs.log", &secs);
    let r = stats_json(
        sb.path(),
        &[
            "--format",
            r#"%h %l %u %t "%r" %>s %b %T"#,
            log.to_str().unwrap(),
        ],
        None,
    );
    let max = reqs.iter().map(|r| r.latency_us / 100_000).max().unwrap();
    assert_eq!(r["latency_us"]["max"], max * 1_000_000);
}

#[test]
fn common_vcombined_and_json_lines_detected_and_explicit() {
    let sb = Sandbox::new();
    let reqs = generate(1200, 5, START);
    let total_bytes: u64 = reqs.iter().map(|r| r.bytes.unwrap_or(0)).sum();
    type Case = (&'static str, fn(&Req) -> String, &'static str);
    let cases: [Case; 3] = [
        ("common", Req::common, "common"),
        ("vcombined", Req::vcombined, "vcombined"),
        ("json", Req::json, "json"),
    ];
    for (name, f, detected) in cases {
        let (text, bad) = render(&reqs, f, 101);
        let log = sb.write(&format!("{name}.log"), &text);
        for explicit in [true, false] {
            let mut args = vec!["--top", "100", "--exact"];
            if explicit {
                args.extend(["--format", name]);
            }
            args.push(log.to_str().unwrap());
            let r = stats_json(sb.path(), &args, None);
            assert_eq!(
                r["requests"],
                reqs.len() as u64,
                "{name} explicit={explicit}"
            );
            assert_eq!(r["invalid"], bad.len() as u64, "{name}");
            assert_eq!(r["bytes"], total_bytes, "{name}");
            assert_eq!(
                obj_counts(&r["status"]),
                count_by(&reqs, |r| r.status.to_string()),
                "{name}"
            );
            let paths: BTreeMap<String, u64> = rows(&r["top_paths"], "path")
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            assert_eq!(paths, count_by(&reqs, |r| r.path.clone()), "{name}");
            if !explicit {
                assert_eq!(r["format"], detected);
            }
            if name != "common" {
                let vh: BTreeMap<String, u64> = rows(&r["vhosts"], "vhost")
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                assert_eq!(vh, count_by(&reqs, |r| r.vhost.clone()), "{name}");
                let agents: BTreeMap<String, u64> = r["top_user_agents"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| {
                        (
                            a["user_agent"].as_str().unwrap().to_string(),
                            a["hits"].as_u64().unwrap(),
                        )
                    })
                    .collect();
                assert_eq!(agents, count_by(&reqs, |r| r.ua.clone()), "{name}");
            }
            if name == "json" {
                let max = reqs.iter().map(|r| r.latency_us).max().unwrap();
                assert_eq!(r["latency_us"]["max"], max);
                assert_eq!(r["unique_visitors"], visitors(&reqs, 0));
            }
        }
    }
}

#[test]
fn filters_select_exactly_the_matching_requests() {
    let sb = Sandbox::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // Three days ending about an hour ago: relative times cut somewhere in the middle.
    let mut reqs = generate(4000, 9, 0);
    let span = reqs.last().unwrap().time;
    for r in &mut reqs {
        r.time = now - 3600 - 3 * 86400 + r.time * (3 * 86400) / span.max(1);
    }
    let (text, _) = render(&reqs, Req::vcombined, 0);
    let log = sb.write("v.log", &text);
    let log = log.to_str().unwrap();
    type Pred = Box<dyn Fn(&Req) -> bool>;
    let r = stats_json(sb.path(), &["--bucket", "1d", log], None);
    assert_eq!(r["traffic"]["bucket"], "1d");
    assert!((3..=5).contains(&r["traffic"]["series"].as_array().unwrap().len()));
    let cases: Vec<(Vec<String>, Pred)> = vec![
        (
            vec!["--since".into(), "24h".into()],
            Box::new(move |r| r.time >= now - 86400),
        ),
        (
            vec!["--until".into(), "36h".into()],
            Box::new(move |r| r.time < now - 36 * 3600),
        ),
        (
            vec![
                "--since".into(),
                "48h".into(),
                "--until".into(),
                "24h".into(),
            ],
            Box::new(move |r| r.time >= now - 48 * 3600 && r.time < now - 86400),
        ),
        (
            vec!["--status".into(), "5xx".into()],
            Box::new(|r| r.status >= 500),
        ),
        (
            vec!["--status".into(), "404,301".into()],
            Box::new(|r| r.status == 404 || r.status == 301),
        ),
        (
            vec!["--path".into(), "^/api/".into()],
            Box::new(|r| r.path.starts_with("/api/")),
        ),
        (
            vec!["--vhost".into(), "b.example".into()],
            Box::new(|r| r.vhost == "b.example"),
        ),
        (
            vec![
                "--exclude-ip".into(),
                "10.1.0.0/16".into(),
                "--exclude-ip".into(),
                "2001:db8::/120".into(),
            ],
            Box::new(|r| !(r.ip.starts_with("10.1.") || r.ip.starts_with("2001:db8::"))),
        ),
        (
            vec!["--no-crawlers".into()],
            Box::new(|r| !r.ua.contains("bot")),
        ),
        (
            vec![
                "--status".into(),
                "2xx".into(),
                "--no-crawlers".into(),
                "--path".into(),
                "css|png".into(),
            ],
            Box::new(|r| {
                r.status / 100 == 2
                    && !r.ua.contains("bot")
                    && (r.path.contains("css") || r.path.contains("png"))
            }),
        ),
    ];
    for (args, pred) in cases {
        let want: Vec<Req> = reqs.iter().filter(|r| pred(r)).cloned().collect();
        assert!(
            !want.is_empty() && want.len() < reqs.len(),
            "{args:?} selects a strict subset"
        );
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(["--top", "100", log]);
        let r = stats_json(sb.path(), &all, None);
        assert_eq!(r["requests"], want.len() as u64, "{args:?}");
        assert_eq!(r["filtered"], (reqs.len() - want.len()) as u64, "{args:?}");
        let bytes: u64 = want.iter().map(|r| r.bytes.unwrap_or(0)).sum();
        assert_eq!(r["bytes"], bytes, "{args:?}");
        assert_eq!(
            obj_counts(&r["status"]),
            count_by(&want, |r| r.status.to_string()),
            "{args:?}"
        );
    }
}

#[test]
fn absolute_since_until() {
    let sb = Sandbox::new();
    let reqs = generate(2000, 13, START);
    let (text, _) = render(&reqs, Req::combined, 0);
    let log = sb.write("a.log", &text);
    // 2025-03-01T01:00:00Z .. 2025-03-01 02:00 (UTC).
    let r = stats_json(
        sb.path(),
        &[
            "--since",
            "2025-03-01T01:00:00Z",
            "--until",
            "2025-03-01 02:00",
            log.to_str().unwrap(),
        ],
        None,
    );
    let want = reqs
        .iter()
        .filter(|r| r.time >= START + 3600 && r.time < START + 7200)
        .count();
    assert!(want > 0);
    assert_eq!(r["requests"], want as u64);
}

#[test]
fn text_report_has_every_panel() {
    let sb = Sandbox::new();
    let reqs = generate(500, 17, START);
    let (text, _) = render(&reqs, Req::with_latency, 50);
    let log = sb.write("t.log", &text);
    let run = run(
        "httpd-logrotate",
        sb.path(),
        &["--stats", log.to_str().unwrap()],
    );
    assert_eq!(run.status, Some(0), "{run:?}");
    for panel in [
        "Summary",
        "Status codes",
        "Status classes",
        "Methods",
        "Protocols",
        "Top paths",
        "Top 404 paths",
        "Top clients",
        "Top referrers",
        "Top user agents",
        "Traffic per",
        "peak:",
        "Slowest requests",
        "Invalid lines",
        "p99",
    ] {
        assert!(
            run.stdout.contains(panel),
            "no {panel:?} in:\n{}",
            run.stdout
        );
    }
    assert!(
        !run.stdout.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    assert!(run
        .stdout
        .contains(&format!("requests          {}", reqs.len())));
    assert!(
        run.stdout.contains("t.log:26: "),
        "first invalid line with its number:\n{}",
        run.stdout
    );
}

#[test]
fn bad_input_gives_one_clear_error() {
    let sb = Sandbox::new();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--stats", "missing.log"], 66, "cannot open missing.log"),
        (&["--stats", "--format", "%h %Z"], 2, "invalid log format"),
        (&["--stats", "--since", "yesterday-ish"], 2, "--since"),
        (&["--stats", "--status", "9xx"], 2, "--status"),
        (
            &["--stats", "--exclude-ip", "10.0.0.0/99"],
            2,
            "--exclude-ip",
        ),
        (&["--stats", "--path", "("], 2, "--path"),
        (&["--stats", "--bogus"], 2, "--bogus"),
    ];
    for (args, code, needle) in cases {
        let r = run("httpd-logrotate", sb.path(), args);
        assert_eq!(r.status, Some(*code), "{args:?}: {r:?}");
        assert!(r.stderr.contains(needle), "{args:?}: {r:?}");
        assert!(!r.stderr.contains("panicked"), "{r:?}");
    }
    // Empty input is a report of nothing, not an error.
    let r = stats_json(sb.path(), &[], Some(b""));
    assert_eq!(r["requests"], 0);
}

/// A log spanning years 1 to 9999 gets a short traffic series of wide buckets (one bucket
/// per day would be 3.6 million points), and sums that would overflow u64 saturate.
#[test]
fn extreme_dates_and_sizes_give_a_short_series_and_saturated_sums() {
    let sb = Sandbox::new();
    let big = "9999999999999999999"; // %b takes up to 19 digits: two overflow u64.
    let log = format!(
        "1.2.3.4 - - [01/Jan/0001:00:00:00 +0000] \"GET /a HTTP/1.1\" 200 {big} \"-\" \"ua\"\n\
         1.2.3.4 - - [31/Dec/9999:23:59:59 +0000] \"GET /a HTTP/1.1\" 200 {big} \"-\" \"ua\"\n"
    );
    sb.write("wide.log", &log);
    let r = stats_json(sb.path(), &["wide.log"], None);
    assert_eq!(r["requests"], 2, "{r}");
    assert_eq!(r["bytes"], u64::MAX, "{r}");
    assert_eq!(r["top_paths"][0]["bytes"], u64::MAX, "{r}");
    assert_eq!(r["time"]["first"], "0001-01-01T00:00:00Z", "{r}");
    assert_eq!(r["time"]["last"], "9999-12-31T23:59:59Z", "{r}");
    let t = &r["traffic"];
    let series = t["series"].as_array().unwrap();
    let size = t["bucket_seconds"].as_i64().unwrap();
    assert!(
        (2..=400).contains(&series.len()),
        "{} buckets",
        series.len()
    );
    // The buckets cover the span: each request is counted in the first or last one.
    assert!(size * series.len() as i64 >= 9999 * 365 * 86400, "{t}");
    assert_eq!(series[0]["hits"], 1, "{t}");
    assert_eq!(series[series.len() - 1]["hits"], 1, "{t}");
    assert_eq!(series[0]["bytes"].as_u64(), big.parse().ok(), "{t}");
    let hits: u64 = series.iter().map(|b| b["hits"].as_u64().unwrap()).sum();
    assert_eq!(hits, 2, "{t}");
    assert_eq!(t["bucket"], format!("{}y", size / (365 * 86400)), "{t}");

    // An explicit fine bucket over such a span widens instead of listing millions.
    let r = stats_json(sb.path(), &["--bucket", "1m", "wide.log"], None);
    assert_eq!(r["traffic"]["bucket_seconds"], size, "{r}");
    // The text report comes too.
    let text = run("httpd-logrotate", sb.path(), &["--stats", "wide.log"]);
    assert_eq!(text.status, Some(0), "{text:?}");
    assert!(text.stdout.contains("Traffic per"), "{text:?}");

    // JSON lines: a latency and byte count at u64's limit, and a numeric time no calendar
    // has (that line is invalid, not a panic).
    let json = format!(
        "{{\"time\":\"2025-03-01T00:00:00Z\",\"remote\":\"1.2.3.4\",\"request\":\"GET / HTTP/1.1\",\"status\":200,\"bytes\":{m},\"duration_us\":{m}}}\n\
         {{\"time\":\"2025-03-01T00:00:01Z\",\"remote\":\"1.2.3.4\",\"request\":\"GET / HTTP/1.1\",\"status\":200,\"bytes\":{m},\"duration_us\":{m}}}\n\
         {{\"time\":1e300,\"remote\":\"1.2.3.4\",\"request\":\"GET / HTTP/1.1\",\"status\":200,\"bytes\":1}}\n",
        m = u64::MAX
    );
    let r = stats_json(sb.path(), &["--format", "json"], Some(json.as_bytes()));
    assert_eq!(
        (r["requests"].as_u64(), r["invalid"].as_u64()),
        (Some(2), Some(1)),
        "{r}"
    );
    assert_eq!(r["bytes"], u64::MAX, "{r}");
    assert_eq!(r["traffic"]["bucket"], "1m", "{r}");
}

/// GoAccess reads the same Apache combined log: the panels both have agree.
#[test]
fn goaccess_agrees_on_a_combined_log() {
    require_tool("goaccess");
    let sb = Sandbox::new();
    let reqs: Vec<Req> = generate(3000, 21, START)
        .into_iter()
        // GoAccess counts these its own way (it drops some agents and paths with spaces).
        .filter(|r| !r.path.contains(' ') && !r.ua.is_empty() && r.ua != "-" && !r.ua.contains('"'))
        .enumerate()
        // Clients seen only with 4xx: GoAccess does not count them as visitors.
        .map(|(i, mut r)| {
            if i < 30 {
                r.ip = format!("198.51.100.{i}");
                r.status = 404;
            }
            r
        })
        .collect();
    let (text, _) = render(&reqs, Req::combined, 0);
    let log = sb.write("g.log", &text);
    let out = sb.path().join("g.json");
    let status = Command::new("goaccess")
        .arg(&log)
        .args(["--log-format=COMBINED", "--no-query-string", "-o"])
        .arg(&out)
        .output()
        .expect("run goaccess");
    assert!(status.status.success(), "{status:?}");
    let g: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let ours = stats_json(
        sb.path(),
        &["--exact", "--top", "1000", log.to_str().unwrap()],
        None,
    );
    assert_eq!(ours["requests"], g["general"]["valid_requests"]);
    assert_eq!(ours["bytes"], g["general"]["bandwidth"]);
    assert_eq!(ours["unique_visitors"], g["general"]["unique_visitors"]);
    let mut codes = BTreeMap::new();
    for class in g["status_codes"]["data"].as_array().unwrap() {
        for item in class["items"].as_array().unwrap() {
            let code = item["data"].as_str().unwrap()[..3].to_string();
            codes.insert(code, item["hits"]["count"].as_u64().unwrap());
        }
    }
    assert_eq!(obj_counts(&ours["status"]), codes);
    let hosts: BTreeMap<String, u64> = g["hosts"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["data"].as_str().unwrap().to_string(),
                h["hits"]["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let ours_hosts: BTreeMap<String, u64> = rows(&ours["top_clients"], "client")
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    assert_eq!(ours_hosts, hosts);
}

/// The HTML page, opened in headless Chromium: the charts and tables are in the DOM.
#[test]
fn html_report_renders_in_chromium() {
    let chromium = require_tool("chromium");
    let sb = Sandbox::new();
    let reqs = generate(2000, 23, START);
    let (text, _) = render(&reqs, Req::with_latency, 400);
    let log = sb.write("h.log", &text);
    let html = sb.path().join("report.html");
    let r = run(
        "httpd-logrotate",
        sb.path(),
        &[
            "--stats",
            "--html",
            html.to_str().unwrap(),
            log.to_str().unwrap(),
        ],
    );
    assert_eq!(r.status, Some(0), "{r:?}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        !page.contains("http://") || !page.contains("src=\"http"),
        "nothing fetched"
    );
    assert!(!page.contains("<script"), "no script needed");
    // The odd agent is escaped, never raw markup.
    assert!(page.contains("odd &quot;quoted&quot; agent"));
    let profile = sb.mkdir("chromium-profile");
    let out = Command::new(chromium)
        .args(CHROMIUM_HEADLESS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for id in [
        "summary",
        "traffic-chart",
        "status-chart",
        "status",
        "top-paths",
        "top-404",
        "top-clients",
        "top-referrers",
        "top-agents",
        "slowest",
        "invalid",
    ] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "no #{id} in the DOM");
    }
    let bars = dom.matches("class=\"bar\"").count();
    let report = stats_json(sb.path(), &[log.to_str().unwrap()], None);
    assert_eq!(bars, report["traffic"]["series"].as_array().unwrap().len());
    assert!(bars > 1);
    assert!(
        dom.matches("class=\"slice\"").count() >= 4,
        "a slice per status class"
    );
    assert!(dom.contains(&reqs.len().to_string()), "request count shown");
}

/// Live mode: every line reaches the rotator's file, and the running report is written at
/// each interval while input is still open, then once more at the end.
#[test]
fn live_tee_rotates_and_keeps_a_running_report() {
    let sb = Sandbox::new();
    let reqs = generate(600, 29, START);
    let (first, _) = render(&reqs[..400], Req::combined, 0);
    let (second, _) = render(&reqs[400..], Req::combined, 0);
    let pattern = sb.path().join("logs/access.log");
    let stats_file = sb.path().join("stats.json");
    let mut child = Command::new(bin("httpd-logrotate"))
        .current_dir(sb.path())
        .args(["--stats", "--exact", "--interval", "0.1", "--tee"])
        .arg(&pattern)
        .arg("--stats-file")
        .arg(&stats_file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn live mode");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(first.as_bytes()).unwrap();
    stdin.flush().unwrap();
    // The report of the first part appears while stdin is still open.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let seen = std::fs::read_to_string(&stats_file)
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|v| v["requests"].as_u64());
        if seen == Some(400) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no interval report of 400 requests (last: {seen:?})"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    stdin.write_all(second.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&stats_file).unwrap()).unwrap();
    assert_eq!(report["requests"], 600);
    assert_eq!(
        obj_counts(&report["status"]),
        count_by(&reqs, |r| r.status.to_string())
    );
    assert_eq!(report["unique_visitors"], visitors(&reqs, 3600));
    let written = std::fs::read_to_string(&pattern).expect("the rotator wrote PATTERN");
    assert_eq!(written, format!("{first}{second}"), "every line, unchanged");
}
