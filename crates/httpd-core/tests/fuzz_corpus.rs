//! Replays the httpd-core fuzzers' corpora through the same property checks the fuzz
//! targets run (`fuzz/checks/core/`).

#[path = "../../../fuzz/checks/core/mod.rs"]
mod checks;
#[path = "../../../fuzz/checks/replay.rs"]
mod replay;

use replay::replay;

#[test]
fn path_resolver_corpus() {
    replay("path_resolver", checks::path_resolver::check);
}

#[test]
fn range_parser_corpus() {
    replay("range_parser", checks::range_parser::check);
}

#[test]
fn proxy_header_corpus() {
    replay("proxy_header", checks::proxy_header::check);
}

#[test]
fn cgi_header_corpus() {
    replay("cgi_header", checks::cgi_header::check);
}
