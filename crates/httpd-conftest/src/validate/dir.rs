//! Per-directory directives: Options, DirectoryIndex, MIME, handlers, headers, Require.

use super::values::*;
use super::*;
use crate::tree::Directive;

impl Validator<'_> {
    /// Per-directory directives (also valid at server and vhost level).
    pub(super) fn dir_directive(
        &mut self,
        d: &Directive,
        name: &str,
        scope: Scope,
        dir: &mut PerDir,
    ) {
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
                    push_small(&mut dir.add_type, (normalize_ext(ext), vals[0].to_string()));
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
                        push_small(&mut dir.headers, rule);
                    } else {
                        push_small(&mut dir.request_headers, rule);
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
                    if self.file_kind(&p) != FileKind::File {
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
            "maxranges" => {
                if let Some(a) = self.one(d) {
                    match max_ranges(&a.value) {
                        Some(m) => dir.max_ranges = Some(m),
                        None => self.error(
                            &a.loc,
                            format!(
                                "MaxRanges must be default, unlimited, none or a positive number, not {:?}",
                                a.value
                            ),
                        ),
                    }
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
                    push_small(&mut dir.substitute, a.value.clone());
                }
            }
            "redirect" | "redirectmatch" | "redirectpermanent" | "redirecttemp" => {
                let in_location = scope == Scope::Dir(SectionKind::Location);
                if let Some(r) = self.redirect(d, name, in_location) {
                    push_small(&mut dir.redirects, r);
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
                dir.proxy_pass = self.proxy_pass(d, name, true);
            }
            _ => {
                // Implemented but handled elsewhere (or at host level only).
                self.error(&d.loc, format!("{} is not allowed here", d.name));
            }
        }
    }
    pub(super) fn options(&mut self, d: &Directive) -> Option<OptionsDirective> {
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

    pub(super) fn error_document(&mut self, d: &Directive, dir: &mut PerDir) {
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

    pub(super) fn header(&mut self, d: &Directive, request: bool) -> Option<HeaderRule> {
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

    pub(super) fn require(&mut self, d: &Directive) -> Option<Require> {
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
}
