//! Black-box tests of httpd-core: the real binary, raw bytes and real clients.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use httpd_blackbox::*;

/// A running httpd-core with `conf` (a `Listen 127.0.0.1:0` line is prepended).
struct Core {
    server: Server,
    addr: SocketAddr,
    conf: std::path::PathBuf,
}

fn start(sb: &Sandbox, conf: &str) -> Core {
    let conf_path = sb.write("httpd.conf", format!("Listen 127.0.0.1:0\n{conf}"));
    let (server, addr) = start_core(sb.path(), &conf_path);
    Core {
        server,
        addr,
        conf: conf_path,
    }
}

/// A sandbox with a docroot `www/` holding a few files, and a secret outside it.
fn site() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("www/index.html", "<h1>home</h1>\n");
    sb.write("www/hello.txt", "hello, world\n");
    sb.write("www/digits.txt", "0123456789");
    sb.write("www/sub/page.html", "sub page\n");
    sb.write("www/.git/config", "[core] secret\n");
    sb.write("www/.well-known/security.txt", "Contact: me\n");
    sb.write("secret.txt", "TOP SECRET\n");
    sb
}

fn docroot(sb: &Sandbox) -> String {
    format!("DocumentRoot \"{}\"\n", sb.path().join("www").display())
}

/// A server on the sandbox's docroot with the directives `extra`, and server-status at
/// `/server-status` (read by [`workers`]).
fn start_with_status(sb: &Sandbox, extra: &str) -> Core {
    start(
        sb,
        &format!(
            "{}{extra}<Location /server-status>\nSetHandler server-status\n</Location>\n",
            docroot(sb)
        ),
    )
}

/// One request on a fresh connection; reads until the server closes (Connection: close).
fn raw(addr: SocketAddr, req: &str) -> String {
    raw_exchange(addr, req.as_bytes(), Duration::from_secs(10))
}

fn get(addr: SocketAddr, path: &str, extra: &str) -> String {
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n"),
    )
}

#[test]
fn version_flag_answers() {
    let sb = Sandbox::new();
    let out = run("httpd-core", sb.path(), &["--version"]);
    assert_eq!(out.status, Some(0), "{out:?}");
}

