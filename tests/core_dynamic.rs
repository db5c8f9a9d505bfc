//! Black-box tests of httpd-core's dynamic side: the reverse proxy (with real python
//! backends), balancers, Basic auth with htpasswd-written files, Require trees,
//! Substitute and FallbackResource.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use httpd_blackbox::*;

const BACKEND: &str = include_str!("fixtures/core_dynamic_backend.py");

struct Core {
    _server: Server,
    addr: SocketAddr,
}

fn start(sb: &Sandbox, conf: &str) -> Core {
    let conf_path = sb.write(
        "httpd.conf",
        format!(
            "Listen 127.0.0.1:0\nServerName front.test\nDocumentRoot \"{}\"\n{conf}",
            sb.path().join("www").display()
        ),
    );
    let (server, addr) = start_core(sb.path(), &conf_path);
    Core {
        _server: server,
        addr,
    }
}

/// A python backend answering with JSON about what it received; `name` tells members apart.
struct Backend {
    server: Server,
    port: u16,
}

fn backend(sb: &Sandbox, name: &str) -> Backend {
    require_tool("python3");
    let script = sb.write("backend.py", BACKEND);
    let server = Server::spawn(Command::new("python3").arg("-u").arg(&script).arg(name));
    let line = server.wait_for_line("ready ");
    let port = line.trim().rsplit(' ').next().unwrap().parse().unwrap();
    Backend { server, port }
}

fn site() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("www/index.html", "<html><body>home</body></html>\n");
    sb.write("www/app/static/a.css", "body{}\n");
    sb
}

fn raw(addr: SocketAddr, req: &str) -> String {
    raw_exchange(addr, req.as_bytes(), Duration::from_secs(20))
}

fn get(addr: SocketAddr, path: &str, extra: &str) -> String {
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: front.test\r\n{extra}Connection: close\r\n\r\n"),
    )
}

fn json(resp: &str) -> serde_json::Value {
    serde_json::from_str(body(resp)).unwrap_or_else(|e| panic!("{e}: {resp}"))
}

#[test]
fn proxy_prefix_exclusion_headers_and_reverse() {
    let sb = site();
    let be = backend(&sb, "one");
    let p = be.port;
    let core = start(
        &sb,
        &format!(
            "ProxyPass /app/static/ !\nProxyPass /app/api/ http://127.0.0.1:{p}/v1/\n\
             ProxyPass /app/ http://127.0.0.1:{p}/\n\
             ProxyPassReverse /app/ http://127.0.0.1:{p}/\nProxyVia On\n"
        ),
    );
    // Rules in config order, the first match wins (longer paths written first); query kept.
    let r = get(core.addr, "/app/api/users?x=1", "");
    assert_eq!(status(&r), 200, "{r}");
    let j = json(&r);
    assert_eq!(j["path"], "/v1/users?x=1");
    let r = get(
        core.addr,
        "/app/thing",
        "Connection: X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 192.0.2.7\r\n",
    );
    let j = json(&r);
    assert_eq!(j["path"], "/thing");
    let h = &j["headers"];
    assert_eq!(h["x-forwarded-for"], "192.0.2.7, 127.0.0.1");
    assert_eq!(h["x-forwarded-host"], "front.test");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(
        h["forwarded"],
        "for=127.0.0.1;proto=http;host=\"front.test\""
    );
    assert_eq!(h["host"], format!("127.0.0.1:{p}"));
    assert!(h["via"].as_str().unwrap().ends_with("front.test"), "{h}");
    assert!(
        h.get("x-secret").is_none(),
        "Connection-named header forwarded: {h}"
    );
    assert!(h.get("keep-alive").is_none(), "{h}");
    // `!` excludes: the static file is served.
    let r = get(core.addr, "/app/static/a.css", "");
    assert_eq!(body(&r), "body{}\n");
    // ProxyPassReverse rewrites Location.
    let r = get(core.addr, "/app/redirect", "");
    assert_eq!(status(&r), 302);
    assert_eq!(header(&r, "location"), Some("http://front.test/app/login"));
    // Hop-by-hop headers of the response are dropped.
    let r = get(core.addr, "/app/hop", "");
    assert_eq!(status(&r), 200);
    assert_eq!(header(&r, "x-internal"), None, "{r}");
    assert_eq!(header(&r, "keep-alive"), None, "{r}");
}

