//! Who watches a call's HTTP exchanges and clock readings: the seam between
//! the runtime and those who record them.
//!
//! Where it sits: defined here, at the runtime's level, and implemented above
//! it: by the delivery debugger's tape (`observe/attempts.rs`: redacted
//! excerpts and timings) and by a trial's capture (`trial/capture.rs`: whole
//! exchanges with secret tokens named, and the clock readings a replay gives
//! back). The runtime calls them and knows neither.

use std::sync::Arc;

use crate::imports::http::{Error, Request, Response};
use crate::imports::secrets::Sealed;

/// Watches the exchanges of the calls it is attached to.
pub trait ExchangeObserver: Send + Sync {
    /// A request is about to leave, as the guest wrote it (`secrets` names the
    /// call's tokens, for an observer that keeps them out of what it records).
    /// What it returns hears the answer.
    fn sending(&self, request: &Request, secrets: Option<&Sealed>) -> Box<dyn Sending>;

    /// Whether it keeps the guest's wall-clock readings (a capture, so that a
    /// replay gives them back).
    fn keeps_clock(&self) -> bool {
        false
    }

    /// The guest read the wall clock: nanoseconds since the epoch.
    fn clock_read(&self, _ns: u64) {}
}

/// One request on its way, as an observer kept it.
pub trait Sending: Send {
    /// The answer (or the failure) came back.
    fn answered(self: Box<Self>, answer: &Result<Response, Error>, secrets: Option<&Sealed>);
}

/// The observers of one call.
#[derive(Clone, Default)]
pub struct Observers(Vec<Arc<dyn ExchangeObserver>>);

impl Observers {
    /// Attach one more.
    pub fn push(&mut self, observer: Arc<dyn ExchangeObserver>) {
        self.0.push(observer);
    }

    /// Tell each that a request leaves; what they return hears the answer.
    pub(super) fn sending(
        &self,
        request: &Request,
        secrets: Option<&Sealed>,
    ) -> Vec<Box<dyn Sending>> {
        self.0.iter().map(|o| o.sending(request, secrets)).collect()
    }

    /// Whether any keeps the clock's readings.
    pub(super) fn keep_clock(&self) -> bool {
        self.0.iter().any(|o| o.keeps_clock())
    }

    /// Tell those that keep the clock of a reading.
    pub(super) fn clock_read(&self, ns: u64) {
        for o in self.0.iter().filter(|o| o.keeps_clock()) {
            o.clock_read(ns);
        }
    }
}

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Observers({})", self.0.len())
    }
}
