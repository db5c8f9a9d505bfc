//! Process-group signals: `kill(2)` has no safe wrapper in std.
#![allow(unsafe_code)]

/// Sends `sig` to every process in the group `pgid`; false when none is left.
pub fn kill_group(pgid: u32, sig: i32) -> bool {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc::kill(-(pgid as i32), sig) == 0 }
}
