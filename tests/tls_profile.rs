//! httpd-tls's TLS configuration judged by an outside tool: sslyze (PyPI) checks it against
//! Mozilla's "intermediate" profile (protocol versions, cipher suites and their order,
//! curves, certificate types), with httpd-core behind it as in production.
//!
//! The certificates come from a test CA that sslyze is told to trust, valid for 30 days,
//! so the certificate rules of the profile (trusted path, lifespan under 366 days) are
//! judged too.

use std::path::Path;
use std::process::Command;

use httpd_blackbox::*;

/// A CA and a leaf for `localhost` signed by it, with the key type `-newkey` takes.
fn ca_and_leaf(dir: &Path, newkey: &str, keyopt: &str) {
    let common = ["-nodes", "-days", "30", "-pkeyopt", keyopt];
    openssl(
        dir,
        &[
            &["req", "-x509", "-newkey", newkey][..],
            &common,
            &[
                "-subj",
                "/CN=httpd profile test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &["req", "-x509", "-CA", "ca.pem", "-CAkey", "ca.key"][..],
            &["-newkey", newkey],
            &common,
            &[
                "-subj",
                "/CN=localhost",
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.pem",
                "-addext",
                "subjectAltName=DNS:localhost",
                "-addext",
                "basicConstraints=CA:FALSE",
                "-addext",
                "extendedKeyUsage=serverAuth",
            ],
        ]
        .concat(),
    );
}

/// Runs sslyze's Mozilla intermediate check against httpd-tls (default flags) in front of
/// httpd-core; returns sslyze's exit status and its report.
fn sslyze_intermediate(sandbox: &Sandbox, extra_tls_args: &[&str]) -> (bool, String) {
    let dir = sandbox.path();
    sandbox.write("www/index.html", "profile\n");
    let conf = sandbox.write(
        "httpd.conf",
        "Listen 127.0.0.1:0\nDocumentRoot www\nRemoteIPProxyProtocol On\n",
    );
    let (_core, core_addr) = start_core(dir, &conf);
    let backend = core_addr.to_string();
    let tls = Server::spawn(
        Command::new(bin("httpd-tls"))
            .current_dir(dir)
            .args(["--listen", "127.0.0.1:0", "--backend", &backend])
            .args(["--cert", "leaf.pem", "--key", "leaf.key"])
            .args(extra_tls_args),
    );
    let line = tls.wait_for_line("(tls)");
    let port = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.rsplit(':').next())
        .expect("listening line")
        .to_string();
    // `localhost{127.0.0.1}`: SNI and certificate name localhost, connecting to loopback.
    let target = format!("localhost:{port}{{127.0.0.1}}");
    let out = Command::new("python3")
        .current_dir(dir)
        .args(["-m", "sslyze", "--certinfo_ca_file", "ca.pem"])
        .args(["--mozilla_config", "intermediate", &target])
        .output()
        .expect("run python3 -m sslyze");
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), report)
}

fn require_sslyze() {
    let ok = Command::new("python3")
        .args(["-m", "sslyze", "--help"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "sslyze is not installed; run ./scripts/test, which installs it"
    );
}

#[test]
fn ecdsa_certificate_passes_the_mozilla_intermediate_profile() {
    require_tool("openssl");
    require_sslyze();
    let sandbox = Sandbox::new();
    ca_and_leaf(sandbox.path(), "ec", "ec_paramgen_curve:prime256v1");
    let (ok, report) = sslyze_intermediate(&sandbox, &[]);
    assert!(ok, "sslyze says not compliant:\n{report}");
    assert!(report.contains("OK - Compliant"), "{report}");
    // What the profile means, seen in the same report: no TLS 1.0/1.1, and TLS 1.3 on.
    assert!(
        report.contains("TLS 1.0 Cipher Suites") && report.contains("TLS 1.3 Cipher Suites"),
        "{report}"
    );
}

#[test]
fn rsa_certificate_passes_the_mozilla_intermediate_profile() {
    require_tool("openssl");
    require_sslyze();
    let sandbox = Sandbox::new();
    ca_and_leaf(sandbox.path(), "rsa", "rsa_keygen_bits:2048");
    let (ok, report) = sslyze_intermediate(&sandbox, &[]);
    assert!(ok, "sslyze says not compliant:\n{report}");
    assert!(report.contains("OK - Compliant"), "{report}");
}

/// The check can fail: a certificate sslyze cannot trust is reported as not compliant
/// (so the two tests above are not passing by accident).
#[test]
fn an_untrusted_certificate_is_not_compliant() {
    require_tool("openssl");
    require_sslyze();
    let sandbox = Sandbox::new();
    ca_and_leaf(sandbox.path(), "ec", "ec_paramgen_curve:prime256v1");
    // Trust a different CA than the one that signed the leaf.
    std::fs::rename(
        sandbox.path().join("ca.pem"),
        sandbox.path().join("signer.pem"),
    )
    .unwrap();
    let other = tempfile::tempdir().unwrap();
    ca_and_leaf(other.path(), "ec", "ec_paramgen_curve:prime256v1");
    std::fs::copy(other.path().join("ca.pem"), sandbox.path().join("ca.pem")).unwrap();
    let (ok, report) = sslyze_intermediate(&sandbox, &[]);
    assert!(!ok, "sslyze accepted an untrusted chain:\n{report}");
    assert!(report.contains("certificate_path_validation"), "{report}");
}
