//! Black-box tests of httpd-logrotate (rotation): the real binary, lines with unique ids
//! piped in, every file (decompressed) read back and compared with what was sent.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use httpd_blackbox::*;

/// A running rotator with its stdin open.
struct Logger {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<Vec<u8>>>,
}

impl Logger {
    fn spawn(dir: &Path, args: &[&str]) -> Logger {
        let mut child = Command::new(bin("httpd-logrotate"))
            .current_dir(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn httpd-logrotate");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let mut err = child.stderr.take().unwrap();
        let e = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                e.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut out = child.stdout.take().unwrap();
        let o = Arc::clone(&stdout);
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                o.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Logger {
            stdin: child.stdin.take(),
            child,
            stderr,
            stdout,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stdin
            .as_mut()
            .unwrap()
            .write_all(bytes)
            .expect("write to logger");
    }

    fn signal(&self, sig: &str) {
        signal(self.child.id(), sig);
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for `needle` on stderr (deadline 20 s).
    fn wait_stderr(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.stderr().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} on stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Closes stdin and waits (up to 30 s) for the exit code.
    fn finish(mut self) -> (Option<i32>, String) {
        self.stdin = None;
        self.wait()
    }

    fn wait(&mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // Let the stderr thread catch the last bytes.
                std::thread::sleep(Duration::from_millis(20));
                return (st.code(), self.stderr());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("logger did not exit; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- logger stderr ---\n{}", self.stderr());
        }
    }
}

/// Line number `id`: unique, of varying length, recognisable whole.
fn line(id: u64) -> String {
    let pad = "x".repeat((id % 97) as usize);
    format!("{id:09} 127.0.0.1 - - [01/Mar/2025:00:00:00 +0000] \"GET /p/{id}?{pad} HTTP/1.1\" 200 512 end{id}\n")
}

fn lines(range: std::ops::Range<u64>) -> String {
    range.map(line).collect()
}

/// Every regular file under `dir` (symlinks skipped), `.gz` decompressed, by path.
fn read_all(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let text = if path.extension().is_some_and(|e| e == "gz") {
                    let out = Command::new("gzip").arg("-dc").arg(&path).output().unwrap();
                    assert!(out.status.success(), "gzip -dc {}", path.display());
                    String::from_utf8(out.stdout).unwrap()
                } else {
                    std::fs::read_to_string(&path).unwrap()
                };
                out.insert(path, text);
            }
        }
    }
    out
}

/// Asserts that `files` hold exactly lines `0..count`: each once, whole, in order within
/// each file. Returns the number of files that held lines.
fn assert_exactly(files: &BTreeMap<PathBuf, String>, count: u64) -> usize {
    let mut seen = vec![false; count as usize];
    let mut used = 0;
    for (path, text) in files {
        if text.is_empty() {
            continue;
        }
        used += 1;
        assert!(
            text.ends_with('\n'),
            "{} ends inside a line",
            path.display()
        );
        let mut last = None;
        for l in text.lines() {
            let id: u64 = l[..9]
                .parse()
                .unwrap_or_else(|_| panic!("split or foreign line in {}: {l:?}", path.display()));
            assert_eq!(
                format!("{l}\n"),
                line(id),
                "line {id} damaged in {}",
                path.display()
            );
            assert!(id < count, "unknown id {id}");
            assert!(!seen[id as usize], "line {id} duplicated");
            seen[id as usize] = true;
            assert!(
                last < Some(id),
                "line {id} out of order in {}",
                path.display()
            );
            last = Some(id);
        }
    }
    let lost: Vec<_> = (0..count).filter(|i| !seen[*i as usize]).take(5).collect();
    assert!(lost.is_empty(), "lines lost, first ones: {lost:?}");
    used
}

fn count_files(dir: &Path) -> usize {
    if !dir.exists() {
        return 0; // not created yet
    }
    read_all(dir).len()
}