#[test]
fn proxy_preserve_host() {
    let sb = site();
    let be = backend(&sb, "one");
    let core = start(
        &sb,
        &format!(
            "ProxyPreserveHost On\nProxyPass /app/ http://127.0.0.1:{}/\n",
            be.port
        ),
    );
    let j = json(&get(core.addr, "/app/x", ""));
    assert_eq!(j["headers"]["host"], "front.test");
}

/// Sends a body of `len` bytes (Content-Length or chunked) and returns the response.
fn upload(addr: SocketAddr, path: &str, len: usize, chunked: bool) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {len}")
    };
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: front.test\r\n{framing}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let block = vec![b'y'; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let k = left.min(block.len());
        let ok = if chunked {
            write!(s, "{k:x}\r\n")
                .and_then(|_| s.write_all(&block[..k]))
                .and_then(|_| s.write_all(b"\r\n"))
        } else {
            s.write_all(&block[..k])
        };
        if ok.is_err() {
            break;
        }
        left -= k;
    }
    if chunked {
        let _ = s.write_all(b"0\r\n\r\n");
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn proxy_streams_big_bodies_both_ways_and_limits_uploads() {
    let sb = site();
    let be = backend(&sb, "one");
    let core = start(
        &sb,
        &format!(
            "ProxyPass /app/ http://127.0.0.1:{}/\n<Location /app/small/>\nLimitRequestBody 1000\n</Location>\n",
            be.port
        ),
    );
    let n = 24 << 20;
    let r = upload(core.addr, "/app/up", n, false);
    assert_eq!(json(&r)["body"], n, "{}", &r[..r.len().min(300)]);
    let r = upload(core.addr, "/app/up", 3 << 20, true);
    assert_eq!(json(&r)["body"], 3 << 20);
    // Download: counted, not stored.
    let mut s = TcpStream::connect(core.addr).unwrap();
    write!(
        s,
        "GET /app/big/{n} HTTP/1.1\r\nHost: front.test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut total = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => total += k,
        }
    }
    assert!(total > n && total < n + 1000, "got {total} bytes");
    // LimitRequestBody: declared length and chunked both refused with 413.
    let r = upload(core.addr, "/app/small/x", 5000, false);
    assert_eq!(status(&r), 413, "{r}");
    let r = upload(core.addr, "/app/small/x", 5000, true);
    assert_eq!(status(&r), 413, "{r}");
}

#[test]
fn proxy_errors_502_504_with_error_document() {
    let sb = site();
    let mut be = backend(&sb, "one");
    // A port with nothing listening: bind, note, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let core = start(
        &sb,
        &format!(
            "ProxyPass /dead/ http://127.0.0.1:{dead}/\n\
             ProxyPass /slow/ http://127.0.0.1:{p}/slow/ timeout=1\n\
             ProxyPass /app/ http://127.0.0.1:{p}/\n\
             ErrorDocument 502 \"backend down\"\n",
            p = be.port
        ),
    );
    let r = get(core.addr, "/dead/x", "");
    assert_eq!(status(&r), 502);
    assert!(body(&r).contains("backend down"), "{r}");
    let r = get(core.addr, "/slow/x", "");
    assert_eq!(status(&r), 504, "{r}");
    // The backend dies mid-response: the client sees a cut response, never a hang.
    let r = get(core.addr, "/app/die", "");
    assert!(
        !r.contains("Content-Length: 100") || !r.ends_with(&"x".repeat(93)),
        "{r}"
    );
    let _ = be.server.child().kill();
    let _ = be.server.child().wait();
    let r = get(core.addr, "/app/x", "");
    assert_eq!(status(&r), 502, "{r}");
}

