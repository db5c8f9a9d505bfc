//! CGI (RFC 3875, mod_cgi): `ScriptAlias` directories and `AddHandler cgi-script .ext` /
//! `SetHandler cgi-script` with `Options ExecCGI`.
//!
//! The script runs with a cleared environment holding the meta-variables (§4.1) and one
//! `HTTP_*` per request header, except `Proxy` (httpoxy, CVE-2016-5385) and
//! `Authorization` (Apache withholds credentials). The request body is streamed to its
//! stdin, its stderr goes to the error log, and its output is parsed: the header block
//! (§6.3) must be well-formed within `Timeout` or the client gets a 500 and the script is
//! killed; then the body is streamed, each read bounded by `Timeout`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::BytesMut;
use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::oneshot;

use crate::body::Body;
use crate::body_timer::{BodyClock, BodyTimer};
use crate::error_page;
use crate::pipeline::Mapped;
use crate::site::{Effective, Host, Matcher};

/// The largest header block a script may print.
pub const MAX_HEAD: usize = 64 * 1024;

/// Which script a request runs: the file, SCRIPT_NAME and PATH_INFO.
#[derive(Debug, PartialEq, Eq)]
pub struct Script {
    pub file: PathBuf,
    pub script_name: String,
    pub path_info: String,
}

/// The script for `path`: under a ScriptAlias, or a file whose handler is cgi-script
/// (with ExecCGI). None when the request is not a CGI one.
pub fn find(host: &Host, eff: &Effective, path: &str, mapped: &Mapped) -> Option<Script> {
    for a in host.aliases.iter().filter(|a| a.script) {
        if let Matcher::Regex(_) = a.url {
            // ScriptAliasMatch: the target with $N substituted names the script, perhaps
            // followed by PATH_INFO (Apache splits it off at the first existing file).
            if let Some(target) = a.url.substitute(path, &a.target) {
                return Some(split_path_info(Path::new(&target), path));
            }
            continue;
        }
        let Some(n) = a.url.url_match_len(path) else {
            continue;
        };
        let n = n.min(path.len());
        let rest = path[n..].trim_start_matches('/');
        let (name, info) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let prefix = path[..n].trim_end_matches('/');
        return Some(Script {
            file: Path::new(&a.target).join(name),
            script_name: format!("{prefix}/{name}"),
            path_info: info.to_string(),
        });
    }
    let by_ext = !eff.add_handler.is_empty()
        && mapped
            .fs_path()
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .is_some_and(|ext| {
                eff.add_handler
                    .iter()
                    .rev()
                    .any(|(e, h)| *e == ext && h.eq_ignore_ascii_case("cgi-script"))
            });
    if (eff.handler == crate::site::Handler::Cgi || by_ext) && eff.options.exec_cgi {
        return Some(Script {
            file: mapped.fs_path().to_path_buf(),
            script_name: path.to_string(),
            path_info: String::new(),
        });
    }
    None
}

/// A ScriptAliasMatch target: the longest leading part that is an existing file is the
/// script, the rest PATH_INFO; SCRIPT_NAME is the URL path without that PATH_INFO.
fn split_path_info(target: &Path, url_path: &str) -> Script {
    let mut file = target.to_path_buf();
    let mut info = String::new();
    while !file.is_file() {
        let (Some(parent), Some(name)) = (file.parent(), file.file_name()) else {
            // Nothing on the way is a file: run() answers 404 for the whole target.
            return Script {
                file: target.to_path_buf(),
                script_name: url_path.to_string(),
                path_info: String::new(),
            };
        };
        info = format!("/{}{info}", name.to_string_lossy());
        file = parent.to_path_buf();
    }
    let script_name = url_path
        .strip_suffix(info.as_str())
        .unwrap_or(url_path)
        .to_string();
    Script {
        file,
        script_name,
        path_info: info,
    }
}

/// Everything about the request a script's environment needs.
pub struct Invocation<'a> {
    pub script: Script,
    pub parts: &'a http::request::Parts,
    pub remote: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
    /// The client connected over TLS (through httpd-tls).
    pub https: bool,
    pub server_name: &'a str,
    pub document_root: &'a Path,
    pub user: Option<&'a str>,
    pub timeout: Duration,
}

