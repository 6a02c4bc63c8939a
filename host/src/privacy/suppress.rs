//! The suppression set ingest checks every event against, and the keyed hash
//! subjects are known by.
//!
//! Where it sits: at the bottom of `privacy/`. [`super::Privacy`] folds the
//! regulations into a [`Suppressions`] and swaps it in; ingest reads the
//! current one per request and drops the events it [`Suppressions::suppresses`]
//! before the store sees them. A subject is never held in the clear: only its
//! keyed hash ([`SubjectKey`]), so neither memory nor the store keeps the ids.

use std::collections::HashMap;
use std::hash::Hasher as _;

use rustc_hash::FxHashSet;
use serde_json::{Map, Value};
use siphasher::sip128::{Hasher128 as _, SipHasher13};

/// How an event names its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SubjectKind {
    /// Segment's `userId`.
    #[serde(rename = "userId")]
    UserId,
    /// Segment's `anonymousId`.
    #[serde(rename = "anonymousId")]
    AnonymousId,
}

impl SubjectKind {
    /// Its field name in an event (and in a regulation's subjects).
    pub fn field(self) -> &'static str {
        match self {
            SubjectKind::UserId => "userId",
            SubjectKind::AnonymousId => "anonymousId",
        }
    }

    /// The kind a field name names.
    pub fn of_field(field: &str) -> Option<SubjectKind> {
        match field {
            "userId" => Some(SubjectKind::UserId),
            "anonymousId" => Some(SubjectKind::AnonymousId),
            _ => None,
        }
    }
}

/// The key of the keyed hash (SipHash-1-3, 128 bits) subjects are known by:
/// one per store, shared by its hosts. Without the key, a hash does not tell
/// whose it is, nor can a guessed id be checked against it.
#[derive(Clone, Copy)]
pub struct SubjectKey([u8; 16]);

impl std::fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectKey(..)")
    }
}

impl SubjectKey {
    /// The key the store keeps.
    pub fn new(key: [u8; 16]) -> SubjectKey {
        SubjectKey(key)
    }

    /// The 128-bit keyed hash of `id` as a subject of `kind`.
    pub fn hash(&self, kind: SubjectKind, id: &str) -> u128 {
        let mut h = SipHasher13::new_with_key(&self.0);
        // A tag of fixed form first: the same id as a userId and as an
        // anonymousId are two subjects.
        h.write(kind.field().as_bytes());
        h.write_u8(0);
        h.write(id.as_bytes());
        h.finish128().as_u128()
    }
}

/// The 64 bits of a subject's hash that the sets hold. Two different ids share
/// them with odds of 1 in 2^64 per pair: with a million suppressed ids, an
/// unsuppressed user is dropped by mistake with odds of about 1 in 2^44.
pub fn short(hash: u128) -> u64 {
    hash as u64
}

/// The users whose events ingest drops, per source.
#[derive(Debug, Clone)]
pub struct Suppressions {
    /// What subjects are hashed with.
    key: SubjectKey,
    /// Subjects suppressed in every source.
    everywhere: FxHashSet<u64>,
    /// Subjects suppressed in some sources only, by source name.
    by_source: HashMap<String, FxHashSet<u64>>,
}

impl Suppressions {
    /// No one suppressed.
    pub fn new(key: SubjectKey) -> Suppressions {
        Suppressions {
            key,
            everywhere: FxHashSet::default(),
            by_source: HashMap::new(),
        }
    }

    /// No one suppressed, and no key: for an ingest not yet given the
    /// privacy module's set (an empty set never hashes).
    pub fn none() -> Suppressions {
        Suppressions::new(SubjectKey([0; 16]))
    }

    /// Suppress `hashes` in `sources` (`None`: every source).
    pub fn suppress(&mut self, hashes: &[u64], sources: Option<&[String]>) {
        match sources {
            None => self.everywhere.extend(hashes),
            Some(sources) => {
                for s in sources {
                    self.by_source.entry(s.clone()).or_default().extend(hashes);
                }
            }
        }
    }

