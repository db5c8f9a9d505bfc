//! httpd-dev, black box: live reload reaches an event-stream client, --app requests reach
//! the app, a source edit restarts it, a crash shows the 502 page, a fix brings it back,
//! CONTROL-C leaves no process behind (also during a slow restart), bad inputs get one
//! clear message, a real browser (headless Chromium) shows edits without any action,
//! `--open` runs the browser, and an idle server does not wake up. Also: a SIGKILL of
//! httpd-dev leaves nothing behind; the banner; plain and coloured request lines;
//! `--noreload`; no-store; noise files and bursts of writes; the addrport forms; the 502
//! page for other machines; the README documents every flag.

mod cdp;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::{Deref, DerefMut};
use std::process::Command;
use std::time::{Duration, Instant};

use httpd_blackbox::{bin, raw_exchange, run, signal, Sandbox, Server};

/// httpd-dev under test. Dropped while running (a failed test), it gets CONTROL-C before
/// the harness kills it, so its children (in process groups of their own) do not outlive
/// the test.
struct Dev(Server);

impl Deref for Dev {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.0
    }
}

impl DerefMut for Dev {
    fn deref_mut(&mut self) -> &mut Server {
        &mut self.0
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Ok(None) = self.0.child().try_wait() {
            let _ = Command::new("kill")
                .args(["-INT", &self.0.pid().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(self.0.child().try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(sb: &Sandbox, args: &[&str]) -> (Dev, SocketAddr) {
    start_with(sb, args, &[])
}

fn start_with(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> (Dev, SocketAddr) {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut all = vec!["www".to_string(), port.to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    (launch(sb.path(), &all, env), addr)
}

/// Starts httpd-dev in `cwd` with exactly `args` (NO_COLOR=1 unless `env` says otherwise)
/// and waits for the end of its banner.
fn launch(cwd: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Dev {
    bin("httpd-core");
    let server = Server::spawn(
        Command::new(bin("httpd-dev"))
            .current_dir(cwd)
            .env("NO_COLOR", "1")
            .env_remove("HTTPD_DEV_HIDE_WARNING")
            .envs(env.iter().copied())
            .args(args),
    );
    server.wait_for_line("Quit the server with CONTROL-C.");
    Dev(server)
}

/// The pid of httpd-dev's httpd-core child.
fn core_pid(server: &Server) -> u32 {
    let out = Command::new("pgrep")
        .args(["-P", &server.pid().to_string(), "-x", "httpd-core"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("core is a child of httpd-dev")
}

/// Live processes still in process group `pgid` (ps lines), or None.
fn group_left(pgid: u32) -> Option<String> {
    let out = Command::new("pgrep")
        .args(["-g", &pgid.to_string()])
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let pids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let ps = Command::new("ps")
        .args(["-o", "pid=,ppid=,stat=,args=", "-p", &pids.join(",")])
        .output()
        .unwrap();
    // A zombie is dead already: it waits for init to reap it.
    let live: Vec<String> = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(2)
                .is_some_and(|st| !st.starts_with('Z'))
        })
        .map(str::to_string)
        .collect();
    (!live.is_empty()).then(|| live.join("\n"))
}

/// Processes (pid and command line) whose working directory is inside `dir`: what an app
/// started there left behind, whatever its process group.
fn processes_in(dir: &std::path::Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap();
    let mut left = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cwd) = std::fs::read_link(e.path().join("cwd")) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rfind(')')
            .is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'));
        if cwd.starts_with(&dir) && !zombie {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            left.push(format!("{} {cmd}", e.file_name().to_string_lossy()));
        }
    }
    left
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
    let mut s = TcpStream::connect((addr.ip(), port)).unwrap();
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
    assert!(
        server.output().contains("Configuration check: Syntax OK"),
        "{}",
        server.output()
    );
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

    let core = core_pid(&server);
    interrupt_leaves_nothing(&mut server, Duration::from_secs(20), &[third, core]);
}

/// CONTROL-C: httpd-dev exits 0 within `limit`, and no live process is left in `groups`
/// nor in its guard's.
fn interrupt_leaves_nothing(server: &mut Dev, limit: Duration, groups: &[u32]) {
    let out = Command::new("pgrep")
        .args(["-P", &server.pid().to_string(), "-x", "httpd-dev-guard"])
        .output()
        .unwrap();
    let guard: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("httpd-dev-guard is a child of httpd-dev");
    signal(server.pid(), "INT");
    assert_eq!(server.wait_exit(limit), Some(0), "{}", server.output());
    for pid in groups.iter().chain([&guard]) {
        assert_eq!(group_left(*pid), None, "process group {pid} left");
    }
}

/// The crash page shows the app's command and output to loopback clients only, decided per
/// client by core (not per listener). Behind httpd-tls (`--https`) core learns the client
/// from a PROXY header, so a header claiming a documentation address (192.0.2.10; no
/// traffic goes there) stands in for a remote client on the same listener.
#[test]
fn crash_page_details_are_for_loopback_clients_only() {
    let curl = httpd_blackbox::require_tool("curl");
    bin("httpd-tls");
    let sb = site();
    sb.write(
        "app.py",
        "import sys\nprint('boom: secret detail', file=sys.stderr)\nsys.exit(3)\n",
    );
    let (server, addr) = start(&sb, &["--https", "--app", "python3 app.py"]);
    server.wait_for_text("the app exited at start (exit status 3)");
    let out = Command::new(curl)
        .args(["-sk", "-i", "--http1.1", "--max-time", "10"])
        .arg(format!("https://{addr}/x"))
        .output()
        .unwrap();
    let local = String::from_utf8_lossy(&out.stdout);
    assert!(local.starts_with("HTTP/1.1 502"), "{local}");
    for want in ["python3 app.py", "exit status 3", "boom: secret detail"] {
        assert!(local.contains(want), "{want} in\n{local}");
    }

    // Core's private listener, from the config httpd-dev wrote for it.
    let conf = std::env::temp_dir()
        .join(format!("httpd-dev-{}", server.pid()))
        .join("httpd.conf");
    let conf = std::fs::read_to_string(&conf).unwrap();
    let core: SocketAddr = conf
        .lines()
        .find_map(|l| l.strip_prefix("Listen "))
        .expect("Listen in the generated config")
        .parse()
        .unwrap();
    let via = |client: &str| {
        raw_exchange(
            core,
            format!(
                "PROXY TCP4 {client} 127.0.0.1 40000 443\r\n\
                 GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
            Duration::from_secs(10),
        )
    };
    let remote = via("192.0.2.10");
    assert!(remote.starts_with("HTTP/1.1 502"), "{remote}");
    // Without details, but it reloads itself when the app is back, like the loopback one.
    assert!(
        remote.contains("<script src=\"/__httpd_dev/livereload.js\"></script></body>"),
        "{remote}"
    );
    for secret in ["python3", "exit status", "boom"] {
        assert!(
            !remote.contains(secret),
            "{secret} shown remotely:\n{remote}"
        );
    }
    let loopback = via("127.0.0.1");
    assert!(loopback.contains("boom: secret detail"), "{loopback}");
}

/// An app deaf to TERM, with a helper process in its group: stopping it for a restart
/// takes the whole TERM grace period (5 s) unless something hurries it.
const DEAF_APP: &str = r#"import signal, sys
def deaf(sig, frame):
    print("app: TERM ignored", file=sys.stderr, flush=True)
signal.signal(signal.SIGTERM, deaf)
"#;

#[test]
fn control_c_during_a_slow_restart_stops_everything_at_once() {
    let sb = site();
    sb.write("app.py", format!("{DEAF_APP}{APP}"));
    let (mut server, addr) = start(
        &sb,
        &["--app", "trap '' TERM; sleep 300 & exec python3 app.py"],
    );
    let first = app_pid(&get_until(addr, "/x", |r| r.contains("app pid=")));
    let core = core_pid(&server);

    sb.write("app.py", format!("{DEAF_APP}{APP}# edited\n"));
    // The TERM comes from the restart's stop. (Not wait_for_line one after the other: the
    // app's stderr line may arrive before httpd-dev's stdout line, see wait_for_text.)
    server.wait_for_text("app: TERM ignored");
    server.wait_for_text("Restarting the app");
    // The restart now waits out the old app's grace period; the main loop still serves
    // files meanwhile, and CONTROL-C does not wait for the restart.
    assert!(get(addr, "/index.html").contains("v1"));
    // Bounded below the 5 s TERM grace: the restart's stop hurries to KILL.
    interrupt_leaves_nothing(&mut server, Duration::from_secs(4), &[first, core]);
    assert_eq!(processes_in(sb.path()), Vec::<String>::new());
}

/// The pids of the live (not zombie) processes in process group `pgid`.
fn group_pids(pgid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let Some(i) = stat.rfind(')') else { continue };
        let f: Vec<&str> = stat[i + 1..].split_whitespace().collect();
        if f.len() > 2 && f[2] == pgid.to_string() && !matches!(f[0], "Z" | "X") {
            pids.push(pid);
        }
    }
    pids
}

/// A SIGKILL gives httpd-dev no chance to stop anything itself: its guard process still
/// stops every process group it started (httpd-core, httpd-tls, the app with a helper of
/// its own) and removes its state directory.
#[test]
fn sigkill_of_httpd_dev_leaves_no_process_behind() {
    let curl = httpd_blackbox::require_tool("curl");
    bin("httpd-tls");
    let sb = site();
    sb.write("app.py", APP);
    let (mut server, addr) = start(
        &sb,
        &["--https", "--app", "sleep 300 & exec python3 app.py"],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let app = loop {
        let out = Command::new(&curl)
            .args(["-sk", "--max-time", "5"])
            .arg(format!("https://{addr}/x"))
            .output()
            .unwrap();
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        if body.contains("app pid=") {
            break app_pid(&body);
        }
        assert!(Instant::now() < deadline, "the app did not answer: {body}");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Every child of httpd-dev leads a group: core, httpd-tls, the app, the guard.
    let out = Command::new("pgrep")
        .args(["-P", &server.pid().to_string()])
        .output()
        .unwrap();
    let children: Vec<u32> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(children.len(), 4, "{children:?}");
    assert!(children.contains(&app) && children.contains(&core_pid(&server)));
    let mut groups: Vec<(u32, Vec<u32>)> = children.iter().map(|g| (*g, group_pids(*g))).collect();
    let app_group = &groups.iter().find(|(g, _)| *g == app).unwrap().1;
    assert_eq!(app_group.len(), 2, "the app and its sleep: {app_group:?}");
    let state = std::env::temp_dir().join(format!("httpd-dev-{}", server.pid()));
    assert!(state.is_dir());

    signal(server.pid(), "KILL");
    assert_eq!(server.wait_exit(Duration::from_secs(10)), None);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        groups.retain(|(g, _)| !group_pids(*g).is_empty());
        if groups.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left after SIGKILL of httpd-dev: {:?}",
            groups
                .iter()
                .map(|(g, _)| group_left(*g))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(processes_in(sb.path()), Vec::<String>::new());
    let deadline = Instant::now() + Duration::from_secs(10);
    while state.exists() {
        assert!(Instant::now() < deadline, "{} left", state.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_inputs_get_one_clear_message() {
    let sb = site();
    bin("httpd-core");
    // One `error:` line (then at most a `hint:`; the app's own words may come before);
    // never a panic; nothing on stdout.
    let one_message = |r: &httpd_blackbox::Run, code: i32, message: &str| {
        assert_eq!(r.status, Some(code), "{r:?}");
        let errors: Vec<&str> = r.stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{r:?}");
        assert!(
            errors[0].starts_with("httpd-dev: error: ") && errors[0].contains(message),
            "{r:?}"
        );
        assert!(!r.stderr.contains("panicked"), "{r:?}");
        assert_eq!(r.stdout, "", "{r:?}");
    };
    let r = run("httpd-dev", sb.path(), &["nope", "0"]);
    one_message(&r, 66, "no such directory: nope");
    let r = run("httpd-dev", sb.path(), &["www/index.html", "0"]);
    one_message(&r, 66, "not a directory: ");

    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let r = run("httpd-dev", sb.path(), &["www", &port.to_string()]);
    one_message(
        &r,
        74,
        &format!("port {port} on 127.0.0.1 is already in use"),
    );
    assert!(r.stderr.contains("hint: "), "{r:?}");

    let r = run("httpd-dev", sb.path(), &["www", "1.2.3:x"]);
    one_message(&r, 2, "bad address or port");

    let port = free_port().to_string();
    let r = run(
        "httpd-dev",
        sb.path(),
        &["www", &port, "--app", "no-such-command-xyz"],
    );
    one_message(&r, 66, "the app command was not found: no-such-command-xyz");
    assert_eq!(processes_in(sb.path()), Vec::<String>::new());
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

/// Times the threads of a process went to sleep voluntarily (waiting, or sleeping in a
/// poll loop), summed over its threads, from /proc/PID/task/*/status: a thread blocked in
/// a read or a wait adds nothing while nothing happens, a polling thread adds at each turn.
fn wakeups(pid: u32) -> u64 {
    let mut n = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        n += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    n
}

#[test]
fn idle_server_uses_no_measurable_cpu() {
    let sb = site();
    sb.write("app.py", APP);
    let (server, addr) = start(&sb, &["--app", "python3 app.py"]);
    get_until(addr, "/x", |r| r.contains("app pid="));
    assert!(get(addr, "/").starts_with("HTTP/1.1 200"));
    let es = events(addr);
    let dev = server.pid();
    let core = core_pid(&server);
    // Let the request lines and the page writes settle.
    server.wait_for_line("GET / 200");
    let ticks = cpu_ticks(dev) + cpu_ticks(core);
    let woke = wakeups(dev);
    // Nothing changes for 3 s: native file events, blocking reads and waits mean no turns.
    std::thread::sleep(Duration::from_secs(3));
    let ticks = cpu_ticks(dev) + cpu_ticks(core) - ticks;
    let woke = wakeups(dev) - woke;
    eprintln!("idle 3 s: {ticks} ticks (httpd-dev + core), httpd-dev woke {woke} times");
    assert!(ticks <= 3, "{ticks} ticks of CPU in 3 s idle");
    // A 100 ms poll loop alone would make 30.
    assert!(woke <= 6, "httpd-dev woke {woke} times in 3 s idle");
    drop(es);
}

#[test]
fn open_runs_the_browser_command_with_the_url() {
    let sb = site();
    let opened = sb.path().join("opened");
    sb.write(
        "browser.sh",
        format!(
            "#!/bin/sh\necho \"$1\" > {}.tmp && mv {0}.tmp {0}\n",
            opened.display()
        ),
    );
    let script = sb.path().join("browser.sh");
    let chmod = Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    assert!(chmod.success());
    let (server, addr) = start_with(
        &sb,
        &["--open"],
        &[(
            "BROWSER",
            &format!("no-such-browser-xyz:{}", script.display()),
        )],
    );
    server.wait_for_line("Opened ");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !opened.exists() {
        assert!(Instant::now() < deadline, "the browser command did not run");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(sb.read("opened"), format!("http://{addr}/\n"));
}

/// The way a developer uses it: a page open in a real browser (headless Chromium, driven
/// over the DevTools protocol) shows an edit without any action; a CSS edit swaps the
/// stylesheet without reloading the page (page state survives).
#[test]
fn chromium_shows_edits_without_any_action() {
    let Some(exe) = cdp::find() else {
        eprintln!("SKIPPED chromium_shows_edits_without_any_action: chromium is not installed (scripts/test installs it)");
        return;
    };
    let sb = Sandbox::new();
    let page = |text: &str| {
        format!("<!DOCTYPE html><html><head><link rel=\"stylesheet\" href=\"/style.css\"></head><body><p id=\"t\">{text}</p></body></html>\n")
    };
    sb.write("www/index.html", page("first version"));
    sb.write("www/style.css", "p { color: rgb(0, 0, 0); }\n");
    let (_server, addr) = start(&sb, &[]);

    let mut browser = cdp::Chromium::launch(&exe);
    let mut tab = browser.open(&format!("http://{addr}/"));
    let connected = "window.__httpdDevLive === true";
    tab.wait_for(connected, "document.readyState", Duration::from_secs(20));
    assert_eq!(tab.eval("document.body.innerText.trim()"), "first version");

    // An HTML edit: the page reloads by itself (so page state is gone) and shows it.
    tab.eval("window.marker = 1");
    sb.write("www/index.html", page("second version"));
    let body = "document.body && document.body.innerText.trim()";
    tab.wait_for(
        &format!("{body} === 'second version'"),
        body,
        Duration::from_secs(10),
    );
    assert_eq!(tab.eval("window.marker === undefined"), true);

    // A CSS edit: the new rule applies, and the page was not reloaded.
    tab.wait_for(connected, "document.readyState", Duration::from_secs(20));
    tab.eval("window.marker = 2");
    sb.write("www/style.css", "p { color: rgb(1, 2, 3); }\n");
    let color = "getComputedStyle(document.getElementById('t')).color";
    tab.wait_for(
        &format!("{color} === 'rgb(1, 2, 3)'"),
        color,
        Duration::from_secs(10),
    );
    assert_eq!(
        tab.eval("window.marker"),
        2,
        "a CSS edit must not reload the page"
    );
    drop(tab);
    drop(browser);
}

/// Everything httpd-dev wrote up to its `Stopping` line, after a CONTROL-C (so that what
/// is absent from the banner is known to be absent).
fn stop_and_collect(server: &mut Dev) -> String {
    signal(server.pid(), "INT");
    server.wait_for_line("Stopping");
    let out = server.output();
    assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(0), "{out}");
    out
}

#[test]
fn banner_says_what_is_served_watched_and_checked() {
    let sb = site();
    let (mut server, addr) = start(&sb, &[]);
    let www = sb.path().join("www").canonicalize().unwrap();
    let out = stop_and_collect(&mut server);
    for want in [
        format!("httpd-dev {} (httpd-core ", env!("CARGO_PKG_VERSION")),
        format!("Watching {} for changes (native events)", www.display()),
        "Configuration check: Syntax OK".to_string(),
        format!("Serving {} at http://{addr}/", www.display()),
        "Quit the server with CONTROL-C.".to_string(),
        "WARNING: This is a development server. Do not use it in a production deployment."
            .to_string(),
    ] {
        assert!(out.contains(&want), "{want:?} in\n{out}");
    }
    assert!(!out.contains("Notice:"), "loopback needs no notice:\n{out}");

    // --poll says so; HTTPD_DEV_HIDE_WARNING=1 drops the warning and nothing else.
    let (mut server, _) = start_with(&sb, &["--poll"], &[("HTTPD_DEV_HIDE_WARNING", "1")]);
    let out = stop_and_collect(&mut server);
    assert!(out.contains("for changes (polling)"), "{out}");
    assert!(out.contains("Quit the server with CONTROL-C."), "{out}");
    assert!(!out.contains("WARNING"), "{out}");
    // Any other value keeps it (only 1 silences, as documented).
    let (mut server, _) = start_with(&sb, &[], &[("HTTPD_DEV_HIDE_WARNING", "0")]);
    let out = stop_and_collect(&mut server);
    assert!(
        out.contains("WARNING: This is a development server"),
        "{out}"
    );
}

/// `[hh:mm:ss] GET /path STATUS SIZE N.Nms`, plain: the line for `path` in `out`.
fn request_line<'a>(out: &'a str, method_path: &str) -> &'a str {
    let line = out
        .lines()
        .find(|l| l.contains(&format!("] {method_path} ")))
        .unwrap_or_else(|| panic!("no request line for {method_path} in\n{out}"));
    let f: Vec<&str> = line.trim_end_matches('\r').split(' ').collect();
    assert_eq!(f.len(), 6, "{line:?}");
    let t = f[0].trim_start_matches('[').trim_end_matches(']');
    assert!(
        t.len() == 8 && t.bytes().filter(|b| *b == b':').count() == 2,
        "time in {line:?}"
    );
    assert!(f[3].parse::<u16>().is_ok(), "status in {line:?}");
    assert!(f[4].parse::<u64>().is_ok(), "size in {line:?}");
    let ms = f[5].strip_suffix("ms").expect("duration in ms");
    assert!(ms.parse::<f64>().is_ok(), "duration in {line:?}");
    line
}

#[test]
fn request_lines_are_plain_off_a_terminal() {
    let sb = site();
    // NO_COLOR empty counts as unset (no-color.org): plain because stdout is a pipe.
    let (mut server, addr) = start_with(&sb, &[], &[("NO_COLOR", "")]);
    let r = get(addr, "/index.html");
    let size = httpd_blackbox::body(&r).len();
    server.wait_for_line("GET /index.html 200");
    assert!(get(addr, "/missing").starts_with("HTTP/1.1 404"));
    server.wait_for_line("GET /missing 404");
    let out = stop_and_collect(&mut server);
    assert!(!out.contains('\x1b'), "escape bytes in\n{out:?}");
    let line = request_line(&out, "GET /index.html");
    assert!(line.contains(&format!(" 200 {size} ")), "{line:?}");
    request_line(&out, "GET /missing");
}

/// On a terminal (a pseudo-terminal from `script`), the status is coloured by class unless
/// NO_COLOR is set.
#[test]
fn request_lines_are_coloured_on_a_terminal_unless_no_color() {
    let script = httpd_blackbox::require_tool("script");
    let sb = site();
    for (no_color, coloured) in [("", true), ("1", false)] {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let cmd = format!("exec '{}' www {port}", bin("httpd-dev").display());
        let mut server = Dev(Server::spawn(
            Command::new(&script)
                .current_dir(sb.path())
                .env("NO_COLOR", no_color)
                .args(["-qfec", &cmd, "/dev/null"]),
        ));
        server.wait_for_line("Quit the server with CONTROL-C.");
        assert!(get(addr, "/index.html").starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/missing").starts_with("HTTP/1.1 404"));
        server.wait_for_line("GET /missing");
        let out = server.output();
        assert_eq!(
            out.contains("GET /index.html \x1b[32m200\x1b[0m "),
            coloured,
            "NO_COLOR={no_color:?}:\n{out:?}"
        );
        assert_eq!(
            out.contains("GET /missing \x1b[33m404\x1b[0m "),
            coloured,
            "{out:?}"
        );
        if !coloured {
            assert!(!out.contains('\x1b'), "{out:?}");
            request_line(&out, "GET /index.html");
        }
        // CONTROL-C to httpd-dev itself (script's child), then script ends with it.
        let pid = String::from_utf8_lossy(
            &Command::new("pgrep")
                .args(["-P", &server.pid().to_string(), "-x", "httpd-dev"])
                .output()
                .unwrap()
                .stdout,
        )
        .trim()
        .to_string();
        signal(pid.parse().expect("httpd-dev under script"), "INT");
        assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(0));
    }
}

/// Whether process `pid` holds an inotify instance (what watching files needs).
fn has_inotify(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .any(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().contains("inotify"))
        })
}

#[test]
fn noreload_watches_nothing_and_injects_nothing() {
    let sb = site();
    let (server, _) = start(&sb, &[]);
    assert!(has_inotify(server.pid()));
    drop(server);

    let (mut server, addr2) = start(&sb, &["--noreload"]);
    assert!(!has_inotify(server.pid()), "--noreload still watches");
    let r = get(addr2, "/");
    assert!(
        r.contains("v1</body>") && !r.contains("livereload.js"),
        "{r}"
    );
    let mut es = events(addr2);
    sb.write("www/index.html", "<html><body>v2</body></html>\n");
    // Far longer than the debounce: an event would have come.
    es.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = [0u8; 256];
    match es.read(&mut buf) {
        Ok(n) => panic!(
            "event with --noreload: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
    }
    assert!(
        get(addr2, "/").contains("v2"),
        "files are still served fresh"
    );
    let out = stop_and_collect(&mut server);
    assert!(out.contains("Not watching files (--noreload)"), "{out}");
    assert!(!out.contains("Changed:"), "{out}");
}

/// Caching is off everywhere: pages, other files, 404s, the app, the error page.
#[test]
fn every_response_says_no_store() {
    let sb = site();
    let (server, addr) = start(&sb, &[]);
    let mut responses = vec![
        ("/", get(addr, "/")),
        ("/style.css", get(addr, "/style.css")),
        ("/missing", get(addr, "/missing")),
    ];
    assert!(
        responses[2].1.starts_with("HTTP/1.1 404"),
        "{}",
        responses[2].1
    );
    drop(server);

    sb.write("app.py", APP);
    let (_server, addr) = start(&sb, &["--app", "python3 app.py"]);
    let app = get_until(addr, "/x", |r| r.contains("app pid="));
    signal(app_pid(&app), "KILL");
    responses.push(("/x (app)", app));
    responses.push((
        "/x (502)",
        get_until(addr, "/x", |r| r.contains("exit status")),
    ));
    responses.push((
        "/__httpd_dev/livereload.js",
        get(addr, "/__httpd_dev/livereload.js"),
    ));
    for (what, r) in &responses {
        assert_eq!(
            httpd_blackbox::header(r, "cache-control"),
            Some("no-store"),
            "{what}:\n{r}"
        );
    }
}

/// Noise never reloads: VCS and build directories, editor swap and backup files.
#[test]
fn noise_files_do_not_reload_browsers() {
    let sb = site();
    sb.mkdir("www/sub");
    let (_server, addr) = start(&sb, &[]);
    let mut es = events(addr);
    for noise in [
        "www/.git/index",
        "www/target/debug/app",
        "www/node_modules/x/index.js",
        "www/.foo.swp",
        "www/foo~",
        "www/sub/.index.html.swp",
    ] {
        sb.write(noise, "x");
    }
    // The first event after the noise names the real file only: had any noise counted, it
    // would be in this batch or in an earlier event.
    sb.write("www/index.html", "<html><body>v2</body></html>\n");
    let ev = read_until(&mut es, "\n\n");
    assert!(ev.contains("event: reload\ndata: index.html\n"), "{ev:?}");
}

/// An app that logs each request to a file and records it in a SQLite database, both in
/// the project directory (where httpd-dev watches for source changes).
const WRITING_APP: &str = r#"import os, sqlite3, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open("app.log", "a") as f:
            f.write("GET %s\n" % self.path)
        db = sqlite3.connect("data.sqlite3")
        db.execute("create table if not exists hits (path text)")
        db.execute("insert into hits values (?)", (self.path,))
        db.commit()
        db.close()
        b = ("<html><body>app pid=%d %s</body></html>" % (os.getpid(), self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// What the app writes as it runs (its log, its SQLite database and journal) is not a
/// source change: only the edit of app.py restarts it.
#[test]
fn files_the_app_writes_do_not_restart_it() {
    let sb = site();
    sb.write("app.py", WRITING_APP);
    let (server, addr) = start(&sb, &["--app", "python3 app.py"]);
    let first = app_pid(&get_until(addr, "/x", |r| r.contains("app pid=")));
    for i in 0..5 {
        get(addr, &format!("/y{i}"));
    }
    assert!(sb.read("app.log").contains("GET /y4"));
    sb.write("app.py", format!("{WRITING_APP}# edited\n"));
    let r = get_until(addr, "/z", |r| {
        r.contains("app pid=") && app_pid(r) != first
    });
    let _ = app_pid(&r);
    let source = sb.path().canonicalize().unwrap().join("app.py");
    let edit = format!("Changed: {}", source.display());
    // Printed in order: a change the writes had made would come before the edit's line.
    server.wait_for_text(&edit);
    let out = server.output();
    let changes: Vec<&str> = out.lines().filter(|l| l.starts_with("Changed:")).collect();
    assert_eq!(changes, [edit.as_str()], "{out}");
}

/// A burst of writes (a save that touches many files, a `git checkout`) is one reload.
#[test]
fn a_burst_of_writes_is_one_reload() {
    let sb = site();
    let (_server, addr) = start(&sb, &[]);
    let mut es = events(addr);
    for i in 0..20 {
        sb.write(&format!("www/page{}.html", i % 5), format!("<p>{i}</p>"));
    }
    let ev = read_until(&mut es, "\n\n");
    assert!(ev.contains("event: reload\n"), "{ev:?}");
    // The next event is for a later, separate edit: the burst made one event only.
    sb.write("www/after.html", "<p>after</p>");
    let ev = read_until(&mut es, "after.html");
    assert_eq!(ev.matches("event:").count(), 1, "{ev:?}");
    assert!(
        ev.starts_with("event: reload\ndata: after.html\n"),
        "{ev:?}"
    );
}

#[test]
fn addrport_forms() {
    let sb = site();
    let www = sb.path().join("www");

    // `PORT` alone: the current directory on 127.0.0.1.
    let port = free_port();
    let mut server = launch(&www, &[&port.to_string()], &[]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(get(addr, "/index.html").contains("v1"));
    let out = stop_and_collect(&mut server);
    assert!(
        out.contains(&format!("at http://127.0.0.1:{port}/")) && !out.contains("Notice:"),
        "{out}"
    );

    // `[::1]:PORT`: IPv6 loopback, no notice (where the machine has IPv6).
    match TcpListener::bind("[::1]:0") {
        Ok(l) => {
            let port = l.local_addr().unwrap().port();
            drop(l);
            let mut server = launch(sb.path(), &["www", &format!("[::1]:{port}")], &[]);
            let addr: SocketAddr = format!("[::1]:{port}").parse().unwrap();
            let r = get(addr, "/");
            assert!(r.contains("v1<script"), "{r}");
            let mut es = events(addr);
            sb.write("www/index.html", "<html><body>v2</body></html>\n");
            read_until(&mut es, "event: reload");
            let out = stop_and_collect(&mut server);
            assert!(
                out.contains(&format!("at http://[::1]:{port}/")) && !out.contains("Notice:"),
                "{out}"
            );
        }
        Err(e) => eprintln!("SKIPPED the [::1] form of addrport_forms: no IPv6 loopback ({e})"),
    }

    // `0:PORT`: every IPv4 interface, with a notice.
    let port = free_port();
    let mut server = launch(sb.path(), &["www", &format!("0:{port}")], &[]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(get(addr, "/").starts_with("HTTP/1.1 200"));
    let out = stop_and_collect(&mut server);
    assert!(
        out.contains(&format!(
            "Notice: listening on 0.0.0.0:{port}, reachable from other machines"
        )),
        "{out}"
    );
}

/// This machine's own non-loopback IPv4 address, if it has one (`hostname -I`). Traffic
/// to it stays on the machine.
fn own_address() -> Option<std::net::IpAddr> {
    let out = Command::new("hostname").arg("-I").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|a| a.parse::<std::net::IpAddr>().ok())
        .find(|a| a.is_ipv4() && !a.is_loopback())
}

/// On `0:PORT`, a client on another address gets the 502 without the app's details, and
/// that page too reloads itself when the app is back.
#[test]
fn error_page_for_other_machines_has_no_details_and_reloads() {
    let Some(ip) = own_address() else {
        eprintln!("SKIPPED error_page_for_other_machines_has_no_details_and_reloads: no non-loopback address (crash_page_details_are_for_loopback_clients_only covers the rest)");
        return;
    };
    let sb = site();
    sb.write(
        "app.py",
        "import sys\nprint('boom: secret detail', file=sys.stderr)\nsys.exit(3)\n",
    );
    let port = free_port();
    let _server = launch(
        sb.path(),
        &["www", &format!("0:{port}"), "--app", "python3 app.py"],
        &[],
    );
    let remote = SocketAddr::new(ip, port);
    let local: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let r = get(remote, "/x");
    assert!(r.starts_with("HTTP/1.1 502"), "{r}");
    for secret in ["python3", "exit status", "boom"] {
        assert!(!r.contains(secret), "{secret} shown to {ip}:\n{r}");
    }
    assert!(
        r.contains("<script src=\"/__httpd_dev/livereload.js\"></script></body>"),
        "the page for {ip} does not reload itself:\n{r}"
    );
    assert!(get(local, "/x").contains("boom: secret detail"));

    // The script's event stream, from that address too; the fix reloads the page.
    let mut es = events(remote);
    sb.write("app.py", APP);
    let ev = read_until(&mut es, "data: app\n");
    assert!(ev.contains("event: reload\ndata: app\n"), "{ev:?}");
    assert!(get(remote, "/x").contains("app pid="));
}

/// Every flag of `httpd-dev --help` is explained in the README.
#[test]
fn readme_documents_every_flag() {
    let help = run("httpd-dev", &httpd_blackbox::workspace_root(), &["--help"]);
    assert_eq!(help.status, Some(0), "{help:?}");
    let readme =
        std::fs::read_to_string(httpd_blackbox::workspace_root().join("README.md")).unwrap();
    let flags: Vec<&str> = help
        .stdout
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .filter(|w| !["--help", "--version"].contains(w))
        .collect();
    assert!(flags.len() >= 6, "{flags:?}");
    for f in flags {
        assert!(
            readme.contains(&format!("`{f}")),
            "README.md does not document httpd-dev {f}"
        );
    }
}
