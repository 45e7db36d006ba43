//! The isolate's memory of whole resolutions: the exact `Cookie` and `Authorization` bytes of a
//! request (compared in full) to the identity they resolved to and its headers, already packed
//! for the forward. A browser sends the same cookies with every request of a page load, so a
//! repeated request skips cookie parsing, token look-ups, JSON and header building alike.
//!
//! An answer is remembered only when the resolver says how long it stands ([`Reuse`]): until the
//! earliest of the tokens' expiry (with the configured tolerance), the Clerk `external_id`
//! cache's entry and [`MAX_REUSE_SECS`]; and, when a NextAuth session is involved, only while the
//! revocation snapshot keeps the version it was checked under (a revoke on this isolate changes
//! it at once, a refresh from KV on its usual schedule). Whatever else an answer could depend on
//! (a handshake, a dev-browser query parameter, a database session and its per-address cap, a
//! token not valid yet, a failed look-up) is never remembered: the resolver gives no [`Reuse`].
//! The memory belongs to one resolver, built from one configuration.
//!
//! Bounded: at most [`MAX_ENTRIES`] answers, keys of at most [`MAX_KEY_BYTES`], and
//! [`MAX_TOTAL_BYTES`] of keys in all; when full, expired answers go first, then all of them.

use std::rc::Rc;

use super::Identity;

/// Answers kept at most.
pub const MAX_ENTRIES: usize = 512;
/// Longest `Cookie` + `Authorization` remembered (longer requests are resolved every time).
pub const MAX_KEY_BYTES: usize = 8 * 1024;
/// Bytes of keys kept at most.
pub const MAX_TOTAL_BYTES: usize = 512 * 1024;
/// No answer is reused for longer than this, whatever its tokens say.
pub const MAX_REUSE_SECS: u64 = 600;

/// How long a resolution stands for the same request bytes, as the resolver found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reuse {
    /// First second (unix) at which the request must be resolved again.
    pub until: u64,
    /// The revocation snapshot's version the answer was checked under (a NextAuth session was
    /// involved), or `None` when no kill switch can change it.
    pub revocation: Option<u64>,
    /// How many `external_id`s the resolver had learned when it answered "this session's user
    /// has none" from its cache: a newly learned one takes precedence there, so the answer stands
    /// only until the next is learned. `None` when no such answer was given.
    pub external_ids: Option<u64>,
}

impl Reuse {
    /// An answer that depends on nothing but the request bytes, from `now`.
    pub fn from(now: u64) -> Reuse {
        Reuse {
            until: now.saturating_add(MAX_REUSE_SECS),
            revocation: None,
            external_ids: None,
        }
    }

    /// The same, ending at `until` at the latest.
    pub fn ending(self, until: u64) -> Reuse {
        Reuse {
            until: self.until.min(until),
            ..self
        }
    }

    /// The same, standing only while the revocation snapshot keeps `version`.
    pub fn under_revocation(self, version: u64) -> Reuse {
        Reuse {
            revocation: Some(version),
            ..self
        }
    }

    /// The same, standing only until the resolver learns an `external_id` beyond `learned`.
    pub fn until_learning(self, learned: u64) -> Reuse {
        Reuse {
            external_ids: Some(learned),
            ..self
        }
    }

    /// An answer made of two: it stands while both do.
    pub fn and(self, other: Reuse) -> Reuse {
        Reuse {
            until: self.until.min(other.until),
            revocation: self.revocation.or(other.revocation),
            external_ids: self.external_ids.or(other.external_ids),
        }
    }

    /// Whether the answer stands at `now`, given the revocation snapshot's settled version and
    /// the number of `external_id`s learned so far.
    pub fn stands(&self, now: u64, revocation_version: Option<u64>, external_ids: u64) -> bool {
        now < self.until
            && self
                .revocation
                .is_none_or(|version| revocation_version == Some(version))
            && self
                .external_ids
                .is_none_or(|learned| learned == external_ids)
    }
}

/// A remembered resolution: what the steps after resolution need.
#[derive(Debug, PartialEq, Eq)]
pub struct Recalled {
    pub identity: Identity,
    /// The identity headers, packed as [`crate::packed_headers::push`] packs them.
    pub headers: String,
    /// A valid NextAuth session came beside a Clerk session (counted as both).
    pub nextauth_beside_clerk: bool,
}

struct Entry {
    /// [`request_hash`] of the two values, compared first.
    hash: u64,
    cookie: Option<Box<str>>,
    authorization: Option<Box<str>>,
    value: Rc<Recalled>,
    reuse: Reuse,
}

