//! Black-box tests of httpd-logrotate.

use httpd_blackbox::*;

#[test]
fn version_flag_answers() {
    let sb = Sandbox::new();
    let out = run("httpd-logrotate", sb.path(), &["--version"]);
    assert_eq!(out.status, Some(0), "{out:?}");
}
