//! The properties the httpd-core fuzz targets check, one module per target. Shared by
//! the fuzz targets (through the httpd-fuzz library) and by httpd-core's corpus replay
//! test (`crates/httpd-core/tests/fuzz_corpus.rs`), so `cargo test` re-checks every
//! corpus input without cargo-fuzz.

pub mod cgi_header;
pub mod path_resolver;
pub mod proxy_header;
pub mod range_parser;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Runs a future over in-memory input, which never has to wait.
fn block_on<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("in-memory input never waits"),
    }
}
