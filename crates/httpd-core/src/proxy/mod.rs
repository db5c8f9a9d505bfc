//! The reverse proxy (mod_proxy, mod_proxy_http, mod_proxy_balancer, mod_proxy_wstunnel).
//!
//! - [`Proxy::build`] turns a host's `ProxyPass`/`ProxyPassMatch`/`ProxyPassReverse` and
//!   the config's balancers into rules, each with a pooled keep-alive client
//!   (`client`: hyper's HTTP/1.1 connections, driven by the request's own task).
//! - [`Proxy::route`]: rules are tried in config order and the first match wins (Apache's
//!   rule, DESIGN.md); a `!` rule excludes.
//! - [`forward`]: headers rewritten ([`headers`]), bodies streamed both ways (hyper's
//!   flow control: never buffered whole), upgrades (WebSocket) spliced (closed after
//!   ProxyTimeout / `timeout=` without a byte either way), 502/504 on backend failure
//!   with the cause in the error log.
//! - [`balancer`]: member choice and passive health.

pub mod balancer;
mod client;
pub mod headers;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use httpd_conftest::model;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::body::Body;
use crate::body_timer::{BodyTimer, TimedBody};
use crate::error::Error;
use crate::error_page;
pub use headers::ClientSide;

type ReqBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// The proxy configuration of one host.
pub struct Proxy {
    rules: Vec<Rule>,
    /// ProxyPassReverse (path, backend URL) pairs.
    reverse: Vec<(String, String)>,
    preserve_host: bool,
    add_headers: bool,
    via: bool,
    timeout: Duration,
    /// X-Forwarded-Server and Via values for this host's server name, built on first use
    /// (the name is compared on every request, the values are shared).
    named: std::sync::OnceLock<Named>,
}

struct Named {
    name: String,
    forwarded_server: HeaderValue,
    via_11: HeaderValue,
}

pub struct Rule {
    matcher: RuleMatch,
    target: Target,
    timeout: Option<Duration>,
    /// `upgrade=`: the protocols a client may switch to (default: websocket); `ANY` or
    /// `*` for any protocol (mod_proxy_wstunnel's `upgrade=ANY`).
    upgrade: String,
    /// The target's origin when it is a fixed URL (not a balancer, not ProxyPassMatch),
    /// taken apart once rather than on every request.
    origin: Option<client::Origin>,
    /// The pooled client: TCP, or a Unix socket (`unix:/path|http://host/`).
    client: Arc<client::Client>,
}

enum RuleMatch {
    Prefix(String),
    Regex(fancy_regex::Regex, String),
}

enum Target {
    Exclude,
    Url(String),
    Balancer(Arc<balancer::Balancer>, String),
}

fn secs(v: Option<&String>) -> Option<Duration> {
    v.and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map(Duration::from_secs_f64)
}

impl Proxy {
    /// None when the host proxies nothing.
    pub fn build(
        h: &model::Host,
        sections: &[model::Section],
        balancers: &std::collections::BTreeMap<String, model::Balancer>,
    ) -> Result<Option<Proxy>, Error> {
        let mut passes: Vec<&model::ProxyPass> = h.proxy.pass.iter().collect();
        passes.extend(
            sections
                .iter()
                .filter(|s| s.kind == model::SectionKind::Location)
                .filter_map(|s| s.dir.proxy_pass.as_ref()),
        );
        if passes.is_empty() {
            return Ok(None);
        }
        let mut built: std::collections::HashMap<String, Arc<balancer::Balancer>> =
            Default::default();
        let mut rules = Vec::new();
        for p in passes {
            let matcher = if p.regex {
                let re = httpd_conftest::validate::compile_regex(&p.path).map_err(|e| {
                    Error::Setting(format!("bad ProxyPassMatch regex {}: {e}", p.path))
                })?;
                let t = match &p.target {
                    model::ProxyTarget::Url { url } => url.clone(),
                    _ => String::new(),
                };
                RuleMatch::Regex(re, t)
            } else {
                RuleMatch::Prefix(p.path.clone())
            };
            let target = match &p.target {
                model::ProxyTarget::Exclude => Target::Exclude,
                model::ProxyTarget::Url { url } => Target::Url(url.clone()),
                model::ProxyTarget::Unix { url, .. } => Target::Url(url.clone()),
                model::ProxyTarget::Balancer { name, path } => {
                    let key = format!("balancer://{name}");
                    let b = match built.get(&key) {
                        Some(b) => Arc::clone(b),
                        None => {
                            let m = balancers
                                .get(&key)
                                .or_else(|| balancers.get(name))
                                .ok_or_else(|| {
                                    Error::Setting(format!("ProxyPass to unknown {key}"))
                                })?;
                            let b = Arc::new(balancer::Balancer::build(m));
                            built.insert(key, Arc::clone(&b));
                            b
                        }
                    };
                    Target::Balancer(b, path.clone())
                }
            };
            let connect_timeout =
                secs(p.params.get("connectiontimeout")).unwrap_or(Duration::from_secs(10));
            let unix = match &p.target {
                model::ProxyTarget::Unix { socket, .. } => Some(socket.clone()),
                _ => None,
            };
            let client = client::Client::new(unix, connect_timeout);
            let origin = match &target {
                Target::Url(u) if !p.regex => client::Origin::of_url(u),
                _ => None,
            };
            rules.push(Rule {
                origin,
                matcher,
                target,
                timeout: secs(p.params.get("timeout")),
                upgrade: p
                    .params
                    .get("upgrade")
                    .cloned()
                    .unwrap_or_else(|| "websocket".into()),
                client,
            });
        }
        Ok(Some(Proxy {
            rules,
            reverse: h
                .proxy
                .reverse
                .iter()
                .map(|r| (r.path.clone(), r.url.clone()))
                .collect(),
            preserve_host: h.proxy.preserve_host,
            add_headers: h.proxy.add_headers,
            via: matches!(h.proxy.via.to_ascii_lowercase().as_str(), "on" | "full"),
            timeout: h.proxy.timeout.unwrap_or(h.timeout),
            named: std::sync::OnceLock::new(),
        }))
    }

