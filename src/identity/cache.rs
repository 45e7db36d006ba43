//! The isolate's answers that expire: one bounded map, generic over its key, serves every such
//! cache of the identity path (database sessions, Clerk `external_id`s).
//!
//! Keys are compared in full and hashed with [`TailHash`] (their last bytes). That is safe for
//! these maps because no key is chosen freely by a stranger and matched by hash alone:
//! database-session keys are SHA-256 digests, Clerk ids come from verified tokens. A colliding hash costs one extra comparison, never a wrong answer.
//!
//! Database sessions are keyed by a cryptographic hash on purpose ([`VerifiedCache::key`]): the
//! map holds no cookie value in clear, and two values can never share a key.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};

use sha2::{Digest, Sha256};

/// Answers kept until they expire (unix seconds), found by their exact key. Bounded: when full,
/// expired entries make room first, then the whole map is dropped (a miss only costs the work
/// the answer saved).
pub struct ExpiringMap<K, V> {
    entries: HashMap<K, (V, u64), TailHash>,
    capacity: usize,
}

impl<K: Hash + Eq, V: Clone> ExpiringMap<K, V> {
    pub fn new(capacity: usize) -> Self {
        ExpiringMap {
            entries: HashMap::default(),
            capacity: capacity.max(1),
        }
    }

    /// The remembered value and the second it expires at, if it has not expired at `now`.
    pub fn get_until<Q>(&mut self, key: &Q, now: u64) -> Option<(V, u64)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.entries.get(key) {
            Some((value, expires)) if *expires > now => Some((value.clone(), *expires)),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// The remembered value, if it has not expired at `now`.
    pub fn get<Q>(&mut self, key: &Q, now: u64) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_until(key, now).map(|(value, _)| value)
    }

    /// Remembers `value` until `expires` (unix seconds). Makes room first when full.
    pub fn insert(&mut self, key: K, value: V, expires: u64, now: u64) {
        if expires <= now {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, (_, e)| *e > now);
            if self.entries.len() >= self.capacity {
                // Still full of live entries: start over.
                self.entries.clear();
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

/// Answers remembered by the SHA-256 of what they answer (see [`VerifiedCache::key`]).
pub type VerifiedCache<V> = ExpiringMap<[u8; 32], V>;

impl<V> ExpiringMap<[u8; 32], V> {
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
}

/// A hasher for maps keyed by whole tokens that are compared in full on every look-up: it hashes
/// only the last [`TAIL_HASH_BYTES`] bytes of the key (FNV-1a), which in a token are its
/// signature or authentication tag, random by construction. Safe only for maps whose entries are
/// verified tokens: a colliding hash costs one extra comparison and can never match another
/// token. Far cheaper than hashing a kilobyte of token (or a SHA-256 of it) per request.
#[derive(Clone, Copy, Default)]
pub struct TailHash;

/// How much of a key [`TailHash`] looks at.
pub const TAIL_HASH_BYTES: usize = 32;

impl BuildHasher for TailHash {
    type Hasher = TailHasher;

    fn build_hasher(&self) -> TailHasher {
        TailHasher(0xcbf2_9ce4_8422_2325)
    }
}

pub struct TailHasher(u64);

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in &bytes[bytes.len().saturating_sub(TAIL_HASH_BYTES)..] {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Cache = VerifiedCache<String>;

    #[test]
    fn tail_hash_tells_different_tails_apart_and_looks_no_further() {
        let hash = |s: &str| TailHash.hash_one(s);
        let tail = "t".repeat(TAIL_HASH_BYTES);
        assert_eq!(hash(&format!("aaaa{tail}")), hash(&format!("bbbb{tail}")));
        assert_ne!(hash(&format!("{tail}x")), hash(&format!("{tail}y")));
        let mut map: HashMap<Box<str>, u8, TailHash> = HashMap::default();
        map.insert(format!("aaaa{tail}").into(), 1);
        map.insert(format!("bbbb{tail}").into(), 2);
        // Same hash, still two entries, each found only by its exact token.
        assert_eq!(map.get(format!("aaaa{tail}").as_str()), Some(&1));
        assert_eq!(map.get(format!("bbbb{tail}").as_str()), Some(&2));
        assert_eq!(map.get(format!("cccc{tail}").as_str()), None);
    }

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
