//! Every directive of Apache httpd 2.4, and which of them httpd implements.
//!
//! The table (`directives.tsv`, beside this file) lists each directive of Apache 2.4's
//! standard modules with its allowed contexts and module, extracted from the manual's
//! quick reference. It is what lets a real Apache config parse (a known directive httpd
//! does not implement is a warning) while a typo never passes (an unknown name is an error
//! with a suggestion).

use rustc_hash::FxHashMap;
use std::sync::OnceLock;

/// Where a directive may appear (Apache's "Context" line).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Contexts {
    pub server: bool,
    pub virtualhost: bool,
    pub directory: bool,
    pub htaccess: bool,
}

impl Contexts {
    fn parse(text: &str) -> Self {
        let mut c = Contexts::default();
        for part in text.split(',') {
            match part.trim() {
                "server" => c.server = true,
                "virtualhost" => c.virtualhost = true,
                "directory" => c.directory = true,
                "htaccess" => c.htaccess = true,
                _ => {}
            }
        }
        c
    }

    /// Human-readable list for messages: "server config, virtual host".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.server {
            parts.push("server config");
        }
        if self.virtualhost {
            parts.push("<VirtualHost>");
        }
        if self.directory {
            parts.push("<Directory>/<Location>/<Files>");
        }
        if self.htaccess {
            parts.push(".htaccess");
        }
        parts.join(", ")
    }
}

/// What is known about one directive name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// The name as Apache's manual spells it.
    pub name: &'static str,
    /// The name in lowercase: the key code matches on.
    pub key: &'static str,
    pub contexts: Contexts,
    pub module: &'static str,
    /// `<Name>` … `</Name>`.
    pub section: bool,
    /// httpd gives it meaning; otherwise it is "not supported, ignored".
    pub implemented: bool,
}

/// Directives and sections httpd implements (checked fully, applied by the binaries).
pub const IMPLEMENTED: &[&str] = &[
    // core
    "Listen",
    "ServerName",
    "ServerAlias",
    "ServerRoot",
    "DocumentRoot",
    "Options",
    "AllowOverride",
    "ErrorDocument",
    "ErrorLog",
    "LogLevel",
    "KeepAlive",
    "KeepAliveTimeout",
    "MaxKeepAliveRequests",
    "Timeout",
    "LimitRequestBody",
    "LimitRequestFields",
    "LimitRequestFieldSize",
    "LimitRequestLine",
    "LimitInternalRecursion",
    "MaxRanges",
    "ServerTokens",
    "ServerSignature",
    "TraceEnable",
    "Protocols",
    "AddDefaultCharset",
    "SetHandler",
    "Define",
    "UnDefine",
    "Include",
    "IncludeOptional",
    "ServerAdmin",
    "PidFile",
    "MaxRequestWorkers",
    "AcceptFilter",
    "GracefulShutdownTimeout",
    "User",
    "Group",
    "AuthType",
    "AuthName",
    "FileETag",
    "HostnameLookups",
    "UseCanonicalName",
    // sections
    "VirtualHost",
    "Directory",
    "DirectoryMatch",
    "Location",
    "LocationMatch",
    "Files",
    "FilesMatch",
    "IfModule",
    "IfDefine",
    "IfVersion",
    "IfFile",
    "IfDirective",
    "IfSection",
    "Proxy",
    "ProxyMatch",
    "RequireAll",
    "RequireAny",
    "RequireNone",
    // mod_dir, mod_mime, mod_alias, mod_log_config, mod_headers, mod_autoindex
    "DirectoryIndex",
    "DirectorySlash",
    "FallbackResource",
    "AddType",
    "AddHandler",
    "RemoveHandler",
    "RemoveType",
    "AddCharset",
    "AddEncoding",
    "TypesConfig",
    "Alias",
    "AliasMatch",
    "Redirect",
    "RedirectMatch",
    "RedirectPermanent",
    "RedirectTemp",
    "ScriptAlias",
    "ScriptAliasMatch",
    "LogFormat",
    "CustomLog",
    "TransferLog",
    "Header",
    "RequestHeader",
    "IndexOptions",
    // mod_authz_core, mod_authz_host, mod_auth_basic, mod_authn_file
    "Require",
    "AuthUserFile",
    "AuthBasicProvider",
    // mod_reqtimeout, mod_status, mod_remoteip
    "RequestReadTimeout",
    "ExtendedStatus",
    "RemoteIPProxyProtocol",
    // mod_proxy, mod_proxy_balancer
    "ProxyPass",
    "ProxyPassMatch",
    "ProxyPassReverse",
    "ProxyPreserveHost",
    "ProxyTimeout",
    "ProxyRequests",
    "ProxyVia",
    "ProxyAddHeaders",
    "BalancerMember",
    "ProxySet",
    // mod_cgi, mod_substitute
    "ScriptLog",
    "Substitute",
    // mod_ssl (httpd-tls)
    "SSLEngine",
    "SSLCertificateFile",
    "SSLCertificateKeyFile",
    "SSLCertificateChainFile",
    "SSLProtocol",
    "SSLCipherSuite",
    "SSLHonorCipherOrder",
    "SSLUseStapling",
    "SSLSessionTickets",
    "SSLCACertificateFile",
    "SSLVerifyClient",
];

