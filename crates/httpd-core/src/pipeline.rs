//! One request, start to finish, the same for every handler:
//! 1. framing and protocol checks (Host, CL+TE, limits, `*`, CONNECT, TRACE);
//! 2. the virtual host (Host header or absolute-form authority, RFC 9112 §3.2.2);
//! 3. Redirect/RedirectMatch, then Alias/AliasMatch or the DocumentRoot;
//! 4. the merged per-directory settings, RequestHeader, Require;
//! 5. the handler chosen by SetHandler ([`Handler`]: static files, server-status; issue 4
//!    plugs Proxy and Cgi in here);
//! 6. ErrorDocument, Header, Server, `Connection: close` when the connection must end;
//! 7. the access log line and statistics, when the body is done ([`LogDone`]).

use std::borrow::Cow;
use std::cell::OnceCell;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use crate::access_log::{AccessLog, Entry};
use crate::body::{Body, Completion};
use crate::connection::{ConnShared, Phase};
use crate::error_page;
use crate::resolve;
use crate::server::ServerState;
use crate::site::{self, Effective, ErrorDocument, Handler, HeaderAction, HeaderRule, Host, Site};
use crate::static_files::{self, StaticRequest};

/// What every request on one connection shares.
pub struct ConnCtx {
    pub site: Arc<Site>,
    pub state: Arc<ServerState>,
    pub shared: Arc<ConnShared>,
}

/// Handles one request.
pub async fn handle(req: Request<Incoming>, ctx: Arc<ConnCtx>) -> Response<Body> {
    let shared = &ctx.shared;
    shared.set_phase(Phase::Handling);
    let nth = shared.requests.fetch_add(1, Ordering::AcqRel) + 1;
    ctx.state.busy.fetch_add(1, Ordering::AcqRel);
    let (mut parts, body) = req.into_parts();
    let site = &ctx.site;

    let mut close = false;
    let checked = check(&parts, site, shared)
        .map(|name| Arc::clone(site.select_host(shared.local, name.as_deref())));
    let host = match &checked {
        Ok(host) => Arc::clone(host),
        Err(_) => Arc::clone(site.select_host(shared.local, None)),
    };
    // The clocks are read only for an access log (%t, %D).
    let start = (!host.access_logs.is_empty()).then(|| (Instant::now(), SystemTime::now()));
    let mut resp = match checked {
        Err(status) => {
            close = true;
            if matches!(status.as_u16(), 413 | 414 | 431) {
                shared.linger.store(true, Ordering::Release);
            }
            error_page::builtin(status)
        }
        Ok(_) => route(&mut parts, Some(body), &host, site, &ctx, &mut close).await,
    };
    host.requests.fetch_add(1, Ordering::Relaxed);

    let conn = &host.conn;
    let h2 = parts.version == Version::HTTP_2;
    let mut last = false;
    // A 101 (a proxied upgrade) keeps the backend's `Connection: upgrade`.
    if !h2 && resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let we_close = close
            || !conn.keep_alive
            || (conn.max_keep_alive_requests > 0 && nth >= conn.max_keep_alive_requests);
        if we_close {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        last = we_close || client_closes(&parts);
        // Only a body written at once: a streamed one (a proxied or CGI response, events)
        // must not have its pieces held back.
        if last && resp.body().is_in_memory() {
            shared.last_response.store(true, Ordering::Relaxed);
        }
    }
    resp.headers_mut()
        .insert(header::SERVER, site.server.server_header.clone());

    let entry = start.map(|(_, wall)| entry_for(&parts, &resp, shared, &host, wall));
    let head_len = head_size(&resp);
    let done = LogDone {
        entry,
        status: resp.status().as_u16(),
        head_len,
        logs: host.access_logs.clone(),
        start: start.map(|(t, _)| t),
        state: Arc::clone(&ctx.state),
        shared: Arc::clone(shared),
        last,
    };
    resp.body_mut().on_done(Box::new(done));
    resp
}

