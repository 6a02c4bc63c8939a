//! What the stages record as events pass, for operators to read: the
//! Prometheus instruments ([`metrics`]), the delivery debugger's newest
//! attempts ([`attempts`]) and the last 24 hours per minute ([`history`]).
//!
//! Where it sits: at the bottom, beside the flow. Ingest, the store and each
//! destination's batches in flight update these; nothing here reads the
//! stages. The admin side reads them and serves them: `/metrics` (with what
//! is sampled at scrape time) in `admin/scrape.rs`, readiness in
//! `admin/ready.rs`.

pub mod attempts;
pub mod history;
pub mod human;
pub mod metrics;
