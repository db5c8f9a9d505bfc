//! The development error page (HTTP 502 through core's `ErrorDocument`): what the app is
//! doing, and for a crash the command, its exit status and the last lines of its output.
//! It carries the live-reload script, so it reloads itself when the app is back. Only
//! loopback clients get it: the generated config guards it with `Require ip` (core applies
//! an ErrorDocument's access rules per client), so others get core's plain 502. That one
//! reloads itself too: the config's `Substitute` puts the live-reload script into every
//! HTML response, core's built-in error pages included.

/// HTML-escapes text for element content.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub enum AppState<'a> {
    Starting,
    Crashed { status: &'a str, tail: &'a [String] },
}

/// The page.
pub fn render(command: &str, state: &AppState) -> String {
    let (title, body) = match state {
        AppState::Starting => (
            "The app is starting".to_string(),
            "<p>This page reloads when it answers.</p>".to_string(),
        ),
        AppState::Crashed { status, tail } => (
            "The app is not running".to_string(),
            format!(
                "<p>Command: <code>{}</code></p>\n<p>Exit status: <code>{}</code></p>\n\
                 <p>Last lines of its output:</p>\n<pre>{}</pre>\n\
                 <p>Fix the code: the app restarts when a watched file changes, and this page reloads.</p>",
                escape(command),
                escape(status),
                escape(&tail.join("\n"))
            ),
        ),
    };
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title} (httpd-dev)</title>\
         <style>body{{font-family:sans-serif;margin:2em}}pre{{background:#f4f4f4;padding:1em;overflow:auto}}</style>\
         </head>\n<body><h1>{title}</h1>\n{body}\n\
         <script src=\"/__httpd_dev/livereload.js\"></script></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crashed_page_shows_command_status_and_output() {
        let tail = vec!["Traceback <x>".to_string()];
        let st = AppState::Crashed {
            status: "exit status 1",
            tail: &tail,
        };
        let page = render("python3 app.py", &st);
        for want in [
            "python3 app.py",
            "exit status 1",
            "Traceback &lt;x&gt;",
            "livereload.js",
        ] {
            assert!(page.contains(want), "{want}");
        }
        let page = render("python3 app.py", &AppState::Starting);
        assert!(!page.contains("python3 app.py") && page.contains("livereload.js"));
    }
}
