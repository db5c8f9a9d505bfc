use super::values::*;
use super::*;
use std::time::Duration;

#[test]
fn listen_addresses() {
    let ok = [
        ("80", "0.0.0.0:80"),
        ("127.0.0.1:8080", "127.0.0.1:8080"),
        ("[::1]:443", "[::1]:443"),
        ("127.0.0.1:0", "127.0.0.1:0"),
        ("unix:/run/h.sock", "unix:/run/h.sock"),
    ];
    for (input, want) in ok {
        assert_eq!(parse_listen(input).unwrap().to_string(), want, "{input}");
    }
    for bad in [
        "70000",
        "www.example.com:80",
        "abc",
        "unix:rel.sock",
        "1.2.3.4:99999",
    ] {
        assert!(parse_listen(bad).is_err(), "{bad}");
    }
}

#[test]
fn proxy_targets() {
    assert_eq!(parse_proxy_target("!").unwrap(), ProxyTarget::Exclude);
    assert_eq!(
        parse_proxy_target("balancer://app/x").unwrap(),
        ProxyTarget::Balancer {
            name: "balancer://app".into(),
            path: "/x".into()
        }
    );
    assert!(matches!(
        parse_proxy_target("unix:/run/app.sock|http://localhost/").unwrap(),
        ProxyTarget::Unix { .. }
    ));
    for bad in [
        "localhost:8080",
        "ftp://x/",
        "http://",
        "http://h:0/",
        "unix:/x.sock",
        "fcgi://h/",
    ] {
        assert!(parse_proxy_target(bad).is_err(), "{bad}");
    }
}

#[test]
fn log_formats() {
    for ok in [
        "%h %l %u %t \"%r\" %>s %b",
        "%{Referer}i %{%Y}t %D %T %400,501{User-agent}i %%",
        "%v:%p %h %O",
    ] {
        assert!(check_log_format(ok).is_ok(), "{ok}");
    }
    for bad in ["%h %Z", "%{Referer i", "trailing %"] {
        assert!(check_log_format(bad).is_err(), "{bad}");
    }
}

#[test]
fn networks() {
    let cases = [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("192.168", "192.168.0.0/16"),
        ("10.1.2.3", "10.1.2.3/32"),
        ("10.0.0.0/255.255.0.0", "10.0.0.0/16"),
        ("2001:db8::/32", "2001:db8::/32"),
    ];
    for (input, want) in cases {
        assert_eq!(parse_net(input).unwrap().to_string(), want, "{input}");
    }
    assert!(parse_net("nope").is_none());
}

#[test]
fn durations() {
    assert_eq!(parse_duration("5"), Some(Duration::from_secs(5)));
    assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_duration("5s"), None);
    assert_eq!(parse_duration("-1"), None);
}

#[test]
fn server_names() {
    assert!(valid_server_name("www.example.com"));
    assert!(valid_server_name("https://www.example.com:443"));
    assert!(valid_server_name("[::1]:80"));
    assert!(!valid_server_name("bad name"));
    assert!(!valid_server_name(""));
    assert_eq!(strip_scheme_port("HTTPS://Example.com:8443"), "example.com");
}

#[test]
fn max_ranges_values() {
    use crate::model::MaxRanges;
    let ok = [
        ("default", MaxRanges::Limit(200)),
        ("Unlimited", MaxRanges::Unlimited),
        ("none", MaxRanges::None),
        ("1", MaxRanges::Limit(1)),
        ("5000", MaxRanges::Limit(5000)),
    ];
    for (input, want) in ok {
        assert_eq!(max_ranges(input), Some(want), "{input}");
    }
    for bad in ["0", "-1", "", "many", "99999999999"] {
        assert_eq!(max_ranges(bad), None, "{bad}");
    }
}

#[test]
fn accounts() {
    assert_eq!(account_check(true, "root"), Account::Root);
    assert_eq!(account_check(true, "#0"), Account::Root);
    assert_eq!(account_check(false, "#0"), Account::Known);
    assert_eq!(account_check(true, "#1000"), Account::Known);
    assert_eq!(account_check(true, "no-such-user-httpd"), Account::Unknown);
    assert_eq!(
        account_check(false, "no-such-group-httpd"),
        Account::Unknown
    );
    assert_eq!(account_check(true, "#x"), Account::Unknown);
}

/// Validates `text` with virtual hosts on several threads and on one; both must give the
/// same model and the same diagnostics in the same order.
fn parallel_matches_sequential(text: &str) -> Vec<Diagnostic> {
    let root = std::env::temp_dir();
    let mut loader = crate::load::Loader::new(root.clone(), &[]);
    let tree = loader.load_bytes(std::path::Path::new("many.conf"), text.as_bytes());
    let mut parallel_diags = Vec::new();
    let parallel = Validator::new(&mut parallel_diags, root.clone()).build(&tree);
    let mut sequential_diags = Vec::new();
    let mut one = Validator::new(&mut sequential_diags, root);
    one.parallel = false;
    let sequential = one.build(&tree);
    assert_eq!(parallel_diags, sequential_diags);
    assert_eq!(
        serde_json::to_string(&parallel).unwrap(),
        serde_json::to_string(&sequential).unwrap()
    );
    assert_eq!(parallel.vhosts.len(), sequential.vhosts.len());
    parallel_diags
}

