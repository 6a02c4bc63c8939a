//! `GET /readyz`: whether this host can take events now, and if not, why.
//!
//! Where it sits: read by load balancers and orchestrators. `/healthz` says the
//! process is alive; this says it is useful: `503` with every reason while
//! the store cannot commit (a full disk: until a commit succeeds again) or the
//! NATS server cannot be reached (the client is disconnected, or JetStream does
//! not answer within 2 s).

use serde::Serialize;

use crate::store::{Store, StoreError};

/// The answer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Readiness {
    /// `ready` or `not ready`.
    pub status: &'static str,
    /// Why not (empty when ready).
    pub reasons: Vec<NotReady>,
}

/// One failed check.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NotReady {
    /// Which check: `store` or `nats`.
    pub check: &'static str,
    /// What is wrong, in a sentence.
    pub message: String,
}

impl Readiness {
    /// Whether every check passed.
    pub fn is_ready(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// Run every check.
pub async fn check(store: &dyn Store) -> Readiness {
    let mut reasons = Vec::new();
    if let Err(e) = store.ready().await {
        let check = if store.connected().is_some() {
            "nats"
        } else {
            "store"
        };
        let message = match e {
            StoreError::Unavailable(why) => why,
            other => other.to_string(),
        };
        reasons.push(NotReady { check, message });
    }
    Readiness {
        status: if reasons.is_empty() {
            "ready"
        } else {
            "not ready"
        },
        reasons,
    }
}