/// Whether the client asked for the connection to end after this request: `Connection:
/// close`, or HTTP/1.0 without `keep-alive` (RFC 9112 §9.3).
fn client_closes(parts: &http::request::Parts) -> bool {
    let mut keep_alive = false;
    for v in parts.headers.get_all(header::CONNECTION) {
        for token in v.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.eq_ignore_ascii_case(b"close") {
                return true;
            }
            keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    parts.version == Version::HTTP_10 && !keep_alive
}

/// The framing and protocol checks of step 1. Ok(host name: lowercase, without port or
/// trailing dot) or the status to refuse with.
fn check<'p>(
    parts: &'p http::request::Parts,
    site: &Site,
    shared: &ConnShared,
) -> Result<Option<Cow<'p, str>>, StatusCode> {
    let h = &parts.headers;
    let limits = &site.server;
    // One pass over the fields: sizes, Host lines, Transfer-Encoding (judged below in
    // the order of the checks).
    let (mut host_hdr, mut hosts, mut te, mut too_large) = (None, 0, false, false);
    for (k, v) in h {
        too_large |= k.as_str().len() + 2 + v.len() > limits.limit_request_field_size;
        if *k == header::HOST {
            hosts += 1;
            host_hdr.get_or_insert(v);
        } else if *k == header::TRANSFER_ENCODING {
            te = true;
        }
    }
    if parts.version != Version::HTTP_2 {
        // RFC 9112 §6.1: Content-Length with Transfer-Encoding is how requests are
        // smuggled; hyper drops the Content-Length, the head bytes still show it.
        let cl_lines = shared.take_content_length_lines();
        if te && cl_lines > 0 {
            return Err(StatusCode::BAD_REQUEST);
        }
    }
    let uri = &parts.uri;
    let target_len = uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len() + 8);
    let line_len = parts.method.as_str().len() + target_len + 10;
    if line_len > limits.limit_request_line {
        return Err(StatusCode::URI_TOO_LONG);
    }
    if too_large || h.len() > limits.limit_request_fields {
        return Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    if hosts > 1 {
        return Err(StatusCode::BAD_REQUEST);
    }
    // The authority of an absolute-form target wins over Host (RFC 9112 §3.2.2).
    let name = match (parts.uri.authority(), host_hdr) {
        (Some(a), _) => Some(a.as_str()),
        (None, Some(v)) => Some(v.to_str().map_err(|_| StatusCode::BAD_REQUEST)?),
        (None, None) => None,
    };
    if name.is_none() && parts.version == Version::HTTP_11 {
        return Err(StatusCode::BAD_REQUEST);
    }
    let name = match name {
        Some(n) => {
            if n.is_empty() && parts.version == Version::HTTP_11 {
                return Err(StatusCode::BAD_REQUEST);
            }
            if !n
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
            {
                return Err(StatusCode::BAD_REQUEST);
            }
            let n = site::build::strip_port(n).trim_end_matches('.');
            Some(if n.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(n.to_ascii_lowercase())
            } else {
                Cow::Borrowed(n)
            })
        }
        None => None,
    };
    if parts.uri == "*" && parts.method != Method::OPTIONS {
        return Err(StatusCode::BAD_REQUEST);
    }
    if parts.method == Method::CONNECT {
        return Err(StatusCode::METHOD_NOT_ALLOWED);
    }
    Ok(name)
}

