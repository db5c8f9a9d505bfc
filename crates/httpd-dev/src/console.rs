//! What a developer sees on stdout: the banner and one line per request (from core's JSON
//! access log), coloured by status class on a terminal unless NO_COLOR is set.

use std::io::{BufRead, BufReader, IsTerminal};
use std::path::PathBuf;

pub fn colour_enabled() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// One request line from a JSON access-log record.
pub fn request_line(json: &str, colour: bool) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let method = v["method"].as_str().unwrap_or("-");
    let mut path = v["path"].as_str().unwrap_or("-").to_string();
    if let Some(q) = v["query"].as_str().filter(|q| !q.is_empty()) {
        path = format!("{path}?{}", q.trim_start_matches('?'));
    }
    let status = v["status"].as_u64().unwrap_or(0);
    let bytes = v["bytes"].as_u64().unwrap_or(0);
    let ms = v["duration_us"].as_u64().unwrap_or(0) as f64 / 1000.0;
    let time = v["time"].as_str().and_then(|t| t.get(11..19)).unwrap_or("");
    let st = if colour {
        let code = match status {
            200..=299 => "32",
            300..=399 => "36",
            400..=499 => "33",
            _ => "31",
        };
        format!("\x1b[{code}m{status}\x1b[0m")
    } else {
        status.to_string()
    };
    Some(format!("[{time}] {method} {path} {st} {bytes} {ms:.1}ms"))
}

/// Reads the access-log FIFO for ever (reopening it when core reopens or restarts).
pub fn follow_access_log(fifo: PathBuf) {
    let colour = colour_enabled();
    std::thread::spawn(move || loop {
        let Ok(f) = std::fs::File::open(&fifo) else {
            return;
        };
        for line in BufReader::new(f).lines().map_while(Result::ok) {
            if let Some(l) = request_line(&line, colour) {
                println!("{l}");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        let rec = r#"{"time":"2026-11-28T09:10:11Z","method":"GET","path":"/a.html","query":null,"status":404,"bytes":12,"duration_us":1500}"#;
        assert_eq!(
            request_line(rec, false).unwrap(),
            "[09:10:11] GET /a.html 404 12 1.5ms"
        );
        assert_eq!(
            request_line(rec, true).unwrap(),
            "[09:10:11] GET /a.html \x1b[33m404\x1b[0m 12 1.5ms"
        );
        assert!(request_line("not json", false).is_none());
    }
}
