//! The few operating-system calls the standard library, tokio and socket2 do not wrap:
//! adopting a socket inherited from systemd, raising the open-file limit, TCP_DEFER_ACCEPT
//! (AcceptFilter; nix has only the BSDs' accept filters), the zero-copy writes (sendfile,
//! MSG_MORE), and the poller of parked connections.
#![allow(unsafe_code)]

use std::os::fd::FromRawFd;

use crate::listener::Listener;

/// Adopts an inherited listening socket (TCP or Unix) by its descriptor.
pub fn listener_from_fd(fd: i32) -> Option<Listener> {
    // SAFETY: systemd passed this descriptor to us (LISTEN_PID checked by the caller);
    // nothing else in the process owns it.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: addr and len are valid for writes of the sizes given.
    let rc = unsafe { libc::getsockname(fd, &mut addr as *mut _ as *mut libc::sockaddr, &mut len) };
    if rc != 0 {
        return None;
    }
    let mut listening: libc::c_int = 0;
    let mut optlen = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: listening and optlen are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            &mut listening as *mut _ as *mut libc::c_void,
            &mut optlen,
        )
    };
    if rc != 0 || listening == 0 {
        return None;
    }
    // Inherited without close-on-exec (it had to survive systemd's exec): set it now, so
    // no CGI script or piped logger gets the listening socket.
    // SAFETY: fcntl on a descriptor we were given; no memory is passed.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return None;
    }
    if addr.ss_family as i32 == libc::AF_UNIX {
        // SAFETY: fd is an open Unix socket we own from now on.
        let std_l = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
        std_l.set_nonblocking(true).ok()?;
        let path = std_l
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| p.to_path_buf()))
            .unwrap_or_default();
        let l = tokio::net::UnixListener::from_std(std_l).ok()?;
        Some(Listener::Unix(l, path))
    } else {
        // SAFETY: fd is an open TCP socket we own from now on.
        let std_l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
        std_l.set_nonblocking(true).ok()?;
        Some(Listener::Tcp(
            tokio::net::TcpListener::from_std(std_l).ok()?,
        ))
    }
}

/// Raises the soft open-file limit to the hard limit, so MaxRequestWorkers connections fit.
pub fn raise_nofile_limit() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: rl is a valid rlimit to write into.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return 1024;
    }
    if rl.rlim_cur < rl.rlim_max {
        let want = libc::rlimit {
            rlim_cur: rl.rlim_max,
            rlim_max: rl.rlim_max,
        };
        // SAFETY: want is a valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            return want.rlim_cur;
        }
    }
    rl.rlim_cur
}

/// Opens `rel` (relative, no `..`) under the directory `root` with openat2(2) and
/// RESOLVE_BENEATH: the kernel refuses any resolution that leaves `root`, through `..` or
/// a symlink (absolute symlinks are refused even when they point inside; the caller then
/// falls back to a canonical-path check). One syscall instead of a realpath walk.
/// Errors: EXDEV/ELOOP when resolution would leave the root, ENOSYS on old kernels.
pub fn open_beneath(root: &std::os::fd::OwnedFd, rel: &str) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let rel = if rel.is_empty() { "." } else { rel };
    let c =
        std::ffi::CString::new(rel).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: open_how is a plain struct; zeroed is a valid starting value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: the pointers are valid for the duration of the call, the size matches.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { std::fs::File::from_raw_fd(fd as i32) })
}

/// Opens a directory as a handle for [`open_beneath`].
pub fn open_dir(path: &std::path::Path) -> Option<std::os::fd::OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_PATH)
        .open(path)
        .ok()
        .map(std::os::fd::OwnedFd::from)
}

/// TCP_DEFER_ACCEPT on a listening socket: connections are handed to accept(2) once their
/// first bytes arrive, or after about `secs` seconds.
pub fn defer_accept(sock: &impl std::os::fd::AsRawFd, secs: i32) -> std::io::Result<()> {
    let v: libc::c_int = secs;
    // SAFETY: setsockopt reads an int of the size given from a valid pointer.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// sendfile(2) from `file` at `*offset` (advanced) to the socket `sock`: bytes sent.
pub fn sendfile(
    sock: std::os::fd::RawFd,
    file: &std::fs::File,
    offset: &mut libc::off_t,
    len: usize,
) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: the caller's socket and the file are open for the call; `offset` is a valid
    // pointer for its duration.
    let n = unsafe { libc::sendfile(sock, file.as_raw_fd(), offset, len) };
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}

/// sendmsg(2) of `bufs` with MSG_MORE (more data follows: no partial segment is pushed
/// yet): bytes sent.
pub fn send_more(
    sock: std::os::fd::RawFd,
    bufs: &[std::io::IoSlice<'_>],
) -> std::io::Result<usize> {
    // SAFETY: a zeroed msghdr (no address, no control data) is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is ABI-compatible with iovec on Unix (std guarantees it); the kernel only
    // reads through the pointer.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len().min(1024) as _;
    // SAFETY: msg points at `bufs`, which outlive the call.
    let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_MORE | libc::MSG_NOSIGNAL) };
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}

/// An epoll instance (through mio) that tokio's reactor watches as one descriptor, so a
/// task can wait on many sockets without registering each with tokio: the poller of
/// parked connections ([`crate::parking`]).
pub struct Poller {
    poll: std::sync::Mutex<mio::Poll>,
    fd: std::os::fd::RawFd,
}

impl std::os::fd::AsRawFd for Poller {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd
    }
}

impl Poller {
    /// The poller in tokio's reactor (inside the runtime), and its registry, where
    /// sockets are added.
    pub fn new() -> std::io::Result<(tokio::io::unix::AsyncFd<Poller>, mio::Registry)> {
        use std::os::fd::AsRawFd;
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let fd = poll.as_raw_fd();
        let poller = Poller {
            poll: std::sync::Mutex::new(poll),
            fd,
        };
        // SAFETY: `fd` is the descriptor of the mio::Poll the Poller owns: it stays open
        // and the same for as long as the AsyncFd holds the Poller.
        let ready = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(poller, tokio::io::Interest::READABLE)
        }
        .map_err(std::io::Error::from)?;
        Ok((ready, registry))
    }

    /// The sockets ready now, without waiting.
    pub fn poll(&self, events: &mut mio::Events) -> std::io::Result<()> {
        let mut poll = self.poll.lock().unwrap_or_else(|e| e.into_inner());
        poll.poll(events, Some(std::time::Duration::ZERO))
    }
}