/// The meta-variables of RFC 3875 §4.1 and the HTTP_* ones.
fn environment(inv: &Invocation<'_>) -> Vec<(String, String)> {
    let p = inv.parts;
    let mut env = vec![
        ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("SERVER_SOFTWARE".into(), "httpd".into()),
        ("SERVER_PROTOCOL".into(), format!("{:?}", p.version)),
        ("REQUEST_METHOD".into(), p.method.to_string()),
        ("QUERY_STRING".into(), p.uri.query().unwrap_or("").into()),
        (
            "REQUEST_URI".into(),
            p.uri.path_and_query().map_or("/", |x| x.as_str()).into(),
        ),
        ("SCRIPT_NAME".into(), inv.script.script_name.clone()),
        (
            "SCRIPT_FILENAME".into(),
            inv.script.file.to_string_lossy().into_owned(),
        ),
        ("SERVER_NAME".into(), inv.server_name.into()),
        (
            "DOCUMENT_ROOT".into(),
            inv.document_root.to_string_lossy().into_owned(),
        ),
    ];
    if !inv.script.path_info.is_empty() {
        env.push(("PATH_INFO".into(), inv.script.path_info.clone()));
        env.push((
            "PATH_TRANSLATED".into(),
            format!("{}{}", inv.document_root.display(), inv.script.path_info),
        ));
    }
    if let Some(r) = inv.remote {
        env.push(("REMOTE_ADDR".into(), r.ip().to_string()));
        env.push(("REMOTE_PORT".into(), r.port().to_string()));
    }
    if let Some(l) = inv.local {
        env.push(("SERVER_ADDR".into(), l.ip().to_string()));
        env.push(("SERVER_PORT".into(), l.port().to_string()));
    }
    // Apache sets HTTPS=on only for TLS connections, and REQUEST_SCHEME always.
    if inv.https {
        env.push(("HTTPS".into(), "on".into()));
    }
    let scheme = if inv.https { "https" } else { "http" };
    env.push(("REQUEST_SCHEME".into(), scheme.into()));
    if let Some(u) = inv.user {
        env.push(("REMOTE_USER".into(), u.into()));
        env.push(("AUTH_TYPE".into(), "Basic".into()));
    }
    for (k, v) in &p.headers {
        let name = k.as_str();
        match name {
            "content-type" => env.push(("CONTENT_TYPE".into(), lossy(v))),
            "content-length" => env.push(("CONTENT_LENGTH".into(), lossy(v))),
            // httpoxy: a client must not be able to set HTTP_PROXY for the script.
            "proxy" | "authorization" | "proxy-authorization" => {}
            _ => {
                let var = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
                match env.iter_mut().find(|(k, _)| *k == var) {
                    Some((_, old)) => {
                        old.push_str(", ");
                        old.push_str(&lossy(v));
                    }
                    None => env.push((var, lossy(v))),
                }
            }
        }
    }
    env
}

fn lossy(v: &HeaderValue) -> String {
    String::from_utf8_lossy(v.as_bytes()).into_owned()
}

/// What a script answered.
pub enum Output {
    /// A document or a client redirect (§6.2.1, §6.2.3, §6.2.4), or the error page
    /// that replaces a broken script's output.
    Response(Response<Body>),
    /// A local redirect (§6.2.2): `Location: /path` without a Status. The server serves
    /// that path itself, as a GET (Apache's internal redirect). The client's body stream
    /// comes back (whatever the script left unread of it is not read again).
    LocalRedirect(String, Option<Incoming>),
}

/// Runs the script (with the request body on its stdin, when there is one) and returns
/// its output (a 500 when it cannot start or prints a bad header block, a 504 when it
/// says nothing within Timeout; a 413 when a chunked body goes over `limit` and a 400
/// when the body cannot be read — the pipeline makes that a 408 when the body timeout
/// was the cause — both before the script answered).
pub async fn run(inv: Invocation<'_>, body: Option<Incoming>, limit: u64) -> Output {
    Output::Response(match start(inv, body, limit).await {
        Ok(out) => return out,
        Err(resp) => resp,
    })
}

