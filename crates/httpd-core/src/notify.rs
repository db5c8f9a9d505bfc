//! The systemd notify protocol (sd_notify(3)): `READY=1`, `RELOADING=1`, `STOPPING=1` as
//! datagrams to `$NOTIFY_SOCKET`, when it is set.

use std::os::unix::net::UnixDatagram;

/// Sends `msg`; a missing or unreachable socket is ignored (as sd_notify does).
pub fn send(msg: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let res = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(msg.as_bytes(), &a))
    } else {
        sock.send_to(msg.as_bytes(), &path)
    };
    if let Err(e) = res {
        tracing::debug!(error = %e, "NOTIFY_SOCKET send failed");
    }
}
