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
                    Ok(0) => {
                        return Some(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "file shrank while being sent",
                        )))
                    }
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