/// The modules whose features httpd provides: `<IfModule>` is true for these.
pub const PROVIDED_MODULES: &[&str] = &[
    "core",
    "http",
    "so",
    "mpm_event",
    "unixd",
    "version",
    "mime",
    "dir",
    "alias",
    "log_config",
    "logio",
    "headers",
    "autoindex",
    "authz_core",
    "authz_host",
    "authn_core",
    "authn_file",
    "auth_basic",
    "authz_user",
    "reqtimeout",
    "proxy",
    "proxy_http",
    "proxy_balancer",
    "proxy_wstunnel",
    "lbmethod_byrequests",
    "lbmethod_bybusyness",
    "proxy_hcheck",
    "status",
    "remoteip",
    "cgi",
    "cgid",
    "ssl",
    "http2",
    "proxy_http2",
    "substitute",
    "deflate",
    "brotli",
];

/// Keyed by the lowercase name's bytes, with a fast hash: every directive of a config is
/// looked up here, several times.
fn table() -> &'static FxHashMap<&'static [u8], Info> {
    static TABLE: OnceLock<FxHashMap<&'static [u8], Info>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut map = FxHashMap::default();
        for line in include_str!("directives.tsv").lines().skip(1) {
            let cols: Vec<&'static str> = line.split('\t').collect();
            let [name, syntax, _default, contexts, _status, module, ..] = cols[..] else {
                continue;
            };
            let key: &'static str = Box::leak(name.to_ascii_lowercase().into_boxed_str());
            let info = Info {
                name,
                key,
                contexts: Contexts::parse(contexts),
                module,
                section: syntax.starts_with('<'),
                implemented: IMPLEMENTED.iter().any(|n| n.eq_ignore_ascii_case(name)),
            };
            map.insert(key.as_bytes(), info);
        }
        map
    })
}

/// Looks a directive or section name up, case-insensitively.
pub fn lookup(name: &str) -> Option<&'static Info> {
    // Every known name is short: lowercase it on the stack, not in a new String.
    let mut buf = [0u8; 40];
    let lower = buf.get_mut(..name.len())?;
    lower.copy_from_slice(name.as_bytes());
    lower.make_ascii_lowercase();
    table().get(&*lower)
}

/// The closest known name to an unknown one, if it is close enough to be a typo.
pub fn suggest(name: &str) -> Option<&'static str> {
    // A name this long is no typo of a directive, and comparing it would be slow.
    if name.len() > 64 {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    table()
        .values()
        .map(|info| {
            let score = strsim::jaro_winkler(&lower, info.key);
            (score, info.name)
        })
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, n)| n)
}

/// Whether `<IfModule name>` is true: `mod_ssl.c`, `mod_ssl` and `ssl_module` all name
/// the ssl module.
pub fn module_provided(name: &str) -> bool {
    let n = name.trim();
    let base = n
        .strip_suffix(".c")
        .map(|s| s.strip_prefix("mod_").unwrap_or(s))
        .or_else(|| n.strip_suffix("_module"))
        .or_else(|| n.strip_prefix("mod_"))
        .unwrap_or(n);
    PROVIDED_MODULES
        .iter()
        .any(|m| m.eq_ignore_ascii_case(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_implemented_name_is_in_the_table() {
        for name in IMPLEMENTED {
            assert!(lookup(name).is_some(), "{name} is not an Apache directive");
        }
    }

    #[test]
    fn lookup_is_case_insensitive() {
        let info = lookup("documentroot").unwrap();
        assert_eq!(info.name, "DocumentRoot");
        assert!(info.implemented);
        assert!(lookup("VIRTUALHOST").unwrap().section);
        assert!(!lookup("LoadModule").unwrap().implemented);
        assert!(lookup("NoSuchThing").is_none());
    }

    #[test]
    fn suggestions() {
        let cases = [
            ("DocumentRooot", Some("DocumentRoot")),
            ("ServerNmae", Some("ServerName")),
            ("proxypas", Some("ProxyPass")),
            ("Lisen", Some("Listen")),
            ("Xyzzy", None),
        ];
        for (typo, want) in cases {
            assert_eq!(suggest(typo), want, "{typo}");
        }
    }

    #[test]
    fn module_names() {
        for yes in [
            "mod_ssl.c",
            "ssl_module",
            "mod_headers.c",
            "mod_proxy",
            "headers_module",
        ] {
            assert!(module_provided(yes), "{yes}");
        }
        for no in [
            "mod_rewrite.c",
            "rewrite_module",
            "mod_php7.c",
            "mpm_prefork_module",
        ] {
            assert!(!module_provided(no), "{no}");
        }
    }
}
