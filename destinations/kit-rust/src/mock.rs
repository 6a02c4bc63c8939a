//! A stand-in for the host's `http` and `log` imports when a destination's
//! code runs natively, in `cargo test` (the imports exist only inside a
//! component). On the build machine, [`crate::send`] (and so
//! [`crate::post_json`]) asks this thread's responder instead of the host, and
//! [`crate::warn`] / [`crate::debug`] keep their lines here. Inside a component
//! the module does not exist.
//!
//! ```ignore
//! kit::mock::respond(|_req| kit::mock::answer(429, &[("retry-after", "2")], ""));
//! let outcomes = <Acme as kit::Destination>::deliver(settings, events);
//! assert_eq!(kit::mock::requests().len(), 1);
//! ```

use std::cell::RefCell;

use crate::{http, log, Response};

/// How the stand-in answers a request.
type Responder = Box<dyn FnMut(&http::Request) -> Result<Response, http::Error>>;

thread_local! {
    /// This test's responder (`None`: every request is answered `200 {}`, as JSON).
    static RESPONDER: RefCell<Option<Responder>> = RefCell::new(None);
    /// The requests sent so far on this thread, oldest first.
    static REQUESTS: RefCell<Vec<http::Request>> = const { RefCell::new(Vec::new()) };
    /// The log lines written so far on this thread.
    static LOGS: RefCell<Vec<(log::Level, String)>> = const { RefCell::new(Vec::new()) };
    /// The secrets a test gave, by name.
    static SECRETS: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

/// Give this thread's crypto a secret `name` with `value`, as a config's
/// `secrets` would: `crypto::Key::Secret(name)` (or a token ending in
/// `-{name}-...`) is then that value.
pub fn secret(name: &str, value: &str) {
    SECRETS.with(|s| s.borrow_mut().push((name.to_string(), value.to_string())));
}

/// The host's crypto, computed on the build machine for `cargo test`.
pub(crate) mod crypto {
    use hmac::Mac as _;

    use super::SECRETS;
    use crate::bindings::switchyard::destination::crypto::Key;

    pub(crate) fn sha256(data: &[u8]) -> Vec<u8> {
        use sha2::Digest as _;
        sha2::Sha256::digest(data).to_vec()
    }

    fn key_bytes(key: &Key) -> Result<Vec<u8>, String> {
        match key {
            Key::Bytes(b) => Ok(b.clone()),
            Key::Secret(name) => SECRETS.with(|s| {
                s.borrow()
                    .iter()
                    .find(|(n, _)| n == name || name.contains(&format!("-{n}-")))
                    .map(|(_, v)| v.as_bytes().to_vec())
                    .ok_or_else(|| format!("no secret `{name}` (give it with kit::mock::secret)"))
            }),
        }
    }

    pub(crate) fn hmac(key: &Key, data: &[u8], sha512: bool) -> Result<Vec<u8>, String> {
        let key = key_bytes(key)?;
        Ok(if sha512 {
            let mut mac = hmac::Hmac::<sha2::Sha512>::new_from_slice(&key).expect("any key");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        } else {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        })
    }

    pub(crate) fn unavailable(what: &str, key: &Key, _data: &[u8]) -> Result<Vec<u8>, String> {
        key_bytes(key)?;
        Err(format!(
            "{what} is done by the host: not available in cargo test"
        ))
    }

    pub(crate) fn random_bytes(len: u32) -> Result<Vec<u8>, String> {
        if len > 1024 {
            return Err("at most 1024 random bytes per call".into());
        }
        // Not random: a test gets the same bytes every time.
        Ok((0..len).map(|i| (i as u8).wrapping_mul(151)).collect())
    }
}

/// Answer this thread's requests with `f` from now on (and forget the requests
/// and log lines recorded so far).
pub fn respond(f: impl FnMut(&http::Request) -> Result<Response, http::Error> + 'static) {
    RESPONDER.with(|r| *r.borrow_mut() = Some(Box::new(f)));
    REQUESTS.with(|r| r.borrow_mut().clear());
    LOGS.with(|l| l.borrow_mut().clear());
    SECRETS.with(|s| s.borrow_mut().clear());
}

/// A response with this status, headers and body.
pub fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Result<Response, http::Error> {
    Ok(Response {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    })
}

/// The requests sent since the last [`respond`] (or the last call of this), oldest first.
pub fn requests() -> Vec<http::Request> {
    REQUESTS.with(|r| std::mem::take(&mut *r.borrow_mut()))
}

/// The log lines written since the last [`respond`] (or the last call of this).
pub fn logs() -> Vec<(log::Level, String)> {
    LOGS.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

pub(crate) fn send(req: http::Request) -> Result<Response, http::Error> {
    let answer = RESPONDER.with(|r| match r.borrow_mut().as_mut() {
        Some(f) => f(&req),
        None => answer(200, &[("content-type", "application/json")], "{}"),
    });
    REQUESTS.with(|r| r.borrow_mut().push(req));
    answer
}

pub(crate) fn log(level: log::Level, message: &str) {
    LOGS.with(|l| l.borrow_mut().push((level, message.to_string())));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_answered_by_the_responder_and_recorded() {
        let first = crate::post_json("https://api.example.com/x", &[], &[1, 2]).unwrap();
        assert_eq!((first.status, first.text()), (200, "{}".to_string()));
        respond(|req| {
            assert_eq!(req.method, "POST");
            answer(429, &[("retry-after", "3")], "slow down")
        });
        let resp = crate::post_json("https://api.example.com/x", &[], &[1]).unwrap();
        assert_eq!(resp.retry_after_ms(), Some(3000));
        crate::warn("one line");
        let sent = requests();
        assert_eq!(sent.len(), 1, "respond forgets what came before");
        assert_eq!(sent[0].body, b"[1]");
        assert_eq!(logs(), [(log::Level::Warn, "one line".to_string())]);
        assert!(requests().is_empty(), "taken once");
    }
}
