//! `--open`: show the served URL in the user's browser. `$BROWSER` first (a `:`-separated
//! list of commands, `%s` standing for the URL, as Python's `webbrowser` and xdg-utils read
//! it), then the desktop's opener: `xdg-open`, or `open` on macOS (on Linux `open` may be
//! `openvt`). Never fatal: a machine without a browser still gets a server.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// The commands to try, in order, each a shell command line with the URL as `$1`.
pub fn candidates(browser_env: Option<&str>) -> Vec<String> {
    let mut list: Vec<String> = browser_env
        .unwrap_or("")
        .split(':')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            if c.contains("%s") {
                c.replace("%s", "\"$1\"")
            } else {
                format!("{c} \"$1\"")
            }
        })
        .collect();
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    list.push(format!("{opener} \"$1\""));
    list
}

/// Opens `url` with the first candidate whose program exists; the name of that program,
/// or None. The browser runs in its own process group and outlives httpd-dev (it is the
/// user's, not part of the server); a thread reaps the launcher.
pub fn open(url: &str) -> Option<String> {
    let env = std::env::var("BROWSER").ok();
    for cmd in candidates(env.as_deref()) {
        let program = cmd.split_whitespace().next().unwrap_or("");
        if crate::supervisor::on_path(program).is_none() {
            continue;
        }
        let spawned = Command::new("sh")
            .args(["-c", &cmd, "httpd-dev-open", url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        if let Ok(mut child) = spawned {
            std::thread::spawn(move || child.wait());
            return Some(program.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(not(target_os = "macos"))]
    fn browser_variable_forms() {
        assert_eq!(
            candidates(Some("firefox --new-tab:chromium %s &")),
            [
                "firefox --new-tab \"$1\"",
                "chromium \"$1\" &",
                "xdg-open \"$1\"",
            ]
        );
        assert_eq!(candidates(Some(" : ")), ["xdg-open \"$1\""]);
        assert_eq!(candidates(None), ["xdg-open \"$1\""]);
    }
}
