//! Apache's htpasswd file format (mod_authn_file): `user:hash` lines, with the hash in one
//! of the forms `htpasswd` writes: bcrypt (`$2y$`, -B), apr1-MD5 (`$apr1$`, -m, the
//! default), SHA-1 (`{SHA}` + base64, -s) and traditional DES crypt (13 characters, -d).
//! Plain text (-p) is accepted only on the platforms Apache accepts it (not here).

use std::path::Path;

use base64::Engine as _;
use md5::{Digest as _, Md5};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// Looks `user` up in the htpasswd file at `path` and checks `password`. A missing user is
/// checked against a dummy hash so that the time taken does not reveal whether the user
/// exists (mod_authn_file answers AUTH_USER_NOT_FOUND, but the client sees the same 401).
pub fn check_file(path: &Path, user: &str, password: &str) -> std::io::Result<bool> {
    let text = std::fs::read_to_string(path)?;
    Ok(check_text(&text, user, password))
}

pub fn check_text(text: &str, user: &str, password: &str) -> bool {
    let hash = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .find(|(u, _)| *u == user)
        .map(|(_, h)| h);
    match hash {
        Some(h) => verify(h, password),
        None => {
            // Spend about what a real check would cost, then fail.
            let _ = verify(DUMMY_APR1, password);
            false
        }
    }
}

const DUMMY_APR1: &str = "$apr1$aaaaaaaa$bbbbbbbbbbbbbbbbbbbbbb";

/// Whether `password` matches `hash` in any of htpasswd's formats.
pub fn verify(hash: &str, password: &str) -> bool {
    if hash.starts_with("$2y$") || hash.starts_with("$2a$") || hash.starts_with("$2b$") {
        bcrypt::verify(password, hash).unwrap_or(false)
    } else if let Some(rest) = hash.strip_prefix("$apr1$") {
        let salt = rest.split('$').next().unwrap_or("");
        ct_eq(
            &md5_crypt(password.as_bytes(), salt.as_bytes(), "$apr1$"),
            hash,
        )
    } else if let Some(rest) = hash.strip_prefix("$1$") {
        let salt = rest.split('$').next().unwrap_or("");
        ct_eq(
            &md5_crypt(password.as_bytes(), salt.as_bytes(), "$1$"),
            hash,
        )
    } else if let Some(b64) = hash.strip_prefix("{SHA}") {
        let digest = Sha1::digest(password.as_bytes());
        let mine = base64::engine::general_purpose::STANDARD.encode(digest);
        ct_eq(&mine, b64)
    } else if hash.len() == 13 {
        pwhash::unix_crypt::verify(password, hash)
    } else {
        false
    }
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The MD5-based crypt of FreeBSD (`$1$`) and Apache's variant (`$apr1$`), which differ
/// only in the magic string. No maintained crate implements the `$apr1$` variant (pwhash
/// hard-codes `$1$`), so it is written out here from the published algorithm.
fn md5_crypt(pw: &[u8], salt: &[u8], magic: &str) -> String {
    let salt = &salt[..salt.len().min(8)];
    let mut alt = Md5::new();
    alt.update(pw);
    alt.update(salt);
    alt.update(pw);
    let alt = alt.finalize();

    let mut ctx = Md5::new();
    ctx.update(pw);
    ctx.update(magic.as_bytes());
    ctx.update(salt);
    let mut n = pw.len();
    while n > 0 {
        ctx.update(&alt[..n.min(16)]);
        n = n.saturating_sub(16);
    }
    let mut i = pw.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pw[..1]);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    for r in 0..1000 {
        let mut c = Md5::new();
        if r & 1 == 1 {
            c.update(pw);
        } else {
            c.update(fin);
        }
        if r % 3 != 0 {
            c.update(salt);
        }
        if r % 7 != 0 {
            c.update(pw);
        }
        if r & 1 == 1 {
            c.update(fin);
        } else {
            c.update(pw);
        }
        fin = c.finalize();
    }
    const ITOA: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::from(magic);
    out.push_str(&String::from_utf8_lossy(salt));
    out.push('$');
    let mut push = |v: u32, n: usize| {
        let mut v = v;
        for _ in 0..n {
            out.push(ITOA[(v & 0x3f) as usize] as char);
            v >>= 6;
        }
    };
    let f = |i: usize| u32::from(fin[i]);
    push((f(0) << 16) | (f(6) << 8) | f(12), 4);
    push((f(1) << 16) | (f(7) << 8) | f(13), 4);
    push((f(2) << 16) | (f(8) << 8) | f(14), 4);
    push((f(3) << 16) | (f(9) << 8) | f(15), 4);
    push((f(4) << 16) | (f(10) << 8) | f(5), 4);
    push(f(11), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_table() {
        // Hashes written by `htpasswd -nb{m,s,d,B} user secret` (apache2-utils).
        let cases = [
            ("$apr1$hOh7W.aH$g72lmWhXWnCW9r1VBaCtZ0", "secret", true),
            ("$apr1$hOh7W.aH$g72lmWhXWnCW9r1VBaCtZ0", "secreT", false),
            ("Ff48yvE6UR/aM", "secret", true),
            ("Ff48yvE6UR/aM", "secrex", false),
            (
                "$2y$05$vqyIqrHkZg6L2KYB6n/Evu6QHyk6pakV1NJua4v.D/VpbpOiHUgSK",
                "secret",
                true,
            ),
            (
                "$2y$05$vqyIqrHkZg6L2KYB6n/Evu6QHyk6pakV1NJua4v.D/VpbpOiHUgSK",
                "nope",
                false,
            ),
            ("{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "secret", true),
            ("{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "Secret", false),
            ("$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", "password", false),
            ("garbage", "secret", false),
        ];
        for (hash, pw, want) in cases {
            assert_eq!(verify(hash, pw), want, "{hash} {pw}");
        }
    }

    #[test]
    fn md5_crypt_known_vector() {
        // As `openssl passwd -1 -salt saltstri password` computes it.
        assert_eq!(
            md5_crypt(b"password", b"saltstring", "$1$"),
            "$1$saltstri$qQY4WxjABChYG1ccLpfkz/"
        );
    }

    #[test]
    fn missing_user_fails() {
        assert!(!check_text(
            "bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n",
            "eve",
            "secret"
        ));
        assert!(check_text(
            "bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n",
            "bob",
            "secret"
        ));
    }
}
