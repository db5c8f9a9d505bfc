//! The archiver: one background thread that does, for each new file, in order, what must
//! not slow the writer down: run `--on-rotate`, gzip the previous file (`--compress`), then
//! apply retention (`--keep`, `--max-total`). One thread, so a file is never deleted while
//! it is being compressed, and jobs happen in rotation order.

use std::fs::File;
use std::io::{self, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{unbounded, Sender};
use flate2::write::GzEncoder;
use flate2::Compression;

use super::pattern::Series;
use super::retention;

/// What the archiver is told after a file is opened.
#[derive(Debug)]
pub struct Opened {
    pub new: PathBuf,
    pub old: Option<PathBuf>,
}

/// What the archiver needs to know, fixed at start.
pub struct Settings {
    pub on_rotate: Option<String>,
    pub compress: bool,
    pub sync: bool,
    pub series: Series,
    pub keep: Option<u32>,
    pub max_total: Option<u64>,
    pub verbose: bool,
}

/// The handle the writer holds.
pub struct Archiver {
    tx: Option<Sender<Opened>>,
    thread: Option<JoinHandle<()>>,
    /// The file being written, which retention never deletes.
    current: Arc<Mutex<Option<PathBuf>>>,
}

impl Archiver {
    /// Starts the background thread.
    pub fn start(settings: Settings) -> Archiver {
        let (tx, rx) = unbounded::<Opened>();
        let current = Arc::new(Mutex::new(None));
        let shared = Arc::clone(&current);
        let thread = std::thread::Builder::new()
            .name("archiver".into())
            .spawn(move || {
                for job in rx {
                    process(&settings, &job, &shared);
                }
            })
            .expect("spawn archiver thread");
        Archiver {
            tx: Some(tx),
            thread: Some(thread),
            current,
        }
    }

    /// Queues the work for a newly opened file.
    pub fn opened(&self, new: PathBuf, old: Option<PathBuf>) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(new.clone());
        if let Some(tx) = &self.tx {
            let _ = tx.send(Opened { new, old });
        }
    }

    /// Finishes every queued job (at exit).
    pub fn finish(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Archiver {
    fn drop(&mut self) {
        self.finish();
    }
}

fn process(s: &Settings, job: &Opened, current: &Mutex<Option<PathBuf>>) {
    if let Some(cmd) = &s.on_rotate {
        run_hook(cmd, &job.new, job.old.as_deref());
    }
    if let (true, Some(old)) = (s.compress, &job.old) {
        if let Err(e) = compress(old, s.sync) {
            eprintln!(
                "httpd-logrotate: error: could not compress '{}': {e}",
                old.display()
            );
        } else if s.verbose {
            eprintln!("httpd-logrotate: compressed '{}'", old.display());
        }
    }
    if s.keep.is_some() || s.max_total.is_some() {
        let current = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for path in retention::select(s.series.list(), current.as_deref(), s.keep, s.max_total) {
            match std::fs::remove_file(&path) {
                Ok(()) if s.verbose => {
                    eprintln!("httpd-logrotate: deleted '{}' (retention)", path.display())
                }
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => eprintln!(
                    "httpd-logrotate: error: could not delete '{}': {e}",
                    path.display()
                ),
            }
        }
    }
}

/// Runs CMD through `sh -c` with the new and old file names as `$1` and `$2` (rotatelogs
/// `-p` passes the same two), and waits for it so hooks never pile up.
fn run_hook(cmd: &str, new: &Path, old: Option<&Path>) {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("{cmd} \"$@\""))
        .arg("httpd-logrotate")
        .arg(new);
    if let Some(old) = old {
        c.arg(old);
    }
    c.stdin(std::process::Stdio::null());
    match c.status() {
        Ok(st) if st.success() => {}
        Ok(st) => {
            eprintln!("httpd-logrotate: warning: --on-rotate command '{cmd}' exited with {st}")
        }
        Err(e) => {
            eprintln!("httpd-logrotate: error: could not run --on-rotate command '{cmd}': {e}")
        }
    }
}

/// Gzips `path` to `path.gz` (through a `.gz.part` file renamed when complete, so a crash
/// never leaves a truncated `.gz` next to a deleted original), keeps its modification time,
/// then deletes the original.
fn compress(path: &Path, sync: bool) -> io::Result<()> {
    let input = File::open(path)?;
    let modified = input.metadata()?.modified()?;
    let mut gz = path.as_os_str().to_owned();
    gz.push(".gz");
    let gz = PathBuf::from(gz);
    let mut part = gz.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let result = (|| {
        let out = File::create(&part)?;
        let mut enc = GzEncoder::new(BufWriter::with_capacity(1 << 16, out), Compression::fast());
        io::copy(&mut BufReader::with_capacity(1 << 16, input), &mut enc)?;
        let out = enc.finish()?.into_inner().map_err(|e| e.into_error())?;
        if sync {
            out.sync_all()?;
        }
        out.set_modified(modified)?;
        std::fs::rename(&part, &gz)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::remove_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn compress_round_trips_and_keeps_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let data = "line one\nline two\n".repeat(1000);
        std::fs::write(&path, &data).unwrap();
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(t)
            .unwrap();
        compress(&path, false).unwrap();
        assert!(!path.exists());
        let gz = dir.path().join("a.log.gz");
        let mut text = String::new();
        flate2::read::GzDecoder::new(File::open(&gz).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, data);
        assert_eq!(std::fs::metadata(&gz).unwrap().modified().unwrap(), t);
    }
}
