//! `GET /readyz`: whether this host can take events now, and if not, why.
//!
//! Where it sits: read by load balancers and orchestrators. `/healthz` says the
//! process is alive; this says it is useful: `503` with every reason while
//! the store cannot commit (a full disk: until a commit succeeds again) or the
//! NATS server cannot be reached (the client is disconnected, or JetStream does
//! not answer within 2 s), or a configured destination's plugin did not load,
//! or (on NATS) the privacy regulations have not been read for 10 s, so a user
//! suppressed through another host might be stored here.

use serde::Serialize;

use crate::plugins::PluginSlot;
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
    /// Which check: `store`, `nats`, `plugin` or `privacy`.
    pub check: &'static str,
    /// What is wrong, in a sentence.
    pub message: String,
}

impl Readiness {
    /// Whether every check passed.
    pub fn is_ready(&self) -> bool {
        self.reasons.is_empty()
    }

    /// What anyone may see: which checks failed, not what they said (plugin
    /// paths, store errors); the admin token shows the rest.
    pub fn without_details(self) -> Readiness {
        Readiness {
            status: self.status,
            reasons: self
                .reasons
                .into_iter()
                .map(|r| NotReady {
                    check: r.check,
                    message: "details for the admin token only (Authorization: Bearer)".into(),
                })
                .collect(),
        }
    }
}

/// Run every check: the store's, each destination's plugin (`(destination,
/// slot)`), and whether the privacy regulations are being followed.
pub async fn check<'a>(
    store: &dyn Store,
    plugins: impl IntoIterator<Item = (&'a str, &'a PluginSlot)>,
    privacy: &crate::privacy::Privacy,
) -> Readiness {
    let mut reasons = Vec::new();
    if let Some(age) = privacy.stale(crate::store::now_ms()) {
        reasons.push(NotReady {
            check: "privacy",
            message: format!(
                "the privacy regulations have not been read from the store for {} s: a user \
                 suppressed through another host might be stored here",
                age.as_secs()
            ),
        });
    }
    for (destination, slot) in plugins {
        if slot.current().is_none() {
            reasons.push(NotReady {
                check: "plugin",
                message: format!(
                    "destination `{destination}`: plugin `{}` did not load: {}",
                    slot.name,
                    slot.last_error().unwrap_or_default()
                ),
            });
        }
    }
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