/// Steps 2–6 for a request that passed the checks.
async fn route(
    parts: &mut http::request::Parts,
    body: Option<Incoming>,
    host: &Arc<Host>,
    site: &Site,
    ctx: &ConnCtx,
    close: &mut bool,
) -> Response<Body> {
    let trace = site.server.trace_enable;
    if parts.uri == "*" {
        return static_files::respond(static_files::Outcome::Options, trace);
    }
    if parts.method == Method::TRACE {
        if !trace {
            let mut r = error_page::builtin(StatusCode::METHOD_NOT_ALLOWED);
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(static_files::ALLOW));
            return r;
        }
        return trace_echo(parts);
    }
    let raw_path = parts.uri.path().to_string();
    let Ok(path) = resolve::normalize(&raw_path) else {
        *close = true;
        return error_page::builtin(StatusCode::BAD_REQUEST);
    };
    // Redirect / RedirectMatch (mod_alias), in config order.
    for r in &host.redirects {
        if let Some(resp) = try_redirect(r, &path, parts.uri.query()) {
            return resp;
        }
    }
    // Alias / AliasMatch, else the DocumentRoot.
    let mapped = map_path(host, &path);
    let eff = host.effective(&path, host.by_directory().then(|| mapped.fs_path()));
    for r in location_redirects(host, &path) {
        if let Some(resp) = try_redirect(r, &path, parts.uri.query()) {
            return with_headers(resp, &eff);
        }
    }
    apply_rules(&mut parts.headers, &eff.request_headers);
    let client = ctx
        .shared
        .peer
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |p| p.ip());
    if let Some(req) = &eff.require {
        match crate::auth::authorize(req, &eff.auth, &parts.headers, client) {
            Ok(Some(user)) => {
                parts.extensions.insert(crate::auth::AuthUser(user));
            }
            Ok(None) => {}
            Err(resp) => return finish_error(*resp, &eff, host, parts, client),
        }
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if declared > eff.limit_request_body {
        *close = true;
        ctx.shared.linger.store(true, Ordering::Release);
        return error_page::builtin(StatusCode::PAYLOAD_TOO_LARGE);
    }
    // A body for the handler to read (an internal redirect's GET has none). HTTP/2 needs
    // neither header: a stream that its headers did not end carries a body.
    let streamed = parts.version == Version::HTTP_2
        && parts.extensions.get::<InternalRedirects>().is_none()
        && body
            .as_ref()
            .is_some_and(|b| !hyper::body::Body::is_end_stream(b));
    let has_body =
        declared > 0 || parts.headers.contains_key(header::TRANSFER_ENCODING) || streamed;
    if let Some(proxy) = &host.proxy {
        // FallbackResource naming a proxied path: a request for no existing file goes to
        // the backend with its original URI (files first, then the app).
        let routed = proxy.route_request(&path, &raw_path).or_else(|| {
            let fb = eff.fallback_resource.as_deref()?;
            (eff.handler == Handler::Static && !mapped.fs_path().exists())
                .then(|| proxy.fallback(fb, &raw_path))
                .flatten()
        });
        if let Some((rule, url)) = routed {
            let server_name = host.server_name.as_deref().unwrap_or("httpd");
            // The client's Host, or an HTTP/2 request's :authority.
            let front_host = parts
                .headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .or_else(|| parts.uri.authority().map(|a| a.as_str()))
                .map(str::to_string);
            let fwd = crate::proxy::Forward {
                proxy,
                rule,
                url,
                client: crate::proxy::ClientSide {
                    ip: client,
                    host: front_host.as_deref(),
                    proto: if ctx.shared.https { "https" } else { "http" },
                    server_name,
                },
                limit: eff.limit_request_body,
                conn: &ctx.shared,
                has_body,
            };
            let Some(body) = body else {
                // Every request hands its body on, internal redirects included (without
                // a Content-Length or Transfer-Encoding the proxy sends none).
                tracing::error!(url = %path, "no request body to forward");
                return error_page::builtin(StatusCode::INTERNAL_SERVER_ERROR);
            };
            if has_body {
                start_body(ctx, parts, host);
            }
            let (resp, generated) = Box::pin(crate::proxy::forward(fwd, parts, body)).await;
            if let Some(resp) = body_timed_out(ctx, parts, close) {
                return resp;
            }
            let resp = substitute(resp, &eff).await;
            return if generated {
                finish_error(resp, &eff, host, parts, client)
            } else {
                with_headers(resp, &eff)
            };
        }
    }
    if let Some(script) = crate::cgi::find(host, &eff, &path, &mapped) {
        if has_body {
            start_body(ctx, parts, host);
        }
        let user = parts
            .extensions
            .get::<crate::auth::AuthUser>()
            .map(|u| u.0.clone());
        let inv = crate::cgi::Invocation {
            script,
            parts,
            remote: ctx.shared.peer,
            local: ctx.shared.local,
            https: ctx.shared.https,
            server_name: host.server_name.as_deref().unwrap_or("localhost"),
            document_root: &host.document_root,
            user: user.as_deref(),
            timeout: host.conn.timeout,
        };
        // The script's stdin gets the body when there is one; otherwise the body stays
        // here, for a local redirect to a proxied path.
        let (body, kept) = if has_body { (body, None) } else { (None, body) };
        let out = Box::pin(crate::cgi::run(inv, body, eff.limit_request_body)).await;
        if let Some(resp) = body_timed_out(ctx, parts, close) {
            return resp;
        }
        let resp = match out {
            crate::cgi::Output::Response(r) => r,
            crate::cgi::Output::LocalRedirect(location, body) => {
                let body = body.or(kept);
                return internal_redirect(&location, parts, body, host, site, ctx, close).await;
            }
        };
        let resp = substitute(resp, &eff).await;
        return if resp.status().as_u16() >= 400 {
            finish_error(resp, &eff, host, parts, client)
        } else {
            with_headers(resp, &eff)
        };
    }
    if has_body {
        // Static handlers do not read request bodies; closing avoids treating an unread
        // body as the next request.
        *close = true;
    }
    let resp = match eff.handler {
        Handler::Status => crate::status::respond(parts, &ctx.state, site),
        // cgi-script without ExecCGI (a runnable script was handled above).
        Handler::Cgi => error_page::builtin(StatusCode::FORBIDDEN),
        Handler::Static => {
            let req = StaticRequest {
                method: &parts.method,
                headers: &parts.headers,
                url_path: &path,
                raw_path: &raw_path,
                query: parts.uri.query(),
                mapped,
                eff: &eff,
                max_ranges: eff.max_ranges,
                cache: Some(&host.file_cache),
            };
            static_files::respond(static_files::decide(&req), trace)
        }
    };
    let resp = substitute(resp, &eff).await;
    if resp.status().as_u16() >= 400 {
        finish_error(resp, &eff, host, parts, client)
    } else {
        with_headers(resp, &eff)
    }
}

