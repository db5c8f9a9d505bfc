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
    server: Server,
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
    Core { server, addr }
}

/// A python backend answering with JSON about what it received; `name` tells members apart.
struct Backend {
    server: Server,
    port: u16,
}

fn backend(sb: &Sandbox, name: &str) -> Backend {
    let (server, port) = python_server(sb, "backend.py", BACKEND, &[name]);
    Backend { server, port }
}

/// Starts the python script `source` (written to `file`) with `args`; it prints
/// "ready PORT" once it listens: the server and that port.
fn python_server(sb: &Sandbox, file: &str, source: &str, args: &[&str]) -> (Server, u16) {
    require_tool("python3");
    let script = sb.write(file, source);
    let server = Server::spawn(Command::new("python3").arg("-u").arg(&script).args(args));
    let line = server.wait_for_line("ready ");
    let port = line.trim().rsplit(' ').next().unwrap().parse().unwrap();
    (server, port)
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
fn proxy_extends_forwarding_headers_and_drops_connection_named_ones() {
    let sb = site();
    let be = backend(&sb, "one");
    let p = be.port;
    // No slash after the port: the rule's root is the backend's `/`.
    let core = start(&sb, &format!("ProxyPass /root http://127.0.0.1:{p}\n"));
    let r = get(
        core.addr,
        "/root?a=b",
        "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Host: first.test\r\n\
         X-Forwarded-Server: edge\r\nForwarded: for=192.0.2.7\r\n\
         Connection: Keep-Alive, X-Drop\r\nConnection: x-drop-too\r\nX-Drop: 1\r\n\
         X-Drop-Too: 1\r\nProxy-Connection: keep-alive\r\nX-Kept: 1\r\n",
    );
    assert_eq!(status(&r), 200, "{r}");
    let j = json(&r);
    assert_eq!(j["path"], "/?a=b");
    let h = &j["headers"];
    // What an earlier proxy wrote is extended, not replaced.
    assert_eq!(h["x-forwarded-for"], "192.0.2.7, 127.0.0.1");
    assert_eq!(h["x-forwarded-host"], "first.test, front.test");
    assert_eq!(h["x-forwarded-server"], "edge, front.test");
    assert_eq!(
        h["forwarded"],
        "for=192.0.2.7, for=127.0.0.1;proto=http;host=\"front.test\""
    );
    assert_eq!(h["host"], format!("127.0.0.1:{p}"));
    assert_eq!(h["x-kept"], "1");
    for gone in ["x-drop", "x-drop-too", "proxy-connection", "keep-alive"] {
        assert!(h.get(gone).is_none(), "{gone} forwarded: {h}");
    }
    // The rule's root without a query.
    let j = json(&get(core.addr, "/root", ""));
    assert_eq!(j["path"], "/");
    assert_eq!(j["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(j["headers"]["x-forwarded-host"], "front.test");
}

#[test]
fn proxy_to_the_same_path_keeps_the_target_and_query() {
    let sb = site();
    let be = backend(&sb, "one");
    let core = start(
        &sb,
        &format!("ProxyPass /same/ http://127.0.0.1:{}/same/\n", be.port),
    );
    for target in ["/same/x?q=1&r=%41", "/same/x", "/same/", "/same/?only"] {
        let j = json(&get(core.addr, target, ""));
        assert_eq!(j["path"], target);
    }
}

/// ProxyPreserveHost On passes the client's Host; over HTTP/2, where the host is the
/// :authority and there is no Host field, the backend gets it as Host too (it got its own
/// name, and no X-Forwarded-Host).
#[test]
fn proxy_preserve_host() {
    let sb = site();
    let be = backend(&sb, "one");
    let core = start(
        &sb,
        &format!(
            "Protocols h2c http/1.1\nProxyPreserveHost On\nProxyPass /app/ http://127.0.0.1:{}/\n",
            be.port
        ),
    );
    let j = json(&get(core.addr, "/app/x", ""));
    assert_eq!(j["headers"]["host"], "front.test");

    require_tool("curl");
    let port = core.addr.port();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--http2-prior-knowledge",
            "--max-time",
            "10",
            "--resolve",
        ])
        .arg(format!("front.test:{port}:127.0.0.1"))
        .arg(format!("http://front.test:{port}/app/x"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let j: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let authority = format!("front.test:{port}");
    assert_eq!(j["headers"]["host"], authority.as_str(), "{j}");
    assert_eq!(j["headers"]["x-forwarded-host"], authority.as_str(), "{j}");
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
fn proxy_timeout_applies_to_each_request_on_a_kept_backend_connection() {
    let sb = site();
    let be = backend(&sb, "one");
    let core = start(
        &sb,
        &format!("ProxyPass /t/ http://127.0.0.1:{}/ timeout=1\n", be.port),
    );
    // The backend connection is kept between these requests; each one gets its own
    // timeout, whether the connection sat idle longer than that or not.
    let r = get(core.addr, "/t/a", "");
    assert_eq!(status(&r), 200, "{r}");
    std::thread::sleep(Duration::from_millis(1500));
    let r = get(core.addr, "/t/b", "");
    assert_eq!(status(&r), 200, "idle longer than the timeout: {r}");
    let r = get(core.addr, "/t/slow", "");
    assert_eq!(status(&r), 504, "{r}");
    let r = get(core.addr, "/t/c", "");
    assert_eq!(status(&r), 200, "after a timeout: {r}");
    assert_eq!(json(&r)["path"], "/c");
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
    core.server.wait_for_line("oops");
}

const RAW_BACKEND: &str = include_str!("fixtures/raw_backend.py");

/// A backend answering with hand-written bytes (tests/fixtures/raw_backend.py) and a
/// front proxying `/raw/` to it.
fn raw_backend(sb: &Sandbox) -> (Server, Core) {
    let (server, port) = python_server(sb, "raw_backend.py", RAW_BACKEND, &[]);
    let core = start(
        sb,
        &format!("ProxyPass /raw/ http://127.0.0.1:{port}/\nErrorDocument 502 \"bad gateway\"\n"),
    );
    (server, core)
}

/// curl through the front: (exit code, status, body bytes, response head).
fn curl(sb: &Sandbox, addr: SocketAddr, args: &[&str], path: &str) -> (i32, u16, Vec<u8>, String) {
    require_tool("curl");
    let out = sb.path().join("curl.out");
    let head = sb.path().join("curl.head");
    let r = Command::new("curl")
        .args(["-s", "--max-time", "20", "-o"])
        .arg(&out)
        .arg("-D")
        .arg(&head)
        .args(args)
        .arg(format!("http://{addr}{path}"))
        .output()
        .unwrap();
    let head = std::fs::read_to_string(&head).unwrap_or_default();
    // The last status line: interim (1xx) responses come first.
    let status = head
        .lines()
        .rfind(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    let body = std::fs::read(&out).unwrap_or_default();
    (r.status.code().unwrap_or(-1), status, body, head)
}

/// The bytes raw_backend.py sends as its 1 MiB body.
fn big_body() -> Vec<u8> {
    (0..1usize << 20).map(|i| (i % 251) as u8).collect()
}

#[test]
fn proxy_relays_every_response_framing() {
    let sb = site();
    let (_backend, core) = raw_backend(&sb);
    let a = core.addr;
    // Chunked with extensions and a trailer section: decoded, the trailer not relayed.
    let (code, st, body, _) = curl(&sb, a, &[], "/raw/chunked");
    assert_eq!((code, st, body.as_slice()), (0, 200, &b"hello world"[..]));
    // Larger than any buffer, by Content-Length and in chunks of odd sizes.
    for path in ["/raw/big", "/raw/big-chunked"] {
        let (code, st, body, _) = curl(&sb, a, &[], path);
        assert_eq!((code, st, body.len()), (0, 200, 1 << 20), "{path}");
        assert!(body == big_body(), "{path}: the body differs");
    }
    // No Content-Length: the body ends when the backend closes.
    let (code, st, body, _) = curl(&sb, a, &[], "/raw/until-close");
    assert_eq!((code, st), (0, 200));
    assert!(body.len() == 100_000 && body.iter().all(|&b| b == b'c'));
    let (code, st, body, _) = curl(&sb, a, &[], "/raw/connection-close");
    assert_eq!((code, st, body.as_slice()), (0, 200, &b"ok"[..]));
    // Interim responses (100, 103) are skipped; a 204 has no body.
    let (code, st, body, _) = curl(&sb, a, &[], "/raw/continue");
    assert_eq!((code, st, body.as_slice()), (0, 200, &b"ok"[..]));
    let (code, st, body, head) = curl(&sb, a, &[], "/raw/no-content");
    assert_eq!((code, st, body.len()), (0, 204, 0), "{head}");
    assert!(
        head.contains("X-Case: 204") || head.contains("x-case: 204"),
        "{head}"
    );
    // HEAD: the declared framing has no body behind it (curl -I reads none).
    let (code, st, _, head) = curl(&sb, a, &["-I"], "/raw/big");
    assert_eq!((code, st), (0, 200), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-length: 1048576"),
        "{head}"
    );
    let (code, st, _, head) = curl(&sb, a, &["-I"], "/raw/chunked");
    assert_eq!((code, st), (0, 200), "{head}");
}

#[test]
fn proxy_answers_502_to_malformed_backend_responses() {
    let sb = site();
    let (_backend, core) = raw_backend(&sb);
    // Not HTTP, an obs-folded field, a head over the limit, conflicting lengths.
    for path in [
        "/raw/garbage",
        "/raw/folded",
        "/raw/huge-head",
        "/raw/two-lengths",
    ] {
        let r = get(core.addr, path, "");
        assert_eq!(status(&r), 502, "{path}: {r}");
        assert!(body(&r).contains("bad gateway"), "{path}: {r}");
    }
    // A body that breaks its framing after its head: the client sees the response cut.
    for path in ["/raw/bad-chunk", "/raw/short"] {
        let (code, _, _, _) = curl(&sb, core.addr, &[], path);
        assert_ne!(code, 0, "{path}: curl took a cut response as complete");
    }
    let (code, st, _, _) = curl(&sb, core.addr, &[], "/raw/whoami");
    assert_eq!((code, st), (0, 200), "the proxy still works");
}

#[test]
fn proxy_reuses_backend_connections_and_retries_stale_ones() {
    let sb = site();
    let (_backend, core) = raw_backend(&sb);
    let who = |method: &str, path: &str| {
        let body = if method == "POST" {
            "Content-Length: 1\r\n"
        } else {
            ""
        };
        let r = raw(
            core.addr,
            &format!(
                "{method} /raw{path} HTTP/1.1\r\nHost: front.test\r\n{body}Connection: close\r\n\r\n{}",
                if method == "POST" { "x" } else { "" }
            ),
        );
        (status(&r), self::body(&r).to_string())
    };
    // "connection request": the backend counts both.
    assert_eq!(who("GET", "/whoami"), (200, "1 1".into()));
    assert_eq!(who("GET", "/whoami"), (200, "1 2".into()), "kept alive");
    assert_eq!(who("GET", "/whoami/idle-close"), (200, "1 3".into()));
    // The backend has closed the pooled connection (its FIN has arrived: the pause):
    // found before anything is written, so even a POST goes on a new connection.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(who("POST", "/whoami"), (200, "2 1".into()));
    // Written, then closed without an answer: an idempotent request is sent again on a
    // new connection (RFC 9110 §9.2.2), a POST is not.
    assert_eq!(who("GET", "/drop-second"), (200, "ok".into()));
    let (st, _) = who("POST", "/drop-second");
    assert_eq!(st, 502);
}

#[test]
fn proxy_forwards_an_upload_that_expects_100_continue() {
    let sb = site();
    let be = backend(&sb, "one");
    let core = start(
        &sb,
        &format!("ProxyPass /app/ http://127.0.0.1:{}/\n", be.port),
    );
    let file = sb.write("upload.bin", vec![b'u'; 2 << 20]);
    let arg = format!("@{}", file.display());
    // curl sends Expect: 100-continue for a body this size; the backend (python's
    // http.server) answers 100 before its 200, which the proxy skips.
    let (code, st, body, _) = curl(
        &sb,
        core.addr,
        &["-H", "Expect: 100-continue", "--data-binary", &arg],
        "/app/up",
    );
    assert_eq!((code, st), (0, 200));
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["body"], 2 << 20, "{j}");
    assert_eq!(
        j["headers"]["content-length"],
        (2 << 20).to_string().as_str(),
        "{j}"
    );
    // Chunked upload from curl (no length known): forwarded chunked.
    let (code, st, body, _) = curl(
        &sb,
        core.addr,
        &["-H", "Transfer-Encoding: chunked", "--data-binary", &arg],
        "/app/up",
    );
    assert_eq!((code, st), (0, 200));
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["body"], 2 << 20, "{j}");
    assert_eq!(j["headers"]["transfer-encoding"], "chunked", "{j}");
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

const WS_BACKEND: &str = include_str!("fixtures/ws_echo_backend.py");

/// The WebSocket echo backend; its port.
fn ws_backend(sb: &Sandbox) -> (Server, u16) {
    python_server(sb, "ws_backend.py", WS_BACKEND, &[])
}

/// The accept value RFC 6455 §1.3's sample key (in [`WS_UPGRADE`]) must produce.
const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Sends `req` on `s` and reads one response head (byte by byte, so nothing after it is
/// consumed).
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn ws_connect(addr: SocketAddr, path: &str, extra: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: front.test\r\n{extra}\r\n",).unwrap();
    let head = read_head(&mut s);
    (s, head)
}

const WS_UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\n\
     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

/// A masked client frame (RFC 6455 §5.2).
fn ws_send(s: &mut TcpStream, opcode: u8, payload: &[u8]) {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&f).unwrap();
}

/// One unmasked server frame: (opcode, payload).
fn ws_recv(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).expect("frame header");
    assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
    let n = match h[1] & 0x7f {
        126 => {
            let mut x = [0u8; 2];
            s.read_exact(&mut x).unwrap();
            u16::from_be_bytes(x) as usize
        }
        n => n as usize,
    };
    let mut p = vec![0u8; n];
    s.read_exact(&mut p).unwrap();
    (h[0] & 0x0f, p)
}

fn ws_echo(s: &mut TcpStream, text: &str) {
    ws_send(s, 1, text.as_bytes());
    let (op, p) = ws_recv(s);
    assert_eq!(
        (op, String::from_utf8_lossy(&p).into_owned()),
        (1, format!("echo: {text}"))
    );
}

/// Close handshake: our close frame, the backend's answer, then EOF through the proxy.
fn ws_close(s: &mut TcpStream) {
    ws_send(s, 8, &1000u16.to_be_bytes());
    assert_eq!(ws_recv(s), (8, 1000u16.to_be_bytes().to_vec()));
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .expect("EOF after the close handshake");
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn websocket_and_other_upgrades_pass_through_the_proxy() {
    let sb = site();
    let (_ws, p) = ws_backend(&sb);
    let log = sb.path().join("access.log");
    let core = start(
        &sb,
        &format!(
            "ProxyPass /ws/ http://127.0.0.1:{p}/ upgrade=websocket\n\
             ProxyPass /any/ http://127.0.0.1:{p}/ upgrade=ANY\n\
             ProxyPass /h2c/ http://127.0.0.1:{p}/ upgrade=h2c\n\
             ProxyPass /dflt/ http://127.0.0.1:{p}/\n\
             CustomLog \"{}\" \"%>s %r\"\n",
            log.display()
        ),
    );
    // A WebSocket: the backend's 101 with its headers, then frames both ways, including
    // one with a 16-bit length, and the close handshake.
    let (mut s, head) = ws_connect(core.addr, "/ws/chat", WS_UPGRADE);
    assert_eq!(status(&head), 101, "{head}");
    assert_eq!(
        header(&head, "sec-websocket-accept"),
        Some(WS_ACCEPT),
        "{head}"
    );
    assert_eq!(header(&head, "x-backend"), Some("ws"), "{head}");
    assert!(
        header(&head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("upgrade")),
        "{head}"
    );
    assert!(
        header(&head, "upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
        "{head}"
    );
    ws_echo(&mut s, "hello");
    ws_echo(&mut s, &"long ".repeat(100));
    ws_close(&mut s);
    // The default upgrade= is websocket.
    let (mut s, head) = ws_connect(core.addr, "/dflt/chat", WS_UPGRADE);
    assert_eq!(status(&head), 101, "{head}");
    ws_echo(&mut s, "default");
    drop(s);
    // upgrade=ANY: any protocol the client asks for; here a raw byte echo.
    let (mut s, head) = ws_connect(
        core.addr,
        "/any/raw",
        "Upgrade: x-echo/1\r\nConnection: upgrade\r\n",
    );
    assert_eq!(status(&head), 101, "{head}");
    assert_eq!(header(&head, "upgrade"), Some("x-echo/1"), "{head}");
    s.write_all(b"\x00raw bytes\xff").unwrap();
    let mut got = [0u8; 11];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"\x00raw bytes\xff");
    drop(s);
    // A protocol the rule does not allow, or Upgrade not named in Connection: the
    // Upgrade header is not forwarded and the request is an ordinary one.
    for (path, extra) in [
        ("/h2c/x", WS_UPGRADE.to_string()),
        (
            "/ws/x",
            WS_UPGRADE.replace("Connection: Upgrade", "Connection: keep-alive"),
        ),
        (
            "/any/x",
            WS_UPGRADE.replace("Connection: Upgrade", "X-No: 1"),
        ),
    ] {
        let r = get(core.addr, path, &extra);
        assert_eq!(status(&r), 200, "{path}: {r}");
        assert_eq!(body(&r), "plain upgrade=", "{path}");
    }
    // A backend that refuses the upgrade: its answer is relayed, and the client's
    // connection stays plain HTTP (the next request on it works).
    let (mut s, head) = ws_connect(core.addr, "/ws/refuse", WS_UPGRADE);
    assert_eq!(status(&head), 400, "{head}");
    assert_eq!(header(&head, "content-length"), Some("15"), "{head}");
    let mut b = [0u8; 15];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"no upgrade here");
    write!(
        s,
        "GET /ws/next HTTP/1.1\r\nHost: front.test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut rest = String::new();
    s.read_to_string(&mut rest).unwrap();
    assert_eq!(status(&rest), 200, "{rest}");
    assert_eq!(body(&rest), "plain upgrade=");
    drop(core);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("101 GET /ws/chat HTTP/1.1\n"), "{log}");
    assert!(log.contains("101 GET /any/raw HTTP/1.1\n"), "{log}");
    assert!(log.contains("400 GET /ws/refuse HTTP/1.1\n"), "{log}");
}

#[test]
fn websocket_survives_reload_and_drains_on_stop() {
    let sb = site();
    let (_ws, p) = ws_backend(&sb);
    let conf = |extra: &str| {
        format!(
            "Listen 127.0.0.1:0\nServerName front.test\nDocumentRoot \"{}\"\n\
             GracefulShutdownTimeout 2\n{extra}",
            sb.path().join("www").display()
        )
    };
    let conf_path = sb.write(
        "httpd.conf",
        conf(&format!("ProxyPass /ws/ http://127.0.0.1:{p}/\n")),
    );
    let (mut server, addr) = start_core(sb.path(), &conf_path);
    let (mut a, head) = ws_connect(addr, "/ws/a", WS_UPGRADE);
    assert_eq!(status(&head), 101, "{head}");
    ws_echo(&mut a, "before reload");
    // Reload to a config without the proxy: new connections see it, the open WebSocket
    // keeps going on the old one.
    std::fs::write(&conf_path, conf("")).unwrap();
    signal(server.pid(), "HUP");
    server.wait_for_line("configuration reloaded");
    let r = get(addr, "/ws/x", WS_UPGRADE);
    assert_eq!(status(&r), 404, "new config for new connections: {r}");
    ws_echo(&mut a, "after reload");
    std::fs::write(
        &conf_path,
        conf(&format!("ProxyPass /ws/ http://127.0.0.1:{p}/\n")),
    )
    .unwrap();
    signal(server.pid(), "HUP");
    server.wait_for_line("configuration reloaded");
    let (mut b, head) = ws_connect(addr, "/ws/b", WS_UPGRADE);
    assert_eq!(status(&head), 101, "{head}");
    // A graceful stop: open WebSockets are drained, not cut; one closing by itself is
    // fine, one that stays open is closed at GracefulShutdownTimeout.
    signal(server.pid(), "TERM");
    server.wait_for_line("stopping (graceful)");
    ws_echo(&mut a, "while stopping");
    ws_echo(&mut b, "while stopping too");
    ws_close(&mut a);
    assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(0));
    let mut rest = Vec::new();
    let _ = b.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        server.output().contains("GracefulShutdownTimeout reached"),
        "{}",
        server.output()
    );
}

#[test]
fn graceful_stop_finishes_a_keep_alive_request_then_closes() {
    let sb = site();
    let be = backend(&sb, "one");
    let conf_path = sb.write(
        "httpd.conf",
        format!(
            "Listen 127.0.0.1:0\nServerName front.test\nDocumentRoot \"{}\"\n\
             GracefulShutdownTimeout 60\nProxyPass /app/ http://127.0.0.1:{}/\n",
            sb.path().join("www").display(),
            be.port
        ),
    );
    let (mut server, addr) = start_core(sb.path(), &conf_path);
    // A keep-alive request the backend takes 5 s to answer, in flight during the stop.
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(b"GET /app/slow HTTP/1.1\r\nHost: front.test\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    signal(server.pid(), "TERM");
    server.wait_for_line("stopping (graceful)");
    // The answer still comes, whole, and then the connection is closed: the stop reached
    // the connection while its request was running (not at GracefulShutdownTimeout).
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    let r = String::from_utf8_lossy(&got);
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(json(&r)["path"], "/slow", "{r}");
    assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(0));
    assert!(
        !server.output().contains("GracefulShutdownTimeout reached"),
        "{}",
        server.output()
    );
}

/// A PROXY v2 header for 203.0.113.9:40000 → 127.0.0.1:443 with the given TLVs.
fn proxy_v2(tlvs: &[u8]) -> Vec<u8> {
    let mut b = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    b.extend_from_slice(&[0x21, 0x11]);
    let mut body = vec![203, 0, 113, 9, 127, 0, 0, 1];
    body.extend_from_slice(&40000u16.to_be_bytes());
    body.extend_from_slice(&443u16.to_be_bytes());
    body.extend_from_slice(tlvs);
    b.extend_from_slice(&(body.len() as u16).to_be_bytes());
    b.extend_from_slice(&body);
    b
}

#[test]
fn tls_from_the_proxy_header_makes_the_scheme_https() {
    let sb = site();
    let be = backend(&sb, "one");
    let p = be.port;
    script(
        &sb,
        "cgi-bin/env.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv | sort\n",
    );
    let core = start(
        &sb,
        &format!(
            "RemoteIPProxyProtocol On\nProxyPass /app/ http://127.0.0.1:{p}/\n\
             ProxyPassReverse /app/ http://127.0.0.1:{p}/\nScriptAlias /cgi-bin/ \"{}/\"\n",
            sb.path().join("cgi-bin").display()
        ),
    );
    // PP2_TYPE_SSL: client flags (PP2_CLIENT_SSL), verify, a PP2_SUBTYPE_SSL_VERSION.
    let tls = [
        0x20, 0, 15, 0x01, 0, 0, 0, 0, 0x21, 0, 7, b'T', b'L', b'S', b'v', b'1', b'.', b'3',
    ];
    let not_tls = [0x20, 0, 5, 0x00, 0, 0, 0, 0];
    for (tlvs, scheme) in [
        (&tls[..], "https"),
        (&not_tls[..], "http"),
        (&[][..], "http"),
    ] {
        let exchange = |path: &str| {
            let mut req = proxy_v2(tlvs);
            req.extend_from_slice(
                format!("GET {path} HTTP/1.1\r\nHost: front.test\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            raw_exchange(core.addr, &req, Duration::from_secs(20))
        };
        let r = exchange("/app/x");
        let h = &json(&r)["headers"];
        assert_eq!(h["x-forwarded-proto"], scheme, "{r}");
        assert_eq!(h["x-forwarded-for"], "203.0.113.9", "{r}");
        assert_eq!(
            h["forwarded"],
            format!("for=203.0.113.9;proto={scheme};host=\"front.test\""),
        );
        let r = exchange("/app/redirect");
        assert_eq!(
            header(&r, "location"),
            Some(format!("{scheme}://front.test/app/login").as_str()),
            "{r}"
        );
        let r = exchange("/cgi-bin/env.sh");
        assert_eq!(status(&r), 200, "{r}");
        let env = body(&r);
        assert!(
            env.contains(&format!("\nREQUEST_SCHEME={scheme}\n")),
            "{env}"
        );
        assert_eq!(env.contains("\nHTTPS=on\n"), scheme == "https", "{env}");
    }
}

/// End to end: curl → httpd-tls (PROXY v2 with the SSL TLV) → core → the backend.
#[test]
fn through_httpd_tls_the_backend_sees_https() {
    require_tool("openssl");
    require_tool("curl");
    let sb = site();
    let be = backend(&sb, "one");
    let core = start(
        &sb,
        &format!(
            "RemoteIPProxyProtocol On\nProxyPass /app/ http://127.0.0.1:{}/\n",
            be.port
        ),
    );
    let out = Command::new("openssl")
        .current_dir(sb.path())
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .args(["-keyout", "key.pem", "-out", "cert.pem"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tls = Server::spawn(
        Command::new(bin("httpd-tls"))
            .current_dir(sb.path())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--cert",
                "cert.pem",
                "--key",
                "key.pem",
            ])
            .args(["--backend", &core.addr.to_string()]),
    );
    let line = tls.wait_for_line("(tls)");
    let addr: SocketAddr = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "20", "--resolve"])
        .arg(format!("localhost:{}:127.0.0.1", addr.port()))
        .arg(format!("https://localhost:{}/app/x", addr.port()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let j: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(j["headers"]["x-forwarded-proto"], "https", "{j}");
    assert!(
        j["headers"]["forwarded"]
            .as_str()
            .is_some_and(|f| f.contains("proto=https")),
        "{j}"
    );
}

/// RFC 3875 §6.2.2: `Location: /path` without a Status is served by core itself as a GET
/// (no 302 reaches the client; the script's body is dropped), through the whole pipeline
/// again; a redirect loop ends with 500 after 10 (LimitInternalRecursion); the access log
/// keeps the original request. ScriptAliasMatch runs CGI with `$N` substituted and the
/// rest of the path as PATH_INFO.
#[test]
fn cgi_local_redirect_and_script_alias_match() {
    require_tool("python3");
    let sb = site();
    sb.write("www/target.txt", "the target\n");
    script(
        &sb,
        "cgi-bin/local.sh",
        "#!/bin/sh\nprintf 'Location: /target.txt\\n\\n'\necho 'dropped body'\n",
    );
    script(
        &sb,
        "cgi-bin/to_cgi.py",
        "#!/usr/bin/env python3\nimport sys\nsys.stdin.buffer.read()\n\
         sys.stdout.write('Location: /cgi-bin/show.sh?from=py\\n\\n')\n",
    );
    script(
        &sb,
        "cgi-bin/show.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\n\
         echo \"$REQUEST_METHOD q=$QUERY_STRING cl=${CONTENT_LENGTH:-none} sn=$SCRIPT_NAME pi=${PATH_INFO:-none}\"\n",
    );
    script(
        &sb,
        "cgi-bin/loop.sh",
        "#!/bin/sh\nprintf 'Location: /cgi-bin/loop.sh\\n\\n'\n",
    );
    script(
        &sb,
        "cgi-bin/client.sh",
        "#!/bin/sh\nprintf 'Status: 302 Found\\nLocation: /target.txt\\n\\n'\n",
    );
    script(
        &sb,
        "cgi-bin/nowhere.sh",
        "#!/bin/sh\nprintf 'Location: /no/such/file\\n\\n'\n",
    );
    let cgi = sb.path().join("cgi-bin");
    let core = start(
        &sb,
        &format!(
            "ScriptAlias /cgi-bin/ \"{c}/\"\n\
             ScriptAliasMatch ^/app/([a-z]+)\\.run(.*) \"{c}/$1.sh$2\"\n\
             CustomLog \"{log}\" \"%m %U%q %>s\"\n",
            c = cgi.display(),
            log = sb.path().join("access.log").display()
        ),
    );
    let a = core.addr;
    let r = get(a, "/cgi-bin/local.sh", "");
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(header(&r, "location"), None, "{r}");
    assert_eq!(body(&r), "the target\n", "{r}");

    // A POST whose script redirects locally: the target runs as a GET without a body.
    let r = raw(
        a,
        "POST /cgi-bin/to_cgi.py HTTP/1.0\r\nHost: front.test\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(
        body(&r),
        "GET q=from=py cl=none sn=/cgi-bin/show.sh pi=none\n",
        "{r}"
    );

    let r = get(a, "/cgi-bin/loop.sh", "");
    assert_eq!(status(&r), 500, "{r}");
    let r = get(a, "/cgi-bin/nowhere.sh", "");
    assert_eq!(status(&r), 404, "{r}");
    // With a Status, Location goes to the client.
    let r = get(a, "/cgi-bin/client.sh", "");
    assert_eq!(status(&r), 302, "{r}");
    assert_eq!(header(&r, "location"), Some("/target.txt"), "{r}");

    // ScriptAliasMatch: $1 picks the script, the rest of the path is PATH_INFO.
    let r = raw(
        a,
        "GET /app/show.run/extra/info?x=1 HTTP/1.0\r\nHost: front.test\r\n\r\n",
    );
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(
        body(&r),
        "GET q=x=1 cl=none sn=/app/show.run pi=/extra/info\n",
        "{r}"
    );
    let r = get(a, "/app/missing.run", "");
    assert_eq!(status(&r), 404, "{r}");
    // Not matched by the regex: a plain (missing) file.
    let r = get(a, "/app/Show.run", "");
    assert_eq!(status(&r), 404, "{r}");

    let log = std::fs::read_to_string(sb.path().join("access.log")).unwrap();
    assert!(log.contains("POST /cgi-bin/to_cgi.py 200\n"), "{log}");
    assert!(log.contains("GET /cgi-bin/local.sh 200\n"), "{log}");
    assert!(
        core.server.output().contains("internal redirects"),
        "{}",
        core.server.output()
    );
}

/// Sends a request head and the first bytes of its body, then nothing more (the socket
/// stays open), and returns whatever the server answers before it closes (at most 20 s).
fn stall(addr: SocketAddr, head: &str, first: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(first).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `RequestReadTimeout body=` (mod_reqtimeout): a client that sends a head announcing a
/// body and then stalls or trickles is answered 408 and cut off, for a proxied location
/// and for a CGI script, Content-Length or chunked, also on the second request of a
/// kept-alive connection; the cause is in the error log and the 408 in the access log.
/// The timer runs only while the body is being read: a backend or script that takes
/// longer than the body timeout after the body arrived still answers. MinRate extends the
/// timeout (with no maximum when none is given, as Apache), so a steady slow upload passes.
#[test]
fn request_body_timeout_answers_408_for_proxy_and_cgi() {
    require_tool("python3");
    let sb = site();
    let be = backend(&sb, "one");
    script(
        &sb,
        "cgi-bin/echo.py",
        "#!/usr/bin/env python3\nimport sys, os\n\
         data = sys.stdin.buffer.read(int(os.environ.get('CONTENT_LENGTH', '0')))\n\
         sys.stdout.write('Content-Type: text/plain\\n\\nread %d\\n' % len(data))\n",
    );
    script(
        &sb,
        "cgi-bin/slow.py",
        "#!/usr/bin/env python3\nimport sys, os, time\n\
         data = sys.stdin.buffer.read(int(os.environ.get('CONTENT_LENGTH', '0')))\n\
         time.sleep(3)\n\
         sys.stdout.write('Content-Type: text/plain\\n\\nslow read %d\\n' % len(data))\n",
    );
    let conf = |timeout: &str| {
        format!(
            "RequestReadTimeout {timeout}\nTimeout 10\nProxyTimeout 30\n\
             ProxyPass /app/ http://127.0.0.1:{p}/\n\
             ScriptAlias /cgi-bin/ \"{c}/\"\n\
             CustomLog \"{log}\" \"%m %U %>s\"\n",
            p = be.port,
            c = sb.path().join("cgi-bin").display(),
            log = sb.path().join("access.log").display(),
        )
    };
    let core = start(&sb, &conf("body=1"));
    let a = core.addr;
    let post = |path: &str, framing: &str| {
        format!("POST {path} HTTP/1.1\r\nHost: front.test\r\n{framing}\r\n\r\n")
    };

    // Stalled: proxied (Content-Length and chunked) and CGI.
    let r = stall(
        a,
        &post("/app/up", "Content-Length: 1000000"),
        b"0123456789",
    );
    assert_eq!(status(&r), 408, "{r}");
    assert_eq!(header(&r, "connection"), Some("close"), "{r}");
    let r = stall(
        a,
        &post("/app/up", "Transfer-Encoding: chunked"),
        b"5\r\nhello\r\n",
    );
    assert_eq!(status(&r), 408, "{r}");
    let r = stall(
        a,
        &post("/cgi-bin/echo.py", "Content-Length: 1000000"),
        b"0123",
    );
    assert_eq!(status(&r), 408, "{r}");
    core.server
        .wait_for_line("request body read timeout (RequestReadTimeout body=)");

    // Trickling (no MinRate here): cut off too.
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(post("/app/up", "Content-Length: 1000000").as_bytes())
        .unwrap();
    let mut w = s.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for _ in 0..100 {
            if w.write_all(b"z").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let r = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(status(&r), 408, "{r}");
    drop(s);
    trickle.join().unwrap();

    // The body arrived, then the backend (5 s) or the script (3 s) takes longer than the
    // body timeout: no 408, the answer comes.
    let r = raw(
        a,
        &format!(
            "{}hello",
            post("/app/slow/x", "Content-Length: 5\r\nConnection: close")
        ),
    );
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(json(&r)["body"], 5, "{r}");
    let r = raw(
        a,
        &format!(
            "{}hello",
            post("/cgi-bin/slow.py", "Content-Length: 5\r\nConnection: close")
        ),
    );
    assert_eq!(status(&r), 200, "{r}");
    assert!(body(&r).contains("slow read 5\n"), "{r}");

    // Kept alive: the first request's body is complete, the second one's stalls.
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{}hello{}x",
        post("/app/one", "Content-Length: 5"),
        post("/app/two", "Content-Length: 100"),
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let r = String::from_utf8_lossy(&out).into_owned();
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    assert!(r.contains("\"path\": \"/one\""), "{r}");
    assert!(r.contains("HTTP/1.1 408 "), "{r}");

    let log = std::fs::read_to_string(sb.path().join("access.log")).unwrap();
    assert!(log.contains("POST /app/up 408\n"), "{log}");
    assert!(log.contains("POST /cgi-bin/echo.py 408\n"), "{log}");
    assert!(log.contains("POST /app/two 408\n"), "{log}");
    drop(core);

    // MinRate: each received byte extends the timeout (no maximum given), so a steady
    // 400 B/s upload outlives `body=1`, and fast uploads of any size pass.
    let core = start(&sb, &conf("body=1,MinRate=100"));
    let a = core.addr;
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(
        post(
            "/cgi-bin/echo.py",
            "Content-Length: 1200\r\nConnection: close",
        )
        .as_bytes(),
    )
    .unwrap();
    for _ in 0..6 {
        s.write_all(&[b'm'; 200]).unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let r = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(status(&r), 200, "{r}");
    assert!(body(&r).contains("read 1200\n"), "{r}");
    let n = 4 << 20;
    let r = upload(a, "/app/up", n, false);
    assert_eq!(json(&r)["body"], n, "{}", &r[..r.len().min(300)]);
    let r = upload(a, "/app/up", n, true);
    assert_eq!(json(&r)["body"], n, "{}", &r[..r.len().min(300)]);
    // Stalled still ends (after 1 s plus what the 10 bytes bought).
    let r = stall(
        a,
        &post("/app/up", "Content-Length: 1000000"),
        b"0123456789",
    );
    assert_eq!(status(&r), 408, "{r}");
}

/// A CGI local redirect (`Location: /path`, no Status) to a path that ProxyPass serves
/// goes to the backend as a GET of the proxied URL, query kept, no body (Apache's
/// internal redirect), also after a POST whose script read its body, or left it unread.
#[test]
fn cgi_local_redirect_to_a_proxied_path() {
    require_tool("python3");
    let sb = site();
    let be = backend(&sb, "one");
    script(
        &sb,
        "cgi-bin/to_app.sh",
        "#!/bin/sh\nprintf 'Location: /app/from-cgi?x=1\\n\\n'\n",
    );
    script(
        &sb,
        "cgi-bin/read_then_app.py",
        "#!/usr/bin/env python3\nimport sys\nsys.stdin.buffer.read()\n\
         sys.stdout.write('Location: /app/after-post\\n\\n')\n",
    );
    let core = start(
        &sb,
        &format!(
            "ProxyPass /app/ http://127.0.0.1:{p}/\nScriptAlias /cgi-bin/ \"{c}/\"\n\
             CustomLog \"{log}\" \"%m %U%q %>s\"\n",
            p = be.port,
            c = sb.path().join("cgi-bin").display(),
            log = sb.path().join("access.log").display(),
        ),
    );
    let a = core.addr;
    let r = get(a, "/cgi-bin/to_app.sh", "");
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(header(&r, "location"), None, "{r}");
    let j = json(&r);
    assert_eq!(j["method"], "GET");
    assert_eq!(j["path"], "/from-cgi?x=1");
    assert_eq!(j["body"], 0);
    assert!(j["headers"].get("content-length").is_none(), "{j}");

    // After a POST: the script read the body; the backend gets a bodiless GET.
    let r = raw(
        a,
        "POST /cgi-bin/read_then_app.py HTTP/1.1\r\nHost: front.test\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    assert_eq!(status(&r), 200, "{r}");
    let j = json(&r);
    assert_eq!(
        (j["method"].as_str(), j["path"].as_str()),
        (Some("GET"), Some("/after-post"))
    );
    assert_eq!(j["body"], 0);
    assert!(j["headers"].get("content-type").is_none(), "{j}");
    // The script left a large body unread.
    let r = upload(a, "/cgi-bin/to_app.sh", 1 << 20, false);
    assert_eq!(status(&r), 200, "{}", &r[..r.len().min(300)]);
    assert_eq!(json(&r)["path"], "/from-cgi?x=1");

    let log = std::fs::read_to_string(sb.path().join("access.log")).unwrap();
    assert!(log.contains("GET /cgi-bin/to_app.sh 200\n"), "{log}");
    assert!(
        log.contains("POST /cgi-bin/read_then_app.py 200\n"),
        "{log}"
    );
}

/// `LimitInternalRecursion N`: a chain of N local redirects is served, one more is a
/// loop (500, and the error log names the limit and the directive); a bad value is a
/// configuration error.
#[test]
fn limit_internal_recursion_is_honoured() {
    let sb = site();
    sb.write("www/end.txt", "the end\n");
    // count.sh?N redirects to count.sh?N-1, and to /end.txt at 0.
    script(
        &sb,
        "cgi-bin/count.sh",
        "#!/bin/sh\nn=$QUERY_STRING\nif [ \"$n\" -gt 0 ]; then\n  \
         printf 'Location: /cgi-bin/count.sh?%d\\n\\n' $((n - 1))\nelse\n  \
         printf 'Location: /end.txt\\n\\n'\nfi\n",
    );
    let cgi = sb.path().join("cgi-bin");
    let core = start(
        &sb,
        &format!(
            "LimitInternalRecursion 3 5\nScriptAlias /cgi-bin/ \"{}/\"\n",
            cgi.display()
        ),
    );
    // ?2: count.sh?1, count.sh?0, /end.txt: three internal redirects.
    let r = get(core.addr, "/cgi-bin/count.sh?2", "");
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(body(&r), "the end\n", "{r}");
    let r = get(core.addr, "/cgi-bin/count.sh?3", "");
    assert_eq!(status(&r), 500, "{r}");
    core.server.wait_for_line("limit of 3 internal redirects");
    assert!(
        core.server.output().contains("LimitInternalRecursion"),
        "{}",
        core.server.output()
    );
    drop(core);

    for bad in ["0", "x", "1 2 3"] {
        let conf = sb.write(
            "bad.conf",
            format!(
                "Listen 127.0.0.1:0\nDocumentRoot \"{}\"\nLimitInternalRecursion {bad}\n",
                sb.path().join("www").display()
            ),
        );
        let out = run(
            "httpd-core",
            sb.path(),
            &["-t", "-f", conf.to_str().unwrap()],
        );
        assert_ne!(out.status, Some(0), "LimitInternalRecursion {bad}: {out:?}");
        assert!(
            out.stderr.contains("LimitInternalRecursion"),
            "{bad}: {out:?}"
        );
    }
}

/// A WebSocket tunnel with no byte either way for the rule's `timeout=` (ProxyTimeout) is
/// closed, as mod_proxy_wstunnel's idle timeout does; traffic keeps it open.
#[test]
fn websocket_tunnel_idle_timeout_closes_a_quiet_tunnel() {
    let sb = site();
    let (_ws, p) = ws_backend(&sb);
    let core = start(
        &sb,
        &format!("ProxyPass /ws/ http://127.0.0.1:{p}/ upgrade=websocket timeout=3\n"),
    );
    let (mut s, head) = ws_connect(core.addr, "/ws/chat", WS_UPGRADE);
    assert_eq!(status(&head), 101, "{head}");
    // In use for longer than the timeout (a frame every 0.3 s): still open.
    for i in 0..12 {
        ws_echo(&mut s, &format!("busy {i}"));
        std::thread::sleep(Duration::from_millis(300));
    }
    ws_echo(&mut s, "still here");
    // Quiet: the proxy closes it (the read gives up after 20 s, far beyond the 3 s).
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "{rest:?}"),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ),
            "the quiet tunnel was not closed: {e}"
        ),
    }
}

/// Runs curl over HTTP/2 with prior knowledge, uploading what `feed` writes to its stdin
/// (no Content-Length: DATA frames to the end of the stream); returns the status line
/// code and the body. curl is killed after 20 s.
fn h2_upload(
    addr: SocketAddr,
    path: &str,
    feed: impl FnOnce(&mut std::process::ChildStdin),
) -> (u16, String) {
    let mut child = Command::new("curl")
        .args([
            "-sS",
            "--http2-prior-knowledge",
            "--max-time",
            "20",
            "-X",
            "POST",
            "-T",
            "-",
        ])
        .args(["-w", "\n%{http_code}"])
        .arg(format!("http://{addr}{path}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl runs");
    let mut stdin = child.stdin.take().unwrap();
    feed(&mut stdin);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// HTTP/2 uploads (h2c): a body sent without Content-Length, as DATA frames to the end of
/// the stream, reaches the backend and the CGI script whole (it was dropped: only
/// Content-Length or Transfer-Encoding counted as a body). A stalled one is answered 408
/// after `RequestReadTimeout body=`, on that stream, with the cause in the error log and
/// the 408 in the access log, while the connection's other streams carry on.
#[test]
fn h2_uploads_reach_the_handler_and_a_stalled_one_gets_408() {
    require_tool("python3");
    require_tool("curl");
    let sb = site();
    let be = backend(&sb, "one");
    script(
        &sb,
        "cgi-bin/count.py",
        "#!/usr/bin/env python3\nimport sys\n\
         data = sys.stdin.buffer.read()\n\
         sys.stdout.write('Content-Type: text/plain\\n\\nread %d\\n' % len(data))\n",
    );
    let conf = format!(
        "Protocols h2c http/1.1\nRequestReadTimeout body=1\nTimeout 10\nProxyTimeout 30\n\
         ProxyPass /app/ http://127.0.0.1:{p}/\n\
         ScriptAlias /cgi-bin/ \"{c}/\"\n\
         CustomLog \"{log}\" \"%m %U %>s %H\"\n",
        p = be.port,
        c = sb.path().join("cgi-bin").display(),
        log = sb.path().join("access.log").display(),
    );
    let core = start(&sb, &conf);
    let a = core.addr;

    // Whole bodies, streamed in pieces faster than the timeout.
    let pieces = |stdin: &mut std::process::ChildStdin| {
        for _ in 0..5 {
            // A write fails only if curl is gone: its output then tells why.
            if stdin
                .write_all(&[b'u'; 20_000])
                .and_then(|()| stdin.flush())
                .is_err()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let (code, body) = h2_upload(a, "/app/up", pieces);
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&format!("\r\n\r\n{body}"))["body"], 100_000, "{body}");
    let (code, body) = h2_upload(a, "/cgi-bin/count.py", pieces);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body, "read 100000\n");

    // Stalled after ten bytes: 408 from the proxy and from CGI, after about a second.
    for path in ["/app/up", "/cgi-bin/count.py"] {
        let (code, body) = h2_upload(a, path, |stdin| {
            if stdin
                .write_all(b"0123456789")
                .and_then(|()| stdin.flush())
                .is_ok()
            {
                std::thread::sleep(Duration::from_secs(6));
            }
        });
        assert_eq!(code, 408, "{path}: {body}");
    }
    core.server
        .wait_for_line("request body read timeout (RequestReadTimeout body=)");
    let log = std::fs::read_to_string(sb.path().join("access.log")).unwrap();
    assert!(log.contains("POST /app/up 408 HTTP/2.0\n"), "{log}");
    assert!(
        log.contains("POST /cgi-bin/count.py 408 HTTP/2.0\n"),
        "{log}"
    );
    assert!(log.contains("POST /app/up 200 HTTP/2.0\n"), "{log}");
}
