//! Validation: the resolved tree becomes a typed [`Config`], and every problem a
//! [`Diagnostic`].
//!
//! For each directive: is the name known (else an error with a suggestion)? Is it allowed
//! where it stands (its Apache contexts)? If httpd implements it, are its arguments right
//! in number, type and value? A known directive httpd does not implement is a warning,
//! "not supported, ignored". Bodies of false `<IfModule>`/`<IfDefine>` sections are checked
//! the same way but every finding there is only a warning: Apache skips them, so typos
//! would otherwise hide there until the day the module is enabled.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::diagnostic::{Diagnostic, Loc, Severity};
use crate::directives::{self, Info};
use crate::model::*;
use crate::tree::{Arg, Directive};

/// Where a directive stands, for context checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Server,
    VirtualHost,
    /// Inside a per-directory section of this kind.
    Dir(SectionKind),
}

pub(crate) struct Validator<'a> {
    pub diagnostics: &'a mut Vec<Diagnostic>,
    /// Set while checking the body of a false conditional: findings become warnings.
    inactive: Option<String>,
    /// LogFormat nicknames defined anywhere (resolved after the walk, as Apache does).
    log_formats: BTreeMap<String, String>,
    server: ServerSettings,
    listen: Vec<Listen>,
    balancers: BTreeMap<String, Balancer>,
    server_root: PathBuf,
    /// CustomLog nicknames and where they were used, checked once all LogFormats are known.
    pending_nicknames: Vec<(String, Loc)>,
}

impl<'a> Validator<'a> {
    pub fn new(diagnostics: &'a mut Vec<Diagnostic>, server_root: PathBuf) -> Self {
        Validator {
            diagnostics,
            inactive: None,
            log_formats: default_log_formats(),
            server: ServerSettings::default(),
            listen: Vec::new(),
            balancers: BTreeMap::new(),
            server_root,
            pending_nicknames: Vec::new(),
        }
    }

    fn report(&mut self, mut d: Diagnostic) {
        if let Some(why) = &self.inactive {
            d.severity = Severity::Warning;
            d.message = format!("{} (inside {why}, which is off)", d.message);
        }
        self.diagnostics.push(d);
    }

    fn error(&mut self, loc: &Loc, message: impl Into<String>) {
        self.report(Diagnostic::error(loc, message));
    }

    fn warning(&mut self, loc: &Loc, message: impl Into<String>) {
        self.report(Diagnostic::warning(loc, message));
    }

    /// Builds the whole configuration.
    pub fn build(mut self, tree: &[Directive]) -> Config {
        let mut main = Host::default();
        let mut vhost_nodes = Vec::new();
        for d in tree {
            if d.is("VirtualHost") && !d.inactive && self.known(d, Scope::Server).is_some() {
                vhost_nodes.push(d);
                continue;
            }
            self.directive(d, Scope::Server, &mut main, None);
        }
        // Every virtual host starts from the main server's settings (Apache's merge), minus
        // what is per-host by nature.
        let mut base = main.clone();
        base.server_name = None;
        base.server_alias.clear();
        let mut vhosts = Vec::new();
        for d in vhost_nodes {
            let addrs = self.vhost_addrs(d);
            let mut host = base.clone();
            // Logs and sections are inherited only if the vhost defines none of its own.
            let inherited_logs = std::mem::take(&mut host.custom_logs);
            for child in d.children.as_deref().unwrap_or_default() {
                self.directive(child, Scope::VirtualHost, &mut host, None);
            }
            if host.custom_logs.is_empty() {
                host.custom_logs = inherited_logs;
            }
            vhosts.push(VirtualHost {
                addrs,
                host,
                loc: d.loc.clone(),
            });
        }
        for (nick, loc) in std::mem::take(&mut self.pending_nicknames) {
            if !self.log_formats.contains_key(&nick) {
                let suggestion = self
                    .log_formats
                    .keys()
                    .filter(|k| strsim::jaro_winkler(k, &nick) > 0.8)
                    .max_by(|a, b| {
                        strsim::jaro_winkler(a, &nick).total_cmp(&strsim::jaro_winkler(b, &nick))
                    })
                    .cloned();
                self.report(
                    Diagnostic::error(
                        &loc,
                        format!("CustomLog uses the LogFormat nickname `{nick}`, which no LogFormat defines"),
                    )
                    .with_suggestion(suggestion),
                );
            }
        }
        self.resolve_log_formats(&mut main);
        for v in &mut vhosts {
            self.resolve_log_formats(&mut v.host);
        }
        Config {
            server_root: self.server_root,
            listen: self.listen,
            server: self.server,
            main,
            vhosts,
            log_formats: self.log_formats,
            balancers: self.balancers,
        }
    }

