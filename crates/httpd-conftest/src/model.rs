//! The typed, validated configuration: what httpd-core, httpd-tls and httpd-dev consume.
//!
//! Built from the resolved tree by [`crate::validate`]. Defaults are filled in (no `Option`
//! standing in for "the default"), durations are [`Duration`]s, addresses are parsed.
//! Apache's inheritance is resolved at the host level: every [`VirtualHost`] carries a
//! complete [`Host`] that starts as a copy of the main server's settings, as Apache merges
//! the main server into each virtual host. Per-directory sections are kept in config order
//! with their own [`PerDir`] settings (unset fields are `None`/empty, meaning "inherit");
//! the server merges them per request in Apache's order (Directory, DirectoryMatch, Files
//! and FilesMatch, Location and LocationMatch).
//!
//! Everything is `Serialize`: `httpd-conftest --dump` prints this structure as JSON.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::diagnostic::Loc;

/// The whole configuration.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    pub server_root: PathBuf,
    /// `Listen` directives, in order.
    pub listen: Vec<Listen>,
    /// Settings that exist once per server (not per virtual host).
    pub server: ServerSettings,
    /// The main server: used for requests no virtual host claims, and the base every
    /// virtual host inherits from.
    pub main: Host,
    pub vhosts: Vec<VirtualHost>,
    /// `LogFormat` nicknames → format strings (common, combined, … predefined).
    pub log_formats: BTreeMap<String, String>,
    /// `<Proxy balancer://name>` sections and `BalancerMember`s, by name (`balancer://x`).
    pub balancers: BTreeMap<String, Balancer>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "address", rename_all = "lowercase")]
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

#[derive(Clone, Debug, Serialize)]
pub struct Listen {
    pub addr: ListenAddr,
    /// The optional protocol argument (`Listen 443 https`).
    pub protocol: Option<String>,
    #[serde(skip)]
    pub loc: Loc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerTokens {
    Prod,
    Major,
    Minor,
    Min,
    Os,
    Full,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerSignature {
    Off,
    On,
    Email,
}

/// `RequestReadTimeout header=… body=…` (mod_reqtimeout). Zero turns a limit off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RequestReadTimeout {
    #[serde(serialize_with = "secs")]
    pub header: Duration,
    /// A header timeout that grows with received data up to this maximum (`header=20-40`).
    #[serde(serialize_with = "secs")]
    pub header_max: Duration,
    /// Bytes per second that extend the header timeout (`MinRate=500`); 0 for none.
    pub header_min_rate: u64,
    #[serde(serialize_with = "secs")]
    pub body: Duration,
    #[serde(serialize_with = "secs")]
    pub body_max: Duration,
    pub body_min_rate: u64,
}

impl Default for RequestReadTimeout {
    /// mod_reqtimeout's defaults: `header=20-40,MinRate=500 body=20,MinRate=500`.
    fn default() -> Self {
        RequestReadTimeout {
            header: Duration::from_secs(20),
            header_max: Duration::from_secs(40),
            header_min_rate: 500,
            body: Duration::from_secs(20),
            body_max: Duration::ZERO,
            body_min_rate: 500,
        }
    }
}

/// Server-wide settings.
#[derive(Clone, Debug, Serialize)]
pub struct ServerSettings {
    pub max_request_workers: u32,
    #[serde(serialize_with = "secs")]
    pub graceful_shutdown_timeout: Duration,
    pub pid_file: Option<PathBuf>,
    pub server_tokens: ServerTokens,
    pub trace_enable: bool,
    pub user: Option<String>,
    pub group: Option<String>,
    pub limit_request_fields: u32,
    pub limit_request_field_size: u32,
    pub limit_request_line: u32,
    /// `LimitInternalRecursion`: internal redirects one request may go through.
    pub limit_internal_recursion: u32,
    pub extended_status: bool,
    /// `AcceptFilter protocol filter`, by Listen protocol (lowercase): whether a
    /// connection is accepted only once its first bytes arrive (Linux's
    /// TCP_DEFER_ACCEPT). `http` and `https` are on by default, as in Apache on Linux;
    /// `none` turns it off.
    pub accept_filters: BTreeMap<String, bool>,
}

impl ServerSettings {
    /// Whether connections to `listen` are accepted only once their first bytes arrive
    /// ([`ServerSettings::accept_filters`]): by its protocol, which is `https` for port 443
    /// and `http` otherwise when Listen names none (Apache's rule). TCP only.
    pub fn defer_accept(&self, listen: &Listen) -> bool {
        let ListenAddr::Tcp(addr) = &listen.addr else {
            return false;
        };
        let protocol = match &listen.protocol {
            Some(p) => p.to_ascii_lowercase(),
            None if addr.port() == 443 => "https".to_string(),
            None => "http".to_string(),
        };
        self.accept_filters.get(&protocol).copied().unwrap_or(false)
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            // DESIGN.md: at least 10,000 connections (the fd limit permitting).
            max_request_workers: 10_000,
            graceful_shutdown_timeout: Duration::from_secs(10),
            pid_file: None,
            // Safer by default than Apache's Full: the product name only.
            server_tokens: ServerTokens::Prod,
            trace_enable: false,
            user: None,
            group: None,
            limit_request_fields: 100,
            limit_request_field_size: 8190,
            limit_request_line: 8190,
            limit_internal_recursion: 10,
            accept_filters: [("http".to_string(), true), ("https".to_string(), true)].into(),
            extended_status: true,
        }
    }
}

