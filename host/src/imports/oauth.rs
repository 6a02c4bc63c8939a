//! OAuth2 access tokens the host keeps fresh, with the vendor's own refresh
//! code and without the guest ever holding a token.
//!
//! Where it sits: inside the secrets of [`super::secrets`], used by
//! [`super::http`]'s live egress. A destination declares its access token as
//! a secret `refreshed_by` its refresh token:
//!
//! ```toml
//! secrets = { access_token = { hosts = ["https://api.hubapi.com"], refreshed_by = "refresh_token" },
//!             refresh_token = { from = "env:HUBSPOT_REFRESH_TOKEN", hosts = ["https://api.hubapi.com"] } }
//! settings = { oauth = { access_token = "${secret:access_token}", refresh_token = "${secret:refresh_token}" } }
//! ```
//!
//! The guest (a Segment catalog entry: actions-core refreshes on a 401) sends
//! its refresh request with the refresh token's call token; the host sends it
//! with the value, and when the answer is a 2xx JSON object with an
//! `access_token` (and maybe a rotated `refresh_token`), it keeps those as the
//! secrets' new values: in memory for every later call and fresh instance, and
//! in `<store.path>/oauth/<destination>/` across restarts. The guest reads the
//! answer sealed: its token in place of the new value. Refreshes are one at a
//! time per secret, and a refresh request within [`RECENT`] of the last one is
//! answered from it without reaching the vendor: one refresh per expiry, not
//! one per batch.

use std::path::Path;
use std::time::{Duration, Instant};

use super::exchange::Response;
use super::secrets::{Opened, Refresh, Sealed, Secret, Secrets};

/// How long after a refresh another refresh request is answered from it.
pub const RECENT: Duration = Duration::from_secs(60);

impl Refresh {
    fn recent(&self) -> bool {
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.is_some_and(|at| at.elapsed() < RECENT)
    }
}

impl Secrets {
    /// Keep refreshed values in `dir` (`<store.path>/oauth/<destination>`):
    /// a value kept there by an earlier run replaces the configured one now.
    pub fn keep_refreshed_in(&self, dir: &Path) {
        for s in self.list.iter() {
            let Some(refresh) = &s.refresh else { continue };
            let _ = refresh.dir.set(dir.to_path_buf());
            for name in [s.name.as_str(), refresh.by.as_str()] {
                if let Ok(kept) = std::fs::read_to_string(dir.join(name)) {
                    if let Some(secret) = self.list.iter().find(|x| x.name == name) {
                        if !kept.is_empty() {
                            secret.set_value(kept);
                        }
                    }
                }
            }
        }
    }

    /// Whether any secret is refreshed.
    pub fn has_refreshed(&self) -> bool {
        self.list.iter().any(|s| s.refresh.is_some())
    }
}

impl Sealed {
    /// The refreshed secret that `opened` (a request carrying its refresh
    /// token) would refresh, if any.
    pub fn refreshing(&self, opened: &Opened) -> Option<&Secret> {
        self.secrets().list.iter().find(|s| {
            s.refresh
                .as_ref()
                .is_some_and(|r| opened.carried.contains(&r.by))
        })
    }

    /// Whether `target` was refreshed a moment ago (by another call).
    pub fn refreshed_recently(&self, target: &Secret) -> bool {
        target.refresh.as_ref().is_some_and(Refresh::recent)
    }

    /// The answer a refresh request gets when another call refreshed a
    /// moment ago: the token now, as the guest reads it (sealed).
    pub fn answer_from_recent(&self, target: &Secret) -> Response {
        let value = target.value();
        let body = serde_json::json!({ "access_token": value.as_str(), "token_type": "Bearer" });
        Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// Take the new values out of the vendor's answer to a refresh (a 2xx
    /// JSON object with `access_token`, maybe a rotated `refresh_token`), keep
    /// them, and say whether there were any.
    pub fn take_refreshed(&self, target: &Secret, answer: &Response) -> bool {
        let Some(refresh) = &target.refresh else {
            return false;
        };
        if !(200..300).contains(&answer.status) {
            return false;
        }
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&answer.body) else {
            return false;
        };
        let Some(access) = json["access_token"].as_str().filter(|t| !t.is_empty()) else {
            return false;
        };
        keep(target, refresh, access);
        if let Some(rotated) = json["refresh_token"].as_str().filter(|t| !t.is_empty()) {
            if let Some(by) = self.secrets().list.iter().find(|s| s.name == refresh.by) {
                keep(by, refresh, rotated);
            }
        }
        *refresh.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        tracing::info!(
            secret = target.name.as_str(),
            "OAuth2 access token refreshed"
        );
        true
    }
}