    /// Lift the suppression of `hashes` in `sources`. `None` lifts every
    /// suppression of them; a list of sources lifts only the suppressions made
    /// for those sources (not one made for every source).
    pub fn unsuppress(&mut self, hashes: &[u64], sources: Option<&[String]>) {
        let lift = |set: &mut FxHashSet<u64>| {
            for h in hashes {
                set.remove(h);
            }
        };
        match sources {
            None => {
                lift(&mut self.everywhere);
                self.by_source.values_mut().for_each(lift);
            }
            Some(sources) => {
                for s in sources {
                    if let Some(set) = self.by_source.get_mut(s) {
                        lift(set);
                    }
                }
            }
        }
        self.by_source.retain(|_, set| !set.is_empty());
    }

    /// Subjects suppressed somewhere (each counted once per scope).
    pub fn len(&self) -> usize {
        self.everywhere.len() + self.by_source.values().map(|s| s.len()).sum::<usize>()
    }

    /// No subject is suppressed anywhere.
    pub fn is_empty(&self) -> bool {
        self.everywhere.is_empty() && self.by_source.is_empty()
    }

    /// Whether an event of `source` belongs to a suppressed user: its `userId`
    /// is a suppressed userId, or its `anonymousId` a suppressed anonymousId (an
    /// alias's `previousId` is checked as either). Costs nothing while no one is
    /// suppressed, and one keyed hash and one set lookup per id otherwise.
    pub fn suppresses(&self, source: &str, event: &Map<String, Value>) -> bool {
        if self.is_empty() {
            return false;
        }
        let in_source = self.by_source.get(source);
        let hit = |kind: SubjectKind, field: &str| {
            let Some(id) = id_text(event.get(field)) else {
                return false;
            };
            let h = short(self.key.hash(kind, &id));
            self.everywhere.contains(&h) || in_source.is_some_and(|s| s.contains(&h))
        };
        hit(SubjectKind::UserId, "userId")
            || hit(SubjectKind::AnonymousId, "anonymousId")
            || hit(SubjectKind::UserId, "previousId")
            || hit(SubjectKind::AnonymousId, "previousId")
    }
}

/// An id as ingest reads it: a non-empty string, or a number as its text.
pub(super) fn id_text(v: Option<&Value>) -> Option<std::borrow::Cow<'_, str>> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.as_str().into()),
        Value::Number(n) => Some(n.to_string().into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_subject_is_suppressed_where_it_was_and_lifted_as_asked() {
        let key = SubjectKey::new([7; 16]);
        let mut s = Suppressions::new(key);
        let alice = short(key.hash(SubjectKind::UserId, "alice"));
        let anon = short(key.hash(SubjectKind::AnonymousId, "a-1"));
        assert!(!s.suppresses("web", &event(json!({"userId": "alice"}))));

        s.suppress(&[alice], None);
        s.suppress(&[anon], Some(&["web".to_string()]));
        assert!(s.suppresses("web", &event(json!({"userId": "alice"}))));
        assert!(s.suppresses("ios", &event(json!({"userId": "alice"}))));
        // The same id as the other kind is another subject.
        assert!(!s.suppresses("web", &event(json!({"anonymousId": "alice"}))));
        assert!(s.suppresses(
            "web",
            &event(json!({"anonymousId": "a-1", "userId": "bob"}))
        ));
        assert!(!s.suppresses("ios", &event(json!({"anonymousId": "a-1"}))));
        assert!(s.suppresses(
            "ios",
            &event(json!({"type": "alias", "previousId": "alice", "userId": "x"}))
        ));

        // Lifting for one source leaves an everywhere suppression in force.
        s.unsuppress(&[alice], Some(&["web".to_string()]));
        assert!(s.suppresses("web", &event(json!({"userId": "alice"}))));
        s.unsuppress(&[alice, anon], None);
        assert!(s.is_empty());
        assert!(!s.suppresses("web", &event(json!({"anonymousId": "a-1"}))));
    }

    #[test]
    fn numeric_ids_are_their_text_and_keys_differ() {
        let a = SubjectKey::new([1; 16]);
        let b = SubjectKey::new([2; 16]);
        let mut s = Suppressions::new(a);
        s.suppress(&[short(a.hash(SubjectKind::UserId, "42"))], None);
        assert!(s.suppresses("web", &event(json!({"userId": 42}))));
        assert_ne!(
            a.hash(SubjectKind::UserId, "42"),
            b.hash(SubjectKind::UserId, "42")
        );
    }
}
