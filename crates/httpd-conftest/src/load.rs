//! Reading configuration files into the resolved [`tree`](crate::tree).
//!
//! What happens here, in config order, as Apache does it while reading:
//! - `Define`/`UnDefine` set variables; `${NAME}` in arguments is replaced from the
//!   Defines seen so far, then from the environment; an undefined one is a warning and
//!   stays as written (Apache's behaviour).
//! - `ServerRoot` at the top level changes where later relative includes resolve.
//! - `Include`/`IncludeOptional` inline files (globs sorted by name, a directory means
//!   every file in it); a missing file or a wildcard matching nothing is an error for
//!   `Include` only; an include loop is an error naming the chain.
//! - `<IfDefine>`, `<IfModule>`, `<IfVersion>`, `<IfFile>`, `<IfDirective>`, `<IfSection>`
//!   are decided; a true one's body is spliced into its parent, a false one's body is kept
//!   as inactive so the validator can lint it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diagnostic::{Diagnostic, Loc, Sources};
use crate::directives;
use crate::syntax::{self, LineKind, Word};
use crate::tree::{Arg, Directive};

/// Sections may nest this deep; deeper is an error rather than a stack overflow.
pub const MAX_NESTING: usize = 128;
/// The largest configuration file read (main or included): 256 MiB.
pub const MAX_FILE: u64 = 256 * 1024 * 1024;
/// Includes may nest this deep (Apache's own limit is 128 too).
pub const MAX_INCLUDE_DEPTH: usize = 128;

/// The Apache version `<IfVersion>` compares against: the one whose directives we know.
pub const APACHE_VERSION: (u32, u32, u32) = (2, 4, 62);

/// A file read failure of the main configuration file (not of an include, which is a
/// diagnostic).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: it is a directory")]
    IsDirectory { path: PathBuf },
    #[error("cannot read {path}: it is larger than {MAX_FILE} bytes")]
    TooLarge { path: PathBuf },
}

pub(crate) struct Loader {
    pub server_root: PathBuf,
    pub defines: HashMap<String, Option<String>>,
    pub diagnostics: Vec<Diagnostic>,
    pub sources: Sources,
    /// The chain of files being read, for loop detection.
    include_stack: Vec<PathBuf>,
}

impl Loader {
    pub fn new(server_root: PathBuf, defines: &[String]) -> Self {
        Loader {
            server_root,
            defines: defines.iter().map(|d| (d.clone(), None)).collect(),
            diagnostics: Vec::new(),
            sources: Sources::default(),
            include_stack: Vec::new(),
        }
    }

