//! `--html FILE`: one self-contained page (inline CSS and SVG charts, no script, nothing
//! fetched from the network): summary cards, traffic over time, the status mix, and the
//! top tables.

use std::fmt::Write as _;

use super::text::{human_bytes, ms};
use super::Report;

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px}\
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:140px}\
.card b{display:block;font-size:20px}.est{color:#a60;font-size:12px}\
table{border-collapse:collapse;background:#fff;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}\
td.l,th.l{text-align:left;max-width:640px;overflow-wrap:anywhere}svg{background:#fff;border:1px solid #ddd}\
.grid{display:flex;flex-wrap:wrap;gap:24px}";

/// Colours of the status classes in the charts.
fn class_color(class: &str) -> &'static str {
    match class {
        "1xx" => "#888",
        "2xx" => "#2a9d55",
        "3xx" => "#2f7fd1",
        "4xx" => "#e0a100",
        "5xx" => "#d1372f",
        _ => "#555",
    }
}

pub fn render(r: &Report) -> String {
    let mut h = String::new();
    let est = |f: &str| {
        if r.estimates.contains(&f) {
            "<span class=\"est\">estimate</span>"
        } else {
            ""
        }
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Access log report</title><style>{CSS}</style></head><body>\n<h1>Access log report</h1>\n<p>{}</p>\n",
        esc(&r.sources.join(", "))
    );
    h.push_str("<div class=\"cards\" id=\"summary\">");
    let mut card = |label: &str, value: String, note: &str| {
        let _ = write!(
            h,
            "<div class=\"card\">{}<b>{}</b>{note}</div>",
            esc(label),
            esc(&value)
        );
    };
    card("Requests", r.requests.to_string(), "");
    card("Invalid lines", r.invalid.to_string(), "");
    card("Bytes sent", human_bytes(r.bytes), "");
    card(
        "Unique visitors",
        r.unique_visitors.to_string(),
        est("unique_visitors"),
    );
    card(
        "Unique clients",
        r.unique_clients.to_string(),
        est("unique_clients"),
    );
    if let Some(l) = &r.latency_us {
        card(
            "Latency p50 / p99",
            format!("{} / {}", ms(l.p50), ms(l.p99)),
            "",
        );
        card("Latency max", ms(l.max), "");
    }
    if let Some(p) = &r.traffic.peak {
        card("Peak rate", format!("{:.2} req/s", p.per_second), "");
    }
    h.push_str("</div>\n");
    if let Some(t) = &r.time {
        let _ = writeln!(h, "<p>From {} to {}.</p>", esc(&t.first), esc(&t.last));
    }

    let _ = writeln!(h, "<h2>Traffic per {}</h2>", esc(&r.traffic.bucket));
    h.push_str(&traffic_chart(r));
    h.push_str("<div class=\"grid\"><div>\n<h2>Status mix</h2>\n");
    h.push_str(&status_chart(r));
    h.push_str("</div><div>\n<h2>Status codes</h2>\n");
    table(
        &mut h,
        "status",
        &["code", "hits"],
        r.status.iter().map(|(k, v)| vec![k.clone(), v.to_string()]),
    );
    h.push_str("</div></div>\n");

    let lat = r.latency_us.is_some();
    let _ = writeln!(h, "<h2>Top paths {}</h2>", est("top_paths"));
    let head: &[&str] = if lat {
        &["path", "hits", "bytes", "p50", "p95", "p99", "max"]
    } else {
        &["path", "hits", "bytes"]
    };
    table(
        &mut h,
        "top-paths",
        head,
        r.top_paths.iter().map(|p| {
            let mut row = vec![p.path.clone(), p.hits.to_string(), human_bytes(p.bytes)];
            if let Some(l) = &p.latency_us {
                row.extend([ms(l.p50), ms(l.p95), ms(l.p99), ms(l.max)]);
            }
            row
        }),
    );
    let _ = writeln!(h, "<h2>Top 404 paths {}</h2>", est("top_404"));
    table(
        &mut h,
        "top-404",
        &["path", "hits"],
        r.top_404
            .iter()
            .map(|p| vec![p.path.clone(), p.hits.to_string()]),
    );
    let _ = writeln!(h, "<h2>Top clients {}</h2>", est("top_clients"));
    table(
        &mut h,
        "top-clients",
        &["client", "hits", "bytes"],
        r.top_clients
            .iter()
            .map(|c| vec![c.client.clone(), c.hits.to_string(), human_bytes(c.bytes)]),
    );
    let _ = writeln!(h, "<h2>Top referrers {}</h2>", est("top_referrers"));
    table(
        &mut h,
        "top-referrers",
        &["referrer", "hits"],
        r.top_referrers
            .iter()
            .map(|x| vec![x.referrer.clone(), x.hits.to_string()]),
    );
    let _ = writeln!(h, "<h2>Top user agents {}</h2>", est("top_user_agents"));
    table(
        &mut h,
        "top-agents",
        &["user agent", "hits", "crawler"],
        r.top_user_agents.iter().map(|a| {
            vec![
                a.user_agent.clone(),
                a.hits.to_string(),
                if a.crawler {
                    "yes".into()
                } else {
                    String::new()
                },
            ]
        }),
    );
    if !r.vhosts.is_empty() {
        h.push_str("<h2>Virtual hosts</h2>\n");
        table(
            &mut h,
            "vhosts",
            &["vhost", "hits", "bytes"],
            r.vhosts
                .iter()
                .map(|v| vec![v.vhost.clone(), v.hits.to_string(), human_bytes(v.bytes)]),
        );
    }
    if !r.slowest.is_empty() {
        h.push_str("<h2>Slowest requests</h2>\n");
        table(
            &mut h,
            "slowest",
            &["path", "latency", "time", "status", "method", "client"],
            r.slowest.iter().map(|s| {
                vec![
                    s.path.clone(),
                    ms(s.latency_us),
                    s.time.clone().unwrap_or_default(),
                    s.status.to_string(),
                    s.method.clone(),
                    s.client.clone(),
                ]
            }),
        );
    }
    if !r.invalid_samples.is_empty() {
        h.push_str("<h2>Invalid lines</h2>\n");
        table(
            &mut h,
            "invalid",
            &["line", "source", "text"],
            r.invalid_samples
                .iter()
                .map(|i| vec![i.text.clone(), i.source.clone(), i.line.to_string()]),
        );
    }
    h.push_str("</body></html>\n");
    h
}

/// A table whose first column is text (left-aligned) and the rest numbers.
fn table(h: &mut String, id: &str, head: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let _ = write!(h, "<table id=\"{id}\"><tr>");
    for (i, c) in head.iter().enumerate() {
        let _ = write!(
            h,
            "<th{}>{}</th>",
            if i == 0 { " class=\"l\"" } else { "" },
            esc(c)
        );
    }
    h.push_str("</tr>\n");
    for row in rows {
        h.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            let _ = write!(
                h,
                "<td{}>{}</td>",
                if i == 0 { " class=\"l\"" } else { "" },
                esc(c)
            );
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

/// Requests per bucket as an SVG bar chart with a y axis and first/last labels.
fn traffic_chart(r: &Report) -> String {
    let (w, ht, left, bottom) = (960.0, 240.0, 60.0, 30.0);
    let series = &r.traffic.series;
    let max = series.iter().map(|b| b.hits).max().unwrap_or(0).max(1) as f64;
    let mut s = format!(
        "<svg id=\"traffic-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" role=\"img\" aria-label=\"requests per {}\">",
        esc(&r.traffic.bucket)
    );
    let plot_w = w - left - 10.0;
    let plot_h = ht - bottom - 10.0;
    let _ = write!(
        s,
        "<line x1=\"{left}\" y1=\"10\" x2=\"{left}\" y2=\"{}\" stroke=\"#999\"/><line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#999\"/>",
        10.0 + plot_h,
        left + plot_w,
        y = 10.0 + plot_h
    );
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"16\" font-size=\"11\" text-anchor=\"end\">{}</text>",
        left - 4.0,
        max as u64
    );
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">0</text>",
        left - 4.0,
        10.0 + plot_h
    );
    let n = series.len().max(1) as f64;
    let bw = plot_w / n;
    for (i, b) in series.iter().enumerate() {
        let bh = b.hits as f64 / max * plot_h;
        let _ = write!(
            s,
            "<rect class=\"bar\" x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{:.2}\" fill=\"#2f7fd1\"><title>{} {} requests</title></rect>",
            left + i as f64 * bw + bw * 0.1,
            10.0 + plot_h - bh,
            (bw * 0.8).max(0.5),
            bh,
            esc(&b.start),
            b.hits
        );
    }
    if let (Some(first), Some(last)) = (series.first(), series.last()) {
        let _ = write!(
            s,
            "<text x=\"{left}\" y=\"{}\" font-size=\"11\">{}</text>",
            ht - 8.0,
            esc(&first.start)
        );
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            left + plot_w,
            ht - 8.0,
            esc(&last.start)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The status classes as a donut of SVG arcs with a legend.
fn status_chart(r: &Report) -> String {
    let total: u64 = r.status_classes.values().sum();
    let mut s = String::from(
        "<svg id=\"status-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"420\" height=\"220\" viewBox=\"0 0 420 220\" role=\"img\" aria-label=\"status classes\">",
    );
    let (cx, cy, rad) = (110.0f64, 110.0f64, 80.0f64);
    let mut angle = -std::f64::consts::FRAC_PI_2;
    for (i, (class, &n)) in r.status_classes.iter().enumerate() {
        if total == 0 || n == 0 {
            continue;
        }
        let frac = n as f64 / total as f64;
        let color = class_color(class);
        if frac >= 0.9999 {
            let _ = write!(s, "<circle class=\"slice\" cx=\"{cx}\" cy=\"{cy}\" r=\"{rad}\" fill=\"{color}\"><title>{class} {n}</title></circle>");
        } else {
            let end = angle + frac * std::f64::consts::TAU;
            let (x1, y1) = (cx + rad * angle.cos(), cy + rad * angle.sin());
            let (x2, y2) = (cx + rad * end.cos(), cy + rad * end.sin());
            let large = if frac > 0.5 { 1 } else { 0 };
            let _ = write!(
                s,
                "<path class=\"slice\" d=\"M{cx},{cy} L{x1:.2},{y1:.2} A{rad},{rad} 0 {large} 1 {x2:.2},{y2:.2} Z\" fill=\"{color}\"><title>{class} {n}</title></path>"
            );
            angle = end;
        }
        let ly = 40.0 + i as f64 * 24.0;
        let _ = write!(
            s,
            "<rect x=\"220\" y=\"{}\" width=\"14\" height=\"14\" fill=\"{color}\"/><text x=\"240\" y=\"{}\" font-size=\"13\">{class} {} ({:.1}%)</text>",
            ly - 11.0,
            ly,
            n,
            frac * 100.0
        );
    }
    let _ = write!(
        s,
        "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"40\" fill=\"#fff\"/>"
    );
    s.push_str("</svg>\n");
    s
}
