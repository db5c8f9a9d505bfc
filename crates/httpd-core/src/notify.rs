//! The systemd notify protocol (sd_notify(3)): `READY=1`, `RELOADING=1`, `STOPPING=1` as
//! datagrams to `$NOTIFY_SOCKET` (a path, or an abstract name written `@name`), when it is
//! set. [`reloading`] carries `MONOTONIC_USEC`, which `Type=notify-reload` units require.

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

/// `RELOADING=1` with the `MONOTONIC_USEC=` systemd (253+) wants beside it.
pub fn reloading() {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(t) => {
            let usec = t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000;
            send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
        }
        Err(_) => send("RELOADING=1"),
    }
}
