//! `User` and `Group` (mod_unixd): a server started as root gives root up once it holds
//! what only root may take — the listeners (ports below 1024) and the log files and piped
//! loggers — and before it reads a single request. From then on every request, CGI
//! script and restarted piped logger runs as that user; piped loggers started before the
//! drop are started as that user too.
//!
//! Started as any other user, the directives are ignored with a notice (Apache does the
//! same: only root can switch). A reload cannot change the user (no privilege is left to
//! do it), nor rebind listeners; both need a restart, as the log says.

use std::ffi::CString;
use std::sync::OnceLock;

use nix::unistd::{self, Gid, Uid};

use crate::error::Error;

/// Who the server becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The `User`, by name (for initgroups) and id; None when only `Group` was given.
    pub user: Option<(String, Uid)>,
    pub gid: Gid,
}

/// The identity resolved at start (None: the server keeps the user it was started as).
static TARGET: OnceLock<Option<Identity>> = OnceLock::new();

/// Resolves `User` / `Group` (names, or `#N` ids as Apache allows). Ok(None) when there is
/// nothing to switch to: no User or Group, or not running as root (a notice says so). A
/// user or group this machine does not know is an error: the server must not start as
/// root by mistake.
pub fn resolve(user: Option<&str>, group: Option<&str>) -> Result<Option<Identity>, Error> {
    if user.is_none() && group.is_none() {
        return Ok(None);
    }
    if !unistd::geteuid().is_root() {
        eprintln!(
            "httpd-core: notice: not started as root; User/Group ignored (running as uid {})",
            unistd::geteuid()
        );
        return Ok(None);
    }
    let user = match user {
        None => None,
        Some(name) => Some(lookup_user(name)?),
    };
    let gid = match (group, &user) {
        (Some(g), _) => lookup_group(g)?,
        // Group omitted: the user's primary group (nginx's rule; Apache's own default,
        // gid -1, is a group no file belongs to).
        (None, Some((_, _, primary))) => *primary,
        (None, None) => unreachable!("checked above"),
    };
    Ok(Some(Identity {
        user: user.map(|(name, uid, _)| (name, uid)),
        gid,
    }))
}

fn lookup_user(spec: &str) -> Result<(String, Uid, Gid), Error> {
    let bad = || Error::Setting(format!("User {spec}: no such user on this machine"));
    let found = match spec.strip_prefix('#') {
        Some(id) => {
            let uid = id.parse::<u32>().map_err(|_| bad())?;
            unistd::User::from_uid(Uid::from_raw(uid))
                .ok()
                .flatten()
                .map(|u| (u.name, u.uid, u.gid))
                // A bare id need not be in the passwd database (Apache allows it); its
                // group is then the Group directive's or the same number.
                .or(Some((
                    id.to_string(),
                    Uid::from_raw(uid),
                    Gid::from_raw(uid),
                )))
        }
        None => unistd::User::from_name(spec)
            .ok()
            .flatten()
            .map(|u| (u.name, u.uid, u.gid)),
    };
    let found = found.ok_or_else(bad)?;
    if found.1.is_root() {
        return Err(Error::Setting(format!(
            "User {spec} is root; name an unprivileged user (or remove User)"
        )));
    }
    Ok(found)
}

fn lookup_group(spec: &str) -> Result<Gid, Error> {
    let bad = || Error::Setting(format!("Group {spec}: no such group on this machine"));
    match spec.strip_prefix('#') {
        Some(id) => id.parse::<u32>().map(Gid::from_raw).map_err(|_| bad()),
        None => unistd::Group::from_name(spec)
            .ok()
            .flatten()
            .map(|g| g.gid)
            .ok_or_else(bad),
    }
}

/// Records the identity the server will drop to, so children started before the drop
/// (piped loggers) run as it too. Called once, at start.
pub fn set_target(id: Option<Identity>) {
    let _ = TARGET.set(id);
}

/// Makes `cmd` run as the target identity when this process is still root.
pub fn apply_to(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let Some(Some(id)) = TARGET.get() else {
        return;
    };
    if !unistd::geteuid().is_root() {
        return;
    }
    // std clears the supplementary groups (setgroups(0)) before setuid when root.
    cmd.gid(id.gid.as_raw());
    if let Some((_, uid)) = &id.user {
        cmd.uid(uid.as_raw());
    }
}

/// Gives root up for good: supplementary groups (initgroups, as Apache), then the group,
/// then the user. glibc applies each change to every thread of the process. Checked
/// afterwards: a server that still has root after this is an error, not a warning.
pub fn drop_to(id: &Identity) -> Result<(), Error> {
    let fail = |what: &str, e: nix::Error| Error::Io {
        what: format!("cannot {what}"),
        source: std::io::Error::from(e),
    };
    match &id.user {
        Some((name, _)) => {
            let c = CString::new(name.as_str())
                .map_err(|_| Error::Setting(format!("User {name:?} contains a NUL byte")))?;
            unistd::initgroups(&c, id.gid).map_err(|e| fail("set supplementary groups", e))?;
        }
        None => unistd::setgroups(&[id.gid]).map_err(|e| fail("set supplementary groups", e))?,
    }
    unistd::setgid(id.gid).map_err(|e| fail(&format!("set group id {}", id.gid), e))?;
    if let Some((name, uid)) = &id.user {
        unistd::setuid(*uid).map_err(|e| fail(&format!("switch to user {name}"), e))?;
        if unistd::getuid() != *uid
            || unistd::geteuid() != *uid
            || unistd::setuid(Uid::from_raw(0)).is_ok()
        {
            return Err(Error::Setting(format!(
                "switching to user {name} did not drop root; refusing to serve"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_do_without_directives() {
        assert_eq!(resolve(None, None).unwrap(), None);
    }

    #[test]
    fn unknown_names_are_errors_as_root() {
        if !unistd::geteuid().is_root() {
            eprintln!("skipped: not root");
            return;
        }
        let e = resolve(Some("no-such-user-httpd"), None).unwrap_err();
        assert!(e.to_string().contains("no such user"), "{e}");
        let e = resolve(Some("nobody"), Some("no-such-group-httpd")).unwrap_err();
        assert!(e.to_string().contains("no such group"), "{e}");
        let e = resolve(Some("root"), None).unwrap_err();
        assert!(e.to_string().contains("is root"), "{e}");
        let id = resolve(Some("#65000"), Some("#65001")).unwrap().unwrap();
        assert_eq!(id.user.unwrap().1, Uid::from_raw(65000));
        assert_eq!(id.gid, Gid::from_raw(65001));
    }
}
