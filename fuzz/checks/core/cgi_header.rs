//! Fuzz check for the CGI response header parser (`httpd_core::cgi::read_head`): the same
//! answer whatever sizes the script writes in, and every field it accepts is one the
//! response can carry (a valid header name, a trimmed value), within the size cap.

use httpd_core::cgi::{read_head, MAX_HEAD};
use tokio::io::BufReader;

use super::block_on;

pub fn check(data: &[u8]) {
    let whole = block_on(read_head(&mut BufReader::new(data)));
    let step = data.len() % 13 + 1;
    let pieces = block_on(read_head(&mut BufReader::with_capacity(step, data)));
    assert_eq!(whole, pieces, "read whole vs in pieces of {step}");
    let Ok(fields) = whole else {
        return;
    };
    assert!(!fields.is_empty());
    let mut size = 0;
    for (name, value) in &fields {
        assert!(
            http::HeaderName::from_bytes(name.as_bytes()).is_ok(),
            "accepted header name {name:?}"
        );
        assert_eq!(value.trim(), value, "value of {name} not trimmed");
        size += name.len() + value.len();
    }
    assert!(size <= MAX_HEAD, "header block of {size} bytes accepted");
}