/// Substitute (mod_substitute) over a response when the directory has rules. The proxy,
/// CGI and Substitute futures are boxed: a request's future is as large as the largest
/// state of everything it awaits, and hyper moves it into a box for every request
/// (callgrind: a 5 KiB copy per static file request).
async fn substitute(resp: Response<Body>, eff: &Effective) -> Response<Body> {
    if eff.substitute.is_empty() {
        return resp;
    }
    Box::pin(crate::substitute::filter(resp, &eff.substitute)).await
}

/// A handler is about to read the request body, under `RequestReadTimeout body=`: an
/// HTTP/1.1 connection times the reads itself ([`Phase::Body`]); an HTTP/2 stream gets
/// its own timer, which the proxy and CGI find in the request's extensions.
fn start_body(ctx: &ConnCtx, parts: &mut http::request::Parts, host: &Host) {
    if parts.version == Version::HTTP_2 {
        let timer = crate::body_timer::BodyTimer::new(host.conn.read_timeout.body);
        parts.extensions.insert(timer);
    } else {
        ctx.shared.set_phase(Phase::Body);
    }
}

/// The handler stopped because the client's body stalled (`RequestReadTimeout body=`):
/// Apache answers 408 and logs it. An HTTP/1.1 connection is closed too (lingering, so
/// the client can read the answer); on HTTP/2 only that stream ends.
fn body_timed_out(
    ctx: &ConnCtx,
    parts: &http::request::Parts,
    close: &mut bool,
) -> Option<Response<Body>> {
    let stream = parts
        .extensions
        .get::<crate::body_timer::BodyTimer>()
        .is_some_and(crate::body_timer::BodyTimer::fired);
    if !stream && !ctx.shared.body_timed_out.swap(false, Ordering::AcqRel) {
        return None;
    }
    tracing::error!(
        client = ?ctx.shared.peer,
        uri = %parts.uri,
        "request body read timeout (RequestReadTimeout body=)"
    );
    if !stream {
        *close = true;
        ctx.shared.linger.store(true, Ordering::Release);
    }
    Some(error_page::builtin(StatusCode::REQUEST_TIMEOUT))
}