    /// The rule for `path` and the backend URL for it (without the query): rules are tried
    /// in config order and the first match wins, as in Apache (mod_proxy: "the first rule
    /// that matches wins", which is why httpd-conftest warns about a shadowed rule); None
    /// when nothing matches or the match is a `!` exclusion.
    pub fn route(&self, path: &str) -> Option<(&Rule, String)> {
        let best = self.rules.iter().find_map(|r| match &r.matcher {
            RuleMatch::Prefix(p) if path.starts_with(p.as_str()) => Some((r, p.len())),
            RuleMatch::Regex(re, _) if re.is_match(path).unwrap_or(false) => Some((r, usize::MAX)),
            _ => None,
        });
        let (rule, n) = best?;
        let rest = match &rule.matcher {
            RuleMatch::Prefix(_) => &path[n..],
            RuleMatch::Regex(..) => "",
        };
        let base = match (&rule.target, &rule.matcher) {
            (Target::Exclude, _) => return None,
            (Target::Url(_), RuleMatch::Regex(re, t)) => {
                std::borrow::Cow::Owned(expand(re, path, t)?)
            }
            (Target::Url(u), _) => std::borrow::Cow::Borrowed(u.as_str()),
            (Target::Balancer(_, p), _) => std::borrow::Cow::Borrowed(p.as_str()),
        };
        // Joined by hand: `format!` costs several times as much on every request.
        let mut url = String::with_capacity(base.len() + rest.len());
        url.push_str(&base);
        url.push_str(rest);
        Some((rule, url))
    }
}

impl Proxy {
    /// [`Proxy::route`] on the normalized (decoded) path, which is what the rules and
    /// exclusions are checked against; the URL sent keeps the client's own encoding of the
    /// rest of the path when it can, else the decoded rest re-encoded.
    pub fn route_request(&self, path: &str, raw: &str) -> Option<(&Rule, String)> {
        let (rule, url) = self.route(path)?;
        if raw == path {
            return Some((rule, url));
        }
        if let Some((r2, u2)) = self.route(raw) {
            if std::ptr::eq(r2, rule) {
                return Some((rule, u2));
            }
        }
        const PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
            .add(b' ')
            .add(b'"')
            .add(b'#')
            .add(b'%')
            .add(b'<')
            .add(b'>')
            .add(b'?')
            .add(b'`')
            .add(b'{')
            .add(b'}');
        Some((
            rule,
            percent_encoding::utf8_percent_encode(&url, PATH).to_string(),
        ))
    }
}

impl Proxy {
    /// For FallbackResource: the rule proxying `fallback` and a backend URL carrying the
    /// original request path `raw` (the target's scheme and authority, the client's path).
    pub fn fallback(&self, fallback: &str, raw: &str) -> Option<(&Rule, String)> {
        let (rule, url) = self.route(fallback)?;
        let url = match &rule.target {
            Target::Balancer(..) => raw.to_string(),
            _ => {
                let uri: Uri = url.parse().ok()?;
                format!("{}://{}{raw}", uri.scheme_str()?, uri.authority()?)
            }
        };
        Some((rule, url))
    }
}

