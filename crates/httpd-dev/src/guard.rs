//! The guard: a tiny process that stops what httpd-dev started when httpd-dev dies without
//! stopping it itself (SIGKILL, the OOM killer, a crash).
//!
//! httpd-dev starts it first, as itself re-executed under the name `httpd-dev-guard`, in
//! a process group of its own, and keeps the only write end of a pipe to its stdin
//! (close-on-exec, so no other child inherits it). On that pipe httpd-dev says `+PGID`
//! when it starts a process group (httpd-core, httpd-tls, each run of the app) and `-PGID`
//! once it has stopped and reaped it. However httpd-dev ends, the kernel closes the pipe:
//! the guard reads EOF and stops the groups still listed, as httpd-dev would (TERM, then
//! KILL after a grace period), the app's helpers included, and removes httpd-dev's state
//! directory (`dir PATH`). After a clean stop the list is empty and the directory gone:
//! httpd-dev closes the pipe and waits for the guard to exit ([`finish`]).
//!
//! Not `PR_SET_PDEATHSIG`: it fires when the *thread* that spawned the child ends (the app
//! is restarted from a thread), and it reaches the group leader only, not the processes
//! the app started. Not a subreaper either: a killed httpd-dev can do nothing.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::sys;

/// The guard's name, as argv[0] (how `main` recognises it) and in `ps`.
pub const NAME: &str = "httpd-dev-guard";
/// How long the groups get between TERM and KILL once httpd-dev is gone.
const GRACE: Duration = Duration::from_secs(2);

/// The write end of the guard's stdin (None once closed) and the guard itself.
struct Guard {
    pipe: Mutex<Option<ChildStdin>>,
    child: Mutex<Child>,
}

static GUARD: OnceLock<Guard> = OnceLock::new();

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether this process was started as the guard.
pub fn invoked() -> bool {
    std::env::args_os().next().is_some_and(|a| a == NAME)
}

/// Starts the guard (once per httpd-dev).
pub fn start() -> Result<(), Error> {
    // /proc/self/exe, not current_exe(): it names this very program even when a rebuild
    // has replaced or removed the file since httpd-dev started.
    let mut guard = Command::new("/proc/self/exe")
        .arg0(NAME)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(Error::io("cannot start the guard process"))?;
    let pipe = guard.stdin.take().expect("piped stdin");
    let _ = GUARD.set(Guard {
        pipe: Mutex::new(Some(pipe)),
        child: Mutex::new(guard),
    });
    Ok(())
}

/// After a clean stop: closes the pipe and waits for the guard to exit, so that nothing
/// httpd-dev started outlives it.
pub fn finish() {
    if let Some(g) = GUARD.get() {
        drop(lock(&g.pipe).take());
        let _ = lock(&g.child).wait();
    }
}

fn say(line: String) {
    let Some(g) = GUARD.get() else { return };
    if let Some(p) = lock(&g.pipe).as_mut() {
        // A guard that is gone cannot be helped; httpd-dev itself still stops everything.
        let _ = p.write_all(line.as_bytes());
    }
}

/// Spawns `cmd` (which must make its own process group) and tells the guard about it. The
/// child does the telling itself, before it runs the program: it holds a copy of the
/// pipe's write end until then, so the guard cannot miss it even if httpd-dev is killed
/// right after the fork. (A failed exec leaves an entry for a pid that is gone; the
/// programs run here, sh, httpd-core and httpd-tls, are all found before.)
pub fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
    let Some(g) = GUARD.get() else {
        return cmd.spawn();
    };
    // Held across the spawn, so the descriptor stays open until the fork has copied it.
    let pipe = lock(&g.pipe);
    if let Some(p) = pipe.as_ref() {
        sys::announce_in_child(cmd, p.as_raw_fd());
    }
    cmd.spawn()
}

/// Tells the guard that the group led by `child` was stopped and its leader reaped.
pub fn reaped(child: &Child) {
    say(format!("-{}\n", child.id()));
}

/// Tells the guard to remove `path` (httpd-dev's state directory) when httpd-dev is gone.
pub fn remove_at_exit(path: &std::path::Path) {
    say(format!("dir {}\n", path.display()));
}

/// The guard's life: follow the list until EOF, then stop what is left. Never returns.
pub fn serve() -> ! {
    sys::set_process_name(NAME);
    let mut groups = BTreeSet::new();
    let mut dirs = Vec::new();
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        if let Some(g) = line.strip_prefix('+').and_then(|g| g.parse::<u32>().ok()) {
            // Never 0 or 1: kill(-1) would signal every process we may signal.
            if g > 1 {
                groups.insert(g);
            }
        } else if let Some(g) = line.strip_prefix('-').and_then(|g| g.parse::<u32>().ok()) {
            groups.remove(&g);
        } else if let Some(d) = line.strip_prefix("dir ") {
            dirs.push(std::path::PathBuf::from(d));
        }
    }
    for g in &groups {
        sys::kill_group(*g, libc::SIGTERM);
    }
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline && groups.iter().any(|g| sys::group_alive(*g)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for g in &groups {
        sys::kill_group(*g, libc::SIGKILL);
    }
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    std::process::exit(0)
}
