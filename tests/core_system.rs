//! httpd-core and the operating system: `User`/`Group` (root given up after binding),
//! systemd socket activation (`LISTEN_FDS`) and the notify protocol (`NOTIFY_SOCKET`).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use httpd_blackbox::*;

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// An HTTP/1.0 GET (so a streamed CGI body comes unchunked).
fn get(addr: SocketAddr, path: &str) -> String {
    raw_exchange(
        addr,
        format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes(),
        Duration::from_secs(10),
    )
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The `Uid:`, `Gid:` and `Groups:` lines of every thread of `pid`.
fn thread_ids(pid: u32) -> Vec<String> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc/PID/task") {
        let status = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap();
        let pick: Vec<&str> = status
            .lines()
            .filter(|l| l.starts_with("Uid:") || l.starts_with("Gid:") || l.starts_with("Groups:"))
            .collect();
        out.push(
            pick.join(" | ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    out
}

/// Started as root with `User nobody` / `Group nogroup`: every thread runs as nobody
/// after the listener is bound and the logs are open (a log directory only root can
/// enter keeps working), CGI scripts and the piped logger run as nobody, and a reload
/// still works (the open log is kept; the listener too).
#[test]
fn user_group_drop_root_after_binding() {
    if !is_root() {
        eprintln!("skipped: httpd-core can only switch users when started as root");
        return;
    }
    let sb = Sandbox::new();
    chmod(sb.path(), 0o755);
    sb.write("www/index.html", "home\n");
    sb.write(
        "cgi/id.sh",
        "#!/bin/sh\necho 'Content-Type: text/plain'\necho\nid -u\nid -g\nid -G\n",
    );
    chmod(&sb.path().join("cgi/id.sh"), 0o755);
    // Only root can enter logs/: core must open the log before it gives root up.
    sb.mkdir("logs");
    chmod(&sb.path().join("logs"), 0o700);
    // The piped logger writes where nobody may.
    sb.mkdir("pipe");
    chmod(&sb.path().join("pipe"), 0o777);
    let p = sb.path().display();
    // A port below 1024, which only root may bind: the point of binding before the drop.
    let port = privileged_port();
    let conf_text = |port: u16| {
        format!(
            "Listen 127.0.0.1:{port}\nUser nobody\nGroup nogroup\nDocumentRoot \"{p}/www\"\n\
             ScriptAlias /cgi-bin/ \"{p}/cgi/\"\n\
             CustomLog \"{p}/logs/access.log\" \"%>s %U\"\n\
             CustomLog \"|id -u > {p}/pipe/uid; exec cat >> {p}/pipe/access.log\" \"%>s %U\"\n"
        )
    };
    let conf = sb.write("httpd.conf", conf_text(port));
    let (core, addr) = start_core(sb.path(), &conf);
    assert_eq!(addr.port(), port);
    assert!(
        core.output().contains("running as uid 65534 gid 65534"),
        "{}",
        core.output()
    );
    let ids = thread_ids(core.pid());
    assert!(!ids.is_empty());
    for t in &ids {
        assert_eq!(
            t, "Uid: 65534 65534 65534 65534 | Gid: 65534 65534 65534 65534 | Groups: 65534",
            "every thread dropped root: {ids:?}"
        );
    }
    let r = get(addr, "/cgi-bin/id.sh");
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(body(&r), "65534\n65534\n65534\n", "{r}");
    let r = get(addr, "/index.html");
    assert_eq!(body(&r), "home\n", "{r}");

    // Reload as nobody: the config is read again, the root-only log stays open, and the
    // privileged listener is kept (a new Listen cannot be bound without root: logged).
    sb.write("httpd.conf", conf_text(privileged_port()));
    signal(core.pid(), "HUP");
    core.wait_for_line("the listeners are kept");
    core.wait_for_line("configuration reloaded");
    let r = get(addr, "/index.html?after");
    assert_eq!(status(&r), 200, "{r}");
    let log = wait_for(|| {
        let l = std::fs::read_to_string(sb.path().join("logs/access.log")).unwrap_or_default();
        (l.lines().count() >= 3).then_some(l)
    });
    assert_eq!(
        log,
        "200 /cgi-bin/id.sh\n200 /index.html\n200 /index.html\n"
    );
    // `>` creates the file before `id` writes into it.
    let uid = wait_for(|| {
        std::fs::read_to_string(sb.path().join("pipe/uid"))
            .ok()
            .filter(|u| u.ends_with('\n'))
    });
    assert_eq!(uid.trim(), "65534", "the piped logger runs as nobody");
    assert!(
        core.output().contains("keeping the open one"),
        "{}",
        core.output()
    );
}

/// A free port below 1024 on 127.0.0.1 (root only).
fn privileged_port() -> u16 {
    let start = 600 + (std::process::id() % 300) as u16;
    (start..1024)
        .chain(600..start)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below 1024")
}

fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `User` this machine does not know: conftest warns (the build machine may lack the
/// account), core started as root refuses to start (exit 78) rather than serve as root.
/// `User root` is an error in both.
#[test]
fn unknown_user_and_root_user_are_refused() {
    let sb = Sandbox::new();
    sb.mkdir("www");
    let p = sb.path().display();
    let conf = sb.write(
        "httpd.conf",
        format!("Listen 127.0.0.1:0\nDocumentRoot \"{p}/www\"\nUser no-such-user-httpd\n"),
    );
    let out = run("httpd-conftest", sb.path(), &[conf.to_str().unwrap()]);
    assert_eq!(out.status, Some(0), "a warning only: {out:?}");
    assert!(out.stderr.contains("httpd.conf:3:"), "{out:?}");
    assert!(
        out.stderr.contains("does not exist on this machine"),
        "{out:?}"
    );
    let out = run(
        "httpd-conftest",
        sb.path(),
        &["--strict", conf.to_str().unwrap()],
    );
    assert_eq!(out.status, Some(1), "{out:?}");
    if is_root() {
        let out = run("httpd-core", sb.path(), &["-f", conf.to_str().unwrap()]);
        assert_eq!(out.status, Some(78), "{out:?}");
        assert!(
            out.stderr.contains("User no-such-user-httpd: no such user"),
            "{out:?}"
        );
        assert!(!out.stderr.contains("ready"), "{out:?}");
    } else {
        eprintln!("skipped the core half: not root");
    }
    let conf = sb.write(
        "root.conf",
        format!("Listen 127.0.0.1:0\nDocumentRoot \"{p}/www\"\nUser root\n"),
    );
    let out = run("httpd-conftest", sb.path(), &[conf.to_str().unwrap()]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("must not serve requests as root"),
        "{out:?}"
    );
}

/// Started as an ordinary user, User/Group are ignored with a notice and the server runs.
#[test]
fn user_is_ignored_with_a_notice_when_not_root() {
    let sb = Sandbox::new();
    chmod(sb.path(), 0o755);
    sb.write("www/index.html", "home\n");
    let p = sb.path().display();
    let conf = sb.write(
        "httpd.conf",
        format!("Listen 127.0.0.1:0\nDocumentRoot \"{p}/www\"\nUser nobody\nGroup nogroup\n"),
    );
    let core_bin = bin("httpd-core");
    let mut cmd = if is_root() {
        // Become nobody first (setpriv, util-linux), then run core as that user.
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&core_bin);
        c
    } else {
        Command::new(&core_bin)
    };
    cmd.current_dir(sb.path()).arg("-f").arg(&conf);
    let core = Server::spawn(&mut cmd);
    core.wait_for_line("not started as root; User/Group ignored");
    let addr = core.wait_for_listen();
    core.wait_for_line("ready");
    assert_eq!(body(&get(addr, "/index.html")), "home\n");
}

/// The launcher systemd would be: binds a TCP socket and a Unix socket (`core.sock` in
/// the current directory), puts them at fds 3 and 4, sets LISTEN_FDS=2 and LISTEN_PID (its
/// own pid, which exec keeps, or the one given), prints the port, and execs core.
const LAUNCHER: &str = r#"
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
s.listen(64)
u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
path = os.path.abspath("core.sock")
if os.path.exists(path):
    os.unlink(path)
u.bind(path)
u.listen(64)
print("launcher port", s.getsockname()[1], flush=True)
for fd, sock in ((3, s), (4, u)):
    os.dup2(sock.fileno(), fd)
    os.set_inheritable(fd, True)
env = dict(os.environ)
env["LISTEN_FDS"] = "2"
env["LISTEN_PID"] = sys.argv[1] if sys.argv[1] != "self" else str(os.getpid())
os.execve(sys.argv[2], sys.argv[2:], env)
"#;

fn launch(sb: &Sandbox, pid: &str, conf: &Path) -> (Server, u16) {
    let py = require_tool("python3");
    let launcher = sb.write("launcher.py", LAUNCHER);
    let core = Server::spawn(
        Command::new(py)
            .current_dir(sb.path())
            .arg(launcher)
            .arg(pid)
            .arg(bin("httpd-core"))
            .arg("-f")
            .arg(conf),
    );
    let line = core.wait_for_line("launcher port");
    let port = line.rsplit(' ').next().unwrap().parse().unwrap();
    (core, port)
}

/// Socket activation: the inherited socket is served (the Listen line is not bound), the
/// variables are not passed on, and the socket does not leak into CGI scripts. A
/// LISTEN_PID that is not core's own is ignored (the fds were meant for another process).
#[test]
fn systemd_socket_activation() {
    let sb = Sandbox::new();
    sb.write("www/index.html", "activated\n");
    sb.write(
        "cgi/fds.sh",
        "#!/bin/sh\necho 'Content-Type: text/plain'\necho\n\
         if [ -e /proc/self/fd/3 ]; then echo \"fd3 $(readlink /proc/self/fd/3)\"; else echo 'fd3 closed'; fi\n\
         echo \"LISTEN_FDS=${LISTEN_FDS:-unset}\"\n",
    );
    chmod(&sb.path().join("cgi/fds.sh"), 0o755);
    let p = sb.path().display();
    let conf = sb.write(
        "httpd.conf",
        format!(
            "Listen 127.0.0.1:0\nDocumentRoot \"{p}/www\"\nScriptAlias /cgi-bin/ \"{p}/cgi/\"\n"
        ),
    );
    let (core, port) = launch(&sb, "self", &conf);
    let line = core.wait_for_line("listening on http://");
    assert_eq!(
        line.trim(),
        format!("httpd-core: listening on http://127.0.0.1:{port}")
    );
    core.wait_for_line("ready");
    let out = core.output();
    let sock = sb.path().join("core.sock");
    assert!(
        out.contains(&format!("listening on unix:{}", sock.display())),
        "{out}"
    );
    assert_eq!(
        out.matches("listening on").count(),
        2,
        "Listen not bound: {out}"
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(body(&get(addr, "/index.html")), "activated\n");
    let r = get(addr, "/cgi-bin/fds.sh");
    assert_eq!(body(&r), "fd3 closed\nLISTEN_FDS=unset\n", "{r}");
    // The second descriptor (fd 4) is the Unix socket.
    let mut unix = std::os::unix::net::UnixStream::connect(&sock).expect("connect core.sock");
    unix.write_all(b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut r = String::new();
    unix.read_to_string(&mut r).unwrap();
    assert_eq!(body(&r), "activated\n", "{r}");
    drop(core);

    // Someone else's LISTEN_PID: core binds its own Listen address instead.
    let (core, port) = launch(&sb, "1", &conf);
    let own = core.wait_for_listen();
    assert_ne!(own.port(), port, "the fds were not core's");
    core.wait_for_line("ready");
    assert_eq!(body(&get(own, "/index.html")), "activated\n");
}

/// Receives notify datagrams until `want` arrives (10 s at most); returns all seen.
fn recv_until(sock: &UnixDatagram, want: &str, seen: &mut Vec<String>) {
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no {want:?} within 10 s (got {seen:?}): {e}"));
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let done = msg.lines().next() == Some(want);
        seen.push(msg);
        if done {
            return;
        }
    }
}

fn notify_lifecycle(sock: &UnixDatagram, env_value: &str, sb: &Sandbox, bad_reload: bool) {
    sb.write("www/index.html", "hi\n");
    let p = sb.path().display();
    let conf = sb.write(
        "httpd.conf",
        format!("Listen 127.0.0.1:0\nDocumentRoot \"{p}/www\"\n"),
    );
    let core = Server::spawn(
        Command::new(bin("httpd-core"))
            .current_dir(sb.path())
            .env("NOTIFY_SOCKET", env_value)
            .arg("-f")
            .arg(&conf),
    );
    let mut seen = Vec::new();
    recv_until(sock, "READY=1", &mut seen);
    assert_eq!(seen, ["READY=1"]);
    // Ready means serving: the listener answers now.
    let addr = core.wait_for_listen();
    assert_eq!(body(&get(addr, "/index.html")), "hi\n");

    seen.clear();
    signal(core.pid(), "HUP");
    recv_until(sock, "READY=1", &mut seen);
    assert_eq!(seen.len(), 2, "{seen:?}");
    let mut reloading = seen[0].lines();
    assert_eq!(reloading.next(), Some("RELOADING=1"), "{seen:?}");
    let usec = reloading.next().unwrap_or_default();
    assert!(
        usec.strip_prefix("MONOTONIC_USEC=")
            .is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n > 0)),
        "{seen:?}"
    );
    if bad_reload {
        // A broken config on HUP: still RELOADING then READY (the old config serves).
        sb.write("httpd.conf", "Listen 127.0.0.1:0\nNoSuchDirective x\n");
        seen.clear();
        signal(core.pid(), "HUP");
        recv_until(sock, "READY=1", &mut seen);
        assert!(seen[0].starts_with("RELOADING=1"), "{seen:?}");
        core.wait_for_line("reload failed");
        assert_eq!(body(&get(addr, "/index.html")), "hi\n");
    }

    seen.clear();
    signal(core.pid(), "TERM");
    recv_until(sock, "STOPPING=1", &mut seen);
    assert_eq!(seen, ["STOPPING=1"]);
    let mut core = core;
    assert_eq!(core.wait_exit(Duration::from_secs(20)), Some(0));
}

/// NOTIFY_SOCKET as a path: READY=1 once serving, RELOADING=1 (with MONOTONIC_USEC) and
/// READY=1 around each HUP (a failed reload too), STOPPING=1 on TERM.
#[test]
fn systemd_notify_path_socket() {
    let sb = Sandbox::new();
    let path = sb.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    notify_lifecycle(&sock, path.to_str().unwrap(), &sb, true);
}

/// NOTIFY_SOCKET as an abstract socket (`@name`), as systemd also hands out.
#[test]
fn systemd_notify_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let sb = Sandbox::new();
    let name = format!("httpd-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&addr).expect("bind abstract notify socket");
    notify_lifecycle(&sock, &format!("@{name}"), &sb, false);
}
