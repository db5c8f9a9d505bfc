//! The Apache-syntax configuration httpd-dev writes for httpd-core: generic directives only
//! (DocumentRoot, Alias, Substitute, ProxyPass + FallbackResource, ErrorDocument, Header,
//! CustomLog), nothing core knows as "dev".

use std::fmt::Write;
use std::net::SocketAddr;
use std::path::Path;

/// The development error page, as core serves it from the state directory.
const ERROR_PAGE: &str = "/__httpd_dev/502.html";
/// Loopback in every form a client address can take (IPv4-mapped too).
const LOOPBACK: &str = "127.0.0.0/8 ::1 ::ffff:127.0.0.0/104";

pub struct Plan<'a> {
    pub listen: SocketAddr,
    pub root: &'a Path,
    /// Where the live-reload script and the error page live (`/__httpd_dev/`).
    pub state: &'a Path,
    /// The access log FIFO httpd-dev reads.
    pub access_log: &'a Path,
    pub app_port: Option<u16>,
    pub inject: bool,
    /// httpd-tls in front (--https): it sends a PROXY header with the client's address.
    pub proxy_protocol: bool,
}

fn q(p: &Path) -> String {
    format!(
        "\"{}\"",
        p.display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
    )
}

pub fn render(p: &Plan) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "# Written by httpd-dev; regenerated on every start.");
    let _ = writeln!(c, "Listen {}", p.listen);
    let _ = writeln!(c, "ServerName localhost");
    if p.proxy_protocol {
        let _ = writeln!(c, "RemoteIPProxyProtocol On");
    }
    let _ = writeln!(c, "DocumentRoot {}", q(p.root));
    let _ = writeln!(c, "DirectoryIndex index.html index.htm");
    let _ = writeln!(
        c,
        "<Directory {}>\n    Options FollowSymLinks\n</Directory>",
        q(p.root)
    );
    let _ = writeln!(c, "Alias /__httpd_dev/ {}", q(&p.state.join("www/")));
    let _ = writeln!(c, "Header always set Cache-Control no-store");
    let _ = writeln!(c, "CustomLog {} json", q(p.access_log));
    let _ = writeln!(c, "<Location />");
    if p.inject {
        let _ = writeln!(
            c,
            "    Substitute \"s|</body>|<script src=\\\"/__httpd_dev/livereload.js\\\"></script></body>|i\""
        );
    }
    if p.app_port.is_some() {
        let _ = writeln!(c, "    FallbackResource /__httpd_dev_app");
    }
    let _ = writeln!(c, "</Location>");
    if let Some(port) = p.app_port {
        let _ = writeln!(c, "ProxyPass /__httpd_dev_app http://127.0.0.1:{port}");
        let _ = writeln!(c, "ErrorDocument 502 {ERROR_PAGE}");
        let _ = writeln!(c, "ErrorDocument 503 {ERROR_PAGE}");
        // The page shows the command and its output: loopback clients only (the client
        // core sees, through httpd-tls's PROXY header too); core gives others its plain
        // 502, as an ErrorDocument denied to a client falls back to the built-in page.
        let _ = writeln!(
            c,
            "<Location {ERROR_PAGE}>\n    Require ip {LOOPBACK}\n</Location>"
        );
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_config_routes_files_first_then_the_app() {
        let plan = Plan {
            listen: "127.0.0.1:8000".parse().unwrap(),
            root: Path::new("/site"),
            state: Path::new("/tmp/s"),
            access_log: Path::new("/tmp/s/access.fifo"),
            app_port: Some(9001),
            inject: true,
            proxy_protocol: false,
        };
        let c = render(&plan);
        for want in [
            "Listen 127.0.0.1:8000\n",
            "DocumentRoot \"/site\"\n",
            "FallbackResource /__httpd_dev_app\n",
            "ProxyPass /__httpd_dev_app http://127.0.0.1:9001\n",
            "ErrorDocument 502 /__httpd_dev/502.html\n",
            "<Location /__httpd_dev/502.html>\n    Require ip 127.0.0.0/8 ::1 ::ffff:127.0.0.0/104\n</Location>\n",
            "Substitute \"s|</body>|",
            "Header always set Cache-Control no-store\n",
        ] {
            assert!(c.contains(want), "{want} in\n{c}");
        }
        let c = render(&Plan {
            app_port: None,
            inject: false,
            ..plan
        });
        assert!(!c.contains("ProxyPass") && !c.contains("Substitute"));
    }
}
