//! The terminal report: aligned tables, bold headings only on a colour terminal.

use std::io::Write;

use super::{Latency, Report};

pub struct Style {
    pub color: bool,
}

impl Style {
    fn heading(&self, s: &str) -> String {
        if self.color {
            format!("\x1b[1;36m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// Human-readable byte counts (binary units, like `ls -h`).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Microseconds as ms with three digits.
pub fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

fn shorten(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let cut: String = s.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

fn pct(n: u64, total: u64) -> String {
    if total == 0 {
        "0.0%".into()
    } else {
        format!("{:.1}%", n as f64 * 100.0 / total as f64)
    }
}

pub fn write(r: &Report, style: &Style, out: &mut dyn Write) -> std::io::Result<()> {
    let est = |field: &str| {
        if r.estimates.contains(&field) {
            " (estimate)"
        } else {
            ""
        }
    };
    writeln!(out, "{}", style.heading("Summary"))?;
    writeln!(out, "  requests          {}", r.requests)?;
    writeln!(out, "  invalid lines     {}", r.invalid)?;
    if r.filtered > 0 {
        writeln!(out, "  filtered out      {}", r.filtered)?;
    }
    writeln!(
        out,
        "  bytes sent        {} ({})",
        r.bytes,
        human_bytes(r.bytes)
    )?;
    writeln!(
        out,
        "  unique visitors   {}{}",
        r.unique_visitors,
        est("unique_visitors")
    )?;
    writeln!(
        out,
        "  unique clients    {}{}",
        r.unique_clients,
        est("unique_clients")
    )?;
    if let Some(t) = &r.time {
        writeln!(
            out,
            "  time span         {} .. {} ({} s)",
            t.first, t.last, t.seconds
        )?;
    }
    writeln!(out, "  format            {}", r.format)?;
    if let Some(l) = &r.latency_us {
        writeln!(
            out,
            "  latency           p50 {}  p95 {}  p99 {}  max {}",
            ms(l.p50),
            ms(l.p95),
            ms(l.p99),
            ms(l.max)
        )?;
    }
    if r.crawlers.hits > 0 {
        writeln!(
            out,
            "  crawler requests  {} ({:.1}%)",
            r.crawlers.hits,
            r.crawlers.share * 100.0
        )?;
    }

    section(
        out,
        style,
        "Status codes",
        &["code", "hits", "share"],
        r.status
            .iter()
            .map(|(k, v)| vec![k.clone(), v.to_string(), pct(*v, r.requests)]),
    )?;
    section(
        out,
        style,
        "Status classes",
        &["class", "hits", "share"],
        r.status_classes
            .iter()
            .map(|(k, v)| vec![k.clone(), v.to_string(), pct(*v, r.requests)]),
    )?;
    section(
        out,
        style,
        "Methods",
        &["method", "hits"],
        sorted(&r.methods)
            .into_iter()
            .map(|(k, v)| vec![k, v.to_string()]),
    )?;
    section(
        out,
        style,
        "Protocols",
        &["protocol", "hits"],
        sorted(&r.protocols)
            .into_iter()
            .map(|(k, v)| vec![k, v.to_string()]),
    )?;
    let lat = |l: &Option<Latency>| match l {
        Some(l) => vec![ms(l.p50), ms(l.p95), ms(l.p99), ms(l.max)],
        None => vec![String::new(); 4],
    };
    let has_lat = r.latency_us.is_some();
    let mut head = vec!["hits", "bytes", "path"];
    if has_lat {
        head = vec!["hits", "bytes", "p50", "p95", "p99", "max", "path"];
    }
    section(
        out,
        style,
        &format!("Top paths{}", est("top_paths")),
        &head,
        r.top_paths.iter().map(|p| {
            let mut row = vec![p.hits.to_string(), human_bytes(p.bytes)];
            if has_lat {
                row.extend(lat(&p.latency_us));
            }
            row.push(shorten(&p.path, 80));
            row
        }),
    )?;
    section(
        out,
        style,
        &format!("Top 404 paths{}", est("top_404")),
        &["hits", "path"],
        r.top_404
            .iter()
            .map(|p| vec![p.hits.to_string(), shorten(&p.path, 80)]),
    )?;
    section(
        out,
        style,
        &format!("Top clients{}", est("top_clients")),
        &["hits", "bytes", "client"],
        r.top_clients
            .iter()
            .map(|c| vec![c.hits.to_string(), human_bytes(c.bytes), c.client.clone()]),
    )?;
    section(
        out,
        style,
        &format!("Top referrers{}", est("top_referrers")),
        &["hits", "referrer"],
        r.top_referrers
            .iter()
            .map(|x| vec![x.hits.to_string(), shorten(&x.referrer, 90)]),
    )?;
    section(
        out,
        style,
        &format!("Top user agents{}", est("top_user_agents")),
        &["hits", "crawler", "user agent"],
        r.top_user_agents.iter().map(|a| {
            vec![
                a.hits.to_string(),
                if a.crawler {
                    "yes".into()
                } else {
                    String::new()
                },
                shorten(&a.user_agent, 90),
            ]
        }),
    )?;
    if !r.vhosts.is_empty() {
        section(
            out,
            style,
            "Virtual hosts",
            &["hits", "bytes", "vhost"],
            r.vhosts
                .iter()
                .map(|v| vec![v.hits.to_string(), human_bytes(v.bytes), v.vhost.clone()]),
        )?;
    }
    let max = r
        .traffic
        .series
        .iter()
        .map(|b| b.hits)
        .max()
        .unwrap_or(0)
        .max(1);
    section(
        out,
        style,
        &format!("Traffic per {}", r.traffic.bucket),
        &["start", "hits", "bytes", ""],
        r.traffic.series.iter().map(|b| {
            let bar = "#".repeat((b.hits * 40).div_ceil(max) as usize);
            vec![
                b.start.clone(),
                b.hits.to_string(),
                human_bytes(b.bytes),
                bar,
            ]
        }),
    )?;
    if let Some(p) = &r.traffic.peak {
        writeln!(
            out,
            "  peak: {} requests in the minute from {} ({:.2} req/s)",
            p.hits, p.minute, p.per_second
        )?;
    }
    if !r.slowest.is_empty() {
        section(
            out,
            style,
            "Slowest requests",
            &["latency", "time", "status", "method", "path"],
            r.slowest.iter().map(|s| {
                vec![
                    ms(s.latency_us),
                    s.time.clone().unwrap_or_default(),
                    s.status.to_string(),
                    s.method.clone(),
                    shorten(&s.path, 70),
                ]
            }),
        )?;
    }
    if !r.invalid_samples.is_empty() {
        writeln!(
            out,
            "\n{}",
            style.heading(&format!(
                "Invalid lines ({}; first {} shown)",
                r.invalid,
                r.invalid_samples.len()
            ))
        )?;
        for i in &r.invalid_samples {
            writeln!(out, "  {}:{}: {}", i.source, i.line, shorten(&i.text, 100))?;
        }
    }
    if !r.estimates.is_empty() {
        writeln!(
            out,
            "\nestimates: {} (use --exact for exact unique visitors)",
            r.estimates.join(", ")
        )?;
    }
    Ok(())
}

fn sorted(m: &std::collections::BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = m.iter().map(|(k, v)| (k.clone(), *v)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// A heading and a table; the last column is left-aligned, the others right-aligned.
fn section(
    out: &mut dyn Write,
    style: &Style,
    title: &str,
    head: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = rows.collect();
    writeln!(out, "\n{}", style.heading(title))?;
    if rows.is_empty() {
        return writeln!(out, "  (none)");
    }
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let last = cells.len() - 1;
        let mut s = String::from(" ");
        for (i, c) in cells.iter().enumerate() {
            if i == last {
                s.push_str(&format!(" {c}"));
            } else if i == 0
                && (head[0] == "start"
                    || head[0] == "code"
                    || head[0] == "class"
                    || head[0] == "method"
                    || head[0] == "protocol")
            {
                s.push_str(&format!(" {c:<w$}", w = width[i]));
            } else {
                s.push_str(&format!(" {c:>w$}", w = width[i]));
            }
        }
        s.trim_end().to_string()
    };
    let head: Vec<String> = head.iter().map(|h| h.to_string()).collect();
    writeln!(out, "{}", line(&head))?;
    for row in &rows {
        writeln!(out, "{}", line(row))?;
    }
    Ok(())
}
