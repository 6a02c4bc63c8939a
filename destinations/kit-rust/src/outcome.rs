//! Outcomes: the standard classification of an answer, and the failure constructors.

use crate::{http, Failure, Response, RetryHint};

/// The outcome of one event, as `deliver` returns it: `Ok(())` is delivered.
pub type Outcome = Result<(), Failure>;

/// A transient failure: the host tries again, not before `after_ms` when given.
pub fn retry(reason: impl Into<String>, after_ms: Option<u64>) -> Failure {
    Failure::Retry(RetryHint {
        reason: reason.into(),
        after_ms,
    })
}

/// A permanent failure: the event goes to dead letters with this reason.
pub fn reject(reason: impl Into<String>) -> Failure {
    Failure::Reject(reason.into())
}

/// `Retry-After` in seconds, as milliseconds. The HTTP-date form gives no hint
/// (`None`): the host's own backoff applies.
pub fn retry_after_ms(headers: &[(String, String)]) -> Option<u64> {
    crate::header(headers, "retry-after")
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(|secs| secs.saturating_mul(1000))
}

/// Longest excerpt of a body kept in a failure reason, in characters.
const EXCERPT_CHARS: usize = 200;

/// The start of a body on one line (at most 200 characters, line breaks as spaces),
/// for failure reasons.
pub fn excerpt(body: &[u8]) -> String {
    // 4 bytes per character at most: decode no more than can be shown.
    let text = String::from_utf8_lossy(&body[..body.len().min(EXCERPT_CHARS * 4)]);
    let mut out: String = text
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    if text.chars().nth(EXCERPT_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// The standard classification of an answer, for a receiver that is not named
/// (reasons read "receiver answered 400: ..."). See [`classify_as`].
pub fn classify(answer: Result<Response, http::Error>) -> Outcome {
    classify_as("receiver", answer)
}

/// The standard classification of an answer; `vendor` names the other side in reasons
/// (`"mixpanel answered 400: ..."`):
/// - 2xx: delivered;
/// - 408, 429 and 5xx: retry, with `Retry-After` (seconds) as the hint;
/// - any other status: reject, with the status and a 200-character body excerpt;
/// - timeouts, connection errors and a too-large response: retry;
/// - a request the allowlist denies: reject.
pub fn classify_as(vendor: &str, answer: Result<Response, http::Error>) -> Outcome {
    match answer {
        Ok(resp) => classify_response(vendor, &resp),
        Err(error) => Err(classify_error(&error)),
    }
}

/// [`classify_as`], with the reason of a failed answer read by `read_error` (the
/// vendor's own message, e.g. the `error` field of its JSON body); when it gives
/// `None`, the reason has the start of the body, as in [`classify_as`].
pub fn classify_with(
    vendor: &str,
    answer: Result<Response, http::Error>,
    read_error: impl FnOnce(&Response) -> Option<String>,
) -> Outcome {
    match answer {
        Ok(resp) if !(200..300).contains(&resp.status) => {
            let said = read_error(&resp).filter(|s| !s.is_empty());
            let text = said.map_or_else(|| excerpt(&resp.body), |s| excerpt(s.as_bytes()));
            failure_of(vendor, &resp, text)
        }
        answer => classify_as(vendor, answer),
    }
}

/// The standard classification of a response (the `Ok` half of [`classify_as`]).
pub fn classify_response(vendor: &str, resp: &Response) -> Outcome {
    if (200..300).contains(&resp.status) {
        return Ok(());
    }
    failure_of(vendor, resp, excerpt(&resp.body))
}

/// The failure of a non-2xx answer, its reason ending in `text`.
fn failure_of(vendor: &str, resp: &Response, text: String) -> Outcome {
    let status = resp.status;
    let why = format!("{vendor} answered {status}: {text}");
    if status == 408 || status == 429 || status >= 500 {
        Err(retry(why, retry_after_ms(&resp.headers)))
    } else {
        Err(reject(why))
    }
}

/// The standard classification of a transport error (the `Err` half of [`classify_as`]):
/// denied rejects; timeout, connection and too-large retry.
pub fn classify_error(error: &http::Error) -> Failure {
    match error {
        http::Error::Denied(why) => reject(format!("request denied: {why}")),
        http::Error::Timeout => retry("request timed out", None),
        http::Error::Connection(why) => retry(format!("connection failed: {why}"), None),
        http::Error::TooLarge => retry("response too large", None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn is_retry(outcome: &Outcome, after: Option<u64>) -> bool {
        matches!(outcome, Err(Failure::Retry(h)) if h.after_ms == after)
    }

    #[test]
    fn statuses_are_classified() {
        assert!(classify(Ok(resp(200, &[], ""))).is_ok());
        assert!(classify(Ok(resp(204, &[], ""))).is_ok());
        assert!(is_retry(
            &classify(Ok(resp(429, &[("retry-after", "7")], ""))),
            Some(7000)
        ));
        assert!(is_retry(&classify(Ok(resp(408, &[], ""))), None));
        assert!(is_retry(&classify(Ok(resp(503, &[], ""))), None));
        assert!(is_retry(
            &classify(Ok(resp(
                503,
                &[("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")],
                ""
            ))),
            None
        ));
        match classify_as("acme", Ok(resp(400, &[], "bad\npayload"))) {
            Err(Failure::Reject(why)) => assert_eq!(why, "acme answered 400: bad payload"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(Ok(resp(413, &[], ""))),
            Err(Failure::Reject(_))
        ));
    }

    #[test]
    fn a_hook_reads_the_vendors_own_message() {
        let read = |r: &Response| {
            serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
        };
        let body = r#"{"error":"invalid api key","code":4}"#;
        match classify_with("acme", Ok(resp(401, &[], body)), read) {
            Err(Failure::Reject(why)) => assert_eq!(why, "acme answered 401: invalid api key"),
            other => panic!("{other:?}"),
        }
        assert!(is_retry(
            &classify_with("acme", Ok(resp(429, &[("retry-after", "2")], "{}")), read),
            Some(2000)
        ));
        match classify_with("acme", Ok(resp(400, &[], "plain")), read) {
            Err(Failure::Reject(why)) => assert_eq!(why, "acme answered 400: plain"),
            other => panic!("{other:?}"),
        }
        assert!(classify_with("acme", Ok(resp(200, &[], "")), |_| panic!(
            "not read on 2xx"
        ))
        .is_ok());
    }

    #[test]
    fn transport_errors_are_classified() {
        assert!(matches!(
            classify(Err(http::Error::Denied("not allowed".into()))),
            Err(Failure::Reject(why)) if why == "request denied: not allowed"
        ));
        assert!(is_retry(&classify(Err(http::Error::Timeout)), None));
        assert!(is_retry(
            &classify(Err(http::Error::Connection("refused".into()))),
            None
        ));
        assert!(is_retry(&classify(Err(http::Error::TooLarge)), None));
    }

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        let long = "é".repeat(300);
        let e = excerpt(long.as_bytes());
        assert_eq!(e.chars().count(), 201);
        assert!(e.ends_with('…'));
        assert_eq!(excerpt(b"a\r\nb"), "a  b");
        assert_eq!(excerpt(&[0xff, b'x']), "\u{fffd}x");
    }
}
