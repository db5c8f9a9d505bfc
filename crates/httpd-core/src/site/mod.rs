//! The runtime form of one loaded configuration: what the server consults per request.
//!
//! A [`Site`] is immutable once built (from the conftest model by [`build`]); a reload
//! builds a new one and swaps the `Arc`, so open connections finish on the old one.
//! Regexes are compiled, names lowercased, and per-directory sections kept in config order
//! with their unmerged settings; [`Host::effective`] merges them for one request in
//! Apache's order (host level, `<Directory>` shortest first, `<DirectoryMatch>`, `<Files>`
//! and `<FilesMatch>`, `<Location>` and `<LocationMatch>`).

pub mod build;
mod matcher;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::access_log::AccessLog;
pub use matcher::Matcher;

/// One loaded configuration.
pub struct Site {
    pub listen: Vec<ListenOn>,
    pub server: ServerConf,
    /// `hosts[0]` is the main server; the virtual hosts follow in config order.
    pub hosts: Vec<Arc<Host>>,
    /// Where the configuration came from (file path or "embedded default").
    pub source: String,
}

/// A Listen directive, as it is bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenOn {
    pub addr: ListenAddr,
    /// `AcceptFilter` (on by default for http and https, as Apache on Linux): the kernel
    /// hands a connection over once its first bytes have arrived (TCP_DEFER_ACCEPT).
    pub defer_accept: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Settings that exist once per server.
#[derive(Clone, Debug)]
pub struct ServerConf {
    pub max_request_workers: usize,
    pub graceful_shutdown_timeout: Duration,
    pub pid_file: Option<PathBuf>,
    /// The `Server` header value (ServerTokens; Prod by default).
    pub server_header: HeaderValue,
    pub trace_enable: bool,
    pub limit_request_fields: usize,
    pub limit_request_field_size: usize,
    pub limit_request_line: usize,
    /// `LimitInternalRecursion`: internal redirects (CGI local redirects) per request.
    pub limit_internal_recursion: u32,
    pub error_log: ErrorLogTarget,
    pub log_level: String,
    /// `User` / `Group` as written (applied once, at start: see [`crate::privileges`]).
    pub user: Option<String>,
    pub group: Option<String>,
}

