//! Reading the inputs: files or stdin, `.gz` and `.zst` by their magic bytes, cut into
//! chunks of whole lines that worker threads parse in parallel (one reader, N parsers,
//! a bounded queue between them, so memory stays bounded for any input size).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

use super::aggregate::Stats;
use super::error::StatsError;
use super::filter::Filter;
use super::format::Format;

const CHUNK: usize = 1 << 20;

/// One input: a file, or stdin when `path` is `None`.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: Option<PathBuf>,
}

impl Source {
    pub fn name(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| "<stdin>".to_string(), |p| p.display().to_string())
    }
}

/// How to run: the parts of the configuration the pipeline needs.
pub struct Plan<'a> {
    pub sources: &'a [Source],
    pub format: Option<Format>,
    pub filter: &'a Filter,
    pub exact: bool,
    pub top: usize,
    pub threads: usize,
    /// Raw bytes read so far, for the progress bar.
    pub progress: Arc<AtomicU64>,
}

struct Chunk {
    source: usize,
    format: Arc<Format>,
    first_line: u64,
    data: Vec<u8>,
}

/// Counts the bytes read from the underlying file (before decompression).
struct Counting<R> {
    inner: R,
    counter: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens a source, decompressing gzip (all members) and zstd by magic bytes.
fn open(source: &Source, counter: Arc<AtomicU64>) -> Result<Box<dyn Read + Send>, StatsError> {
    let raw: Box<dyn Read + Send> = match &source.path {
        Some(p) => Box::new(File::open(p).map_err(|e| StatsError::Open {
            path: p.clone(),
            source: e,
        })?),
        None => Box::new(std::io::stdin()),
    };
    let mut buf = BufReader::with_capacity(
        256 * 1024,
        Counting {
            inner: raw,
            counter,
        },
    );
    let head = buf.fill_buf().map_err(|e| StatsError::Read {
        name: source.name(),
        source: e,
    })?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buf))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(buf).map_err(|e| StatsError::Read {
                name: source.name(),
                source: e,
            })?,
        )
    } else {
        Box::new(buf)
    })
}

/// Reads every source and returns the merged totals and the format of the first source.
pub fn analyse(plan: &Plan<'_>) -> Result<(Stats, Format), StatsError> {
    let threads = plan.threads.max(1);
    let (tx, rx) = bounded::<Chunk>(threads * 2);
    let (recycle_tx, recycle_rx) = unbounded::<Vec<u8>>();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let rx = rx.clone();
                let recycle = recycle_tx.clone();
                scope.spawn(move || work(rx, recycle, plan))
            })
            .collect();
        drop(rx);
        let read = read_all(plan, &tx, &recycle_rx);
        drop(tx);
        let mut total = Stats::new(plan.exact, plan.top);
        for w in workers {
            total.merge(w.join().expect("a parser thread panicked"));
        }
        total.finish();
        let first_format = read?;
        Ok((total, first_format))
    })
}

fn work(rx: Receiver<Chunk>, recycle: Sender<Vec<u8>>, plan: &Plan<'_>) -> Stats {
    let mut stats = Stats::new(plan.exact, plan.top);
    for chunk in rx {
        let mut line_no = chunk.first_line;
        let data = &chunk.data[..];
        let mut start = 0;
        while start < data.len() {
            let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
            let line = &data[start..end];
            start = end + 1;
            line_no += 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let text = match std::str::from_utf8(line) {
                Ok(s) => std::borrow::Cow::Borrowed(s),
                Err(_) => String::from_utf8_lossy(line),
            };
            match chunk.format.parse(&text) {
                Some(rec) => stats.add(&rec, plan.filter),
                None => stats.add_invalid(chunk.source, line_no, line),
            }
        }
        let mut data = chunk.data;
        data.clear();
        let _ = recycle.send(data);
    }
    stats
}

/// The reader: fills chunks that end at a line end and queues them.
fn read_all(
    plan: &Plan<'_>,
    tx: &Sender<Chunk>,
    recycle: &Receiver<Vec<u8>>,
) -> Result<Format, StatsError> {
    let mut first_format = None;
    for (idx, source) in plan.sources.iter().enumerate() {
        let mut reader = open(source, Arc::clone(&plan.progress))?;
        let mut format: Option<Arc<Format>> = plan.format.clone().map(Arc::new);
        let mut carry: Vec<u8> = Vec::new();
        let mut line = 0u64;
        let mut eof = false;
        while !eof {
            let mut buf = recycle
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(CHUNK * 2));
            buf.append(&mut carry);
            // Fill to at least CHUNK bytes, or more when a single line is longer.
            loop {
                let start = buf.len();
                let want = CHUNK.max(start + 64 * 1024);
                buf.resize(want, 0);
                let n =
                    read_retry(&mut reader, &mut buf[start..]).map_err(|e| StatsError::Read {
                        name: source.name(),
                        source: e,
                    })?;
                buf.truncate(start + n);
                if n == 0 {
                    eof = true;
                    break;
                }
                if buf.len() >= CHUNK && memchr::memrchr(b'\n', &buf).is_some() {
                    break;
                }
            }
            if !eof {
                let cut = memchr::memrchr(b'\n', &buf).expect("checked above") + 1;
                carry.extend_from_slice(&buf[cut..]);
                buf.truncate(cut);
            }
            if buf.is_empty() {
                continue;
            }
            let fmt = format
                .get_or_insert_with(|| Arc::new(Format::detect(&buf)))
                .clone();
            first_format.get_or_insert_with(|| (*fmt).clone());
            let lines = memchr::memchr_iter(b'\n', &buf).count() as u64;
            let chunk = Chunk {
                source: idx,
                format: fmt,
                first_line: line,
                data: buf,
            };
            line += lines;
            if tx.send(chunk).is_err() {
                break;
            }
        }
    }
    Ok(first_format.unwrap_or_else(|| {
        plan.format
            .clone()
            .unwrap_or_else(|| Format::from_arg("combined").expect("built-in format"))
    }))
}

fn read_retry(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Plain, gzip (two members) and zstd inputs all read back as the same text, whatever
    /// their file names say.
    #[test]
    fn decompresses_by_magic_bytes() {
        let text = b"line one\nline two\n".repeat(1000);
        let dir = tempfile::tempdir().unwrap();
        let mut gz = Vec::new();
        for half in [&text[..9000], &text[9000..]] {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(half).unwrap();
            gz.extend(e.finish().unwrap());
        }
        let zst = zstd::encode_all(&text[..], 3).unwrap();
        for (name, bytes) in [("plain.log", text.clone()), ("a.log", gz), ("b.txt", zst)] {
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            let counter = Arc::new(AtomicU64::new(0));
            let mut out = Vec::new();
            open(&Source { path: Some(path) }, Arc::clone(&counter))
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, text, "{name}");
            assert_eq!(
                counter.load(Ordering::Relaxed),
                bytes.len() as u64,
                "{name}: raw bytes counted"
            );
        }
    }
}