/// How many internal redirects the request went through (more than
/// `LimitInternalRecursion`, 10 by default, is a loop: 500).
#[derive(Clone, Copy)]
struct InternalRedirects(u32);

/// A CGI local redirect (RFC 3875 §6.2.2): the server answers `location` itself, as a GET
/// without a body, through the whole pipeline again (Redirect, Alias, Require, handler;
/// a proxied path goes to its backend). `body` is the client's body stream, which the
/// new request does not read (it has neither Content-Length nor Transfer-Encoding); the
/// proxy needs one to be handed.
/// The request's own method and URI are restored afterwards for the access log (Apache
/// logs the original request too).
fn internal_redirect<'a>(
    location: &'a str,
    parts: &'a mut http::request::Parts,
    body: Option<Incoming>,
    host: &'a Arc<Host>,
    site: &'a Site,
    ctx: &'a ConnCtx,
    close: &'a mut bool,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send + 'a>> {
    // Boxed with its Send bound spelled out: route and this function call each other.
    Box::pin(async move {
        let depth = parts
            .extensions
            .get::<InternalRedirects>()
            .map_or(0, |d| d.0)
            + 1;
        let limit = site.server.limit_internal_recursion;
        if depth > limit {
            // Apache's AH00124 says the same.
            tracing::error!(
                location,
                "request exceeded the limit of {limit} internal redirects due to probable \
                 configuration error. Use 'LimitInternalRecursion' to increase the limit if \
                 necessary"
            );
            return error_page::builtin(StatusCode::INTERNAL_SERVER_ERROR);
        }
        let Ok(uri) = location.parse::<http::Uri>() else {
            tracing::error!(location, "CGI local redirect to an invalid path");
            return error_page::builtin(StatusCode::INTERNAL_SERVER_ERROR);
        };
        parts.extensions.insert(InternalRedirects(depth));
        let method = std::mem::replace(&mut parts.method, Method::GET);
        let original = std::mem::replace(&mut parts.uri, uri);
        let mut removed = Vec::new();
        for h in [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONTENT_TYPE,
        ] {
            if let Some(v) = parts.headers.remove(&h) {
                removed.push((h, v));
            }
        }
        let resp = route(parts, body, host, site, ctx, close).await;
        parts.method = method;
        parts.uri = original;
        for (h, v) in removed {
            parts.headers.insert(h, v);
        }
        resp
    })
}

/// Where a URL path lives on disk: the path, the root it must stay in, and (when the
/// root is a directory handle) the path relative to it for a kernel-checked open.
pub struct Mapped<'h> {
    /// The directory `rel` is under; the filesystem path is built from the two when first
    /// asked for (a request answered from the file cache never needs it).
    base: &'h Path,
    fs_path: OnceCell<PathBuf>,
    pub canonical_root: &'h Path,
    pub root_fd: Option<&'h std::os::fd::OwnedFd>,
    pub rel: &'h str,
}

impl Mapped<'_> {
    /// The filesystem path (see [`resolve::join`]).
    pub fn fs_path(&self) -> &Path {
        self.fs_path
            .get_or_init(|| resolve::join(self.base, self.rel))
    }
}

/// The filesystem path for a normalized URL path: Alias/AliasMatch, else the DocumentRoot.
fn map_path<'h>(host: &'h Host, path: &'h str) -> Mapped<'h> {
    for a in &host.aliases {
        if a.script {
            continue;
        }
        match &a.url {
            site::Matcher::Regex(_) => {
                if let Some(target) = a.url.substitute(path, &a.target) {
                    return Mapped {
                        base: Path::new("/"),
                        fs_path: OnceCell::from(resolve::join(Path::new("/"), &target)),
                        canonical_root: &a.canonical,
                        root_fd: None,
                        rel: "",
                    };
                }
            }
            m => {
                if let Some(n) = m.url_match_len(path) {
                    let rest = &path[n.min(path.len())..];
                    return Mapped {
                        base: Path::new(&a.target),
                        fs_path: OnceCell::new(),
                        canonical_root: &a.canonical,
                        root_fd: a.root_fd.as_deref(),
                        rel: rest.trim_matches('/'),
                    };
                }
            }
        }
    }
    Mapped {
        base: &host.document_root,
        fs_path: OnceCell::new(),
        canonical_root: &host.canonical_root,
        root_fd: host.root_fd.as_deref(),
        rel: path.trim_matches('/'),
    }
}