fn many_vhosts(extra: impl Fn(usize) -> String) -> String {
    let mut text = String::from("LogFormat \"%h %r\" common\n");
    for i in 0..1_500 {
        text.push_str(&format!(
            "<VirtualHost *:80>\n ServerName s{i}.example\n CustomLog /dev/null {}\n",
            if i % 97 == 0 { "comon" } else { "common" }
        ));
        if i % 50 == 0 {
            text.push_str(&format!(" LogFormat \"%h {i}\" common\n"));
        }
        if i % 7 == 0 {
            text.push_str(" RewriteEngine on\n");
        }
        if i % 3 == 0 {
            text.push_str(&format!(
                " <Proxy balancer://pool>\n  BalancerMember http://127.0.0.1:{}\n </Proxy>\n",
                1000 + i
            ));
        }
        if i % 400 == 0 {
            text.push_str(" DocumentRooot /srv\n ServerName s0.example\n");
        }
        text.push_str(&extra(i));
        text.push_str("</VirtualHost>\n");
    }
    text
}

#[test]
fn virtual_hosts_validated_in_parallel_match_one_thread() {
    let diags = parallel_matches_sequential(&many_vhosts(|_| String::new()));
    // The checks above ran on real findings: a typo, an unknown nickname, and one
    // counted "not supported" warning for the whole file.
    assert!(diags.iter().any(|d| d.message.contains("DocumentRooot")));
    assert!(diags.iter().any(|d| d.message.contains("`comon`")));
    let unsupported: Vec<_> = diags
        .iter()
        .filter(|d| d.message.contains("RewriteEngine"))
        .collect();
    assert_eq!(unsupported.len(), 1, "{unsupported:?}");
    assert!(
        unsupported[0].message.contains("and 214 more"),
        "{}",
        unsupported[0].message
    );
}

#[test]
fn virtual_hosts_that_change_server_settings_are_validated_in_order() {
    // Server-wide settings set inside virtual hosts carry from one to the next, so the
    // later runs are redone in sequence; the result is still the sequential one.
    parallel_matches_sequential(&many_vhosts(|i| match i {
        200 => " LimitInternalRecursion 20\n".into(),
        1_200 => " TraceEnable on\n LimitInternalRecursion 30\n".into(),
        _ => String::new(),
    }));
}

#[test]
fn a_piped_log_without_a_command_is_an_error() {
    for line in [
        "CustomLog \"|\" common",
        "CustomLog \"|$ \" common",
        "TransferLog \"||\"",
        "ErrorLog \"|  \"",
    ] {
        let loaded = crate::load_str(line, "t.conf", &Default::default());
        let errors: Vec<_> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        assert_eq!(errors.len(), 1, "{line}: {errors:?}");
        assert!(
            errors[0].message.contains("names no command"),
            "{line}: {errors:?}"
        );
    }
    let fine = crate::load_str("CustomLog \"|$cat\" common", "t.conf", &Default::default());
    assert!(!fine.has_errors(), "{:?}", fine.diagnostics);
}

/// AcceptFilter: on for http and https by default (Apache on Linux), `none` turns it off,
/// any other filter name means on (with a warning when it is not a known one), and a
/// Listen's protocol is https on port 443 when it names none.
#[test]
fn accept_filters() {
    let load = |text: &str| crate::load_str(text, "t.conf", &Default::default());
    let deferred = |loaded: &crate::Loaded| -> Vec<bool> {
        let c = &loaded.config;
        c.listen.iter().map(|l| c.server.defer_accept(l)).collect()
    };
    let defaults = load("Listen 127.0.0.1:80\nListen 127.0.0.1:443\nListen 127.0.0.1:81 ftp\n");
    assert_eq!(deferred(&defaults), [true, true, false]);
    let off = load(
        "Listen 127.0.0.1:80\nListen 127.0.0.1:443\nAcceptFilter http none\nAcceptFilter HTTPS httpready\n",
    );
    assert!(off.diagnostics.is_empty(), "{:?}", off.diagnostics);
    assert_eq!(deferred(&off), [false, true]);
    let odd = load("AcceptFilter http sometimes\n");
    assert_eq!(odd.diagnostics.len(), 1, "{:?}", odd.diagnostics);
    assert_eq!(odd.diagnostics[0].severity, Severity::Warning);
    assert_eq!(odd.config.server.accept_filters.get("http"), Some(&true));
    for bad in ["AcceptFilter http\n", "AcceptFilter http data extra\n"] {
        assert!(load(bad).has_errors(), "{bad}");
    }
}
