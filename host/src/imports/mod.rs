//! Host side of the WIT imports: what a destination may ask of the host.
//!
//! Where it sits: below the runtime, which links these into every instance
//! (its host functions convert the WIT values and call in here); they are the
//! sandbox's only doors. `http` checks every request against the destination's
//! allowlist, and `resolve` every address a connection is made to; `log` turns guest lines into host log lines tagged with the
//! destination, with a cap per call so a noisy guest cannot flood the host.
//! Nothing here depends on the runtime or on wasmtime's generated types.

pub mod crypto;
pub mod exchange;
pub mod http;
pub mod log;
pub mod oauth;
pub mod reroute;
pub mod resolve;
pub mod secrets;

/// What percent-encoding escapes: all but RFC 3986's unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`), for a URL's query or path segment and a form body.
pub const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
