//! The reverse proxy (mod_proxy, mod_proxy_http, mod_proxy_balancer, mod_proxy_wstunnel).
//!
//! - [`Proxy::build`] turns a host's `ProxyPass`/`ProxyPassMatch`/`ProxyPassReverse` and
//!   the config's balancers into rules, each with a pooled keep-alive client
//!   (`client`; `wire` and `response` speak HTTP/1.1 on its connections, driven by the
//!   request's own task).
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
mod response;
mod wire;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use httpd_conftest::model;
use hyper::body::Incoming;

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
    let scan = headers::RequestScan::of(&parts.headers);
    // The client must also have listed Upgrade in Connection (RFC 9110 §7.8), and the
    // connection must be one that can be upgraded (HTTP/1.1 served with upgrades).
    let upgrade = f
        .rule
        .allowed_upgrade(scan.upgrade.as_ref())
        .filter(|_| {
            scan.connection_upgrade
                && parts
                    .extensions
                    .get::<hyper::upgrade::OnUpgrade>()
                    .is_some()
        })
        .cloned();
    // The client's Host, or an HTTP/2 request's :authority (HTTP/2 has no Host field,
    // the pipeline's `client.host` falls back to it), which ProxyPreserveHost keeps.
    let client_host = match &scan.host {
        Some(v) => Some(v.as_bytes()),
        None => f.client.host.map(str::as_bytes),
    };
    // Every field but Host and the framing, the same for every attempt.
    let mut fields = Vec::with_capacity(512);
    let via = f.proxy.via.then_some(match parts.version {
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2.0",
        _ => "1.1",
    });
    let adds = headers::Adds {
        client: &f.client,
        forwarded: f.proxy.add_headers,
        via,
    };
    headers::write_fields(&mut fields, &parts.headers, &scan, &adds);
    if let Some(u) = &upgrade {
        fields.extend_from_slice(b"connection: upgrade\r\nupgrade: ");
        fields.extend_from_slice(u.as_bytes());
        fields.extend_from_slice(b"\r\n");
    }
    let has_body = f.has_body;
    let length = scan.length;
    let declared = match (has_body, length) {
        (true, Some(n)) => wire::Declared::Length(n),
        (true, None) => wire::Declared::Chunked,
        // An empty body the client declared stays declared (a POST with no body).
        (false, Some(_)) => wire::Declared::Length(0),
        (false, None) => wire::Declared::Nothing,
    };
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
        let (origin, target) = match fixed {
            Some((o, rest)) => {
                let path = if rest.is_empty() { "/" } else { rest };
                let target = match parts.uri.query() {
                    Some(q) => {
                        let mut t = String::with_capacity(path.len() + 1 + q.len());
                        t.push_str(path);
                        t.push('?');
                        t.push_str(q);
                        std::borrow::Cow::Owned(t)
                    }
                    None => std::borrow::Cow::Borrowed(path),
                };
                (std::borrow::Cow::Borrowed(o), target)
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
                        let pq = u.path_and_query().map_or("/", |pq| pq.as_str());
                        let pq = if pq.is_empty() { "/" } else { pq };
                        (
                            std::borrow::Cow::Owned(o),
                            std::borrow::Cow::Owned(pq.to_string()),
                        )
                    }
                    Err(e) => {
                        tracing::error!(backend = %url, error = %chain(&e), "backend failed");
                        return (error_page::builtin(StatusCode::BAD_GATEWAY), true);
                    }
                }
            }
        };
        // RFC 9112 §3.2: the target goes on the request line as it is, so it must be
        // visible ASCII (what a parsed URI holds).
        if !target.bytes().all(|b| b.is_ascii_graphic()) {
            return bad_url();
        }
        // The backend's own name, unless the client's is preserved (and there is one).
        let host = match client_host {
            Some(h) if f.proxy.preserve_host => Some(h),
            _ => origin
                .host_value
                .as_ref()
                .map(|v| v.as_bytes())
                .or(client_host),
        };
        let head = wire::request_head(&parts.method, &target, host, &fields, &declared);
        let upload = match body.take() {
            // An HTTP/2 stream's body carries its own RequestReadTimeout.
            Some(b) if has_body => {
                let b: ReqBody = match parts.extensions.get::<BodyTimer>() {
                    Some(t) => Limited::new(TimedBody::new(b, t.clock()), limit).boxed_unsync(),
                    None => Limited::new(b, limit).boxed_unsync(),
                };
                Some(wire::Upload::new(b, length))
            }
            _ => None,
        };
        let out = client::Outgoing {
            head,
            head_method: parts.method == http::Method::HEAD,
            idempotent: parts.method.is_idempotent(),
            upload,
        };
        if let Some((b, i)) = member {
            b.members[i].busy.fetch_add(1, Ordering::Relaxed);
        }
        let now = tokio::time::Instant::now();
        let sent = f
            .rule
            .client
            .request(&origin, out, upgrade.is_some(), now, now + timeout)
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
    resp: Response<response::ProxyBody>,
    parts: &http::request::Parts,
    upgrading: bool,
) -> Response<Body> {
    // The backend's hop-by-hop fields were left out as its head was read; a 101 keeps
    // its Upgrade.
    let (mut rp, body) = resp.into_parts();
    if upgrading && rp.status == StatusCode::SWITCHING_PROTOCOLS {
        // A tunnel quiet both ways for the rule's timeout (ProxyTimeout) is closed.
        let idle = f.rule.timeout.unwrap_or(f.proxy.timeout);
        let tunnel = body.into_tunnel().map(|(io, early)| {
            Box::new(client::IdleTimeout::new(io, early, idle))
                as Box<dyn crate::connection::TunnelIo>
        });
        f.conn.set_tunnel(Box::pin(std::future::ready(tunnel)));
        rp.headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
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
