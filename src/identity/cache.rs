//! Remembers verified sessions by the SHA-256 of their token, so repeat requests with the same
//! cookie skip the crypto. Entries live no longer than the token itself and the map is bounded.
//!
//! The key is a cryptographic hash on purpose: with a fast non-cryptographic hash an attacker
//! could craft a token that collides with a victim's and be handed the victim's identity.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// Entries kept per isolate; enough for the active users of one isolate, small in memory.
pub const DEFAULT_CAPACITY: usize = 2048;

pub struct VerifiedCache<V> {
    entries: HashMap<[u8; 32], (V, u64)>,
    capacity: usize,
}

impl<V: Clone> VerifiedCache<V> {
    pub fn new(capacity: usize) -> Self {
        VerifiedCache {
            entries: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The hash under which a token (or several cookie values joined) is remembered.
    pub fn key<P: AsRef<[u8]>>(parts: &[P]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        for part in parts {
            let part = part.as_ref();
            // Length-prefixed so ("ab","c") and ("a","bc") differ.
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        hasher.finalize().into()
    }

    /// The remembered value, if it has not expired at `now`.
    pub fn get(&mut self, key: &[u8; 32], now: u64) -> Option<V> {
        match self.entries.get(key) {
            Some((value, expires)) if *expires > now => Some(value.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers `value` until `expires` (unix seconds). Makes room first when full.
    pub fn insert(&mut self, key: [u8; 32], value: V, expires: u64, now: u64) {
        if expires <= now {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, (_, e)| *e > now);
            if self.entries.len() >= self.capacity {
                // Still full of live entries: drop an arbitrary one (a miss only costs crypto).
                if let Some(victim) = self.entries.keys().next().copied() {
                    self.entries.remove(&victim);
                }
            }
        }
        self.entries.insert(key, (value, expires));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Cache = VerifiedCache<String>;

    #[test]
    fn remembers_until_expiry() {
        let mut cache = Cache::new(4);
        let k = Cache::key(&["token-a"]);
        cache.insert(k, "alice".into(), 100, 10);
        assert_eq!(cache.get(&k, 99).as_deref(), Some("alice"));
        assert_eq!(cache.get(&k, 100), None);
        assert!(cache.is_empty(), "expired entries are dropped on read");
    }

    #[test]
    fn different_tokens_different_keys() {
        assert_ne!(Cache::key(&["ab", "c"]), Cache::key(&["a", "bc"]));
        assert_ne!(Cache::key(&["token-a"]), Cache::key(&["token-b"]));
        assert_eq!(Cache::key(&["x"]), Cache::key(&["x"]));
    }

    #[test]
    fn already_expired_values_are_not_stored() {
        let mut cache = Cache::new(4);
        cache.insert(Cache::key(&["t"]), "v".into(), 10, 10);
        assert!(cache.is_empty());
    }

    #[test]
    fn bounded_and_prefers_evicting_expired_entries() {
        let mut cache = Cache::new(3);
        cache.insert(Cache::key(&["old"]), "old".into(), 20, 0);
        cache.insert(Cache::key(&["a"]), "a".into(), 1000, 0);
        cache.insert(Cache::key(&["b"]), "b".into(), 1000, 0);
        cache.insert(Cache::key(&["c"]), "c".into(), 1000, 50);
        assert_eq!(cache.len(), 3);
        for live in ["a", "b", "c"] {
            assert_eq!(cache.get(&Cache::key(&[live]), 60).as_deref(), Some(live));
        }
        for i in 0..100 {
            let name = format!("n{i}");
            cache.insert(Cache::key(&[&name]), name.clone(), 1000, 60);
            assert!(cache.len() <= 3);
        }
    }
}
