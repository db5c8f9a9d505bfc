//! `<Proxy balancer://name>` (mod_proxy_balancer): members with `loadfactor=` weights,
//! `status=+H` hot standbys used only when every active member is down,
//! `lbmethod=byrequests` (weighted round robin) or `bybusyness` (fewest requests in
//! flight), and passive health: a member whose connect failed is skipped for `retry=`
//! seconds (60 by default); active health (mod_proxy_hcheck): a member with `hcuri=` is
//! fetched with GET every `hcinterval=` seconds (30) and kept out while it fails.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use httpd_conftest::model;

pub struct Member {
    pub url: String,
    weight: u64,
    standby: bool,
    retry: Duration,
    /// Requests in flight (bybusyness).
    pub busy: AtomicUsize,
    /// Requests sent (byrequests' weighted counter).
    sent: AtomicU64,
    down_until: Mutex<Option<Instant>>,
    /// `hcuri=`: the path the active health check fetches.
    hc_uri: Option<String>,
    hc_interval: Duration,
}

pub struct Balancer {
    pub members: Vec<Member>,
    by_busyness: bool,
    hc_started: AtomicBool,
}

impl Balancer {
    pub fn build(b: &model::Balancer) -> Balancer {
        let members = b
            .members
            .iter()
            .map(|m| {
                let p = |k: &str| m.params.get(k).or_else(|| b.params.get(k));
                Member {
                    url: m.url.trim_end_matches('/').to_string(),
                    weight: p("loadfactor")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1u64)
                        .max(1),
                    standby: p("status").is_some_and(|s| s.to_ascii_uppercase().contains('H')),
                    retry: Duration::from_secs(
                        p("retry").and_then(|v| v.parse().ok()).unwrap_or(60),
                    ),
                    busy: AtomicUsize::new(0),
                    sent: AtomicU64::new(0),
                    down_until: Mutex::new(None),
                    hc_uri: p("hcuri").cloned(),
                    hc_interval: Duration::from_secs(
                        p("hcinterval")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(30)
                            .max(1),
                    ),
                }
            })
            .collect();
        Balancer {
            members,
            by_busyness: b
                .params
                .get("lbmethod")
                .is_some_and(|m| m.eq_ignore_ascii_case("bybusyness")),
            hc_started: AtomicBool::new(false),
        }
    }

    /// Itself, with the active health checks started.
    pub fn started(self: &Arc<Self>) -> &Arc<Self> {
        self.start_health_checks();
        self
    }

    /// Starts the active health checks once (on first use, inside the runtime). The task
    /// holds a weak reference, so it ends when a reload drops this balancer.
    pub fn start_health_checks(self: &Arc<Self>) {
        if !self.members.iter().any(|m| m.hc_uri.is_some())
            || self.hc_started.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            use http_body_util::Empty;
            use hyper_util::client::legacy::Client;
            let client = Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Empty<bytes::Bytes>>();
            loop {
                let Some(b) = weak.upgrade() else { return };
                let mut next = Duration::from_secs(30);
                for m in &b.members {
                    let Some(uri) = &m.hc_uri else { continue };
                    next = next.min(m.hc_interval);
                    let ok = match format!("{}{uri}", m.url).parse::<http::Uri>() {
                        Ok(u) => matches!(
                            tokio::time::timeout(m.hc_interval, client.get(u)).await,
                            Ok(Ok(r)) if r.status().is_success() || r.status().is_redirection()
                        ),
                        Err(_) => false,
                    };
                    let mut down = m.down_until.lock().unwrap();
                    if ok {
                        *down = None;
                    } else {
                        tracing::warn!(member = %m.url, "health check failed");
                        // Out until a check passes again.
                        *down = Some(Instant::now() + Duration::from_secs(365 * 86_400));
                    }
                }
                drop(b);
                tokio::time::sleep(next).await;
            }
        });
    }

    /// The member to try next, skipping those in `tried` and those marked down.
    pub fn pick(&self, tried: &[usize]) -> Option<usize> {
        let now = Instant::now();
        let usable = |i: &usize| {
            let m = &self.members[*i];
            !tried.contains(i) && m.down_until.lock().unwrap().is_none_or(|t| t <= now)
        };
        for standby in [false, true] {
            let cands: Vec<usize> = (0..self.members.len())
                .filter(|i| self.members[*i].standby == standby)
                .filter(usable)
                .collect();
            let best = if self.by_busyness {
                cands
                    .iter()
                    .min_by_key(|i| self.members[**i].busy.load(Ordering::Relaxed))
            } else {
                // Weighted round robin: the member furthest below its share.
                cands.iter().min_by_key(|i| {
                    let m = &self.members[**i];
                    (m.sent.load(Ordering::Relaxed) * 1000) / m.weight
                })
            };
            if let Some(&i) = best {
                self.members[i].sent.fetch_add(1, Ordering::Relaxed);
                return Some(i);
            }
        }
        None
    }

    pub fn mark_down(&self, i: usize) {
        let m = &self.members[i];
        *m.down_until.lock().unwrap() = Some(Instant::now() + m.retry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_loc() -> httpd_conftest::diagnostic::Loc {
        httpd_conftest::diagnostic::Loc {
            file: std::sync::Arc::from(std::path::Path::new("test.conf")),
            line: 1,
            column: 1,
        }
    }
    use std::collections::BTreeMap;

    fn model(members: &[(&str, &[(&str, &str)])], lb: &str) -> model::Balancer {
        model::Balancer {
            members: members
                .iter()
                .map(|(u, ps)| model::BalancerMember {
                    url: u.to_string(),
                    params: ps
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    loc: test_loc(),
                })
                .collect(),
            params: BTreeMap::from([("lbmethod".to_string(), lb.to_string())]),
        }
    }

    #[test]
    fn byrequests_weights_and_standby() {
        let b = Balancer::build(&model(
            &[
                ("http://a", &[("loadfactor", "2")]),
                ("http://b", &[]),
                ("http://s", &[("status", "+H")]),
            ],
            "byrequests",
        ));
        let mut counts = [0; 3];
        for _ in 0..30 {
            counts[b.pick(&[]).unwrap()] += 1;
        }
        assert_eq!(counts, [20, 10, 0]);
        b.mark_down(0);
        b.mark_down(1);
        assert_eq!(b.pick(&[]), Some(2));
        assert_eq!(b.pick(&[2]), None);
    }

    #[test]
    fn bybusyness_prefers_idle() {
        let b = Balancer::build(&model(
            &[("http://a", &[]), ("http://b", &[])],
            "bybusyness",
        ));
        b.members[0].busy.store(3, Ordering::Relaxed);
        assert_eq!(b.pick(&[]), Some(1));
    }
}