async fn start(
    inv: Invocation<'_>,
    body: Option<Incoming>,
    limit: u64,
) -> Result<Output, Response<Body>> {
    let file = &inv.script.file;
    if !file.is_file() {
        return Err(error_page::builtin(StatusCode::NOT_FOUND));
    }
    let mut cmd = Command::new(file);
    cmd.env_clear()
        .envs(environment(&inv))
        .current_dir(file.parent().unwrap_or(Path::new("/")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(script = %file.display(), error = %e, "cannot run CGI script");
            return Err(error_page::builtin(StatusCode::INTERNAL_SERVER_ERROR));
        }
    };
    if let Some(stderr) = child.stderr.take() {
        let name = file.display().to_string();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                tracing::error!(script = %name, "{l}");
            }
        });
    }
    // The body goes to stdin from its own task (the script may answer before reading it
    // all). That task reports a body it could not deliver, and gives the body stream
    // back when told to stop (a local redirect).
    let (failed_tx, mut failed_rx) = oneshot::channel::<StatusCode>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let feeder = match (child.stdin.take(), body) {
        (Some(stdin), Some(body)) => {
            // An HTTP/2 stream's body carries its own RequestReadTimeout.
            let clock = inv
                .parts
                .extensions
                .get::<BodyTimer>()
                .map(BodyTimer::clock);
            Some(tokio::spawn(feed_stdin(
                stdin, body, clock, limit, failed_tx, stop_rx,
            )))
        }
        _ => None,
    };
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut out = BufReader::new(stdout);
    let head = tokio::select! {
        h = tokio::time::timeout(inv.timeout, read_head(&mut out)) => h,
        Ok(status) = &mut failed_rx => {
            tracing::error!(script = %file.display(), "request body not delivered to the CGI script ({status}); killed");
            let _ = child.start_kill();
            return Err(error_page::builtin(status));
        }
    };
    let head = match head {
        Err(_) => {
            tracing::error!(script = %file.display(), timeout = ?inv.timeout, "CGI script timed out; killed");
            let _ = child.start_kill();
            return Err(error_page::builtin(StatusCode::GATEWAY_TIMEOUT));
        }
        Ok(Err(why)) => {
            tracing::error!(script = %file.display(), "malformed header from CGI script: {why}");
            let _ = child.start_kill();
            return Err(error_page::builtin(StatusCode::INTERNAL_SERVER_ERROR));
        }
        Ok(Ok(h)) => h,
    };
    // §6.2.2: a local path in Location and no Status is served by the server itself
    // (as Apache does, whatever else the script printed; its body is discarded).
    let has_status = head.iter().any(|(n, _)| n.eq_ignore_ascii_case("status"));
    if let Some((_, loc)) = head
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("location"))
    {
        if !has_status && loc.starts_with('/') && !loc.starts_with("//") {
            let _ = child.start_kill();
            let _ = stop_tx.send(());
            let body = match feeder {
                Some(task) => task.await.ok().flatten(),
                None => None,
            };
            return Ok(Output::LocalRedirect(loc.clone(), body));
        }
    }
    let mut status = StatusCode::OK;
    let mut resp = Response::new(Body::empty());
    for (name, value) in head {
        if name.eq_ignore_ascii_case("status") {
            match value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse::<u16>().ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
            {
                Some(s) => status = s,
                None => {
                    tracing::error!(script = %file.display(), "bad Status line {value:?}");
                    let _ = child.start_kill();
                    return Err(error_page::builtin(StatusCode::INTERNAL_SERVER_ERROR));
                }
            }
            continue;
        }
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) else {
            let _ = child.start_kill();
            return Err(error_page::builtin(StatusCode::INTERNAL_SERVER_ERROR));
        };
        if n == http::header::LOCATION && status == StatusCode::OK {
            // §6.2.3/6.2.4: a client redirect response.
            status = StatusCode::FOUND;
        }
        resp.headers_mut().append(n, v);
    }
    *resp.status_mut() = status;
    let stream = futures_util::stream::unfold(
        (out, child, inv.timeout),
        |(mut out, child, timeout): (BufReader<ChildStdout>, Child, Duration)| async move {
            let mut buf = BytesMut::zeroed(32 * 1024);
            match tokio::time::timeout(timeout, out.read(&mut buf)).await {
                Ok(Ok(0)) => None,
                Ok(Ok(n)) => {
                    buf.truncate(n);
                    Some((Ok(Frame::data(buf.freeze())), (out, child, timeout)))
                }
                Ok(Err(e)) => Some((Err(e), (out, child, timeout))),
                Err(_) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "CGI script output stalled",
                    )),
                    (out, child, timeout),
                )),
            }
        },
    );
    *resp.body_mut() = Body::stream(Box::pin(StreamBody::new(stream)));
    Ok(Output::Response(resp))
}

/// Copies the request body to the script's stdin, up to `limit` bytes. A body that
/// fails, stalls past `clock` (HTTP/2) or goes over the limit is reported on `failed`; on
/// `stop` the body stream is given back (None once it has failed).
async fn feed_stdin(
    mut stdin: ChildStdin,
    mut body: Incoming,
    mut clock: Option<BodyClock>,
    limit: u64,
    failed: oneshot::Sender<StatusCode>,
    stop: oneshot::Receiver<()>,
) -> Option<Incoming> {
    let mut stop = Some(stop);
    let mut sent = 0u64;
    loop {
        let frame = tokio::select! {
            biased;
            () = told_to_stop(&mut stop) => return Some(body),
            f = body.frame() => f,
            () = BodyClock::expired(&mut clock) => {
                // The pipeline sees the timer fired and answers 408.
                let _ = failed.send(StatusCode::REQUEST_TIMEOUT);
                return None;
            }
        };
        match frame {
            None => return Some(body),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "request body for a CGI script failed");
                let _ = failed.send(StatusCode::BAD_REQUEST);
                return None;
            }
            Some(Ok(frame)) => {
                let Ok(d) = frame.into_data() else { continue };
                if let Some(c) = clock.as_mut() {
                    c.received(d.len());
                }
                sent += d.len() as u64;
                if sent > limit {
                    let _ = failed.send(StatusCode::PAYLOAD_TOO_LARGE);
                    return None;
                }
                // A script that stops reading its stdin just does not get the rest.
                let write = tokio::select! {
                    biased;
                    () = told_to_stop(&mut stop) => return Some(body),
                    w = stdin.write_all(&d) => w,
                };
                if write.is_err() {
                    return Some(body);
                }
            }
        }
    }
}

