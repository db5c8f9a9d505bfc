//! The one function that turns the config language's typed model into a [`Site`]:
//! regexes compiled, names folded, log sinks opened (one per distinct target).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use httpd_conftest::model;

use super::*;
use crate::access_log::{AccessLog, Format, Sink};
use crate::error::Error;

/// Builds the runtime site from a validated configuration. `source` names where it came
/// from, for messages. On a reload, `previous` is the running site: a log file this
/// process may no longer open (it gave root up, see [`crate::privileges`]) keeps its
/// already open descriptor instead of failing the reload.
pub fn build(config: &model::Config, source: &str, previous: Option<&Site>) -> Result<Site, Error> {
    let mut sinks = Sinks {
        opened: HashMap::new(),
        previous: previous
            .into_iter()
            .flat_map(|s| s.hosts.iter())
            .flat_map(|h| h.access_logs.iter())
            .map(|l| (l.sink.key(), Arc::clone(&l.sink)))
            .collect(),
    };
    let root = &config.server_root;
    let mut hosts = vec![Arc::new(host(
        &config.main,
        root,
        Vec::new(),
        &mut sinks,
        config,
    )?)];
    for v in &config.vhosts {
        let addrs = v
            .addrs
            .iter()
            .map(|a| VhostAddr {
                ip: a.ip,
                port: a.port,
            })
            .collect();
        hosts.push(Arc::new(host(&v.host, root, addrs, &mut sinks, config)?));
    }
    let s = &config.server;
    let server_header = match s.server_tokens {
        model::ServerTokens::Prod => "httpd".to_string(),
        model::ServerTokens::Major => "httpd/0".to_string(),
        model::ServerTokens::Minor => "httpd/0.1".to_string(),
        _ => format!("httpd/{}", env!("CARGO_PKG_VERSION")),
    };
    let error_log = match &config.main.error_log {
        model::LogTarget::File(p) => ErrorLogTarget::File(absolute(root, p)),
        model::LogTarget::Pipe(cmd) => ErrorLogTarget::Pipe(cmd.clone()),
        _ => ErrorLogTarget::Stderr,
    };
    Ok(Site {
        listen: config
            .listen
            .iter()
            .map(|l| ListenOn {
                addr: match &l.addr {
                    model::ListenAddr::Tcp(a) => ListenAddr::Tcp(*a),
                    model::ListenAddr::Unix(p) => ListenAddr::Unix(absolute(root, p)),
                },
                defer_accept: s.defer_accept(l),
            })
            .collect(),
        server: ServerConf {
            max_request_workers: s.max_request_workers.max(1) as usize,
            graceful_shutdown_timeout: s.graceful_shutdown_timeout,
            pid_file: s.pid_file.as_ref().map(|p| absolute(root, p)),
            server_header: HeaderValue::from_str(&server_header)
                .unwrap_or(HeaderValue::from_static("httpd")),
            trace_enable: s.trace_enable,
            limit_request_fields: s.limit_request_fields as usize,
            limit_request_field_size: s.limit_request_field_size as usize,
            limit_request_line: s.limit_request_line as usize,
            limit_internal_recursion: s.limit_internal_recursion,
            error_log,
            log_level: config.main.log_level.clone(),
            user: s.user.clone(),
            group: s.group.clone(),
        },
        hosts,
        source: source.to_string(),
    })
}

/// The log sinks of one build: one per distinct target, and the running site's ones.
struct Sinks {
    opened: HashMap<String, Arc<Sink>>,
    previous: HashMap<String, Arc<Sink>>,
}

impl Sinks {
    fn get(
        &mut self,
        key: String,
        make: Box<dyn Fn() -> Result<Sink, Error>>,
    ) -> Result<Arc<Sink>, Error> {
        if let Some(s) = self.opened.get(&key) {
            return Ok(Arc::clone(s));
        }
        let s = match make() {
            Ok(s) => Arc::new(s),
            Err(Error::Log { source, target })
                if source.kind() == std::io::ErrorKind::PermissionDenied
                    && self.previous.contains_key(&key) =>
            {
                tracing::warn!(log = %target, error = %source, "cannot reopen the log after giving root up; keeping the open one");
                Arc::clone(&self.previous[&key])
            }
            Err(e) => return Err(e),
        };
        self.opened.insert(key, Arc::clone(&s));
        Ok(s)
    }
}

