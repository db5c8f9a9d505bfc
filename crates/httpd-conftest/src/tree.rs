//! The resolved configuration tree: what the files say once includes are inlined,
//! variables substituted and `<IfDefine>`/`<IfModule>` decided.
//!
//! Every directive and argument keeps its [`Loc`]. Sections that httpd gives meaning to
//! (`<VirtualHost>`, `<Directory>`, `<Location>`, `<Files>`, their Match forms, `<Proxy>`,
//! `<RequireAll>`…) stay as nodes with children; conditional sections disappear into their
//! parent when true. A false conditional's body is kept aside, marked inactive, so it can
//! still be linted.

use crate::diagnostic::Loc;
use serde::Serialize;

/// One argument of a directive, after variable substitution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Arg {
    pub value: String,
    #[serde(skip)]
    pub loc: Loc,
}

/// A directive, or a section with its children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    /// The name as written (case preserved; compare with [`Directive::is`]).
    pub name: String,
    pub args: Vec<Arg>,
    pub loc: Loc,
    /// `Some` for a section (`<Name ...>` … `</Name>`).
    pub children: Option<Vec<Directive>>,
    /// True inside a conditional section that evaluated false (linted, never applied).
    pub inactive: bool,
    /// Nothing in it or below it for the loader to resolve: no `${`, Define, UnDefine,
    /// ServerRoot, Include or conditional section. Set while parsing, so that resolving
    /// can skip the subtree.
    pub settled: bool,
    /// The directive table's entry for the name (None for an unknown name), looked up
    /// once, on the thread that parsed the line.
    pub info: Option<&'static crate::directives::Info>,
}

impl Directive {
    /// Case-insensitive name comparison, as Apache does.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    pub fn is_section(&self) -> bool {
        self.children.is_some()
    }

    /// The argument values as string slices.
    pub fn values(&self) -> Vec<&str> {
        self.args.iter().map(|a| a.value.as_str()).collect()
    }

    /// Where argument `i` is, or the directive itself when there is no such argument.
    pub fn arg_loc(&self, i: usize) -> &Loc {
        self.args.get(i).map(|a| &a.loc).unwrap_or(&self.loc)
    }
}
