//! Diagnostics: what is wrong, where, and how to say it.
//!
//! Text form (DESIGN.md): `FILE:LINE:COL: error|warning: message`, then the source line and
//! a caret under the column, then `help: did you mean ...?` when there is a suggestion.
//! JSON form: `{file, line, column, severity, message, suggestion?}`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

/// Where something is in the configuration: a file and a 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Loc {
    pub file: Arc<Path>,
    pub line: u32,
    pub column: u32,
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One problem found in a configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: u32,
    pub column: u32,
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

impl Diagnostic {
    pub fn new(loc: &Loc, severity: Severity, message: impl Into<String>) -> Self {
        Diagnostic {
            file: loc.file.to_path_buf(),
            line: loc.line,
            column: loc.column,
            severity,
            message: message.into(),
            suggestion: None,
        }
    }

    pub fn error(loc: &Loc, message: impl Into<String>) -> Self {
        Self::new(loc, Severity::Error, message)
    }

    pub fn warning(loc: &Loc, message: impl Into<String>) -> Self {
        Self::new(loc, Severity::Warning, message)
    }

    pub fn with_suggestion(mut self, suggestion: Option<String>) -> Self {
        self.suggestion = suggestion;
        self
    }
}

/// The text of every file read, so diagnostics can quote the offending line.
#[derive(Default, Debug, Clone)]
pub struct Sources {
    files: HashMap<PathBuf, Arc<str>>,
}

impl Sources {
    pub fn insert(&mut self, path: &Path, text: Arc<str>) {
        self.files.insert(path.to_path_buf(), text);
    }

    fn line(&self, file: &Path, line: u32) -> Option<&str> {
        let text = self.files.get(file)?;
        let raw = text.split('\n').nth(line.checked_sub(1)? as usize)?;
        Some(raw.strip_suffix('\r').unwrap_or(raw))
    }

    /// Renders diagnostics as text, each with its source line and a caret.
    pub fn render(&self, diagnostics: &[Diagnostic]) -> String {
        let mut out = String::new();
        for d in diagnostics {
            let _ = writeln!(
                out,
                "{}:{}:{}: {}: {}",
                d.file.display(),
                d.line,
                d.column,
                d.severity.as_str(),
                d.message
            );
            if let Some(src) = self.line(&d.file, d.line) {
                let (shown, caret) = excerpt(src, d.column as usize);
                let _ = writeln!(out, "    {shown}");
                let _ = writeln!(out, "    {}^", " ".repeat(caret));
            }
            if let Some(s) = &d.suggestion {
                let _ = writeln!(out, "    help: did you mean `{s}`?");
            }
        }
        out
    }
}

/// At most this many characters of a source line are quoted.
const EXCERPT: usize = 120;

/// The part of `line` to show and the caret's column in it (0-based). Tabs become one
/// space so the caret lines up; long lines are cut around the column with `...`.
fn excerpt(line: &str, column: usize) -> (String, usize) {
    let chars: Vec<char> = line
        .chars()
        .map(|c| if c == '\t' || c.is_control() { ' ' } else { c })
        .collect();
    let col = column.saturating_sub(1).min(chars.len());
    if chars.len() <= EXCERPT {
        return (chars.iter().collect(), col);
    }
    let start = col.saturating_sub(EXCERPT / 2);
    let end = (start + EXCERPT).min(chars.len());
    let mut shown = String::new();
    let mut caret = col - start;
    if start > 0 {
        shown.push_str("...");
        caret += 3;
    }
    shown.extend(&chars[start..end]);
    if end < chars.len() {
        shown.push_str("...");
    }
    (shown, caret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_line_and_caret() {
        let mut sources = Sources::default();
        let file: Arc<Path> = Arc::from(Path::new("/etc/httpd.conf"));
        sources.insert(&file, Arc::from("Listen 80\n\tDocumentRooot /srv\n"));
        let loc = Loc {
            file,
            line: 2,
            column: 2,
        };
        let d = Diagnostic::error(&loc, "unknown directive `DocumentRooot`")
            .with_suggestion(Some("DocumentRoot".into()));
        assert_eq!(
            sources.render(&[d]),
            "/etc/httpd.conf:2:2: error: unknown directive `DocumentRooot`\n     DocumentRooot /srv\n     ^\n    help: did you mean `DocumentRoot`?\n"
        );
    }

    #[test]
    fn long_lines_are_cut_around_the_column() {
        let line = format!("{}X{}", "a".repeat(1000), "b".repeat(1000));
        let (shown, caret) = excerpt(&line, 1001);
        assert!(shown.len() < 140);
        assert_eq!(shown.chars().nth(caret), Some('X'));
    }
}