fn absolute(root: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    }
}

fn host(
    h: &model::Host,
    root: &Path,
    addrs: Vec<VhostAddr>,
    sinks: &mut Sinks,
    config: &model::Config,
) -> Result<Host, Error> {
    let document_root = absolute(root, &h.document_root);
    let mut names = Vec::new();
    if let Some(n) = &h.server_name {
        names.push(strip_port(n).to_ascii_lowercase());
    }
    names.extend(h.server_alias.iter().map(|a| a.to_ascii_lowercase()));
    let rt = &h.request_read_timeout;
    let conn = ConnConf {
        keep_alive: h.keep_alive,
        keep_alive_timeout: h.keep_alive_timeout,
        max_keep_alive_requests: h.max_keep_alive_requests,
        timeout: h.timeout,
        read_timeout: ReadTimeouts {
            header: ReadTimeout {
                initial: rt.header,
                max: rt.header_max,
                min_rate: rt.header_min_rate,
            },
            body: ReadTimeout {
                initial: rt.body,
                max: rt.body_max,
                min_rate: rt.body_min_rate,
            },
        },
        h2c: h.protocols.iter().any(|p| p.eq_ignore_ascii_case("h2c")),
        proxy_protocol: h.remote_ip_proxy_protocol,
    };
    let mut aliases = Vec::new();
    for a in &h.aliases {
        let url = if a.regex {
            Matcher::regex(&a.url)
                .map_err(|e| Error::Setting(format!("bad AliasMatch regex {}: {e}", a.url)))?
        } else {
            literal(&a.url)?
        };
        let target = absolute(root, &a.path).to_string_lossy().into_owned();
        let root_fd = (!a.regex && Path::new(&target).is_dir())
            .then(|| crate::sys::open_dir(Path::new(&target)).map(Arc::new))
            .flatten();
        aliases.push(Alias {
            root_fd,
            canonical: canonical_root_of(&target),
            url,
            target,
            script: a.kind == model::AliasKind::Script,
        });
    }
    let mut redirects = Vec::new();
    for r in &h.redirects {
        redirects.push(redirect(r)?);
    }
    let mut sections = Vec::new();
    for s in &h.sections {
        if let Some(sec) = section(s, root)? {
            sections.push(sec);
        }
    }
    let mut access_logs = Vec::new();
    for cl in &h.custom_logs {
        let (key, make): (String, Box<dyn Fn() -> Result<Sink, Error>>) = match &cl.target {
            model::LogTarget::File(p) => {
                let p = absolute(root, p);
                (
                    format!("file:{}", p.display()),
                    Box::new(move || Sink::file(p.clone())),
                )
            }
            model::LogTarget::Pipe(cmd) => {
                let cmd = cmd.clone();
                (
                    format!("pipe:{cmd}"),
                    Box::new(move || Sink::pipe(cmd.clone())),
                )
            }
            model::LogTarget::Stderr => (
                "file:/dev/stderr".into(),
                Box::new(|| Sink::file(PathBuf::from("/dev/stderr"))),
            ),
            model::LogTarget::Syslog(_) => {
                tracing::warn!("CustomLog to syslog is not supported; ignored");
                continue;
            }
        };
        let sink = sinks.get(key, make)?;
        access_logs.push(Arc::new(AccessLog {
            format: Format::compile(&cl.format),
            sink,
        }));
    }
    Ok(Host {
        server_name: h
            .server_name
            .as_ref()
            .map(|n| strip_port(n).to_ascii_lowercase()),
        names,
        addrs,
        root_fd: crate::sys::open_dir(&document_root).map(Arc::new),
        canonical_root: std::fs::canonicalize(&document_root)
            .unwrap_or_else(|_| document_root.clone()),
        document_root,
        conn,
        aliases,
        redirects,
        dir: per_dir(&h.dir)?,
        sections,
        access_logs,
        requests: Default::default(),
        file_cache: Default::default(),
        proxy: crate::proxy::Proxy::build(h, &h.sections, &config.balancers)?.map(Arc::new),
        merges: Default::default(),
    })
}

