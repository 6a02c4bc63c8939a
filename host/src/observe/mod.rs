//! What operators see of a running host besides the admin API: Prometheus
//! metrics ([`metrics`]), readiness ([`ready`]), the delivery debugger's
//! newest attempts ([`attempts`]) and the last hour per minute ([`history`]).
//!
//! Where it sits: beside the flow. Ingest, the store and each destination's
//! batches in flight update [`metrics::Instruments`]; the rest is read when
//! scraped. The routes are in `admin/probes.rs`.

pub mod attempts;
pub mod history;
pub mod human;
pub mod metrics;
pub mod ready;