#[test]
fn balancer_round_robin_standby_and_failover() {
    let sb = site();
    let a = backend(&sb, "a");
    let b = backend(&sb, "b");
    let s = backend(&sb, "standby");
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let core = start(
        &sb,
        &format!(
            "<Proxy balancer://pool>\n\
             BalancerMember http://127.0.0.1:{a}\n\
             BalancerMember http://127.0.0.1:{b}\n\
             BalancerMember http://127.0.0.1:{dead} retry=60\n\
             BalancerMember http://127.0.0.1:{s} status=+H\n\
             ProxySet lbmethod=byrequests\n\
             </Proxy>\n\
             ProxyPass /app/ balancer://pool/\n",
            a = a.port,
            b = b.port,
            s = s.port
        ),
    );
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..9 {
        let r = get(core.addr, "/app/x", "");
        assert_eq!(status(&r), 200, "{r}");
        *seen
            .entry(json(&r)["name"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    // The dead member's connect failure was retried on a live one; the standby idle.
    assert_eq!(seen.get("standby"), None, "{seen:?}");
    assert!(seen["a"] >= 4 && seen["b"] >= 4, "{seen:?}");
    // Both active members down: the hot standby takes over.
    drop(a);
    drop(b);
    let r = get(core.addr, "/app/x", "");
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(json(&r)["name"], "standby");
}

#[test]
fn balancer_bybusyness_spreads_requests() {
    let sb = site();
    let a = backend(&sb, "a");
    let b = backend(&sb, "b");
    let core = start(
        &sb,
        &format!(
            "<Proxy balancer://pool>\nBalancerMember http://127.0.0.1:{}\nBalancerMember http://127.0.0.1:{}\nProxySet lbmethod=bybusyness\n</Proxy>\nProxyPass /app/ balancer://pool/\n",
            a.port, b.port
        ),
    );
    // A slow request keeps `a` (first pick) busy; the next goes to `b`.
    let addr = core.addr;
    let slow = std::thread::spawn(move || get(addr, "/app/slow", ""));
    let mut names = Vec::new();
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(50));
        let r = get(core.addr, "/app/x", "");
        names.push(json(&r)["name"].as_str().unwrap().to_string());
    }
    let slow_name = json(&slow.join().unwrap())["name"]
        .as_str()
        .unwrap()
        .to_string();
    // While the slow one was in flight, the idle member got requests.
    assert!(names.iter().any(|n| *n != slow_name), "{names:?}");
}

fn htpasswd(sb: &Sandbox, flag: &str, user: &str, pass: &str) {
    require_tool("htpasswd");
    let file = sb.path().join("users");
    let mut cmd = Command::new("htpasswd");
    if !file.exists() {
        cmd.arg("-c");
    }
    let out = cmd
        .arg(format!("-b{flag}"))
        .arg(&file)
        .arg(user)
        .arg(pass)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

fn basic(user: &str, pass: &str) -> String {
    // Base64 by hand keeps the test crate free of a dependency.
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{pass}").into_bytes();
    let mut s = String::new();
    for c in raw.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    format!("Authorization: Basic {s}\r\n")
}

#[test]
fn basic_auth_every_htpasswd_format() {
    let sb = site();
    sb.write("www/private/index.html", "secret page\n");
    sb.write("www/bob/index.html", "bob page\n");
    htpasswd(&sb, "B", "bcrypt", "pw-b");
    htpasswd(&sb, "m", "apr1", "pw-m");
    htpasswd(&sb, "s", "sha", "pw-s");
    htpasswd(&sb, "d", "crypt", "pw-d");
    let users = sb.path().join("users");
    let core = start(
        &sb,
        &format!(
            "<Location /private/>\nAuthType Basic\nAuthName \"Staff only\"\nAuthUserFile \"{u}\"\nRequire valid-user\n</Location>\n\
             <Location /bob/>\nAuthType Basic\nAuthName bob\nAuthUserFile \"{u}\"\nRequire user sha apr1\n</Location>\n",
            u = users.display()
        ),
    );
    let r = get(core.addr, "/private/", "");
    assert_eq!(status(&r), 401);
    assert_eq!(
        header(&r, "www-authenticate"),
        Some("Basic realm=\"Staff only\"")
    );
    for (user, pass) in [
        ("bcrypt", "pw-b"),
        ("apr1", "pw-m"),
        ("sha", "pw-s"),
        ("crypt", "pw-d"),
    ] {
        let r = get(core.addr, "/private/", &basic(user, pass));
        assert_eq!(status(&r), 200, "{user}: {r}");
        assert_eq!(body(&r), "secret page\n");
        let r = get(core.addr, "/private/", &basic(user, "wrong"));
        assert_eq!(status(&r), 401, "{user} with a wrong password");
    }
    // An unknown user gets exactly what a wrong password gets.
    let unknown = get(core.addr, "/private/", &basic("nobody", "pw-b"));
    let wrong = get(core.addr, "/private/", &basic("bcrypt", "nope"));
    assert_eq!(status(&unknown), 401);
    assert_eq!(body(&unknown), body(&wrong));
    // Require user: listed users only.
    assert_eq!(status(&get(core.addr, "/bob/", &basic("sha", "pw-s"))), 200);
    assert_eq!(
        status(&get(core.addr, "/bob/", &basic("bcrypt", "pw-b"))),
        401
    );
}

#[test]
fn require_ip_not_ip_all_any() {
    let sb = site();
    sb.write("www/lan/index.html", "lan\n");
    sb.write("www/notlocal/index.html", "x\n");
    sb.write("www/any/index.html", "any\n");
    sb.write("www/all/index.html", "all\n");
    htpasswd(&sb, "B", "u", "p");
    let users = sb.path().join("users");
    let core = start(
        &sb,
        &format!(
            "<Location /lan/>\nRequire ip 10.0.0.0/8\n</Location>\n\
             <Location /notlocal/>\n<RequireAll>\nRequire all granted\nRequire not ip 127.0.0.0/8\n</RequireAll>\n</Location>\n\
             <Location /any/>\nAuthType Basic\nAuthName a\nAuthUserFile \"{u}\"\n<RequireAny>\nRequire ip 127.0.0.1\nRequire valid-user\n</RequireAny>\n</Location>\n\
             <Location /all/>\nAuthType Basic\nAuthName a\nAuthUserFile \"{u}\"\n<RequireAll>\nRequire ip 127.0.0.1\nRequire valid-user\n</RequireAll>\n</Location>\n",
            u = users.display()
        ),
    );
    assert_eq!(status(&get(core.addr, "/lan/", "")), 403);
    assert_eq!(status(&get(core.addr, "/notlocal/", "")), 403);
    assert_eq!(status(&get(core.addr, "/any/", "")), 200);
    assert_eq!(status(&get(core.addr, "/all/", "")), 401);
    assert_eq!(status(&get(core.addr, "/all/", &basic("u", "p"))), 200);
}

#[test]
fn substitute_and_fallback_to_the_app() {
    let sb = site();
    let be = backend(&sb, "app");
    let core = start(
        &sb,
        &format!(
            "ProxyPass /__app http://127.0.0.1:{}\n\
             <Location />\nFallbackResource /__app\n\
             Substitute \"s|</body>|<script src=\\\"/lr.js\\\"></script></body>|i\"\n</Location>\n",
            be.port
        ),
    );
    // An existing file is served from disk, edited.
    let r = get(core.addr, "/", "");
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(
        body(&r),
        "<html><body>home<script src=\"/lr.js\"></script></body></html>\n"
    );
    // No such file: the app gets the original URI.
    let r = get(core.addr, "/users/7?tab=x", "");
    assert_eq!(json(&r)["path"], "/users/7?tab=x");
    // The app's HTML is edited too.
    let r = get(core.addr, "/page.html", "");
    assert_eq!(
        body(&r),
        "<html><body>app<script src=\"/lr.js\"></script></body></html>"
    );
}

fn script(sb: &Sandbox, rel: &str, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let p = sb.write(rel, text);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn cgi_scripts_env_stdin_status_and_failures() {
    require_tool("python3");
    let sb = site();
    script(
        &sb,
        "cgi-bin/env.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv | sort\n",
    );
    script(
        &sb,
        "cgi-bin/echo.py",
        "#!/usr/bin/env python3\nimport sys, os\ndata = sys.stdin.buffer.read(int(os.environ.get('CONTENT_LENGTH', '0')))\n\
         sys.stdout.write('Status: 201 Created\\nContent-Type: text/plain\\nX-Len: %d\\n\\n' % len(data))\n\
         sys.stdout.write(data.decode().upper())\n",
    );
    script(
        &sb,
        "cgi-bin/go.sh",
        "#!/bin/sh\nprintf 'Location: http://example.org/next\\n\\n'\n",
    );
    script(
        &sb,
        "cgi-bin/garbage.sh",
        "#!/bin/sh\necho 'this is not a header'\necho\necho body\n",
    );
    script(
        &sb,
        "cgi-bin/hang.sh",
        "#!/bin/sh\necho oops >&2\nexec sleep 30\n",
    );
    script(
        &sb,
        "www/tools/hi.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhi from %s\\n' \"$SCRIPT_NAME\"\n",
    );
    let core = start(
        &sb,
        &format!(
            "Timeout 2\nScriptAlias /cgi-bin/ \"{}/\"\n\
             <Directory \"{}/tools\">\nOptions +ExecCGI\nAddHandler cgi-script .cgi\n</Directory>\n",
            sb.path().join("cgi-bin").display(),
            sb.path().join("www").display()
        ),
    );
    let r = get(
        core.addr,
        "/cgi-bin/env.sh/extra/path?a=1&b=2",
        "Proxy: http://evil.example:1\r\nX-Custom: yes\r\n",
    );
    assert_eq!(status(&r), 200, "{r}");
    let env = body(&r);
    for want in [
        "GATEWAY_INTERFACE=CGI/1.1",
        "REQUEST_METHOD=GET",
        "QUERY_STRING=a=1&b=2",
        "PATH_INFO=/extra/path",
        "SCRIPT_NAME=/cgi-bin/env.sh",
        "REMOTE_ADDR=127.0.0.1",
        "SERVER_NAME=front.test",
        "HTTP_X_CUSTOM=yes",
        "HTTP_HOST=front.test",
        "SERVER_PROTOCOL=HTTP/1.1",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing in:\n{env}");
    }
    assert!(!env.contains("HTTP_PROXY"), "httpoxy: {env}");
    assert!(env.contains(&format!("SERVER_PORT={}", core.addr.port())));
    // Body on stdin, Status: honoured.
    let r = raw(
        core.addr,
        "POST /cgi-bin/echo.py HTTP/1.1\r\nHost: front.test\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello there",
    );
    assert_eq!(status(&r), 201, "{r}");
    assert_eq!(header(&r, "x-len"), Some("11"));
    assert!(r.contains("\r\nHELLO THERE\r\n"), "{r}");
    let r = get(core.addr, "/cgi-bin/go.sh", "");
    assert_eq!(status(&r), 302);
    assert_eq!(header(&r, "location"), Some("http://example.org/next"));
    let r = get(core.addr, "/cgi-bin/garbage.sh", "");
    assert_eq!(status(&r), 500, "{r}");
    assert!(!r.contains("\nbody\n"), "half a response: {r}");
    let r = get(core.addr, "/cgi-bin/hang.sh", "");
    assert_eq!(status(&r), 504, "{r}");
    let r = get(core.addr, "/tools/hi.cgi", "");
    assert_eq!(status(&r), 200, "{r}");
    assert!(body(&r).contains("hi from /tools/hi.cgi\n"), "{r}");
    // The killed script's stderr reached the error log.
    core._server.wait_for_line("oops");
}

#[test]
fn proxy_survives_a_client_leaving_mid_body() {
    let sb = site();
    let be = backend(&sb, "one");
    let core = start(
        &sb,
        &format!("ProxyPass /app/ http://127.0.0.1:{}/\n", be.port),
    );
    for _ in 0..3 {
        let mut s = TcpStream::connect(core.addr).unwrap();
        write!(
            s,
            "POST /app/up HTTP/1.1\r\nHost: front.test\r\nContent-Length: 10000000\r\n\r\n"
        )
        .unwrap();
        s.write_all(&vec![b'z'; 1 << 20]).unwrap();
        drop(s);
    }
    // The server and the backend connection pool still work.
    let r = get(core.addr, "/app/after", "");
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(json(&r)["path"], "/after");
}

#[test]
fn proxy_to_a_unix_socket_backend() {
    require_tool("python3");
    let sb = site();
    let script = sb.write("backend.py", BACKEND);
    let sock = sb.path().join("app.sock");
    let be = Server::spawn(
        Command::new("python3")
            .arg("-u")
            .arg(&script)
            .arg("unix")
            .arg(&sock),
    );
    be.wait_for_line("ready ");
    let core = start(
        &sb,
        &format!(
            "ProxyPass /u/ \"unix:{}|http://localhost/\"\n",
            sock.display()
        ),
    );
    let r = get(core.addr, "/u/hello?q=1", "");
    assert_eq!(status(&r), 200, "{r}");
    let j = json(&r);
    assert_eq!(j["name"], "unix");
    assert_eq!(j["path"], "/hello?q=1");
    assert_eq!(j["headers"]["host"], "localhost");
}

#[test]
fn balancer_active_health_check_takes_a_failing_member_out() {
    let sb = site();
    let a = backend(&sb, "a");
    let b = backend(&sb, "b");
    let core = start(
        &sb,
        &format!(
            "<Proxy balancer://pool>\n\
             BalancerMember http://127.0.0.1:{} hcuri=/fail hcinterval=1\n\
             BalancerMember http://127.0.0.1:{} hcuri=/ok hcinterval=1\n\
             </Proxy>\nProxyPass /app/ balancer://pool/\n",
            a.port, b.port
        ),
    );
    // The first request starts the checks; poll until `a` has been taken out, then ten
    // requests in a row must all reach `b`.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut run = 0;
    while run < 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "the failing member kept getting requests"
        );
        let r = get(core.addr, "/app/x", "");
        assert_eq!(status(&r), 200, "{r}");
        if json(&r)["name"] == "b" {
            run += 1;
        } else {
            run = 0;
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
