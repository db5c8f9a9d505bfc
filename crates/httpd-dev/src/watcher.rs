//! File watching: native events (inotify) or `--poll`, filtered (editor swap files, `.git`,
//! `target/`, `node_modules/`, and what a running app writes itself: logs, SQLite
//! databases and their journals) and debounced into batches of changed paths.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use notify::{Config, EventKind, PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};

use crate::error::Error;

pub const DEBOUNCE: Duration = Duration::from_millis(80);

/// Whether a change to `path` is noise: editor swap and backup files, VCS and build dirs,
/// and files an app writes as it runs (a log or a SQLite database in the project directory
/// would otherwise restart the app at every request, or in a loop at start-up).
pub fn ignored(path: &Path) -> bool {
    let dir_noise = path.components().any(|c| {
        matches!(
            c.as_os_str().to_str(),
            Some(".git" | ".hg" | ".svn" | "target" | "node_modules" | "__pycache__" | ".idea")
        )
    });
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    dir_noise
        || name.ends_with('~')
        || name.starts_with(".#")
        || [
            ".swp", ".swo", ".swx", ".tmp", ".pyc", ".log", ".pid", ".sqlite", ".sqlite3", ".db",
            "-journal", "-wal", "-shm",
        ]
        .iter()
        .any(|s| name.ends_with(s))
        || name == "4913"
}

/// A running watcher; dropping it stops watching.
pub enum Handle {
    Native(RecommendedWatcher),
    Poll(PollWatcher),
}

/// Watches `paths`; batches of changed paths arrive on the returned receiver.
pub fn watch(paths: &[PathBuf], poll: bool) -> Result<(Handle, Receiver<Vec<PathBuf>>), Error> {
    let (raw_tx, raw_rx) = std::sync::mpsc::channel::<PathBuf>();
    let handler = move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if matches!(ev.kind, EventKind::Access(_)) {
                return;
            }
            for p in ev.paths {
                if !ignored(&p) {
                    let _ = raw_tx.send(p);
                }
            }
        }
    };
    let mut handle = if poll {
        let cfg = Config::default().with_poll_interval(Duration::from_millis(500));
        Handle::Poll(
            PollWatcher::new(handler, cfg).map_err(|source| Error::Watch {
                path: paths[0].clone(),
                source,
            })?,
        )
    } else {
        Handle::Native(
            RecommendedWatcher::new(handler, Config::default()).map_err(|source| Error::Watch {
                path: paths[0].clone(),
                source,
            })?,
        )
    };
    for p in paths {
        let r = match &mut handle {
            Handle::Native(w) => w.watch(p, RecursiveMode::Recursive),
            Handle::Poll(w) => w.watch(p, RecursiveMode::Recursive),
        };
        r.map_err(|source| Error::Watch {
            path: p.clone(),
            source,
        })?;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || debounce(raw_rx, tx));
    Ok((handle, rx))
}

/// Collects paths until DEBOUNCE passes without a new one, then sends the batch.
fn debounce(rx: Receiver<PathBuf>, tx: Sender<Vec<PathBuf>>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        loop {
            match rx.recv_timeout(DEBOUNCE) {
                Ok(p) => {
                    if !batch.contains(&p) {
                        batch.push(p);
                    }
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        if tx.send(batch).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_ignored() {
        let table = [
            ("/s/index.html", false),
            ("/s/css/site.css", false),
            ("/s/.git/index", true),
            ("/s/target/debug/x", true),
            ("/s/node_modules/a/b.js", true),
            ("/s/.index.html.swp", true),
            ("/s/index.html~", true),
            ("/s/.#index.html", true),
            ("/s/4913", true),
            ("/p/app.log", true),
            ("/p/db.sqlite3", true),
            ("/p/db.sqlite3-journal", true),
            ("/p/data.db-wal", true),
            ("/p/app.py", false),
            ("/p/blog.html", false),
        ];
        for (p, want) in table {
            assert_eq!(ignored(Path::new(p)), want, "{p}");
        }
    }
}