    /// Reads the main file; an unreadable main file is an error of its own.
    pub fn load_main(&mut self, path: &Path) -> Result<Vec<Directive>, ReadError> {
        if path.is_dir() {
            return Err(ReadError::IsDirectory {
                path: path.to_path_buf(),
            });
        }
        // Read through a limit, so `/dev/zero` or a runaway pipe cannot exhaust memory.
        let io_err = |source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io_err)?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_FILE + 1), &mut bytes)
            .map_err(io_err)?;
        if bytes.len() as u64 > MAX_FILE {
            return Err(ReadError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        Ok(self.load_bytes(path, &bytes))
    }

    /// Parses text given directly (the embedded default, `-C` directives).
    pub fn load_bytes(&mut self, path: &Path, bytes: &[u8]) -> Vec<Directive> {
        let file: Arc<Path> = Arc::from(path);
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.include_stack.push(canonical);
        let out = self.read_text(&file, bytes);
        self.include_stack.pop();
        out
    }

    fn read_text(&mut self, file: &Arc<Path>, bytes: &[u8]) -> Vec<Directive> {
        if let Some(offset) = memchr::memchr(0, bytes) {
            let text = String::from_utf8_lossy(&bytes[..offset]);
            let line = text.matches('\n').count() as u32 + 1;
            let column = text.rsplit('\n').next().unwrap_or("").chars().count() as u32 + 1;
            self.diagnostics.push(Diagnostic::error(
                &Loc {
                    file: file.clone(),
                    line,
                    column,
                },
                format!(
                    "this is not a text file (NUL byte at offset {offset}); nothing in it was read"
                ),
            ));
            return Vec::new();
        }
        // Valid UTF-8 (the usual case) is checked by the fast validator and copied once.
        let text: Arc<str> = match std::str::from_utf8(bytes) {
            Ok(text) => Arc::from(text),
            Err(_) => Arc::from(String::from_utf8_lossy(bytes).as_ref()),
        };
        self.sources.insert(file, text.clone());
        let raw = self.nest(file, &text);
        self.resolve_all(raw, false, 0)
    }

    /// Turns flat lines into a tree of sections, reporting unbalanced ones.
    fn nest(&mut self, file: &Arc<Path>, text: &str) -> Vec<Directive> {
        // The stack of open sections; the bottom entry collects top-level directives.
        let mut stack: Vec<Directive> = vec![Directive {
            name: String::new(),
            args: Vec::new(),
            loc: loc(file, syntax::Pos { line: 1, column: 1 }),
            children: Some(Vec::new()),
            inactive: false,
            settled: true,
            info: None,
        }];
        let mut too_deep = 0usize;
        // Lines become directives on the threads that parse them; nesting is in order here.
        // Each thread gets its own handle on the file name: one reference count, bumped
        // for every word by several threads at once, would bounce between their caches.
        let to_item = || {
            let file: Arc<Path> = Arc::from(&**file);
            move |parsed: Result<syntax::Line, syntax::SyntaxError>| match parsed {
                Err(e) => Item::Error(Diagnostic::error(&loc(&file, e.pos), e.message)),
                Ok(line) => match line.kind {
                    LineKind::Directive { name, args } => {
                        Item::Leaf(directive(&file, name, args, line.dollar, None))
                    }
                    LineKind::Open { name, args } => {
                        // Room for a typical section's directives without regrowing.
                        let mut section =
                            directive(&file, name, args, line.dollar, Some(Vec::with_capacity(8)));
                        // A section is located at its '<', where the reader's eye goes.
                        section.loc = loc(&file, line.pos);
                        Item::Open(section)
                    }
                    LineKind::Close { name } => Item::Close(name),
                },
            }
        };
        syntax::for_each_line_mapped(text, to_item, |item| match item {
            Item::Error(diagnostic) => self.diagnostics.push(diagnostic),
            Item::Leaf(d) => {
                if too_deep == 0 {
                    push_child(&mut stack, d);
                }
            }
            Item::Open(section) => {
                if too_deep > 0 || stack.len() > MAX_NESTING {
                    if too_deep == 0 {
                        self.diagnostics.push(Diagnostic::error(
                            &section.loc,
                            format!(
                                "sections are nested more than {MAX_NESTING} deep; the rest of this section is not read"
                            ),
                        ));
                    }
                    too_deep += 1;
                    return;
                }
                stack.push(section);
            }
            Item::Close(name) => {
                if too_deep > 0 {
                    too_deep -= 1;
                    return;
                }
                self.close(file, &mut stack, name);
            }
        });
        while stack.len() > 1 {
            let open = stack.pop().expect("len > 1");
            self.diagnostics.push(Diagnostic::error(
                &open.loc,
                format!("<{}> is never closed: expected </{}>", open.name, open.name),
            ));
            push_child(&mut stack, open);
        }
        stack.pop().and_then(|d| d.children).unwrap_or_default()
    }

    fn close(&mut self, file: &Arc<Path>, stack: &mut Vec<Directive>, name: Word) {
        let at = loc(file, name.pos);
        let matches = |open: &Directive| open.name.eq_ignore_ascii_case(&name.text);
        // Nearly always the innermost open section; otherwise search outwards.
        let innermost = stack.len() - 1;
        let depth = if innermost > 0 && matches(&stack[innermost]) {
            Some(innermost)
        } else {
            stack.iter().skip(1).rposition(matches).map(|i| i + 1)
        };
        let Some(depth) = depth else {
            self.diagnostics.push(Diagnostic::error(
                &at,
                format!("</{}> without a matching <{}>", name.text, name.text),
            ));
            return;
        };
        // Sections opened after the one being closed were left open.
        while stack.len() > depth + 1 {
            let open = stack.pop().expect("deeper than depth");
            self.diagnostics.push(Diagnostic::error(
                &open.loc,
                format!(
                    "<{}> is never closed: </{}> at line {} closes an outer section first",
                    open.name, name.text, at.line
                ),
            ));
            push_child(stack, open);
        }
        let done = stack.pop().expect("depth exists");
        push_child(stack, done);
    }

    /// Applies Define, variables, includes and conditionals to `nodes`, in order. A list
    /// with no include and no conditional in it (nearly every section body) is resolved
    /// in place: moving a 100,000-line tree into new vectors costs more than the rest of
    /// resolving.
    fn resolve_all(
        &mut self,
        mut nodes: Vec<Directive>,
        inactive: bool,
        depth: usize,
    ) -> Vec<Directive> {
        if nodes.iter().any(|d| splices(d.info)) {
            let mut out = Vec::with_capacity(nodes.len());
            self.resolve(nodes, inactive, depth, &mut out);
            return out;
        }
        for d in &mut nodes {
            // Parsed as active, with nothing to substitute or apply anywhere below.
            if d.settled && !inactive {
                continue;
            }
            self.apply(d, inactive, depth);
            self.resolve_children(d, inactive, depth);
        }
        nodes
    }

    /// [`Loader::resolve_all`] for a list that may splice: an include's files and a true
    /// conditional's body take their place in `out`.
    fn resolve(
        &mut self,
        nodes: Vec<Directive>,
        inactive: bool,
        depth: usize,
        out: &mut Vec<Directive>,
    ) {
        for mut d in nodes {
            let name = self.apply(&mut d, inactive, depth);
            match name {
                "include" | "includeoptional" if !inactive && !d.is_section() => {
                    let optional = name == "includeoptional";
                    self.include(&d, optional, out);
                }
                "ifdefine" | "ifmodule" | "ifversion" | "iffile" | "ifdirective" | "ifsection"
                    if d.is_section() =>
                {
                    let truth = if inactive { false } else { self.condition(&d) };
                    let children = d.children.take().unwrap_or_default();
                    if truth {
                        self.resolve(children, false, depth, out);
                    } else {
                        // Keep the body, inactive, under the conditional, for linting.
                        d.children = Some(self.resolve_all(children, true, depth));
                        d.inactive = true;
                        out.push(d);
                    }
                    continue;
                }
                _ => {}
            }
            self.resolve_children(&mut d, inactive, depth);
            out.push(d);
        }
    }

    /// Marks `d` inactive or substitutes its variables, and applies it if it is a
    /// Define, UnDefine or top-level ServerRoot. Returns its lowercase name when known.
    fn apply(&mut self, d: &mut Directive, inactive: bool, depth: usize) -> &'static str {
        d.inactive = inactive;
        if !inactive {
            self.substitute(d);
        }
        // The lowercase name of a known directive (no allocation per directive).
        let name = d.info.map_or("", |i| i.key);
        if inactive || d.is_section() {
            return name;
        }
        match name {
            "define" => self.define(d),
            "undefine" => {
                if let Some(a) = d.args.first() {
                    self.defines.remove(&a.value);
                }
            }
            "serverroot" if depth == 0 => {
                if let [arg] = d.args.as_slice() {
                    self.server_root = PathBuf::from(&arg.value);
                }
            }
            _ => {}
        }
        name
    }

    fn resolve_children(&mut self, d: &mut Directive, inactive: bool, depth: usize) {
        if let Some(children) = d.children.take() {
            d.children = Some(self.resolve_all(children, inactive, depth + 1));
        }
    }

    fn define(&mut self, d: &Directive) {
        match d.args.as_slice() {
            [name] => {
                self.defines.insert(name.value.clone(), None);
            }
            [name, value] => {
                self.defines
                    .insert(name.value.clone(), Some(value.value.clone()));
            }
            _ => {} // the validator reports the argument count
        }
    }

    /// Replaces `${NAME}` in every argument (Define first, then the environment).
    fn substitute(&mut self, d: &mut Directive) {
        for arg in &mut d.args {
            if !has_variable(&arg.value) {
                continue;
            }
            let mut out = String::with_capacity(arg.value.len());
            let mut rest = arg.value.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let Some(end) = after.find('}') else {
                    out.push_str(&rest[start..]);
                    rest = "";
                    break;
                };
                let name = &after[..end];
                let value = match self.defines.get(name) {
                    Some(Some(v)) => Some(v.clone()),
                    _ => std::env::var(name).ok(),
                };
                match value {
                    Some(v) => out.push_str(&v),
                    None => {
                        self.diagnostics.push(Diagnostic::warning(
                            &arg.loc,
                            format!(
                                "variable ${{{name}}} is not defined (by Define or in the environment); left as written"
                            ),
                        ));
                        out.push_str(&rest[start..start + 3 + end]);
                    }
                }
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            arg.value = out;
        }
    }

    /// Decides a conditional section. Malformed ones are reported and count as false.
    fn condition(&mut self, d: &Directive) -> bool {
        let name = d.name.to_ascii_lowercase();
        if name == "ifversion" {
            return self.if_version(d);
        }
        let [arg] = d.args.as_slice() else {
            self.diagnostics.push(Diagnostic::error(
                &d.loc,
                format!("<{}> takes exactly one argument", d.name),
            ));
            return false;
        };
        let (negate, subject) = match arg.value.strip_prefix('!') {
            Some(s) => (true, s),
            None => (false, arg.value.as_str()),
        };
        let truth = match name.as_str() {
            "ifdefine" => self.defines.contains_key(subject),
            "ifmodule" => directives::module_provided(subject),
            "iffile" => {
                let p = Path::new(subject);
                if p.is_absolute() {
                    p.exists()
                } else {
                    self.server_root.join(p).exists()
                }
            }
            "ifdirective" => directives::lookup(subject).is_some_and(|info| info.implemented),
            "ifsection" => directives::lookup(subject).is_some_and(|info| info.section),
            _ => false,
        };
        truth != negate
    }

    /// `<IfVersion [[!]operator] version>` against [`APACHE_VERSION`].
    fn if_version(&mut self, d: &Directive) -> bool {
        let vals = d.values();
        let (op, version) = match vals.as_slice() {
            [v] => ("=", *v),
            [op, v] => (*op, *v),
            _ => {
                self.diagnostics.push(Diagnostic::error(
                    &d.loc,
                    "<IfVersion> takes an optional operator and a version",
                ));
                return false;
            }
        };
        let (negate, op) = match op.strip_prefix('!') {
            Some(o) => (true, o),
            None => (false, op),
        };
        let parse = |v: &str| -> Option<(u32, u32, u32)> {
            let mut it = v.split('.').map(|p| p.parse::<u32>());
            let major = it.next()?.ok()?;
            let minor = it.next().unwrap_or(Ok(0)).ok()?;
            let patch = it.next().unwrap_or(Ok(0)).ok()?;
            Some((major, minor, patch))
        };
        let have = APACHE_VERSION;
        let truth = match op {
            "=" | "==" => parse(version).map(|want| {
                // `2.4` matches every 2.4.x, as in mod_version.
                let parts = version.split('.').count();
                match parts {
                    1 => want.0 == have.0,
                    2 => (want.0, want.1) == (have.0, have.1),
                    _ => want == have,
                }
            }),
            ">" => parse(version).map(|w| have > w),
            ">=" => parse(version).map(|w| have >= w),
            "<" => parse(version).map(|w| have < w),
            "<=" => parse(version).map(|w| have <= w),
            "~" => crate::validate::compile_regex(version).ok().and_then(|re| {
                re.is_match(&format!("{}.{}.{}", have.0, have.1, have.2))
                    .ok()
            }),
            _ => None,
        };
        match truth {
            Some(t) => t != negate,
            None => {
                self.diagnostics.push(Diagnostic::error(
                    &d.loc,
                    format!("<IfVersion {op} {version}>: not a valid comparison"),
                ));
                false
            }
        }
    }

    fn include(&mut self, d: &Directive, optional: bool, out: &mut Vec<Directive>) {
        let [arg] = d.args.as_slice() else {
            self.diagnostics.push(Diagnostic::error(
                &d.loc,
                format!(
                    "{} takes exactly one argument: a file, directory or glob",
                    d.name
                ),
            ));
            return;
        };
        if self.include_stack.len() >= MAX_INCLUDE_DEPTH {
            self.diagnostics.push(Diagnostic::error(
                &arg.loc,
                format!("includes are nested more than {MAX_INCLUDE_DEPTH} deep"),
            ));
            return;
        }
        let pattern = if Path::new(&arg.value).is_absolute() {
            PathBuf::from(&arg.value)
        } else {
            self.server_root.join(&arg.value)
        };
        let files = match expand(&pattern) {
            Ok(files) => files,
            Err(message) => {
                if !optional {
                    self.diagnostics.push(Diagnostic::error(&arg.loc, message));
                }
                return;
            }
        };
        for path in files {
            let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if let Some(first) = self.include_stack.iter().position(|p| *p == canonical) {
                let chain: Vec<String> = self.include_stack[first..]
                    .iter()
                    .chain(std::iter::once(&canonical))
                    .map(|p| p.display().to_string())
                    .collect();
                self.diagnostics.push(Diagnostic::error(
                    &arg.loc,
                    format!("include loop: {}", chain.join(" includes ")),
                ));
                continue;
            }
            let (path, read) = read_following_stubs(&path);
            let bytes = match read {
                Ok(b) => b,
                Err(e) => {
                    self.diagnostics.push(Diagnostic::error(
                        &arg.loc,
                        format!("cannot read included file {}: {e}", path.display()),
                    ));
                    continue;
                }
            };
            self.include_stack.push(canonical);
            let file: Arc<Path> = Arc::from(path.as_path());
            let mut included = self.read_text(&file, &bytes);
            self.include_stack.pop();
            out.append(&mut included);
        }
    }
}

