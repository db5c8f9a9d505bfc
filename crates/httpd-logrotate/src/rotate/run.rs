//! The event loop: a reader thread turns stdin into chunks, a signal thread turns signals
//! into events, and this loop (the only owner of the files) writes whole lines.
//!
//! Back-pressure is the bounded queue between the reader and the loop: while a write fails
//! (`--on-full block`, the default) the loop stops taking chunks, the queue fills, the
//! reader stops reading, the pipe fills and the server's log writes wait. Memory is bounded
//! by the queue (`QUEUE` chunks of `CHUNK` bytes), one batch and `--max-line`.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, never, select, Receiver, Sender};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

use super::archive::{Archiver, Settings};
use super::cli::{Config, Fsync, OnFull};
use super::lines::LineSplitter;
use super::writer::{WriteError, Writer};
use crate::error::Error;

/// Bytes per read from stdin.
const CHUNK: usize = 128 << 10;
/// Chunks read ahead of the writer.
const QUEUE: usize = 8;
/// A batch written in one go gathers queued chunks up to this size.
const BATCH: usize = 512 << 10;
/// Retry delays while writes fail.
const RETRY_FIRST: Duration = Duration::from_millis(20);
const RETRY_MAX: Duration = Duration::from_millis(500);
/// After SIGTERM, lines still arriving are taken for this long (a TERM sent to the whole
/// process group reaches the logger while the server is still flushing its last lines).
const STOP_GRACE: Duration = Duration::from_millis(200);
/// After SIGTERM, failing writes are retried for this long before giving up.
const STOP_RETRY: Duration = Duration::from_secs(5);

enum Input {
    /// A buffer of `CHUNK` bytes and how many of them were read.
    Data(Vec<u8>, usize),
    Eof,
    Failed(io::Error),
}

/// The state of a write failure in progress.
struct Failing {
    since: Instant,
    retries: u64,
    delay: Duration,
    next: Instant,
    last: WriteError,
}

