//! Host side of the WIT imports: what a destination may ask of the host.
//!
//! Where it sits: the runtime links these into every instance; they are the
//! sandbox's only doors. `http` checks every request against the destination's
//! allowlist; `log` turns guest lines into host log lines tagged with the
//! destination, with a cap per call so a noisy guest cannot flood the host.

pub mod http;
pub mod log;