/// Where a log goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "target", rename_all = "lowercase")]
pub enum LogTarget {
    /// Standard error (the default ErrorLog).
    Stderr,
    File(PathBuf),
    /// `|command`: a piped logger the server starts (and restarts).
    Pipe(String),
    /// `syslog[:facility]`.
    Syslog(String),
}

#[derive(Clone, Debug, Serialize)]
pub struct CustomLog {
    pub target: LogTarget,
    /// The LogFormat string (a nickname is resolved to its format).
    pub format: String,
    /// The nickname used, if one was.
    pub nickname: Option<String>,
    /// `env=[!]VAR` condition, kept as written.
    pub condition: Option<String>,
}

/// A `<VirtualHost addr...>` section.
#[derive(Clone, Debug, Serialize)]
pub struct VirtualHost {
    /// The addresses it answers on: `*:80`, `127.0.0.1:8080`, `[::1]:80`, `_default_:443`.
    pub addrs: Vec<VhostAddr>,
    pub host: Host,
    #[serde(skip)]
    pub loc: Loc,
}

/// One `<VirtualHost>` address: an IP or `*`/`_default_` (None), and a port or `*` (None).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VhostAddr {
    pub ip: Option<std::net::IpAddr>,
    pub port: Option<u16>,
}

/// A server (the main one or a virtual host): everything settable per host.
#[derive(Clone, Debug, Serialize)]
pub struct Host {
    pub server_name: Option<String>,
    /// Names and wildcard patterns (`*.example.com`).
    pub server_alias: Vec<String>,
    pub server_admin: Option<String>,
    pub document_root: PathBuf,
    pub keep_alive: bool,
    #[serde(serialize_with = "secs")]
    pub keep_alive_timeout: Duration,
    /// 0 means unlimited, as in Apache.
    pub max_keep_alive_requests: u32,
    #[serde(serialize_with = "secs")]
    pub timeout: Duration,
    pub request_read_timeout: RequestReadTimeout,
    pub server_signature: ServerSignature,
    /// `Protocols`: `http/1.1`, `h2c`, `h2`.
    pub protocols: Vec<String>,
    pub remote_ip_proxy_protocol: bool,
    pub error_log: LogTarget,
    pub log_level: String,
    pub custom_logs: Vec<CustomLog>,
    pub aliases: Vec<Alias>,
    pub redirects: Vec<Redirect>,
    pub proxy: ProxySettings,
    pub ssl: Ssl,
    /// Per-directory defaults at host level (directives outside any section).
    pub dir: PerDir,
    /// `<Directory>`, `<Location>`, `<Files>` (and Match forms), in config order.
    pub sections: Vec<Section>,
}

