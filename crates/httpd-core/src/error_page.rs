//! The built-in error and redirect pages: short HTML naming the status, nothing about the
//! server (ServerSignature is off by default).

use std::sync::OnceLock;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::body::Body;

/// A response with `status` and its small built-in HTML page (formatted once per status,
/// with its Content-Length value, then shared).
pub fn builtin(status: StatusCode) -> Response<Body> {
    static PAGES: [OnceLock<(Bytes, HeaderValue)>; 600] = [const { OnceLock::new() }; 600];
    let code = status.as_u16();
    let (page, len) = PAGES[usize::from(code) % 600].get_or_init(|| {
        let reason = status.canonical_reason().unwrap_or("");
        let page = Bytes::from(format!(
            "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\n<body><h1>{code} {reason}</h1></body></html>\n"
        ));
        let len = HeaderValue::from(page.len());
        (page, len)
    });
    let mut resp = Response::new(Body::full(page.clone()));
    *resp.status_mut() = status;
    // Room for these and the pipeline's (Server, perhaps Connection) without growing.
    *resp.headers_mut() = http::HeaderMap::with_capacity(6);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, len.clone());
    resp
}

/// A response with a literal body (`ErrorDocument 404 "message"`).
pub fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Body> {
    let len = body.len();
    let mut resp = Response::new(Body::full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}
