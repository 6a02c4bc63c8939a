//! Deduplication of `messageId`s within a window, off the per-event disk path.
//!
//! Where it sits: the writer checks each appended event here before it goes into
//! the log. Keys are 128-bit digests of `source`, `messageId` (SHA-256, cut to
//! 16 bytes: collisions are out of reach, so the check is exact in practice),
//! computed by the caller before the writer sees them. They are held in memory
//! in time buckets (a whole bucket expires at once, so pruning never walks
//! keys), and persisted as one row per commit, which start-up loads back.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use sha2::{Digest, Sha256};

/// A dedup key.
pub(super) type Key = u128;

/// The key of a `messageId` within a source.
pub(super) fn key(source: &str, message_id: &str) -> Key {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    h.update([0]);
    h.update(message_id.as_bytes());
    let d = h.finalize();
    u128::from_le_bytes(d[..16].try_into().expect("16 bytes"))
}

/// Keys are already uniform (SHA-256 digests): hashing them again is wasted work,
/// so the sets use their low 64 bits as the hash.
#[derive(Debug, Default)]
pub(super) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

/// A set of keys.
pub(super) type KeySet = HashSet<Key, BuildHasherDefault<DigestHasher>>;

/// Keys as bytes, for the persisted row.
pub(super) fn to_bytes(keys: &[Key]) -> Vec<u8> {
    keys.iter().flat_map(|k| k.to_le_bytes()).collect()
}

/// The inverse of [`to_bytes`].
pub(super) fn from_bytes(bytes: &[u8]) -> impl Iterator<Item = Key> + '_ {
    bytes
        .chunks_exact(16)
        .map(|c| u128::from_le_bytes(c.try_into().expect("16 bytes")))
}

/// Buckets per window: a key lives between one window and one window plus a bucket.
const BUCKETS: i64 = 24;

/// The keys seen within the window.
#[derive(Debug)]
pub(super) struct Dedup {
    /// The window, in ms.
    window: i64,
    /// Width of a bucket, in ms.
    width: i64,
    /// `(bucket start, keys)`, oldest first.
    buckets: VecDeque<(i64, KeySet)>,
}

impl Dedup {
    /// An empty set for a window (ms).
    pub fn new(window_ms: i64) -> Dedup {
        Dedup {
            window: window_ms.max(1),
            width: (window_ms / BUCKETS).max(1),
            buckets: VecDeque::new(),
        }
    }

    /// Whether `key` was seen within the window before `now`.
    pub fn seen(&self, key: Key, now: i64) -> bool {
        self.buckets
            .iter()
            .rev()
            .take_while(|(start, _)| *start + self.width > now - self.window)
            .any(|(_, keys)| keys.contains(&key))
    }

    /// Remember keys seen at `at`.
    pub fn add(&mut self, keys: impl IntoIterator<Item = Key>, at: i64) {
        let start = at - at.rem_euclid(self.width);
        let bucket = match self.buckets.iter().position(|(s, _)| *s == start) {
            Some(i) => i,
            None => {
                let i = self.buckets.partition_point(|(s, _)| *s < start);
                self.buckets.insert(i, (start, KeySet::default()));
                i
            }
        };
        self.buckets[bucket].1.extend(keys);
    }

    /// Drop the buckets wholly outside the window; returns the cut-off time
    /// (rows older than it may be deleted from disk).
    pub fn expire(&mut self, now: i64) -> i64 {
        let cutoff = now - self.window - self.width;
        while self
            .buckets
            .front()
            .is_some_and(|(start, _)| *start + self.width <= cutoff)
        {
            self.buckets.pop_front();
        }
        cutoff
    }

    /// The window, in ms.
    pub fn window_ms(&self) -> i64 {
        self.window
    }

    /// Keys held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|(_, k)| k.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_seen_within_the_window_only() {
        let hour = 3_600_000;
        let mut d = Dedup::new(24 * hour);
        let a = key("web", "a");
        assert_ne!(a, key("app", "a"), "per source");
        assert_ne!(key("we", "ba"), key("web", "a"), "no ambiguity at the join");
        d.add([a], 10 * hour);
        assert!(d.seen(a, 10 * hour));
        assert!(d.seen(a, 33 * hour));
        assert!(!d.seen(a, 35 * hour), "expired after the window");
        assert!(!d.seen(key("web", "b"), 10 * hour));
        d.expire(40 * hour);
        assert_eq!(d.len(), 0);
        let bytes = to_bytes(&[a, 7]);
        assert_eq!(from_bytes(&bytes).collect::<Vec<_>>(), [a, 7]);
    }

    #[test]
    fn out_of_order_adds_keep_buckets_sorted() {
        let mut d = Dedup::new(24_000);
        d.add([1], 5_000);
        d.add([2], 1_000);
        d.add([3], 9_000);
        assert!(d.seen(1, 9_000) && d.seen(2, 9_000) && d.seen(3, 9_000));
        d.expire(27_000);
        assert!(!d.seen(2, 27_000));
        assert!(d.seen(3, 27_000));
    }
}