impl Default for Host {
    fn default() -> Self {
        Host {
            server_name: None,
            server_alias: Vec::new(),
            server_admin: None,
            document_root: PathBuf::from("/var/www/html"),
            keep_alive: true,
            keep_alive_timeout: Duration::from_secs(5),
            max_keep_alive_requests: 1000,
            timeout: Duration::from_secs(60),
            request_read_timeout: RequestReadTimeout::default(),
            server_signature: ServerSignature::Off,
            protocols: vec!["http/1.1".into()],
            remote_ip_proxy_protocol: false,
            error_log: LogTarget::Stderr,
            log_level: "warn".into(),
            custom_logs: Vec::new(),
            aliases: Vec::new(),
            redirects: Vec::new(),
            proxy: ProxySettings::default(),
            ssl: Ssl::default(),
            dir: PerDir::default(),
            sections: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AliasKind {
    /// `Alias`/`AliasMatch`: serve files from another directory.
    Alias,
    /// `ScriptAlias`/`ScriptAliasMatch`: run CGI scripts from it.
    Script,
}

/// `Alias URL-path file-path` and friends.
#[derive(Clone, Debug, Serialize)]
pub struct Alias {
    pub kind: AliasKind,
    /// The URL prefix, or a regex for the Match forms.
    pub url: String,
    pub regex: bool,
    /// The target; for Match forms it may contain `$1`.
    pub path: PathBuf,
    #[serde(skip)]
    pub loc: Loc,
}

/// `Redirect [status] URL-path URL` and `RedirectMatch`.
#[derive(Clone, Debug, Serialize)]
pub struct Redirect {
    pub status: u16,
    pub url: String,
    pub regex: bool,
    /// None for `gone` (410) and other statuses outside 3xx that take no target.
    pub target: Option<String>,
    #[serde(skip)]
    pub loc: Loc,
}

/// mod_proxy settings of a host.
#[derive(Clone, Debug, Serialize)]
pub struct ProxySettings {
    /// `ProxyPass`/`ProxyPassMatch` rules, in config order (the first match wins).
    pub pass: Vec<ProxyPass>,
    /// `ProxyPassReverse path URL` pairs.
    pub reverse: Vec<ProxyPassReverse>,
    pub preserve_host: bool,
    /// `ProxyTimeout`; None means the host's Timeout.
    #[serde(serialize_with = "opt_secs")]
    pub timeout: Option<Duration>,
    /// `ProxyAddHeaders` (X-Forwarded-*), on by default.
    pub add_headers: bool,
    /// `ProxyVia`: off, on, full, block.
    pub via: String,
}

impl Default for ProxySettings {
    /// Apache's defaults: ProxyAddHeaders On, ProxyVia Off.
    fn default() -> Self {
        ProxySettings {
            pass: Vec::new(),
            reverse: Vec::new(),
            preserve_host: false,
            timeout: None,
            add_headers: true,
            via: "off".into(),
        }
    }
}

#[cfg(test)]
mod proxy_default_tests {
    #[test]
    fn proxy_add_headers_defaults_on() {
        let p = super::ProxySettings::default();
        assert!(p.add_headers);
        assert_eq!(p.via, "off");
    }
}

/// Where a ProxyPass sends requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ProxyTarget {
    /// `!`: an exclusion, do not proxy.
    Exclude,
    /// `http://host:port/path` (or `ws://`, `https://`).
    Url { url: String },
    /// `unix:/path/app.sock|http://localhost/path`.
    Unix { socket: PathBuf, url: String },
    /// `balancer://name/path`.
    Balancer { name: String, path: String },
}

#[derive(Clone, Debug, Serialize)]
pub struct ProxyPass {
    /// The URL prefix (or regex for ProxyPassMatch); inside `<Location>` the location's path.
    pub path: String,
    pub regex: bool,
    pub target: ProxyTarget,
    /// `key=value` worker parameters (`timeout=`, `connectiontimeout=`, `retry=`, `upgrade=`…).
    pub params: BTreeMap<String, String>,
    #[serde(skip)]
    pub loc: Loc,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProxyPassReverse {
    pub path: String,
    pub url: String,
}

/// A `<Proxy balancer://name>` group.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Balancer {
    pub members: Vec<BalancerMember>,
    /// `ProxySet` parameters (`lbmethod=`, `stickysession=`, …) and ProxyPass ones.
    pub params: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BalancerMember {
    pub url: String,
    pub params: BTreeMap<String, String>,
    #[serde(skip)]
    pub loc: Loc,
}

/// mod_ssl settings of a host, used by httpd-tls.
#[derive(Clone, Debug, Serialize)]
pub struct Ssl {
    pub engine: bool,
    pub certificate_files: Vec<PathBuf>,
    pub certificate_key_files: Vec<PathBuf>,
    pub certificate_chain_file: Option<PathBuf>,
    pub ca_certificate_file: Option<PathBuf>,
    /// `SSLVerifyClient`: none, optional, require.
    pub verify_client: String,
    /// `SSLProtocol` as written (e.g. `-all +TLSv1.2 +TLSv1.3`), resolved to a set.
    pub protocols: Vec<String>,
    pub use_stapling: bool,
}

impl Default for Ssl {
    fn default() -> Self {
        Ssl {
            engine: false,
            certificate_files: Vec::new(),
            certificate_key_files: Vec::new(),
            certificate_chain_file: None,
            ca_certificate_file: None,
            verify_client: "none".into(),
            protocols: vec!["TLSv1.2".into(), "TLSv1.3".into()],
            use_stapling: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SectionKind {
    Directory,
    Location,
    Files,
    Proxy,
}

/// A per-directory section: `<Directory>`, `<Location>`, `<Files>`, `<Proxy>` and the
/// Match forms (`regex: true`; also `<Directory ~ "re">`).
#[derive(Clone, Debug, Serialize)]
pub struct Section {
    pub kind: SectionKind,
    pub pattern: String,
    pub regex: bool,
    pub dir: PerDir,
    /// `<Files>` sections nested in this `<Directory>`.
    pub nested: Vec<Section>,
    #[serde(skip)]
    pub loc: Loc,
}

/// One `Options` keyword set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OptionFlags {
    pub indexes: bool,
    pub follow_symlinks: bool,
    pub symlinks_if_owner_match: bool,
    pub exec_cgi: bool,
    pub includes: bool,
    pub multiviews: bool,
}

/// An `Options` directive: either an absolute set, or `+`/`-` changes to the inherited one
/// (Apache's merge rule).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OptionsDirective {
    /// Some for `Options A B` (replaces what is inherited), None for `+A -B` only.
    pub set: Option<OptionFlags>,
    pub add: OptionFlags,
    pub remove: OptionFlags,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderAction {
    Set,
    Append,
    Add,
    Unset,
    Merge,
    Setifempty,
    Echo,
    Edit,
}

/// `Header [always] action name [value] [early|env=...|expr=...]` or `RequestHeader ...`.
#[derive(Clone, Debug, Serialize)]
pub struct HeaderRule {
    pub always: bool,
    pub action: HeaderAction,
    pub name: String,
    pub value: Option<String>,
    /// For `edit`: the replacement.
    pub replacement: Option<String>,
    /// A trailing condition, kept as written (`env=VAR`, `expr=...`).
    pub condition: Option<String>,
    #[serde(skip)]
    pub loc: Loc,
}

/// The `Require` expression of a section: a tree of conditions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Require {
    All {
        granted: bool,
    },
    Ip {
        negated: bool,
        nets: Vec<ipnet::IpNet>,
    },
    Host {
        negated: bool,
        names: Vec<String>,
    },
    ValidUser,
    User {
        names: Vec<String>,
    },
    Group {
        names: Vec<String>,
    },
    Method {
        negated: bool,
        methods: Vec<String>,
    },
    Env {
        negated: bool,
        names: Vec<String>,
    },
    /// Every child must allow (`<RequireAll>`).
    AllOf {
        children: Vec<Require>,
    },
    /// Any child may allow (`<RequireAny>`, and several Require lines).
    AnyOf {
        children: Vec<Require>,
    },
    /// No child may allow (`<RequireNone>`).
    NoneOf {
        children: Vec<Require>,
    },
}

/// An `ErrorDocument` target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum ErrorDocument {
    /// A local URL path (`/errors/404.html`), served by an internal redirect.
    Local(String),
    /// An external URL: a 302 to it.
    Remote(String),
    /// A literal message (Apache's leading `"`).
    Text(String),
    /// `default`: back to the built-in page.
    Default,
}

/// `MaxRanges default | unlimited | none | N` (Apache core; `default` is 200).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MaxRanges {
    /// No cap.
    Unlimited,
    /// Range headers are ignored: always the full representation.
    None,
    /// More ranges than this and the full representation is sent (200).
    Limit(u32),
}

impl MaxRanges {
    /// Apache's `default`.
    pub const DEFAULT: MaxRanges = MaxRanges::Limit(200);
}

/// Per-directory settings. `None` or empty means "inherit from the enclosing scope".
#[derive(Clone, Debug, Default, Serialize)]
pub struct PerDir {
    pub options: Option<OptionsDirective>,
    pub directory_index: Option<Vec<String>>,
    pub directory_slash: Option<bool>,
    pub fallback_resource: Option<String>,
    /// `AddType type ext...`, in order: extension (without dot, lowercase) → MIME type.
    pub add_type: Vec<(String, String)>,
    /// `AddHandler handler ext...`: extension → handler (`cgi-script`).
    pub add_handler: Vec<(String, String)>,
    /// `AddDefaultCharset`: Some(None) is Off, Some(Some(cs)) a charset.
    pub add_default_charset: Option<Option<String>>,
    /// `SetHandler` (`server-status`, `cgi-script`, `none`).
    pub set_handler: Option<String>,
    pub error_documents: BTreeMap<u16, ErrorDocument>,
    pub headers: Vec<HeaderRule>,
    pub request_headers: Vec<HeaderRule>,
    pub require: Option<Require>,
    pub auth_type: Option<String>,
    pub auth_name: Option<String>,
    pub auth_user_file: Option<PathBuf>,
    pub limit_request_body: Option<u64>,
    /// `MaxRanges` (core): how many ranges a Range header may ask for.
    pub max_ranges: Option<MaxRanges>,
    /// `IndexOptions` keywords as written.
    pub index_options: Vec<String>,
    /// `FileETag` keywords as written.
    pub file_etag: Option<Vec<String>>,
    /// `Substitute s/pattern/replacement/flags` (mod_substitute), in order.
    pub substitute: Vec<String>,
    /// Redirects written inside the section (`Redirect` in `<Location>`).
    pub redirects: Vec<Redirect>,
    /// `ProxyPass` inside `<Location>` (one argument form).
    pub proxy_pass: Option<ProxyPass>,
}

fn secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn opt_secs<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// The predefined LogFormat nicknames (Apache's defaults, as Debian's apache2.conf writes
/// them, plus a JSON format).
pub fn default_log_formats() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("common".into(), "%h %l %u %t \"%r\" %>s %b".into());
    m.insert(
        "combined".into(),
        "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"".into(),
    );
    m.insert(
        "vhost_combined".into(),
        "%v:%p %h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\"".into(),
    );
    m.insert("referer".into(), "%{Referer}i -> %U".into());
    m.insert("agent".into(), "%{User-agent}i".into());
    m.insert("json".into(), JSON_LOG_FORMAT.into());
    m
}

/// The `json` nickname: httpd-core writes one JSON object per line with these keys (the
/// server escapes every value for JSON; httpd-logrotate --stats reads it back).
pub const JSON_LOG_FORMAT: &str = "json";
