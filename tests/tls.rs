//! Black-box tests of httpd-tls with real TLS clients (python3's ssl module, `openssl
//! s_client`, curl) and a tiny backend in the test that records what it receives.
//!
//! Certificates are made once per test process with the openssl CLI: a test CA, server
//! certificates (ECDSA and RSA for the same name, a wildcard, a default) and client
//! certificates for mTLS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use httpd_blackbox::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Certificates

struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// A leaf signed by the CA: `NAME.pem` / `NAME.key`.
fn leaf(dir: &Path, name: &str, key: &str, subject: &str, ext: &[&str]) {
    let (keyout, certout) = (format!("{name}.key"), format!("{name}.pem"));
    let mut args = vec![
        "req", "-x509", "-CA", "ca.pem", "-CAkey", "ca.key", "-newkey", key, "-nodes", "-days",
        "2", "-subj", subject, "-keyout", &keyout, "-out", &certout,
    ];
    if key == "ec" {
        args.extend(["-pkeyopt", "ec_paramgen_curve:prime256v1"]);
    } else {
        args.extend(["-pkeyopt", "rsa_keygen_bits:2048"]);
    }
    for e in ext {
        args.extend(["-addext", e]);
    }
    openssl(dir, &args);
}

fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        require_tool("openssl");
        let dir = tempfile::Builder::new()
            .prefix("httpd-tls-certs-")
            .tempdir()
            .expect("tempdir")
            .keep();
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=httpd test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        let server = ["basicConstraints=CA:FALSE", "extendedKeyUsage=serverAuth"];
        let client = ["basicConstraints=CA:FALSE", "extendedKeyUsage=clientAuth"];
        let with = |san: &str, base: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
            v.push(format!("subjectAltName={san}"));
            v
        };
        let jobs: Vec<(&str, &str, &str, Vec<String>)> = vec![
            (
                "default",
                "ec",
                "/CN=default.test",
                with("DNS:default.test", &server),
            ),
            (
                "a-ec",
                "ec",
                "/CN=a.test",
                with("DNS:a.test,DNS:www.a.test", &server),
            ),
            (
                "a-rsa",
                "rsa",
                "/CN=a.test",
                with("DNS:a.test,DNS:www.a.test", &server),
            ),
            ("wild", "ec", "/CN=wild", with("DNS:*.wild.test", &server)),
            (
                "new",
                "ec",
                "/CN=new.test",
                with("DNS:default.test,DNS:new.test", &server),
            ),
            (
                "alice",
                "ec",
                "/O=Example/CN=alice",
                with("DNS:alice.client", &client),
            ),
        ];
        for (name, key, subject, ext) in &jobs {
            let ext: Vec<&str> = ext.iter().map(String::as_str).collect();
            leaf(&dir, name, key, subject, &ext);
        }
        // A client certificate from a CA the server does not trust.
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=mallory",
                "-keyout",
                "mallory.key",
                "-out",
                "mallory.pem",
                "-addext",
                "extendedKeyUsage=clientAuth",
            ],
        );
        Certs { dir }
    })
}

// ---------------------------------------------------------------------------------------
// The backend: records the PROXY header of each connection, then echoes (or answers one
// HTTP request with "ok").

#[derive(Clone, Copy, PartialEq)]
enum Header {
    V2,
    V1,
    Off,
}

struct Backend {
    addr: SocketAddr,
    headers: mpsc::Receiver<Vec<u8>>,
}

impl Backend {
    fn start(mode: Header) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let addr = listener.local_addr().unwrap();
        let (tx, headers) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let tx = tx.clone();
                std::thread::spawn(move || serve_backend(stream, mode, &tx));
            }
        });
        Backend { addr, headers }
    }

    /// The header of the next connection (waits up to 10 s).
    fn next_header(&self) -> Vec<u8> {
        self.headers
            .recv_timeout(Duration::from_secs(10))
            .expect("backend saw no connection")
    }
}

fn read_header(stream: &mut impl Read, mode: Header) -> std::io::Result<Vec<u8>> {
    let mut header = Vec::new();
    match mode {
        Header::Off => {}
        Header::V2 => {
            let mut fixed = [0u8; 16];
            stream.read_exact(&mut fixed)?;
            let len = u16::from_be_bytes([fixed[14], fixed[15]]) as usize;
            let mut rest = vec![0u8; len];
            stream.read_exact(&mut rest)?;
            header.extend_from_slice(&fixed);
            header.extend_from_slice(&rest);
        }
        Header::V1 => {
            let mut byte = [0u8; 1];
            while !header.ends_with(b"\r\n") && header.len() < 108 {
                stream.read_exact(&mut byte)?;
                header.push(byte[0]);
            }
        }
    }
    Ok(header)
}

fn serve_backend<S: Read + Write>(mut stream: S, mode: Header, tx: &mpsc::Sender<Vec<u8>>) {
    let Ok(header) = read_header(&mut stream, mode) else {
        return;
    };
    let _ = tx.send(header);
    let mut buf = [0u8; 16384];
    let mut seen = Vec::new();
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        seen.extend_from_slice(&buf[..n]);
        if seen.starts_with(b"GET ") || seen.starts_with(b"HEAD ") {
            if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
                );
                return;
            }
        } else if stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// A port that nothing listens on.
fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

// ---------------------------------------------------------------------------------------
// httpd-tls and the clients

struct Tls {
    server: Server,
    addr: SocketAddr,
}

fn start_tls(dir: &Path, args: &[&str]) -> Tls {
    let server = Server::spawn(
        Command::new(bin("httpd-tls"))
            .current_dir(dir)
            .env("HTTPD_TLS_LOG", "debug")
            .args(["--listen", "127.0.0.1:0"])
            .args(args),
    );
    let line = server.wait_for_line("(tls)");
    let addr = listen_addr(&line);
    Tls { server, addr }
}

/// httpd-tls with the default certificate only, forwarding to `backend`, plus `extra` flags.
fn start_default_cert(dir: &Path, backend: &str, extra: &[&str]) -> Tls {
    let c = certs();
    let (cert, key) = (c.path("default.pem"), c.path("default.key"));
    let args = [
        &["--backend", backend, "--cert", &cert, "--key", &key][..],
        extra,
    ]
    .concat();
    start_tls(dir, &args)
}

/// The address in a `listening on ADDR (...)` line.
fn listen_addr(line: &str) -> SocketAddr {
    let rest = line.split("listening on ").nth(1).expect("listening line");
    rest.split_whitespace()
        .next()
        .unwrap()
        .parse()
        .expect("address in the ready line")
}

/// Default server flags: the default cert, a.test as ECDSA and RSA, the wildcard.
fn cert_args(c: &Certs) -> Vec<String> {
    let mut v = Vec::new();
    for name in ["default", "a-ec", "a-rsa", "wild"] {
        v.extend([
            "--cert".to_string(),
            c.path(&format!("{name}.pem")),
            "--key".to_string(),
            c.path(&format!("{name}.key")),
        ]);
    }
    v
}

const PY_CLIENT: &str = r#"
import json, socket, ssl, sys
a = json.loads(sys.argv[1])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
if a.get("ca"):
    ctx.load_verify_locations(a["ca"])
else:
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
if a.get("sni") is None:
    ctx.check_hostname = False
if a.get("alpn"):
    ctx.set_alpn_protocols(a["alpn"])
if a.get("max_tls") == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
if a.get("cert"):
    ctx.load_cert_chain(a["cert"], a["key"])
out = {}
def exchange(s, msg):
    s.sendall(msg.encode())
    got = b""
    while len(got) < len(msg):
        d = s.recv(65536)
        if not d:
            break
        got += d
    return got.decode()
try:
    raw = socket.create_connection((a["host"], a["port"]), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=a.get("sni"))
    out["client_port"] = s.getsockname()[1]
    out["version"] = s.version()
    out["cipher"] = s.cipher()[0]
    out["alpn"] = s.selected_alpn_protocol()
    der = s.getpeercert(binary_form=True)
    out["der_len"] = len(der)
    cert = s.getpeercert()
    if cert:
        out["san"] = [v for (k, v) in cert.get("subjectAltName", ())]
    if a.get("banner"):
        out["banner"] = s.recv(65536).decode()
    out["reply"] = exchange(s, a.get("send", "ping"))
    if a.get("hold"):
        print(json.dumps(out), flush=True)
        sys.stdin.readline()
        out = {"reply2": exchange(s, "second")}
except Exception as e:
    out["error"] = repr(e)
print(json.dumps(out), flush=True)
"#;