#[test]
fn forced_rotations_lose_nothing() {
    let sb = Sandbox::new();
    let mut lg = Logger::spawn(sb.path(), &["logs/access.log"]);
    let mut id = 0;
    let rotations = 24;
    for r in 0..rotations {
        lg.send(lines(id..id + 2000).as_bytes());
        id += 2000;
        lg.signal(if r % 2 == 0 { "HUP" } else { "USR1" });
        // Keep writing until the rotation shows up as a new file.
        let deadline = Instant::now() + Duration::from_secs(20);
        while count_files(sb.path()) < r + 2 {
            assert!(Instant::now() < deadline, "rotation {r} never happened");
            lg.send(lines(id..id + 10).as_bytes());
            id += 10;
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let (code, stderr) = lg.finish();
    assert_eq!(code, Some(0), "{stderr}");
    let files = read_all(sb.path());
    assert_eq!(files.len(), rotations + 1, "{:?}", files.keys());
    assert_exactly(&files, id);
    // Collision suffixes: one name, then .1, .2 …
    assert!(sb.path().join("logs/access.log.24").exists());
}

#[test]
fn size_time_rotations_with_compression_lose_nothing() {
    let sb = Sandbox::new();
    let mut lg = Logger::spawn(
        sb.path(),
        &[
            "l/a.%Y%m%d-%H%M%S.log",
            "--every",
            "1",
            "--max-size",
            "64K",
            "--compress",
        ],
    );
    // Full speed for about 2.5 s, so at least two timed rotations happen as well.
    let start = Instant::now();
    let mut id = 0;
    while start.elapsed() < Duration::from_millis(2500) {
        lg.send(lines(id..id + 1000).as_bytes());
        id += 1000;
        if id % 20_000 == 0 {
            lg.signal("HUP");
        }
    }
    // A final line without a newline is kept, with one added.
    lg.send(line(id).trim_end().as_bytes());
    id += 1;
    let (code, stderr) = lg.finish();
    assert_eq!(code, Some(0), "{stderr}");
    let files = read_all(&sb.path().join("l"));
    let used = assert_exactly(&files, id);
    assert!(used > 10, "only {used} files");
    for (path, text) in &files {
        // Size limit (no single line is near 64K here).
        assert!(
            text.len() <= 64 << 10,
            "{} is {} bytes",
            path.display(),
            text.len()
        );
    }
    let gz = files
        .keys()
        .filter(|p| p.extension().is_some_and(|e| e == "gz"))
        .count();
    assert_eq!(gz, files.len() - 1, "all but the current file compressed");
    let names: std::collections::BTreeSet<_> = files
        .keys()
        .map(|p| p.file_name().unwrap().to_string_lossy()[..17].to_string())
        .collect();
    assert!(names.len() >= 2, "no timed rotation: {names:?}");
}

#[test]
fn long_lines_are_split_with_a_marker() {
    let sb = Sandbox::new();
    let long = "y".repeat(1000);
    let input = format!("short\n{long}\nend");
    let mut lg = Logger::spawn(sb.path(), &["a.log", "--max-line", "300"]);
    lg.send(input.as_bytes());
    let (code, stderr) = lg.finish();
    assert_eq!(code, Some(0), "{stderr}");
    let got = sb.read("a.log");
    let y = "y".repeat(300);
    let want = format!(
        "short\n{y} [continued]\n{y} [continued]\n{y} [continued]\n{}\nend\n",
        "y".repeat(100)
    );
    assert_eq!(got, want);
}

#[test]
fn keep_and_max_total_delete_the_oldest() {
    let sb = Sandbox::new();
    let mut lg = Logger::spawn(sb.path(), &["k/a.log", "--max-size", "2K", "--keep", "3"]);
    lg.send(lines(0..300).as_bytes());
    let (code, stderr) = lg.finish();
    assert_eq!(code, Some(0), "{stderr}");
    let files = read_all(&sb.path().join("k"));
    assert_eq!(files.len(), 3, "{:?}", files.keys());
    let all: String = files
        .values()
        .flat_map(|t| t.lines())
        .map(|l| &l[..9])
        .collect();
    assert!(all.contains(&format!("{:09}", 299)), "newest line kept");
    assert!(!all.contains(&format!("{:09}", 0)), "oldest deleted");

    let mut lg = Logger::spawn(
        sb.path(),
        &["t/a.log", "--max-size", "2K", "--max-total", "7K"],
    );
    lg.send(lines(0..300).as_bytes());
    let (code, stderr) = lg.finish();
    assert_eq!(code, Some(0), "{stderr}");
    let files = read_all(&sb.path().join("t"));
    let total: usize = files.values().map(|t| t.len()).sum();
    assert!(
        total <= 7 << 10 && files.len() >= 3,
        "{total} bytes in {}",
        files.len()
    );
}

#[test]
fn link_and_on_rotate_follow_the_current_file() {
    let sb = Sandbox::new();
    let hook = sb.path().join("hook.txt");
    let cmd = format!("echo >>{}", hook.display());
    let mut lg = Logger::spawn(
        sb.path(),
        &[
            "l/a.log",
            "--max-size",
            "1K",
            "--link",
            "cur.log",
            "-L",
            "hard.log",
            "--on-rotate",
            &cmd,
        ],
    );
    lg.send(lines(0..40).as_bytes());
    let (code, stderr) = lg.finish();
    assert_eq!(code, Some(0), "{stderr}");
    let files = read_all(&sb.path().join("l"));
    let newest = files.keys().last().unwrap().clone(); // a.log.N sorts last for N < 10
    assert!(files.len() > 2 && files.len() < 10, "{:?}", files.keys());
    let target = std::fs::read_link(sb.path().join("cur.log")).unwrap();
    assert_eq!(target, newest.canonicalize().unwrap());
    assert_eq!(sb.read("hard.log"), files[&newest]);
    let calls = std::fs::read_to_string(&hook).unwrap();
    let calls: Vec<_> = calls.lines().collect();
    assert_eq!(calls.len(), files.len(), "{calls:?}");
    assert!(calls[0].ends_with("l/a.log"), "{calls:?}");
    assert!(calls[1].ends_with("l/a.log.1 l/a.log"), "{calls:?}");
}

#[test]
fn restart_continues_the_newest_file_of_the_chain() {
    let sb = Sandbox::new();
    let mut lg = Logger::spawn(sb.path(), &["a.log", "--max-size", "1K"]);
    lg.send(lines(0..20).as_bytes());
    assert_eq!(lg.finish().0, Some(0));
    let before = read_all(sb.path());
    let newest = format!("a.log.{}", before.len() - 1);
    let mut lg = Logger::spawn(sb.path(), &["a.log", "--max-size", "100K"]);
    lg.send(lines(20..25).as_bytes());
    assert_eq!(lg.finish().0, Some(0));
    let after = read_all(sb.path());
    assert_eq!(after.len(), before.len(), "no new file on restart");
    assert!(after[&sb.path().join(&newest)].ends_with(&line(24)));
    assert_exactly(&after, 25);
}

#[test]
fn rotatelogs_positional_form() {
    let sb = Sandbox::new();
    // No strftime field: rotatelogs appends the start time (.nnnnnnnnnn); size in K.
    let mut lg = Logger::spawn(sb.path(), &["r/access", "2K"]);
    lg.send(lines(0..100).as_bytes());
    assert_eq!(lg.finish().0, Some(0));
    let files = read_all(&sb.path().join("r"));
    assert!(files.len() > 3, "{:?}", files.keys());
    for p in files.keys() {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let stamp = name.trim_start_matches("access.");
        assert!(stamp[..10].bytes().all(|b| b.is_ascii_digit()), "{name}");
    }
    assert_exactly(&files, 100);

    // -n 3: a circle of three names, the oldest reused; -f opens at once.
    let mut lg = Logger::spawn(sb.path(), &["-f", "-n", "3", "n/access", "1K"]);
    lg.send(lines(0..100).as_bytes());
    assert_eq!(lg.finish().0, Some(0));
    let names: Vec<_> = read_all(&sb.path().join("n"))
        .keys()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, ["access", "access.1", "access.2"]);

    // Time form with -l and an explicit strftime pattern, -e echoes to stdout.
    let mut lg = Logger::spawn(sb.path(), &["-l", "-e", "t/a.%Y-%m-%d", "86400"]);
    let input = lines(0..50);
    lg.send(input.as_bytes());
    let stdout = Arc::clone(&lg.stdout);
    assert_eq!(lg.finish().0, Some(0));
    assert_eq!(
        String::from_utf8(stdout.lock().unwrap().clone()).unwrap(),
        input
    );
    let files = read_all(&sb.path().join("t"));
    assert_eq!(files.len(), 1);
    assert_exactly(&files, 50);
}

#[test]
fn sigterm_flushes_and_exits_zero() {
    let sb = Sandbox::new();
    for fsync in ["every", "interval", "never"] {
        let pattern = format!("{fsync}.log");
        let mut lg = Logger::spawn(sb.path(), &[&pattern, "--fsync", fsync]);
        lg.send(lines(0..5000).as_bytes());
        lg.signal("TERM");
        let (code, stderr) = lg.wait();
        assert_eq!(code, Some(0), "{stderr}");
        let mut files = BTreeMap::new();
        files.insert(PathBuf::from(&pattern), sb.read(&pattern));
        assert_exactly(&files, 5000);
    }
}

#[test]
fn bad_command_lines_give_one_message_and_rotatelogs_codes() {
    let sb = Sandbox::new();
    for (args, code, needle) in [
        (&["--bogus", "a.log"][..], 1, "--bogus"),
        (&[], 1, "PATTERN"),
        (&["a.%Q.log"], 1, "invalid PATTERN"),
        (&["a.log", "--every", "1y"], 1, "--every"),
        (&["a.log", "--keep", "0"], 1, "--keep"),
        (&["a.log", "--max-size", "lots"], 1, "--max-size"),
        (&["a.log", "--fsync", "sometimes"], 1, "sometimes"),
        (&["a.log", "86400", "5M", "0", "extra"], 1, "too many"),
        (&["a.log", "soon"], 1, "soon"),
        (&["blocker/sub/a.log"], 2, "could not open log file"),
    ] {
        sb.write("blocker", "a file where a directory should be");
        let r = run("httpd-logrotate", sb.path(), args);
        assert_eq!(r.status, Some(code), "{args:?}: {r:?}");
        let first = r.stderr.lines().next().unwrap_or("");
        assert!(
            first.starts_with("httpd-logrotate: error: "),
            "{args:?}: {r:?}"
        );
        assert!(r.stderr.contains(needle), "{args:?}: {r:?}");
        assert!(!r.stderr.contains("panicked"), "{r:?}");
    }
    let r = run("httpd-logrotate", sb.path(), &["--help"]);
    assert_eq!(r.status, Some(0));
    assert!(r.stdout.contains("--max-size"), "{r:?}");
}

/// A small tmpfs mounted for one test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills `dir` until about `free` bytes remain, returning the ballast file.
fn fill(dir: &Path, free: u64) -> PathBuf {
    let ballast = dir.join("ballast");
    let mut f = std::fs::File::create(&ballast).unwrap();
    let block = vec![b'b'; 64 << 10];
    loop {
        let st = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(dir)
            .output()
            .unwrap();
        let avail: u64 = String::from_utf8_lossy(&st.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        if avail <= free + block.len() as u64 {
            break;
        }
        f.write_all(&block).unwrap();
        f.sync_all().unwrap();
    }
    ballast
}

#[test]
fn full_disk_blocks_then_recovers_or_drops_and_counts() {
    let sb = Sandbox::new();
    let Some(fs) = Tmpfs::mount(sb.path().join("fs"), "8m") else {
        // Without mount (no privilege), /dev/full still shows the failure handling:
        // the logger says so, keeps the line and does not exit.
        std::os::unix::fs::symlink("/dev/full", sb.path().join("full.log")).unwrap();
        let mut lg = Logger::spawn(sb.path(), &["full.log"]);
        lg.send(lines(0..10).as_bytes());
        lg.wait_stderr("No space left on device");
        assert!(lg.child.try_wait().unwrap().is_none(), "logger gave up");
        eprintln!("mount not permitted: full-disk recovery not tested, /dev/full only");
        return;
    };
    let dir = fs.0.clone();

    // Block (the default): the sender is held back, nothing is lost after recovery.
    let ballast = fill(&dir, 300 << 10);
    let mut lg = Logger::spawn(sb.path(), &["fs/block.log"]);
    let total = 25_000; // about 4 MB: more than free space + pipe + the logger's queue
    let mut stdin = lg.stdin.take().unwrap();
    let sent = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = Arc::clone(&sent);
    let sender = std::thread::spawn(move || {
        stdin.write_all(lines(0..total).as_bytes()).unwrap();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        stdin
    });
    lg.wait_stderr("No space left on device");
    lg.wait_stderr("not reading more input");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !sent.load(std::sync::atomic::Ordering::SeqCst),
        "back-pressure: the sender must be blocked"
    );
    std::fs::remove_file(&ballast).unwrap();
    let stdin = sender.join().unwrap();
    drop(stdin);
    let (code, stderr) = lg.wait();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("works again"), "{stderr}");
    let mut files = BTreeMap::new();
    files.insert(PathBuf::from("block.log"), sb.read("fs/block.log"));
    assert_exactly(&files, total);
    std::fs::remove_file(dir.join("block.log")).unwrap();

    // Drop: the sender is never held back; dropped lines are counted in the log.
    let ballast = fill(&dir, 300 << 10);
    let mut lg = Logger::spawn(sb.path(), &["fs/drop.log", "--on-full", "drop"]);
    lg.send(lines(0..total).as_bytes());
    lg.wait_stderr("dropping new lines");
    std::fs::remove_file(&ballast).unwrap();
    lg.wait_stderr("works again");
    lg.send(lines(total..total + 1).as_bytes());
    let (code, stderr) = lg.finish();
    assert_eq!(code, Some(0), "{stderr}");
    let text = sb.read("fs/drop.log");
    let mut dropped = 0;
    let mut last = None;
    let mut kept = 0;
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("httpd-logrotate: dropped ") {
            dropped += rest.split(' ').next().unwrap().parse::<u64>().unwrap();
            continue;
        }
        let id: u64 = l[..9].parse().unwrap();
        assert_eq!(format!("{l}\n"), line(id));
        assert!(last < Some(id), "order");
        last = Some(id);
        kept += 1;
    }
    assert!(dropped > 0, "{stderr}");
    assert_eq!(kept + dropped, total + 1, "every line written or counted");
}

