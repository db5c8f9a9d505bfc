//! Semantic warnings in the spirit of gixy: configurations that are valid but almost
//! certainly not what their author meant.

use crate::diagnostic::Diagnostic;
use crate::model::{Config, Host, ProxyTarget, SectionKind};

pub(crate) fn lint(config: &Config, out: &mut Vec<Diagnostic>) {
    duplicate_server_names(config, out);
    for host in std::iter::once(&config.main).chain(config.vhosts.iter().map(|v| &v.host)) {
        shadowed_proxy_pass(host, out);
        indexes_on_document_root(host, out);
    }
}

/// Two virtual hosts on the same address with the same ServerName: the second never
/// answers.
fn duplicate_server_names(config: &Config, out: &mut Vec<Diagnostic>) {
    // ServerName is stored lowercase (validate::strip_scheme_port).
    type Key<'a> = (Option<std::net::IpAddr>, Option<u16>, &'a str);
    let mut seen: rustc_hash::FxHashMap<Key, &crate::model::VirtualHost> =
        rustc_hash::FxHashMap::default();
    seen.reserve(config.vhosts.len());
    for v in &config.vhosts {
        let Some(name) = &v.host.server_name else {
            continue;
        };
        for addr in &v.addrs {
            let key = (addr.ip, addr.port, name.as_str());
            if let Some(first) = seen.get(&key) {
                out.push(Diagnostic::warning(
                    &v.loc,
                    format!(
                        "duplicate ServerName {name}: the virtual host at {}:{} already answers it on this address, so this one never will",
                        first.loc.file.display(),
                        first.loc.line
                    ),
                ));
            } else {
                seen.insert(key, v);
            }
        }
    }
}

/// A ProxyPass that can never match because an earlier rule's prefix covers it (Apache
/// tries rules in config order and the first match wins).
fn shadowed_proxy_pass(host: &Host, out: &mut Vec<Diagnostic>) {
    let rules = &host.proxy.pass;
    for (i, later) in rules.iter().enumerate() {
        if later.regex {
            continue;
        }
        if let Some(earlier) = rules[..i].iter().find(|e| {
            !e.regex && later.path.starts_with(&e.path) && e.target != ProxyTarget::Exclude
        }) {
            out.push(Diagnostic::warning(
                &later.loc,
                format!(
                    "ProxyPass {} can never match: ProxyPass {} at line {} comes first and covers it (put the longer path first)",
                    later.path, earlier.path, earlier.loc.line
                ),
            ));
        }
    }
}

/// `Options Indexes` on the DocumentRoot lists every file of the site to anyone.
fn indexes_on_document_root(host: &Host, out: &mut Vec<Diagnostic>) {
    let root = host.document_root.to_string_lossy();
    let root = root.trim_end_matches('/');
    for s in &host.sections {
        if s.kind != SectionKind::Directory || s.regex || s.pattern.trim_end_matches('/') != root {
            continue;
        }
        let Some(o) = s.dir.options else {
            continue;
        };
        let on = o.set.map(|f| f.indexes).unwrap_or(false) || o.add.indexes;
        if on {
            out.push(Diagnostic::warning(
                &s.loc,
                format!(
                    "Options Indexes on the DocumentRoot {root}: every directory without an index file is listed to anyone"
                ),
            ));
        }
    }
}