impl Entry {
    fn is(&self, hash: u64, cookie: Option<&str>, authorization: Option<&str>) -> bool {
        let same = |kept: &Option<Box<str>>, asked: Option<&str>| match (kept, asked) {
            (Some(kept), Some(asked)) => same_bytes(kept.as_bytes(), asked.as_bytes()),
            (None, None) => true,
            _ => false,
        };
        self.hash == hash && same(&self.cookie, cookie) && same(&self.authorization, authorization)
    }

    fn bytes(&self) -> usize {
        key_bytes(self.cookie.as_deref(), self.authorization.as_deref())
    }
}

fn key_bytes(cookie: Option<&str>, authorization: Option<&str>) -> usize {
    cookie.map_or(0, str::len) + authorization.map_or(0, str::len)
}

/// The memory itself; see the module documentation. A list, scanned by hash (a few hundred
/// integer comparisons at most): smaller in wasm than a map, and as quick at this size.
#[derive(Default)]
pub struct ResolutionMemo {
    entries: Vec<Entry>,
    /// Bytes of keys held, kept as entries come and go (not summed per request).
    bytes: usize,
}

impl ResolutionMemo {
    pub fn new() -> ResolutionMemo {
        ResolutionMemo::default()
    }

    /// The answer remembered for exactly these header values, and how long it stands, while it
    /// stands at `now` (see [`Reuse::stands`]; `revocation_version` is `None` when the snapshot
    /// must be read again, so no answer that depends on it stands).
    pub fn recall(
        &self,
        cookie: Option<&str>,
        authorization: Option<&str>,
        now: u64,
        revocation_version: Option<u64>,
        external_ids: u64,
    ) -> Option<(Rc<Recalled>, Reuse)> {
        let hash = request_hash(cookie, authorization);
        let entry = self
            .entries
            .iter()
            .find(|e| e.is(hash, cookie, authorization))?;
        entry
            .reuse
            .stands(now, revocation_version, external_ids)
            .then(|| (entry.value.clone(), entry.reuse))
    }

    /// Remembers `value` for these header values under `reuse` (from `now`). Requests too large
    /// to remember, or answers that no longer stand, are not kept.
    pub fn remember(
        &mut self,
        cookie: Option<&str>,
        authorization: Option<&str>,
        value: Recalled,
        reuse: Reuse,
        now: u64,
    ) {
        let bytes = key_bytes(cookie, authorization);
        if bytes > MAX_KEY_BYTES || reuse.until <= now {
            return;
        }
        let hash = request_hash(cookie, authorization);
        // The same request again (its answer expired, or changed): replaced. Entries are kept
        // in no particular order, so the last one takes its place.
        if let Some(at) = self
            .entries
            .iter()
            .position(|e| e.is(hash, cookie, authorization))
        {
            self.bytes -= self.entries.swap_remove(at).bytes();
        }
        let full =
            |memo: &Self| memo.entries.len() >= MAX_ENTRIES || memo.bytes + bytes > MAX_TOTAL_BYTES;
        if full(self) {
            self.entries.retain(|e| e.reuse.until > now);
            self.bytes = self.entries.iter().map(Entry::bytes).sum();
            if full(self) {
                // Still full of live answers: start over (a miss only costs one resolution).
                self.entries.clear();
                self.bytes = 0;
            }
        }
        self.bytes += bytes;
        self.entries.push(Entry {
            hash,
            cookie: cookie.map(Into::into),
            authorization: authorization.map(Into::into),
            value: Rc::new(value),
            reuse,
        });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of keys held.
    pub fn key_bytes(&self) -> usize {
        self.bytes
    }
}

/// Whether two byte strings are equal, compared eight bytes at a time from their ends (where
/// tokens differ first: their signatures). The same answer as `a == b`, without wasm's
/// byte-by-byte `memcmp` over a kilobyte of cookie.
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a_words, b_words) = (a.rchunks_exact(8), b.rchunks_exact(8));
    a_words.remainder() == b_words.remainder()
        && a_words.zip(b_words).all(|(x, y)| word(x) == word(y))
}

/// The eight bytes of a chunk as one word: a checked conversion to `[u8; 8]` is one load, where
/// `copy_from_slice` of a chunk (its length unknown to the compiler) is a copy call per word.
fn word(chunk: &[u8]) -> u64 {
    <[u8; 8]>::try_from(chunk).map_or(0, u64::from_le_bytes)
}

