//! The black-box test harness: it runs the real binaries, freshly built from this tree.
//!
//! - [`bin`] builds every workspace binary once per test process (`cargo build --bins`, so
//!   a stale `target/` leftover is never what gets tested) and returns the path of one.
//! - [`Sandbox`] is a temporary directory per test, with helpers to write files into it.
//! - [`Server`] spawns a long-running binary, waits for its ready line on stderr, and
//!   kills it on drop, printing its stderr when the test failed.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The workspace root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The directory the binaries are built into: the test executable's own profile directory
/// (`target/debug/deps/conftest-xxxx` → `target/debug`), so a `--release` test run tests
/// release binaries.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("exe dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// Path to the freshly built binary `name` (for example `httpd-conftest`). The first call
/// for each binary in a test process runs `cargo build -p NAME --bins`, so a stale
/// `target/` leftover is never what gets tested; each package is named after its binary.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if !built.contains(name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root())
            .args(["build", "--quiet", "--bins", "-p", name]);
        if profile_dir().file_name().and_then(|n| n.to_str()) == Some("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("spawn cargo build");
        assert!(status.success(), "cargo build -p {name} failed");
        built.insert(name.to_string());
    }
    let path = profile_dir().join(name);
    assert!(path.exists(), "binary {} was not built", path.display());
    path
}

/// A temporary directory for one test.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox {
            dir: tempfile::Builder::new()
                .prefix("httpd-test-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `rel` (parents created) and returns the full path.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent dirs");
        }
        std::fs::write(&path, contents).expect("write file");
        path
    }

    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(&path).expect("mkdir");
        path
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(rel)).expect("read file")
    }
}

/// The result of running a binary to completion.
pub struct Run {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `name` with `args` in `dir` to completion, with a deadline, no stdin.
pub fn run(name: &str, dir: &Path, args: &[&str]) -> Run {
    run_with(Command::new(bin(name)).current_dir(dir).args(args), None)
}

/// Runs a prepared command with optional stdin bytes, killing it after 60 s.
pub fn run_with(cmd: &mut Command, stdin: Option<&[u8]>) -> Run {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn binary");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = pipe.write_all(&bytes);
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("binary did not exit within 60 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().expect("collect output").into()
}

/// A long-running child process (a server), killed when dropped. Its stderr is collected
/// in the background and printed if the test is panicking, so failures show the server's
/// side of the story.
pub struct Server {
    child: Child,
    stderr: Arc<Mutex<String>>,
    lines: mpsc::Receiver<String>,
}

impl Server {
    /// Spawns the command (stdout and stderr piped) and returns at once.
    pub fn spawn(cmd: &mut Command) -> Server {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn server");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        for pipe in [
            Box::new(child.stderr.take().expect("stderr")) as Box<dyn Read + Send>,
            Box::new(child.stdout.take().expect("stdout")),
        ] {
            let log = Arc::clone(&stderr);
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    log.lock().unwrap().push_str(&line);
                    log.lock().unwrap().push('\n');
                    let _ = tx.send(line);
                }
            });
        }
        Server {
            child,
            stderr,
            lines,
        }
    }

    /// Waits (up to 30 s) for an output line containing `needle` and returns it.
    pub fn wait_for_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(_) => panic!(
                    "no line containing {needle:?} within 30 s; output so far:\n{}",
                    self.output()
                ),
            }
        }
    }

    /// Waits (up to 30 s) until the output so far contains `needle`, wherever it is. Unlike
    /// [`Server::wait_for_line`] it consumes nothing, so lines of stdout and stderr (read
    /// on two threads) may be awaited in any order.
    pub fn wait_for_text(&self, needle: &str) {
        wait_until(
            Duration::from_secs(30),
            || format!("no {needle:?}; output so far:\n{}", self.output()),
            || self.output().contains(needle),
        );
    }

    /// Waits for httpd-core's `listening on http://ADDR` line and returns ADDR.
    pub fn wait_for_listen(&self) -> SocketAddr {
        let line = self.wait_for_line("listening on http://");
        line.rsplit("http://")
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no address in {line:?}"))
    }

    /// Everything the child printed so far (stderr and stdout interleaved by line).
    pub fn output(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Waits up to `limit` for the child to exit and returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "child did not exit within {limit:?}; output:\n{}",
            self.output()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- server output ---\n{}", self.output());
        }
    }
}

/// Sends a signal to a process (via the `kill` command, to keep the harness free of libc).
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// Polls until a TCP connection to `addr` succeeds (deadline 30 s).
pub fn wait_for_port(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{addr} did not accept within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends raw bytes on a fresh connection and reads until the server closes it or
/// `limit` passes. Returns what was read, lossily decoded.
pub fn raw_exchange(addr: SocketAddr, request: &[u8], limit: Duration) -> String {
    use std::io::Write;
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(limit)).expect("timeout");
    stream.write_all(request).expect("send request");
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Runs `openssl ARGS...` in `dir` (certificates for the TLS tests); panics with its
/// stderr when it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether an external tool is on PATH (tests that need one fail loudly when it is missing:
/// the test script installs them).
pub fn require_tool(name: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{name} is not installed; run ./scripts/test, which installs it"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Flags for Debian's headless Chromium that work in CI (as root, no GPU, no network of its
/// own); add `--user-data-dir=` with a fresh directory.
pub const CHROMIUM_HEADLESS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Polls `done` every 20 ms until it holds; after `limit`, fails the test with `what()`.
pub fn wait_until(limit: Duration, what: impl Fn() -> String, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "after {limit:?}: {}", what());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `httpd-core -f CONF` in `dir` and waits until it is ready; returns the server and
/// the address from its `listening on http://ADDR` line (so configs can `Listen ...:0`).
pub fn start_core(dir: &Path, conf: &Path) -> (Server, SocketAddr) {
    let server = Server::spawn(
        Command::new(bin("httpd-core"))
            .current_dir(dir)
            .arg("-f")
            .arg(conf),
    );
    let addr = server.wait_for_listen();
    server.wait_for_line("ready");
    (server, addr)
}

/// The status code of a raw HTTP/1.x response (`HTTP/1.1 200 OK`).
pub fn status(resp: &str) -> u16 {
    resp.get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {resp:?}"))
}

/// A header's value in a raw response head (name compared case-insensitively).
pub fn header<'a>(resp: &'a str, name: &str) -> Option<&'a str> {
    let head = resp.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The body of a raw response (everything after the blank line).
pub fn body(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}