/// The directory a file must stay in for an Alias target: the target itself when it is a
/// directory, else its parent (an Alias to a single file); for AliasMatch templates, the
/// literal part before the first `$`.
fn canonical_root_of(target: &str) -> PathBuf {
    let literal = match target.find('$') {
        Some(i) => &target[..target[..i].rfind('/').map_or(0, |j| j + 1)],
        None => target,
    };
    let p = Path::new(literal);
    let dir = if p.is_dir() || literal.ends_with('/') {
        p.to_path_buf()
    } else {
        p.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

/// `host:port` → `host` (also `[v6]:port` → `[v6]`); a URL scheme is dropped.
pub fn strip_port(name: &str) -> &str {
    let name = name
        .strip_prefix("http://")
        .or_else(|| name.strip_prefix("https://"))
        .unwrap_or(name);
    if name.starts_with('[') {
        return name.find(']').map_or(name, |i| &name[..=i]);
    }
    // Bytes, not a char search: this runs on every request's Host.
    let b = name.as_bytes();
    match b.iter().position(|&c| c == b':') {
        Some(i) if !b[i + 1..].contains(&b':') => &name[..i],
        _ => name,
    }
}

fn literal(p: &str) -> Result<Matcher, Error> {
    Matcher::literal(p).map_err(|e| Error::Setting(format!("bad wildcard pattern {p}: {e}")))
}

fn redirect(r: &model::Redirect) -> Result<Redirect, Error> {
    let url = if r.regex {
        Matcher::regex(&r.url)
            .map_err(|e| Error::Setting(format!("bad RedirectMatch regex {}: {e}", r.url)))?
    } else {
        literal(&r.url)?
    };
    Ok(Redirect {
        status: r.status,
        url,
        target: r.target.clone(),
    })
}

fn section(s: &model::Section, root: &Path) -> Result<Option<Section>, Error> {
    let kind = match s.kind {
        model::SectionKind::Directory => SectionKind::Directory,
        model::SectionKind::Files => SectionKind::Files,
        model::SectionKind::Location => SectionKind::Location,
        // <Proxy> sections belong to the proxy (issue 4).
        model::SectionKind::Proxy => return Ok(None),
    };
    let matcher = if s.regex {
        Matcher::regex(&s.pattern)
            .map_err(|e| Error::Setting(format!("bad section regex {}: {e}", s.pattern)))?
    } else if kind == SectionKind::Directory {
        let p = absolute(root, Path::new(&s.pattern));
        literal(
            p.to_string_lossy()
                .trim_end_matches('/')
                .to_string()
                .as_str()
                .trim_end_matches('/'),
        )
        .or_else(|_| literal("/"))?
    } else {
        literal(&s.pattern)?
    };
    let mut nested = Vec::new();
    for n in &s.nested {
        if let Some(sec) = section(n, root)? {
            nested.push(sec);
        }
    }
    Ok(Some(Section {
        kind,
        matcher,
        dir: per_dir(&s.dir)?,
        nested,
    }))
}

fn flags(f: &model::OptionFlags) -> OptionFlags {
    OptionFlags {
        indexes: f.indexes,
        follow_symlinks: f.follow_symlinks || f.symlinks_if_owner_match,
        exec_cgi: f.exec_cgi,
        multiviews: f.multiviews,
    }
}

fn header_rule(r: &model::HeaderRule) -> Option<HeaderRule> {
    let action = match r.action {
        model::HeaderAction::Set => HeaderAction::Set,
        model::HeaderAction::Append => HeaderAction::Append,
        model::HeaderAction::Add => HeaderAction::Add,
        model::HeaderAction::Unset => HeaderAction::Unset,
        model::HeaderAction::Merge => HeaderAction::Merge,
        model::HeaderAction::Setifempty => HeaderAction::SetIfEmpty,
        model::HeaderAction::Echo | model::HeaderAction::Edit => {
            tracing::warn!(header = %r.name, "Header echo/edit is not supported; ignored");
            return None;
        }
    };
    if r.condition.is_some() {
        tracing::warn!(header = %r.name, "Header conditions (env=, expr=) are not supported; rule ignored");
        return None;
    }
    Some(HeaderRule {
        always: r.always,
        action,
        name: HeaderName::from_bytes(r.name.as_bytes()).ok()?,
        value: match &r.value {
            Some(v) => Some(HeaderValue::from_str(v).ok()?),
            None => None,
        },
    })
}

fn require(r: &model::Require) -> Require {
    match r {
        model::Require::All { granted } => Require::All(*granted),
        model::Require::Ip { negated, nets } => Require::Ip {
            negated: *negated,
            nets: nets.clone(),
        },
        model::Require::AllOf { children } => {
            Require::AllOf(children.iter().map(require).collect())
        }
        model::Require::AnyOf { children } => {
            Require::AnyOf(children.iter().map(require).collect())
        }
        model::Require::NoneOf { children } => {
            Require::NoneOf(children.iter().map(require).collect())
        }
        model::Require::ValidUser => Require::ValidUser,
        model::Require::User { names } => Require::User(names.clone()),
        _ => Require::Other,
    }
}

fn per_dir(d: &model::PerDir) -> Result<PerDir, Error> {
    Ok(PerDir {
        options: d.options.as_ref().map(|o| OptionsChange {
            set: o.set.as_ref().map(flags),
            add: flags(&o.add),
            remove: flags(&o.remove),
        }),
        directory_index: d.directory_index.clone(),
        directory_slash: d.directory_slash,
        add_type: d
            .add_type
            .iter()
            .map(|(e, t)| (e.trim_start_matches('.').to_ascii_lowercase(), t.clone()))
            .collect(),
        add_default_charset: d.add_default_charset.clone(),
        handler: d
            .set_handler
            .as_deref()
            .and_then(|h| match h.to_ascii_lowercase().as_str() {
                "server-status" => Some(Handler::Status),
                "cgi-script" => Some(Handler::Cgi),
                "none" | "default-handler" => Some(Handler::Static),
                _ => None,
            }),
        error_documents: d
            .error_documents
            .iter()
            .map(|(k, v)| {
                (
                    *k,
                    match v {
                        model::ErrorDocument::Local(s) => ErrorDocument::Local(s.clone()),
                        model::ErrorDocument::Remote(s) => ErrorDocument::Remote(s.clone()),
                        model::ErrorDocument::Text(s) => ErrorDocument::Text(s.clone()),
                        model::ErrorDocument::Default => ErrorDocument::Default,
                    },
                )
            })
            .collect(),
        headers: d.headers.iter().filter_map(header_rule).collect(),
        request_headers: d.request_headers.iter().filter_map(header_rule).collect(),
        require: d.require.as_ref().map(require),
        limit_request_body: d.limit_request_body,
        max_ranges: d.max_ranges.map(|m| match m {
            model::MaxRanges::Unlimited => usize::MAX,
            model::MaxRanges::None => 0,
            model::MaxRanges::Limit(n) => n as usize,
        }),
        auth_basic: d
            .auth_type
            .as_ref()
            .map(|t| t.eq_ignore_ascii_case("basic")),
        auth_name: d.auth_name.clone(),
        auth_user_file: d.auth_user_file.clone(),
        substitute: d
            .substitute
            .iter()
            .map(|s| crate::substitute::Rule::parse(s).map(Arc::new))
            .collect::<Result<_, _>>()
            .map_err(Error::Setting)?,
        fallback_resource: d.fallback_resource.clone(),
        add_handler: d
            .add_handler
            .iter()
            .map(|(e, h)| (e.trim_start_matches('.').to_ascii_lowercase(), h.clone()))
            .collect(),
        redirects: d.redirects.iter().map(redirect).collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::strip_port;

    #[test]
    fn strip_port_table() {
        for (name, want) in [
            ("example.com", "example.com"),
            ("example.com:8080", "example.com"),
            ("127.0.0.1:19380", "127.0.0.1"),
            ("http://example.com:80", "example.com"),
            ("https://example.com", "example.com"),
            ("[::1]:443", "[::1]"),
            ("[::1]", "[::1]"),
            ("::1", "::1"),
            ("host:", "host"),
            ("", ""),
        ] {
            assert_eq!(strip_port(name), want, "{name}");
        }
    }
}
