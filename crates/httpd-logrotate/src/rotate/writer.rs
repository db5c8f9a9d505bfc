//! The writer: the current file, when to open the next one, and writing whole lines.
//!
//! Rotation is decided only at a line boundary, so a line is never split across files;
//! a write that stopped inside a line (a full disk) is finished in the same file before
//! anything else. A file never grows past `--max-size` unless one line alone is larger.
//! A new name that already exists (or whose `.gz` does) gets the first free `.1`, `.2` …
//! suffix: nothing is ever appended to a closed file or overwritten (except with
//! rotatelogs' `-n` and `-t`, which ask for exactly that).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use memchr::{memchr, memrchr};

use super::archive::Archiver;
use super::cli::{Config, Fsync, LinkKind};

/// The file being written.
struct Current {
    file: File,
    path: PathBuf,
    /// The name before any collision suffix (what the pattern produced).
    base: PathBuf,
    /// The interval this file belongs to (with `--every`).
    period: Option<i64>,
    size: u64,
    /// Bytes written since this process opened it.
    written: u64,
}

/// A failed write or open, with the file it was about.
#[derive(Debug)]
pub struct WriteError {
    pub path: PathBuf,
    pub error: io::Error,
}

/// Owns the current file and the rotation state.
pub struct Writer {
    cfg: Config,
    current: Option<Current>,
    /// The previous file, for `--on-rotate` (its second argument).
    previous: Option<PathBuf>,
    /// A rotation was asked for (signal or size) and happens at the next line boundary.
    forced: bool,
    /// The last write stopped inside a line: finish it in the same file first.
    mid_line: bool,
    /// With `-n`: the index of the next file in the circle.
    circle: u32,
    /// Whether any file was opened yet in this process (the first one may be appended to).
    opened_once: bool,
    unsynced: bool,
    archiver: Archiver,
}

impl Writer {
    pub fn new(cfg: Config, archiver: Archiver) -> Writer {
        Writer {
            cfg,
            current: None,
            previous: None,
            forced: false,
            mid_line: false,
            circle: 0,
            opened_once: false,
            unsynced: false,
            archiver,
        }
    }

    /// The path of the current file, if one is open.
    pub fn current_path(&self) -> Option<&Path> {
        self.current.as_ref().map(|c| c.path.as_path())
    }

    /// Asks for a rotation at the next line (SIGHUP, SIGUSR1). It waits until the current
    /// file has received something, so repeated signals do not make empty files, and a
    /// signal that arrives before the lines queued ahead of it are written still rotates.
    pub fn force_rotation(&mut self) {
        self.forced = true;
    }

    /// The start of the interval containing `now` (with `--every`).
    fn period(&self, now: i64) -> Option<i64> {
        let every = self.cfg.every?;
        let off = self.cfg.pattern.utc_offset(now) + self.cfg.offset;
        Some((now + off).div_euclid(every) * every - off)
    }

    /// When the current interval ends, for a timer (with `--every`).
    pub fn next_boundary(&self, now: i64) -> Option<i64> {
        Some(self.period(now)? + self.cfg.every?)
    }

    /// The name the pattern gives for `now` (before collision suffixes).
    fn base_name(&self, now: i64) -> PathBuf {
        let t = self.period(now).unwrap_or(now);
        // rotatelogs' offset shifts the clock the name is written in (UTC only).
        let shift = if self.cfg.pattern.is_local() {
            0
        } else {
            self.cfg.offset
        };
        self.cfg.pattern.format(t + shift)
    }

    /// Opens the file at start (`-f`), reporting a failure.
    pub fn open_now(&mut self, now: i64) -> Result<(), WriteError> {
        self.ensure_file(now)
    }

    /// At a time boundary without input: with `-c`, open the new interval's file now.
    pub fn tick(&mut self, now: i64) -> Result<(), WriteError> {
        if self.cfg.create_empty && !self.mid_line {
            let stale = match &self.current {
                Some(c) => c.period != self.period(now),
                None => self.opened_once,
            };
            if stale {
                return self.ensure_file(now);
            }
        }
        Ok(())
    }

    /// Makes sure a file is open and right for `now`, rotating if needed. Only called at a
    /// line boundary.
    fn ensure_file(&mut self, now: i64) -> Result<(), WriteError> {
        let due = match &self.current {
            None => true,
            Some(c) => {
                (self.forced && c.written > 0)
                    || (self.cfg.every.is_some() && c.period != self.period(now))
                    || (self.cfg.every.is_none()
                        && self.cfg.follow_name
                        && self.cfg.pattern.has_fields()
                        && c.base != self.base_name(now))
            }
        };
        if due {
            self.open_next(now)?;
        }
        Ok(())
    }

