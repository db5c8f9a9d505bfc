//! PATTERN: a strftime file name pattern, the clock it is read in (UTC or local), and the
//! matcher that finds the files of a series again (for retention).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Local, Offset, TimeZone, Utc};
use regex::Regex;

use crate::error::Error;

/// A parsed file name pattern such as `/var/log/httpd/access.%Y-%m-%d.log`.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    items: Vec<Item<'static>>,
    local: bool,
}

impl Pattern {
    /// Parses `text`; `local` formats the fields in local time instead of UTC.
    pub fn parse(text: &str, local: bool) -> Result<Pattern, Error> {
        let bad = |reason: &str| Error::Pattern {
            pattern: text.to_string(),
            reason: reason.to_string(),
        };
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        if text.ends_with('/') {
            return Err(bad("it names a directory, not a file"));
        }
        let items = StrftimeItems::new(text).parse_to_owned().map_err(|_| {
            bad("it has an unknown or incomplete strftime field (write %% for a literal %)")
        })?;
        let pattern = Pattern {
            text: text.to_string(),
            items,
            local,
        };
        // Fields that parse but cannot be formatted (none known today) are caught here, once.
        pattern
            .try_format(0)
            .ok_or_else(|| bad("it cannot be formatted"))?;
        Ok(pattern)
    }

    /// The pattern as typed.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the pattern has strftime fields (so the name changes with time).
    pub fn has_fields(&self) -> bool {
        self.text.contains('%')
    }

    /// Whether fields are formatted in local time.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// The file name for the instant `secs` (Unix time).
    pub fn format(&self, secs: i64) -> PathBuf {
        PathBuf::from(self.try_format(secs).unwrap_or_else(|| self.text.clone()))
    }

    fn try_format(&self, secs: i64) -> Option<String> {
        let mut out = String::new();
        let utc = DateTime::<Utc>::from_timestamp(secs, 0)?;
        let done = if self.local {
            write!(
                out,
                "{}",
                utc.with_timezone(&Local)
                    .format_with_items(self.items.iter())
            )
        } else {
            write!(out, "{}", utc.format_with_items(self.items.iter()))
        };
        done.ok().map(|()| out)
    }

    /// The offset of the pattern's clock from UTC at `secs`, in seconds (0 for UTC).
    pub fn utc_offset(&self, secs: i64) -> i64 {
        if !self.local {
            return 0;
        }
        match Local.timestamp_opt(secs, 0).single() {
            Some(t) => i64::from(t.offset().fix().local_minus_utc()),
            None => 0,
        }
    }

    /// A matcher for every file this pattern can produce, with the `.N` collision suffix
    /// and the `.gz` of a compressed file.
    pub fn series(&self) -> Series {
        let mut components = Vec::new();
        let path = Path::new(&self.text);
        let names: Vec<_> = path.components().collect();
        let mut root = PathBuf::new();
        let mut started = false;
        for (i, c) in names.iter().enumerate() {
            let s = c.as_os_str().to_string_lossy();
            let last = i + 1 == names.len();
            if !started && !s.contains('%') && !last {
                root.push(c.as_os_str());
                continue;
            }
            started = true;
            components.push(Component::new(&s, last));
        }
        if root.as_os_str().is_empty() {
            root.push(".");
        }
        Series { root, components }
    }
}

/// One path component of a series: a literal name or a regex.
#[derive(Debug)]
enum Component {
    Literal(String),
    Match(Regex),
}

impl Component {
    fn new(text: &str, last: bool) -> Component {
        if !text.contains('%') && !last {
            return Component::Literal(text.to_string());
        }
        let mut re = String::from("^");
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                re.push_str(&regex::escape(&c.to_string()));
                continue;
            }
            // Skip strftime's padding flags and widths (`%-d`, `%_H`, `%:z`, `%.3f`).
            while let Some(&f) = chars.peek() {
                if "-_0^#.:123456789".contains(f) {
                    chars.next();
                } else {
                    break;
                }
            }
            match chars.next() {
                Some('%') => re.push('%'),
                Some('n') => re.push_str("\\n"),
                Some('t') => re.push_str("\\t"),
                Some(f) if "YCymdeHkIlMSsjUWVGgwuf".contains(f) => re.push_str("[ 0-9]+"),
                Some(f) if "aAbBhpP".contains(f) => re.push_str("[A-Za-z]+"),
                Some(f) if "FDxTXRr".contains(f) => re.push_str("[-0-9:/ APMapm]+"),
                Some(f) if "zZ".contains(f) => re.push_str("[-+:A-Za-z0-9]+"),
                _ => re.push_str("[^/]+"),
            }
        }
        if last {
            re.push_str(r"(\.[0-9]+)?(\.gz)?");
        }
        re.push('$');
        Component::Match(Regex::new(&re).expect("escaped pattern regex is valid"))
    }
}

/// Finds the files of a series on disk.
#[derive(Debug)]
pub struct Series {
    root: PathBuf,
    components: Vec<Component>,
}

/// A file of the series as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesFile {
    pub path: PathBuf,
    pub size: u64,
    pub modified: std::time::SystemTime,
}

impl Series {
    /// Every regular file of the series, in no particular order.
    pub fn list(&self) -> Vec<SeriesFile> {
        let mut dirs = vec![self.root.clone()];
        let mut files = Vec::new();
        for (i, component) in self.components.iter().enumerate() {
            let last = i + 1 == self.components.len();
            let mut next = Vec::new();
            for dir in &dirs {
                match component {
                    Component::Literal(name) => next.push(dir.join(name)),
                    Component::Match(re) => {
                        let Ok(entries) = std::fs::read_dir(dir) else {
                            continue;
                        };
                        for entry in entries.flatten() {
                            let name = entry.file_name();
                            if re.is_match(&name.to_string_lossy()) {
                                next.push(entry.path());
                            }
                        }
                    }
                }
            }
            if last {
                for path in next {
                    // symlink_metadata: the --link symlink is never part of the series.
                    let Ok(meta) = std::fs::symlink_metadata(&path) else {
                        continue;
                    };
                    if meta.is_file() {
                        files.push(SeriesFile {
                            path,
                            size: meta.len(),
                            modified: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                        });
                    }
                }
                break;
            }
            dirs = next;
        }
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_utc() {
        // 2025-03-01T13:04:05Z
        let t = 1_740_834_245;
        for (pattern, want) in [
            ("/l/access.%Y-%m-%d.log", "/l/access.2025-03-01.log"),
            ("/l/%Y/%m/a.%H%M%S", "/l/2025/03/a.130405"),
            ("a.%s", "a.1740834245"),
            ("plain.log", "plain.log"),
            ("100%%.log", "100%.log"),
        ] {
            let p = Pattern::parse(pattern, false).unwrap();
            assert_eq!(p.format(t), PathBuf::from(want), "{pattern}");
        }
    }

    #[test]
    fn rejects_bad_patterns() {
        for bad in ["", "dir/", "a.%Q", "a.%"] {
            assert!(Pattern::parse(bad, false).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn series_matches_suffixes_and_gz() {
        let c = Component::new("access.%Y-%m-%d.log", true);
        let Component::Match(re) = c else {
            panic!("literal")
        };
        for (name, want) in [
            ("access.2025-03-01.log", true),
            ("access.2025-03-01.log.1", true),
            ("access.2025-03-01.log.12.gz", true),
            ("access.2025-03-01.log.gz", true),
            ("access.2025-03-01.log.old", false),
            ("access.backup.log", false),
            ("other.2025-03-01.log", false),
        ] {
            assert_eq!(re.is_match(name), want, "{name}");
        }
    }
}