/// A fast hash of the whole `Cookie` and `Authorization` values (absent and empty differ), eight
/// bytes at a time. Not collision-resistant, and need not be: entries whose hash matches are
/// compared in full; an attacker who makes requests collide only costs himself comparisons,
/// within [`MAX_ENTRIES`].
pub fn request_hash(cookie: Option<&str>, authorization: Option<&str>) -> u64 {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let mut hash = 0u64;
    let mut mix = |word: u64| hash = (hash.rotate_left(5) ^ word).wrapping_mul(K);
    for part in [cookie, authorization] {
        let Some(part) = part else {
            mix(u64::MAX);
            continue;
        };
        let bytes = part.as_bytes();
        mix(bytes.len() as u64);
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            mix(word(chunk));
        }
        let mut last = [0u8; 8];
        last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        mix(u64::from_le_bytes(last));
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Source;

    fn recalled(user: &str) -> Recalled {
        Recalled {
            identity: Identity {
                source: Source::NextAuth,
                user_id: Some(user.into()),
                ..Identity::anonymous()
            },
            headers: format!("x-auth-source\0nextauth\0x-auth-user-id\0{user}"),
            nextauth_beside_clerk: false,
        }
    }

    fn user(hit: Option<(Rc<Recalled>, Reuse)>) -> Option<String> {
        hit.and_then(|(r, _)| r.identity.user_id.clone())
    }

    #[test]
    fn answers_only_the_exact_same_header_values() {
        let mut memo = ResolutionMemo::new();
        let cookie = "a=1; next-auth.session-token=tok";
        memo.remember(Some(cookie), None, recalled("ada"), Reuse::from(0), 0);
        assert_eq!(
            user(memo.recall(Some(cookie), None, 1, None, 0)),
            Some("ada".into())
        );
        for (c, a) in [
            (Some("a=1; next-auth.session-token=tok "), None),
            (Some("a=1; next-auth.session-token=toK"), None),
            (Some("a=1; next-auth.session-token=to"), None),
            (Some(cookie), Some("")),
            (Some(cookie), Some("Bearer x")),
            (None, Some(cookie)),
            (None, None),
        ] {
            assert_eq!(user(memo.recall(c, a, 1, None, 0)), None, "{c:?} {a:?}");
        }
    }

    #[test]
    fn colliding_hashes_are_told_apart_by_the_bytes() {
        let mut memo = ResolutionMemo::new();
        // Force one hash: same hash, different requests.
        let hash = request_hash(Some("x"), None);
        for (i, c) in ["x", "y", "z"].iter().enumerate() {
            memo.entries.push(Entry {
                hash,
                cookie: Some((*c).into()),
                authorization: None,
                value: Rc::new(recalled(&format!("u{i}"))),
                reuse: Reuse::from(0),
            });
        }
        assert_eq!(
            user(memo.recall(Some("x"), None, 1, None, 0)),
            Some("u0".into())
        );
        // "y" hashes otherwise: its forced entry is never consulted, nor confused with "x".
        assert_eq!(user(memo.recall(Some("y"), None, 1, None, 0)), None);
        assert!(memo.entries[1].is(hash, Some("y"), None));
        assert!(!memo.entries[1].is(hash, Some("x"), None));
    }

    #[test]
    fn an_answer_ends_at_its_until() {
        let mut memo = ResolutionMemo::new();
        memo.remember(
            Some("c"),
            None,
            recalled("ada"),
            Reuse::from(100).ending(160),
            100,
        );
        assert!(memo.recall(Some("c"), None, 159, None, 0).is_some());
        assert!(memo.recall(Some("c"), None, 160, None, 0).is_none());
        // Nothing outlives the cap.
        memo.remember(Some("d"), None, recalled("bo"), Reuse::from(100), 100);
        assert!(memo
            .recall(Some("d"), None, 100 + MAX_REUSE_SECS - 1, None, 0)
            .is_some());
        assert!(memo
            .recall(Some("d"), None, 100 + MAX_REUSE_SECS, None, 0)
            .is_none());
        // Already over: not kept.
        memo.remember(
            Some("e"),
            None,
            recalled("cy"),
            Reuse::from(0).ending(50),
            50,
        );
        assert!(memo.recall(Some("e"), None, 50, None, 0).is_none());
    }

    #[test]
    fn an_answer_checked_against_revocations_needs_the_same_snapshot() {
        let mut memo = ResolutionMemo::new();
        let reuse = Reuse::from(0).under_revocation(7);
        memo.remember(Some("c"), None, recalled("ada"), reuse, 0);
        assert!(memo.recall(Some("c"), None, 1, Some(7), 0).is_some());
        // A revoke (or a re-read list) moved the version; a due refresh gives none.
        assert!(memo.recall(Some("c"), None, 1, Some(8), 0).is_none());
        assert!(memo.recall(Some("c"), None, 1, None, 0).is_none());
        // An answer no kill switch can touch stands through either.
        memo.remember(Some("d"), None, recalled("bo"), Reuse::from(0), 0);
        assert!(memo.recall(Some("d"), None, 1, None, 0).is_some());
    }

    #[test]
    fn a_no_external_id_answer_ends_when_one_is_learned() {
        let mut memo = ResolutionMemo::new();
        memo.remember(
            Some("c"),
            None,
            recalled("user_1"),
            Reuse::from(0).until_learning(3),
            0,
        );
        assert!(memo.recall(Some("c"), None, 1, None, 3).is_some());
        assert!(memo.recall(Some("c"), None, 1, None, 4).is_none());
        // Combined answers keep every condition and the earliest end.
        let both = Reuse::from(0)
            .ending(30)
            .until_learning(3)
            .and(Reuse::from(0).ending(20).under_revocation(9));
        assert_eq!(both.until, 20);
        assert!(both.stands(19, Some(9), 3));
        assert!(!both.stands(19, Some(8), 3));
        assert!(!both.stands(19, Some(9), 4));
        assert!(!both.stands(20, Some(9), 3));
    }

    #[test]
    fn remembering_again_replaces() {
        let mut memo = ResolutionMemo::new();
        memo.remember(Some("c"), None, recalled("ada"), Reuse::from(0), 0);
        memo.remember(Some("c"), None, recalled("bo"), Reuse::from(0), 0);
        assert_eq!(memo.len(), 1);
        assert_eq!(memo.key_bytes(), 1);
        assert_eq!(
            user(memo.recall(Some("c"), None, 1, None, 0)),
            Some("bo".into())
        );
    }

    #[test]
    fn bounded_in_entries_and_bytes() {
        let mut memo = ResolutionMemo::new();
        let big = "k".repeat(MAX_KEY_BYTES + 1);
        memo.remember(Some(&big), None, recalled("ada"), Reuse::from(0), 0);
        assert!(memo.is_empty(), "an oversized request is not remembered");
        for i in 0..MAX_ENTRIES * 3 {
            let cookie = format!("c={i}");
            memo.remember(Some(&cookie), None, recalled("u"), Reuse::from(0), 0);
            assert!(memo.len() <= MAX_ENTRIES);
        }
        let mut memo = ResolutionMemo::new();
        for i in 0..MAX_ENTRIES {
            let cookie = format!("{i:08}{}", "v".repeat(MAX_KEY_BYTES - 8));
            memo.remember(Some(&cookie), None, recalled("u"), Reuse::from(0), 0);
            assert!(memo.key_bytes() <= MAX_TOTAL_BYTES);
            let held: usize = memo.entries.iter().map(Entry::bytes).sum();
            assert_eq!(memo.key_bytes(), held);
        }
        // Expired answers make room before live ones are dropped.
        let mut memo = ResolutionMemo::new();
        memo.remember(Some("live"), None, recalled("ada"), Reuse::from(0), 0);
        for i in 1..MAX_ENTRIES {
            let cookie = format!("old={i}");
            memo.remember(
                Some(&cookie),
                None,
                recalled("u"),
                Reuse::from(0).ending(10),
                0,
            );
        }
        memo.remember(Some("new"), None, recalled("bo"), Reuse::from(20), 20);
        assert!(memo.recall(Some("live"), None, 20, None, 0).is_some());
        assert!(memo.recall(Some("new"), None, 20, None, 0).is_some());
        assert_eq!(memo.len(), 2);
    }

    #[test]
    fn same_bytes_is_equality() {
        let base: Vec<u8> = (0..40u8).collect();
        for len in 0..=base.len() {
            let a = &base[..len];
            assert!(same_bytes(a, a));
            let copy = a.to_vec();
            assert!(same_bytes(a, &copy));
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 1;
                assert!(!same_bytes(a, &b), "len {len}, byte {at}");
            }
            if len > 0 {
                assert!(!same_bytes(a, &a[..len - 1]));
                assert!(!same_bytes(&a[..len - 1], a));
            }
        }
    }

    #[test]
    fn absent_and_empty_hash_apart() {
        assert_ne!(request_hash(None, None), request_hash(Some(""), None));
        assert_ne!(
            request_hash(Some("ab"), None),
            request_hash(Some("a"), Some("b"))
        );
        assert_ne!(
            request_hash(Some("abcdefgh1"), None),
            request_hash(Some("abcdefgh2"), None)
        );
    }
}