/// `$1`… in a ProxyPassMatch target.
fn expand(re: &fancy_regex::Regex, path: &str, template: &str) -> Option<String> {
    let caps = re.captures(path).ok()??;
    let mut out = String::new();
    caps.expand(template, &mut out);
    Some(out)
}

/// What the pipeline hands the proxy for one request.
pub struct Forward<'a> {
    pub proxy: &'a Proxy,
    pub rule: &'a Rule,
    /// The backend URL (balancer members: the path after the member's URL).
    pub url: String,
    pub client: ClientSide<'a>,
    /// LimitRequestBody, enforced on bodies without a Content-Length too.
    pub limit: u64,
    /// The client's connection, which an upgraded request is spliced to.
    pub conn: &'a crate::connection::ConnShared,
    /// The request has a body to forward, as the pipeline decided: a Content-Length or
    /// Transfer-Encoding, or an HTTP/2 stream its headers did not end; never an internal
    /// redirect's GET.
    pub has_body: bool,
}

impl Rule {
    /// The `Upgrade` value to forward when the client asked for one this rule allows.
    fn allowed_upgrade<'h>(&self, asked: Option<&'h HeaderValue>) -> Option<&'h HeaderValue> {
        let asked = asked?;
        let any = self.upgrade.eq_ignore_ascii_case("ANY") || self.upgrade == "*";
        let text = asked.to_str().ok()?;
        let ok = any
            || text.split(',').any(|t| {
                // `websocket`, or `name/version`: the protocol name is compared.
                let name = t.trim().split('/').next().unwrap_or("");
                self.upgrade
                    .split(',')
                    .any(|u| u.trim().eq_ignore_ascii_case(name))
            });
        ok.then_some(asked)
    }
}