/// Reads an included file. A file whose whole content is one relative path naming an
/// existing file is a symbolic link that was stored as text (a git checkout with
/// `core.symlinks=false`, as Debian's `mods-enabled/` often arrives): it is followed, as
/// the real link would be.
fn read_following_stubs(path: &Path) -> (PathBuf, std::io::Result<Vec<u8>>) {
    let mut path = path.to_path_buf();
    for _ in 0..8 {
        match std::fs::metadata(&path) {
            Ok(m) if m.len() > MAX_FILE => {
                let e = std::io::Error::other(format!(
                    "it is {} bytes; configuration files are limited to {MAX_FILE}",
                    m.len()
                ));
                return (path, Err(e));
            }
            _ => {}
        }
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => return (path, Err(e)),
        };
        let looks_like_link = bytes.len() < 4096
            && !bytes.contains(&b'\n')
            && !bytes
                .iter()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            && bytes.first() != Some(&b'/');
        if looks_like_link {
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let target = path.parent().unwrap_or(Path::new(".")).join(text);
                if target.is_file() {
                    path = target;
                    continue;
                }
            }
        }
        return (path, Ok(bytes));
    }
    let bytes = std::fs::read(&path);
    (path, bytes)
}

/// The files an Include names: a file, every file under a directory, or a sorted glob.
fn expand(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let text = pattern.to_string_lossy();
    let is_glob = text.contains(['*', '?', '[']);
    if !is_glob {
        if pattern.is_dir() {
            return Ok(files_under(pattern));
        }
        if pattern.is_file() {
            return Ok(vec![pattern.to_path_buf()]);
        }
        if pattern.exists() {
            // A FIFO or a device (`Include /dev/zero`) would never end.
            return Err(format!(
                "{} is not a regular file or directory",
                pattern.display()
            ));
        }
        return Err(format!(
            "included file {} does not exist (use IncludeOptional if it may be missing)",
            pattern.display()
        ));
    }
    let paths = glob::glob(&text).map_err(|e| format!("bad include pattern {text}: {e}"))?;
    let mut files: Vec<PathBuf> = paths
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    // (a glob's directories are skipped: Apache includes the files a wildcard matches)
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "include pattern {text} matches no file (use IncludeOptional if that is expected)"
        ));
    }
    Ok(files)
}