impl Default for ServerConf {
    fn default() -> Self {
        ServerConf {
            max_request_workers: 10_000,
            graceful_shutdown_timeout: Duration::from_secs(10),
            pid_file: None,
            server_header: HeaderValue::from_static("httpd"),
            trace_enable: false,
            limit_request_fields: 100,
            limit_request_field_size: 8190,
            limit_request_line: 8190,
            limit_internal_recursion: 10,
            error_log: ErrorLogTarget::Stderr,
            log_level: "warn".into(),
            user: None,
            group: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorLogTarget {
    Stderr,
    File(PathBuf),
    /// `ErrorLog "|command"`: a piped logger, as for CustomLog.
    Pipe(String),
}

/// Connection-level settings of a host (taken from the default host of an address).
#[derive(Clone, Debug)]
pub struct ConnConf {
    pub keep_alive: bool,
    pub keep_alive_timeout: Duration,
    /// 0: unlimited.
    pub max_keep_alive_requests: u32,
    /// `Timeout`: how long a write may stall.
    pub timeout: Duration,
    pub read_timeout: ReadTimeouts,
    /// `Protocols` includes h2c: HTTP/2 with prior knowledge on cleartext connections.
    pub h2c: bool,
    /// `RemoteIPProxyProtocol On`: every connection starts with a PROXY header.
    pub proxy_protocol: bool,
}

impl Default for ConnConf {
    fn default() -> Self {
        ConnConf {
            keep_alive: true,
            keep_alive_timeout: Duration::from_secs(5),
            max_keep_alive_requests: 1000,
            timeout: Duration::from_secs(60),
            read_timeout: ReadTimeouts::default(),
            h2c: false,
            proxy_protocol: false,
        }
    }
}

/// `RequestReadTimeout` (mod_reqtimeout): an initial limit, extended by `min_rate` bytes
/// per second of received data up to `max`. A zero `initial` turns the limit off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadTimeout {
    pub initial: Duration,
    pub max: Duration,
    pub min_rate: u64,
}

impl ReadTimeout {
    /// When a phase that starts at `start` times out if nothing arrives (`None`: the limit
    /// is off).
    pub fn deadline(&self, start: tokio::time::Instant) -> Option<tokio::time::Instant> {
        (!self.initial.is_zero()).then(|| start + self.initial)
    }

    /// mod_reqtimeout's MinRate: `deadline` moved later for `bytes` more received, up to
    /// `max` after the phase's `start` (without limit when no maximum is given, as in
    /// `body=20,MinRate=500`).
    pub fn extended(
        &self,
        deadline: tokio::time::Instant,
        start: tokio::time::Instant,
        bytes: usize,
    ) -> tokio::time::Instant {
        if self.min_rate == 0 || !(self.max.is_zero() || self.max > self.initial) {
            return deadline;
        }
        let later = deadline + Duration::from_secs_f64(bytes as f64 / self.min_rate as f64);
        if self.max.is_zero() {
            later
        } else {
            later.min(start + self.max)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadTimeouts {
    pub header: ReadTimeout,
    pub body: ReadTimeout,
}

impl Default for ReadTimeouts {
    fn default() -> Self {
        ReadTimeouts {
            header: ReadTimeout {
                initial: Duration::from_secs(20),
                max: Duration::from_secs(40),
                min_rate: 500,
            },
            body: ReadTimeout {
                initial: Duration::from_secs(20),
                max: Duration::ZERO,
                min_rate: 500,
            },
        }
    }
}

/// A server: the main one or a virtual host.
pub struct Host {
    /// ServerName (lowercase), used for `%v` and self-referential redirects.
    pub server_name: Option<String>,
    /// ServerName and ServerAlias patterns, lowercase; `*` and `?` are wildcards.
    pub names: Vec<String>,
    /// The `<VirtualHost>` addresses (empty for the main server).
    pub addrs: Vec<VhostAddr>,
    pub document_root: PathBuf,
    /// The DocumentRoot with symlinks resolved, for the containment check.
    pub canonical_root: PathBuf,
    /// The DocumentRoot opened as a directory handle, for kernel-checked opens.
    pub root_fd: Option<Arc<std::os::fd::OwnedFd>>,
    pub conn: ConnConf,
    pub aliases: Vec<Alias>,
    pub redirects: Vec<Redirect>,
    /// Per-directory settings written at host level.
    pub dir: PerDir,
    pub sections: Vec<Section>,
    pub access_logs: Vec<Arc<AccessLog>>,
    /// Requests answered by this host (server-status).
    pub requests: std::sync::atomic::AtomicU64,
    /// Small hot files (see [`crate::static_files::cache`]).
    pub file_cache: crate::static_files::cache::FileCache,
    /// ProxyPass rules (issue 4), None when the host proxies nothing.
    pub proxy: Option<Arc<crate::proxy::Proxy>>,
    /// The defaults merged with `dir`, and the merges of sections already seen (see
    /// [`Host::effective`]); filled on first use, so `dir` and `sections` must not change
    /// after the host serves a request.
    pub merges: std::sync::OnceLock<Merges>,
}

/// What [`Host::effective`] merges once per host, or once per combination of sections.
#[derive(Default)]
pub struct Merges {
    /// The defaults merged with the host-level settings.
    base: Effective,
    /// Where each section's nested `<Files>` are numbered among the scopes: section `i`'s
    /// `k`-th is scope `sections.len() + nested_at[i] + k`; section `i` itself is scope `i`.
    nested_at: Vec<usize>,
    /// How many scopes (sections and nested `<Files>`): the bits of the sets that key
    /// `done`.
    count: usize,
    /// The merges done so far, by which scopes applied (at most [`MERGES_KEPT`]).
    done: elsa::sync::FrozenBTreeMap<Box<[u64]>, Box<Effective>>,
}

/// Combinations of sections whose merge a host keeps: a real site has a handful (one per
/// `<Directory>` its files are in, a few `<Location>`s); patterns that apply to many
/// combinations past this are merged per request.
const MERGES_KEPT: usize = 1024;

impl Host {
    /// A host serving `root` with every default.
    pub fn new(root: PathBuf) -> Host {
        Host {
            server_name: None,
            names: Vec::new(),
            addrs: Vec::new(),
            canonical_root: std::fs::canonicalize(&root).unwrap_or_else(|_| root.clone()),
            root_fd: crate::sys::open_dir(&root).map(Arc::new),
            document_root: root,
            conn: ConnConf::default(),
            aliases: Vec::new(),
            redirects: Vec::new(),
            dir: PerDir::default(),
            sections: Vec::new(),
            access_logs: Vec::new(),
            requests: Default::default(),
            file_cache: Default::default(),
            proxy: None,
            merges: Default::default(),
        }
    }

    /// Whether `host` (lowercase, port removed) is one of this host's names.
    pub fn answers_to(&self, host: &str) -> bool {
        self.names.iter().any(|p| matcher::wildcard_match(p, host))
    }

    /// Whether <Directory> or <Files> sections apply by filesystem path: only then does
    /// [`Host::effective`] need one.
    pub fn by_directory(&self) -> bool {
        self.sections
            .iter()
            .any(|s| matches!(s.kind, SectionKind::Directory | SectionKind::Files))
    }

    /// The merged per-directory settings for a request of `url_path` served from the
    /// filesystem path `fs_path`, in Apache's order. `fs_path` is None when no file is
    /// involved, and need not be built when [`Host::by_directory`] is false (only
    /// `<Location>`s can apply then).
    /// Borrowed from the host: the host-level settings are merged once, and so is each
    /// combination of sections that applies, up to [`MERGES_KEPT`] of them (callgrind, a
    /// 1 KiB file under one `<Directory>`, as the embedded default config serves it: 2,200
    /// instructions per request to merge it each time).
    pub fn effective(&self, url_path: &str, fs_path: Option<&Path>) -> Cow<'_, Effective> {
        let merges = self.merges.get_or_init(|| self.merges());
        if self.sections.is_empty() {
            return Cow::Borrowed(&merges.base);
        }
        let words = merges.count.div_ceil(64);
        let (mut small, mut large) = ([0u64; 4], Vec::new());
        let set: &mut [u64] = if words <= small.len() {
            &mut small[..words]
        } else {
            large.resize(words, 0);
            &mut large
        };
        self.applying(merges, url_path, fs_path, set);
        let set: &[u64] = set;
        if set.iter().all(|&w| w == 0) {
            return Cow::Borrowed(&merges.base);
        }
        if let Some(eff) = merges.done.get(set) {
            return Cow::Borrowed(eff);
        }
        let eff = self.merge(merges, set);
        if merges.done.len() >= MERGES_KEPT {
            return Cow::Owned(eff);
        }
        Cow::Borrowed(merges.done.insert(set.into(), Box::new(eff)))
    }

    fn merges(&self) -> Merges {
        let mut base = Effective::default();
        base.apply(&self.dir);
        let mut nested_at = Vec::with_capacity(self.sections.len());
        let mut nested = 0;
        for s in &self.sections {
            nested_at.push(nested);
            nested += s.nested.len();
        }
        Merges {
            base,
            nested_at,
            count: self.sections.len() + nested,
            done: Default::default(),
        }
    }

    /// Marks in `set` the scopes that apply to the request (bit `i`: scope `i`, numbered
    /// as [`Merges::nested_at`] says).
    fn applying(&self, merges: &Merges, url_path: &str, fs_path: Option<&Path>, set: &mut [u64]) {
        let mut mark = |i: usize| set[i / 64] |= 1 << (i % 64);
        if let Some(fs) = fs_path {
            let fs = fs.to_string_lossy();
            // A URL ending in `/` names a directory; anything else is looked up as a
            // file (a directory without the slash is redirected before it matters).
            let (dir_of, name) = if url_path.ends_with('/') {
                (&*fs, parent_and_name(&fs).1)
            } else {
                parent_and_name(&fs)
            };
            for (i, s) in self.sections.iter().enumerate() {
                match s.kind {
                    SectionKind::Directory if s.matcher.matches_dir(dir_of) => {
                        mark(i);
                        for (k, f) in s.nested.iter().enumerate() {
                            if f.matcher.matches_name(name) {
                                mark(self.sections.len() + merges.nested_at[i] + k);
                            }
                        }
                    }
                    SectionKind::Files if s.matcher.matches_name(name) => mark(i),
                    _ => {}
                }
            }
        }
        for (i, s) in self.sections.iter().enumerate() {
            if s.kind == SectionKind::Location && s.matcher.matches_url(url_path) {
                mark(i);
            }
        }
    }

    /// The scopes in `set` merged over the host level, in Apache's order: plain
    /// `<Directory>` shortest (least specific) first, `<DirectoryMatch>`, `<Files>` (at
    /// host level, then nested in those directories, in the same order), `<Location>`.
    fn merge(&self, merges: &Merges, set: &[u64]) -> Effective {
        let has = |i: usize| set[i / 64] >> (i % 64) & 1 == 1;
        let of_kind = |kind: SectionKind| {
            self.sections
                .iter()
                .enumerate()
                .filter(move |&(i, s)| s.kind == kind && has(i))
        };
        let mut dirs: Vec<(usize, &Section)> = of_kind(SectionKind::Directory)
            .filter(|(_, s)| !s.matcher.is_regex())
            .collect();
        dirs.sort_by_key(|(_, s)| s.matcher.component_count());
        dirs.extend(of_kind(SectionKind::Directory).filter(|(_, s)| s.matcher.is_regex()));
        let nested = dirs.iter().flat_map(|&(i, s)| {
            s.nested.iter().enumerate().filter_map(move |(k, f)| {
                has(self.sections.len() + merges.nested_at[i] + k).then_some(f)
            })
        });
        let mut eff = merges.base.clone();
        let scopes = dirs
            .iter()
            .map(|(_, s)| *s)
            .chain(of_kind(SectionKind::Files).map(|(_, s)| s))
            .chain(nested)
            .chain(of_kind(SectionKind::Location).map(|(_, s)| s));
        for s in scopes {
            eff.apply(&s.dir);
        }
        eff
    }
}

/// `Path::parent` and `Path::file_name` of a normalized path, on its bytes (those two
/// cost 550 instructions per request, parsing components).
fn parent_and_name(path: &str) -> (&str, &str) {
    let b = path.as_bytes();
    let end = b.iter().rposition(|&c| c != b'/').map_or(0, |i| i + 1);
    let Some(slash) = b[..end].iter().rposition(|&c| c == b'/') else {
        return ("", &path[..end]);
    };
    let parent = b[..slash]
        .iter()
        .rposition(|&c| c != b'/')
        .map_or(1, |i| i + 1);
    (&path[..parent], &path[slash + 1..end])
}

/// One `<VirtualHost>` address: an IP (None for `*`) and a port (None for `*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VhostAddr {
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
}

impl VhostAddr {
    pub fn matches(&self, local: Option<SocketAddr>) -> bool {
        let Some(local) = local else { return true };
        self.ip.is_none_or(|ip| ip == local.ip()) && self.port.is_none_or(|p| p == local.port())
    }
}

/// `Alias`/`AliasMatch` (and `ScriptAlias`, whose handler issue 4 adds).
pub struct Alias {
    pub url: Matcher,
    /// The target directory or file; `$1`… substituted for the Match form.
    pub target: String,
    /// The directory served files must stay in (symlinks resolved).
    pub canonical: PathBuf,
    /// The target directory's handle (prefix Alias to a directory only).
    pub root_fd: Option<Arc<std::os::fd::OwnedFd>>,
    pub script: bool,
}

/// `Redirect`/`RedirectMatch`.
pub struct Redirect {
    pub status: u16,
    pub url: Matcher,
    /// None for statuses without a target (410 gone).
    pub target: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionKind {
    Directory,
    Files,
    Location,
}

pub struct Section {
    pub kind: SectionKind,
    pub matcher: Matcher,
    pub dir: PerDir,
    /// `<Files>` nested inside a `<Directory>`.
    pub nested: Vec<Section>,
}

/// `Options` keywords that httpd-core acts on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptionFlags {
    pub indexes: bool,
    pub follow_symlinks: bool,
    pub exec_cgi: bool,
    pub multiviews: bool,
}

/// An `Options` directive: an absolute set, or `+`/`-` changes (Apache's merge rule).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptionsChange {
    pub set: Option<OptionFlags>,
    pub add: OptionFlags,
    pub remove: OptionFlags,
}

/// Which handler produces the response (SetHandler). Issue 4 adds Proxy and Cgi.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handler {
    Static,
    Status,
    /// `SetHandler cgi-script` (runs only with ExecCGI).
    Cgi,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderAction {
    Set,
    Append,
    Add,
    Unset,
    Merge,
    SetIfEmpty,
}

#[derive(Clone, Debug)]
pub struct HeaderRule {
    pub always: bool,
    pub action: HeaderAction,
    pub name: HeaderName,
    pub value: Option<HeaderValue>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorDocument {
    Local(String),
    Remote(String),
    Text(String),
    Default,
}

/// `Require` (mod_authz_core); only the providers httpd-core can decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Require {
    All(bool),
    Ip {
        negated: bool,
        nets: Vec<ipnet::IpNet>,
    },
    /// A provider decided elsewhere: neutral here.
    Other,
    /// `Require valid-user` / `Require user a b`: decided by [`crate::auth::decide`].
    ValidUser,
    User(Vec<String>),
    AllOf(Vec<Require>),
    AnyOf(Vec<Require>),
    NoneOf(Vec<Require>),
}

impl Require {
    /// The decision of a leaf that needs no login: Some(true) granted, Some(false)
    /// denied, None neutral (Apache's AUTHZ_NEUTRAL). The tree (RequireAll/Any/None, users)
    /// is decided by [`crate::auth::decide`], which calls this for its leaves.
    pub fn decide_leaf(&self, client: IpAddr) -> Option<bool> {
        match self {
            Require::All(g) => Some(*g),
            Require::Ip { negated, nets } => {
                let hit = nets.iter().any(|n| n.contains(&client));
                match (negated, hit) {
                    (false, hit) => Some(hit),
                    // `Require not ip X`: denies X, says nothing about others.
                    (true, true) => Some(false),
                    (true, false) => None,
                }
            }
            _ => None,
        }
    }
}

/// Per-directory settings as written in one scope; None/empty means inherit.
#[derive(Default)]
pub struct PerDir {
    pub options: Option<OptionsChange>,
    pub directory_index: Option<Vec<String>>,
    pub directory_slash: Option<bool>,
    /// extension (lowercase, no dot) → MIME type.
    pub add_type: Vec<(String, String)>,
    /// Some(None): Off.
    pub add_default_charset: Option<Option<String>>,
    pub handler: Option<Handler>,
    pub error_documents: BTreeMap<u16, ErrorDocument>,
    pub headers: Vec<HeaderRule>,
    pub request_headers: Vec<HeaderRule>,
    pub require: Option<Require>,
    pub limit_request_body: Option<u64>,
    /// `MaxRanges`: 0 is `none`, `usize::MAX` is `unlimited`.
    pub max_ranges: Option<usize>,
    /// AuthType Basic / AuthName / AuthUserFile, each None to inherit.
    pub auth_basic: Option<bool>,
    pub auth_name: Option<String>,
    pub auth_user_file: Option<PathBuf>,
    /// `Substitute` patterns (mod_substitute), compiled.
    pub substitute: Vec<Arc<crate::substitute::Rule>>,
    pub fallback_resource: Option<String>,
    /// `AddHandler handler ext`: extension (lowercase, no dot) → handler.
    pub add_handler: Vec<(String, String)>,
    /// `Redirect` written inside a `<Location>`.
    pub redirects: Vec<Redirect>,
}

/// The merged settings for one request.
#[derive(Clone, Debug)]
pub struct Effective {
    pub options: OptionFlags,
    pub directory_index: Vec<String>,
    pub directory_slash: bool,
    pub add_type: Vec<(String, String)>,
    pub default_charset: Option<String>,
    pub handler: Handler,
    pub error_documents: BTreeMap<u16, ErrorDocument>,
    pub headers: Vec<HeaderRule>,
    pub request_headers: Vec<HeaderRule>,
    pub require: Option<Require>,
    pub limit_request_body: u64,
    /// Apache's MaxRanges: more ranges than this and the whole file is sent (0: Range
    /// ignored, `usize::MAX`: no cap).
    pub max_ranges: usize,
    pub auth: crate::auth::AuthSettings,
    pub substitute: Vec<Arc<crate::substitute::Rule>>,
    /// `FallbackResource` (mod_dir); "disabled" is None.
    pub fallback_resource: Option<String>,
    pub add_handler: Vec<(String, String)>,
}

impl Default for Effective {
    fn default() -> Self {
        Effective {
            // DESIGN.md: Options defaults to None.
            options: OptionFlags::default(),
            directory_index: vec!["index.html".into()],
            directory_slash: true,
            add_type: Vec::new(),
            default_charset: None,
            handler: Handler::Static,
            error_documents: BTreeMap::new(),
            headers: Vec::new(),
            request_headers: Vec::new(),
            require: None,
            limit_request_body: 1 << 30,
            max_ranges: 200,
            auth: Default::default(),
            substitute: Vec::new(),
            fallback_resource: None,
            add_handler: Vec::new(),
        }
    }
}

impl Effective {
    /// Merges one scope over what is inherited (Apache's per-directory merge).
    pub fn apply(&mut self, d: &PerDir) {
        if let Some(o) = &d.options {
            let mut flags = o.set.unwrap_or(self.options);
            for (add, remove, field) in [
                (o.add.indexes, o.remove.indexes, &mut flags.indexes),
                (
                    o.add.follow_symlinks,
                    o.remove.follow_symlinks,
                    &mut flags.follow_symlinks,
                ),
                (o.add.exec_cgi, o.remove.exec_cgi, &mut flags.exec_cgi),
                (o.add.multiviews, o.remove.multiviews, &mut flags.multiviews),
            ] {
                if add {
                    *field = true;
                }
                if remove {
                    *field = false;
                }
            }
            self.options = flags;
        }
        if let Some(v) = &d.directory_index {
            self.directory_index = v.clone();
        }
        if let Some(v) = d.directory_slash {
            self.directory_slash = v;
        }
        self.add_type.extend(d.add_type.iter().cloned());
        if let Some(cs) = &d.add_default_charset {
            self.default_charset = cs.clone();
        }
        if let Some(h) = &d.handler {
            self.handler = h.clone();
        }
        for (code, doc) in &d.error_documents {
            self.error_documents.insert(*code, doc.clone());
        }
        self.headers.extend(d.headers.iter().cloned());
        self.request_headers
            .extend(d.request_headers.iter().cloned());
        if let Some(r) = &d.require {
            self.require = Some(r.clone());
        }
        if let Some(l) = d.limit_request_body {
            self.limit_request_body = if l == 0 { u64::MAX } else { l };
        }
        if let Some(m) = d.max_ranges {
            self.max_ranges = m;
        }
        if let Some(b) = d.auth_basic {
            self.auth.basic = b;
        }
        if let Some(n) = &d.auth_name {
            self.auth.realm = Some(n.clone());
        }
        if let Some(f) = &d.auth_user_file {
            self.auth.user_file = Some(f.clone());
        }
        self.substitute.extend(d.substitute.iter().cloned());
        self.add_handler.extend(d.add_handler.iter().cloned());
        if let Some(f) = &d.fallback_resource {
            self.fallback_resource = (f != "disabled").then(|| f.clone());
        }
    }

    /// The MIME type for `name`: AddType overrides (the last one wins), then the table.
    pub fn mime_for(&self, name: &str) -> String {
        let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
        if let Some(ext) = &ext {
            if let Some((_, t)) = self.add_type.iter().rev().find(|(e, _)| e == ext) {
                return t.clone();
            }
        }
        let guess = ext
            .as_deref()
            .and_then(|e| mime_guess::from_ext(e).first_raw())
            .unwrap_or("application/octet-stream");
        guess.to_string()
    }
}

impl Site {
    /// The host for a request: among the virtual hosts whose address matches the
    /// connection's local address, the one whose name matches `host` (lowercase, no
    /// port), else the first of them (Apache's default vhost rule), else the main server.
    pub fn select_host(&self, local: Option<SocketAddr>, host: Option<&str>) -> &Arc<Host> {
        let mut candidates = self.hosts[1..]
            .iter()
            .filter(|h| h.addrs.iter().any(|a| a.matches(local)))
            .peekable();
        let Some(first) = candidates.peek().copied() else {
            return &self.hosts[0];
        };
        if let Some(name) = host {
            if let Some(h) = candidates.find(|h| h.answers_to(name)) {
                return h;
            }
        }
        first
    }

    /// The connection-level settings for connections on `local`: those of the default
    /// host for that address.
    pub fn conn_conf(&self, local: Option<SocketAddr>) -> &ConnConf {
        &self.select_host(local, None).conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_table() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let net = |s: &str| vec![s.parse::<ipnet::IpNet>().unwrap()];
        let cases: Vec<(Require, &str, Option<bool>)> = vec![
            (Require::All(true), "1.2.3.4", Some(true)),
            (Require::All(false), "1.2.3.4", Some(false)),
            (
                Require::Ip {
                    negated: false,
                    nets: net("10.0.0.0/8"),
                },
                "10.1.2.3",
                Some(true),
            ),
            (
                Require::Ip {
                    negated: false,
                    nets: net("10.0.0.0/8"),
                },
                "11.1.2.3",
                Some(false),
            ),
            (
                Require::AllOf(vec![
                    Require::All(true),
                    Require::Ip {
                        negated: true,
                        nets: net("127.0.0.0/8"),
                    },
                ]),
                "127.0.0.1",
                Some(false),
            ),
            (
                Require::AllOf(vec![
                    Require::All(true),
                    Require::Ip {
                        negated: true,
                        nets: net("127.0.0.0/8"),
                    },
                ]),
                "192.0.2.1",
                Some(true),
            ),
        ];
        for (req, client, want) in cases {
            assert_eq!(
                crate::auth::decide(&req, ip(client), None),
                want,
                "{req:?} for {client}"
            );
        }
    }

    #[test]
    fn options_merge_plus_minus() {
        let mut e = Effective::default();
        e.apply(&PerDir {
            options: Some(OptionsChange {
                set: Some(OptionFlags {
                    indexes: true,
                    follow_symlinks: true,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        e.apply(&PerDir {
            options: Some(OptionsChange {
                set: None,
                add: OptionFlags::default(),
                remove: OptionFlags {
                    indexes: true,
                    ..Default::default()
                },
            }),
            ..Default::default()
        });
        assert!(!e.options.indexes);
        assert!(e.options.follow_symlinks);
    }

    /// The host-level settings are merged once and shared while no section applies; each
    /// combination of sections that applies is merged once too, then shared.
    #[test]
    fn effective_merges_each_combination_once() {
        let mut host = Host::new(PathBuf::from("/srv/www"));
        host.dir.directory_index = Some(vec!["home.html".into()]);
        host.sections.push(Section {
            kind: SectionKind::Location,
            matcher: Matcher::literal("/private").unwrap(),
            dir: PerDir {
                require: Some(Require::All(false)),
                ..Default::default()
            },
            nested: Vec::new(),
        });
        host.sections.push(Section {
            kind: SectionKind::Directory,
            matcher: Matcher::literal("/srv/www/docs").unwrap(),
            dir: PerDir {
                directory_slash: Some(false),
                ..Default::default()
            },
            nested: Vec::new(),
        });
        let borrowed = |eff: Cow<'_, Effective>| match eff {
            Cow::Borrowed(e) => e as *const Effective,
            Cow::Owned(_) => panic!("merged for one request only"),
        };
        let fs = Path::new("/srv/www/a.html");
        let plain = host.effective("/a.html", Some(fs));
        assert_eq!(plain.directory_index, ["home.html"]);
        assert!(plain.require.is_none() && plain.directory_slash);
        let base = borrowed(plain);
        let private = host.effective("/private/x", Some(Path::new("/srv/www/private/x")));
        assert_eq!(private.require, Some(Require::All(false)));
        assert_eq!(private.directory_index, ["home.html"], "host level kept");
        let private = borrowed(private);
        assert_ne!(private, base);
        let again = host.effective("/private/y", Some(Path::new("/srv/www/private/y")));
        assert_eq!(
            borrowed(again),
            private,
            "the same sections: the same merge"
        );
        let docs = host.effective("/docs/x", Some(Path::new("/srv/www/docs/x")));
        assert!(!docs.directory_slash && docs.require.is_none());
        let both = host.effective("/private/z", Some(Path::new("/srv/www/docs/z")));
        assert!(!both.directory_slash && both.require.is_some());
        assert!(host.effective("/a.html", None).directory_slash);
        assert_eq!(host.merges.get().unwrap().done.len(), 3);
    }

    /// Past MERGES_KEPT combinations, the others are merged per request (and right).
    #[test]
    fn effective_keeps_a_bounded_number_of_merges() {
        let mut host = Host::new(PathBuf::from("/srv/www"));
        for i in 0..11 {
            host.sections.push(Section {
                kind: SectionKind::Location,
                matcher: Matcher::Regex(
                    fancy_regex::Regex::new(&format!("^/(.{{{i}}}x)")).unwrap(),
                ),
                dir: PerDir {
                    directory_index: Some(vec![format!("{i}.html")]),
                    ..Default::default()
                },
                nested: Vec::new(),
            });
        }
        // Paths with an x at some of the 11 places: up to 2^11 combinations.
        for mask in 1..2048u32 {
            let path: String = (0..11)
                .map(|i| if mask >> i & 1 == 1 { 'x' } else { 'a' })
                .collect();
            let eff = host.effective(&format!("/{path}"), None);
            let last = (0..11).rev().find(|i| mask >> i & 1 == 1).unwrap();
            assert_eq!(eff.directory_index, [format!("{last}.html")], "{path}");
        }
        assert_eq!(host.merges.get().unwrap().done.len(), MERGES_KEPT);
    }

    #[test]
    fn parent_and_name_agree_with_path() {
        for p in [
            "/srv/www/a.html",
            "/srv/www/dir/",
            "/a",
            "/",
            "",
            "a",
            "a/b",
            "//a",
            "/a//b",
            "/a/b//",
        ] {
            let path = Path::new(p);
            let parent = path
                .parent()
                .map_or(String::new(), |p| p.display().to_string());
            let name = path
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into());
            let (tp, tn) = parent_and_name(p);
            assert_eq!((tp, tn), (parent.as_str(), name.as_str()), "{p:?}");
        }
    }

    #[test]
    fn mime_addtype_overrides_table() {
        let mut e = Effective::default();
        assert_eq!(e.mime_for("a.html"), "text/html");
        assert_eq!(e.mime_for("a.unknownext"), "application/octet-stream");
        e.add_type.push(("html".into(), "text/x-mine".into()));
        assert_eq!(e.mime_for("A.HTML"), "text/x-mine");
    }
}
