//! Host-level directives: listeners, names, logs, aliases, redirects, proxy, TLS.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::values::*;
use super::*;
use crate::tree::Directive;

impl Validator<'_> {
    /// Directives that set host-level things. Returns false if `name` is not one.
    pub(super) fn host_directive(
        &mut self,
        d: &Directive,
        name: &str,
        scope: Scope,
        host: &mut Host,
    ) -> bool {
        let in_dir = matches!(scope, Scope::Dir(_));
        match name {
            "listen" => self.listen(d),
            "serverroot" => {
                if let Some(a) = self.one(d) {
                    if self.file_kind(Path::new(&a.value)) != FileKind::Dir {
                        self.warning(
                            &a.loc,
                            format!("ServerRoot {} is not a directory on this machine", a.value),
                        );
                    }
                }
            }
            "define" => {
                if !(1..=2).contains(&d.args.len()) {
                    self.error(&d.loc, "Define takes a name and an optional value");
                } else if d.args[0].value.contains(':') {
                    self.error(&d.args[0].loc, "a Define name cannot contain ':'");
                }
            }
            "undefine" => {
                self.one(d);
            }
            "include" | "includeoptional" => {} // the loader handled them
            "pidfile" => {
                if let Some(a) = self.one(d) {
                    self.server_mut().pid_file = Some(self.rooted(&a.value));
                }
            }
            "acceptfilter" => match d.args.as_slice() {
                [protocol, filter] => {
                    // Linux has one filter (TCP_DEFER_ACCEPT): Apache turns it on for any
                    // name but none, so the BSD and Windows names mean it too.
                    let on = match filter.value.to_ascii_lowercase().as_str() {
                        "none" => false,
                        "data" | "dataready" | "httpready" | "connect" => true,
                        _ => {
                            self.warning(
                                &filter.loc,
                                format!(
                                    "AcceptFilter {:?} is not a known filter (data, none, \
                                     dataready, httpready, connect); taken as data, as Apache \
                                     on Linux does",
                                    filter.value
                                ),
                            );
                            true
                        }
                    };
                    self.server_mut()
                        .accept_filters
                        .insert(protocol.value.to_ascii_lowercase(), on);
                }
                _ => self.error(
                    &d.loc,
                    "AcceptFilter takes a protocol and a filter (AcceptFilter http data)",
                ),
            },
            "maxrequestworkers" => {
                if let Some(n) = self.number(d, 1, 1_000_000) {
                    self.server_mut().max_request_workers = n as u32;
                }
            }
            "gracefulshutdowntimeout" => {
                if let Some(n) = self.number(d, 0, 86_400) {
                    self.server_mut().graceful_shutdown_timeout = Duration::from_secs(n);
                }
            }
            "servertokens" => {
                if let Some(v) = self.keyword(
                    d,
                    &[
                        "Prod",
                        "ProductOnly",
                        "Major",
                        "Minor",
                        "Min",
                        "Minimal",
                        "OS",
                        "Full",
                    ],
                ) {
                    self.server_mut().server_tokens = match v.as_str() {
                        "prod" | "productonly" => ServerTokens::Prod,
                        "major" => ServerTokens::Major,
                        "minor" => ServerTokens::Minor,
                        "min" | "minimal" => ServerTokens::Min,
                        "os" => ServerTokens::Os,
                        _ => ServerTokens::Full,
                    };
                }
            }
            "traceenable" => {
                if let Some(v) = self.keyword(d, &["On", "Off", "Extended"]) {
                    self.server_mut().trace_enable = v != "off";
                }
            }
            "user" | "group" => {
                if let Some(a) = self.one(d) {
                    // An undefined ${VAR} was reported already; the name is not known yet.
                    let check = if a.value.contains("${") {
                        Account::Known
                    } else {
                        account_check(name == "user", &a.value)
                    };
                    match check {
                        Account::Known => {}
                        Account::Root => self.error(
                            &a.loc,
                            "User root: the server must not serve requests as root (Apache refuses too)",
                        ),
                        // Like a missing file: the build machine may not have the account.
                        Account::Unknown => self.warning(
                            &a.loc,
                            format!("{} {} does not exist on this machine; httpd-core started as root will refuse to start", d.name, a.value),
                        ),
                    }
                    let v = Some(a.value.clone());
                    if name == "user" {
                        self.server_mut().user = v;
                    } else {
                        self.server_mut().group = v;
                    }
                }
            }
            "limitrequestfields" => {
                if let Some(n) = self.number(d, 0, 32_767) {
                    self.server_mut().limit_request_fields = n as u32;
                }
            }
            "limitrequestfieldsize" => {
                if let Some(n) = self.number(d, 1, 65_536) {
                    self.server_mut().limit_request_field_size = n as u32;
                }
            }
            "limitrequestline" => {
                if let Some(n) = self.number(d, 1, 65_536) {
                    self.server_mut().limit_request_line = n as u32;
                }
            }
            // The second number (nested subrequests) has nothing to limit: httpd makes
            // no subrequests. Both must be positive, as in Apache.
            "limitinternalrecursion" => match d.args.as_slice() {
                [a] | [a, _] => {
                    for x in &d.args {
                        if !x.value.parse::<u32>().is_ok_and(|n| n > 0) {
                            self.error(
                                &x.loc,
                                format!(
                                    "LimitInternalRecursion must be a whole number above 0, not {:?}",
                                    x.value
                                ),
                            );
                        }
                    }
                    if let Ok(n @ 1..) = a.value.parse::<u32>() {
                        self.server_mut().limit_internal_recursion = n;
                    }
                }
                _ => self.error(&d.loc, "LimitInternalRecursion takes one or two numbers"),
            },
            "extendedstatus" => {
                if let Some(b) = self.flag(d) {
                    self.server_mut().extended_status = b;
                }
            }
            "typesconfig" => {
                if let Some(a) = self.one(d) {
                    let p = self.rooted(&a.value);
                    if self.file_kind(&p) == FileKind::Missing {
                        self.warning(&a.loc, format!("TypesConfig file {} does not exist; the built-in MIME table is used", p.display()));
                    }
                }
            }
            "logformat" => self.log_format(d),
            "servername" => {
                if let Some(a) = self.one(d) {
                    let name = a.value.trim_end_matches('.').to_string();
                    if !valid_server_name(&name) {
                        self.error(
                            &a.loc,
                            format!("ServerName {:?} is not a valid host name", a.value),
                        );
                    }
                    host.server_name = Some(strip_scheme_port(&name));
                }
            }
            "serveralias" => {
                if d.args.is_empty() {
                    self.error(&d.loc, "ServerAlias needs at least one name");
                }
                for a in &d.args {
                    if !valid_server_name(&a.value.replace(['*', '?'], "x")) {
                        self.error(
                            &a.loc,
                            format!(
                                "ServerAlias {:?} is not a valid host name or pattern",
                                a.value
                            ),
                        );
                    }
                    push_small(&mut host.server_alias, a.value.to_ascii_lowercase());
                }
            }
            "serveradmin" => host.server_admin = self.one(d).map(|a| a.value.clone()),
            "documentroot" => {
                if let Some(a) = self.one(d) {
                    let p = self.rooted(&a.value);
                    let kind = self.file_kind(&p);
                    if kind != FileKind::Dir {
                        let what = if kind == FileKind::File {
                            "is not a directory"
                        } else {
                            "does not exist"
                        };
                        self.warning(
                            &a.loc,
                            format!("DocumentRoot {} {what} on this machine", p.display()),
                        );
                    }
                    host.document_root = p;
                }
            }
            "keepalive" => {
                if let Some(b) = self.flag(d) {
                    host.keep_alive = b;
                }
            }
            "keepalivetimeout" => {
                if let Some(t) = self.duration(d) {
                    host.keep_alive_timeout = t;
                }
            }
            "maxkeepaliverequests" => {
                if let Some(n) = self.number(d, 0, u32::MAX as u64) {
                    host.max_keep_alive_requests = n as u32;
                }
            }
            "timeout" => {
                if let Some(t) = self.duration(d) {
                    host.timeout = t;
                }
            }
            "requestreadtimeout" => self.request_read_timeout(d, host),
            "protocols" => {
                if d.args.is_empty() {
                    self.error(&d.loc, "Protocols needs at least one protocol");
                }
                let mut list = Vec::new();
                for a in &d.args {
                    let p = a.value.to_ascii_lowercase();
                    if !["http/1.1", "h2", "h2c", "acme-tls/1"].contains(&p.as_str()) {
                        self.error(
                            &a.loc,
                            format!(
                                "unknown protocol {:?}: expected http/1.1, h2 or h2c",
                                a.value
                            ),
                        );
                    }
                    list.push(p);
                }
                host.protocols = list;
            }
            "remoteipproxyprotocol" => {
                if let Some(b) = self.flag(d) {
                    host.remote_ip_proxy_protocol = b;
                }
            }
            "errorlog" => {
                if let Some(a) = self.one(d) {
                    host.error_log = self.log_target(&a.value, &a.loc);
                }
            }
            "loglevel" => {
                for a in &d.args {
                    let level = a
                        .value
                        .rsplit(':')
                        .next()
                        .unwrap_or("")
                        .to_ascii_lowercase();
                    let base = level
                        .split_once('.')
                        .map(|(b, _)| b.to_string())
                        .unwrap_or(level.clone());
                    const LEVELS: [&str; 16] = [
                        "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug",
                        "trace1", "trace2", "trace3", "trace4", "trace5", "trace6", "trace7",
                        "trace8",
                    ];
                    if !LEVELS.contains(&base.as_str()) {
                        self.error(&a.loc, format!("unknown log level {:?}", a.value));
                    } else if !a.value.contains(':') {
                        host.log_level = base;
                    }
                }
                if d.args.is_empty() {
                    self.error(&d.loc, "LogLevel needs a level");
                }
            }
            "customlog" | "transferlog" => self.custom_log(d, name, host),
            "alias" | "aliasmatch" | "scriptalias" | "scriptaliasmatch" => {
                self.alias(d, name, host)
            }
            "redirect" | "redirectmatch" | "redirectpermanent" | "redirecttemp" if !in_dir => {
                if let Some(r) = self.redirect(d, name, false) {
                    push_small(&mut host.redirects, r);
                }
            }
            "proxypass" | "proxypassmatch" if !in_dir => {
                if let Some(p) = self.proxy_pass(d, name, false) {
                    push_small(&mut host.proxy.pass, p);
                }
            }
            "proxypassreverse" => {
                let vals = d.values();
                match vals.as_slice() {
                    [path, url] | [path, url, _] => push_small(
                        &mut host.proxy.reverse,
                        ProxyPassReverse {
                            path: path.to_string(),
                            url: url.to_string(),
                        },
                    ),
                    [url] if in_dir => push_small(
                        &mut host.proxy.reverse,
                        ProxyPassReverse {
                            path: String::new(),
                            url: url.to_string(),
                        },
                    ),
                    _ => self.error(&d.loc, "ProxyPassReverse takes a path and a URL"),
                }
            }
            "proxypreservehost" => {
                if let Some(b) = self.flag(d) {
                    host.proxy.preserve_host = b;
                }
            }
            "proxytimeout" => {
                if let Some(t) = self.duration(d) {
                    host.proxy.timeout = Some(t);
                }
            }
            "proxyaddheaders" => {
                if let Some(b) = self.flag(d) {
                    host.proxy.add_headers = b;
                }
            }
            "proxyvia" => {
                if let Some(v) = self.keyword(d, &["Off", "On", "Full", "Block"]) {
                    host.proxy.via = v;
                }
            }
            "proxyrequests" => {
                if let Some(true) = self.flag(d) {
                    self.warning(&d.loc, "ProxyRequests On (a forward proxy) is not supported by httpd; only reverse proxying is, ignored");
                }
            }
            "proxyset" | "balancermember" => {
                self.error(
                    &d.loc,
                    format!("{} belongs inside <Proxy balancer://name>", d.name),
                );
            }
            "sslengine" => {
                if let Some(v) = self.keyword(d, &["On", "Off", "Optional"]) {
                    host.ssl.engine = v == "on";
                }
            }
            "sslcertificatefile"
            | "sslcertificatekeyfile"
            | "sslcertificatechainfile"
            | "sslcacertificatefile" => {
                if let Some(a) = self.one(d) {
                    let p = self.rooted(&a.value);
                    if self.file_kind(&p) != FileKind::File {
                        self.warning(
                            &a.loc,
                            format!("{} {} does not exist on this machine", d.name, p.display()),
                        );
                    }
                    match name {
                        "sslcertificatefile" => push_small(&mut host.ssl.certificate_files, p),
                        "sslcertificatekeyfile" => {
                            push_small(&mut host.ssl.certificate_key_files, p)
                        }
                        "sslcertificatechainfile" => host.ssl.certificate_chain_file = Some(p),
                        _ => host.ssl.ca_certificate_file = Some(p),
                    }
                }
            }
            "sslprotocol" => self.ssl_protocol(d, host),
            "sslverifyclient" => {
                if let Some(v) = self.keyword(d, &["none", "optional", "require", "optional_no_ca"])
                {
                    host.ssl.verify_client = v;
                }
            }
            "sslusestapling" => {
                if let Some(b) = self.flag(d) {
                    host.ssl.use_stapling = b;
                }
            }
            "sslciphersuite" | "sslhonorcipherorder" | "sslsessiontickets" => {
                if d.args.is_empty() {
                    self.error(&d.loc, format!("{} needs an argument", d.name));
                }
            }
            "hostnamelookups" => {
                if let Some(v) = self.keyword(d, &["On", "Off", "Double"]) {
                    if v != "off" {
                        self.warning(&d.loc, "HostnameLookups is not supported: httpd never does reverse DNS lookups, ignored");
                    }
                }
            }
            "usecanonicalname" => {
                self.keyword(d, &["On", "Off", "DNS"]);
            }
            "serversignature" => {
                if let Some(v) = self.keyword(d, &["On", "Off", "EMail"]) {
                    host.server_signature = match v.as_str() {
                        "on" => ServerSignature::On,
                        "email" => ServerSignature::Email,
                        _ => ServerSignature::Off,
                    };
                }
            }
            _ => return false,
        }
        true
    }

    pub(super) fn listen(&mut self, d: &Directive) {
        let vals = d.values();
        let (addr_arg, protocol) = match vals.as_slice() {
            [a] => (*a, None),
            [a, p] => (*a, Some(p.to_string())),
            _ => {
                self.error(
                    &d.loc,
                    "Listen takes [IP-address:]port or unix:/path, and an optional protocol",
                );
                return;
            }
        };
        let loc = d.args[0].loc.clone();
        let addr = match parse_listen(addr_arg) {
            Ok(a) => a,
            Err(msg) => {
                self.error(&loc, msg);
                return;
            }
        };
        if self.inactive.is_some() {
            return;
        }
        if self.listen.iter().any(|l| l.addr == addr) {
            self.warning(
                &loc,
                format!("duplicate Listen {addr}: already listening there"),
            );
        }
        self.listen.push(Listen {
            addr,
            protocol,
            loc,
        });
    }

    pub(super) fn log_format(&mut self, d: &Directive) {
        match d.values().as_slice() {
            [fmt] => {
                self.check_log_format(fmt, &d.args[0].loc);
            }
            [fmt, nick] => {
                self.check_log_format(fmt, &d.args[0].loc);
                self.log_formats.insert(nick.to_string(), fmt.to_string());
            }
            _ => self.error(
                &d.loc,
                "LogFormat takes a format string and an optional nickname",
            ),
        }
    }

    /// Checks `%` directives of a LogFormat string.
    pub(super) fn check_log_format(&mut self, fmt: &str, loc: &Loc) {
        if let Err(msg) = check_log_format(fmt) {
            self.error(loc, msg);
        }
    }

    /// Where a log goes. A piped logger keeps Apache 2.4's marker after the `|`: `$cmd`
    /// runs through the shell, `|cmd` (from `||cmd`) and plain `cmd` run the program
    /// directly; httpd-core reads the marker.
    pub(super) fn log_target(&mut self, value: &str, loc: &Loc) -> LogTarget {
        if let Some(cmd) = value.strip_prefix('|') {
            let program = cmd.strip_prefix(['$', '|']).unwrap_or(cmd).trim();
            if program.is_empty() {
                self.error(
                    loc,
                    format!("{value:?} names no command to pipe the log to"),
                );
            }
            LogTarget::Pipe(cmd.trim().to_string())
        } else if value.eq_ignore_ascii_case("syslog")
            || value.to_ascii_lowercase().starts_with("syslog:")
        {
            LogTarget::Syslog(
                value
                    .split_once(':')
                    .map(|(_, f)| f.to_string())
                    .unwrap_or_default(),
            )
        } else if value == "/dev/stderr" {
            LogTarget::Stderr
        } else {
            LogTarget::File(self.rooted(value))
        }
    }

    pub(super) fn custom_log(&mut self, d: &Directive, name: &str, host: &mut Host) {
        let vals = d.values();
        let (target, format, condition) = match (name, vals.as_slice()) {
            ("transferlog", [t]) => (*t, "common", None),
            ("customlog", [t, f]) => (*t, *f, None),
            ("customlog", [t, f, c]) => (*t, *f, Some(c.to_string())),
            _ => {
                self.error(
                    &d.loc,
                    if name == "transferlog" {
                        "TransferLog takes one argument: a file or |command"
                    } else {
                        "CustomLog takes a file or |command, a format or nickname, and an optional env= condition"
                    },
                );
                return;
            }
        };
        if let Some(c) = &condition {
            if !c.starts_with("env=") && !c.starts_with("expr=") {
                self.error(
                    &d.args[2].loc,
                    "the CustomLog condition must be env=[!]VAR or expr=...",
                );
            }
        }
        let is_format = format.contains('%');
        if is_format {
            if let Some(a) = d.args.get(1) {
                let loc = a.loc.clone();
                self.check_log_format(format, &loc);
            }
        }
        push_small(
            &mut host.custom_logs,
            CustomLog {
                target: self.log_target(target, &d.args[0].loc),
                format: if is_format {
                    format.to_string()
                } else {
                    String::new()
                },
                nickname: if is_format {
                    None
                } else {
                    Some(format.to_string())
                },
                condition,
            },
        );
        // Remember where the nickname was used, to report an undefined one after the walk.
        if !is_format && self.inactive.is_none() {
            if let Some(a) = d.args.get(1) {
                self.pending_nicknames
                    .push((format.to_string(), a.loc.clone()));
            }
        }
    }

    /// Fills each CustomLog's format from its nickname (LogFormat may come later in the
    /// file: Apache resolves nicknames after reading it all).
    pub(super) fn resolve_log_formats(&mut self, host: &mut Host) {
        for log in &mut host.custom_logs {
            if let Some(nick) = &log.nickname {
                if let Some(fmt) = self.log_formats.get(nick) {
                    log.format = fmt.clone();
                }
            }
        }
    }

    pub(super) fn alias(&mut self, d: &Directive, name: &str, host: &mut Host) {
        let [url, path] = d.args.as_slice() else {
            self.error(
                &d.loc,
                format!("{} takes a URL path and a file path", d.name),
            );
            return;
        };
        let regex = name.ends_with("match");
        if regex {
            if let Err(e) = compile_regex(&url.value) {
                self.error(
                    &url.loc,
                    format!("invalid regular expression: {}", first_line(&e.to_string())),
                );
                return;
            }
        } else if !url.value.starts_with('/') {
            self.error(&url.loc, format!("{} URL path must start with '/'", d.name));
            return;
        }
        let target = self.rooted(&path.value);
        if !regex && self.file_kind(&target) == FileKind::Missing {
            self.warning(
                &path.loc,
                format!(
                    "{} target {} does not exist on this machine",
                    d.name,
                    target.display()
                ),
            );
        }
        if !regex && url.value.ends_with('/') != path.value.ends_with('/') {
            self.warning(
                &d.loc,
                format!(
                    "{} {} {}: one ends in '/' and the other does not, so requests may map to the wrong path",
                    d.name, url.value, path.value
                ),
            );
        }
        push_small(
            &mut host.aliases,
            Alias {
                kind: if name.starts_with("script") {
                    AliasKind::Script
                } else {
                    AliasKind::Alias
                },
                url: url.value.clone(),
                regex,
                path: target,
                loc: d.loc.clone(),
            },
        );
    }

    /// `Redirect [status] URL-path URL`; inside `<Location>` the URL-path may be omitted.
    pub(super) fn redirect(
        &mut self,
        d: &Directive,
        name: &str,
        in_location: bool,
    ) -> Option<Redirect> {
        let vals = d.values();
        let mut rest: &[&str] = &vals;
        let mut status = match name {
            "redirectpermanent" => 301,
            _ => 302,
        };
        let mut explicit = false;
        if name == "redirect" || name == "redirectmatch" {
            if let Some(first) = rest.first() {
                let code = match first.to_ascii_lowercase().as_str() {
                    "permanent" => Some(301),
                    "temp" => Some(302),
                    "seeother" => Some(303),
                    "gone" => Some(410),
                    s if s.len() == 3 && s.chars().all(|c| c.is_ascii_digit()) => s.parse().ok(),
                    _ => None,
                };
                if let Some(c) = code {
                    status = c;
                    explicit = true;
                    rest = &rest[1..];
                }
            }
        }
        if explicit && !(300..=599).contains(&status) {
            self.error(
                &d.args[0].loc,
                format!("redirect status {status} must be 3xx, or 4xx/5xx with no URL"),
            );
            return None;
        }
        let needs_target = (300..=399).contains(&status);
        let (url, target) = match (rest, needs_target, in_location) {
            ([path, target], true, _) => (path.to_string(), Some(target.to_string())),
            ([target], true, true) => (String::new(), Some(target.to_string())),
            ([path], false, _) => (path.to_string(), None),
            ([], false, true) => (String::new(), None),
            _ => {
                self.error(
                    &d.loc,
                    if needs_target {
                        format!("{} takes [status] URL-path URL", d.name)
                    } else {
                        format!("{} with status {status} takes only a URL-path", d.name)
                    },
                );
                return None;
            }
        };
        let regex = name == "redirectmatch";
        if regex {
            if let Err(e) = compile_regex(&url) {
                self.error(
                    &d.loc,
                    format!("invalid regular expression: {}", first_line(&e.to_string())),
                );
                return None;
            }
        } else if !url.is_empty() && !url.starts_with('/') {
            self.error(
                &d.loc,
                format!("{} URL-path must start with '/', not {url:?}", d.name),
            );
            return None;
        }
        if let Some(t) = &target {
            if !regex && !t.contains("://") && !t.starts_with('/') {
                self.error(
                    &d.loc,
                    format!("redirect target {t:?} must be a full URL or an absolute path"),
                );
                return None;
            }
        }
        Some(Redirect {
            status,
            url,
            regex,
            target,
            loc: d.loc.clone(),
        })
    }

    pub(super) fn proxy_pass(
        &mut self,
        d: &Directive,
        name: &str,
        in_location: bool,
    ) -> Option<ProxyPass> {
        let regex = name == "proxypassmatch";
        let vals = d.values();
        let (path, target_idx) = match (vals.as_slice(), in_location) {
            ([_, ..], true) if !vals[0].starts_with('/') || vals.len() == 1 => (String::new(), 0),
            ([p, _, ..], _) => (p.to_string(), 1),
            _ => {
                self.error(&d.loc, format!("{} takes a path and a URL (or !)", d.name));
                return None;
            }
        };
        if regex && !path.is_empty() {
            if let Err(e) = compile_regex(&path) {
                self.error(
                    &d.args[0].loc,
                    format!("invalid regular expression: {}", first_line(&e.to_string())),
                );
                return None;
            }
        } else if !path.is_empty() && !path.starts_with('/') {
            self.error(
                &d.args[0].loc,
                format!("{} path must start with '/'", d.name),
            );
            return None;
        }
        let target_arg = &d.args[target_idx];
        let target = match parse_proxy_target(&target_arg.value) {
            Ok(t) => t,
            Err(msg) => {
                self.error(&target_arg.loc, msg);
                return None;
            }
        };
        // mod_proxy's documented rule: a trailing slash on one side needs one on the other,
        // or `/app/x` is forwarded as `http://backend/appx`-style paths.
        if let ProxyTarget::Url { url } | ProxyTarget::Unix { url, .. } = &target {
            let url_path = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
            let url_path = url_path.find('/').map(|i| &url_path[i..]).unwrap_or("");
            if !regex
                && !path.is_empty()
                && !url_path.is_empty()
                && path.ends_with('/') != url_path.ends_with('/')
            {
                self.warning(
                    &d.loc,
                    format!(
                        "{} {path} {}: one ends in '/' and the other does not, so paths below it are forwarded wrongly",
                        d.name, target_arg.value
                    ),
                );
            }
        }
        let params = self.params(d, target_idx + 1);
        Some(ProxyPass {
            path,
            regex,
            target,
            params,
            loc: d.loc.clone(),
        })
    }

    /// `key=value` parameters from argument `from` on.
    pub(super) fn params(&mut self, d: &Directive, from: usize) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for a in d.args.iter().skip(from) {
            match a.value.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    let key = k.to_ascii_lowercase();
                    if let Err(msg) = check_worker_param(&key, v) {
                        self.error(&a.loc, msg);
                        continue;
                    }
                    out.insert(key, v.to_string());
                }
                _ => self.error(&a.loc, format!("expected key=value, found {:?}", a.value)),
            }
        }
        out
    }

    pub(super) fn balancer_member(&mut self, d: &Directive) -> Option<BalancerMember> {
        let Some(url) = d.args.first() else {
            self.error(
                &d.loc,
                "BalancerMember takes a URL and optional key=value parameters",
            );
            return None;
        };
        match parse_proxy_target(&url.value) {
            Ok(ProxyTarget::Url { .. }) | Ok(ProxyTarget::Unix { .. }) => {}
            _ => {
                self.error(
                    &url.loc,
                    format!(
                        "BalancerMember needs an http://, ws:// or unix: URL, not {:?}",
                        url.value
                    ),
                );
                return None;
            }
        }
        let params = self.params(d, 1);
        Some(BalancerMember {
            url: url.value.clone(),
            params,
            loc: d.loc.clone(),
        })
    }

    /// `RequestReadTimeout [header=N[-M][,MinRate=R]] [body=N[-M][,MinRate=R]]`.
    pub(super) fn request_read_timeout(&mut self, d: &Directive, host: &mut Host) {
        if d.args.is_empty() {
            self.error(&d.loc, "RequestReadTimeout needs header= and/or body=");
        }
        let mut t = host.request_read_timeout;
        for a in &d.args {
            let Some((kind, spec)) = a.value.split_once('=') else {
                self.error(
                    &a.loc,
                    format!("expected header=… or body=…, found {:?}", a.value),
                );
                continue;
            };
            let mut parts = spec.split(',');
            let range = parts.next().unwrap_or("");
            let (lo, hi) = match range.split_once('-') {
                Some((l, h)) => (l.parse::<u64>().ok(), h.parse::<u64>().ok()),
                None => (range.parse::<u64>().ok(), Some(0)),
            };
            let (Some(lo), Some(hi)) = (lo, hi) else {
                self.error(
                    &a.loc,
                    format!("timeout {range:?} must be seconds or a range like 20-40"),
                );
                continue;
            };
            if hi != 0 && hi < lo {
                self.error(
                    &a.loc,
                    format!("timeout range {range}: the maximum is below the minimum"),
                );
                continue;
            }
            let mut rate = 0;
            for p in parts {
                match p.split_once('=') {
                    Some((k, v)) if k.eq_ignore_ascii_case("minrate") => match v.parse() {
                        Ok(r) => rate = r,
                        Err(_) => {
                            self.error(&a.loc, format!("MinRate {v:?} must be bytes per second"))
                        }
                    },
                    _ => self.error(&a.loc, format!("unknown RequestReadTimeout option {p:?}")),
                }
            }
            match kind.to_ascii_lowercase().as_str() {
                "header" => {
                    t.header = Duration::from_secs(lo);
                    t.header_max = Duration::from_secs(hi);
                    t.header_min_rate = rate;
                }
                "body" => {
                    t.body = Duration::from_secs(lo);
                    t.body_max = Duration::from_secs(hi);
                    t.body_min_rate = rate;
                }
                "handshake" => {}
                _ => self.error(
                    &a.loc,
                    format!("expected header=, body= or handshake=, found {kind:?}"),
                ),
            }
        }
        host.request_read_timeout = t;
    }

    /// `SSLProtocol [+-]protocol ...` resolved to the enabled set.
    pub(super) fn ssl_protocol(&mut self, d: &Directive, host: &mut Host) {
        const ALL: [&str; 2] = ["TLSv1.2", "TLSv1.3"];
        const OLD: [&str; 4] = ["SSLv3", "TLSv1", "TLSv1.1", "SSLv2"];
        let mut set: Vec<String> = Vec::new();
        for (i, a) in d.args.iter().enumerate() {
            let (op, p) = match a.value.chars().next() {
                Some('+') => ('+', &a.value[1..]),
                Some('-') => ('-', &a.value[1..]),
                _ => ('=', a.value.as_str()),
            };
            if op == '=' && i == 0 {
                set.clear();
            }
            let names: Vec<&str> = if p.eq_ignore_ascii_case("all") {
                ALL.to_vec()
            } else if let Some(n) = ALL.iter().find(|n| n.eq_ignore_ascii_case(p)) {
                vec![*n]
            } else if OLD.iter().any(|n| n.eq_ignore_ascii_case(p)) {
                if op != '-' {
                    self.warning(&a.loc, format!("{p} is obsolete and insecure; httpd-tls supports only TLSv1.2 and TLSv1.3"));
                }
                vec![]
            } else {
                self.error(
                    &a.loc,
                    format!("unknown protocol {p:?}: expected all, TLSv1.2 or TLSv1.3"),
                );
                vec![]
            };
            for n in names {
                if op == '-' {
                    set.retain(|s| s != n);
                } else if !set.iter().any(|s| s == n) {
                    set.push(n.to_string());
                }
            }
        }
        if set.is_empty() && !d.args.is_empty() {
            self.error(&d.loc, "SSLProtocol leaves no protocol enabled");
        }
        host.ssl.protocols = set;
    }

    pub(super) fn vhost_addrs(&mut self, d: &Directive) -> Vec<VhostAddr> {
        if d.args.is_empty() {
            self.error(
                &d.loc,
                "<VirtualHost> needs at least one address (*:80, IP:port)",
            );
        }
        let mut out = Vec::new();
        for a in &d.args {
            match parse_vhost_addr(&a.value) {
                Ok(v) => out.push(v),
                Err(msg) => self.error(&a.loc, msg),
            }
        }
        out
    }
}
