//! Black-box tests of httpd-conftest: exit codes, exact diagnostics, JSON, --dump, the
//! corpus of real Apache configurations, and hostile input.

use httpd_blackbox::*;
use std::path::Path;

/// Compares `actual` with `tests/snapshots/conftest/NAME.txt` exactly; with
/// `UPDATE_SNAPSHOTS=1` rewrites the file instead.
fn snapshot(name: &str, actual: &str) {
    let path = workspace_root()
        .join("tests/snapshots/conftest")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing snapshot {}", path.display()));
    assert!(
        expected == actual,
        "snapshot {name} differs (UPDATE_SNAPSHOTS=1 rewrites it)\n--- expected ---\n{expected}\n--- actual ---\n{actual}"
    );
}

fn conftest(sb: &Sandbox, args: &[&str]) -> Run {
    let mut out = run("httpd-conftest", sb.path(), args);
    // Absolute paths inside messages depend on the sandbox.
    let root = sb.path().to_string_lossy().into_owned();
    out.stdout = out.stdout.replace(&root, "$SANDBOX");
    out.stderr = out.stderr.replace(&root, "$SANDBOX");
    out
}

const EVERY_PROBLEM: &str = r#"# One of every diagnostic kind
Listen 8080
Listen 8080
Listen 70000
DocumentRooot /srv/www
DocumentRoot "www"
KeepAlive maybe
Timeout 5s
Header set X-Bad "unterminated
<Directory "$SANDBOX/www">
    Options Indexes FollowSymLinks
</Directory>
Require all granted
CustomLog logs/access.log combnied
LoadModule rewrite_module modules/mod_rewrite.so
LoadModule headers_module modules/mod_headers.so
ProxyPass /app/ http://127.0.0.1:9000/
ProxyPass /app/api/ http://127.0.0.1:9001/
ProxyPass /x localhost:80
ProxyPass /api/ http://127.0.0.1:9002/v1
Header set Strict-Transport-Security "max-age=31536000"
Alias /static /nonexistent/static/
<IfModule mod_nonexistent.c>
    DocumentRooot /x
</IfModule>
Include missing.conf
ServerName ${UNDEFINED_VAR}
<VirtualHost *:8080>
    ServerName a.example.com
    <Location /x>
        ServerName nope
    </Location>
</VirtualHost>
<VirtualHost *:8080>
    ServerName a.example.com
</VirtualHost>
</Files>
<Directory /tmp>
"#;