/// Every regular file under a directory, recursively, sorted (Apache's Include of a dir).
/// Subdirectories reached through symbolic links are not entered (no loops), and devices
/// and FIFOs are skipped (they would never end).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                _ if p.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// A parsed line, made into the tree's types (see [`Loader::nest`]).
enum Item {
    Error(Diagnostic),
    Leaf(Directive),
    Open(Directive),
    Close(Word),
}

fn loc(file: &Arc<Path>, pos: syntax::Pos) -> Loc {
    Loc {
        file: file.clone(),
        line: pos.line,
        column: pos.column,
    }
}

fn directive(
    file: &Arc<Path>,
    name: Word,
    args: Vec<Word>,
    dollar: bool,
    children: Option<Vec<Directive>>,
) -> Directive {
    let info = crate::directives::lookup(&name.text);
    let variables = dollar && args.iter().any(|w| has_variable(&w.text));
    let settled = !variables && !applies(info);
    Directive {
        loc: loc(file, name.pos),
        info,
        name: name.text,
        args: args
            .into_iter()
            .map(|w| Arg {
                loc: loc(file, w.pos),
                value: w.text,
            })
            .collect(),
        children,
        inactive: false,
        settled,
    }
}

/// Whether `s` has a `${`. A plain byte scan first: nearly no argument has a '$' at all,
/// and arguments are too short for a vectorised search to pay its set-up.
fn has_variable(s: &str) -> bool {
    s.as_bytes().contains(&b'$') && s.contains("${")
}

