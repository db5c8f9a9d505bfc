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
use std::path::PathBuf;

use crate::diagnostic::{Diagnostic, Loc, Severity};
use crate::directives::{self, Info};
use crate::model::*;
use crate::tree::Directive;

mod args;
mod dir;
mod host;
mod values;

pub use values::*;

/// Where a directive stands, for context checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
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
    /// "Not supported" warnings already given, by file and message: (index in
    /// `diagnostics`, occurrences). Debian's mime.conf alone has 81 AddLanguage lines; one
    /// warning per directive and file says it, with the count.
    unsupported:
        std::collections::HashMap<(std::sync::Arc<std::path::Path>, String), (usize, usize)>,
    /// A directive changed a server-wide setting (see [`Validator::server_mut`]).
    server_touched: bool,
    /// Many virtual hosts may be validated on several threads (off to compare in tests).
    parallel: bool,
    /// What each path checked so far is: 10,000 virtual hosts often share one DocumentRoot.
    /// Keyed by the path's bytes: hashing a `Path` walks its components.
    file_kinds: rustc_hash::FxHashMap<std::ffi::OsString, FileKind>,
}

/// A worker validator's findings (see [`Validator::vhosts_in_parallel`]).
struct Part {
    vhosts: Vec<VirtualHost>,
    log_formats: BTreeMap<String, String>,
    listen: Vec<Listen>,
    balancers: BTreeMap<String, Balancer>,
    pending_nicknames: Vec<(String, Loc)>,
    unsupported:
        std::collections::HashMap<(std::sync::Arc<std::path::Path>, String), (usize, usize)>,
    server_touched: bool,
}

