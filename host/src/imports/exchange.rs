//! One HTTP exchange of a guest, as the host sees it: the [`Request`] a
//! destination sends, the [`Response`] it gets and the [`Error`] when none
//! came. They mirror the WIT records of the `http` import; the runtime
//! converts.
//!
//! Where it sits: at the bottom of `imports/`. [`super::http`] sends them,
//! [`super::secrets`] substitutes and seals values in them and
//! [`super::oauth`] reads refreshed tokens from them; this module imports
//! none of those.

/// A request from a guest (the WIT `http.request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// Body (may be empty).
    pub body: Vec<u8>,
}

/// The answer to a guest, whatever its status (the WIT `http.response`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// Body, at most the size cap.
    pub body: Vec<u8>,
}

/// Why no response could be obtained (the WIT `http.error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Outside the allowlist, or a request the destination built wrong.
    #[error("denied: {0}")]
    Denied(String),
    /// The request did not finish in time.
    #[error("timed out")]
    Timeout,
    /// Connecting or talking to the server failed.
    #[error("connection failed: {0}")]
    Connection(String),
    /// The response body exceeded the cap.
    #[error("response too large")]
    TooLarge,
}
