//! Black-box tests of `httpd-logrotate --stats`.
