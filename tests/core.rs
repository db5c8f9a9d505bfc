//! Black-box tests of httpd-core.

use httpd_blackbox::*;

#[test]
fn version_flag_answers() {
    let sb = Sandbox::new();
    let out = run("httpd-core", sb.path(), &["--version"]);
    assert_eq!(out.status, Some(0), "{out:?}");
}