#[test]
fn get_head_and_validators() {
    let sb = site();
    let core = start(&sb, &docroot(&sb));
    let a = core.addr;
    let r = get(a, "/hello.txt", "");
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(body(&r), "hello, world\n");
    assert_eq!(header(&r, "content-length"), Some("13"));
    assert!(header(&r, "content-type")
        .unwrap()
        .starts_with("text/plain"));
    assert!(header(&r, "date").is_some());
    assert!(header(&r, "last-modified").is_some());
    let etag = header(&r, "etag").unwrap().to_string();
    assert!(etag.starts_with('"'), "strong etag: {etag}");
    let lm = header(&r, "last-modified").unwrap().to_string();

    let h = raw(
        a,
        "HEAD /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&h), 200);
    assert_eq!(header(&h, "content-length"), Some("13"));
    assert_eq!(body(&h), "", "HEAD has no body");

    let r = get(a, "/hello.txt", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(status(&r), 304, "{r}");
    assert_eq!(body(&r), "");
    let r = get(a, "/hello.txt", &format!("If-Modified-Since: {lm}\r\n"));
    assert_eq!(status(&r), 304, "{r}");
    let r = get(a, "/hello.txt", "If-None-Match: \"other\"\r\n");
    assert_eq!(status(&r), 200);
    let r = get(a, "/hello.txt", "If-Match: \"other\"\r\n");
    assert_eq!(status(&r), 412, "{r}");
    let r = get(a, "/hello.txt", &format!("If-Match: {etag}\r\n"));
    assert_eq!(status(&r), 200);
    let r = get(
        a,
        "/hello.txt",
        "If-Unmodified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n",
    );
    assert_eq!(status(&r), 412, "{r}");
    let r = get(a, "/missing.txt", "");
    assert_eq!(status(&r), 404);
    let r = get(a, "/", "");
    assert_eq!(body(&r), "<h1>home</h1>\n", "DirectoryIndex");
}

/// A 404 is remembered like a served file (static_files::cache): a file created after
/// it, also in a directory that did not exist, is served once the entry is revalidated
/// (within a second), and a deleted file goes back to 404 the same way. The remembered
/// 404 is the same answer, for GET and HEAD.
#[test]
fn a_file_created_after_a_404_is_served() {
    let sb = site();
    let core = start(&sb, &docroot(&sb));
    let a = core.addr;
    let limit = Duration::from_secs(10);
    for (url, rel) in [
        ("/late.txt", "www/late.txt"),
        ("/new/dir/late.txt", "www/new/dir/late.txt"),
    ] {
        let first = get(a, url, "");
        assert_eq!(status(&first), 404, "{first}");
        let again = get(a, url, "");
        assert_eq!(status(&again), 404, "{again}");
        assert_eq!(body(&again), body(&first));
        assert_eq!(
            header(&again, "content-type"),
            header(&first, "content-type")
        );
        let head = raw(
            a,
            &format!("HEAD {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(status(&head), 404, "{head}");

        let path = sb.write(rel, "here now\n");
        wait_until(
            limit,
            || format!("{url} is still not served"),
            || {
                let r = get(a, url, "");
                status(&r) == 200 && body(&r) == "here now\n"
            },
        );
        std::fs::remove_file(&path).unwrap();
        wait_until(
            limit,
            || format!("{url} is still served after removal"),
            || status(&get(a, url, "")) == 404,
        );
    }
}

#[test]
fn byte_ranges() {
    let sb = site();
    let core = start(&sb, &docroot(&sb));
    let a = core.addr;
    let cases = [
        ("bytes=0-3", 206, "0123", Some("bytes 0-3/10")),
        ("bytes=7-", 206, "789", Some("bytes 7-9/10")),
        ("bytes=-2", 206, "89", Some("bytes 8-9/10")),
        (
            "bytes=0-,0-,0-,0-,0-",
            206,
            "0123456789",
            Some("bytes 0-9/10"),
        ),
        ("bytes=0-2,1-4", 206, "01234", Some("bytes 0-4/10")),
        ("bytes=10-20", 416, "", Some("bytes */10")),
        ("bytes=5-2", 200, "0123456789", None),
    ];
    for (range, want, want_body, cr) in cases {
        let r = get(a, "/digits.txt", &format!("Range: {range}\r\n"));
        assert_eq!(status(&r), want, "{range}: {r}");
        if want != 416 {
            assert_eq!(body(&r), want_body, "{range}");
        }
        assert_eq!(header(&r, "content-range"), cr, "{range}");
    }
    let r = get(a, "/digits.txt", "Range: bytes=0-1,5-6\r\n");
    assert_eq!(status(&r), 206);
    let ct = header(&r, "content-type").unwrap();
    assert!(ct.starts_with("multipart/byteranges; boundary="), "{ct}");
    let b = body(&r);
    assert!(
        b.contains("Content-Range: bytes 0-1/10\r\n\r\n01\r\n"),
        "{b}"
    );
    assert!(
        b.contains("Content-Range: bytes 5-6/10\r\n\r\n56\r\n"),
        "{b}"
    );
    assert_eq!(
        header(&r, "content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        b.len()
    );
    // If-Range with a stale validator: the whole file.
    let r = get(
        a,
        "/digits.txt",
        "Range: bytes=0-1\r\nIf-Range: \"stale\"\r\n",
    );
    assert_eq!(status(&r), 200);
    // More ranges than MaxRanges (200): the whole file, not 201 parts.
    let many = vec!["0-0"; 201].join(",");
    let r = get(a, "/digits.txt", &format!("Range: bytes={many}\r\n"));
    assert_eq!(status(&r), 200);
}

#[test]
fn traversal_payloads_never_escape() {
    let sb = site();
    let core = start(&sb, &docroot(&sb));
    let a = core.addr;
    let payloads = [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/cgi-bin/.%2e/.%2e/.%2e/.%2e/secret.txt",
        "/icons/.%%32%65/.%%32%65/secret.txt",
        "/%252e%252e/secret.txt",
        "/..%2fsecret.txt",
        "/..%5csecret.txt",
        "/..\\secret.txt",
        "/%c0%ae%c0%ae/secret.txt",
        "/%e0%80%ae%e0%80%ae/secret.txt",
        "/hello.txt%00.html",
        "//etc/passwd",
        "/../../../../../../etc/passwd",
        "/.git/config",
        "/sub/../.git/config",
        "/%2egit/config",
    ];
    for p in payloads {
        let r = get(a, p, "");
        let s = status(&r);
        assert!(
            matches!(s, 400 | 403 | 404),
            "{p}: expected a refusal, got {s}"
        );
        assert!(!r.contains("TOP SECRET"), "{p} leaked the secret");
        assert!(!r.contains("[core] secret"), "{p} leaked a dotfile");
        assert!(!r.contains("root:"), "{p} leaked /etc/passwd");
    }
    // Absolute-form with a traversal in the path.
    let r = raw(
        a,
        "GET http://localhost/../secret.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(!r.contains("TOP SECRET"));
    let r = get(a, "/.well-known/security.txt", "");
    assert_eq!(status(&r), 200, "{r}");
}

#[test]
fn symlinks_need_followsymlinks_to_leave_the_root() {
    let sb = site();
    let www = sb.path().join("www");
    std::os::unix::fs::symlink(sb.path().join("secret.txt"), www.join("out.txt")).unwrap();
    std::os::unix::fs::symlink(www.join("hello.txt"), www.join("in.txt")).unwrap();
    std::os::unix::fs::symlink(sb.path(), www.join("up")).unwrap();
    let core = start(&sb, &docroot(&sb));
    let r = get(core.addr, "/out.txt", "");
    assert_eq!(status(&r), 403, "{r}");
    let r = get(core.addr, "/up/secret.txt", "");
    assert_eq!(status(&r), 403, "{r}");
    let r = get(core.addr, "/in.txt", "");
    assert_eq!(status(&r), 200, "a symlink inside the root is served");
    drop(core);
    let core = start(
        &sb,
        &format!(
            "{}<Directory \"{}\">\nOptions FollowSymLinks\n</Directory>\n",
            docroot(&sb),
            www.display()
        ),
    );
    let r = get(core.addr, "/out.txt", "");
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(body(&r), "TOP SECRET\n");
}

#[test]
fn directories_slash_index_and_listing() {
    let sb = site();
    sb.write("www/list/<b>&x.txt", "x");
    sb.write("www/list/b.txt", "y");
    let www = sb.path().join("www");
    let core = start(
        &sb,
        &format!(
            "{}<Directory \"{}/list\">\nOptions Indexes\n</Directory>\n",
            docroot(&sb),
            www.display()
        ),
    );
    let a = core.addr;
    let r = get(a, "/sub?x=1", "");
    assert_eq!(status(&r), 301);
    assert_eq!(header(&r, "location"), Some("/sub/?x=1"));
    let r = get(a, "/sub/", "");
    assert_eq!(status(&r), 403, "no index, no Indexes");
    let r = get(a, "/list/", "");
    assert_eq!(status(&r), 200, "{r}");
    assert!(body(&r).contains("&lt;b&gt;&amp;x.txt"), "{r}");
    assert!(!body(&r).contains("<b>&x"), "names are escaped");
    let r = get(a, "/list/", "Accept: application/json\r\n");
    assert!(header(&r, "content-type")
        .unwrap()
        .starts_with("application/json"));
    let v: serde_json::Value = serde_json::from_str(body(&r)).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["<b>&x.txt", "b.txt"]);
}

#[test]
fn methods() {
    let sb = site();
    let core = start(&sb, &docroot(&sb));
    let a = core.addr;
    let r = raw(
        a,
        "POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&r), 405, "{r}");
    assert_eq!(header(&r, "allow"), Some("GET, HEAD, OPTIONS"));
    let r = raw(
        a,
        "OPTIONS /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&r), 200);
    assert_eq!(header(&r, "allow"), Some("GET, HEAD, OPTIONS"));
    let r = raw(
        a,
        "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&r), 200, "{r}");
    let r = raw(
        a,
        "TRACE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&r), 405, "TraceEnable is off by default");
    let r = raw(
        a,
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    );
    assert_eq!(status(&r), 405, "{r}");
    let r = raw(a, "GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status(&r), 400, "{r}");
}

#[test]
fn malformed_framing_is_refused_and_closed() {
    let sb = site();
    let log = sb.path().join("access.log");
    let core = start(
        &sb,
        &format!(
            "{}CustomLog \"{}\" combined\nLimitRequestLine 200\nLimitRequestFieldSize 200\nLimitRequestFields 20\nLimitRequestBody 10\n",
            docroot(&sb),
            log.display()
        ),
    );
    let a = core.addr;
    let smuggle = "GET /hello.txt HTTP/1.1\r\nHost: x\r\n";
    let cases: Vec<(String, u16)> = vec![
        ("GET / HTTP/1.1\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(), 400),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n".into(),
            400,
        ),
        ("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n".into(), 400),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".into(),
            400,
        ),
        ("GET /x HTTP/1.1\r\nHost x\r\n\r\n".into(), 400),
        ("GARBAGE\r\n\r\n".into(), 400),
        (format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(300)), 414),
        // Both too long: the request line is judged first.
        (
            format!(
                "GET /{} HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "a".repeat(300),
                "b".repeat(300)
            ),
            414,
        ),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n".into(), 400),
        (format!("{smuggle}X-Big: {}\r\n\r\n", "b".repeat(300)), 431),
        (
            format!("{smuggle}{}\r\n", (0..30).map(|i| format!("X-{i}: v\r\n")).collect::<String>()),
            431,
        ),
        (
            "POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789".into(),
            413,
        ),
    ];
    for (req, want) in &cases {
        let r = raw(a, req);
        assert_eq!(status(&r), *want, "{req:?} → {r}");
        // The connection was closed (raw_exchange read to EOF well before its limit) and
        // no second response was smuggled through.
        assert_eq!(r.matches("HTTP/1.1 ").count(), 1, "{req:?} → {r}");
    }
    // Pipelined behind a harmless request in one write, the smuggling attempt is still
    // refused: each request is judged by its own head.
    let r = raw(
        a,
        "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n\
         POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    let statuses: Vec<&str> = r
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &r[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "400"], "{r}");
    drop(core);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines().any(|l| l.contains("\"-\" 400 ")),
        "a malformed request is logged with %r as -:\n{text}"
    );
}

#[test]
fn keep_alive_pipelining_and_max_requests() {
    let sb = site();
    let core = start(&sb, &format!("{}MaxKeepAliveRequests 3\n", docroot(&sb)));
    let mut s = TcpStream::connect(core.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let one = "GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    s.write_all(format!("{one}{one}{one}{one}").as_bytes())
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert_eq!(
        text.matches("HTTP/1.1 200 OK").count(),
        3,
        "three pipelined answers, then close: {text}"
    );
    assert!(text.to_ascii_lowercase().contains("connection: close"));
}

/// A pipelined request whose head arrives in two parts, with a pause longer than it takes
/// an idle connection to be parked (100 ms) between them, is answered: the connection
/// holding part of a head is not idle.
#[test]
fn a_pipelined_head_split_by_a_pause_is_answered() {
    let sb = site();
    let core = start(&sb, &docroot(&sb));
    let mut s = TcpStream::connect(core.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let one = "GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    s.write_all(format!("{one}GET /dig").as_bytes()).unwrap();
    let (head, _) = read_response(&mut s);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    std::thread::sleep(Duration::from_millis(400));
    s.write_all(b"its.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (head, _) = read_response(&mut s);
    assert!(head.starts_with("http/1.1 200"), "{head}");
}

/// `n` kept-alive connections that each made one request, then sat idle long enough
/// to be parked (100 ms): held by the server without a task of their own.
fn parked_clients(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let conns: Vec<TcpStream> = (0..n)
        .map(|i| {
            let mut s = TcpStream::connect(addr)
                .unwrap_or_else(|e| panic!("connection {i} of {n} refused: {e}"));
            s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
            s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let (head, body) = read_response(&mut s);
            assert!(head.starts_with("http/1.1 200"), "connection {i}: {head}");
            assert_eq!(body, b"hello, world\n");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    conns
}

/// `n` connections that send nothing, 400 ms after they were opened (long enough for
/// the server to park the ones it was handed).
fn silent_clients(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let conns = (0..n)
        .map(|i| {
            let s = TcpStream::connect(addr)
                .unwrap_or_else(|e| panic!("connection {i} of {n} refused: {e}"));
            s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    conns
}

/// A second request on every tenth of `conns` is answered.
fn every_tenth_answers(conns: &mut [TcpStream]) {
    for (i, s) in conns.iter_mut().enumerate().step_by(10) {
        s.write_all(b"GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let (head, body) = read_response(s);
        assert!(head.starts_with("http/1.1 200"), "connection {i}: {head}");
        assert_eq!(body, b"0123456789", "connection {i}");
    }
}

/// Reads to the end of `s`: true when the server closed it (EOF or reset), false when
/// it stayed open for the 15 s read timeout.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => rest.is_empty(),
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// server-status?auto's (BusyWorkers, IdleWorkers): open connections, the asking one
/// included.
fn workers(addr: SocketAddr) -> (u64, u64) {
    let r = get(addr, "/server-status?auto", "");
    let field = |name: &str| -> u64 {
        body(&r)
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {r}"))
            .trim()
            .parse()
            .unwrap()
    };
    (field("BusyWorkers:"), field("IdleWorkers:"))
}

/// Parked connections count as open (server-status, MaxRequestWorkers), are served
/// again when their next request comes, and are closed by KeepAliveTimeout, after which
/// they no longer count.
#[test]
fn parked_connections_are_served_counted_and_timed_out() {
    let sb = site();
    let core = start_with_status(&sb, "KeepAliveTimeout 3\n");
    let mut conns = parked_clients(core.addr, 200);
    assert_eq!(workers(core.addr), (1, 200));
    every_tenth_answers(&mut conns);
    for (i, s) in conns.iter_mut().enumerate() {
        assert!(
            closed_by_server(s),
            "connection {i} outlived KeepAliveTimeout"
        );
    }
    assert_eq!(workers(core.addr), (1, 0));
}

/// New connections that send nothing are parked after a moment, as idle kept-alive ones
/// are: they count as open, are served when their first request comes, are closed when
/// RequestReadTimeout's header limit passes (KeepAliveTimeout is a minute away), and a
/// graceful stop closes the rest at once. (`AcceptFilter http none`: by default the
/// kernel holds such connections until their first bytes; see the next test.)
#[test]
fn silent_new_connections_are_parked_served_and_timed_out() {
    let sb = site();
    let mut core = start_with_status(
        &sb,
        "RequestReadTimeout header=3\nKeepAliveTimeout 60\nGracefulShutdownTimeout 60\n\
         AcceptFilter http none\n",
    );
    let mut conns = silent_clients(core.addr, 100);
    assert_eq!(workers(core.addr), (1, 100));
    every_tenth_answers(&mut conns);
    for (i, s) in conns.iter_mut().enumerate() {
        if i % 10 != 0 {
            assert!(
                closed_by_server(s),
                "silent connection {i} outlived its header limit"
            );
        }
    }
    assert_eq!(workers(core.addr), (1, 10));
    signal(core.server.pid(), "TERM");
    for (i, s) in conns.iter_mut().enumerate().step_by(10) {
        assert!(closed_by_server(s), "connection {i} stayed open after TERM");
    }
    assert_eq!(core.server.wait_exit(Duration::from_secs(15)), Some(0));
}

/// A reload closes parked connections (their next request gets the new configuration on
/// a new connection); the next request's head on a parked connection has
/// RequestReadTimeout's header limit; a graceful stop closes them at once (it does not
/// wait for their KeepAliveTimeout, nor GracefulShutdownTimeout).
#[test]
fn parked_connections_close_at_a_reload_and_at_a_stop() {
    let sb = site();
    let mut core = start(
        &sb,
        &format!(
            "{}KeepAliveTimeout 60\nGracefulShutdownTimeout 60\nRequestReadTimeout header=1\n",
            docroot(&sb)
        ),
    );
    let mut conns = parked_clients(core.addr, 200);
    signal(core.server.pid(), "HUP");
    core.server.wait_for_line("configuration reloaded");
    for (i, s) in conns.iter_mut().enumerate() {
        assert!(closed_by_server(s), "connection {i} stayed open after HUP");
    }
    let mut conns = parked_clients(core.addr, 200);
    every_tenth_answers(&mut conns);
    // Slowloris on a parked connection: closed by the header limit (KeepAliveTimeout
    // and the stop are a minute away).
    conns[1]
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    assert!(
        closed_by_server(&mut conns[1]),
        "a stalled head outlived its limit"
    );
    std::thread::sleep(Duration::from_millis(400));
    signal(core.server.pid(), "TERM");
    for (i, s) in conns.iter_mut().enumerate() {
        assert!(closed_by_server(s), "connection {i} stayed open after TERM");
    }
    assert_eq!(core.server.wait_exit(Duration::from_secs(15)), Some(0));
    assert!(
        !core
            .server
            .output()
            .contains("GracefulShutdownTimeout reached"),
        "{}",
        core.server.output()
    );
}

/// Reads one response on a kept-alive connection: (head, body of Content-Length bytes).
fn read_response(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "head cut short: {buf:?}");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (head, body)
}

/// Large cached files are sent from the file with sendfile (static_files::zero_copy):
/// the bytes are the file's, whole or in ranges, for every request on a connection; a
/// file rewritten shorter while its entry is fresh still gets the announced length (the
/// rest from the cached copy) and the connection goes on.
#[test]
fn large_cached_files_are_sent_whole_and_in_ranges() {
    let sb = site();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let path = sb.write("www/big.bin", &data);
    let core = start(&sb, &docroot(&sb));
    let mut s = TcpStream::connect(core.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let get = |extra: &str| format!("GET /big.bin HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
    for _ in 0..3 {
        s.write_all(get("").as_bytes()).unwrap();
        let (head, body) = read_response(&mut s);
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(body == data, "body differs from the file");
    }
    s.write_all(get("Range: bytes=70000-169999\r\n").as_bytes())
        .unwrap();
    let (head, body) = read_response(&mut s);
    assert!(head.starts_with("http/1.1 206"), "{head}");
    assert!(body == data[70_000..170_000], "range differs from the file");
    // Pipelined: two whole bodies and a range in one write.
    s.write_all(format!("{}{}{}", get(""), get("Range: bytes=-100000\r\n"), get("")).as_bytes())
        .unwrap();
    for want in [&data[..], &data[200_000..], &data[..]] {
        let (_, body) = read_response(&mut s);
        assert!(body == want, "pipelined body differs");
    }
    // Rewritten in place, shorter, while the entry is fresh (within the cache's second).
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(1000).unwrap();
    s.write_all(get("").as_bytes()).unwrap();
    let (head, body) = read_response(&mut s);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body.len(), data.len(), "the announced length is sent");
    assert!(
        body[1000..] == data[1000..],
        "the rest from the cached copy"
    );
    s.write_all(get("Range: bytes=0-9\r\n").as_bytes()).unwrap();
    let (head, _) = read_response(&mut s);
    assert!(
        head.starts_with("http/1.1 20"),
        "the connection goes on: {head}"
    );
}

/// A client that reads slowly gets every response whole. The end of a body is handed to
/// hyper well before the client has it (a cached body in one piece, or a file's last
/// chunk); the connection was taken for idle then, parked after a tenth of a second
/// (ending hyper's connection) and the rest of the body was lost: wrk counted read errors
/// and clients saw short bodies on the 10 MiB row of bench/static.sh.
#[test]
fn a_slow_reader_gets_large_bodies_whole() {
    let sb = site();
    // Larger than the socket buffers can hold while nobody reads; the first response
    // streams from the file, later ones come from the cache (a hot large file).
    let data: Vec<u8> = (0..6_000_000u32).map(|i| (i * 13 % 253) as u8).collect();
    sb.write("www/large.bin", &data);
    let core = start(&sb, &docroot(&sb));
    let mut s = TcpStream::connect(core.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for round in 0..3 {
        s.write_all(b"GET /large.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(400));
        let (head, body) = read_response(&mut s);
        assert!(head.starts_with("http/1.1 200"), "round {round}: {head}");
        assert!(body == data, "round {round}: body differs from the file");
    }
}

/// The connection reads its first bytes itself (up to 2 KiB) before hyper takes over: a
/// head longer than that, one split across writes, and requests pipelined behind them are
/// all read whole.
#[test]
fn request_heads_longer_than_the_first_read() {
    let sb = site();
    let core = start(&sb, &docroot(&sb));
    let mut s = TcpStream::connect(core.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let long = format!(
        "GET /digits.txt HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
        "l".repeat(6000)
    );
    let last = "GET /digits.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    s.write_all(format!("{long}{long}").as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(&last.as_bytes()[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(&last.as_bytes()[10..]).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert_eq!(
        text.matches("HTTP/1.1 200 OK").count(),
        3,
        "three answers: {text}"
    );
}

/// By default (`AcceptFilter http data`, as Apache on Linux) a connection is handed to
/// the server only once its first bytes arrive: a silent one is not counted as open, and
/// RequestReadTimeout's header limit starts with its first bytes, so one that speaks
/// after the limit is still served.
#[test]
fn accept_filter_hands_connections_over_with_their_first_bytes() {
    let sb = site();
    let core = start_with_status(&sb, "RequestReadTimeout header=1\n");
    let mut conns = silent_clients(core.addr, 20);
    assert_eq!(
        workers(core.addr),
        (1, 0),
        "silent connections were accepted"
    );
    std::thread::sleep(Duration::from_millis(1600));
    for (i, s) in conns.iter_mut().enumerate() {
        s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (head, body) = read_response(s);
        assert!(head.starts_with("http/1.1 200"), "connection {i}: {head}");
        assert_eq!(body, b"hello, world\n", "connection {i}");
    }
    // `AcceptFilter http none` hands them over at once (the previous test).
    let off = start_with_status(&sb, "AcceptFilter http none\n");
    let _silent = TcpStream::connect(off.addr).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(workers(off.addr), (1, 1));
}

#[test]
fn slow_headers_and_idle_connections_are_cut_off() {
    let sb = site();
    let core = start(
        &sb,
        &format!(
            "{}RequestReadTimeout header=1 body=1\nKeepAliveTimeout 1\nAcceptFilter http none\n",
            docroot(&sb)
        ),
    );
    // Slowloris: a partial head, then nothing.
    let mut s = TcpStream::connect(core.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let r = s.read_to_end(&mut buf);
    assert!(
        r.is_ok() || t.elapsed() < Duration::from_secs(15),
        "closed by the server"
    );
    assert!(
        t.elapsed() < Duration::from_secs(14),
        "header timeout fired"
    );
    // A kept-alive connection that stays idle.
    let mut s = TcpStream::connect(core.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
    assert!(
        t.elapsed() < Duration::from_secs(14),
        "keep-alive timeout fired"
    );
    // A connection that sends nothing at all.
    let mut s = TcpStream::connect(core.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(t.elapsed() < Duration::from_secs(14));
}

#[test]
fn access_log_combined_parses_in_goaccess() {
    let goaccess = require_tool("goaccess");
    let sb = site();
    let log = sb.path().join("access.log");
    let core = start(
        &sb,
        &format!("{}CustomLog \"{}\" combined\n", docroot(&sb), log.display()),
    );
    for p in ["/", "/hello.txt", "/missing", "/a%20b?q=%22x%22", "/sub"] {
        get(
            core.addr,
            p,
            "Referer: http://ref.example/\r\nUser-Agent: test \"agent\"\r\n",
        );
    }
    raw(core.addr, "BAD\r\n\r\n");
    drop(core);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 6, "{text}");
    let re = regex_lite(&text);
    assert!(re, "{text}");
    let out = Command::new(goaccess)
        .arg(&log)
        .args(["--log-format=COMBINED", "-o", "json", "--no-global-config"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["general"]["failed_requests"], 0, "{}", v["general"]);
    assert_eq!(v["general"]["total_requests"], 6, "{}", v["general"]);
}

/// Every line looks like the combined format.
fn regex_lite(text: &str) -> bool {
    text.lines().all(|l| {
        let parts: Vec<&str> = l.split('"').collect();
        l.starts_with("127.0.0.1 - - [") && parts.len() >= 7
    })
}

#[test]
fn virtual_hosts_by_name_alias_and_absolute_form() {
    let sb = site();
    sb.write("a/index.html", "site A\n");
    sb.write("b/index.html", "site B\n");
    let p = sb.path().display();
    let core = start(
        &sb,
        &format!(
            "<VirtualHost *:*>\nServerName a.example\nDocumentRoot \"{p}/a\"\n</VirtualHost>\n<VirtualHost *:*>\nServerName b.example\nServerAlias *.b.example\nDocumentRoot \"{p}/b\"\n</VirtualHost>\n"
        ),
    );
    let a = core.addr;
    let host = |h: &str| {
        raw(
            a,
            &format!("GET / HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n"),
        )
    };
    assert_eq!(body(&host("a.example")), "site A\n");
    assert_eq!(body(&host("B.Example:8080")), "site B\n");
    assert_eq!(body(&host("www.b.example")), "site B\n");
    assert_eq!(
        body(&host("WWW.B.Example.:80")),
        "site B\n",
        "case, trailing dot and port ignored"
    );
    assert_eq!(
        body(&host("unknown.example")),
        "site A\n",
        "first vhost is the default"
    );
    let r = raw(
        a,
        "GET http://b.example/ HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(body(&r), "site B\n", "absolute-form authority wins");
}

#[test]
fn alias_redirect_errordocument_headers_require() {
    let sb = site();
    sb.write("extra/file.txt", "from alias\n");
    sb.write("www/errors/404.html", "custom not found\n");
    let p = sb.path().display();
    let core = start(
        &sb,
        &format!(
            "{}Alias /extra/ \"{p}/extra/\"\nRedirect 301 /old /new\nRedirectMatch 302 ^/re/(.*)$ /to/$1\nErrorDocument 404 /errors/404.html\nHeader always set X-Test yes\n<Location /private>\nRequire all denied\n</Location>\n<Location /local>\n<RequireAll>\nRequire all granted\nRequire not ip 127.0.0.0/8\n</RequireAll>\n</Location>\n<Location /open>\nRequire ip 127.0.0.1\n</Location>\n",
            docroot(&sb)
        ),
    );
    let a = core.addr;
    let r = get(a, "/extra/file.txt", "");
    assert_eq!(body(&r), "from alias\n", "{r}");
    let r = get(a, "/old/x", "");
    assert_eq!(status(&r), 301);
    assert_eq!(header(&r, "location"), Some("/new/x"));
    let r = get(a, "/re/abc", "");
    assert_eq!(status(&r), 302);
    assert_eq!(header(&r, "location"), Some("/to/abc"));
    let r = get(a, "/nothing-here", "");
    assert_eq!(status(&r), 404);
    assert_eq!(body(&r), "custom not found\n");
    assert_eq!(header(&r, "x-test"), Some("yes"));
    let r = get(a, "/hello.txt", "");
    assert_eq!(header(&r, "x-test"), Some("yes"));
    let r = get(a, "/private/x", "");
    assert_eq!(status(&r), 403);
    let r = get(a, "/local/x", "");
    assert_eq!(status(&r), 403, "Require not ip denies loopback: {r}");
    let r = get(a, "/open/missing", "");
    assert_eq!(status(&r), 404, "Require ip allows loopback: {r}");
}

/// A local ErrorDocument is an internal redirect that passes the target's `Require` for the
/// client (as in Apache): a denied client gets the built-in page, an allowed one the
/// document. httpd-dev keeps its detailed error page for loopback clients this way.
#[test]
fn error_document_is_served_only_to_clients_its_require_allows() {
    let curl = require_tool("curl");
    let sb = site();
    sb.write("www/errors/detail.html", "details for 127.0.0.2\n");
    let core = start(
        &sb,
        &format!(
            "{}ErrorDocument 404 /errors/detail.html\n<Location /errors/>\nRequire ip 127.0.0.2\n</Location>\n",
            docroot(&sb)
        ),
    );
    let r = get(core.addr, "/missing", "");
    assert_eq!(status(&r), 404, "{r}");
    assert!(body(&r).contains("404 Not Found"), "built-in page: {r}");
    assert!(!r.contains("details"), "{r}");
    let r = get(core.addr, "/errors/detail.html", "");
    assert_eq!(status(&r), 403, "{r}");
    let out = Command::new(curl)
        .args(["-s", "-i", "--max-time", "10", "--interface", "127.0.0.2"])
        .arg(format!("http://{}/missing", core.addr))
        .output()
        .unwrap();
    let r = String::from_utf8_lossy(&out.stdout);
    assert_eq!(status(&r), 404, "{r}");
    assert_eq!(body(&r), "details for 127.0.0.2\n", "{r}");
}

#[test]
fn server_status_formats() {
    let sb = site();
    let core = start_with_status(&sb, "");
    get(core.addr, "/hello.txt", "");
    let r = get(core.addr, "/server-status?json", "");
    let v: serde_json::Value = serde_json::from_str(body(&r)).unwrap();
    assert!(v["requests"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["status"]["2xx"].as_u64().unwrap() >= 1);
    assert!(v["uptime_s"].is_u64());
    let r = get(core.addr, "/server-status?auto", "");
    assert!(body(&r).contains("Total Accesses: "), "{r}");
    let r = get(core.addr, "/server-status", "");
    assert!(body(&r).contains("<h1>Server Status</h1>"));
}

#[test]
fn signals_reload_reopen_and_graceful_stop() {
    let sb = site();
    sb.write("v2/index.html", "version 2\n");
    let log = sb.path().join("access.log");
    let pid = sb.path().join("httpd.pid");
    let errlog = sb.path().join("error.log");
    let base = format!(
        "CustomLog \"{}\" common\nPidFile \"{}\"\nErrorLog \"{}\"\n",
        log.display(),
        pid.display(),
        errlog.display()
    );
    let mut core = start(&sb, &format!("{}{base}", docroot(&sb)));
    assert_eq!(
        sb.read("httpd.pid").trim(),
        core.server.pid().to_string(),
        "PidFile"
    );
    assert_eq!(body(&get(core.addr, "/", "")), "<h1>home</h1>\n");
    // A reload with a new DocumentRoot.
    std::fs::write(
        &core.conf,
        format!(
            "Listen 127.0.0.1:0\nDocumentRoot \"{}/v2\"\n{base}",
            sb.path().display()
        ),
    )
    .unwrap();
    signal(core.server.pid(), "HUP");
    core.server.wait_for_line("configuration reloaded");
    assert_eq!(body(&get(core.addr, "/", "")), "version 2\n");
    // A broken config keeps the old one serving.
    std::fs::write(&core.conf, "Listen 127.0.0.1:0\nDocumentRooot /nope\n").unwrap();
    signal(core.server.pid(), "HUP");
    core.server.wait_for_line("reload failed");
    assert_eq!(body(&get(core.addr, "/", "")), "version 2\n");
    let logged = std::fs::read_to_string(&errlog).unwrap_or_default();
    assert!(
        logged.contains("reload failed") && logged.contains("DocumentRooot"),
        "the failed reload is in the ErrorLog: {logged:?}"
    );
    // USR1: the log was moved away; a new file appears.
    std::fs::rename(&log, sb.path().join("access.log.1")).unwrap();
    std::fs::rename(&errlog, sb.path().join("error.log.1")).unwrap();
    signal(core.server.pid(), "USR1");
    core.server.wait_for_line("log files reopened");
    get(core.addr, "/", "");
    assert!(log.exists(), "reopened log file");
    assert!(errlog.exists(), "reopened ErrorLog file");
    assert!(errlog.exists(), "ErrorLog file");
    signal(core.server.pid(), "TERM");
    assert_eq!(core.server.wait_exit(Duration::from_secs(15)), Some(0));
    assert!(!pid.exists(), "PidFile removed on exit");
}

#[test]
fn config_test_flag() {
    let sb = site();
    sb.write("good.conf", format!("Listen 127.0.0.1:0\n{}", docroot(&sb)));
    sb.write("bad.conf", "Listen 127.0.0.1:0\nDocumentRooot /x\n");
    let out = run("httpd-core", sb.path(), &["-t", "-f", "good.conf"]);
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(out.stdout.contains("Syntax OK"));
    let out = run("httpd-core", sb.path(), &["-t", "-f", "bad.conf"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    let out = run("httpd-core", sb.path(), &["-f", "bad.conf"]);
    assert_eq!(out.status, Some(78), "{out:?}");
    assert!(out.stderr.contains("httpd-core: error:"), "{out:?}");
    let out = run("httpd-core", sb.path(), &["-f", "missing.conf"]);
    assert_eq!(out.status, Some(66), "{out:?}");
    // No -f and no ./httpd.conf: the embedded default validates.
    let out = run("httpd-core", sb.path(), &["-t"]);
    assert_eq!(out.status, Some(0), "{out:?}");
}

#[test]
fn h2c_prior_knowledge_and_unix_socket() {
    require_tool("curl");
    let sb = site();
    let sock = sb.path().join("core.sock");
    let core = start(
        &sb,
        &format!(
            "{}Protocols h2c http/1.1\nListen unix:{}\n",
            docroot(&sb),
            sock.display()
        ),
    );
    let out = Command::new("curl")
        .args([
            "-s",
            "--http2-prior-knowledge",
            "-o",
            "-",
            "-w",
            "%{http_version}",
        ])
        .arg(format!("http://{}/hello.txt", core.addr))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello, world\n2");
    let out = Command::new("curl")
        .args(["-s", "--unix-socket"])
        .arg(&sock)
        .arg("http://localhost/hello.txt")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello, world\n");
    let h2load = require_tool("h2load");
    let out = Command::new(h2load)
        .args(["-n", "200", "-c", "2", "-m", "10"])
        .arg(format!("http://{}/hello.txt", core.addr))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("200 succeeded"), "{text}");
}

#[test]
fn proxy_protocol_gives_the_real_client_to_logs() {
    let sb = site();
    let log = sb.path().join("access.log");
    let core = start(
        &sb,
        &format!(
            "{}RemoteIPProxyProtocol On\nCustomLog \"{}\" \"%a %>s\"\n",
            docroot(&sb),
            log.display()
        ),
    );
    let r = raw(
        core.addr,
        "PROXY TCP4 203.0.113.9 127.0.0.1 40000 80\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&r), 200, "{r}");
    let r = raw(core.addr, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r, "", "no PROXY header: dropped");
    drop(core);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "203.0.113.9 200\n");
}

#[test]
fn large_file_streams_whole() {
    let sb = site();
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    sb.write("www/big.bin", &big);
    let core = start(&sb, &docroot(&sb));
    let mut s = TcpStream::connect(core.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(&buf[split..], &big[..]);
}

#[test]
fn compression_precompressed_and_on_the_fly() {
    let sb = site();
    let css = "body { color: red; }\n".repeat(40);
    sb.write("www/style.css", &css);
    sb.write("www/app.js", "console.log('plain');\n".repeat(20));
    sb.write("www/app.js.br", "BROTLI-BYTES");
    let core = start(&sb, &docroot(&sb));
    let r = get(core.addr, "/app.js", "Accept-Encoding: gzip, br\r\n");
    assert_eq!(status(&r), 200);
    assert_eq!(header(&r, "content-encoding"), Some("br"));
    assert_eq!(header(&r, "vary"), Some("Accept-Encoding"));
    assert_eq!(body(&r), "BROTLI-BYTES");
    let r = get(core.addr, "/app.js", "");
    assert_eq!(header(&r, "content-encoding"), None);
    assert!(body(&r).starts_with("console.log"));
    let r = get(core.addr, "/style.css", "Accept-Encoding: gzip\r\n");
    assert_eq!(header(&r, "content-encoding"), Some("gzip"), "{r}");
    let len: usize = header(&r, "content-length").unwrap().parse().unwrap();
    assert!(len < css.len(), "compressed");
    let out = Command::new(require_tool("curl"))
        .args(["-s", "--compressed"])
        .arg(format!("http://{}/style.css", core.addr))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), css);
    let r = get(core.addr, "/style.css", "Accept-Encoding: gzip;q=0\r\n");
    assert_eq!(header(&r, "content-encoding"), None);
}

/// One request on a fresh connection, read to EOF: (head, body bytes as sent).
fn raw_bytes(addr: SocketAddr, req: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let body = buf.split_off(split);
    (String::from_utf8(buf).unwrap(), body)
}

/// Decodes a chunked body (RFC 9112 §7.1), panicking on bad framing.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size = std::str::from_utf8(&data[..eol]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[eol + 2..];
        if size == 0 {
            assert_eq!(data, b"\r\n", "no trailers, nothing after the last chunk");
            return out;
        }
        out.extend_from_slice(&data[..size]);
        assert_eq!(&data[size..size + 2], b"\r\n");
        data = &data[size + 2..];
    }
}

/// gunzip with python's gzip module (an independent decoder).
fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new(require_tool("python3"))
        .args([
            "-c",
            "import gzip, sys; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "python could not gunzip the body");
    out.stdout
}

#[test]
fn on_the_fly_gzip_streams_large_text_files() {
    let sb = site();
    // 1 MiB of varied text (a fixed pseudo-random word stream), far above the size
    // compressed in one go.
    let words = [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "{ color: red }",
        "\n",
        "0x1f",
        "zeta",
    ];
    let mut text = String::new();
    let mut x: u32 = 12345;
    while text.len() < 1 << 20 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        text.push_str(words[(x >> 16) as usize % words.len()]);
        text.push(' ');
    }
    text.truncate(1 << 20);
    sb.write("www/big.css", &text);
    let core = start(&sb, &docroot(&sb));
    let req = |extra: &str| {
        format!("GET /big.css HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n")
    };

    let (plain_head, plain) = raw_bytes(core.addr, &req(""));
    assert_eq!(status(&plain_head), 200, "{plain_head}");
    assert_eq!(plain, text.as_bytes());
    let plain_etag = header(&plain_head, "etag").unwrap().to_string();

    let (head, body) = raw_bytes(core.addr, &req("Accept-Encoding: gzip\r\n"));
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(header(&head, "content-encoding"), Some("gzip"), "{head}");
    assert_eq!(header(&head, "vary"), Some("Accept-Encoding"), "{head}");
    assert_eq!(header(&head, "content-length"), None, "{head}");
    assert_eq!(
        header(&head, "transfer-encoding"),
        Some("chunked"),
        "{head}"
    );
    let etag = header(&head, "etag").unwrap().to_string();
    assert_ne!(etag, plain_etag, "the gzip variant has its own validator");
    assert!(etag.ends_with("-gzip\""), "{etag}");
    let gz = dechunk(&body);
    assert!(gz.len() < text.len() / 2, "compressed: {} bytes", gz.len());
    assert_eq!(gunzip(&gz), text.as_bytes());

    // A real client decodes it too.
    let out = Command::new(require_tool("curl"))
        .args(["-s", "--compressed"])
        .arg(format!("http://{}/big.css", core.addr))
        .output()
        .unwrap();
    assert!(
        out.stdout == text.as_bytes(),
        "curl --compressed got other bytes"
    );

    // HTTP/1.0 has no chunked coding: the body ends with the connection.
    let (head, body) = raw_bytes(
        core.addr,
        "GET /big.css HTTP/1.0\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n",
    );
    assert_eq!(header(&head, "content-encoding"), Some("gzip"), "{head}");
    assert_eq!(header(&head, "transfer-encoding"), None, "{head}");
    assert_eq!(gunzip(&body), text.as_bytes());

    // HEAD: the same headers, no body.
    let (head, body) = raw_bytes(
        core.addr,
        "HEAD /big.css HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(header(&head, "content-encoding"), Some("gzip"), "{head}");
    assert_eq!(header(&head, "etag"), Some(etag.as_str()));
    assert!(body.is_empty(), "HEAD sent {} body bytes", body.len());

    // Revalidation of the gzip variant, and of the identity one against it.
    let r = get(
        core.addr,
        "/big.css",
        &format!("Accept-Encoding: gzip\r\nIf-None-Match: {etag}\r\n"),
    );
    assert_eq!(status(&r), 304, "{r}");
    let r = get(core.addr, "/big.css", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(
        status(&r),
        200,
        "the gzip ETag does not validate the identity body"
    );

    // Ranges are never compressed: the bytes of the identity representation.
    let (head, body) = raw_bytes(
        core.addr,
        &req("Accept-Encoding: gzip\r\nRange: bytes=1000-1999\r\n"),
    );
    assert_eq!(status(&head), 206, "{head}");
    assert_eq!(header(&head, "content-encoding"), None, "{head}");
    assert_eq!(body, &text.as_bytes()[1000..2000]);

    // A client that refuses gzip, or a binary type, gets the identity body.
    let (head, body) = raw_bytes(core.addr, &req("Accept-Encoding: gzip;q=0, br\r\n"));
    assert_eq!(header(&head, "content-encoding"), None, "{head}");
    assert_eq!(header(&head, "content-length"), Some("1048576"), "{head}");
    assert_eq!(body, text.as_bytes());
    sb.write("www/big.bin", &text);
    let (head, _) = raw_bytes(
        core.addr,
        "GET /big.bin HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(header(&head, "content-encoding"), None, "{head}");
}

/// MaxRequestWorkers busy connections (each in the middle of a request head): a new one
/// gets a short 503 with Retry-After at once, and service resumes when they go.
#[test]
fn max_request_workers_sheds_load() {
    let sb = site();
    let core = start(&sb, &format!("{}MaxRequestWorkers 2\n", docroot(&sb)));
    let hold: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(core.addr).unwrap();
            s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let r = get(core.addr, "/hello.txt", "");
    assert_eq!(status(&r), 503, "{r}");
    assert_eq!(header(&r, "retry-after"), Some("1"), "{r}");
    drop(hold);
    // Once the held connections close, service resumes.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(core.addr, "/hello.txt", "");
        if status(&r) == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// At MaxRequestWorkers, a new connection is not turned away while others sit idle: the
/// idle (parked) connection nearest its deadline is closed to make room, as nginx reuses
/// idle connections; a new connection that has sent nothing yet counts as idle too.
#[test]
fn max_request_workers_closes_idle_connections_for_new_ones() {
    let sb = site();
    let core = start(
        &sb,
        &format!(
            "{}MaxRequestWorkers 2\nKeepAliveTimeout 60\nRequestReadTimeout header=20\n\
             AcceptFilter http none\n",
            docroot(&sb)
        ),
    );
    // Two idle connections, 400 ms apart: the older one has the nearer KeepAliveTimeout
    // deadline.
    let mut idle = parked_clients(core.addr, 1);
    idle.extend(parked_clients(core.addr, 1));
    let r = get(core.addr, "/hello.txt", "");
    assert_eq!(status(&r), 200, "{r}");
    assert!(
        closed_by_server(&mut idle[0]),
        "the older idle connection was kept"
    );
    // A silent new connection (once the last one's task has ended): its header limit
    // (20 s) is nearer than the idle one's 60 s.
    std::thread::sleep(Duration::from_millis(200));
    let mut silent = silent_clients(core.addr, 1);
    let r = get(core.addr, "/hello.txt", "");
    assert_eq!(status(&r), 200, "{r}");
    assert!(
        closed_by_server(&mut silent[0]),
        "the silent connection was kept"
    );
    // The other idle connection still serves its next request.
    every_tenth_answers(&mut idle[1..]);
}

#[test]
fn piped_logger_is_restarted_and_json_log() {
    let sb = site();
    let piped = sb.path().join("piped.log");
    let json = sb.path().join("json.log");
    let core = start(
        &sb,
        &format!(
            "{}CustomLog \"|head -n 1 >> {}\" common\nCustomLog \"{}\" json\n",
            docroot(&sb),
            piped.display(),
            json.display()
        ),
    );
    // The logger exits after one line; the server restarts it for later lines.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        get(core.addr, "/hello.txt?a=%22q%22", "User-Agent: ua\r\n");
        let n = std::fs::read_to_string(&piped)
            .unwrap_or_default()
            .lines()
            .count();
        if n >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "piped logger was not restarted");
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&piped).unwrap();
    assert!(
        text.lines()
            .all(|l| l.contains("\"GET /hello.txt?a=%22q%22 HTTP/1.1\" 200 13")),
        "{text}"
    );
    let first = std::fs::read_to_string(&json).unwrap();
    let v: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert_eq!(v["status"], 200);
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/hello.txt");
    assert_eq!(v["query"], "a=%22q%22");
    assert_eq!(v["user_agent"], "ua");
    assert_eq!(v["bytes"], 13);
}

#[test]
fn proxy_v2_alpn_h2_is_served_as_http2() {
    let sb = site();
    let core = start(&sb, &format!("{}RemoteIPProxyProtocol On\n", docroot(&sb)));
    let mut hdr = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    hdr.extend_from_slice(&[0x21, 0x11]);
    let mut block = vec![203, 0, 113, 5, 127, 0, 0, 1, 0x9c, 0x40, 0, 80];
    block.extend_from_slice(&[0x01, 0, 2, b'h', b'2']);
    hdr.extend_from_slice(&(block.len() as u16).to_be_bytes());
    hdr.extend_from_slice(&block);
    hdr.extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    hdr.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // an empty SETTINGS frame
    let mut s = TcpStream::connect(core.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&hdr).unwrap();
    let mut frame = [0u8; 9];
    s.read_exact(&mut frame).unwrap();
    assert_eq!(
        frame[3], 4,
        "the server's first frame is an HTTP/2 SETTINGS frame"
    );
}

#[test]
fn listens_on_ipv6() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        return; // no IPv6 loopback in this environment
    }
    let sb = site();
    let conf = sb.write("v6.conf", format!("Listen [::1]:0\n{}", docroot(&sb)));
    let server = Server::spawn(Command::new(bin("httpd-core")).arg("-f").arg(&conf));
    let line = server.wait_for_line("listening on http://[::1]");
    let addr: SocketAddr = line
        .rsplit("http://")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let r = get(addr, "/hello.txt", "");
    assert_eq!(body(&r), "hello, world\n");
}

/// `MaxRanges` (Apache core, per directory): more ranges than the cap and the whole file
/// is sent with 200; `none` ignores Range; `unlimited` has no cap; `default` is 200.
#[test]
fn max_ranges_caps_none_unlimited_default() {
    let sb = site();
    for d in ["two", "none", "unlimited", "default"] {
        sb.write(&format!("www/{d}/digits.txt"), "0123456789");
    }
    let www = sb.path().join("www");
    let core = start(
        &sb,
        &format!(
            "{}MaxRanges 2\n<Directory \"{w}/none\">\nMaxRanges none\n</Directory>\n<Directory \"{w}/unlimited\">\nMaxRanges unlimited\n</Directory>\n<Directory \"{w}/default\">\nMaxRanges default\n</Directory>\n",
            docroot(&sb),
            w = www.display()
        ),
    );
    let ranges = |n: usize| {
        let list: Vec<String> = (0..n).map(|i| format!("{}-{}", i % 10, i % 10)).collect();
        format!("Range: bytes={}\r\n", list.join(","))
    };
    let a = core.addr;
    // Two separate ranges under the server-wide cap of 2: multipart 206.
    let r = get(a, "/two/digits.txt", "Range: bytes=0-0,4-4\r\n");
    assert_eq!(status(&r), 206, "{r}");
    assert!(header(&r, "content-type")
        .unwrap()
        .starts_with("multipart/byteranges"));
    // Three: over the cap, the full file.
    let r = get(a, "/two/digits.txt", "Range: bytes=0-0,4-4,8-8\r\n");
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(body(&r), "0123456789");
    assert_eq!(header(&r, "content-range"), None, "{r}");
    // Merged ranges still count as asked: three items that merge into one are over 2.
    let r = get(a, "/two/digits.txt", "Range: bytes=0-1,1-2,2-3\r\n");
    assert_eq!(status(&r), 200, "{r}");
    // `none`: even one range is ignored.
    let r = get(a, "/none/digits.txt", "Range: bytes=2-3\r\n");
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(body(&r), "0123456789");
    // `unlimited`: 500 items (merged into ten single bytes, one part).
    let r = get(a, "/unlimited/digits.txt", &ranges(500));
    assert_eq!(status(&r), 206, "{r}");
    assert_eq!(header(&r, "content-range"), Some("bytes 0-9/10"), "{r}");
    // `default` is Apache's 200.
    let r = get(a, "/default/digits.txt", &ranges(200));
    assert_eq!(status(&r), 206, "{r}");
    let r = get(a, "/default/digits.txt", &ranges(201));
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(body(&r), "0123456789");

    // A bad value is a config error with its location.
    let bad = sb.write("bad.conf", "Listen 127.0.0.1:0\nMaxRanges 0\n");
    let out = run("httpd-conftest", sb.path(), &[bad.to_str().unwrap()]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(out.stderr.contains("bad.conf:2:"), "{out:?}");
    assert!(out.stderr.contains("MaxRanges must be"), "{out:?}");
}