fn py(addr: SocketAddr, opts: Value) -> Value {
    require_tool("python3");
    let mut opts = opts;
    opts["host"] = json!(addr.ip().to_string());
    opts["port"] = json!(addr.port());
    let out = Command::new("python3")
        .args(["-c", PY_CLIENT, &opts.to_string()])
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "python client printed {stdout:?}; stderr {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn sans(v: &Value) -> Vec<String> {
    v["san"]
        .as_array()
        .unwrap_or_else(|| panic!("no certificate seen: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// `openssl s_client` output for one connection.
fn s_client(addr: SocketAddr, extra: &[&str]) -> String {
    require_tool("openssl");
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string(), "-brief"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The PROXY v2 header httpd-tls must send for a connection (spec §2.2, TLVs §2.2.1–2.2.5).
fn expected_v2(client_port: u16, server_port: u16, tlvs: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut body = vec![127, 0, 0, 1, 127, 0, 0, 1];
    body.extend_from_slice(&client_port.to_be_bytes());
    body.extend_from_slice(&server_port.to_be_bytes());
    for (kind, value) in tlvs {
        body.push(*kind);
        body.extend_from_slice(&(value.len() as u16).to_be_bytes());
        body.extend_from_slice(value);
    }
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11]);
    header.extend_from_slice(&(body.len() as u16).to_be_bytes());
    header.extend_from_slice(&body);
    header
}

fn ssl_tlv(client: u8, subs: &[(u8, &str)]) -> (u8, Vec<u8>) {
    let mut v = vec![client, 0, 0, 0, 0];
    for (kind, s) in subs {
        v.push(*kind);
        v.extend_from_slice(&(s.len() as u16).to_be_bytes());
        v.extend_from_slice(s.as_bytes());
    }
    (0x20, v)
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn version_flag_answers() {
    let sb = Sandbox::new();
    let out = run("httpd-tls", sb.path(), &["--version"]);
    assert_eq!(out.status, Some(0), "{out:?}");
}

#[test]
fn each_certificate_is_chosen_by_sni() {
    let c = certs();
    let sb = Sandbox::new();
    let backend = Backend::start(Header::Off);
    let be = backend.addr.to_string();
    let mut args = vec!["--backend", &be, "--proxy-protocol", "off"];
    let ca = cert_args(c);
    args.extend(ca.iter().map(String::as_str));
    let tls = start_tls(sb.path(), &args);

    let table: &[(Option<&str>, &[&str])] = &[
        (Some("default.test"), &["default.test"]),
        (Some("a.test"), &["a.test", "www.a.test"]),
        (Some("www.a.test"), &["a.test", "www.a.test"]),
        (Some("x.wild.test"), &["*.wild.test"]),
        (Some("unknown.test"), &["default.test"]),
        (None, &["default.test"]),
    ];
    for (sni, want) in table {
        // Verify against the CA only where the name is on the certificate.
        let verify = want.iter().any(|w| Some(*w) == *sni || w.starts_with('*'));
        let got = py(
            tls.addr,
            json!({"sni": sni, "ca": if verify { Some(c.path("ca.pem")) } else { None }, "send": "hello"}),
        );
        if verify {
            assert_eq!(sans(&got), *want, "sni {sni:?}: {got}");
        } else {
            assert!(got["error"].is_null(), "sni {sni:?}: {got}");
        }
        assert_eq!(got["reply"], "hello", "sni {sni:?}: {got}");
    }
    // Unverified connections: check which certificate came by its DER size against the files.
    let default_der = pem_der_len(&c.path("default.pem"));
    let got = py(tls.addr, json!({"sni": "unknown.test"}));
    assert_eq!(got["der_len"], default_der, "{got}");
    let got = py(tls.addr, json!({}));
    assert_eq!(got["der_len"], default_der, "{got}");

    // curl with SNI through --resolve, verifying against the CA.
    require_tool("curl");
    let port = tls.addr.port();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--http1.1",
            "--max-time",
            "10",
            "--cacert",
            &c.path("ca.pem"),
        ])
        .args(["--resolve", &format!("www.a.test:{port}:127.0.0.1")])
        .arg(format!("https://www.a.test:{port}/"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pem_der_len(path: &str) -> usize {
    let out = Command::new("openssl")
        .args(["x509", "-in", path, "-outform", "DER"])
        .output()
        .unwrap();
    out.stdout.len()
}

#[test]
fn ecdsa_and_rsa_for_one_name_are_chosen_by_client_signature_schemes() {
    let c = certs();
    let sb = Sandbox::new();
    let backend = Backend::start(Header::Off);
    let be = backend.addr.to_string();
    let mut args = vec!["--backend", &be, "--proxy-protocol", "off"];
    let ca = cert_args(c);
    args.extend(ca.iter().map(String::as_str));
    let tls = start_tls(sb.path(), &args);

    let both = s_client(tls.addr, &["-servername", "a.test"]);
    assert!(both.contains("Signature type: ECDSA"), "{both}");
    let rsa_only = s_client(
        tls.addr,
        &[
            "-servername",
            "a.test",
            "-sigalgs",
            "rsa_pss_rsae_sha256:RSA+SHA256",
        ],
    );
    assert!(rsa_only.contains("Signature type: RSA"), "{rsa_only}");
    assert!(
        rsa_only.contains("Peer certificate: CN = a.test"),
        "{rsa_only}"
    );
    let tls12_rsa = s_client(
        tls.addr,
        &[
            "-servername",
            "a.test",
            "-tls1_2",
            "-cipher",
            "ECDHE-RSA-AES128-GCM-SHA256",
        ],
    );
    assert!(
        tls12_rsa.contains("Ciphersuite: ECDHE-RSA-AES128-GCM-SHA256"),
        "{tls12_rsa}"
    );
}

#[test]
fn proxy_v2_header_carries_addresses_alpn_sni_and_tls_details() {
    let c = certs();
    let sb = Sandbox::new();
    let backend = Backend::start(Header::V2);
    let be = backend.addr.to_string();
    let mut args = vec!["--backend", &be];
    let ca = cert_args(c);
    args.extend(ca.iter().map(String::as_str));
    let tls = start_tls(sb.path(), &args);
    let port = tls.addr.port();

    let got = py(
        tls.addr,
        json!({"sni": "a.test", "ca": c.path("ca.pem"), "alpn": ["h2", "http/1.1"]}),
    );
    assert_eq!(got["alpn"], "h2", "{got}");
    assert_eq!(got["version"], "TLSv1.3", "{got}");
    assert_eq!(got["reply"], "ping", "{got}");
    let want = expected_v2(
        got["client_port"].as_u64().unwrap() as u16,
        port,
        &[
            (0x01, b"h2".to_vec()),
            (0x02, b"a.test".to_vec()),
            ssl_tlv(
                0x01,
                &[(0x21, "TLSv1.3"), (0x23, got["cipher"].as_str().unwrap())],
            ),
        ],
    );
    assert_eq!(backend.next_header(), want);

    // TLS 1.2, http/1.1, no SNI: no AUTHORITY TLV, OpenSSL's TLS 1.2 cipher name.
    let got = py(tls.addr, json!({"alpn": ["http/1.1"], "max_tls": "1.2"}));
    assert_eq!(got["version"], "TLSv1.2", "{got}");
    let cipher = got["cipher"].as_str().unwrap();
    assert!(cipher.starts_with("ECDHE-ECDSA-"), "{got}");
    let want = expected_v2(
        got["client_port"].as_u64().unwrap() as u16,
        port,
        &[
            (0x01, b"http/1.1".to_vec()),
            ssl_tlv(0x01, &[(0x21, "TLSv1.2"), (0x23, cipher)]),
        ],
    );
    assert_eq!(backend.next_header(), want);
}

#[test]
fn proxy_v1_and_off() {
    let c = certs();
    for (mode, flag) in [(Header::V1, "v1"), (Header::Off, "off")] {
        let sb = Sandbox::new();
        let backend = Backend::start(mode);
        let be = backend.addr.to_string();
        let tls = start_tls(
            sb.path(),
            &[
                "--backend",
                &be,
                "--proxy-protocol",
                flag,
                "--cert",
                &c.path("default.pem"),
                "--key",
                &c.path("default.key"),
            ],
        );
        let got = py(tls.addr, json!({"send": "payload"}));
        assert_eq!(got["reply"], "payload", "{got}");
        let header = backend.next_header();
        let want = match mode {
            Header::V1 => format!(
                "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\n",
                got["client_port"],
                tls.addr.port()
            ),
            _ => String::new(),
        };
        assert_eq!(String::from_utf8_lossy(&header), want, "{flag}");
    }
}

/// A backend that speaks first (a banner, as SMTP or IMAP do) gets its PROXY header while
/// the client sends nothing: httpd-tls sends the header together with the client's first
/// bytes only when they are already there, never waiting for them.
#[test]
fn backend_that_speaks_first_gets_the_header_before_the_client_sends() {
    let sb = Sandbox::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let be = listener.local_addr().unwrap().to_string();
    let (tx, headers) = mpsc::channel();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let Ok(header) = read_header(&mut stream, Header::V2) else {
                    return;
                };
                let _ = tx.send(header);
                let _ = stream.write_all(b"220 banner\r\n");
                serve_backend(stream, Header::Off, &tx);
            });
        }
    });
    let tls = start_default_cert(sb.path(), &be, &[]);
    let got = py(
        tls.addr,
        json!({"banner": true, "send": "after the banner"}),
    );
    assert_eq!(got["banner"], "220 banner\r\n", "{got}");
    assert_eq!(got["reply"], "after the banner", "{got}");
    let header = headers.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(&header[..12], b"\r\n\r\n\0\r\nQUIT\n", "a v2 signature");
}