    /// Checks the name and context; returns the table entry for a known name.
    fn known(&mut self, d: &Directive, scope: Scope) -> Option<&'static Info> {
        let Some(info) = directives::lookup(&d.name) else {
            let shown = if d.is_section() {
                format!("<{}>", d.name)
            } else {
                d.name.clone()
            };
            let what = if d.is_section() {
                "section"
            } else {
                "directive"
            };
            let suggestion = directives::suggest(&d.name).map(|s| s.to_string());
            self.report(
                Diagnostic::error(&d.loc, format!("unknown {what} `{shown}`"))
                    .with_suggestion(suggestion),
            );
            return None;
        };
        if info.section != d.is_section() {
            if info.section {
                self.error(
                    &d.loc,
                    format!(
                        "{} is a section: write it as <{}> … </{}>",
                        info.name, info.name, info.name
                    ),
                );
            } else {
                self.error(
                    &d.loc,
                    format!("{} is a directive, not a section", info.name),
                );
            }
            return None;
        }
        let c = info.contexts;
        let allowed = match scope {
            // Apache allows per-directory directives of most modules at the top level too
            // (their override class is in the server's default set), but not those of
            // authorization; the quick reference's "virtual host" context implies it.
            Scope::Server => c.server || (info.implemented && c.virtualhost),
            Scope::VirtualHost => c.virtualhost,
            Scope::Dir(_) => c.directory,
        };
        let allowed = allowed
            || (!info.implemented && scope == Scope::Server && c.directory && !is_authz(info));
        if !allowed {
            let here = match scope {
                Scope::Server => "at the top level (server config)".to_string(),
                Scope::VirtualHost => "inside <VirtualHost>".to_string(),
                Scope::Dir(k) => format!("inside <{}>", section_name(k)),
            };
            let msg = format!(
                "{} is not allowed {here}; it belongs in: {}",
                info.name,
                c.describe()
            );
            if info.implemented {
                self.error(&d.loc, msg);
            } else {
                self.warning(&d.loc, msg);
            }
            return None;
        }
        Some(info)
    }

    /// Validates and applies one directive (or section) at `scope` to `host`; `dir` is the
    /// per-directory target when inside a section.
    fn directive(
        &mut self,
        d: &Directive,
        scope: Scope,
        host: &mut Host,
        dir: Option<&mut PerDir>,
    ) {
        if d.inactive && d.is_section() && is_conditional(&d.name) {
            // A false <IfModule>/<IfDefine>: lint its body, apply nothing.
            let saved = self.inactive.clone();
            if self.inactive.is_none() {
                let args: Vec<&str> = d.values();
                self.inactive = Some(format!("<{} {}>", d.name, args.join(" ")));
            }
            let mut scratch_host = host.clone();
            let mut scratch_dir = PerDir::default();
            for child in d.children.as_deref().unwrap_or_default() {
                let target = if matches!(scope, Scope::Dir(_)) {
                    Some(&mut scratch_dir)
                } else {
                    None
                };
                self.directive(child, scope, &mut scratch_host, target);
            }
            self.inactive = saved;
            return;
        }
        let Some(info) = self.known(d, scope) else {
            return;
        };
        if !info.implemented {
            self.warning(
                &d.arg_loc(usize::MAX).clone(),
                format!(
                    "{} ({}) is not supported by httpd, ignored",
                    info.name, info.module
                ),
            );
            return;
        }
        let name = info.name.to_ascii_lowercase();
        if d.is_section() {
            self.section(d, &name, scope, host, dir);
            return;
        }
        if self.host_directive(d, &name, scope, host) {
            return;
        }
        let target = match dir {
            Some(p) => p,
            None => &mut host.dir,
        };
        self.dir_directive(d, &name, scope, target);
    }

    /// A section httpd implements.
    fn section(
        &mut self,
        d: &Directive,
        name: &str,
        scope: Scope,
        host: &mut Host,
        dir: Option<&mut PerDir>,
    ) {
        let children = d.children.as_deref().unwrap_or_default();
        match name {
            "virtualhost" => {
                // Reached only when nested (top-level ones are taken in `build`); `known`
                // has already reported the context.
            }
            "requireall" | "requireany" | "requirenone" => {
                let Some(target) = dir else {
                    return;
                };
                if let Some(arg) = d.args.first() {
                    self.error(&arg.loc, format!("<{}> takes no arguments", d.name));
                }
                let mut inner = PerDir::default();
                for child in children {
                    self.directive(child, scope, host, Some(&mut inner));
                }
                let kids = match inner.require {
                    Some(Require::AnyOf { children }) => children,
                    Some(r) => vec![r],
                    None => {
                        self.error(&d.loc, format!("<{}> contains no Require", d.name));
                        return;
                    }
                };
                let expr = match name {
                    "requireall" => Require::AllOf { children: kids },
                    "requireany" => Require::AnyOf { children: kids },
                    _ => Require::NoneOf { children: kids },
                };
                add_require(target, expr);
            }
            _ => {
                let (kind, regex_form) = match name {
                    "directory" => (SectionKind::Directory, false),
                    "directorymatch" => (SectionKind::Directory, true),
                    "location" => (SectionKind::Location, false),
                    "locationmatch" => (SectionKind::Location, true),
                    "files" => (SectionKind::Files, false),
                    "filesmatch" => (SectionKind::Files, true),
                    "proxy" => (SectionKind::Proxy, false),
                    "proxymatch" => (SectionKind::Proxy, true),
                    _ => return,
                };
                let vals = d.values();
                let (pattern, regex) = match (vals.as_slice(), regex_form) {
                    ([p], _) => (p.to_string(), regex_form),
                    (["~", p], false) => (p.to_string(), true),
                    _ => {
                        self.error(
                            &d.loc,
                            format!("<{}> takes one argument: a path or pattern", d.name),
                        );
                        return;
                    }
                };
                if regex {
                    if let Err(e) = compile_regex(&pattern) {
                        self.error(
                            d.arg_loc(vals.len() - 1),
                            format!("invalid regular expression: {}", first_line(&e.to_string())),
                        );
                    }
                }
                // Apache's nesting rules: only <Files> may sit inside <Directory>.
                if let Scope::Dir(outer) = scope {
                    if !(kind == SectionKind::Files && outer == SectionKind::Directory) {
                        self.error(
                            &d.loc,
                            format!("<{}> cannot occur within <{}>", d.name, section_name(outer)),
                        );
                        return;
                    }
                }
                if kind == SectionKind::Directory && !regex && !pattern.starts_with('/') {
                    self.warning(
                        &d.arg_loc(0).clone(),
                        format!(
                            "<Directory {pattern}> is not an absolute path, so it never matches"
                        ),
                    );
                }
                let mut section = Section {
                    kind,
                    pattern: pattern.clone(),
                    regex,
                    dir: PerDir::default(),
                    nested: Vec::new(),
                    loc: d.loc.clone(),
                };
                let is_balancer = kind == SectionKind::Proxy && pattern.starts_with("balancer://");
                for child in children {
                    if child.is("BalancerMember") && !child.inactive {
                        if !is_balancer {
                            self.error(
                                &child.loc,
                                "BalancerMember belongs inside <Proxy balancer://name>",
                            );
                            continue;
                        }
                        if let Some(m) = self.balancer_member(child) {
                            self.balancers
                                .entry(pattern.clone())
                                .or_default()
                                .members
                                .push(m);
                        }
                        continue;
                    }
                    if child.is("ProxySet") && !child.inactive && is_balancer {
                        let params = self.params(child, 0);
                        self.balancers
                            .entry(pattern.clone())
                            .or_default()
                            .params
                            .extend(params);
                        continue;
                    }
                    if child.is_section()
                        && (child.is("Files") || child.is("FilesMatch"))
                        && !child.inactive
                    {
                        let before = host.sections.len();
                        let mut inner_dir = PerDir::default();
                        self.directive(child, Scope::Dir(kind), host, Some(&mut inner_dir));
                        // The nested <Files> was pushed onto the host; move it under us.
                        if host.sections.len() > before {
                            let nested: Vec<Section> = host.sections.drain(before..).collect();
                            section.nested.extend(nested);
                        }
                        continue;
                    }
                    let mut inner = std::mem::take(&mut section.dir);
                    self.directive(child, Scope::Dir(kind), host, Some(&mut inner));
                    section.dir = inner;
                }
                if is_balancer {
                    self.balancers.entry(pattern.clone()).or_default();
                }
                if self.inactive.is_none() {
                    host.sections.push(section);
                }
            }
        }
    }

    /// Directives that set host-level things. Returns false if `name` is not one.
    fn host_directive(&mut self, d: &Directive, name: &str, scope: Scope, host: &mut Host) -> bool {
        let in_dir = matches!(scope, Scope::Dir(_));
        match name {
            "listen" => self.listen(d),
            "serverroot" => {
                if let Some(a) = self.one(d) {
                    if !Path::new(&a.value).is_dir() {
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
                    self.server.pid_file = Some(self.rooted(&a.value));
                }
            }
            "maxrequestworkers" => {
                if let Some(n) = self.number(d, 1, 1_000_000) {
                    self.server.max_request_workers = n as u32;
                }
            }
            "gracefulshutdowntimeout" => {
                if let Some(n) = self.number(d, 0, 86_400) {
                    self.server.graceful_shutdown_timeout = Duration::from_secs(n);
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
                    self.server.server_tokens = match v.as_str() {
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
                    self.server.trace_enable = v != "off";
                }
            }
            "user" => self.server.user = self.one(d).map(|a| a.value.clone()),
            "group" => self.server.group = self.one(d).map(|a| a.value.clone()),
            "limitrequestfields" => {
                if let Some(n) = self.number(d, 0, 32_767) {
                    self.server.limit_request_fields = n as u32;
                }
            }
            "limitrequestfieldsize" => {
                if let Some(n) = self.number(d, 1, 65_536) {
                    self.server.limit_request_field_size = n as u32;
                }
            }
            "limitrequestline" => {
                if let Some(n) = self.number(d, 1, 65_536) {
                    self.server.limit_request_line = n as u32;
                }
            }
            "extendedstatus" => {
                if let Some(b) = self.flag(d) {
                    self.server.extended_status = b;
                }
            }
            "typesconfig" => {
                if let Some(a) = self.one(d) {
                    let p = self.rooted(&a.value);
                    if !p.exists() {
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
                    host.server_alias.push(a.value.to_ascii_lowercase());
                }
            }
            "serveradmin" => host.server_admin = self.one(d).map(|a| a.value.clone()),
            "documentroot" => {
                if let Some(a) = self.one(d) {
                    let p = self.rooted(&a.value);
                    if !p.is_dir() {
                        let what = if p.exists() {
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
                    host.error_log = self.log_target(&a.value);
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
                if let Some(r) = self.redirect(d, name, None) {
                    host.redirects.push(r);
                }
            }
            "proxypass" | "proxypassmatch" if !in_dir => {
                if let Some(p) = self.proxy_pass(d, name, None) {
                    host.proxy.pass.push(p);
                }
            }
            "proxypassreverse" => {
                let vals = d.values();
                match vals.as_slice() {
                    [path, url] | [path, url, _] => host.proxy.reverse.push(ProxyPassReverse {
                        path: path.to_string(),
                        url: url.to_string(),
                    }),
                    [url] if in_dir => host.proxy.reverse.push(ProxyPassReverse {
                        path: String::new(),
                        url: url.to_string(),
                    }),
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
                    if !p.is_file() {
                        self.warning(
                            &a.loc,
                            format!("{} {} does not exist on this machine", d.name, p.display()),
                        );
                    }
                    match name {
                        "sslcertificatefile" => host.ssl.certificate_files.push(p),
                        "sslcertificatekeyfile" => host.ssl.certificate_key_files.push(p),
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

    /// Per-directory directives (also valid at server and vhost level).
    fn dir_directive(&mut self, d: &Directive, name: &str, scope: Scope, dir: &mut PerDir) {
        match name {
            "options" => dir.options = self.options(d),
            "allowoverride" => {
                let vals = d.values();
                if vals.is_empty() {
                    self.error(&d.loc, "AllowOverride needs None, All or directive classes");
                } else if !(vals.len() == 1 && vals[0].eq_ignore_ascii_case("none")) {
                    self.warning(&d.loc, "httpd does not read .htaccess files; AllowOverride other than None has no effect");
                }
            }
            "directoryindex" => {
                if d.args.is_empty() {
                    self.error(&d.loc, "DirectoryIndex needs at least one file name");
                }
                let vals = d.values();
                if vals.len() == 1 && vals[0].eq_ignore_ascii_case("disabled") {
                    dir.directory_index = Some(Vec::new());
                } else {
                    dir.directory_index = Some(vals.iter().map(|s| s.to_string()).collect());
                }
            }
            "directoryslash" => {
                if let Some(v) = self.keyword(d, &["On", "Off", "NotFound"]) {
                    dir.directory_slash = Some(v == "on");
                }
            }
            "fallbackresource" => dir.fallback_resource = self.one(d).map(|a| a.value.clone()),
            "addtype" => {
                let vals = d.values();
                if vals.len() < 2 {
                    self.error(
                        &d.loc,
                        "AddType takes a MIME type and one or more extensions",
                    );
                    return;
                }
                if !vals[0].contains('/') {
                    self.error(
                        &d.args[0].loc,
                        format!("{:?} is not a MIME type (type/subtype)", vals[0]),
                    );
                }
                for ext in &vals[1..] {
                    dir.add_type.push((normalize_ext(ext), vals[0].to_string()));
                }
            }
            "removetype" => {
                for a in &d.args {
                    let ext = normalize_ext(&a.value);
                    dir.add_type.retain(|(e, _)| *e != ext);
                }
            }
            "addhandler" => {
                let vals = d.values();
                if vals.len() < 2 {
                    self.error(
                        &d.loc,
                        "AddHandler takes a handler name and one or more extensions",
                    );
                    return;
                }
                for ext in &vals[1..] {
                    dir.add_handler
                        .push((normalize_ext(ext), vals[0].to_ascii_lowercase()));
                }
            }
            "removehandler" => {
                for a in &d.args {
                    let ext = normalize_ext(&a.value);
                    dir.add_handler.retain(|(e, _)| *e != ext);
                }
            }
            "addcharset" | "addencoding" => {
                if d.args.len() < 2 {
                    self.error(
                        &d.loc,
                        format!("{} takes a value and one or more extensions", d.name),
                    );
                }
            }
            "adddefaultcharset" => {
                if let Some(a) = self.one(d) {
                    dir.add_default_charset = Some(match a.value.to_ascii_lowercase().as_str() {
                        "off" => None,
                        "on" => Some("iso-8859-1".into()),
                        _ => Some(a.value.clone()),
                    });
                }
            }
            "sethandler" => {
                if let Some(a) = self.one(d) {
                    let h = a.value.to_ascii_lowercase();
                    const KNOWN: [&str; 5] = [
                        "server-status",
                        "cgi-script",
                        "none",
                        "default-handler",
                        "proxy:",
                    ];
                    if !KNOWN
                        .iter()
                        .any(|k| h == *k || (k.ends_with(':') && h.starts_with(k)))
                    {
                        self.warning(&a.loc, format!("handler {:?} is not one httpd provides (server-status, cgi-script, none)", a.value));
                    }
                    dir.set_handler = Some(h);
                }
            }
            "errordocument" => self.error_document(d, dir),
            "header" | "requestheader" => {
                if let Some(rule) = self.header(d, name == "requestheader") {
                    if name == "header" {
                        dir.headers.push(rule);
                    } else {
                        dir.request_headers.push(rule);
                    }
                }
            }
            "require" => {
                if let Some(r) = self.require(d) {
                    add_require(dir, r);
                }
            }
            "authtype" => {
                if let Some(v) = self.keyword(d, &["Basic", "None", "Digest", "Form"]) {
                    if v == "digest" || v == "form" {
                        self.warning(
                            &d.loc,
                            format!(
                                "AuthType {} is not supported by httpd (only Basic)",
                                d.args[0].value
                            ),
                        );
                    }
                    dir.auth_type = Some(v);
                }
            }
            "authname" => dir.auth_name = self.one(d).map(|a| a.value.clone()),
            "authuserfile" => {
                if let Some(a) = self.one(d) {
                    let p = self.rooted(&a.value);
                    if !p.is_file() {
                        self.warning(
                            &a.loc,
                            format!(
                                "AuthUserFile {} does not exist on this machine",
                                p.display()
                            ),
                        );
                    }
                    dir.auth_user_file = Some(p);
                }
            }
            "authbasicprovider" => {
                for a in &d.args {
                    if !a.value.eq_ignore_ascii_case("file") {
                        self.warning(
                            &a.loc,
                            format!("auth provider {:?} is not supported (only file)", a.value),
                        );
                    }
                }
            }
            "limitrequestbody" => {
                if let Some(n) = self.number(d, 0, i64::MAX as u64) {
                    dir.limit_request_body = Some(n);
                }
            }
            "indexoptions" => dir
                .index_options
                .extend(d.values().iter().map(|s| s.to_string())),
            "fileetag" => dir.file_etag = Some(d.values().iter().map(|s| s.to_string()).collect()),
            "substitute" => {
                if let Some(a) = self.one(d) {
                    if !valid_substitute(&a.value) {
                        self.error(
                            &a.loc,
                            "Substitute expects s/pattern/replacement/[flags] (any delimiter)",
                        );
                    }
                    dir.substitute.push(a.value.clone());
                }
            }
            "redirect" | "redirectmatch" | "redirectpermanent" | "redirecttemp" => {
                let location = match scope {
                    Scope::Dir(SectionKind::Location) => Some(()),
                    _ => None,
                };
                if let Some(r) = self.redirect(d, name, location) {
                    dir.redirects.push(r);
                }
            }
            "proxypass" | "proxypassmatch" => {
                if scope != Scope::Dir(SectionKind::Location) {
                    self.error(
                        &d.loc,
                        format!("{} inside a section is only allowed in <Location>", d.name),
                    );
                    return;
                }
                dir.proxy_pass = self.proxy_pass(d, name, Some(()));
            }
            _ => {
                // Implemented but handled elsewhere (or at host level only).
                self.error(&d.loc, format!("{} is not allowed here", d.name));
            }
        }
    }
}

/// Argument checks and value parsers.
impl Validator<'_> {
    /// Exactly one argument.
    fn one<'d>(&mut self, d: &'d Directive) -> Option<&'d Arg> {
        match d.args.as_slice() {
            [a] => Some(a),
            [] => {
                self.error(&d.loc, format!("{} takes one argument, none given", d.name));
                None
            }
            [_, extra, ..] => {
                self.error(
                    &extra.loc,
                    format!("{} takes one argument, {} given", d.name, d.args.len()),
                );
                None
            }
        }
    }

    /// `On` or `Off`.
    fn flag(&mut self, d: &Directive) -> Option<bool> {
        let a = self.one(d)?;
        match a.value.to_ascii_lowercase().as_str() {
            "on" => Some(true),
            "off" => Some(false),
            _ => {
                self.error(
                    &a.loc,
                    format!("{} must be On or Off, not {:?}", d.name, a.value),
                );
                None
            }
        }
    }

    /// One of `choices` (case-insensitive); returns it lowercased.
    fn keyword(&mut self, d: &Directive, choices: &[&str]) -> Option<String> {
        let a = self.one(d)?;
        let v = a.value.to_ascii_lowercase();
        if choices.iter().any(|c| c.eq_ignore_ascii_case(&v)) {
            Some(v)
        } else {
            self.error(
                &a.loc,
                format!(
                    "{} must be one of {}, not {:?}",
                    d.name,
                    choices.join(", "),
                    a.value
                ),
            );
            None
        }
    }

    /// A whole number in `min..=max`.
    fn number(&mut self, d: &Directive, min: u64, max: u64) -> Option<u64> {
        let a = self.one(d)?;
        match a.value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            Ok(n) => {
                self.error(
                    &a.loc,
                    format!("{} must be between {min} and {max}, not {n}", d.name),
                );
                None
            }
            Err(_) => {
                self.error(
                    &a.loc,
                    format!("{} must be a whole number, not {:?}", d.name, a.value),
                );
                None
            }
        }
    }

    /// Seconds (Apache's unit), or with an `ms` suffix as Apache 2.4 also accepts.
    fn duration(&mut self, d: &Directive) -> Option<Duration> {
        let a = self.one(d)?;
        match parse_duration(&a.value) {
            Some(t) => Some(t),
            None => {
                self.error(
                    &a.loc,
                    format!(
                        "{} must be a number of seconds (or Nms), not {:?}",
                        d.name, a.value
                    ),
                );
                None
            }
        }
    }

    /// A path, relative ones resolved against ServerRoot.
    fn rooted(&self, p: &str) -> PathBuf {
        let path = Path::new(p);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.server_root.join(path)
        }
    }

    fn listen(&mut self, d: &Directive) {
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

    fn log_format(&mut self, d: &Directive) {
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
    fn check_log_format(&mut self, fmt: &str, loc: &Loc) {
        if let Err(msg) = check_log_format(fmt) {
            self.error(loc, msg);
        }
    }

    fn log_target(&self, value: &str) -> LogTarget {
        if let Some(cmd) = value.strip_prefix('|') {
            LogTarget::Pipe(cmd.strip_prefix('$').unwrap_or(cmd).trim().to_string())
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

    fn custom_log(&mut self, d: &Directive, name: &str, host: &mut Host) {
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
        host.custom_logs.push(CustomLog {
            target: self.log_target(target),
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
        });
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
    fn resolve_log_formats(&mut self, host: &mut Host) {
        for log in &mut host.custom_logs {
            if let Some(nick) = &log.nickname {
                if let Some(fmt) = self.log_formats.get(nick) {
                    log.format = fmt.clone();
                }
            }
        }
    }

    fn alias(&mut self, d: &Directive, name: &str, host: &mut Host) {
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
        if !regex && !target.exists() {
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
        host.aliases.push(Alias {
            kind: if name.starts_with("script") {
                AliasKind::Script
            } else {
                AliasKind::Alias
            },
            url: url.value.clone(),
            regex,
            path: target,
            loc: d.loc.clone(),
        });
    }

    /// `Redirect [status] URL-path URL`; inside `<Location>` the URL-path may be omitted.
    fn redirect(&mut self, d: &Directive, name: &str, in_location: Option<()>) -> Option<Redirect> {
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
            ([target], true, Some(())) => (String::new(), Some(target.to_string())),
            ([path], false, _) => (path.to_string(), None),
            ([], false, Some(())) => (String::new(), None),
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

    fn proxy_pass(
        &mut self,
        d: &Directive,
        name: &str,
        in_location: Option<()>,
    ) -> Option<ProxyPass> {
        let regex = name == "proxypassmatch";
        let vals = d.values();
        let (path, target_idx) = match (vals.as_slice(), in_location) {
            ([_, ..], Some(())) if !vals[0].starts_with('/') || vals.len() == 1 => {
                (String::new(), 0)
            }
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
    fn params(&mut self, d: &Directive, from: usize) -> BTreeMap<String, String> {
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

    fn balancer_member(&mut self, d: &Directive) -> Option<BalancerMember> {
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
    fn request_read_timeout(&mut self, d: &Directive, host: &mut Host) {
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
    fn ssl_protocol(&mut self, d: &Directive, host: &mut Host) {
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

    fn options(&mut self, d: &Directive) -> Option<OptionsDirective> {
        let mut o = OptionsDirective::default();
        let mut absolute = OptionFlags::default();
        let mut has_absolute = false;
        let mut has_relative = false;
        for a in &d.args {
            let (sign, word) = match a.value.chars().next() {
                Some('+') => (Some(true), &a.value[1..]),
                Some('-') => (Some(false), &a.value[1..]),
                _ => (None, a.value.as_str()),
            };
            let mut flags = OptionFlags::default();
            match word.to_ascii_lowercase().as_str() {
                "none" if sign.is_none() => {}
                "all" => {
                    flags = OptionFlags {
                        indexes: true,
                        follow_symlinks: true,
                        symlinks_if_owner_match: true,
                        exec_cgi: true,
                        includes: true,
                        multiviews: false,
                    }
                }
                "indexes" => flags.indexes = true,
                "followsymlinks" => flags.follow_symlinks = true,
                "symlinksifownermatch" => flags.symlinks_if_owner_match = true,
                "execcgi" => flags.exec_cgi = true,
                "includes" | "includesnoexec" => flags.includes = true,
                "multiviews" => flags.multiviews = true,
                _ => {
                    self.error(&a.loc, format!("unknown option {:?} (Indexes, FollowSymLinks, SymLinksIfOwnerMatch, ExecCGI, Includes, MultiViews, All, None)", a.value));
                    return None;
                }
            }
            match sign {
                Some(true) => {
                    has_relative = true;
                    o.add = or(o.add, flags);
                }
                Some(false) => {
                    has_relative = true;
                    o.remove = or(o.remove, flags);
                }
                None => {
                    has_absolute = true;
                    absolute = or(absolute, flags);
                }
            }
        }
        if d.args.is_empty() {
            self.error(&d.loc, "Options needs at least one option (or None)");
            return None;
        }
        if has_absolute && has_relative {
            // Apache 2.4 refuses this mix outright.
            self.error(&d.loc, "Options: mixing options with and without +/- is not allowed (Apache 2.4 refuses it too)");
            return None;
        }
        if has_absolute {
            o.set = Some(absolute);
        }
        Some(o)
    }

    fn error_document(&mut self, d: &Directive, dir: &mut PerDir) {
        let [code, doc] = d.args.as_slice() else {
            self.error(
                &d.loc,
                "ErrorDocument takes a status code and a document (URL path, URL or \"text\")",
            );
            return;
        };
        let status = match code.value.parse::<u16>() {
            Ok(s) if (400..=599).contains(&s) => s,
            _ => {
                self.error(
                    &code.loc,
                    format!("ErrorDocument status must be 400-599, not {:?}", code.value),
                );
                return;
            }
        };
        let target = if doc.value.eq_ignore_ascii_case("default") {
            ErrorDocument::Default
        } else if doc.value.starts_with('/') {
            ErrorDocument::Local(doc.value.clone())
        } else if doc.value.contains("://") {
            ErrorDocument::Remote(doc.value.clone())
        } else {
            ErrorDocument::Text(doc.value.clone())
        };
        dir.error_documents.insert(status, target);
    }

    fn header(&mut self, d: &Directive, request: bool) -> Option<HeaderRule> {
        let vals = d.values();
        let mut i = 0;
        let mut always = false;
        if !request {
            if let Some(first) = vals.first() {
                if first.eq_ignore_ascii_case("always") {
                    always = true;
                    i = 1;
                } else if first.eq_ignore_ascii_case("onsuccess") {
                    i = 1;
                }
            }
        }
        let Some(action) = vals.get(i) else {
            self.error(
                &d.loc,
                format!("{} needs an action and a header name", d.name),
            );
            return None;
        };
        let action = match action.to_ascii_lowercase().as_str() {
            "set" => HeaderAction::Set,
            "append" => HeaderAction::Append,
            "add" => HeaderAction::Add,
            "unset" => HeaderAction::Unset,
            "merge" => HeaderAction::Merge,
            "setifempty" => HeaderAction::Setifempty,
            "echo" if !request => HeaderAction::Echo,
            "edit" | "edit*" => HeaderAction::Edit,
            _ => {
                self.error(&d.args[i].loc, format!("unknown {} action {:?} (set, append, add, unset, merge, setifempty, edit{})", d.name, action, if request { "" } else { ", echo" }));
                return None;
            }
        };
        let Some(name) = vals.get(i + 1) else {
            self.error(
                &d.loc,
                format!("{} {} needs a header name", d.name, vals[i]),
            );
            return None;
        };
        let name = match name.strip_suffix(':') {
            // mod_headers drops a trailing colon (h5bp writes `Timing-Allow-Origin:`).
            Some(n) if valid_token(n) => n,
            _ => name,
        };
        if action != HeaderAction::Echo && !valid_token(name) {
            self.error(
                &d.args[i + 1].loc,
                format!("{name:?} is not a valid header name"),
            );
            return None;
        }
        let rest = &vals[i + 2..];
        let takes = match action {
            HeaderAction::Unset | HeaderAction::Echo => 0,
            HeaderAction::Edit => 2,
            _ => 1,
        };
        if rest.len() < takes {
            self.error(
                &d.loc,
                format!("{} {} {} needs a value", d.name, vals[i], name),
            );
            return None;
        }
        let condition = rest.get(takes).map(|s| s.to_string());
        if let Some(c) = &condition {
            let ok =
                c.starts_with("env=") || c.starts_with("expr=") || c.eq_ignore_ascii_case("early");
            if !ok || rest.len() > takes + 1 {
                self.error(&d.loc, format!("{} has too many arguments; the last may only be early, env=... or expr=...", d.name));
                return None;
            }
        }
        if action == HeaderAction::Edit {
            if let Err(e) = compile_regex(rest[0]) {
                self.error(
                    &d.loc,
                    format!("invalid regular expression: {}", first_line(&e.to_string())),
                );
                return None;
            }
        }
        // An HSTS header set only on success is missing from error responses and redirects.
        if !always
            && !request
            && name.eq_ignore_ascii_case("Strict-Transport-Security")
            && matches!(
                action,
                HeaderAction::Set | HeaderAction::Add | HeaderAction::Append | HeaderAction::Merge
            )
        {
            self.warning(&d.loc, "Strict-Transport-Security is set without `always`, so redirects and error responses will not carry it; write `Header always set ...`");
        }
        Some(HeaderRule {
            always,
            action,
            name: name.to_string(),
            value: if takes >= 1 {
                Some(rest[0].to_string())
            } else {
                None
            },
            replacement: if takes == 2 {
                Some(rest[1].to_string())
            } else {
                None
            },
            condition,
            loc: d.loc.clone(),
        })
    }

    fn require(&mut self, d: &Directive) -> Option<Require> {
        let vals = d.values();
        let (negated, vals) = match vals.split_first() {
            Some((first, rest)) if first.eq_ignore_ascii_case("not") => (true, rest),
            _ => (false, vals.as_slice()),
        };
        let Some((kind, args)) = vals.split_first() else {
            self.error(
                &d.loc,
                "Require needs a provider: all, ip, host, valid-user, user, group, method, env",
            );
            return None;
        };
        let strings = || args.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let need_args = |this: &mut Self| {
            if args.is_empty() {
                this.error(&d.loc, format!("Require {kind} needs at least one value"));
                false
            } else {
                true
            }
        };
        let r = match kind.to_ascii_lowercase().as_str() {
            "all" => match args {
                [g] if g.eq_ignore_ascii_case("granted") => Require::All { granted: true },
                [g] if g.eq_ignore_ascii_case("denied") => Require::All { granted: false },
                _ => {
                    self.error(&d.loc, "Require all takes granted or denied");
                    return None;
                }
            },
            "ip" => {
                if !need_args(self) {
                    return None;
                }
                let mut nets = Vec::new();
                for (i, a) in args.iter().enumerate() {
                    match parse_net(a) {
                        Some(n) => nets.push(n),
                        None => {
                            let at = d.args.iter().position(|x| x.value == *a).unwrap_or(i);
                            self.error(d.arg_loc(at), format!("{a:?} is not an IP address or network (10.0.0.0/8, 192.168, 2001:db8::/32)"));
                            return None;
                        }
                    }
                }
                Require::Ip { negated, nets }
            }
            "host" | "forward-dns" => {
                if !need_args(self) {
                    return None;
                }
                Require::Host {
                    negated,
                    names: strings(),
                }
            }
            "local" => Require::Ip {
                negated,
                nets: vec![
                    "127.0.0.0/8".parse().expect("net"),
                    "::1/128".parse().expect("net"),
                ],
            },
            "valid-user" => Require::ValidUser,
            "user" => {
                if !need_args(self) {
                    return None;
                }
                Require::User { names: strings() }
            }
            "group" => {
                if !need_args(self) {
                    return None;
                }
                Require::Group { names: strings() }
            }
            "method" => {
                if !need_args(self) {
                    return None;
                }
                Require::Method {
                    negated,
                    methods: args.iter().map(|s| s.to_ascii_uppercase()).collect(),
                }
            }
            "env" => {
                if !need_args(self) {
                    return None;
                }
                Require::Env {
                    negated,
                    names: strings(),
                }
            }
            "expr" | "file-owner" | "file-group" | "ldap-user" | "ldap-group" | "dbd-group" => {
                self.warning(
                    &d.loc,
                    format!("Require {kind} is not supported by httpd; this line denies"),
                );
                Require::All { granted: false }
            }
            _ => {
                self.error(&d.loc, format!("unknown Require provider {kind:?}"));
                return None;
            }
        };
        if negated
            && !matches!(
                r,
                Require::Ip { .. }
                    | Require::Host { .. }
                    | Require::Method { .. }
                    | Require::Env { .. }
            )
        {
            self.error(&d.loc, format!("Require not {kind} is not allowed (only ip, host, method and env can be negated)"));
            return None;
        }
        Some(r)
    }

    fn vhost_addrs(&mut self, d: &Directive) -> Vec<VhostAddr> {
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

fn or(a: OptionFlags, b: OptionFlags) -> OptionFlags {
    OptionFlags {
        indexes: a.indexes || b.indexes,
        follow_symlinks: a.follow_symlinks || b.follow_symlinks,
        symlinks_if_owner_match: a.symlinks_if_owner_match || b.symlinks_if_owner_match,
        exec_cgi: a.exec_cgi || b.exec_cgi,
        includes: a.includes || b.includes,
        multiviews: a.multiviews || b.multiviews,
    }
}

/// Several `Require` lines in one section mean "any of them" (Apache's implicit
/// `<RequireAny>`).
fn add_require(dir: &mut PerDir, r: Require) {
    dir.require = Some(match dir.require.take() {
        None => r,
        Some(Require::AnyOf { mut children }) => {
            children.push(r);
            Require::AnyOf { children }
        }
        Some(prev) => Require::AnyOf {
            children: vec![prev, r],
        },
    });
}

fn is_authz(info: &Info) -> bool {
    info.module.starts_with("mod_auth")
        || matches!(
            info.name,
            "Require" | "RequireAll" | "RequireAny" | "RequireNone" | "Limit" | "LimitExcept"
        )
}

fn is_conditional(name: &str) -> bool {
    [
        "IfModule",
        "IfDefine",
        "IfVersion",
        "IfFile",
        "IfDirective",
        "IfSection",
    ]
    .iter()
    .any(|n| n.eq_ignore_ascii_case(name))
}

fn section_name(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Directory => "Directory",
        SectionKind::Location => "Location",
        SectionKind::Files => "Files",
        SectionKind::Proxy => "Proxy",
    }
}

/// Compiles a configuration regex. Apache's are PCRE, with look-around and
/// backreferences (h5bp's `(^|/)\\.(?!well-known/)`), so fancy-regex, not regex.
pub fn compile_regex(re: &str) -> Result<fancy_regex::Regex, String> {
    fancy_regex::Regex::new(re).map_err(|e| e.to_string())
}

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim().to_string()
}

fn normalize_ext(ext: &str) -> String {
    ext.trim_start_matches('.').to_ascii_lowercase()
}

/// An RFC 9110 token (header names).
pub(crate) fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A host name (letters, digits, `-`, `.`), an IP, optionally with scheme and port.
fn valid_server_name(name: &str) -> bool {
    let name = strip_scheme_port(name);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    if name.parse::<IpAddr>().is_ok() {
        return true;
    }
    name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// `https://www.example.com:443` → `www.example.com` (ServerName accepts
/// `[scheme://]name[:port]`).
fn strip_scheme_port(name: &str) -> String {
    let rest = name.split_once("://").map(|(_, r)| r).unwrap_or(name);
    if let Some(v6) = rest.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("").to_string();
    }
    match rest.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host.to_string(),
        _ => rest.to_string(),
    }
    .to_ascii_lowercase()
}

fn valid_substitute(s: &str) -> bool {
    let mut chars = s.chars();
    if chars.next() != Some('s') {
        return false;
    }
    let Some(delim) = chars.next() else {
        return false;
    };
    s[1 + delim.len_utf8()..].split(delim).count() >= 3
}

/// Seconds, optionally with an `ms` suffix.
pub fn parse_duration(s: &str) -> Option<Duration> {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.parse::<u64>().ok().map(Duration::from_millis);
    }
    s.parse::<u64>().ok().map(Duration::from_secs)
}

/// `Listen` argument: `80`, `0.0.0.0:80`, `[::]:443`, `unix:/run/httpd.sock`.
pub fn parse_listen(s: &str) -> Result<ListenAddr, String> {
    if let Some(path) = s.strip_prefix("unix:") {
        if !path.starts_with('/') {
            return Err(format!(
                "Listen unix:{path}: the socket path must be absolute"
            ));
        }
        return Ok(ListenAddr::Unix(PathBuf::from(path)));
    }
    let port_of = |p: &str| -> Result<u16, String> {
        match p.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
            Ok(0) => Ok(0),
            Ok(n) => Err(format!("port {n} is out of range (1-65535)")),
            Err(_) => Err(format!("{p:?} is not a port number")),
        }
    };
    if !s.contains(':') || s.chars().all(|c| c.is_ascii_digit()) {
        let port = port_of(s)?;
        return Ok(ListenAddr::Tcp(SocketAddr::from(([0, 0, 0, 0], port))));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        // Port 0 asks the system for a free port (used by tests and httpd-dev).
        return Ok(ListenAddr::Tcp(addr));
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not [IP:]port"))?;
    let port = port_of(port)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(ListenAddr::Tcp(SocketAddr::new(ip, port))),
        Err(_) if host == "*" => Ok(ListenAddr::Tcp(SocketAddr::from(([0, 0, 0, 0], port)))),
        Err(_) => Err(format!(
            "Listen {s}: {host:?} is not an IP address (Listen takes IP addresses, not host names)"
        )),
    }
}

/// `<VirtualHost>` address: `*:80`, `_default_:443`, `10.0.0.1:80`, `[::1]:8080`, `*`.
fn parse_vhost_addr(s: &str) -> Result<VhostAddr, String> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (h, rest) = v6
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: unclosed '['"))?;
        (h, rest.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (s, None),
        }
    };
    let port = match port {
        None | Some("*") => None,
        Some(p) => match p.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Some(n as u16),
            _ => {
                return Err(format!(
                    "<VirtualHost {s}>: {p:?} is not a port (1-65535 or *)"
                ))
            }
        },
    };
    let ip = match host {
        "*" | "_default_" => None,
        h => match h.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                return Err(format!(
                    "<VirtualHost {s}>: {h:?} is not an IP address; use *:port and ServerName for name-based hosts"
                ))
            }
        },
    };
    Ok(VhostAddr { ip, port })
}

/// `Require ip` value: full or partial address, CIDR, or address/netmask.
fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    if let Ok(n) = s.parse::<ipnet::IpNet>() {
        return Some(n);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ipnet::IpNet::from(ip));
    }
    if let Some((ip, mask)) = s.split_once('/') {
        let ip: std::net::Ipv4Addr = ip.parse().ok()?;
        let mask: std::net::Ipv4Addr = mask.parse().ok()?;
        let prefix = u32::from(mask).leading_ones() as u8;
        return ipnet::Ipv4Net::new(ip, prefix).ok().map(Into::into);
    }
    // Apache's partial form: `10.1` means 10.1.0.0/16.
    let parts: Vec<&str> = s.trim_end_matches('.').split('.').collect();
    if (1..4).contains(&parts.len()) {
        let mut octets = [0u8; 4];
        for (i, p) in parts.iter().enumerate() {
            octets[i] = p.parse().ok()?;
        }
        return ipnet::Ipv4Net::new(octets.into(), (parts.len() * 8) as u8)
            .ok()
            .map(Into::into);
    }
    None
}

/// A ProxyPass / BalancerMember target.
pub fn parse_proxy_target(s: &str) -> Result<ProxyTarget, String> {
    if s == "!" {
        return Ok(ProxyTarget::Exclude);
    }
    if let Some(rest) = s.strip_prefix("unix:") {
        let Some((socket, url)) = rest.split_once('|') else {
            return Err(format!(
                "{s:?}: a unix socket target is written unix:/path.sock|http://localhost/"
            ));
        };
        if !socket.starts_with('/') {
            return Err(format!("{s:?}: the socket path must be absolute"));
        }
        check_url(url)?;
        return Ok(ProxyTarget::Unix {
            socket: PathBuf::from(socket),
            url: url.to_string(),
        });
    }
    if let Some(rest) = s.strip_prefix("balancer://") {
        let (name, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if name.is_empty() {
            return Err(format!("{s:?}: the balancer needs a name"));
        }
        return Ok(ProxyTarget::Balancer {
            name: format!("balancer://{name}"),
            path: path.to_string(),
        });
    }
    check_url(s)?;
    Ok(ProxyTarget::Url { url: s.to_string() })
}

fn check_url(s: &str) -> Result<(), String> {
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(format!("{s:?} is not a URL (http://host:port/path)"));
    };
    let scheme = scheme.to_ascii_lowercase();
    if !["http", "https", "ws", "wss", "h2c", "h2"].contains(&scheme.as_str()) {
        return Err(format!(
            "{s:?}: scheme {scheme:?} is not supported (http, https, ws, wss; fcgi/ajp are not)"
        ));
    }
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("{s:?} has no host"));
    }
    if let Some((_, port)) = authority
        .rsplit_once(':')
        .filter(|_| !authority.ends_with(']'))
    {
        match port.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => {}
            _ => return Err(format!("{s:?}: port {port:?} is not 1-65535")),
        }
    }
    Ok(())
}

/// mod_proxy worker parameters we understand, with their value checks.
fn check_worker_param(key: &str, v: &str) -> Result<(), String> {
    let seconds = |v: &str| {
        parse_duration(v)
            .map(|_| ())
            .ok_or_else(|| format!("{key}={v}: expected seconds"))
    };
    match key {
        "timeout" | "connectiontimeout" | "retry" | "ttl" | "hcinterval" | "ping" => seconds(v),
        "loadfactor" | "lbset" | "max" | "min" | "smax" | "hcpasses" | "hcfails" => v
            .parse::<u32>()
            .map(|_| ())
            .map_err(|_| format!("{key}={v}: expected a whole number")),
        "lbmethod" => match v {
            "byrequests" | "bybusyness" | "bytraffic" | "heartbeat" => Ok(()),
            _ => Err(format!("lbmethod={v}: expected byrequests or bybusyness")),
        },
        "status" => {
            if v.chars().all(|c| "+-DHIENSRCd".contains(c)) {
                Ok(())
            } else {
                Err(format!("status={v}: expected flags like +H or -D"))
            }
        }
        "hcmethod" | "hcuri" | "hcexpr" | "upgrade" | "keepalive" | "disablereuse"
        | "enablereuse" | "flushpackets" | "flushwait" | "iobuffersize" | "receivebuffersize"
        | "redirect" | "route" | "secret" | "stickysession" | "nofailover" | "forcerecovery"
        | "growth" | "maxattempts" | "scolonpathdelim" | "failonstatus" | "failontimeout"
        | "nonce" | "timeoutdelay" | "addressttl" | "responsefieldsize" | "mapping"
        | "hctemplate" | "ping_timeout" | "stickysessionsep" | "lbpolicy" => Ok(()),
        _ => Err(format!("unknown proxy parameter {key:?}")),
    }
}

/// Validates the `%` directives of a LogFormat string.
pub fn check_log_format(fmt: &str) -> Result<(), String> {
    let bytes = fmt.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        i += 1;
        // Optional status conditions (`%400,501{User-agent}i`) and `<`/`>` modifiers.
        while i < bytes.len() && (bytes[i].is_ascii_digit() || b",!<>".contains(&bytes[i])) {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'{' {
            match fmt[i..].find('}') {
                Some(end) => i += end + 1,
                None => return Err(format!("LogFormat {fmt:?}: '{{' without '}}'")),
            }
        }
        let Some(&c) = bytes.get(i) else {
            return Err(format!("LogFormat {fmt:?} ends with a lone '%'"));
        };
        if !b"%aABbCDefhHiklLmnopPqrRstTuUvVXIOSM^".contains(&c) {
            return Err(format!(
                "LogFormat {fmt:?}: unknown directive %{}",
                c as char
            ));
        }
        if c == b'^' {
            // %^ti / %^to (trailers): two more letters.
            i += 2;
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
