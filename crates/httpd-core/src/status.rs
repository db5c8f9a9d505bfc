//! `SetHandler server-status` (mod_status): the server's counters as HTML, as `?auto`
//! (mod_status's machine format) and as `?json`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::body::Body;
use crate::server::ServerState;
use crate::site::Site;

/// Counters since start.
#[derive(Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
    /// 1xx..5xx.
    pub classes: [AtomicU64; 5],
}

impl Stats {
    pub fn record(&self, status: u16, bytes: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.classes[class].fetch_add(1, Ordering::Relaxed);
    }
}

struct Snapshot {
    uptime: u64,
    requests: u64,
    bytes: u64,
    classes: [u64; 5],
    open: u64,
    busy: u64,
    vhosts: Vec<(String, u64)>,
}

fn snapshot(state: &ServerState, site: &Site) -> Snapshot {
    let open = state.open_conns.load(Ordering::Relaxed) as u64;
    let busy = (state.busy.load(Ordering::Relaxed) as u64).min(open.max(1));
    Snapshot {
        uptime: state.started.elapsed().as_secs(),
        requests: state.stats.requests.load(Ordering::Relaxed),
        bytes: state.stats.bytes.load(Ordering::Relaxed),
        classes: std::array::from_fn(|i| state.stats.classes[i].load(Ordering::Relaxed)),
        open,
        busy,
        vhosts: site
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let name = h.server_name.clone().unwrap_or_else(|| {
                    if i == 0 {
                        "(main)".into()
                    } else {
                        format!("(vhost {i})")
                    }
                });
                (name, h.requests.load(Ordering::Relaxed))
            })
            .collect(),
    }
}

/// The status page for a request (`?auto`, `?json`, or HTML).
pub fn respond(parts: &http::request::Parts, state: &ServerState, site: &Site) -> Response<Body> {
    let s = snapshot(state, site);
    let query = parts.uri.query().unwrap_or("");
    let flags: Vec<&str> = query.split(['&', ';']).collect();
    let (body, ct) = if flags.contains(&"json") {
        (json(&s), "application/json")
    } else if flags.contains(&"auto") {
        (auto(&s), "text/plain; charset=ISO-8859-1")
    } else {
        (html(&s), "text/html; charset=utf-8")
    };
    let mut resp = crate::error_page::text(StatusCode::OK, body, ct);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn json(s: &Snapshot) -> String {
    let vhosts: Vec<_> = s
        .vhosts
        .iter()
        .map(|(n, r)| serde_json::json!({"name": n, "requests": r}))
        .collect();
    serde_json::json!({
        "uptime_s": s.uptime,
        "connections": {"total": s.open, "busy": s.busy, "idle": s.open.saturating_sub(s.busy)},
        "requests": s.requests,
        "bytes": s.bytes,
        "status": {
            "1xx": s.classes[0], "2xx": s.classes[1], "3xx": s.classes[2],
            "4xx": s.classes[3], "5xx": s.classes[4],
        },
        "vhosts": vhosts,
    })
    .to_string()
        + "\n"
}

fn auto(s: &Snapshot) -> String {
    let up = s.uptime.max(1) as f64;
    let mut o = String::new();
    let _ = writeln!(o, "ServerVersion: httpd/{}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(o, "ServerMPM: event");
    let _ = writeln!(o, "Uptime: {}", s.uptime);
    let _ = writeln!(o, "Total Accesses: {}", s.requests);
    let _ = writeln!(o, "Total kBytes: {}", s.bytes / 1024);
    let _ = writeln!(o, "ReqPerSec: {:.6}", s.requests as f64 / up);
    let _ = writeln!(o, "BytesPerSec: {:.6}", s.bytes as f64 / up);
    let _ = writeln!(
        o,
        "BytesPerReq: {:.6}",
        if s.requests == 0 {
            0.0
        } else {
            s.bytes as f64 / s.requests as f64
        }
    );
    let _ = writeln!(o, "BusyWorkers: {}", s.busy);
    let _ = writeln!(o, "IdleWorkers: {}", s.open.saturating_sub(s.busy));
    let _ = writeln!(o, "ConnsTotal: {}", s.open);
    o
}

fn html(s: &Snapshot) -> String {
    let mut o = String::from(
        "<!DOCTYPE html>\n<html><head><title>Server Status</title></head><body>\n<h1>Server Status</h1>\n<dl>\n",
    );
    let _ = writeln!(o, "<dt>Uptime</dt><dd>{} s</dd>", s.uptime);
    let _ = writeln!(o, "<dt>Requests</dt><dd>{}</dd>", s.requests);
    let _ = writeln!(o, "<dt>Bytes</dt><dd>{}</dd>", s.bytes);
    let _ = writeln!(
        o,
        "<dt>Connections</dt><dd>{} open, {} busy</dd>",
        s.open, s.busy
    );
    o.push_str("</dl>\n<table><tr><th>Virtual host</th><th>Requests</th></tr>\n");
    for (n, r) in &s.vhosts {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{r}</td></tr>",
            crate::static_files::listing::html_escape(n)
        );
    }
    o.push_str("</table>\n</body></html>\n");
    o
}
