//! Sign-in sessions: a random id in an HttpOnly, SameSite=Strict cookie,
//! kept server-side by its SHA-256 with the session's CSRF token, so a
//! stolen database dump or log holds nothing usable.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Studio;

/// The session cookie's name.
pub const COOKIE: &str = "supa_studio";
/// How long a session lasts without signing in again.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; the oldest go first beyond it.
const MAX_SESSIONS: usize = 10_000;

struct Entry {
    csrf: String,
    expires: Instant,
}

/// The live sessions.
#[derive(Default)]
pub(crate) struct Sessions(Mutex<HashMap<[u8; 32], Entry>>);

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    hex::encode(bytes)
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// Starts a session; returns the cookie value.
    pub(crate) fn start(&self) -> String {
        let id = random_hex();
        let now = Instant::now();
        let mut map = self.0.lock().expect("sessions lock");
        map.retain(|_, e| e.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(
            digest(&id),
            Entry {
                csrf: random_hex(),
                expires: now + LIFETIME,
            },
        );
        id
    }

    fn csrf_of(&self, id: &str) -> Option<String> {
        let mut map = self.0.lock().expect("sessions lock");
        let key = digest(id);
        match map.get(&key) {
            Some(e) if e.expires > Instant::now() => Some(e.csrf.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends a session.
    pub(crate) fn end(&self, id: &str) {
        self.0.lock().expect("sessions lock").remove(&digest(id));
    }
}

/// A signed-in request: its session id and the CSRF token its forms carry.
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) csrf: String,
}

impl Session {
    /// Whether a submitted form's token is this session's.
    pub(crate) fn csrf_ok(&self, presented: &str) -> bool {
        bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// The value of the cookie `name` in `headers`.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether a state-changing request came from a page of this host: a
/// browser sends `Origin` with every form POST, and another site's form
/// names another origin. (Requests without `Origin` are not from a
/// browser's cross-site form; the CSRF token still binds them.)
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// Whether the browser reached us over HTTPS (directly or through a
/// proxy that says so), so the cookie can be marked `Secure`.
pub(crate) fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value of a session (or of its removal when `id` is
/// `None`).
pub(crate) fn set_cookie(id: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match id {
        Some(id) => format!(
            "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
            LIFETIME.as_secs()
        ),
        None => format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"),
    }
}

/// Without a session every page sends the browser to sign in; a change
/// from another origin is refused outright.
pub(crate) enum Refused {
    SignIn,
    CrossSite,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::SignIn => Redirect::to("/sign-in").into_response(),
            Refused::CrossSite => crate::pages::refused(
                axum::http::StatusCode::FORBIDDEN,
                "This request came from another site and was refused.",
            ),
        }
    }
}

impl FromRequestParts<Studio> for Session {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, studio: &Studio) -> Result<Self, Refused> {
        if parts.method != Method::GET && !same_origin(&parts.headers) {
            return Err(Refused::CrossSite);
        }
        let id = cookie(&parts.headers, COOKIE).ok_or(Refused::SignIn)?;
        let csrf = studio.inner.sessions.csrf_of(id).ok_or(Refused::SignIn)?;
        Ok(Session {
            id: id.to_owned(),
            csrf,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_start_look_up_and_end() {
        let sessions = Sessions::default();
        let id = sessions.start();
        assert_eq!(id.len(), 64);
        let csrf = sessions.csrf_of(&id).unwrap();
        assert_ne!(csrf, id);
        assert!(sessions.csrf_of("forged").is_none());
        sessions.end(&id);
        assert!(sessions.csrf_of(&id).is_none());
    }

    #[test]
    fn cookies_and_origins_are_read_as_browsers_send_them() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; supa_studio=abc; b=2".parse().unwrap());
        h.insert(header::HOST, "127.0.0.1:8001".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://127.0.0.1:8001".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(!same_origin(&h));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_https() {
        let c = set_cookie(Some("x"), true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("; Secure"));
        assert!(!set_cookie(Some("x"), false).contains("Secure"));
        assert!(set_cookie(None, false).contains("Max-Age=0"));
    }
}
