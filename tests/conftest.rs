//! Black-box tests of httpd-conftest.

use httpd_blackbox::*;

#[test]
fn version_flag_answers() {
    let sb = Sandbox::new();
    let out = run("httpd-conftest", sb.path(), &["--version"]);
    assert_eq!(out.status, Some(0), "{out:?}");
}