/// The response, and whether the proxy made it itself (an error page the pipeline may
/// replace with an ErrorDocument) rather than relaying the backend's.
pub async fn forward(
    f: Forward<'_>,
    parts: &mut http::request::Parts,
    body: Incoming,
) -> (Response<Body>, bool) {
    // Only when the connection can be upgraded (HTTP/1.1 served with upgrades).
    let can_upgrade = parts
        .extensions
        .get::<hyper::upgrade::OnUpgrade>()
        .is_some();
    let scan = headers::RequestScan::of(&parts.headers);
    // The client must also have listed Upgrade in Connection (RFC 9110 §7.8).
    let upgrade = f
        .rule
        .allowed_upgrade(scan.upgrade.as_ref())
        .filter(|_| can_upgrade && scan.connection_upgrade)
        .cloned();
    let mut h = parts.headers.clone();
    // Room for what is added below, at once (a copy has no room to spare).
    h.reserve(8);
    // HTTP/2 names the host in its :authority, not in a Host field: the backend (HTTP/1.1)
    // gets the client's host (the pipeline's `client.host`) as Host, which ProxyPreserveHost
    // keeps.
    if scan.host.is_none() {
        if let Some(v) = f.client.host.and_then(|a| HeaderValue::from_str(a).ok()) {
            h.insert(header::HOST, v);
        }
    }
    headers::strip_present(&mut h, scan.hop);
    if let Some(u) = &upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, u.clone());
    }
    let named = f.proxy.named.get_or_init(|| Named {
        name: f.client.server_name.to_string(),
        forwarded_server: HeaderValue::from_str(f.client.server_name)
            .unwrap_or(HeaderValue::from_static("httpd")),
        via_11: HeaderValue::from_str(&format!("1.1 {}", f.client.server_name))
            .unwrap_or(HeaderValue::from_static("1.1 httpd")),
    });
    let named = (named.name == f.client.server_name).then_some(named);
    if f.proxy.add_headers {
        headers::add_forwarded(&mut h, &f.client, named.map(|n| &n.forwarded_server), &scan);
    }
    if f.proxy.via {
        match named {
            Some(n) if parts.version == http::Version::HTTP_11 && !scan.via => {
                h.insert(header::VIA, n.via_11.clone());
            }
            _ => headers::add_via(&mut h, parts.version, f.client.server_name),
        }
    }
    let has_body = f.has_body;
    let limit = usize::try_from(f.limit).unwrap_or(usize::MAX);
    let mut body = Some(body);
    let timeout = f.rule.timeout.unwrap_or(f.proxy.timeout);
    let mut tried = Vec::new();
    loop {
        let (url, member) = match &f.rule.target {
            Target::Balancer(b, _) => match b.started().pick(&tried) {
                Some(i) => (
                    std::borrow::Cow::Owned(format!("{}{}", b.members[i].url, f.url)),
                    Some((b, i)),
                ),
                None => {
                    tracing::error!(url = %f.url, "no balancer member is available");
                    return (error_page::builtin(StatusCode::SERVICE_UNAVAILABLE), true);
                }
            },
            _ => (std::borrow::Cow::Borrowed(f.url.as_str()), None),
        };
        // The backend's origin (where to connect, and the default Host), and the request
        // target in origin form. A rule's fixed URL was taken apart when it was built: the
        // URL of each request only has to start with it.
        let fixed = f.rule.origin.as_ref().and_then(|o| {
            let rest = url.strip_prefix(o.prefix.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then_some((o, rest))
        });
        let bad_url = || {
            tracing::error!(url = %url, query = ?parts.uri.query(), "bad backend URL");
            (error_page::builtin(StatusCode::INTERNAL_SERVER_ERROR), true)
        };
        let (origin, uri) = match fixed {
            Some((o, rest)) => {
                let path = if rest.is_empty() { "/" } else { rest };
                // The client's own target when the backend path is the same (a rule
                // mapping `/` to `/`): shared, not copied and parsed again.
                let same = parts.uri.path_and_query().filter(|pq| pq.path() == path);
                let pq = match parts.uri.query() {
                    _ if same.is_some() => Ok(same.cloned().map(Uri::from).unwrap_or_default()),
                    Some(q) => {
                        let mut t = String::with_capacity(path.len() + 1 + q.len());
                        t.push_str(path);
                        t.push('?');
                        t.push_str(q);
                        Uri::try_from(t)
                    }
                    None if path == "/" => Ok(Uri::from_static("/")),
                    None => Uri::try_from(path.to_string()),
                };
                match pq {
                    Ok(u) => (std::borrow::Cow::Borrowed(o), u),
                    Err(_) => return bad_url(),
                }
            }
            None => {
                let full = match parts.uri.query() {
                    Some(q) => format!("{url}?{q}"),
                    None => url.to_string(),
                };
                // From the String itself: its buffer becomes the URI's, no copy.
                let Ok(u) = Uri::try_from(full) else {
                    return bad_url();
                };
                match client::Origin::of(&u) {
                    Ok(o) => {
                        let pq = match u.path_and_query() {
                            Some(pq) => Uri::from(pq.clone()),
                            None => Uri::from_static("/"),
                        };
                        (std::borrow::Cow::Owned(o), pq)
                    }
                    Err(e) => {
                        tracing::error!(backend = %url, error = %chain(&e), "backend failed");
                        return (error_page::builtin(StatusCode::BAD_GATEWAY), true);
                    }
                }
            }
        };
        // Balancer requests may be retried on another member: keep a copy.
        let mut hh = if member.is_some() {
            h.clone()
        } else {
            std::mem::take(&mut h)
        };
        // The backend's own name, unless the client's is preserved (and there is one).
        if !f.proxy.preserve_host || !hh.contains_key(header::HOST) {
            if let Some(v) = &origin.host_value {
                hh.insert(header::HOST, v.clone());
            }
        }
        let req_body: ReqBody = match body.take() {
            // An HTTP/2 stream's body carries its own RequestReadTimeout.
            Some(b) if has_body => match parts.extensions.get::<BodyTimer>() {
                Some(t) => Limited::new(TimedBody::new(b, t.clock()), limit).boxed_unsync(),
                None => Limited::new(b, limit).boxed_unsync(),
            },
            _ => Empty::new().map_err(|e| match e {}).boxed_unsync(),
        };
        let mut req = Request::new(req_body);
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = hh;
        if let Some((b, i)) = member {
            b.members[i].busy.fetch_add(1, Ordering::Relaxed);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let sent = f
            .rule
            .client
            .request(&origin, req, upgrade.is_some(), deadline)
            .await;
        if let Some((b, i)) = member {
            b.members[i].busy.fetch_sub(1, Ordering::Relaxed);
        }
        match sent {
            Err(e) if e.is_timeout() => {
                tracing::error!(backend = %url, timeout = ?timeout, "backend timed out");
                return (error_page::builtin(StatusCode::GATEWAY_TIMEOUT), true);
            }
            Err(e) => {
                if body_too_large(&e) {
                    return (error_page::builtin(StatusCode::PAYLOAD_TOO_LARGE), true);
                }
                tracing::error!(backend = %url, error = %chain(&e), "backend failed");
                if let Some((b, i)) = member {
                    if e.is_connect() {
                        b.mark_down(i);
                        tried.push(i);
                        // Retry on another member: only when nothing of the body was
                        // consumed and the method is idempotent (RFC 9110 §9.2.2).
                        if !has_body && parts.method.is_idempotent() {
                            continue;
                        }
                    }
                }
                return (error_page::builtin(StatusCode::BAD_GATEWAY), true);
            }
            Ok(resp) => {
                let upgrading = upgrade.is_some();
                if resp.status() == StatusCode::SWITCHING_PROTOCOLS && !upgrading {
                    tracing::error!(backend = %url, "backend switched protocols unasked");
                    return (error_page::builtin(StatusCode::BAD_GATEWAY), true);
                }
                return (relay(&f, resp, parts, upgrading), false);
            }
        }
    }
}

fn body_too_large(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.is::<LengthLimitError>() {
            return true;
        }
        cur = c.source();
    }
    false
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The backend's response back to the client: headers cleaned and reversed, the body
/// streamed. A 101 keeps its Connection/Upgrade pair, and the backend's upgraded
/// connection is handed to the client's connection task, which splices the two once hyper
/// has written the 101 (a backend that refuses the upgrade is relayed as any response).
fn relay(
    f: &Forward<'_>,
    mut resp: Response<client::ProxyBody>,
    parts: &http::request::Parts,
    upgrading: bool,
) -> Response<Body> {
    let switching = upgrading && resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching {
        let backend = hyper::upgrade::on(&mut resp);
        // A tunnel quiet both ways for the rule's timeout (ProxyTimeout) is closed.
        let idle = f.rule.timeout.unwrap_or(f.proxy.timeout);
        f.conn.set_tunnel(Box::pin(async move {
            match backend.await {
                Ok(up) => Some(Box::new(client::IdleTimeout::new(TokioIo::new(up), idle))
                    as Box<dyn crate::connection::TunnelIo>),
                Err(e) => {
                    tracing::error!(error = %e, "backend upgrade failed");
                    None
                }
            }
        }));
    }
    let upgrade_hdr = switching
        .then(|| resp.headers().get(header::UPGRADE).cloned())
        .flatten();
    let (mut rp, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut rp.headers);
    if switching {
        rp.headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(u) = upgrade_hdr {
            rp.headers.insert(header::UPGRADE, u);
        }
        return Response::from_parts(rp, Body::empty());
    }
    if !f.proxy.reverse.is_empty() {
        let front = parts
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(|h| format!("{}://{h}", f.client.proto))
            .unwrap_or_default();
        headers::reverse(&mut rp.headers, &f.proxy.reverse, &front);
    }
    Response::from_parts(rp, Body::stream(Box::pin(body)))
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

    fn host(passes: &[(&str, &str)]) -> model::Host {
        let mut h = model::Host::default();
        for (path, target) in passes {
            let target = if *target == "!" {
                model::ProxyTarget::Exclude
            } else {
                model::ProxyTarget::Url {
                    url: target.to_string(),
                }
            };
            h.proxy.pass.push(model::ProxyPass {
                path: path.to_string(),
                regex: false,
                target,
                params: Default::default(),
                loc: test_loc(),
            });
        }
        h
    }

    #[tokio::test]
    async fn route_table() {
        let h = host(&[
            ("/app/static/", "!"),
            ("/app/api/", "http://127.0.0.1:2/v1/"),
            ("/app/", "http://127.0.0.1:1/"),
            ("/app/api/shadowed/", "http://127.0.0.1:3/"),
        ]);
        let p = Proxy::build(&h, &[], &Default::default()).unwrap().unwrap();
        let cases = [
            ("/app/x", Some("http://127.0.0.1:1/x")),
            ("/app/static/a.css", None),
            ("/app/api/users", Some("http://127.0.0.1:2/v1/users")),
            // First match in config order: the later, longer rule never matches.
            (
                "/app/api/shadowed/x",
                Some("http://127.0.0.1:2/v1/shadowed/x"),
            ),
            ("/other", None),
        ];
        for (path, want) in cases {
            assert_eq!(
                p.route(path).map(|(_, u)| u),
                want.map(str::to_string),
                "{path}"
            );
        }
    }
}