/// What a path names on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    Dir,
    File,
    Missing,
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
            file_kinds: rustc_hash::FxHashMap::default(),
            unsupported: std::collections::HashMap::new(),
            server_touched: false,
            parallel: true,
        }
    }

    /// The server-wide settings, for a directive that changes them.
    pub(super) fn server_mut(&mut self) -> &mut ServerSettings {
        self.server_touched = true;
        &mut self.server
    }

    pub(super) fn report(&mut self, mut d: Diagnostic) {
        if let Some(why) = &self.inactive {
            d.severity = Severity::Warning;
            d.message = format!("{} (inside {why}, which is off)", d.message);
        }
        self.diagnostics.push(d);
    }

    pub(super) fn error(&mut self, loc: &Loc, message: impl Into<String>) {
        self.report(Diagnostic::error(loc, message));
    }

    pub(super) fn warning(&mut self, loc: &Loc, message: impl Into<String>) {
        self.report(Diagnostic::warning(loc, message));
    }

    /// A known Apache directive httpd does not implement: one warning per file and
    /// message, counted.
    fn unsupported(&mut self, d: &Directive, info: &Info) {
        let before = self.diagnostics.len();
        self.warning(
            &d.loc,
            format!(
                "{} ({}) is not supported by httpd, ignored",
                info.name, info.module
            ),
        );
        let message = self.diagnostics[before].message.clone();
        match self.unsupported.entry((d.loc.file.clone(), message)) {
            std::collections::hash_map::Entry::Occupied(mut seen) => {
                seen.get_mut().1 += 1;
                self.diagnostics.truncate(before);
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert((before, 1));
            }
        }
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
        let mut vhosts = self.vhosts_in_parallel(&vhost_nodes, &base);
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
        for (index, count) in std::mem::take(&mut self.unsupported).into_values() {
            if count > 1 {
                let d = &mut self.diagnostics[index];
                d.message = format!("{} (and {} more in this file)", d.message, count - 1);
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

    /// Validates virtual hosts in order, starting each from `base`.
    fn vhosts(&mut self, nodes: &[&Directive], base: &Host, vhosts: &mut Vec<VirtualHost>) {
        vhosts.reserve(nodes.len());
        for d in nodes {
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
    }

    /// [`Validator::vhosts`], with many virtual hosts cut into one run per CPU: each
    /// later run starts from a validator that knows what the server part said, and its
    /// findings are merged in config order, so the result is the sequential one. A run
    /// whose virtual hosts change server-wide settings is done again in sequence, since
    /// those settings carry from one virtual host to the next.
    fn vhosts_in_parallel(&mut self, nodes: &[&Directive], base: &Host) -> Vec<VirtualHost> {
        const PER_THREAD_MIN: usize = 500;
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get().min(8))
            .min(nodes.len() / PER_THREAD_MIN);
        // Sized for all at once: a VirtualHost is over a kilobyte, and regrowing the vector
        // would copy thousands of them into fresh pages.
        let mut vhosts = Vec::with_capacity(nodes.len());
        if threads < 2 || !self.parallel {
            self.vhosts(nodes, base, &mut vhosts);
            return vhosts;
        }
        let chunks: Vec<&[&Directive]> = nodes.chunks(nodes.len().div_ceil(threads)).collect();
        let server = self.server.clone();
        let root = self.server_root.clone();
        std::thread::scope(|scope| {
            let workers: Vec<_> = chunks[1..]
                .iter()
                .map(|chunk| {
                    let (server, root) = (server.clone(), root.clone());
                    scope.spawn(move || {
                        let mut diagnostics = Vec::new();
                        let mut worker = Validator::new(&mut diagnostics, root);
                        worker.server = server;
                        worker.log_formats.clear();
                        let mut vhosts = Vec::new();
                        worker.vhosts(chunk, base, &mut vhosts);
                        let part = worker.into_part(vhosts);
                        (part, diagnostics)
                    })
                })
                .collect();
            self.server_touched = false;
            self.vhosts(chunks[0], base, &mut vhosts);
            for (chunk, worker) in chunks[1..].iter().zip(workers) {
                let (part, diagnostics) = match worker.join() {
                    Ok(done) => done,
                    Err(panic) => std::panic::resume_unwind(panic),
                };
                if self.server_touched || part.server_touched {
                    self.vhosts(chunk, base, &mut vhosts);
                } else {
                    self.merge(part, diagnostics, &mut vhosts);
                }
            }
            vhosts
        })
    }

    /// What a worker validator found, to merge into the main one.
    fn into_part(self, vhosts: Vec<VirtualHost>) -> Part {
        Part {
            vhosts,
            log_formats: self.log_formats,
            listen: self.listen,
            balancers: self.balancers,
            pending_nicknames: self.pending_nicknames,
            unsupported: self.unsupported,
            server_touched: self.server_touched,
        }
    }

    /// Adds a later run's findings, as if this validator had gone on to validate them.
    fn merge(&mut self, part: Part, diagnostics: Vec<Diagnostic>, vhosts: &mut Vec<VirtualHost>) {
        vhosts.extend(part.vhosts);
        self.log_formats.extend(part.log_formats);
        self.listen.extend(part.listen);
        for (name, balancer) in part.balancers {
            let into = self.balancers.entry(name).or_default();
            into.members.extend(balancer.members);
            into.params.extend(balancer.params);
        }
        self.pending_nicknames.extend(part.pending_nicknames);
        // A "not supported" warning the main run already gave only gains a count.
        let mut diagnostics: Vec<Option<Diagnostic>> = diagnostics.into_iter().map(Some).collect();
        let mut firsts = Vec::new();
        for (key, (index, count)) in part.unsupported {
            match self.unsupported.get_mut(&key) {
                Some(seen) => {
                    seen.1 += count;
                    diagnostics[index] = None;
                }
                None => firsts.push((index, key, count)),
            }
        }
        let mut new_index = Vec::with_capacity(diagnostics.len());
        for d in diagnostics {
            new_index.push(self.diagnostics.len());
            if let Some(d) = d {
                self.diagnostics.push(d);
            }
        }
        for (index, key, count) in firsts {
            self.unsupported.insert(key, (new_index[index], count));
        }
    }

    /// Checks the name and context; returns the table entry for a known name.
    pub(super) fn known(&mut self, d: &Directive, scope: Scope) -> Option<&'static Info> {
        let Some(info) = d.info else {
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
    pub(super) fn directive(
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
            self.unsupported(d, info);
            return;
        }
        let name = info.key;
        if d.is_section() {
            self.section(d, name, scope, host, dir);
            return;
        }
        if self.host_directive(d, name, scope, host) {
            return;
        }
        let target = match dir {
            Some(p) => p,
            None => &mut host.dir,
        };
        self.dir_directive(d, name, scope, target);
    }

    /// A section httpd implements.
    pub(super) fn section(
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
                    push_small(&mut host.sections, section);
                }
            }
        }
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
/// Pushes onto a vector that usually holds one or two items: a configuration of 10,000
/// virtual hosts has 10,000 such vectors, and Vec's first growth to four slots of a
/// 700-byte Section is most of the memory (and of the time, in page faults).
pub(crate) fn push_small<T>(v: &mut Vec<T>, item: T) {
    if v.len() == v.capacity() {
        v.reserve_exact(v.len().max(1));
    }
    v.push(item);
}

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

#[cfg(test)]
mod tests;
