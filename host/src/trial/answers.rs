//! The network of a version on trial: each request answered from the
//! exchanges another call had (the serving version's, or a recording's).
//!
//! Where it sits: behind `Egress::Replay` (`imports/http.rs`). A request is
//! matched with the first exchange not answered yet with the same method and
//! URL (credentials redacted on both sides); one with no match gets the
//! default answer (`200 {}` unless the trial sets another).

use std::sync::Mutex;

use super::capture::{Exchange, Redactor};
use crate::imports::http::{Answer, Error, Request, Response};
use crate::observe::attempts::redact_url;

/// Answers from recorded exchanges.
#[derive(Debug)]
pub struct Answers {
    /// The exchanges not answered yet, in order (redacted, as they are compared).
    left: Mutex<Vec<Exchange>>,
    /// How this call's requests are redacted before they are matched.
    redactor: Redactor,
    /// The answer to a request that matches none.
    default: Response,
    /// When set, a request outside it is denied, as the live host denies it.
    allowlist: Option<crate::allowlist::Allowlist>,
}

/// `200 {}`: the answer to a request no recorded exchange matches, by default.
pub fn default_answer() -> Response {
    Response {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: b"{}".to_vec(),
    }
}

impl Answers {
    /// Answer from `exchanges` (already redacted by `redactor`), else `default`.
    pub fn new(exchanges: Vec<Exchange>, redactor: Redactor, default: Response) -> Answers {
        Answers {
            left: Mutex::new(exchanges),
            redactor,
            default,
            allowlist: None,
        }
    }

    /// The same, denying what `allowlist` does not cover.
    pub fn within(mut self, allowlist: crate::allowlist::Allowlist) -> Answers {
        self.allowlist = Some(allowlist);
        self
    }
}

impl Answer for Answers {
    fn answer(&self, req: &Request) -> Result<Response, Error> {
        if let Some(list) = &self.allowlist {
            let parsed = reqwest::Url::parse(&req.url)
                .map_err(|e| Error::Denied(format!("bad URL `{}`: {e}", req.url)))?;
            crate::imports::http::permit(list, &parsed)?;
        }
        let url = self.redactor.text(&redact_url(&req.url));
        let mut left = self.left.lock().expect("answers lock");
        match left
            .iter()
            .position(|e| e.method.eq_ignore_ascii_case(&req.method) && e.url == url)
        {
            Some(at) => left.remove(at).answer(),
            None => Ok(self.default.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trial::capture::Reply;

    #[test]
    fn requests_are_matched_by_method_and_url_in_order_else_defaulted() {
        let ex = |url: &str, status| Exchange {
            method: "POST".into(),
            url: url.into(),
            headers: vec![],
            body: vec![],
            response: Some(Reply {
                status,
                headers: vec![],
                body: vec![],
            }),
            error: None,
        };
        let a = Answers::new(
            vec![
                ex("https://a.example/x", 201),
                ex("https://a.example/x", 202),
            ],
            Redactor::default(),
            default_answer(),
        );
        let req = |url: &str| Request {
            method: "post".into(),
            url: url.into(),
            headers: vec![],
            body: vec![],
        };
        assert_eq!(a.answer(&req("https://a.example/x")).unwrap().status, 201);
        assert_eq!(a.answer(&req("https://a.example/y")).unwrap().status, 200);
        assert_eq!(a.answer(&req("https://a.example/x")).unwrap().status, 202);
        assert_eq!(a.answer(&req("https://a.example/x")).unwrap().status, 200);
    }
}