fn location_redirects<'h>(host: &'h Host, path: &str) -> Vec<&'h site::Redirect> {
    host.sections
        .iter()
        .filter(|s| s.kind == site::SectionKind::Location && s.matcher.matches_url(path))
        .flat_map(|s| s.dir.redirects.iter())
        .collect()
}

fn try_redirect(r: &site::Redirect, path: &str, query: Option<&str>) -> Option<Response<Body>> {
    let target = match &r.url {
        site::Matcher::Regex(_) => match &r.target {
            Some(t) => Some(r.url.substitute(path, t)?),
            None => {
                r.url.url_match_len(path)?;
                None
            }
        },
        m => {
            let n = m.url_match_len(path)?;
            r.target.as_ref().map(|t| {
                let rest = &path[n.min(path.len())..];
                let mut t = t.clone();
                if !rest.is_empty() {
                    if t.ends_with('/') && rest.starts_with('/') {
                        t.pop();
                    }
                    t.push_str(rest);
                }
                if let Some(q) = query {
                    t.push('?');
                    t.push_str(q);
                }
                t
            })
        }
    };
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FOUND);
    let mut resp = error_page::builtin(status);
    if let Some(t) = target {
        if let Ok(v) = HeaderValue::from_str(&t) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
    }
    Some(resp)
}

