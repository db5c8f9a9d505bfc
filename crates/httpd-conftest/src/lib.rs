//! The configuration language of httpd: Apache httpd 2.4's syntax, parsed once for every
//! binary that reads it (httpd-core, httpd-tls, httpd-dev, and the `httpd-conftest`
//! validator).
//!
//! Codemap, in the order data flows:
//! - [`syntax`]: the nom grammar of one file → lines of words with positions.
//! - [`load`]: files → the resolved [`tree`]: sections nested, `Include`s inlined,
//!   `Define`/`${VAR}` substituted, `<IfDefine>`/`<IfModule>` decided.
//! - [`directives`]: every Apache 2.4 directive (from the manual's table) and which ones
//!   httpd implements.
//! - [`validate`]: tree → typed [`model::Config`] plus [`Diagnostic`]s: names, contexts,
//!   argument counts, types and values.
//! - [`lint`]: semantic warnings (shadowed ProxyPass, duplicate ServerName, …).
//! - [`diagnostic`]: locations, severities, and rendering as text or JSON.
//! - [`cli`]: the `httpd-conftest` command line.
//!
//! Entry points: [`load`] (a file) and [`load_str`] (text, such as an embedded default).

pub mod cli;
pub mod diagnostic;
pub mod directives;
mod lint;
pub mod load;
pub mod model;
pub mod syntax;
pub mod tree;
pub mod validate;

use std::path::{Path, PathBuf};

pub use diagnostic::{Diagnostic, Loc, Severity, Sources};
pub use load::ReadError;
pub use model::Config;

/// How to read a configuration (the `-d`, `-D` and `-C` flags of the binaries).
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `-d DIR`: ServerRoot, against which relative paths resolve. Default: the directory
    /// of the main file.
    pub server_root: Option<PathBuf>,
    /// `-D NAME`: names defined for `<IfDefine>`.
    pub defines: Vec<String>,
    /// `-C "Directive args"`: directives read before the file.
    pub directives: Vec<String>,
    /// The process exits right after this check (`httpd-conftest`, `-t`): the parsed
    /// tree is left for the exit to reclaim instead of being freed piece by piece (on a
    /// 100,000-line file, a third of the work of the whole check, on another thread).
    pub exit_after: bool,
}

/// A configuration read and validated: the typed model and every problem found.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub diagnostics: Vec<Diagnostic>,
    /// The text of every file read, to quote lines in rendered diagnostics.
    pub sources: Sources,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    pub fn has_warnings(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Warning)
    }

    /// Errors only (and warnings too under `strict`) count as failing.
    pub fn fails(&self, strict: bool) -> bool {
        self.has_errors() || (strict && self.has_warnings())
    }

    /// The diagnostics as text: `FILE:LINE:COL: severity: message`, source line, caret.
    pub fn render(&self) -> String {
        self.sources.render(&self.diagnostics)
    }
}

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Loaded, ReadError> {
    let root = match &opts.server_root {
        Some(r) => r.clone(),
        None => path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    let root = std::path::absolute(&root).unwrap_or(root);
    let mut loader = load::Loader::new(root, &opts.defines);
    let mut tree = command_line(&mut loader, opts);
    tree.extend(loader.load_main(path)?);
    Ok(finish(loader, tree, opts.exit_after))
}

/// Reads and validates configuration text that is not in a file (`name` labels it in
/// diagnostics). ServerRoot defaults to the current directory.
pub fn load_str(text: &str, name: &str, opts: &LoadOptions) -> Loaded {
    let root = opts
        .server_root
        .clone()
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."));
    let mut loader = load::Loader::new(root, &opts.defines);
    let mut tree = command_line(&mut loader, opts);
    tree.extend(loader.load_bytes(Path::new(name), text.as_bytes()));
    finish(loader, tree, opts.exit_after)
}

fn command_line(loader: &mut load::Loader, opts: &LoadOptions) -> Vec<tree::Directive> {
    if opts.directives.is_empty() {
        return Vec::new();
    }
    let text = opts.directives.join("\n");
    loader.load_bytes(Path::new("<command line -C>"), text.as_bytes())
}

fn finish(loader: load::Loader, tree: Vec<tree::Directive>, exit_after: bool) -> Loaded {
    let load::Loader {
        server_root,
        mut diagnostics,
        sources,
        ..
    } = loader;
    let config = validate::Validator::new(&mut diagnostics, server_root).build(&tree);
    // Freeing a large tree node by node takes a while; nobody needs to wait for it. (If
    // the thread cannot start, the closure and the tree are dropped here instead.)
    if exit_after {
        std::mem::forget(tree);
    } else if tree.len() > 1000 {
        let _ = std::thread::Builder::new().spawn(move || drop(tree));
    }
    lint::lint(&config, &mut diagnostics);
    // Each file's problems together, in line order; files in the order first seen.
    let mut order: Vec<PathBuf> = Vec::new();
    for d in &diagnostics {
        if !order.contains(&d.file) {
            order.push(d.file.clone());
        }
    }
    diagnostics.sort_by_key(|d| (order.iter().position(|f| *f == d.file), d.line, d.column));
    diagnostics.dedup();
    Loaded {
        config,
        diagnostics,
        sources,
    }
}
