//! Argument-count and type checks shared by every directive.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::values::*;
use super::*;
use crate::tree::{Arg, Directive};

impl Validator<'_> {
    /// Exactly one argument.
    pub(super) fn one<'d>(&mut self, d: &'d Directive) -> Option<&'d Arg> {
        match d.args.as_slice() {
            [a] => Some(a),
            [] => {
                self.error(&d.loc, format!("{} takes one argument, none given", d.name));
                None
            }
            [_, extra, ..] => {
                self.error(
                    &extra.loc,
                    format!("{} takes one argument, {} given", d.name, d.args.len()),
                );
                None
            }
        }
    }

    /// `On` or `Off`.
    pub(super) fn flag(&mut self, d: &Directive) -> Option<bool> {
        let a = self.one(d)?;
        match a.value.to_ascii_lowercase().as_str() {
            "on" => Some(true),
            "off" => Some(false),
            _ => {
                self.error(
                    &a.loc,
                    format!("{} must be On or Off, not {:?}", d.name, a.value),
                );
                None
            }
        }
    }

    /// One of `choices` (case-insensitive); returns it lowercased.
    pub(super) fn keyword(&mut self, d: &Directive, choices: &[&str]) -> Option<String> {
        let a = self.one(d)?;
        let v = a.value.to_ascii_lowercase();
        if choices.iter().any(|c| c.eq_ignore_ascii_case(&v)) {
            Some(v)
        } else {
            self.error(
                &a.loc,
                format!(
                    "{} must be one of {}, not {:?}",
                    d.name,
                    choices.join(", "),
                    a.value
                ),
            );
            None
        }
    }

    /// A whole number in `min..=max`.
    pub(super) fn number(&mut self, d: &Directive, min: u64, max: u64) -> Option<u64> {
        let a = self.one(d)?;
        match a.value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            Ok(n) => {
                self.error(
                    &a.loc,
                    format!("{} must be between {min} and {max}, not {n}", d.name),
                );
                None
            }
            Err(_) => {
                self.error(
                    &a.loc,
                    format!("{} must be a whole number, not {:?}", d.name, a.value),
                );
                None
            }
        }
    }

    /// Seconds (Apache's unit), or with an `ms` suffix as Apache 2.4 also accepts.
    pub(super) fn duration(&mut self, d: &Directive) -> Option<Duration> {
        let a = self.one(d)?;
        match parse_duration(&a.value) {
            Some(t) => Some(t),
            None => {
                self.error(
                    &a.loc,
                    format!(
                        "{} must be a number of seconds (or Nms), not {:?}",
                        d.name, a.value
                    ),
                );
                None
            }
        }
    }

    /// A path, relative ones resolved against ServerRoot.
    pub(super) fn rooted(&self, p: &str) -> PathBuf {
        let path = Path::new(p);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.server_root.join(path)
        }
    }

    /// Whether `p` is a directory, a file or missing (cached: paths repeat across vhosts).
    pub(super) fn file_kind(&mut self, p: &Path) -> FileKind {
        if let Some(k) = self.file_kinds.get(p.as_os_str()) {
            return *k;
        }
        let kind = match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => FileKind::Dir,
            Ok(_) => FileKind::File,
            Err(_) => FileKind::Missing,
        };
        self.file_kinds.insert(p.as_os_str().to_owned(), kind);
        kind
    }
}
