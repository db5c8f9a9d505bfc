//! httpd-core: the server. Static files, virtual hosts, access logs, status; the request
//! pipeline is where issue 4 plugs in the proxy, CGI and auth handlers.
//!
//! Codemap, in the order a request flows:
//! - [`cli`]: command line, config loading (conftest), signals, pid file, ready line.
//! - [`listener`]: TCP, Unix and systemd-passed sockets; [`sys`]: the raw fd calls;
//!   [`privileges`]: User/Group, root given up after binding.
//! - [`server`]: accept loops, MaxRequestWorkers, graceful drain, [`server::ServerState`].
//! - [`connection`]: one connection: PROXY header ([`proxy_protocol`]), h2c sniffing,
//!   hyper HTTP/1.1 or HTTP/2, the timeouts ([`connection::TimedIo`]), lingering close;
//!   [`parking`]: idle keep-alive connections, held without a task until their next
//!   request.
//! - [`pipeline`]: one request: checks, vhost, Redirect, Alias, per-directory merge,
//!   Require, handler dispatch, ErrorDocument, Header, access log.
//! - [`site`]: the runtime configuration (built from the conftest model by
//!   [`site::build`]), vhost selection and per-directory merging.
//! - [`resolve`]: URL path → filesystem path, with the security rules.
//! - [`static_files`]: decide an [`static_files::Outcome`], then respond (ranges,
//!   conditionals, listings).
//! - [`auth`]: Basic auth over htpasswd files and the user-aware Require tree;
//!   [`proxy`]: ProxyPass, balancers, header rewriting, streaming; [`cgi`]: RFC 3875
//!   scripts; [`substitute`]: the Substitute output filter (issue 4).
//! - [`body`]: the response body type; [`error_page`]: built-in pages;
//!   [`body_timer`]: the request body timeout of an HTTP/2 stream.
//! - [`access_log`]: LogFormat and log sinks; [`status`]: server-status;
//!   [`notify`]: systemd notify.

pub mod access_log;
pub mod auth;
pub mod body;
pub mod body_timer;
pub mod cgi;
pub mod cli;
pub mod connection;
pub mod error;
pub mod error_page;
pub mod listener;
pub mod notify;
pub mod parking;
pub mod pipeline;
pub mod privileges;
pub mod proxy;
pub mod proxy_protocol;
pub mod resolve;
pub mod server;
pub mod site;
pub mod static_files;
pub mod status;
pub mod substitute;
pub mod sys;

pub use error::Error;