#[test]
fn create_empty_opens_each_interval_without_input() {
    let sb = Sandbox::new();
    // -f -c --every 1: a file per second even with no line (rotatelogs -c).
    let mut lg = Logger::spawn(sb.path(), &["-f", "-c", "c/a.%H%M%S", "--every", "1"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while count_files(&sb.path().join("c")) < 3 {
        assert!(Instant::now() < deadline, "no file per interval");
        std::thread::sleep(Duration::from_millis(50));
    }
    lg.send(b"last\n");
    let (code, stderr) = lg.finish();
    assert_eq!(code, Some(0), "{stderr}");
    let files = read_all(&sb.path().join("c"));
    let with_lines: Vec<_> = files.values().filter(|t| !t.is_empty()).collect();
    assert_eq!(with_lines, [&"last\n".to_string()], "{files:?}");
}

/// httpd-core as the writer: requests with unique paths, the access log piped through the
/// rotator, core reloaded (HUP) and the rotator forced to rotate (USR1) while requests
/// flow. Every request's line must be in the files exactly once, whole.
#[test]
fn core_as_writer_through_reloads_and_rotations_loses_nothing() {
    let sb = Sandbox::new();
    let logs = sb.mkdir("logs");
    sb.mkdir("www");
    let (mut core, addr) = start_core_with_piped_log(&sb, &logs);
    const BATCHES: u64 = 10;
    const PER_BATCH: u64 = 100;
    for batch in 0..BATCHES {
        request_batch(addr, batch * PER_BATCH..(batch + 1) * PER_BATCH);
        // Force a rotation, then reload core (which, like Apache, starts a new piped
        // logger: the old one sees EOF, flushes and exits).
        let rotator = rotator_pid(&logs);
        let _ = Command::new("kill")
            .args(["-USR1", &rotator.to_string()])
            .status();
        signal(core.pid(), "HUP");
    }
    signal(core.pid(), "TERM");
    assert_eq!(core.wait_exit(Duration::from_secs(20)), Some(0));
    wait_rotators_gone(&logs);
    let got = read_ids(&logs);
    let want: Vec<u64> = (0..BATCHES * PER_BATCH).collect();
    assert_eq!(got, want, "every request logged exactly once, in order");
    assert!(count_files(&logs) >= 2, "rotations happened");
}

/// The rotator killed with SIGKILL under load: core restarts it and the log goes on.
/// What a kill can cost is the lines the dead rotator had read but not yet written (its
/// README bounds it); the test shows none is duplicated or split and that logging resumes.
#[test]
fn core_restarts_a_killed_rotator() {
    let sb = Sandbox::new();
    let logs = sb.mkdir("logs");
    sb.mkdir("www");
    let (mut core, addr) = start_core_with_piped_log(&sb, &logs);
    request_batch(addr, 0..200);
    let first = rotator_pid(&logs);
    signal(first, "KILL");
    request_batch(addr, 200..400);
    let deadline = Instant::now() + Duration::from_secs(10);
    while rotator_pid_opt(&logs).is_none_or(|p| p == first) {
        assert!(
            Instant::now() < deadline,
            "core did not restart the rotator"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    request_batch(addr, 400..600);
    signal(core.pid(), "TERM");
    assert_eq!(core.wait_exit(Duration::from_secs(20)), Some(0));
    wait_rotators_gone(&logs);
    let got = read_ids(&logs);
    let mut dedup = got.clone();
    dedup.dedup();
    assert_eq!(got, dedup, "no line written twice");
    assert!(got.iter().all(|id| *id < 600));
    // Everything after the restart is there.
    for id in 400..600 {
        assert!(
            got.binary_search(&id).is_ok(),
            "line {id} after the restart is missing"
        );
    }
    eprintln!(
        "a SIGKILL of the rotator cost {} of 600 lines",
        600 - got.len()
    );
}

fn start_core_with_piped_log(sb: &Sandbox, logs: &Path) -> (Server, std::net::SocketAddr) {
    let rotator = bin("httpd-logrotate");
    let conf = sb.write(
        "httpd.conf",
        format!(
            "Listen 127.0.0.1:0\nDocumentRoot www\nLogFormat \"%U\" ids\nCustomLog \"|{} {}/access.%Y%m%d%H%M%S.log\" ids\n",
            rotator.display(),
            logs.display()
        ),
    );
    let (server, addr) = start_core(sb.path(), &conf);
    (server, addr)
}

fn rotator_pid_opt(logs: &Path) -> Option<u32> {
    let out = Command::new("pgrep")
        .args(["-f", &format!("{}/access", logs.display())])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next()
}

/// The rotator sees EOF when core exits and then writes what it still holds: the files
/// are complete only once it is gone.
fn wait_rotators_gone(logs: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while rotator_pid_opt(logs).is_some() {
        assert!(
            Instant::now() < deadline,
            "the rotator did not exit after core"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn rotator_pid(logs: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(p) = rotator_pid_opt(logs) {
            return p;
        }
        assert!(Instant::now() < deadline, "no rotator process");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// GET /id-N for each N on one keep-alive connection, reading every response.
fn request_batch(addr: std::net::SocketAddr, ids: std::ops::Range<u64>) {
    request_batch_padded(addr, ids, 0);
}

/// [`request_batch`] with an `X-Pad` header of `pad` bytes (for a format that logs it).
/// Every response must come within 10 s. A new connection every 500 requests (core
/// closes one after MaxKeepAliveRequests, 1000 by default).
fn request_batch_padded(addr: std::net::SocketAddr, ids: std::ops::Range<u64>, pad: usize) {
    let mut start = ids.start;
    while start < ids.end {
        let end = (start + 500).min(ids.end);
        request_connection(addr, start..end, pad);
        start = end;
    }
}

fn request_connection(addr: std::net::SocketAddr, ids: std::ops::Range<u64>, pad: usize) {
    let pad = "p".repeat(pad);
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    for id in ids {
        // One write per request: a request in pieces meets Nagle and delayed ACKs (40 ms).
        let request = format!("GET /id-{id} HTTP/1.1\r\nHost: t\r\nX-Pad: {pad}\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            std::io::BufRead::read_line(&mut reader, &mut header).expect("response");
            if header == "\r\n" || header.is_empty() {
                break;
            }
            if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).expect("body");
    }
}

/// The ids of every `/id-N` line in every log file, sorted (a line may go on after the
/// id, after a space).
fn read_ids(dir: &Path) -> Vec<u64> {
    let mut ids = Vec::new();
    for text in read_all(dir).values() {
        for l in text.lines() {
            let id = l
                .split(' ')
                .next()
                .and_then(|l| l.strip_prefix("/id-"))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("a split or foreign line: {l:?}"));
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids
}

/// Complete lines in every file under `dir` so far (while a rotator writes them).
fn count_newlines(dir: &Path) -> usize {
    read_all(dir)
        .values()
        .map(|t| t.matches('\n').count())
        .sum()
}

/// Polls (up to 10 s) until `file` holds `n` lines, then returns them.
fn wait_lines(file: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n || Instant::now() >= deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Apache 2.4's piped-log forms: `"|prog args"` and `"||prog args"` run the program
/// directly (arguments split and quoted like APR: no shell sees `;` in `"||"`, and a
/// quoted argument keeps its space); `"|$cmd"` runs a shell pipeline. Every form gets
/// every line.
#[test]
fn piped_log_forms_direct_and_shell() {
    let sb = Sandbox::new();
    let logs = sb.mkdir("logs");
    sb.mkdir("www");
    let rot = bin("httpd-logrotate");
    let (rot, dir) = (rot.display(), logs.display());
    let conf = sb.write(
        "httpd.conf",
        format!(
            "Listen 127.0.0.1:0\nDocumentRoot www\nLogFormat \"%U\" ids\n\
             CustomLog \"|{rot} '{dir}/direct one.log'\" ids\n\
             CustomLog \"||{rot} {dir}/semi;colon.log\" ids\n\
             CustomLog \"|$tr a-z A-Z | {rot} {dir}/upper.log\" ids\n"
        ),
    );
    let (mut core, addr) = start_core(sb.path(), &conf);
    request_batch(addr, 0..50);
    signal(core.pid(), "TERM");
    assert_eq!(core.wait_exit(Duration::from_secs(20)), Some(0));
    let want: Vec<String> = (0..50).map(|i| format!("/id-{i}")).collect();
    assert_eq!(wait_lines(&logs.join("direct one.log"), 50), want);
    assert_eq!(wait_lines(&logs.join("semi;colon.log"), 50), want);
    let upper: Vec<String> = want.iter().map(|l| l.to_uppercase()).collect();
    assert_eq!(wait_lines(&logs.join("upper.log"), 50), upper);
    let files = read_all(&logs).len();
    assert_eq!(files, 3, "no file made by a shell splitting the commands");
}

/// Sends SIGCONT to a stopped process when dropped, so a failing test leaves no stopped
/// rotator behind.
/// The process is gone or a zombie (its descriptors closed, waiting for its parent).
fn dead_or_zombie(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses (which may hold spaces).
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

struct Stopped(u32);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

/// A stopped rotator (SIGSTOP: as stuck as a logger on a full disk) never holds up a
/// request: core queues lines in bounded memory, drops and counts what does not fit,
/// and says how many once the logger reads again. Lines written + lines reported dropped
/// == requests: none lost silently, none twice.
#[test]
fn stopped_rotator_never_blocks_requests_and_drops_are_counted() {
    const REQUESTS: u64 = 2000;
    let sb = Sandbox::new();
    let logs = sb.mkdir("logs");
    sb.mkdir("www");
    let conf = sb.write(
        "httpd.conf",
        format!(
            "Listen 127.0.0.1:0\nDocumentRoot www\nLogFormat \"%U %{{X-Pad}}i\" ids\n\
             CustomLog \"|{} {}/access.log\" ids\n",
            bin("httpd-logrotate").display(),
            logs.display()
        ),
    );
    let (mut core, addr) = start_core(sb.path(), &conf);
    let rotator = rotator_pid(&logs);
    signal(rotator, "STOP");
    let stopped = Stopped(rotator);
    // 2000 lines of 2 KiB: 4 MB, more than core's queue (1 MiB) and the pipe (64 KiB).
    request_batch_padded(addr, 0..REQUESTS, 2000);
    drop(stopped);
    core.wait_for_text("line(s) dropped");
    signal(core.pid(), "TERM");
    assert_eq!(core.wait_exit(Duration::from_secs(20)), Some(0));
    wait_rotators_gone(&logs);
    let dropped: u64 = core
        .output()
        .lines()
        .filter_map(|l| {
            let (before, _) = l.split_once(" access log line(s) dropped")?;
            before.rsplit(' ').next()?.parse::<u64>().ok()
        })
        .sum();
    let got = read_ids(&logs);
    let mut dedup = got.clone();
    dedup.dedup();
    assert_eq!(got, dedup, "no line written twice");
    assert!(got.iter().all(|id| *id < REQUESTS));
    assert!(dropped > 0, "4 MB did not fit, yet nothing was dropped");
    assert_eq!(
        got.len() as u64 + dropped,
        REQUESTS,
        "written {} + dropped {dropped}",
        got.len()
    );
    // The first lines (queued before the queue filled) are the ones kept.
    assert_eq!(got[0], 0);
    eprintln!(
        "stopped rotator: {} lines written, {dropped} dropped",
        got.len()
    );
}

/// Where a SIGKILL's loss comes from, exactly: lines core wrote into the pipe that the
/// rotator never read die with the pipe's buffer. Stop the rotator, let 100 lines reach
/// the pipe (6 KiB: nothing waits in core's queue), kill it: those 100 and only those are
/// lost; core restarts the rotator on its next write and everything after it arrives.
#[test]
fn sigkill_loses_exactly_the_lines_in_the_pipe() {
    let sb = Sandbox::new();
    let logs = sb.mkdir("logs");
    sb.mkdir("www");
    let (mut core, addr) = start_core_with_piped_log(&sb, &logs);
    request_batch(addr, 0..100);
    let first = rotator_pid(&logs);
    // Lines read before the stop are written by then (a batch is written when read).
    wait_until(
        Duration::from_secs(10),
        || "first 100 lines not written".into(),
        || count_newlines(&logs) >= 100,
    );
    signal(first, "STOP");
    let stopped = Stopped(first);
    request_batch(addr, 100..200);
    std::thread::sleep(Duration::from_millis(200)); // core's writer puts them in the pipe
    signal(first, "KILL");
    drop(stopped);
    // kill(2) returns before the process is gone: until its descriptors are closed, a
    // line core writes still lands in the dying pipe (and is lost with it).
    wait_until(
        Duration::from_secs(10),
        || format!("rotator {first} still alive after SIGKILL"),
        || dead_or_zombie(first),
    );
    request_batch(addr, 200..300);
    signal(core.pid(), "TERM");
    assert_eq!(core.wait_exit(Duration::from_secs(20)), Some(0));
    wait_rotators_gone(&logs);
    let want: Vec<u64> = (0..100).chain(200..300).collect();
    assert_eq!(
        read_ids(&logs),
        want,
        "lost: exactly the 100 lines in the pipe"
    );
}

/// The rotator SIGKILLed while requests flow (two clients, 3000 requests each): core
/// restarts it; nothing is duplicated or split, and what is lost is at most what the
/// pipe (64 KiB) and the rotator's unwritten reads held. Prints the count (the README
/// quotes it).
#[test]
fn sigkill_under_load_costs_at_most_the_pipe_contents() {
    const PER_CLIENT: u64 = 3000;
    let sb = Sandbox::new();
    let logs = sb.mkdir("logs");
    sb.mkdir("www");
    let (mut core, addr) = start_core_with_piped_log(&sb, &logs);
    let first = rotator_pid(&logs);
    let clients: Vec<_> = (0..2)
        .map(|c| {
            std::thread::spawn(move || request_batch(addr, c * PER_CLIENT..(c + 1) * PER_CLIENT))
        })
        .collect();
    // Kill once lines are flowing.
    wait_until(
        Duration::from_secs(20),
        || "no lines flowing".into(),
        || count_newlines(&logs) >= 500,
    );
    signal(first, "KILL");
    for c in clients {
        c.join().expect("every request answered");
    }
    signal(core.pid(), "TERM");
    assert_eq!(core.wait_exit(Duration::from_secs(20)), Some(0));
    wait_rotators_gone(&logs);
    let got = read_ids(&logs);
    let mut dedup = got.clone();
    dedup.dedup();
    assert_eq!(got, dedup, "no line written twice");
    let lost = 2 * PER_CLIENT - got.len() as u64;
    // Lines are "/id-NNNN\n", at most 10 bytes: a full pipe is about 6500 of them.
    assert!(
        lost <= 65536 / 8,
        "lost {lost} lines: more than a pipe can hold"
    );
    assert!(
        core.output().contains("piped logger died; restarting it"),
        "{}",
        core.output()
    );
    eprintln!(
        "a SIGKILL of the rotator under load cost {lost} of {} lines",
        2 * PER_CLIENT
    );
}

/// Reloads while requests flow: each HUP starts a new rotator while the old site's lines
/// still drain through the old one (its queue is written, then it gets EOF). Two clients,
/// 3000 requests each, a reload every 50 ms: every line exactly once.
#[test]
fn reloads_under_load_lose_nothing() {
    const PER_CLIENT: u64 = 3000;
    let sb = Sandbox::new();
    let logs = sb.mkdir("logs");
    sb.mkdir("www");
    let (mut core, addr) = start_core_with_piped_log(&sb, &logs);
    let clients: Vec<_> = (0..2)
        .map(|c| {
            std::thread::spawn(move || request_batch(addr, c * PER_CLIENT..(c + 1) * PER_CLIENT))
        })
        .collect();
    let mut reloads = 0;
    while !clients.iter().all(|c| c.is_finished()) {
        signal(core.pid(), "HUP");
        reloads += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    for c in clients {
        c.join().expect("every request answered");
    }
    signal(core.pid(), "TERM");
    assert_eq!(core.wait_exit(Duration::from_secs(20)), Some(0));
    wait_rotators_gone(&logs);
    let want: Vec<u64> = (0..2 * PER_CLIENT).collect();
    assert_eq!(
        read_ids(&logs),
        want,
        "every line once after {reloads} reloads"
    );
    assert!(reloads >= 2, "reloads happened while requests flowed");
}

/// `ErrorLog "|command"` sends the error log to a piped logger (Apache's form, as common
/// as a piped CustomLog): both the shell form `|$` and the direct form receive events.
#[test]
fn piped_error_log_receives_errors() {
    for (form, name) in [
        ("|$cat >> ", "shell.log"),
        ("||/bin/dd status=none of=", "direct.log"),
    ] {
        let sb = Sandbox::new();
        let logs = sb.mkdir("logs");
        sb.mkdir("www");
        let target = logs.join(name);
        let conf = sb.write(
            "httpd.conf",
            format!(
                "Listen 127.0.0.1:0\nDocumentRoot www\nErrorLog \"{form}{}\"\n",
                target.display()
            ),
        );
        let (mut core, _addr) = start_core(sb.path(), &conf);
        // A reload that changes Listen is logged as a warning (the listeners are kept).
        std::fs::write(
            &conf,
            format!(
                "Listen 127.0.0.1:0\nListen 127.0.0.2:0\nDocumentRoot www\nErrorLog \"{form}{}\"\n",
                target.display()
            ),
        )
        .unwrap();
        signal(core.pid(), "HUP");
        core.wait_for_line("configuration reloaded");
        signal(core.pid(), "TERM");
        assert_eq!(core.wait_exit(Duration::from_secs(20)), Some(0));
        let logged = || std::fs::read_to_string(&target).unwrap_or_default();
        wait_until(
            Duration::from_secs(10),
            || {
                format!(
                    "{form}: the piped ErrorLog got {:?}; core said:\n{}",
                    logged(),
                    core.output()
                )
            },
            || logged().contains("Listen changes take effect only after a restart"),
        );
        assert!(
            !core.output().contains("Listen changes"),
            "{form}: not on stderr"
        );
    }
}
