//! httpd-dev, black box: live reload reaches an event-stream client, --app requests reach
//! the app, a source edit restarts it, a crash shows the 502 page, a fix brings it back,
//! CONTROL-C leaves no process behind, bad inputs get one clear message.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use httpd_blackbox::{bin, raw_exchange, run, signal, Sandbox, Server};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(sb: &Sandbox, args: &[&str]) -> (Server, SocketAddr) {
    bin("httpd-core");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = Server::spawn(
        Command::new(bin("httpd-dev"))
            .current_dir(sb.path())
            .env("NO_COLOR", "1")
            .args(["www", &port.to_string()])
            .args(args),
    );
    server.wait_for_line("Quit the server with CONTROL-C.");
    (server, addr)
}

fn get(addr: SocketAddr, path: &str) -> String {
    raw_exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(10),
    )
}

/// Polls GET `path` until the response satisfies `ok` (deadline 20 s).
fn get_until(addr: SocketAddr, path: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(addr, path);
        if ok(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no matching response for {path}; last:\n{r}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Connects an event-stream client to the port the injected script names.
fn events(addr: SocketAddr) -> TcpStream {
    let js = get(addr, "/__httpd_dev/livereload.js");
    let before = &js[..js
        .find("/events")
        .unwrap_or_else(|| panic!("no events URL in\n{js}"))];
    let port: u16 = before.rsplit(':').next().unwrap().parse().unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    read_until(&mut s, "retry:");
    s
}

fn read_until(s: &mut TcpStream, needle: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains(needle) {
        let n = s.read(&mut buf).expect("event stream read");
        assert!(
            n > 0,
            "event stream closed; got {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn site() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("www/index.html", "<html><body>v1</body></html>\n");
    sb.write("www/style.css", "body{}\n");
    sb
}

#[test]
fn pages_get_the_script_and_an_edit_reaches_the_event_stream() {
    let sb = site();
    let (server, addr) = start(&sb, &[]);
    server.wait_for_line("WARNING: This is a development server");
    let out = server.output();
    for want in [
        "httpd-dev ",
        "native events",
        "Configuration check: Syntax OK",
        "development server",
    ] {
        assert!(out.contains(want), "{want} in\n{out}");
    }
    let r = get(addr, "/");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        r.contains("v1<script src=\"/__httpd_dev/livereload.js\"></script></body>"),
        "{r}"
    );
    assert!(
        r.to_ascii_lowercase().contains("cache-control: no-store"),
        "{r}"
    );
    server.wait_for_line("GET / 200");

    let mut es = events(addr);
    sb.write("www/index.html", "<html><body>v2</body></html>\n");
    let ev = read_until(&mut es, "event: reload");
    assert!(ev.contains("index.html"), "{ev}");
    sb.write("www/style.css", "body{color:red}\n");
    let ev = read_until(&mut es, "event: css");
    assert!(ev.contains("style.css"), "{ev}");
    // Swap files are ignored: the next event is for the real file only.
    sb.write("www/.index.html.swp", "x");
    sb.write("www/index.html", "<html><body>v3</body></html>\n");
    let ev = read_until(&mut es, "\n\n");
    assert!(!ev.contains(".swp"), "{ev}");
}

const APP: &str = r#"import os, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = ("<html><body>app pid=%d %s</body></html>" % (os.getpid(), self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

fn app_pid(r: &str) -> u32 {
    let at = r
        .find("app pid=")
        .unwrap_or_else(|| panic!("not the app:\n{r}"))
        + 8;
    r[at..].split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn app_restarts_on_edit_shows_the_error_page_and_comes_back() {
    let sb = site();
    sb.write("app.py", APP);
    let (mut server, addr) = start(&sb, &["--app", "python3 app.py"]);
    // Files first, then the app.
    assert!(get(addr, "/index.html").contains("v1"));
    let r = get_until(addr, "/users/7", |r| r.contains("app pid="));
    assert!(r.contains("/users/7"), "{r}");
    assert!(
        r.contains("livereload.js"),
        "app HTML gets the script too:\n{r}"
    );
    let first = app_pid(&r);

    sb.write("app.py", format!("{APP}# edited\n"));
    let r = get_until(addr, "/x", |r| {
        r.contains("app pid=") && app_pid(r) != first
    });
    let second = app_pid(&r);
    signal(second, "KILL");
    let r = get_until(addr, "/x", |r| r.contains("exit status"));
    assert!(r.starts_with("HTTP/1.1 502"), "{r}");
    assert!(r.contains("python3 app.py"), "{r}");
    assert!(r.contains("livereload.js"), "{r}");

    sb.write("app.py", format!("{APP}# fixed\n"));
    let r = get_until(addr, "/x", |r| r.contains("app pid="));
    let third = app_pid(&r);

    let core = Command::new("pgrep")
        .args(["-P", &server.pid().to_string(), "-x", "httpd-core"])
        .output()
        .unwrap();
    let core: u32 = String::from_utf8_lossy(&core.stdout)
        .trim()
        .parse()
        .expect("core is a child");
    signal(server.pid(), "INT");
    assert_eq!(
        server.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        server.output()
    );
    for pid in [third, core] {
        let left = Command::new("pgrep")
            .args(["-g", &pid.to_string()])
            .output()
            .unwrap();
        assert!(
            !left.status.success(),
            "process group {pid} left: {}",
            String::from_utf8_lossy(&left.stdout)
        );
    }
}

#[test]
fn bad_inputs_get_one_clear_message() {
    let sb = site();
    bin("httpd-core");
    let r = run("httpd-dev", sb.path(), &["nope", "0"]);
    assert_eq!(r.status, Some(66), "{r:?}");
    assert!(
        r.stderr.starts_with("httpd-dev: error: no such directory"),
        "{r:?}"
    );

    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let r = run("httpd-dev", sb.path(), &["www", &port]);
    assert_eq!(r.status, Some(74), "{r:?}");
    assert!(r.stderr.contains("already in use"), "{r:?}");

    let r = run("httpd-dev", sb.path(), &["www", "1.2.3:x"]);
    assert_eq!(r.status, Some(2), "{r:?}");

    let port = free_port().to_string();
    let r = run(
        "httpd-dev",
        sb.path(),
        &["www", &port, "--app", "no-such-command-xyz"],
    );
    assert_eq!(r.status, Some(66), "{r:?}");
    assert!(r.stderr.contains("app command was not found"), "{r:?}");
}

#[test]
fn https_serves_through_httpd_tls_with_a_self_signed_certificate() {
    let curl = httpd_blackbox::require_tool("curl");
    bin("httpd-tls");
    let sb = site();
    let (mut server, addr) = start(&sb, &["--https"]);
    assert!(
        server.output().contains("at https://"),
        "{}",
        server.output()
    );
    let out = Command::new(curl)
        .args(["-sk", "--max-time", "10"])
        .arg(format!("https://{addr}/"))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.contains("v1<script src=\"/__httpd_dev/livereload.js\">"),
        "{body}"
    );
    signal(server.pid(), "INT");
    assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(0));
}

/// CPU time (utime + stime, in clock ticks) of a process, from /proc/PID/stat.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn idle_server_uses_no_measurable_cpu() {
    let sb = site();
    let (server, addr) = start(&sb, &[]);
    assert!(get(addr, "/").starts_with("HTTP/1.1 200"));
    let core = Command::new("pgrep")
        .args(["-P", &server.pid().to_string(), "-x", "httpd-core"])
        .output()
        .unwrap();
    let core: u32 = String::from_utf8_lossy(&core.stdout)
        .trim()
        .parse()
        .unwrap();
    let before = cpu_ticks(server.pid()) + cpu_ticks(core);
    // Nothing changes for a second: native events and blocking reads mean no wake-ups.
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(server.pid()) + cpu_ticks(core) - before;
    assert!(used <= 2, "{used} ticks of CPU while idle");
}