/// ErrorDocument, then the `always` Header rules.
fn finish_error(
    resp: Response<Body>,
    eff: &Effective,
    host: &Host,
    parts: &http::request::Parts,
    client: IpAddr,
) -> Response<Body> {
    let status = resp.status();
    let mut resp = match eff.error_documents.get(&status.as_u16()) {
        None | Some(ErrorDocument::Default) => resp,
        Some(ErrorDocument::Text(t)) => {
            error_page::text(status, t.clone(), "text/html; charset=utf-8")
        }
        Some(ErrorDocument::Remote(url)) => {
            let mut r = error_page::builtin(StatusCode::FOUND);
            if let Ok(v) = HeaderValue::from_str(url) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        Some(ErrorDocument::Local(url)) => {
            local_error_document(url, status, host, parts, client).unwrap_or(resp)
        }
    };
    // Keep what the original response said about the resource (Allow, Content-Range).
    if eff.headers.iter().any(|r| r.always) {
        apply_rules(
            resp.headers_mut(),
            &eff.headers
                .iter()
                .filter(|r| r.always)
                .cloned()
                .collect::<Vec<_>>(),
        );
    }
    resp
}

/// An ErrorDocument that is a local path: served as a GET of that path, with the original
/// status (Apache's internal redirect, one level deep). Like Apache's internal redirect it
/// passes the target's access checks (`Require`) for this client: a client the target
/// denies gets the original built-in page instead (so a page with details can be kept
/// for some clients only).
fn local_error_document(
    url: &str,
    status: StatusCode,
    host: &Host,
    parts: &http::request::Parts,
    client: IpAddr,
) -> Option<Response<Body>> {
    let path = resolve::normalize(url.split('?').next().unwrap_or(url)).ok()?;
    let mapped = map_path(host, &path);
    let eff = host.effective(&path, host.by_directory().then(|| mapped.fs_path()));
    if let Some(req) = &eff.require {
        crate::auth::authorize(req, &eff.auth, &parts.headers, client).ok()?;
    }
    let headers = HeaderMap::new();
    let req = StaticRequest {
        method: &Method::GET,
        headers: &headers,
        url_path: &path,
        raw_path: &path,
        query: None,
        mapped,
        eff: &eff,
        max_ranges: eff.max_ranges,
        cache: None,
    };
    match static_files::decide(&req) {
        o @ static_files::Outcome::File(_) => {
            let mut r = static_files::respond(o, false);
            *r.status_mut() = status;
            r.headers_mut().remove(header::ETAG);
            r.headers_mut().remove(header::LAST_MODIFIED);
            r.headers_mut().remove(header::ACCEPT_RANGES);
            Some(r)
        }
        _ => None,
    }
}

fn with_headers(mut resp: Response<Body>, eff: &Effective) -> Response<Body> {
    apply_rules(resp.headers_mut(), &eff.headers);
    resp
}

/// Header / RequestHeader (mod_headers) actions, in order.
fn apply_rules(h: &mut HeaderMap, rules: &[HeaderRule]) {
    for r in rules {
        match (r.action, &r.value) {
            (HeaderAction::Unset, _) => {
                h.remove(&r.name);
            }
            (HeaderAction::Set, Some(v)) => {
                h.insert(r.name.clone(), v.clone());
            }
            (HeaderAction::Add, Some(v)) => {
                h.append(r.name.clone(), v.clone());
            }
            (HeaderAction::SetIfEmpty, Some(v)) if !h.contains_key(&r.name) => {
                h.insert(r.name.clone(), v.clone());
            }
            (HeaderAction::Append | HeaderAction::Merge, Some(v)) => {
                let merged = match h.get(&r.name).and_then(|old| old.to_str().ok()) {
                    Some(old)
                        if r.action == HeaderAction::Merge
                            && old.split(',').any(|p| p.trim().as_bytes() == v.as_bytes()) =>
                    {
                        continue
                    }
                    Some(old) => {
                        HeaderValue::from_str(&format!("{old}, {}", v.to_str().unwrap_or_default()))
                            .unwrap_or_else(|_| v.clone())
                    }
                    None => v.clone(),
                };
                h.insert(r.name.clone(), merged);
            }
            _ => {}
        }
    }
}

/// TRACE (only with `TraceEnable On`): the request head back as message/http.
fn trace_echo(parts: &http::request::Parts) -> Response<Body> {
    let mut s = format!("{} {} {:?}\r\n", parts.method, parts.uri, parts.version);
    for (k, v) in &parts.headers {
        s.push_str(k.as_str());
        s.push_str(": ");
        s.push_str(&String::from_utf8_lossy(v.as_bytes()));
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    error_page::text(StatusCode::OK, s, "message/http")
}

fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/3.0",
    }
}

fn entry_for(
    parts: &http::request::Parts,
    resp: &Response<Body>,
    shared: &ConnShared,
    host: &Host,
    start: SystemTime,
) -> Entry {
    let logs = &host.access_logs;
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.to_string(), |pq| pq.as_str().to_string());
    let target = if parts.uri.authority().is_some() {
        parts.uri.to_string()
    } else {
        target
    };
    let bytes_in = parts.method.as_str().len()
        + target.len()
        + 12
        + parts
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>()
        + 2;
    Entry {
        remote: shared.peer,
        local: shared.local,
        start: Some(start),
        request_line: Some(format!(
            "{} {} {}",
            parts.method,
            target,
            version_str(parts.version)
        )),
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        protocol: version_str(parts.version).to_string(),
        status: resp.status().as_u16(),
        body_bytes: 0,
        bytes_in: bytes_in as u64,
        bytes_out: 0,
        duration: Default::default(),
        user: parts
            .extensions
            .get::<crate::auth::AuthUser>()
            .map(|u| u.0.clone()),
        server_name: host.server_name.clone().unwrap_or_default(),
        host_header: parts
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        req_headers: Vec::new(),
        resp_headers: Vec::new(),
        keep_alive: resp
            .headers()
            .get(header::CONNECTION)
            .is_none_or(|v| v != "close"),
    }
    .with_headers(logs, &parts.headers, resp.headers())
}