#[test]
fn unix_socket_backend() {
    let sb = Sandbox::new();
    let sock = sb.path().join("core.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let (tx, headers) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || serve_backend(stream, Header::V2, &tx));
        }
    });
    let backend = format!("unix:{}", sock.display());
    let tls = start_default_cert(sb.path(), &backend, &[]);
    let got = py(tls.addr, json!({"send": "over unix"}));
    assert_eq!(got["reply"], "over unix", "{got}");
    let header = headers.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(&header[12..14], &[0x21, 0x11], "TCP4 client addresses");
}

#[test]
fn sighup_reloads_certificates_and_keeps_open_connections() {
    let c = certs();
    let sb = Sandbox::new();
    let backend = Backend::start(Header::Off);
    let be = backend.addr.to_string();
    let cert = sb.write("cert.pem", std::fs::read(c.path("default.pem")).unwrap());
    let key = sb.write("key.key", std::fs::read(c.path("default.key")).unwrap());
    let (cert_s, key_s) = (cert.display().to_string(), key.display().to_string());
    let mut tls = start_tls(
        sb.path(),
        &[
            "--backend",
            &be,
            "--proxy-protocol",
            "off",
            "--cert",
            &cert_s,
            "--key",
            &key_s,
        ],
    );
    let ca = c.path("ca.pem");

    // An open connection that outlives two reloads.
    let mut opts = json!({"sni": "default.test", "ca": ca, "hold": true});
    opts["host"] = json!("127.0.0.1");
    opts["port"] = json!(tls.addr.port());
    let mut held = Command::new("python3")
        .args(["-c", PY_CLIENT, &opts.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut held_out = BufReader::new(held.stdout.take().unwrap());
    let mut line = String::new();
    held_out.read_line(&mut line).unwrap();
    let first: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(sans(&first), ["default.test"], "{first}");

    std::fs::copy(c.path("new.pem"), &cert).unwrap();
    std::fs::copy(c.path("new.key"), &key).unwrap();
    signal(tls.server.pid(), "HUP");
    tls.server.wait_for_line("reloaded certificates");
    let got = py(tls.addr, json!({"sni": "default.test", "ca": ca}));
    assert_eq!(sans(&got), ["default.test", "new.test"], "{got}");

    std::fs::write(&cert, "not a certificate\n").unwrap();
    signal(tls.server.pid(), "HUP");
    let failed = tls.server.wait_for_line("reload failed");
    assert!(failed.contains("cert.pem"), "{failed}");
    let got = py(tls.addr, json!({"sni": "new.test", "ca": ca}));
    assert_eq!(
        sans(&got),
        ["default.test", "new.test"],
        "old certificate kept: {got}"
    );

    // SIGTERM: no new connections, but the open one is drained, not cut.
    signal(tls.server.pid(), "TERM");
    tls.server.wait_for_line("stopping");
    held.stdin.take().unwrap().write_all(b"go\n").unwrap();
    line.clear();
    held_out.read_line(&mut line).unwrap();
    let second: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(second["reply2"], "second", "{second}");
    held.wait().unwrap();
    assert_eq!(tls.server.wait_exit(Duration::from_secs(15)), Some(0));
}

#[test]
fn client_certificates_required_and_optional() {
    let c = certs();
    let backend = Backend::start(Header::V2);
    let be = backend.addr.to_string();
    let ca = c.path("ca.pem");
    let base = |mode: &str| -> Vec<String> {
        [
            "--backend",
            &be,
            "--cert",
            &c.path("default.pem"),
            "--key",
            &c.path("default.key"),
            "--client-ca",
            &ca,
            "--client-auth",
            mode,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let alice = json!({"cert": c.path("alice.pem"), "key": c.path("alice.key"), "send": "hi"});
    let mallory =
        json!({"cert": c.path("mallory.pem"), "key": c.path("mallory.key"), "send": "hi"});

    let sb = Sandbox::new();
    let args = base("required");
    let tls = start_tls(
        sb.path(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let got = py(tls.addr, alice.clone());
    assert_eq!(got["reply"], "hi", "{got}");
    let header = backend.next_header();
    let want_ssl = ssl_tlv(
        0x07,
        &[
            (0x21, "TLSv1.3"),
            (0x22, "alice"),
            (0x23, got["cipher"].as_str().unwrap()),
        ],
    );
    let want = expected_v2(
        got["client_port"].as_u64().unwrap() as u16,
        tls.addr.port(),
        &[want_ssl],
    );
    assert_eq!(header, want);
    for client in [json!({"send": "hi"}), mallory.clone()] {
        let got = py(tls.addr, client);
        assert!(got["reply"] != "hi", "rejected client got through: {got}");
    }

    let sb = Sandbox::new();
    let args = base("optional");
    let tls = start_tls(
        sb.path(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let got = py(tls.addr, json!({"send": "hi"}));
    assert_eq!(
        got["reply"], "hi",
        "no certificate is fine when optional: {got}"
    );
    let want_ssl = ssl_tlv(
        0x01,
        &[(0x21, "TLSv1.3"), (0x23, got["cipher"].as_str().unwrap())],
    );
    let want = expected_v2(
        got["client_port"].as_u64().unwrap() as u16,
        tls.addr.port(),
        &[want_ssl],
    );
    assert_eq!(backend.next_header(), want, "client flags: SSL only, no CN");
    let got = py(tls.addr, mallory);
    assert!(
        got["reply"] != "hi",
        "an untrusted certificate is still refused: {got}"
    );
}

#[test]
fn redirect_http_answers_301_to_https() {
    let sb = Sandbox::new();
    let be = dead_port().to_string();
    let tls = start_default_cert(sb.path(), &be, &["--redirect-http", "127.0.0.1:0"]);
    let line = tls.server.wait_for_line("(http redirect");
    let plain = listen_addr(&line);
    let reply = raw_exchange(
        plain,
        b"GET /docs/?q=1 HTTP/1.1\r\nHost: example.test\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(reply.starts_with("HTTP/1.1 301 "), "{reply}");
    let location = format!(
        "\r\nLocation: https://example.test:{}/docs/?q=1\r\n",
        tls.addr.port()
    );
    assert!(reply.contains(&location), "{reply}");
    let reply = raw_exchange(plain, b"GET / HTTP/1.0\r\n\r\n", Duration::from_secs(10));
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
}

/// Reads until EOF; panics if the server kept the connection open past `limit`.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = Vec::new();
    match stream.read_to_end(&mut buf) {
        Ok(_) => buf,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => buf,
        Err(e) => panic!("server did not close the connection: {e}"),
    }
}

#[test]
fn bad_input_plain_http_garbage_stalled_handshake_and_backend_down() {
    let sb = Sandbox::new();
    let be = dead_port().to_string();
    let tls = start_default_cert(sb.path(), &be, &["--handshake-timeout", "500ms"]);
    let reply = raw_exchange(
        tls.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(reply.starts_with("HTTP/1.1 400 "), "plain HTTP: {reply}");
    assert!(reply.contains("https://"), "{reply}");

    let mut garbage = TcpStream::connect(tls.addr).unwrap();
    garbage.write_all(b"\x00\x01\x02\x03garbage").unwrap();
    assert!(read_until_closed(&mut garbage, Duration::from_secs(10)).is_empty());

    // A handshake record header and then silence: closed by the handshake timeout
    // (the read limit is far above it, so only a close ends the read).
    let mut stalled = TcpStream::connect(tls.addr).unwrap();
    stalled.write_all(b"\x16\x03\x01\x02\x00\x01").unwrap();
    let _ = read_until_closed(&mut stalled, Duration::from_secs(20));
    let mut silent = TcpStream::connect(tls.addr).unwrap();
    assert!(read_until_closed(&mut silent, Duration::from_secs(20)).is_empty());

    // Backend down: the handshake completes, then the client is closed and it is logged.
    let got = py(tls.addr, json!({"send": "x"}));
    assert!(got["reply"] != "x", "{got}");
    tls.server.wait_for_line("backend unavailable");
    // ...and the server keeps serving.
    let got = py(tls.addr, json!({"send": "x"}));
    assert_eq!(got["version"], "TLSv1.3", "{got}");
}

#[test]
fn alpn_min_tls_and_self_signed() {
    let sb = Sandbox::new();
    let backend = Backend::start(Header::Off);
    let be = backend.addr.to_string();
    let tls = start_tls(
        sb.path(),
        &[
            "--backend",
            &be,
            "--proxy-protocol",
            "off",
            "--self-signed",
            "dev.test",
            "localhost",
            "--alpn",
            "http/1.1",
            "--min-tls",
            "1.3",
        ],
    );
    let got = py(tls.addr, json!({"alpn": ["h2", "http/1.1"]}));
    assert_eq!(got["alpn"], "http/1.1", "{got}");
    assert_eq!(got["reply"], "ping", "{got}");
    let text = s_client(tls.addr, &["-servername", "dev.test", "-showcerts"]);
    assert!(
        text.contains("dev.test") || text.contains("rcgen"),
        "{text}"
    );
    let got = py(tls.addr, json!({"max_tls": "1.2"}));
    assert!(
        got["error"].is_string(),
        "TLS 1.2 refused under --min-tls 1.3: {got}"
    );
}

#[test]
fn startup_errors_are_clear_with_exit_codes() {
    let c = certs();
    let sb = Sandbox::new();
    let empty = sb.write("empty.pem", "");
    let missing = sb.path().join("missing.pem");
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let (def, defk, rsak) = (
        c.path("default.pem"),
        c.path("default.key"),
        c.path("a-rsa.key"),
    );
    let (empty, missing) = (empty.display().to_string(), missing.display().to_string());
    let table: &[(&[&str], i32, &str)] = &[
        (&["--cert", &missing, "--key", &defk], 66, "cannot read"),
        (&["--cert", &def, "--key", &missing], 66, "missing.pem"),
        (
            &["--cert", &def, "--key", &rsak],
            78,
            "does not match certificate",
        ),
        (
            &["--cert", &empty, "--key", &defk],
            78,
            "no certificate found",
        ),
        (&["--cert", &def, "--key", &def], 78, "no private key found"),
        (&["--cert", &def], 78, "give each certificate its key"),
        (&["--cert", &def, "--key", &defk, "--bogus"], 2, "--bogus"),
    ];
    for (args, code, needle) in table {
        let out = run(
            "httpd-tls",
            sb.path(),
            &[
                &["--listen", "127.0.0.1:0", "--backend", "127.0.0.1:9"],
                *args,
            ]
            .concat(),
        );
        assert_eq!(out.status, Some(*code), "{args:?}: {out:?}");
        assert!(out.stderr.contains(needle), "{args:?}: {out:?}");
        assert!(!out.stderr.contains("panicked"), "{out:?}");
    }
    let out = run(
        "httpd-tls",
        sb.path(),
        &[
            "--listen",
            &busy_addr,
            "--backend",
            "127.0.0.1:9",
            "--cert",
            &def,
            "--key",
            &defk,
        ],
    );
    assert_eq!(out.status, Some(74), "{out:?}");
    assert!(
        out.stderr.contains("httpd-tls: error: cannot listen on"),
        "{out:?}"
    );
}

#[test]
fn apache_config_file_supplies_listeners_and_certificates() {
    let c = certs();
    let sb = Sandbox::new();
    let backend = Backend::start(Header::Off);
    let be = backend.addr.to_string();
    // A free port for the vhost address (the file cannot say "port 0").
    let port = dead_port().port();
    sb.mkdir("www");
    let conf = format!(
        "ServerRoot \"{root}\"\n\
         Listen 127.0.0.1:{port}\n\
         <VirtualHost 127.0.0.1:{port}>\n\
         \x20   ServerName a.test\n\
         \x20   DocumentRoot www\n\
         \x20   SSLEngine on\n\
         \x20   SSLCertificateFile {a}\n\
         \x20   SSLCertificateKeyFile {ak}\n\
         \x20   SSLProtocol -all +TLSv1.3\n\
         </VirtualHost>\n\
         <VirtualHost 127.0.0.1:{port}>\n\
         \x20   ServerName x.wild.test\n\
         \x20   DocumentRoot www\n\
         \x20   SSLEngine on\n\
         \x20   SSLCertificateFile {w}\n\
         \x20   SSLCertificateKeyFile {wk}\n\
         \x20   SSLProtocol -all +TLSv1.3\n\
         </VirtualHost>\n",
        root = sb.path().display(),
        a = c.path("a-ec.pem"),
        ak = c.path("a-ec.key"),
        w = c.path("wild.pem"),
        wk = c.path("wild.key"),
    );
    let conf_path = sb.write("httpd.conf", &conf);
    let conf_s = conf_path.display().to_string();
    let server = Server::spawn(Command::new(bin("httpd-tls")).current_dir(sb.path()).args([
        "-f",
        &conf_s,
        "--backend",
        &be,
        "--proxy-protocol",
        "off",
    ]));
    let addr = listen_addr(&server.wait_for_line("(tls)"));
    assert_eq!(addr.port(), port);
    let ca = c.path("ca.pem");
    let got = py(addr, json!({"sni": "y.wild.test", "ca": ca}));
    assert_eq!(sans(&got), ["*.wild.test"], "{got}");
    let got = py(addr, json!({}));
    assert_eq!(
        got["der_len"],
        pem_der_len(&c.path("a-ec.pem")),
        "first vhost is the default: {got}"
    );
    let got = py(addr, json!({"max_tls": "1.2"}));
    assert!(got["error"].is_string(), "SSLProtocol -all +TLSv1.3: {got}");
    drop(server);

    // A config with errors: the diagnostics and exit 78, nothing started.
    sb.write("bad.conf", "SSLEngnie on\n");
    let out = run(
        "httpd-tls",
        sb.path(),
        &["-f", "bad.conf", "--backend", &be],
    );
    assert_eq!(out.status, Some(78), "{out:?}");
    assert!(out.stderr.contains("bad.conf:1:"), "{out:?}");
    let out = run(
        "httpd-tls",
        sb.path(),
        &["-f", "missing.conf", "--backend", &be],
    );
    assert_eq!(out.status, Some(66), "{out:?}");
}

#[test]
fn end_to_end_through_core_with_h2_and_the_real_client_address() {
    let c = certs();
    let sb = Sandbox::new();
    sb.write("www/hello.txt", "hello through core\n");
    let log = sb.path().join("access.log");
    let conf = sb.write(
        "httpd.conf",
        format!(
            "Listen 127.0.0.1:0\nDocumentRoot \"{}/www\"\nRemoteIPProxyProtocol On\n\
             CustomLog \"{}\" \"%a %>s\"\n",
            sb.path().display(),
            log.display()
        ),
    );
    let core = Server::spawn(
        Command::new(bin("httpd-core"))
            .current_dir(sb.path())
            .arg("-f")
            .arg(&conf),
    );
    let line = core.wait_for_line("listening on http://");
    let core_addr = line.rsplit("http://").next().unwrap().trim().to_string();
    core.wait_for_line("ready");
    let tls = start_tls(
        sb.path(),
        &[
            "--backend",
            &core_addr,
            "--cert",
            &c.path("a-ec.pem"),
            "--key",
            &c.path("a-ec.key"),
        ],
    );
    require_tool("curl");
    let port = tls.addr.port();
    // The client connects from 127.0.0.2, httpd-tls to core from 127.0.0.1: the log
    // shows which address core took.
    for (flag, want_version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let out = Command::new("curl")
            .args(["-sS", flag, "--max-time", "10", "--interface", "127.0.0.2"])
            .args(["--cacert", &c.path("ca.pem")])
            .args(["--resolve", &format!("a.test:{port}:127.0.0.1")])
            .args(["-w", "\n%{http_version}"])
            .arg(format!("https://a.test:{port}/hello.txt"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout,
            format!("hello through core\n\n{want_version}"),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(tls);
    drop(core);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "127.0.0.2 200\n127.0.0.2 200\n"
    );
}

#[test]
fn ocsp_response_is_stapled() {
    let c = certs();
    let sb = Sandbox::new();
    // A one-entry responder database saying the default certificate is good.
    let serial = Command::new("openssl")
        .args(["x509", "-in", &c.path("default.pem"), "-noout", "-serial"])
        .output()
        .unwrap();
    let serial = String::from_utf8_lossy(&serial.stdout);
    let serial = serial.trim().trim_start_matches("serial=");
    sb.write(
        "index.txt",
        format!("V\t301231000000Z\t\t{serial}\tunknown\t/CN=default.test\n"),
    );
    openssl(
        sb.path(),
        &[
            "ocsp",
            "-index",
            "index.txt",
            "-rsigner",
            &c.path("ca.pem"),
            "-rkey",
            &c.path("ca.key"),
            "-CA",
            &c.path("ca.pem"),
            "-issuer",
            &c.path("ca.pem"),
            "-cert",
            &c.path("default.pem"),
            "-respout",
            "resp.der",
            "-ndays",
            "1",
        ],
    );
    let backend = Backend::start(Header::Off);
    let be = backend.addr.to_string();
    let tls = start_tls(
        sb.path(),
        &[
            "--backend",
            &be,
            "--proxy-protocol",
            "off",
            "--cert",
            &c.path("default.pem"),
            "--ocsp",
            "resp.der",
            "--key",
            &c.path("default.key"),
        ],
    );
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &tls.addr.to_string(), "-status"])
        .args(["-servername", "default.test"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("OCSP Response Status: successful"), "{text}");
    assert!(text.contains("Cert Status: good"), "{text}");

    // A PEM file where DER is expected: refused at start.
    let out = run(
        "httpd-tls",
        sb.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            &be,
            "--cert",
            &c.path("default.pem"),
            "--ocsp",
            &c.path("default.pem"),
            "--key",
            &c.path("default.key"),
        ],
    );
    assert_eq!(out.status, Some(78), "{out:?}");
    assert!(out.stderr.contains("OCSP"), "{out:?}");
}

#[test]
fn max_connections_queues_the_next_client_until_one_closes() {
    let c = certs();
    let sb = Sandbox::new();
    let backend = Backend::start(Header::Off);
    let be = backend.addr.to_string();
    let tls = start_tls(
        sb.path(),
        &[
            "--backend",
            &be,
            "--proxy-protocol",
            "off",
            "--max-connections",
            "1",
            "--cert",
            &c.path("default.pem"),
            "--key",
            &c.path("default.key"),
        ],
    );
    let mut opts = json!({"hold": true});
    opts["host"] = json!("127.0.0.1");
    opts["port"] = json!(tls.addr.port());
    let mut held = Command::new("python3")
        .args(["-c", PY_CLIENT, &opts.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut held_out = BufReader::new(held.stdout.take().unwrap());
    let mut line = String::new();
    held_out.read_line(&mut line).unwrap();
    assert!(line.contains("\"reply\": \"ping\""), "{line}");

    // The second client waits in the backlog: no answer while the first is open...
    let mut queued = TcpStream::connect(tls.addr).unwrap();
    queued
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    queued
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = queued.read(&mut byte);
    assert!(early.is_err(), "answered while at the limit: {early:?}");
    // ...and is served once it closes.
    held.stdin.take().unwrap().write_all(b"go\n").unwrap();
    held.wait().unwrap();
    let reply = String::from_utf8_lossy(&read_until_closed(&mut queued, Duration::from_secs(20)))
        .into_owned();
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
}

/// With `-f`, SIGHUP reads the file again: a changed SSLCertificateFile path serves new
/// handshakes; a broken file is reported (with its diagnostics) and the old certificate
/// keeps serving; changed VirtualHost addresses are logged as needing a restart and the
/// listener stays where it was.
#[test]
fn sighup_rereads_the_config_file() {
    let c = certs();
    let sb = Sandbox::new();
    let backend = Backend::start(Header::Off);
    let be = backend.addr.to_string();
    let port = dead_port().port();
    sb.mkdir("www");
    let conf = |port: u16, cert: &str| {
        format!(
            "ServerRoot \"{root}\"\n\
             <VirtualHost 127.0.0.1:{port}>\n\
             \x20   ServerName a.test\n\
             \x20   DocumentRoot www\n\
             \x20   SSLEngine on\n\
             \x20   SSLCertificateFile {pem}\n\
             \x20   SSLCertificateKeyFile {key}\n\
             </VirtualHost>\n",
            root = sb.path().display(),
            pem = c.path(&format!("{cert}.pem")),
            key = c.path(&format!("{cert}.key")),
        )
    };
    let conf_path = sb.write("httpd.conf", conf(port, "a-ec"));
    let conf_s = conf_path.display().to_string();
    let server = Server::spawn(Command::new(bin("httpd-tls")).current_dir(sb.path()).args([
        "-f",
        &conf_s,
        "--backend",
        &be,
        "--proxy-protocol",
        "off",
    ]));
    let addr = listen_addr(&server.wait_for_line("(tls)"));
    server.wait_for_line("ready");
    let served = || py(addr, json!({}))["der_len"].clone();
    assert_eq!(served(), pem_der_len(&c.path("a-ec.pem")));

    // Another certificate file named in the config.
    sb.write("httpd.conf", conf(port, "wild"));
    signal(server.pid(), "HUP");
    server.wait_for_line("reloaded certificates");
    assert_eq!(
        served(),
        pem_der_len(&c.path("wild.pem")),
        "new path in effect"
    );

    // A broken file: the diagnostic is logged, the last good certificate stays.
    sb.write(
        "httpd.conf",
        format!("{}SSLEngnie on\n", conf(port, "a-ec")),
    );
    signal(server.pid(), "HUP");
    let failed = server.wait_for_line("reload failed");
    assert!(failed.contains("configuration has errors"), "{failed}");
    server.wait_for_line("httpd.conf:9:");
    assert_eq!(
        served(),
        pem_der_len(&c.path("wild.pem")),
        "old certificate kept"
    );

    // A certificate that does not load: reported, the old one kept.
    sb.write("bad.pem", "not a certificate\n");
    sb.write(
        "httpd.conf",
        conf(port, "a-ec").replace(
            &c.path("a-ec.pem"),
            &sb.path().join("bad.pem").display().to_string(),
        ),
    );
    signal(server.pid(), "HUP");
    let failed = server.wait_for_line("reload failed");
    assert!(failed.contains("bad.pem"), "{failed}");
    assert_eq!(served(), pem_der_len(&c.path("wild.pem")));

    // Another port in the file: certificates reload, the listener does not move.
    let other = dead_port().port();
    sb.write("httpd.conf", conf(other, "a-ec"));
    signal(server.pid(), "HUP");
    server.wait_for_line("listeners are not changed by a reload");
    server.wait_for_line("reloaded certificates");
    assert_eq!(served(), pem_der_len(&c.path("a-ec.pem")));
    assert!(
        TcpStream::connect(("127.0.0.1", other)).is_err(),
        "nothing bound on the new port"
    );
}
