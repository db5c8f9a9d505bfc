//! The response body type: an enum rather than a boxed trait object, so the hot paths
//! (a small file in memory, a file streamed from disk) cost no allocation of their own.
//!
//! A [`Body`] may carry a [`Completion`]: called once when the body is dropped (hyper
//! drops it after the last byte is written, or when the connection dies) with the number
//! of body bytes sent. The access log and the connection's idle timer hang off it.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};

/// Chunk size for streaming files: large enough to keep syscalls few, small enough to
/// keep memory per connection bounded.
const CHUNK: usize = 128 * 1024;

/// How much of a file one poll of a [`GzipFile`] may compress before it gives the
/// runtime back, so a very compressible file cannot hold the thread for its whole length.
const GZIP_BUDGET: usize = 4 * CHUNK;
/// A [`GzipFile`] sends what it has compressed once it holds this much.
const GZIP_FRAME: usize = 32 * 1024;

/// A boxed body from elsewhere (a proxied response, a CGI's output: issue 4).
pub type BoxedBody = Pin<Box<dyn http_body::Body<Data = Bytes, Error = io::Error> + Send>>;

/// A piece of a multipart or file body.
pub enum Part {
    Bytes(Bytes),
    /// `len` bytes of the file at `offset`.
    File {
        file: Arc<File>,
        offset: u64,
        len: u64,
    },
}

pub enum Kind {
    Empty,
    Full(Option<Bytes>),
    Parts(VecDeque<Part>),
    Stream(BoxedBody),
}

/// Called once when the body is dropped, with the body bytes sent.
pub trait Completion: Send {
    fn complete(self: Box<Self>, sent: u64);
}

pub struct Body {
    kind: Kind,
    sent: u64,
    on_done: Option<Box<dyn Completion>>,
}

impl Body {
    pub fn empty() -> Body {
        Body::from_kind(Kind::Empty)
    }

    pub fn full(bytes: impl Into<Bytes>) -> Body {
        let b = bytes.into();
        if b.is_empty() {
            Body::empty()
        } else {
            Body::from_kind(Kind::Full(Some(b)))
        }
    }

    /// `len` bytes of `file` from `offset`, read in chunks as the client takes them.
    pub fn file(file: Arc<File>, offset: u64, len: u64) -> Body {
        Body::parts(VecDeque::from([Part::File { file, offset, len }]))
    }

    pub fn parts(parts: VecDeque<Part>) -> Body {
        Body::from_kind(Kind::Parts(parts))
    }

    pub fn stream(body: BoxedBody) -> Body {
        Body::from_kind(Kind::Stream(body))
    }

    fn from_kind(kind: Kind) -> Body {
        Body {
            kind,
            sent: 0,
            on_done: None,
        }
    }

    /// The whole body is in memory (none, or one piece): hyper writes it at once.
    pub fn is_in_memory(&self) -> bool {
        matches!(self.kind, Kind::Empty | Kind::Full(_))
    }

    /// Attaches a completion (replacing any previous one).
    pub fn on_done(&mut self, done: Box<dyn Completion>) {
        self.on_done = Some(done);
    }

    /// Takes the completion back (when a body is replaced by another).
    pub fn take_on_done(&mut self) -> Option<Box<dyn Completion>> {
        self.on_done.take()
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if let Some(done) = self.on_done.take() {
            done.complete(self.sent);
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let out = match &mut this.kind {
            Kind::Empty => None,
            Kind::Full(b) => b.take().map(|b| Ok(Frame::data(b))),
            Kind::Parts(parts) => next_part(parts).map(|r| r.map(Frame::data)),
            Kind::Stream(s) => match s.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            },
        };
        if let Some(Ok(frame)) = &out {
            if let Some(d) = frame.data_ref() {
                this.sent += d.len() as u64;
            }
        }
        Poll::Ready(out)
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(b) => b.is_none(),
            Kind::Parts(p) => p.is_empty(),
            Kind::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Parts(parts) => SizeHint::with_exact(
                parts
                    .iter()
                    .map(|p| match p {
                        Part::Bytes(b) => b.len() as u64,
                        Part::File { len, .. } => *len,
                    })
                    .sum(),
            ),
            Kind::Stream(s) => s.size_hint(),
        }
    }
}

/// A file gzip-compressed as the client takes it (on-the-fly compression of a file too
/// large to compress in one go): memory is bounded by one input chunk, the encoder's
/// state and one frame of output, whatever the file's size. The length is not known in
/// advance, so the response has no Content-Length (chunked, or close-delimited).
pub struct GzipFile {
    file: Arc<File>,
    offset: u64,
    left: u64,
    input: Vec<u8>,
    /// None once the gzip trailer has been sent.
    enc: Option<flate2::write::GzEncoder<Vec<u8>>>,
}

impl GzipFile {
    pub fn new(file: Arc<File>, len: u64, level: flate2::Compression) -> GzipFile {
        GzipFile {
            file,
            offset: 0,
            left: len,
            input: Vec::new(),
            enc: Some(flate2::write::GzEncoder::new(Vec::new(), level)),
        }
    }
}

impl http_body::Body for GzipFile {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        use std::io::Write;
        let this = self.get_mut();
        let Some(enc) = this.enc.as_mut() else {
            return Poll::Ready(None);
        };
        let mut budget = GZIP_BUDGET;
        while this.left > 0 && enc.get_ref().len() < GZIP_FRAME {
            if budget == 0 {
                // Nothing worth a frame yet: let other tasks run, then go on.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let want = this.left.min(CHUNK as u64) as usize;
            this.input.resize(want, 0);
            let n = match this.file.read_at(&mut this.input, this.offset) {
                Ok(0) => return Poll::Ready(Some(Err(shrank()))),
                Ok(n) => n,
                Err(e) => return Poll::Ready(Some(Err(e))),
            };
            enc.write_all(&this.input[..n])?;
            this.offset += n as u64;
            this.left -= n as u64;
            budget = budget.saturating_sub(n);
        }
        if this.left == 0 {
            enc.try_finish()?;
            let out = std::mem::take(enc.get_mut());
            this.enc = None;
            this.input = Vec::new();
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
        }
        let out = std::mem::take(enc.get_mut());
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
    }

    fn is_end_stream(&self) -> bool {
        self.enc.is_none()
    }
}

fn shrank() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being sent")
}

/// The next chunk of a part list. Files are read synchronously: they are local and
/// almost always in the page cache, which is what nginx assumes too; a chunk is bounded.
fn next_part(parts: &mut VecDeque<Part>) -> Option<io::Result<Bytes>> {
    loop {
        match parts.front_mut()? {
            Part::Bytes(_) => {
                let Some(Part::Bytes(b)) = parts.pop_front() else {
                    unreachable!()
                };
                return Some(Ok(b));
            }
            Part::File { len: 0, .. } => {
                parts.pop_front();
            }
            Part::File { file, offset, len } => {
                let want = (*len).min(CHUNK as u64) as usize;
                let mut buf = BytesMut::zeroed(want);
                let n = match file.read_at(&mut buf, *offset) {
                    Ok(0) => return Some(Err(shrank())),
                    Ok(n) => n,
                    Err(e) => return Some(Err(e)),
                };
                buf.truncate(n);
                *offset += n as u64;
                *len -= n as u64;
                return Some(Ok(buf.freeze()));
            }
        }
    }
}
