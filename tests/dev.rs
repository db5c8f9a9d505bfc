//! Black-box tests of httpd-dev.

use httpd_blackbox::*;

#[test]
fn version_flag_answers() {
    let sb = Sandbox::new();
    let out = run("httpd-dev", sb.path(), &["--version"]);
    assert_eq!(out.status, Some(0), "{out:?}");
}