/// Whether resolving a directive with this table entry does more than substitute its
/// variables: applying a Define, UnDefine or ServerRoot, or splicing (see [`splices`]).
fn applies(info: Option<&'static crate::directives::Info>) -> bool {
    matches!(
        info.map_or("", |i| i.key),
        "define" | "undefine" | "serverroot"
    ) || splices(info)
}

/// Whether something other than the directive itself may take its place when resolved:
/// an included file, or a conditional section's body.
fn splices(info: Option<&'static crate::directives::Info>) -> bool {
    matches!(
        info.map_or("", |i| i.key),
        "include"
            | "includeoptional"
            | "ifdefine"
            | "ifmodule"
            | "ifversion"
            | "iffile"
            | "ifdirective"
            | "ifsection"
    )
}

fn push_child(stack: &mut [Directive], d: Directive) {
    let top = stack.last_mut().expect("the stack has a bottom");
    top.settled &= d.settled;
    top.children
        .as_mut()
        .expect("the stack bottom is a section")
        .push(d);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outline(nodes: &[Directive], depth: usize, out: &mut String) {
        for d in nodes {
            let args: Vec<&str> = d.values();
            out.push_str(&format!(
                "{}{}{} {}\n",
                "  ".repeat(depth),
                if d.inactive { "(off) " } else { "" },
                d.name,
                args.join(" ")
            ));
            if let Some(children) = &d.children {
                outline(children, depth + 1, out);
            }
        }
    }

    /// Sections with nothing to splice are resolved in place, the others rebuilt: either
    /// way Defines apply in order at every depth, a true conditional's body takes its
    /// place, a false one stays (inactive), and variables are substituted below both.
    #[test]
    fn resolving_in_place_and_by_splicing_agree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("inc.conf"), "Alias /inc ${WHERE}\n").unwrap();
        let text = "Define WHERE /top\n\
                    <VirtualHost *:80>\n\
                    \x20 DocumentRoot ${WHERE}\n\
                    \x20 Define WHERE /vhost\n\
                    \x20 <Directory ${WHERE}>\n\
                    \x20   Require all granted\n\
                    \x20   <IfDefine WHERE>\n\
                    \x20     Options ${WHERE}\n\
                    \x20   </IfDefine>\n\
                    \x20   <IfDefine !WHERE>\n\
                    \x20     Options None\n\
                    \x20   </IfDefine>\n\
                    \x20 </Directory>\n\
                    \x20 Include inc.conf\n\
                    </VirtualHost>\n\
                    UnDefine WHERE\n\
                    ServerName ${WHERE}\n";
        let mut loader = Loader::new(dir.path().to_path_buf(), &[]);
        let tree = loader.load_bytes(&dir.path().join("main.conf"), text.as_bytes());
        let mut got = String::new();
        outline(&tree, 0, &mut got);
        assert_eq!(
            got,
            "Define WHERE /top\n\
             VirtualHost *:80\n\
             \x20 DocumentRoot /top\n\
             \x20 Define WHERE /vhost\n\
             \x20 Directory /vhost\n\
             \x20   Require all granted\n\
             \x20   Options /vhost\n\
             \x20   (off) IfDefine !WHERE\n\
             \x20     (off) Options None\n\
             \x20 Alias /inc /vhost\n\
             \x20 Include inc.conf\n\
             UnDefine WHERE\n\
             ServerName ${WHERE}\n"
        );
        // The one undefined variable is reported, at its place.
        let undefined: Vec<_> = loader
            .diagnostics
            .iter()
            .map(|d| (d.line, d.message.as_str()))
            .collect();
        assert_eq!(undefined.len(), 1, "{undefined:?}");
        assert_eq!(undefined[0].0, 17);
    }
}