    /// Closes the current file (if any) and opens the next one.
    fn open_next(&mut self, now: i64) -> Result<(), WriteError> {
        let base = self.base_name(now);
        let (path, truncate) = self.choose_path(&base);
        let fail = |path: &Path, error| WriteError {
            path: path.to_path_buf(),
            error,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| fail(parent, e))?;
        }
        let mut options = OpenOptions::new();
        options.create(true);
        if truncate {
            options.write(true).truncate(true);
        } else {
            options.append(true);
        }
        let file = options.open(&path).map_err(|e| fail(&path, e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        if let Some(old) = self.current.take() {
            self.close(old);
            // A rotation happened; a signal before the first file stays pending for it.
            self.forced = false;
        }
        if self.cfg.verbose {
            eprintln!("httpd-logrotate: opened '{}'", path.display());
        }
        self.update_links(&path);
        self.archiver.opened(path.clone(), self.previous.take());
        self.current = Some(Current {
            file,
            path,
            base,
            period: self.period(now),
            size,
            written: 0,
        });
        self.opened_once = true;
        Ok(())
    }

    /// Picks the file for `base`, and whether to truncate it.
    fn choose_path(&mut self, base: &Path) -> (PathBuf, bool) {
        if let Some(n) = self.cfg.circular {
            // rotatelogs -n: PATTERN, PATTERN.1 … PATTERN.(n-1), the oldest reused.
            let i = self.circle;
            self.circle = (i + 1) % n;
            let rotating = self.opened_once;
            return (suffixed(base, i), rotating || self.cfg.truncate);
        }
        if self.cfg.truncate {
            return (base.to_path_buf(), true);
        }
        let taken = |p: &Path| p.exists() || with_gz(p).exists();
        let mut i = 0;
        while taken(&suffixed(base, i)) {
            i += 1;
        }
        // At start, continue the newest file of the chain if it is still a plain file:
        // a restarted logger appends where the previous one stopped.
        if !self.opened_once && i > 0 {
            let last = suffixed(base, i - 1);
            if last.is_file() {
                return (last, false);
            }
        }
        (suffixed(base, i), false)
    }

    fn close(&mut self, old: Current) {
        if self.cfg.fsync != Fsync::Never {
            if let Err(e) = old.file.sync_data() {
                eprintln!(
                    "httpd-logrotate: error: fsync '{}': {e}",
                    old.path.display()
                );
            }
        }
        self.unsynced = false;
        if self.cfg.verbose {
            eprintln!("httpd-logrotate: closed '{}'", old.path.display());
        }
        self.previous = Some(old.path);
    }

    fn update_links(&self, target: &Path) {
        for (link, kind) in &self.cfg.links {
            if let Err(e) = replace_link(link, target, *kind) {
                eprintln!(
                    "httpd-logrotate: error: could not update link '{}': {e}",
                    link.display()
                );
            }
        }
    }

    /// Writes as much of `data` (whole lines) as it can, rotating between lines as needed.
    /// Returns the bytes written and, if it stopped early, why.
    pub fn write(&mut self, data: &[u8], now: i64) -> (usize, Option<WriteError>) {
        let mut off = 0;
        let mut error = None;
        while off < data.len() {
            let end = if self.mid_line {
                off + memchr(b'\n', &data[off..]).map_or(data.len() - off, |i| i + 1)
            } else {
                if let Err(e) = self.ensure_file(now) {
                    error = Some(e);
                    break;
                }
                match self.fit(&data[off..]) {
                    Some(len) => off + len,
                    None => {
                        // Not even one more line fits: rotate first.
                        self.forced = true;
                        continue;
                    }
                }
            };
            let cur = self.current.as_mut().expect("a file is open");
            match cur.file.write(&data[off..end]) {
                Ok(0) => {
                    error = Some(WriteError {
                        path: cur.path.clone(),
                        error: io::Error::new(io::ErrorKind::WriteZero, "wrote 0 bytes"),
                    });
                    break;
                }
                Ok(n) => {
                    cur.size += n as u64;
                    cur.written += n as u64;
                    off += n;
                    self.mid_line = data[off - 1] != b'\n';
                    self.unsynced = true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    error = Some(WriteError {
                        path: cur.path.clone(),
                        error: e,
                    });
                    break;
                }
            }
        }
        if off > 0 && self.cfg.fsync == Fsync::Every {
            self.sync();
        }
        (off, error)
    }

    /// How many bytes of whole lines at the start of `data` fit in the current file under
    /// `--max-size`; `None` when the file must be rotated first. A line larger than the
    /// limit goes alone into a fresh file.
    fn fit(&self, data: &[u8]) -> Option<usize> {
        let cur = self.current.as_ref()?;
        let Some(max) = self.cfg.max_size else {
            return Some(data.len());
        };
        let room = max.saturating_sub(cur.size);
        if (data.len() as u64) <= room {
            return Some(data.len());
        }
        let room = room as usize;
        match memrchr(b'\n', &data[..room]) {
            Some(i) => Some(i + 1),
            None if cur.written == 0 => Some(memchr(b'\n', data).map_or(data.len(), |i| i + 1)),
            None => None,
        }
    }

    /// Flushes written data to disk (`--fsync`).
    pub fn sync(&mut self) {
        if let (true, Some(cur)) = (self.unsynced, &self.current) {
            if let Err(e) = cur.file.sync_data() {
                eprintln!(
                    "httpd-logrotate: error: fsync '{}': {e}",
                    cur.path.display()
                );
            }
            self.unsynced = false;
        }
    }

    /// Whether there is written data not yet synced.
    pub fn unsynced(&self) -> bool {
        self.unsynced
    }

    /// At exit: sync (unless `--fsync never`) and wait for the archiver.
    pub fn finish(&mut self) {
        if self.cfg.fsync != Fsync::Never {
            self.sync();
        }
        self.archiver.finish();
    }
}

/// `base` for 0, `base.N` otherwise.
fn suffixed(base: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return base.to_path_buf();
    }
    let mut s = base.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn with_gz(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".gz");
    PathBuf::from(s)
}

/// Points `link` at `target` atomically: a temporary link renamed over the old one, so a
/// `tail -F` never sees it missing.
fn replace_link(link: &Path, target: &Path, kind: LinkKind) -> io::Result<()> {
    if let Some(parent) = link.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut tmp = link.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    match kind {
        LinkKind::Symbolic => {
            let absolute = std::path::absolute(target)?;
            std::os::unix::fs::symlink(absolute, &tmp)?;
        }
        LinkKind::Hard => std::fs::hard_link(target, &tmp)?,
    }
    std::fs::rename(&tmp, link)
}
