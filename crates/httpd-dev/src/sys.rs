//! Process-group signals and exit waits: `kill(2)` and `waitid(2)` have no safe wrapper in
//! std; neither has a child's last words before `exec` (`pre_exec`).
#![allow(unsafe_code)]

/// Sends `sig` to every process in the group `pgid`; false when none is left.
pub fn kill_group(pgid: u32, sig: i32) -> bool {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc::kill(-(pgid as i32), sig) == 0 }
}

/// Blocks until our child `pid` has exited, without reaping it (`WNOWAIT`), so that whoever
/// owns its `Child` still collects the status. Returns at once when `pid` is not (or no
/// longer) a child of ours.
pub fn wait_exited(pid: u32) {
    loop {
        // SAFETY: siginfo_t is plain data; all zeroes is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid(2) writes only into `info`, which lives across the call.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// Whether a live (not zombie) process is in process group `pgid`, from /proc/PID/stat.
pub fn group_alive(pgid: u32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // After the parenthesised command name: state, ppid, pgrp, ...
        let mut f = stat[stat.rfind(')').map_or(0, |i| i + 1)..].split_whitespace();
        let state = f.next().unwrap_or("Z");
        let pgrp = f.nth(1).and_then(|g| g.parse::<u32>().ok());
        pgrp == Some(pgid) && !matches!(state, "Z" | "X")
    })
}

/// Sets this process's name as `ps` and `top` show it (at most 15 bytes are kept).
pub fn set_process_name(name: &str) {
    let Ok(name) = std::ffi::CString::new(name) else {
        return;
    };
    // SAFETY: PR_SET_NAME reads a NUL-terminated string, which `name` is and outlives the call.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
    }
}

/// Makes the child that `cmd` spawns write `+PID\n` (its own pid, which is its process
/// group) to `fd` between fork and exec.
pub fn announce_in_child(cmd: &mut std::process::Command, fd: std::os::fd::RawFd) {
    use std::os::unix::process::CommandExt;
    let announce = move || {
        // Between fork and exec only async-signal-safe calls: getpid(2), write(2), and
        // digits formatted by hand on the stack (no allocation).
        let mut buf = [0u8; 16];
        // SAFETY: getpid(2) cannot fail and touches no memory.
        let mut n = unsafe { libc::getpid() } as u32;
        let mut i = buf.len() - 1;
        buf[i] = b'\n';
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        i -= 1;
        buf[i] = b'+';
        // SAFETY: writes from a live stack buffer; a pipe write this short is atomic, so
        // it never interleaves with httpd-dev's own lines.
        unsafe { libc::write(fd, buf[i..].as_ptr().cast(), buf.len() - i) };
        Ok(())
    };
    // SAFETY: the closure only makes async-signal-safe calls (see above), as pre_exec
    // requires of code running in the forked child of a multi-threaded process.
    unsafe {
        cmd.pre_exec(announce);
    }
}
