//! Logging in to the status page: the admin token is given once, in a form, for
//! a session cookie (`HttpOnly`, `SameSite=Strict`, path `/status`); every form
//! that changes something carries the session's CSRF token, checked on POST.
//!
//! Sessions live in memory (a restart logs everyone out), at most
//! [`MAX_SESSIONS`], each for [`LIFETIME_MS`].

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};

use super::super::{constant_time_eq, AdminState};

/// The session cookie's name.
pub const COOKIE: &str = "switchyard_session";
/// How long a login lasts.
pub const LIFETIME_MS: i64 = 12 * 3600 * 1000;
/// Sessions kept at once; the one closest to expiry goes first.
pub const MAX_SESSIONS: usize = 256;

/// One logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its session id (the cookie's value).
    pub id: String,
    /// The token every changing form must carry.
    pub csrf: String,
    /// When it ends, in ms since the epoch.
    expires_ms: i64,
}

/// The open sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    /// By session id.
    by_id: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes from the thread's CSPRNG, in hex.
fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Sessions {
    /// A new session.
    pub fn open(&self, now_ms: i64) -> Session {
        let session = Session {
            id: random_hex(),
            csrf: random_hex(),
            expires_ms: now_ms.saturating_add(LIFETIME_MS),
        };
        let mut map = self.by_id.lock().expect("sessions lock");
        map.retain(|_, s| s.expires_ms > now_ms);
        if map.len() >= MAX_SESSIONS {
            if let Some(first) = map
                .values()
                .min_by_key(|s| s.expires_ms)
                .map(|s| s.id.clone())
            {
                map.remove(&first);
            }
        }
        map.insert(session.id.clone(), session.clone());
        session
    }

    /// The live session of this id.
    pub fn get(&self, id: &str, now_ms: i64) -> Option<Session> {
        let map = self.by_id.lock().expect("sessions lock");
        map.get(id).filter(|s| s.expires_ms > now_ms).cloned()
    }

    /// End a session.
    pub fn close(&self, id: &str) {
        self.by_id.lock().expect("sessions lock").remove(id);
    }
}

/// The session cookie of a request, if it sent one.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The `Set-Cookie` value of a new session (`Secure` when one of
/// `[server] trusted_proxies` says the browser came over HTTPS).
pub fn set_cookie(session: &Session, secure: bool) -> String {
    format!(
        "{COOKIE}={}; Path=/status; HttpOnly; SameSite=Strict; Max-Age={}{}",
        session.id,
        LIFETIME_MS / 1000,
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends the session in the browser.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/status; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Whether a form's CSRF token is this session's.
pub fn csrf_ok(session: &Session, given: Option<&str>) -> bool {
    given.is_some_and(|g| constant_time_eq(g.as_bytes(), session.csrf.as_bytes()))
}

/// A request of a logged-in browser; any other is sent to the login form.
#[derive(Debug, Clone)]
pub struct LoggedIn(pub Session);

impl FromRequestParts<AdminState> for LoggedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        cookie(&parts.headers)
            .and_then(|id| state.sessions.get(&id, crate::store::now_ms()))
            .map(LoggedIn)
            .ok_or_else(|| Redirect::to("/status/login").into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_are_bounded() {
        let s = Sessions::default();
        let a = s.open(0);
        assert!(s.get(&a.id, 1).is_some());
        assert!(s.get(&a.id, LIFETIME_MS).is_none());
        assert!(s.get("not-a-session", 1).is_none());
        for i in 0..MAX_SESSIONS as i64 + 10 {
            s.open(i);
        }
        assert_eq!(s.by_id.lock().unwrap().len(), MAX_SESSIONS);
        // The oldest went first.
        assert!(s.get(&a.id, 1).is_none());
        let b = s.open(10_000);
        s.close(&b.id);
        assert!(s.get(&b.id, 10_001).is_none());
    }

    #[test]
    fn the_cookie_is_found_among_others_and_csrf_must_match() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("a=b; {COOKIE}=abc; c=d").parse().unwrap(),
        );
        assert_eq!(cookie(&h).as_deref(), Some("abc"));
        let s = Sessions::default().open(0);
        assert!(csrf_ok(&s, Some(&s.csrf)));
        assert!(!csrf_ok(&s, Some("wrong")));
        assert!(!csrf_ok(&s, None));
        let c = set_cookie(&s, false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && !c.contains("Secure"));
        assert!(set_cookie(&s, true).ends_with("; Secure"));
    }
}
