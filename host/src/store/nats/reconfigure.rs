//! A reload on the NATS store (`crate::reload`): destinations added, retired
//! and deleted while every host serves.
//!
//! - an added destination gets its durable consumer(s) made now, starting at
//!   the end of the stream (interest retention keeps from then on what it
//!   takes); a name whose consumer already exists (another host made it first,
//!   or it was retired and comes back) resumes it;
//! - a retired destination keeps its consumer and its route: it drains what
//!   was published before it retired ([`NatsStore::routed`] skips the rest,
//!   acknowledging it unread, so the stream does not keep it for it);
//! - deleting a retired destination deletes its consumer(s).
//!
//! Each host applies its own reload (`reload/follow.rs` has every host reload
//! when one does), so for a moment hosts may route differently: an event
//! published meanwhile may or may not reach an added or retired destination.

use super::{unavailable, NatsStore, PARTITIONS};
use crate::config::{DestinationConfig, Ordering};
use crate::route::Router;
use crate::store::StoreError;

impl NatsStore {
    /// Route to `destinations` from now on; keep `retired` (of the destinations
    /// served so far) draining.
    pub(super) async fn reroute(
        &self,
        destinations: &[DestinationConfig],
        retired: &[String],
    ) -> Result<(), StoreError> {
        let before: Vec<DestinationConfig> =
            self.destinations.read().expect("destinations lock").clone();
        let kept: Vec<DestinationConfig> = before
            .iter()
            .filter(|d| retired.contains(&d.name) && !destinations.iter().any(|n| n.name == d.name))
            .cloned()
            .collect();
        let mut all: Vec<DestinationConfig> = destinations.to_vec();
        all.extend(kept.iter().cloned());
        {
            let mut ordered = self.ordered.write().expect("ordered lock");
            for d in &all {
                if d.ordering == Ordering::User {
                    ordered.insert(d.name.clone());
                }
            }
        }
        // Consumers exist before anything routes to them (their max_deliver
        // comes from the new destinations' retry policies).
        *self.destinations.write().expect("destinations lock") = all.clone();
        for d in destinations {
            if !before.iter().any(|b| b.name == d.name) {
                self.consumers(&d.name, true).await?;
            }
        }
        // Where the retired stop: the last event published before now.
        let last = match kept.iter().any(|d| !self.is_retired(&d.name)) {
            true => self.last_sequence().await?,
            false => 0,
        };
        {
            let mut r = self.retired.write().expect("retired lock");
            r.retain(|name, _| !destinations.iter().any(|d| &d.name == name));
            for d in &kept {
                r.entry(d.name.clone()).or_insert(last);
            }
        }
        let ids: Vec<u32> = (0..all.len() as u32).collect();
        self.router
            .store(std::sync::Arc::new(Router::new(&all, &ids)));
        *self.destinations.write().expect("destinations lock") = all;
        Ok(())
    }

    /// The sequence of the newest event in the stream.
    pub(super) async fn last_sequence(&self) -> Result<u64, StoreError> {
        let mut events = self.events.clone();
        Ok(events
            .info()
            .await
            .map_err(unavailable)?
            .state
            .last_sequence)
    }

    /// Whether the (first) consumer of `destination` is confirmed gone from the
    /// server (not only unreachable for a moment).
    pub(super) async fn consumer_gone(&self, destination: &str) -> bool {
        let ordered = self
            .ordered
            .read()
            .expect("ordered lock")
            .contains(destination);
        let name = match ordered {
            true => format!("dest-{destination}-p0"),
            false => format!("dest-{destination}"),
        };
        match self
            .events
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&name)
            .await
        {
            Ok(_) => false,
            Err(e) => e.to_string().contains("not found"),
        }
    }

    /// Whether this host serves `name` (retired ones included).
    pub(super) fn serves(&self, name: &str) -> bool {
        self.destinations
            .read()
            .expect("destinations lock")
            .iter()
            .any(|d| d.name == name)
    }

    pub(super) fn is_retired(&self, name: &str) -> bool {
        self.retired
            .read()
            .expect("retired lock")
            .contains_key(name)
    }

    /// Delete the consumer(s) of a retired destination; the events it had not
    /// acknowledged yet (those before its retirement are lost to it).
    pub(super) async fn drop_consumers(&self, destination: &str) -> Result<u64, StoreError> {
        if self.serves(destination) && !self.is_retired(destination) {
            return Err(StoreError::Unavailable(format!(
                "destination `{destination}` is not retired on this host"
            )));
        }
        // Not served at all: the consumer of a destination retired before a restart.
        let orphan = !self.serves(destination);
        let ordered = self
            .ordered
            .read()
            .expect("ordered lock")
            .contains(destination);
        let names: Vec<String> = match ordered {
            true => (0..PARTITIONS)
                .map(|p| format!("dest-{destination}-p{p}"))
                .collect(),
            false => vec![format!("dest-{destination}")],
        };
        let mut waiting = 0;
        let mut found = false;
        let names: Vec<String> = if orphan {
            // Whichever layout it had.
            let mut all = vec![format!("dest-{destination}")];
            all.extend((0..PARTITIONS).map(|p| format!("dest-{destination}-p{p}")));
            all
        } else {
            names
        };
        for name in names {
            let mut info = None;
            if let Ok(mut c) = self
                .events
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&name)
                .await
            {
                if let Ok(i) = c.info().await {
                    if orphan {
                        // Only a consumer of this layout that no host pulls from.
                        let partition =
                            (0..PARTITIONS).find(|p| name == format!("dest-{destination}-p{p}"));
                        let ours = match partition {
                            Some(p) => {
                                i.config.filter_subject == format!("sy.ev.{p}")
                                    && i.config.max_ack_pending == 1
                            }
                            None => i.config.filter_subject == "sy.ev.>",
                        };
                        if !ours {
                            continue;
                        }
                        if i.num_waiting > 0 || i.num_ack_pending > 0 {
                            return Err(StoreError::Unavailable(format!(
                                "consumer `{name}` is in use (a host pulls from it): \
                                 is `{destination}` in another host's config?"
                            )));
                        }
                    }
                    info = Some(i.num_pending + i.num_ack_pending as u64);
                }
            }
            found |= info.is_some();
            waiting += info.unwrap_or(0);
            if orphan && info.is_none() {
                continue;
            }
            match self.events.delete_consumer(&name).await {
                Ok(_) => {}
                // Another host deleted it first.
                Err(e) if super::missing(&e) => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        if orphan && !found {
            return Err(StoreError::Unavailable(format!(
                "no queue named `{destination}`"
            )));
        }
        self.forget_here(destination).await;
        Ok(waiting)
    }

    /// Stop serving a retired destination on this host (its consumers are gone).
    pub(super) async fn forget_here(&self, destination: &str) {
        self.consumers.lock().await.remove(destination);
        self.retired
            .write()
            .expect("retired lock")
            .remove(destination);
        self.destinations
            .write()
            .expect("destinations lock")
            .retain(|d| d.name != destination);
        let left: Vec<DestinationConfig> =
            self.destinations.read().expect("destinations lock").clone();
        let ids: Vec<u32> = (0..left.len() as u32).collect();
        self.router
            .store(std::sync::Arc::new(Router::new(&left, &ids)));
    }
}