#[test]
fn every_diagnostic_kind_exactly() {
    let sb = Sandbox::new();
    sb.mkdir("www");
    let text = EVERY_PROBLEM.replace("$SANDBOX", &sb.path().to_string_lossy());
    sb.write("httpd.conf", text);
    let out = conftest(&sb, &["httpd.conf"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert_eq!(out.stdout, "", "diagnostics go to stderr");
    snapshot("every_problem", &out.stderr);
}

#[test]
fn valid_config_says_syntax_ok() {
    let sb = Sandbox::new();
    sb.mkdir("www");
    sb.write(
        "httpd.conf",
        "Listen 127.0.0.1:8080\nServerName localhost\nDocumentRoot www\n<Directory www>\n  Require all granted\n</Directory>\n",
    );
    let out = conftest(&sb, &["httpd.conf"]);
    assert_eq!(out.status, Some(0), "{out:?}");
    assert_eq!(out.stdout, "Syntax OK\n");
    // The default file is ./httpd.conf.
    let out = conftest(&sb, &[]);
    assert_eq!(out.status, Some(0), "{out:?}");
}

#[test]
fn strict_turns_warnings_into_failure() {
    let sb = Sandbox::new();
    sb.write("httpd.conf", "Listen 8080\nDocumentRoot /does/not/exist\n");
    let out = conftest(&sb, &["httpd.conf"]);
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(out
        .stderr
        .contains("warning: DocumentRoot /does/not/exist does not exist"));
    let out = conftest(&sb, &["--strict", "httpd.conf"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(!out.stdout.contains("Syntax OK"));
}

#[test]
fn json_diagnostics_on_stdout() {
    let sb = Sandbox::new();
    sb.write("httpd.conf", "Listen 8080\nServerNmae example.com\n");
    let out = conftest(&sb, &["--format", "json", "httpd.conf"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    assert_eq!(
        v,
        serde_json::json!([{
            "file": "httpd.conf", "line": 2, "column": 1, "severity": "error",
            "message": "unknown directive `ServerNmae`", "suggestion": "ServerName"
        }])
    );
    // Valid: an empty array, and the verdict on stderr.
    sb.write("ok.conf", "Listen 8080\n");
    let out = conftest(&sb, &["--format", "json", "ok.conf"]);
    assert_eq!(out.status, Some(0), "{out:?}");
    assert_eq!(out.stdout.trim(), "[]");
    assert_eq!(out.stderr.trim(), "Syntax OK");
}

#[test]
fn dump_resolves_everything() {
    let sb = Sandbox::new();
    sb.mkdir("site");
    sb.write(
        "httpd.conf",
        "Define SITE site\nListen 127.0.0.1:8080\nServerRoot \"${PWD_ROOT}\"\nInclude conf.d/*.conf\n<IfDefine PROD>\nKeepAlive Off\n</IfDefine>\n<VirtualHost *:8080>\n  ServerName A.Example.com\n  ServerAlias *.example.org\n  DocumentRoot ${SITE}\n  CustomLog access.log combined\n</VirtualHost>\n",
    );
    sb.write("conf.d/a.conf", "Timeout 42\n");
    let mut cmd = std::process::Command::new(bin("httpd-conftest"));
    cmd.current_dir(sb.path()).env("PWD_ROOT", sb.path()).args([
        "--dump",
        "-D",
        "PROD",
        "httpd.conf",
    ]);
    let out = run_with(&mut cmd, None);
    assert_eq!(out.status, Some(0), "{out:?}");
    assert_eq!(out.stderr.trim(), "Syntax OK");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    let root = sb.path().to_string_lossy();
    assert_eq!(v["listen"][0]["addr"]["address"], "127.0.0.1:8080");
    assert_eq!(v["main"]["timeout"], 42.0, "included file applied");
    assert_eq!(v["main"]["keep_alive"], false, "-D PROD applied");
    assert_eq!(
        v["main"]["max_keep_alive_requests"], 1000,
        "defaults filled"
    );
    let vh = &v["vhosts"][0]["host"];
    assert_eq!(vh["server_name"], "a.example.com");
    assert_eq!(vh["server_alias"][0], "*.example.org");
    assert_eq!(vh["document_root"], format!("{root}/site"));
    assert_eq!(vh["timeout"], 42.0, "vhost inherits the main server");
    assert_eq!(
        vh["custom_logs"][0]["format"],
        "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\""
    );
}

#[test]
fn usage_and_unreadable_files_exit_2() {
    let sb = Sandbox::new();
    sb.mkdir("adir");
    for args in [
        &["--no-such-flag"][..],
        &["--format", "yaml", "x"],
        &["missing.conf"],
        &["adir"],
    ] {
        let out = conftest(&sb, args);
        assert_eq!(out.status, Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.contains("panicked"), "{out:?}");
    }
    let out = conftest(&sb, &["adir"]);
    assert_eq!(
        out.stderr,
        "httpd-conftest: error: cannot read adir: it is a directory\n"
    );
    let out = conftest(&sb, &["missing.conf"]);
    assert!(out
        .stderr
        .starts_with("httpd-conftest: error: cannot read missing.conf: "));
}

#[test]
fn define_and_serverroot_flags() {
    let sb = Sandbox::new();
    sb.write("root/extra.conf", "KeepAlive On\n");
    sb.write(
        "conf/httpd.conf",
        "<IfDefine !SPECIAL>\nBogusDirective\n</IfDefine>\nInclude extra.conf\n",
    );
    let out = conftest(&sb, &["-d", "root", "-D", "SPECIAL", "conf/httpd.conf"]);
    assert_eq!(out.status, Some(0), "{out:?}");
    // Without -D the bogus directive is in a false section: a warning with a note.
    let out = conftest(&sb, &["-d", "root", "conf/httpd.conf"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("error: unknown directive `BogusDirective`"),
        "{out:?}"
    );
    let out = conftest(&sb, &["-d", "root", "-D", "SPECIAL", "conf/httpd.conf"]);
    assert!(out.stderr.contains("warning: unknown directive `BogusDirective` (inside <IfDefine !SPECIAL>, which is off)"), "{out:?}");
}

#[test]
fn include_loop_is_one_error() {
    let sb = Sandbox::new();
    sb.write("a.conf", "Include b.conf\n");
    sb.write("b.conf", "Include a.conf\n");
    let out = conftest(&sb, &["a.conf"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains(": error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{out:?}");
    assert!(errors[0].starts_with("$SANDBOX/b.conf:1:9: error: include loop: $SANDBOX/a.conf includes $SANDBOX/b.conf includes $SANDBOX/a.conf"), "{}", errors[0]);
}

#[test]
fn hostile_input_gets_one_clear_error() {
    let sb = Sandbox::new();
    // Binary junk.
    let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 256) as u8).collect();
    sb.write("junk.conf", junk);
    let out = conftest(&sb, &["junk.conf"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert_eq!(
        out.stderr,
        "junk.conf:1:1: error: this is not a text file (NUL byte at offset 0); nothing in it was read\nhttpd-conftest: 1 error, 0 warnings\n"
    );

    // 5,000 nested sections.
    let deep = "<Directory /x>\n".repeat(5000) + &"</Directory>\n".repeat(5000);
    sb.write("deep.conf", deep);
    let out = conftest(&sb, &["deep.conf"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("sections are nested more than 128 deep"),
        "{}",
        &out.stderr[..500.min(out.stderr.len())]
    );
    assert!(!out.stderr.contains("panicked"));

    // An include of a device that never ends.
    sb.write("dev.conf", "Include /dev/zero\n");
    let out = conftest(&sb, &["dev.conf"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("dev.conf:1:9: error: /dev/zero is not a regular file or directory"),
        "{out:?}"
    );

    // A 10 MB line.
    let long = format!("ServerName {}\n", "a".repeat(10 * 1024 * 1024));
    sb.write("long.conf", long);
    let out = conftest(&sb, &["long.conf"]);
    assert_eq!(
        out.status,
        Some(1),
        "{}",
        &out.stderr[..out.stderr.len().min(500)]
    );
    assert!(out
        .stderr
        .contains("line is 10485771 bytes long; the limit is 1048576"));
    assert!(out.stderr.len() < 2000, "the quoted line is cut");
}

#[test]
fn unbalanced_sections_point_at_the_opening() {
    let sb = Sandbox::new();
    sb.write(
        "httpd.conf",
        "<VirtualHost *:80>\n  <Directory /a>\n</VirtualHost>\n</Location>\n",
    );
    let out = conftest(&sb, &["httpd.conf"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(out.stderr.contains("httpd.conf:2:3: error: <Directory> is never closed: </VirtualHost> at line 3 closes an outer section first"), "{out:?}");
    assert!(
        out.stderr
            .contains("httpd.conf:4:3: error: </Location> without a matching <Location>"),
        "{out:?}"
    );
}

/// The whole Debian apache2 tree passes with exit 0 (warnings allowed).
#[test]
fn corpus_debian_passes() {
    let corpus = corpus_dir().join("debian");
    let sb = Sandbox::new();
    let out = run(
        "httpd-conftest",
        sb.path(),
        &[
            "-d",
            &corpus.to_string_lossy(),
            &corpus.join("apache2.conf").to_string_lossy(),
        ],
    );
    assert_eq!(out.status, Some(0), "{out:?}");
    assert_eq!(out.stdout, "Syntax OK\n");
    assert!(out
        .stderr
        .contains("LoadModule (mod_so) is not supported by httpd, ignored"));
}

/// Every H5BP file passes with exit 0, each checked as a config of its own.
#[test]
fn corpus_h5bp_passes() {
    let h5bp = corpus_dir().join("h5bp");
    let sb = Sandbox::new();
    let mut files = vec![h5bp.join("dist/htaccess.conf")];
    collect_conf(&h5bp.join("h5bp"), &mut files);
    collect_conf(&h5bp.join("vhosts"), &mut files);
    assert!(files.len() > 20, "found {files:?}");
    for f in &files {
        let out = run(
            "httpd-conftest",
            sb.path(),
            &["-d", &h5bp.to_string_lossy(), &f.to_string_lossy()],
        );
        assert_eq!(out.status, Some(0), "{}: {out:?}", f.display());
    }
    // The main httpd.conf says ServerRoot "/usr/local/apache2": its Includes resolve only
    // in a copy placed there (the corpus README), which this test makes when it can.
    let root = Path::new("/usr/local/apache2");
    if !root.join("h5bp/basic.conf").exists() {
        let status = std::process::Command::new("cp")
            .args(["-r", &h5bp.to_string_lossy(), "/usr/local/apache2"])
            .status()
            .expect("cp");
        assert!(
            status.success(),
            "cannot place the h5bp copy in /usr/local/apache2 (needs root)"
        );
    }
    let out = run(
        "httpd-conftest",
        sb.path(),
        &["/usr/local/apache2/httpd.conf"],
    );
    assert_eq!(out.status, Some(0), "{out:?}");
}

fn corpus_dir() -> std::path::PathBuf {
    // shared/ sits beside the checkout, in development and in CI.
    let dir = workspace_root().join("../shared/corpus/apache");
    assert!(dir.is_dir(), "corpus not found at {}", dir.display());
    dir
}

fn collect_conf(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read corpus")
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            collect_conf(&p, out);
        } else if p.extension().is_some_and(|x| x == "conf") {
            out.push(p);
        }
    }
}