/// Resolves when `stop` is sent to; never when it is dropped unsent (the script's
/// response is then being streamed, and its stdin still gets the body).
async fn told_to_stop(stop: &mut Option<oneshot::Receiver<()>>) {
    if let Some(rx) = stop {
        if rx.await.is_ok() {
            return;
        }
        *stop = None;
    }
    std::future::pending().await
}

/// The header block: `Name: value` lines up to an empty line, LF or CRLF. Public for the
/// fuzz target (`fuzz/checks/core/cgi_header.rs`).
#[doc(hidden)]
pub async fn read_head<R: tokio::io::AsyncBufRead + Unpin>(
    out: &mut R,
) -> Result<Vec<(String, String)>, &'static str> {
    let mut fields = Vec::new();
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        // Bounded: a script printing one endless line must not fill memory.
        let room = (MAX_HEAD - total) as u64 + 1;
        let n = (&mut *out)
            .take(room)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|_| "read error")?;
        if n == 0 {
            return Err("output ended before the end of the headers");
        }
        total += n;
        if total > MAX_HEAD {
            return Err("header block too large");
        }
        let line = std::str::from_utf8(&line).map_err(|_| "not UTF-8")?;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').ok_or("a line without a colon")?;
        if k.is_empty()
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        {
            return Err("bad header name");
        }
        fields.push((k.to_string(), v.trim().to_string()));
    }
    if fields.is_empty() {
        return Err("no headers");
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn read_head_table() {
        let cases: [(&[u8], Result<usize, &str>); 6] = [
            (b"Content-Type: text/plain\n\nbody", Ok(1)),
            (b"Status: 404 Nope\r\nX-A: 1\r\n\r\n", Ok(2)),
            (b"not a header\n\n", Err("a line without a colon")),
            (b"Bad Name: x\n\n", Err("bad header name")),
            (
                b"Content-Type: text/plain\n",
                Err("output ended before the end of the headers"),
            ),
            (b"\n", Err("no headers")),
        ];
        for (input, want) in cases {
            let mut r = BufReader::new(input);
            assert_eq!(read_head(&mut r).await.map(|f| f.len()), want, "{input:?}");
        }
    }

    /// One endless header line is cut off at MAX_HEAD, not read into memory whole.
    #[tokio::test]
    async fn read_head_bounds_a_long_line() {
        let big = vec![b'a'; 4 * MAX_HEAD];
        let mut r = BufReader::new(&big[..]);
        assert_eq!(read_head(&mut r).await, Err("header block too large"));
        let left = r.into_inner().len();
        assert!(
            big.len() - left <= MAX_HEAD + 8192,
            "read {} bytes",
            big.len() - left
        );
    }

    #[test]
    fn environment_has_no_httpoxy() {
        let req = http::Request::builder()
            .uri("/cgi-bin/a.sh?x=1")
            .header("proxy", "http://evil:1")
            .header("authorization", "Basic eDp5")
            .header("x-a", "1")
            .header("content-length", "3")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let inv = Invocation {
            script: Script {
                file: "/srv/cgi/a.sh".into(),
                script_name: "/cgi-bin/a.sh".into(),
                path_info: "/p".into(),
            },
            parts: &parts,
            remote: None,
            local: None,
            https: true,
            server_name: "h",
            document_root: Path::new("/srv/www"),
            user: None,
            timeout: Duration::from_secs(1),
        };
        let env = environment(&inv);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("HTTP_PROXY"), None);
        assert_eq!(get("HTTP_AUTHORIZATION"), None);
        assert_eq!(get("HTTPS"), Some("on"));
        assert_eq!(get("REQUEST_SCHEME"), Some("https"));
        assert_eq!(get("HTTP_X_A"), Some("1"));
        assert_eq!(get("CONTENT_LENGTH"), Some("3"));
        assert_eq!(get("QUERY_STRING"), Some("x=1"));
        assert_eq!(get("PATH_INFO"), Some("/p"));
        assert_eq!(get("PATH_TRANSLATED"), Some("/srv/www/p"));
    }
}