impl Entry {
    /// Captures the header values the formats of `logs` read, by name.
    fn with_headers(mut self, logs: &[Arc<AccessLog>], req: &HeaderMap, resp: &HeaderMap) -> Entry {
        self.req_headers = logs
            .iter()
            .flat_map(|l| l.format.req_headers.iter())
            .map(|n| (n.clone(), join_values(req, n)))
            .collect();
        self.resp_headers = logs
            .iter()
            .flat_map(|l| l.format.resp_headers.iter())
            .map(|n| (n.clone(), join_values(resp, n)))
            .collect();
        self
    }
}

fn join_values(h: &HeaderMap, name: &str) -> Option<String> {
    let mut it = h.get_all(name).iter();
    let first = it.next()?;
    let mut s = String::from_utf8_lossy(first.as_bytes()).into_owned();
    for v in it {
        s.push_str(", ");
        s.push_str(&String::from_utf8_lossy(v.as_bytes()));
    }
    Some(s)
}

/// The size of the response head as sent, for `%O` (hyper adds Date and may add
/// Content-Length; both are counted approximately).
fn head_size(resp: &Response<Body>) -> u64 {
    let mut n = 17 + 37; // status line and Date
    for (k, v) in resp.headers() {
        n += k.as_str().len() + v.len() + 4;
    }
    n as u64 + 2
}

/// Runs when the response body is done: the log line, the statistics, and the
/// connection back to waiting for the next request.
struct LogDone {
    entry: Option<Entry>,
    status: u16,
    head_len: u64,
    logs: Vec<Arc<AccessLog>>,
    /// When the request started (read only for an access log).
    start: Option<Instant>,
    state: Arc<ServerState>,
    shared: Arc<ConnShared>,
    /// The connection's last response (HTTP/1.1): hyper closes it after this one, so it
    /// does not go idle, and no idle deadline is armed (a timer registration and a
    /// driver wake-up, an eventfd write, per Connection: close request).
    last: bool,
}

impl Completion for LogDone {
    fn complete(self: Box<Self>, sent: u64) {
        let this = *self;
        this.state.busy.fetch_sub(1, Ordering::AcqRel);
        this.state.stats.record(this.status, sent + this.head_len);
        if let Some(mut e) = this.entry {
            e.body_bytes = sent;
            e.bytes_out = sent + this.head_len;
            e.duration = this.start.map(|t| t.elapsed()).unwrap_or_default();
            for l in &this.logs {
                l.sink.write_line(&l.format.render(&e));
            }
        }
        if !this.last {
            this.shared.set_phase(Phase::Idle);
        }
    }
}

/// A request refused by hyper's parser (hyper answered it): one log line with `%r` as `-`.
pub fn log_malformed(site: &Site, state: &ServerState, shared: &ConnShared, status: u16) {
    let host = site.select_host(shared.local, None);
    state.stats.record(status, 0);
    if host.access_logs.is_empty() {
        return;
    }
    let e = Entry {
        remote: shared.peer,
        local: shared.local,
        start: Some(SystemTime::now()),
        status,
        server_name: host.server_name.clone().unwrap_or_default(),
        ..Entry::default()
    };
    for l in &host.access_logs {
        l.sink.write_line(&l.format.render(&e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(version: Version, connection: &[&str]) -> http::request::Parts {
        let mut b = Request::builder().version(version);
        for v in connection {
            b = b.header(header::CONNECTION, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn client_closes_table() {
        let table: &[(Version, &[&str], bool)] = &[
            (Version::HTTP_11, &[], false),
            (Version::HTTP_11, &["close"], true),
            (Version::HTTP_11, &["Keep-Alive, CLOSE"], true),
            (Version::HTTP_11, &["keep-alive", " close "], true),
            (Version::HTTP_11, &["closed"], false),
            (Version::HTTP_11, &["upgrade"], false),
            (Version::HTTP_10, &[], true),
            (Version::HTTP_10, &["keep-alive"], false),
            (Version::HTTP_10, &["Keep-Alive"], false),
            (Version::HTTP_10, &["keep-alive, close"], true),
        ];
        for (version, connection, want) in table {
            let p = parts(*version, connection);
            assert_eq!(client_closes(&p), *want, "{version:?} {connection:?}");
        }
    }
}