/// Set `secret`'s value, and write it where `refresh` keeps values (owner-only).
fn keep(secret: &Secret, refresh: &Refresh, value: &str) {
    secret.set_value(value.to_string());
    let Some(dir) = refresh.dir.get() else { return };
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{}.tmp", secret.name));
        {
            use std::io::Write as _;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp)?;
            file.write_all(value.as_bytes())?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, dir.join(&secret.name))
    };
    if let Err(e) = write() {
        tracing::warn!(
            secret = secret.name.as_str(),
            "cannot keep the refreshed value: {e}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allowlist::Allowlist;
    use crate::imports::exchange::Request;

    fn secrets() -> Secrets {
        let hosts = Allowlist::parse(&["https://auth.example".to_string()]).unwrap();
        Secrets::new(vec![
            Secret::refreshed(
                "access_token".into(),
                String::new(),
                hosts.clone(),
                "refresh_token".into(),
            ),
            Secret::new("refresh_token".into(), "refresh-0000".into(), hosts),
        ])
    }

    fn refresh_request(sealed: &Sealed) -> Opened {
        let token = sealed.seal_settings("${secret:refresh_token}");
        sealed
            .open(Request {
                method: "POST".into(),
                url: "https://auth.example/token".into(),
                headers: vec![(
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                )],
                body: format!("grant_type=refresh_token&refresh_token={token}").into_bytes(),
            })
            .unwrap()
    }

    #[test]
    fn a_refresh_answer_becomes_the_value_is_kept_on_disk_and_the_next_refresh_is_answered_from_it()
    {
        let dir = tempfile::tempdir().unwrap();
        let secrets = secrets();
        secrets.keep_refreshed_in(dir.path());
        let sealed = Sealed::new(secrets.clone());
        let opened = refresh_request(&sealed);
        assert!(
            String::from_utf8_lossy(&opened.request.body).contains("refresh_token=refresh-0000")
        );
        let target = sealed.refreshing(&opened).expect("a refresh");
        assert_eq!(target.name, "access_token");
        assert!(!sealed.refreshed_recently(target));
        let answer = Response {
            status: 200,
            headers: vec![],
            body: br#"{"access_token":"new-access-1111","refresh_token":"refresh-2222"}"#.to_vec(),
        };
        assert!(sealed.take_refreshed(target, &answer));
        assert!(sealed.refreshed_recently(target));
        // The guest reads its token, not the value.
        let seen = sealed.seal_response(&opened, answer).unwrap();
        let seen = String::from_utf8(seen.body).unwrap();
        assert!(
            !seen.contains("new-access-1111") && !seen.contains("refresh-2222"),
            "{seen}"
        );
        assert!(
            seen.contains(&sealed.seal_settings("${secret:access_token}")),
            "{seen}"
        );
        // Kept for a restart: a new config's secrets read the values back.
        assert_eq!(
            std::fs::read_to_string(dir.path().join("access_token")).unwrap(),
            "new-access-1111"
        );
        let again = self::secrets();
        again.keep_refreshed_in(dir.path());
        let next = Sealed::new(again);
        let opened = refresh_request(&next);
        assert!(
            String::from_utf8_lossy(&opened.request.body).contains("refresh_token=refresh-2222")
        );
        // Another call's refresh a moment later is answered from this one.
        let second = Sealed::new(secrets);
        let opened = refresh_request(&second);
        let target = second.refreshing(&opened).unwrap();
        assert!(second.refreshed_recently(target));
        let body = String::from_utf8(second.answer_from_recent(target).body).unwrap();
        assert!(body.contains("new-access-1111"));
        // An error answer changes nothing.
        let failed = Response {
            status: 400,
            headers: vec![],
            body: br#"{"access_token":"x-bad-bad-bad"}"#.to_vec(),
        };
        assert!(!second.take_refreshed(target, &failed));
    }
}
