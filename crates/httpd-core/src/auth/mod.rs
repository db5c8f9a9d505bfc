//! Access control: `AuthType Basic` with `AuthUserFile` (mod_auth_basic, mod_authn_file)
//! and the user-aware `Require` providers (`valid-user`, `user`) evaluated together with
//! the address ones over the `<RequireAll>/<RequireAny>/<RequireNone>` tree
//! (mod_authz_core).

pub mod htpasswd;

use std::net::IpAddr;
use std::path::PathBuf;

use base64::Engine as _;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use crate::body::Body;
use crate::error_page;
use crate::site::Require;

/// The authenticated user of a request, kept in the request's extensions for `%u`.
#[derive(Clone, Debug)]
pub struct AuthUser(pub String);

/// The merged `AuthType`/`AuthName`/`AuthUserFile` of a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthSettings {
    /// `AuthType Basic` (other types are refused by conftest).
    pub basic: bool,
    pub realm: Option<String>,
    pub user_file: Option<PathBuf>,
}

/// Decides a request against `require`: Ok(user) to go on (user when one logged in), or
/// the 401/403/500 response. A password is checked only when the address providers alone
/// do not grant access, as Apache does.
pub fn authorize(
    require: &Require,
    auth: &AuthSettings,
    headers: &HeaderMap,
    client: IpAddr,
) -> Result<Option<String>, Box<Response<Body>>> {
    if decide(require, client, None) == Some(true) {
        return Ok(None);
    }
    if !mentions_user(require) || !auth.basic {
        return Err(Box::new(error_page::builtin(StatusCode::FORBIDDEN)));
    }
    let Some((user, password)) = basic_credentials(headers) else {
        return Err(challenge(auth));
    };
    let Some(file) = &auth.user_file else {
        tracing::error!("AuthType Basic without AuthUserFile");
        return Err(Box::new(error_page::builtin(
            StatusCode::INTERNAL_SERVER_ERROR,
        )));
    };
    match htpasswd::check_file(file, &user, &password) {
        Ok(true) => {}
        Ok(false) => {
            // The same answer whether the user exists or not.
            tracing::warn!(user = %user, "authentication failure");
            return Err(challenge(auth));
        }
        Err(e) => {
            tracing::error!(file = %file.display(), error = %e, "cannot read AuthUserFile");
            return Err(Box::new(error_page::builtin(
                StatusCode::INTERNAL_SERVER_ERROR,
            )));
        }
    }
    if decide(require, client, Some(&user)) == Some(true) {
        Ok(Some(user))
    } else {
        tracing::warn!(user = %user, "authorization failure");
        Err(challenge(auth))
    }
}

fn challenge(auth: &AuthSettings) -> Box<Response<Body>> {
    let mut r = error_page::builtin(StatusCode::UNAUTHORIZED);
    let realm = auth.realm.as_deref().unwrap_or("").replace('"', "");
    if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    Box::new(r)
}

/// `Authorization: Basic base64(user:password)` (RFC 7617).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn mentions_user(r: &Require) -> bool {
    match r {
        Require::ValidUser | Require::User(_) => true,
        Require::AllOf(c) | Require::AnyOf(c) | Require::NoneOf(c) => c.iter().any(mentions_user),
        _ => false,
    }
}

/// Some(true) granted, Some(false) denied, None neutral, with `user` logged in (or not).
pub fn decide(r: &Require, client: IpAddr, user: Option<&str>) -> Option<bool> {
    match r {
        // Without a user these deny (Apache's AUTHZ_DENIED_NO_USER), which is what makes
        // `authorize` ask for credentials; never neutral, or a RequireAll of an address and
        // a user would pass without a login.
        Require::ValidUser => Some(user.is_some()),
        Require::User(names) => Some(user.is_some_and(|u| names.iter().any(|n| n == u))),
        Require::AnyOf(children) => {
            let mut neutral = false;
            for c in children {
                match decide(c, client, user) {
                    Some(true) => return Some(true),
                    None => neutral = true,
                    Some(false) => {}
                }
            }
            if neutral {
                None
            } else {
                Some(false)
            }
        }
        Require::AllOf(children) => {
            let mut granted = false;
            for c in children {
                match decide(c, client, user) {
                    Some(false) => return Some(false),
                    Some(true) => granted = true,
                    None => {}
                }
            }
            granted.then_some(true)
        }
        Require::NoneOf(children) => {
            if children
                .iter()
                .any(|c| decide(c, client, user) == Some(true))
            {
                Some(false)
            } else {
                None
            }
        }
        leaf => leaf.decide_leaf(client),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decide_with_users_table() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let lan = Require::Ip {
            negated: false,
            nets: vec!["10.0.0.0/8".parse().unwrap()],
        };
        let cases: Vec<(Require, Option<&str>, Option<bool>)> = vec![
            (Require::ValidUser, None, Some(false)),
            (Require::ValidUser, Some("a"), Some(true)),
            (Require::User(vec!["a".into()]), Some("b"), Some(false)),
            (
                Require::User(vec!["a".into(), "b".into()]),
                Some("b"),
                Some(true),
            ),
            (
                Require::AnyOf(vec![lan.clone(), Require::ValidUser]),
                None,
                Some(true),
            ),
            (
                Require::AllOf(vec![lan.clone(), Require::ValidUser]),
                None,
                Some(false),
            ),
            (
                Require::AllOf(vec![lan.clone(), Require::ValidUser]),
                Some("a"),
                Some(true),
            ),
            (
                Require::AllOf(vec![lan, Require::User(vec!["x".into()])]),
                Some("y"),
                Some(false),
            ),
        ];
        for (r, user, want) in cases {
            assert_eq!(decide(&r, ip, user), want, "{r:?} {user:?}");
        }
    }

    #[test]
    fn basic_credentials_parse() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpzZWM6cmV0"),
        );
        assert_eq!(
            basic_credentials(&h),
            Some(("user".into(), "sec:ret".into()))
        );
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic_credentials(&h), None);
    }
}