/// Runs the rotator until EOF or SIGTERM.
pub fn run(cfg: Config) -> Result<(), Error> {
    let mut signals = Signals::new([SIGHUP, SIGUSR1, SIGTERM, SIGINT]).map_err(Error::Signals)?;
    let (sig_tx, sig_rx) = crossbeam_channel::unbounded::<i32>();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for s in signals.forever() {
                if sig_tx.send(s).is_err() {
                    break;
                }
            }
        })
        .map_err(Error::Signals)?;

    let (data_tx, data_rx) = bounded::<Input>(QUEUE);
    let (free_tx, free_rx) = bounded::<Vec<u8>>(QUEUE + 2);
    std::thread::Builder::new()
        .name("reader".into())
        .spawn(move || read_stdin(data_tx, free_rx))
        .map_err(Error::ReadStdin)?;

    let now = unix_now();
    // Fail early and clearly when the directory cannot be made.
    let first = cfg.pattern.format(now);
    if let Some(parent) = first.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| Error::Open {
            path: first.clone(),
            source,
        })?;
    }
    let archiver = Archiver::start(Settings {
        on_rotate: cfg.on_rotate.clone(),
        compress: cfg.compress,
        sync: cfg.fsync != Fsync::Never,
        series: cfg.pattern.series(),
        keep: cfg.keep,
        max_total: cfg.max_total,
        verbose: cfg.verbose,
    });
    let mut writer = Writer::new(cfg.clone(), archiver);
    if cfg.open_at_start {
        writer.open_now(now).map_err(|e| Error::Open {
            path: e.path,
            source: e.error,
        })?;
    }
    let mut lines = LineSplitter::new(cfg.max_line);
    let mut batch: Vec<u8> = Vec::with_capacity(BATCH + CHUNK);
    let mut written = 0; // of `batch`
    let mut scratch = Vec::new(); // lines being dropped (--on-full drop)
    let mut dropped: u64 = 0;
    let mut failing: Option<Failing> = None;
    let mut last_sync = Instant::now();
    let mut eof = false;
    let mut stop_at: Option<Instant> = None;
    let mut read_error = None;
    let mut stdout = io::stdout().lock();

    loop {
        // 1. Write what is pending.
        if written < batch.len() && failing.as_ref().is_none_or(|f| Instant::now() >= f.next) {
            let (n, err) = writer.write(&batch[written..], unix_now());
            written += n;
            match (err, failing.take()) {
                (Some(e), None) => {
                    report_failure(&e, cfg.on_full);
                    failing = Some(Failing {
                        since: Instant::now(),
                        retries: 0,
                        delay: RETRY_FIRST,
                        next: Instant::now() + RETRY_FIRST,
                        last: e,
                    });
                }
                (Some(e), Some(mut f)) => {
                    f.retries += 1;
                    f.delay = (f.delay * 2).min(RETRY_MAX);
                    f.next = Instant::now() + f.delay;
                    f.last = e;
                    failing = Some(f);
                }
                (None, Some(f)) => {
                    eprintln!(
                        "httpd-logrotate: writing '{}' works again after {:.1} s ({} retries)",
                        f.last.path.display(),
                        f.since.elapsed().as_secs_f64(),
                        f.retries + 1
                    );
                    if dropped > 0 {
                        eprintln!("httpd-logrotate: {dropped} line(s) were dropped meanwhile");
                        batch.extend_from_slice(
                            format!(
                                "httpd-logrotate: dropped {dropped} line(s) while '{}' could not be written ({})\n",
                                f.last.path.display(),
                                f.last.error
                            )
                            .as_bytes(),
                        );
                        dropped = 0;
                    }
                    continue;
                }
                (None, None) => {}
            }
        }
        if written == batch.len() {
            batch.clear();
            written = 0;
        }
        if cfg.fsync == Fsync::Interval
            && writer.unsynced()
            && last_sync.elapsed() >= cfg.fsync_interval
        {
            writer.sync();
            last_sync = Instant::now();
        }

        // 2. Done?
        if eof && batch.is_empty() {
            break;
        }
        if let Some(at) = stop_at {
            let now = Instant::now();
            if !eof && now >= at {
                // Take every chunk already read, then stop reading.
                while let Ok(Input::Data(buf, n)) = data_rx.try_recv() {
                    lines.feed(&buf[..n], &mut batch);
                }
                lines.finish(&mut batch);
                eof = true;
                continue;
            }
            if failing.is_some() && now >= at + STOP_RETRY {
                break; // writes still fail: give up, saying what is lost
            }
        }

        // 3. Wait for input, a signal, or a timer.
        let accept =
            !eof && (batch.is_empty() || (failing.is_some() && cfg.on_full == OnFull::Drop));
        let data = if accept { data_rx.clone() } else { never() };
        let mut timeout = next_timeout(&writer, &failing, &cfg, last_sync);
        if let (Some(at), false) = (stop_at, eof) {
            timeout = timeout.min(at.saturating_duration_since(Instant::now()));
        }
        select! {
            recv(data) -> msg => {
                let mut input = msg.unwrap_or(Input::Eof);
                loop {
                    match input {
                        Input::Data(buf, n) => {
                            if cfg.echo {
                                let _ = stdout.write_all(&buf[..n]);
                            }
                            if failing.is_some() {
                                lines.feed(&buf[..n], &mut scratch);
                                dropped += memchr::memchr_iter(b'\n', &scratch).count() as u64;
                                scratch.clear();
                            } else {
                                lines.feed(&buf[..n], &mut batch);
                            }
                            let _ = free_tx.try_send(buf);
                        }
                        Input::Eof => {
                            lines.finish(&mut batch);
                            eof = true;
                        }
                        Input::Failed(e) => {
                            lines.finish(&mut batch);
                            read_error = Some(e);
                            eof = true;
                        }
                    }
                    // Gather what is already queued into one write.
                    if eof || failing.is_some() || batch.len() >= BATCH {
                        break;
                    }
                    match data_rx.try_recv() {
                        Ok(next) => input = next,
                        Err(_) => break,
                    }
                }
                if cfg.echo {
                    let _ = stdout.flush();
                }
            }
            recv(sig_rx) -> sig => match sig {
                Ok(SIGHUP) | Ok(SIGUSR1) => writer.force_rotation(),
                Ok(_) => {
                    if stop_at.is_some() && failing.is_some() {
                        break; // a second TERM while writes fail
                    }
                    stop_at.get_or_insert(Instant::now() + STOP_GRACE);
                }
                Err(_) => {}
            },
            default(timeout) => {
                if let Err(e) = writer.tick(unix_now()) {
                    if failing.is_none() {
                        report_failure(&e, cfg.on_full);
                    }
                }
            }
        }
    }
    writer.finish();
    if written < batch.len() {
        let lines = memchr::memchr_iter(b'\n', &batch[written..]).count() as u64;
        let f = failing.expect("unwritten data means a failure");
        return Err(Error::Unwritten {
            path: f.last.path,
            lines: lines + dropped,
            source: f.last.error,
        });
    }
    if let Some(e) = read_error {
        return Err(Error::ReadStdin(e));
    }
    Ok(())
}

fn report_failure(e: &WriteError, on_full: OnFull) {
    let then = match on_full {
        OnFull::Block => "retrying, and not reading more input until it works",
        OnFull::Drop => "retrying, and dropping new lines until it works",
    };
    eprintln!(
        "httpd-logrotate: error: writing '{}' failed: {}; {then}",
        e.path.display(),
        e.error
    );
}

/// How long to wait for input before a timer is due.
fn next_timeout(
    writer: &Writer,
    failing: &Option<Failing>,
    cfg: &Config,
    last_sync: Instant,
) -> Duration {
    let mut t = Duration::from_secs(1);
    if let Some(f) = failing {
        t = t.min(f.next.saturating_duration_since(Instant::now()));
    }
    if cfg.fsync == Fsync::Interval && writer.unsynced() {
        t = t.min(cfg.fsync_interval.saturating_sub(last_sync.elapsed()));
    }
    if cfg.create_empty {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        if let Some(b) = writer.next_boundary(now.as_secs() as i64) {
            let at = Duration::from_secs(b.max(0) as u64);
            t = t.min(at.saturating_sub(now) + Duration::from_millis(1));
        }
    }
    t
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The reader thread: stdin to chunks, reusing the buffers the loop hands back.
fn read_stdin(tx: Sender<Input>, free: Receiver<Vec<u8>>) {
    let mut stdin = io::stdin().lock();
    loop {
        // Recycled buffers keep their length: no zeroing per read.
        let mut buf = free.try_recv().unwrap_or_else(|_| vec![0; CHUNK]);
        match stdin.read(&mut buf) {
            Ok(0) => {
                let _ = tx.send(Input::Eof);
                return;
            }
            Ok(n) => {
                if tx.send(Input::Data(buf, n)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.send(Input::Failed(e));
                return;
            }
        }
    }
}
