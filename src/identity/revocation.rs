//! Kill switches for NextAuth sessions, acting in every phase:
//!
//! - `NEXTAUTH_SESSIONS_NOT_BEFORE` (parsed in `config`): a session whose `iat` is earlier is
//!   anonymous — every legacy session at once.
//! - `POST /__auth-bridge/admin/revoke {"user_id"}`: every session of that user with
//!   `iat` ≤ the revoke time is anonymous; sessions issued later work; `"revoked": false` lifts it.
//!
//! Storage: one KV key per revoked user (`revoked:v1:<user id>`), its revoke time also in the
//! key's metadata, so one `list` (1000 keys per page) reads the whole list without a `get` per
//! user, and two admins revoking at once on different isolates never overwrite each other.
//!
//! Hot path: each isolate keeps a snapshot of the list, refreshed at most every
//! [`REFRESH_SECS`] by the first request carrying a NextAuth session that finds it stale (while it
//! refreshes, the others use the previous snapshot). A request without a NextAuth session never
//! looks at it. A refresh is one `get` of a change marker ([`MARKER_KEY`], rewritten by every
//! revoke and lift, read through KV's edge cache); the list itself is read only when the marker
//! changed, and again on each refresh for [`LIST_SETTLE_SECS`] after, because KV's `list` can
//! lag behind its values. Another isolate therefore applies a change within [`REFRESH_SECS`]
//! plus the marker's edge-cache lifetime of KV showing it there (60 s in the same location;
//! other locations add KV's documented propagation, up to 60 s). Because KV is eventually
//! consistent, a change made on this isolate is kept as a local override for
//! [`LOCAL_OVERRIDE_SECS`]: the
//! isolate that took the call applies it at once, whatever a stale list says meanwhile.
//!
//! Bounds: at most [`MAX_REVOKED_USERS`] revoked users (a revoke beyond that is refused with
//! `409`: the operator should use `NEXTAUTH_SESSIONS_NOT_BEFORE`); a snapshot holds at most
//! [`SNAPSHOT_LIMIT`] entries and says so when the list was longer; local overrides are capped at
//! [`MAX_LOCAL_OVERRIDES`].
//!
//! Database sessions (opaque tokens) carry no `iat`: the origin validates them on every request
//! the worker asks about, so deleting the user's `Session` rows is their kill switch.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub mod kv;

/// KV prefix of the revocation entries.
pub const KV_PREFIX: &str = "revoked:v1:";
/// How often an isolate re-reads the change marker (the cross-isolate delay is this plus KV's own).
pub const REFRESH_SECS: u64 = 30;
/// KV key of the change marker; outside [`KV_PREFIX`], so no user id can collide with it.
pub const MARKER_KEY: &str = "revocations:v1:changed";
/// Edge-cache lifetime of the marker read (KV's minimum).
pub const MARKER_CACHE_TTL_SECS: u64 = 30;
/// After the marker changed, the list is re-read on every refresh for this long.
pub const LIST_SETTLE_SECS: u64 = 90;
/// After a failed refresh, the next attempt waits this long (not a full period).
pub const RETRY_AFTER_FAILURE_SECS: u64 = 5;
/// How long a change made on this isolate overrides what the (eventually consistent) list says.
pub const LOCAL_OVERRIDE_SECS: u64 = 120;
/// Revoked users kept at most; beyond it `NEXTAUTH_SESSIONS_NOT_BEFORE` is the tool.
pub const MAX_REVOKED_USERS: usize = 10_000;
/// Entries one snapshot holds at most (a little above the cap, for concurrent revokes).
pub const SNAPSHOT_LIMIT: usize = 12_000;
/// Changes remembered locally at most (each lives [`LOCAL_OVERRIDE_SECS`]).
pub const MAX_LOCAL_OVERRIDES: usize = 1_000;
/// Longest user id accepted (KV keys are limited to 512 bytes).
pub const MAX_USER_ID_BYTES: usize = 256;
/// Entries listed in the admin status (the full list stays in KV).
pub const STATUS_LISTED: usize = 100;

/// Why a NextAuth session gives no identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `iat` is earlier than `NEXTAUTH_SESSIONS_NOT_BEFORE`.
    IssuedBeforeNotBefore,
    /// The user was revoked at or after the session's `iat`.
    Revoked,
    /// A kill switch applies and the session has no usable `iat`: it cannot prove it is newer.
    NoIssuedAt,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::IssuedBeforeNotBefore => "issued before NEXTAUTH_SESSIONS_NOT_BEFORE",
            Refusal::Revoked => "the user's sessions were revoked",
            Refusal::NoIssuedAt => "no iat while a kill switch applies",
        })
    }
}

/// The session's `iat` (as decoded: a number, when present) in whole seconds, when it is not
/// negative.
pub fn issued_at(iat: Option<f64>) -> Option<u64> {
    let iat = iat?;
    (iat.is_finite() && iat >= 0.0).then(|| iat.floor() as u64)
}

/// The decision for one session: `not_before` from the configuration, `revoked_at` from the
/// user's revocation entry (if any). `None` = the session stands.
pub fn refusal(
    iat: Option<u64>,
    not_before: Option<u64>,
    revoked_at: Option<u64>,
) -> Option<Refusal> {
    if not_before.is_none() && revoked_at.is_none() {
        return None;
    }
    let Some(iat) = iat else {
        return Some(Refusal::NoIssuedAt);
    };
    if not_before.is_some_and(|nb| iat < nb) {
        return Some(Refusal::IssuedBeforeNotBefore);
    }
    if revoked_at.is_some_and(|at| iat <= at) {
        return Some(Refusal::Revoked);
    }
    None
}

/// Parses `NEXTAUTH_SESSIONS_NOT_BEFORE`: unix seconds, or an RFC 3339 date-time.
pub fn parse_not_before(value: &str) -> Result<u64, &'static str> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse::<u64>()
            .ok()
            // Past year 9999 is a typo (milliseconds, most likely), not a date.
            .filter(|secs| *secs <= 253_402_300_799)
            .ok_or("not a plausible unix time in seconds (milliseconds given?)");
    }
    let parsed = chrono::DateTime::parse_from_rfc3339(value)
        .map_err(|_| "expected unix seconds or an RFC 3339 date-time (2026-05-01T00:00:00Z)")?;
    u64::try_from(parsed.timestamp()).map_err(|_| "a date before 1970")
}

/// What `POST /admin/revoke` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeRequest {
    pub user_id: String,
    /// `false` lifts the revocation.
    pub revoked: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    user_id: Value,
    #[serde(default)]
    revoked: Option<Value>,
}

/// Parses and checks a revoke body. The error is a sentence for the `400` answer.
pub fn parse_revoke_body(body: &[u8]) -> Result<RevokeRequest, String> {
    let parsed: RevokeBody = crate::json::from_slice(body)
        .map_err(|e| format!("expected {{\"user_id\": \"…\", \"revoked\": true|false}}: {e}"))?;
    let Value::String(user_id) = parsed.user_id else {
        return Err(
            "user_id must be a string (the legacy NextAuth user id, as in the session's sub)"
                .into(),
        );
    };
    if user_id.is_empty() {
        return Err("user_id is empty".into());
    }
    if user_id.len() > MAX_USER_ID_BYTES {
        return Err(format!("user_id is longer than {MAX_USER_ID_BYTES} bytes"));
    }
    if user_id.chars().any(char::is_control) {
        return Err("user_id contains control characters".into());
    }
    let revoked = match parsed.revoked {
        None => true,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err("revoked must be true or false".into()),
    };
    Ok(RevokeRequest { user_id, revoked })
}

/// The stored entry (KV value) and the answer of `POST /admin/revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationEntry {
    pub user_id: String,
    pub revoked: bool,
    /// Unix seconds: sessions with `iat` ≤ this are anonymous (when `revoked`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub revoked_at: Option<u64>,
    /// Unix seconds of a lift.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lifted_at: Option<u64>,
}

/// Metadata stored beside each KV entry, read back by `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMetadata {
    pub at: u64,
}

/// The KV key of a user's entry.
pub fn kv_key(user_id: &str) -> String {
    format!("{KV_PREFIX}{user_id}")
}

/// The revoke time carried by one listed key, when the key is a well-formed entry.
pub fn listed_entry(name: &str, metadata: Option<&Value>) -> Option<(String, u64)> {
    let user_id = name.strip_prefix(KV_PREFIX)?;
    let at = metadata?.get("at")?.as_u64()?;
    (!user_id.is_empty()).then(|| (user_id.to_string(), at))
}

/// One isolate's view of the revocation list.
#[derive(Debug, Default)]
pub struct RevocationSnapshot {
    /// user id → revoke time, as last listed from KV.
    listed: HashMap<String, u64>,
    /// When the list was last read (or last failed to be), `None` before the first read.
    fetched_at: Option<u64>,
    /// Earliest time of the next read.
    next_refresh: u64,
    /// The list had more than [`SNAPSHOT_LIMIT`] entries: some revocations are not held here.
    truncated: bool,
    /// A refresh is under way since this time (other requests keep the current snapshot).
    refreshing_since: Option<u64>,
    /// Changes made on this isolate: user id → (revoke time, or `None` for a lift; when).
    local: HashMap<String, (Option<u64>, u64)>,
    /// The change marker last seen (`None`: no change ever made).
    marker: Option<String>,
    /// The list has been read successfully at least once.
    listed_once: bool,
    /// Until then, every refresh reads the list (the marker changed lately).
    relist_until: u64,
    /// Moves on every change of the answers (a list read, a change made here), so an answer
    /// remembered under one version is known to stand while it holds (see `identity::memo`).
    version: u64,
}

impl RevocationSnapshot {
    /// The revoke time that applies to `user_id` at `now`, if any.
    pub fn revoked_at(&self, user_id: &str, now: u64) -> Option<u64> {
        match self.local.get(user_id) {
            Some((at, written)) if written + LOCAL_OVERRIDE_SECS > now => *at,
            _ => self.listed.get(user_id).copied(),
        }
    }

    /// The version of this snapshot's answers while they cannot change without it moving:
    /// `None` when a read of the list is due (`refreshes`: a KV namespace is bound to read it
    /// from) or a change made on this isolate still overrides the list (its end would change an
    /// answer without a new version).
    pub fn settled_version(&self, refreshes: bool, now: u64) -> Option<u64> {
        let overriding = self
            .local
            .values()
            .any(|(_, written)| written + LOCAL_OVERRIDE_SECS > now);
        let due = refreshes && self.refresh_due(now);
        (!overriding && !due).then_some(self.version)
    }

    /// Until when (unix seconds) a settled version stands with nothing but the clock to end
    /// it: the next read of the list (`refreshes`), or never. A change made on this isolate ends
    /// it sooner; its caller knows.
    pub fn settled_until(&self, refreshes: bool) -> u64 {
        if refreshes {
            self.next_refresh
        } else {
            u64::MAX
        }
    }

    /// Whether a read of the list is due. A snapshot never read must be read before use; one
    /// being refreshed by another request is used as it is (unless the refresh looks stuck).
    pub fn refresh_due(&self, now: u64) -> bool {
        if let Some(since) = self.refreshing_since {
            if now < since + REFRESH_SECS {
                return self.fetched_at.is_none();
            }
        }
        self.fetched_at.is_none() || now >= self.next_refresh
    }

    pub fn has_been_read(&self) -> bool {
        self.fetched_at.is_some()
    }

    pub fn begin_refresh(&mut self, now: u64) {
        self.refreshing_since = Some(now);
    }

    /// Given the change marker just read: whether the list must be read now (never read yet,
    /// the marker changed, or it changed less than [`LIST_SETTLE_SECS`] ago).
    pub fn list_needed(&mut self, marker: Option<&str>, now: u64) -> bool {
        if self.marker.as_deref() != marker {
            self.marker = marker.map(str::to_string);
            self.relist_until = now + LIST_SETTLE_SECS;
            return true;
        }
        !self.listed_once || now < self.relist_until
    }

    /// A refresh found nothing to read: the snapshot stands for another period.
    pub fn unchanged(&mut self, now: u64) {
        self.next_refresh = now + REFRESH_SECS;
        self.refreshing_since = None;
    }

    /// Replaces the listed entries with a fresh read.
    pub fn replace(
        &mut self,
        entries: impl IntoIterator<Item = (String, u64)>,
        complete: bool,
        now: u64,
    ) {
        let mut entries = entries.into_iter();
        self.version += 1;
        self.listed = entries.by_ref().take(SNAPSHOT_LIMIT).collect();
        self.truncated = !complete || entries.next().is_some();
        self.fetched_at = Some(now);
        self.listed_once = true;
        self.next_refresh = now + REFRESH_SECS;
        self.refreshing_since = None;
        self.prune_local(now);
    }

    /// A read failed: keep what is known, try again soon.
    pub fn refresh_failed(&mut self, now: u64) {
        self.next_refresh = now + RETRY_AFTER_FAILURE_SECS;
        self.refreshing_since = None;
        // The change that made the list worth reading must still be read.
        self.relist_until = self.relist_until.max(now + LIST_SETTLE_SECS);
        if self.fetched_at.is_none() {
            // Nothing known yet: the empty list stands until the retry (failure must not
            // turn every NextAuth request into a KV read).
            self.fetched_at = Some(now);
        }
    }

    /// Records a change made on this isolate (`Some(time)` = revoked, `None` = lifted).
    pub fn record_local(&mut self, user_id: &str, revoked_at: Option<u64>, now: u64) {
        self.version += 1;
        self.prune_local(now);
        if self.local.len() >= MAX_LOCAL_OVERRIDES && !self.local.contains_key(user_id) {
            if let Some(oldest) = self
                .local
                .iter()
                .min_by_key(|(_, (_, written))| *written)
                .map(|(k, _)| k.clone())
            {
                self.local.remove(&oldest);
            }
        }
        self.local.insert(user_id.to_string(), (revoked_at, now));
        match revoked_at {
            Some(at) => {
                if self.listed.len() < SNAPSHOT_LIMIT || self.listed.contains_key(user_id) {
                    self.listed.insert(user_id.to_string(), at);
                }
            }
            None => {
                self.listed.remove(user_id);
            }
        }
    }

    fn prune_local(&mut self, now: u64) {
        self.local
            .retain(|_, (_, written)| *written + LOCAL_OVERRIDE_SECS > now);
    }

    /// Revoked users known here (listed and local), newest first.
    pub fn entries(&self, now: u64) -> Vec<(String, u64)> {
        let mut merged: HashMap<&str, u64> =
            self.listed.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        for (user, (at, written)) in &self.local {
            if written + LOCAL_OVERRIDE_SECS > now {
                match at {
                    Some(at) => merged.insert(user.as_str(), *at),
                    None => merged.remove(user.as_str()),
                };
            }
        }
        let mut out: Vec<(String, u64)> = merged
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        crate::sort::sort_by(&mut out, |a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }

    pub fn fetched_at(&self) -> Option<u64> {
        self.fetched_at
    }
}

/// The `revocations` section of the admin status.
pub fn status_json(snapshot: &RevocationSnapshot, not_before: Option<u64>, now: u64) -> Value {
    let entries = snapshot.entries(now);
    let listed: Vec<Value> = entries
        .iter()
        .take(STATUS_LISTED)
        .map(|(user_id, at)| json!({"user_id": user_id, "revoked_at": at}))
        .collect();
    json!({
        "nextauth_sessions_not_before": not_before,
        "revoked_users": entries.len(),
        "listed": listed,
        "listed_limit": STATUS_LISTED,
        "max_revoked_users": MAX_REVOKED_USERS,
        "snapshot_read_at": snapshot.fetched_at(),
        "truncated": snapshot.truncated(),
        "refresh_secs": REFRESH_SECS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_version_moves_with_every_change_of_the_answers() {
        let mut s = RevocationSnapshot::default();
        // Never read: a read is due (with KV to read from), so nothing is settled.
        assert_eq!(s.settled_version(true, 0), None);
        let unread = s.settled_version(false, 0).unwrap();
        s.replace(Vec::new(), true, 0);
        let read = s.settled_version(true, 1).unwrap();
        assert_ne!(read, unread, "a list read moves the version");
        assert_eq!(s.settled_version(true, REFRESH_SECS - 1), Some(read));
        assert_eq!(s.settled_version(true, REFRESH_SECS), None, "refresh due");
        // A marker found unchanged keeps the answers and the version.
        s.begin_refresh(REFRESH_SECS);
        s.unchanged(REFRESH_SECS);
        assert_eq!(s.settled_version(true, REFRESH_SECS + 1), Some(read));
        // A change made here moves it, and nothing is settled while it overrides the list:
        // its end would change the answer without a new version.
        s.record_local("u", Some(40), 40);
        assert_eq!(s.revoked_at("u", 41), Some(40));
        assert_eq!(s.settled_version(false, 41), None);
        assert_eq!(s.settled_version(false, 40 + LOCAL_OVERRIDE_SECS - 1), None);
        let after = s.settled_version(false, 40 + LOCAL_OVERRIDE_SECS).unwrap();
        assert_ne!(after, read);
        s.replace(vec![("u".to_string(), 40)], true, 200);
        assert_ne!(s.settled_version(true, 201), Some(after));
    }

    #[test]
    fn no_switch_no_refusal_even_without_iat() {
        assert_eq!(refusal(None, None, None), None);
        assert_eq!(refusal(Some(5), None, None), None);
    }

    #[test]
    fn not_before_refuses_strictly_earlier_sessions() {
        assert_eq!(
            refusal(Some(99), Some(100), None),
            Some(Refusal::IssuedBeforeNotBefore)
        );
        assert_eq!(refusal(Some(100), Some(100), None), None);
        assert_eq!(refusal(Some(101), Some(100), None), None);
        assert_eq!(refusal(None, Some(100), None), Some(Refusal::NoIssuedAt));
    }

    #[test]
    fn revocation_covers_sessions_issued_up_to_the_revoke_time() {
        assert_eq!(
            refusal(Some(1000), None, Some(1000)),
            Some(Refusal::Revoked)
        );
        assert_eq!(refusal(Some(10), None, Some(1000)), Some(Refusal::Revoked));
        assert_eq!(refusal(Some(1001), None, Some(1000)), None);
        assert_eq!(refusal(None, None, Some(1000)), Some(Refusal::NoIssuedAt));
        // Both switches: either one refuses.
        assert_eq!(
            refusal(Some(1500), Some(2000), Some(1000)),
            Some(Refusal::IssuedBeforeNotBefore)
        );
        assert_eq!(
            refusal(Some(2500), Some(2000), Some(3000)),
            Some(Refusal::Revoked)
        );
        assert_eq!(refusal(Some(3500), Some(2000), Some(3000)), None);
    }

    #[test]
    fn iat_is_read_as_whole_non_negative_seconds() {
        // A non-number `iat` never gets here: the decoder refuses the token (see
        // `nextauth::claims`).
        assert_eq!(issued_at(Some(1_700_000_000.0)), Some(1_700_000_000));
        assert_eq!(issued_at(Some(1_700_000_000.9)), Some(1_700_000_000));
        assert_eq!(issued_at(Some(-1.0)), None);
        assert_eq!(issued_at(Some(f64::NAN)), None);
        assert_eq!(issued_at(Some(f64::INFINITY)), None);
        assert_eq!(issued_at(None), None);
    }

    #[test]
    fn not_before_parses_unix_seconds_and_rfc3339() {
        assert_eq!(parse_not_before("1767225600"), Ok(1_767_225_600));
        assert_eq!(parse_not_before(" 1767225600 "), Ok(1_767_225_600));
        assert_eq!(parse_not_before("2026-01-01T00:00:00Z"), Ok(1_767_225_600));
        assert_eq!(
            parse_not_before("2026-01-01T01:00:00+01:00"),
            Ok(1_767_225_600)
        );
        assert_eq!(
            parse_not_before("2026-01-01T00:00:00.750Z"),
            Ok(1_767_225_600)
        );
        for bad in [
            "",
            "yesterday",
            "2026-01-01",
            "2026-13-01T00:00:00Z",
            "1767225600000",
            "-5",
            "1969-12-31T23:59:59Z",
            "0x10",
        ] {
            assert!(parse_not_before(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn revoke_bodies() {
        assert_eq!(
            parse_revoke_body(br#"{"user_id":"legacy-1"}"#),
            Ok(RevokeRequest {
                user_id: "legacy-1".into(),
                revoked: true
            })
        );
        assert_eq!(
            parse_revoke_body(br#"{"user_id":"legacy-1","revoked":false}"#),
            Ok(RevokeRequest {
                user_id: "legacy-1".into(),
                revoked: false
            })
        );
        let long = format!(r#"{{"user_id":"{}"}}"#, "x".repeat(MAX_USER_ID_BYTES + 1));
        for bad in [
            &b""[..],
            b"null",
            b"[]",
            b"{}",
            br#"{"user_id":""}"#,
            br#"{"user_id":42}"#,
            br#"{"user_id":null}"#,
            br#"{"user_id":"a","revoked":"no"}"#,
            br#"{"user_id":"a","extra":1}"#,
            br#"{"user_id":"a\nb"}"#,
            br#"{"user_id":"a""#,
            long.as_bytes(),
        ] {
            assert!(
                parse_revoke_body(bad).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn listed_keys_need_the_prefix_and_metadata() {
        assert_eq!(
            listed_entry("revoked:v1:legacy-1", Some(&json!({"at": 5}))),
            Some(("legacy-1".into(), 5))
        );
        assert_eq!(listed_entry("revoked:v1:legacy-1", None), None);
        assert_eq!(listed_entry("revoked:v1:", Some(&json!({"at": 5}))), None);
        assert_eq!(
            listed_entry("other:legacy-1", Some(&json!({"at": 5}))),
            None
        );
        assert_eq!(
            listed_entry("revoked:v1:x", Some(&json!({"at": "5"}))),
            None
        );
    }

    #[test]
    fn snapshot_is_read_first_then_every_refresh_period() {
        let mut s = RevocationSnapshot::default();
        assert!(s.refresh_due(100));
        s.begin_refresh(100);
        // Never read: every request waits for a read of its own.
        assert!(s.refresh_due(100));
        s.replace([("u".to_string(), 50)], true, 100);
        assert!(!s.refresh_due(100 + REFRESH_SECS - 1));
        assert!(s.refresh_due(100 + REFRESH_SECS));
        s.begin_refresh(130);
        // Someone is refreshing: the others use the snapshot they have.
        assert!(!s.refresh_due(131));
        // A refresh that never finished does not block forever.
        assert!(s.refresh_due(130 + REFRESH_SECS));
        s.refresh_failed(131);
        assert!(!s.refresh_due(131 + RETRY_AFTER_FAILURE_SECS - 1));
        assert!(s.refresh_due(131 + RETRY_AFTER_FAILURE_SECS));
        assert_eq!(s.revoked_at("u", 131), Some(50));
    }

    #[test]
    fn the_list_is_read_first_then_only_after_the_marker_changes() {
        let mut s = RevocationSnapshot::default();
        // Never read: read it, even with no marker at all (no change was ever made).
        assert!(s.list_needed(None, 0));
        s.replace(Vec::new(), true, 0);
        assert!(!s.list_needed(None, 30));
        s.unchanged(30);
        assert!(!s.refresh_due(59));
        // A revoke elsewhere changes the marker: read the list, and keep reading it while KV's
        // list may still lag behind.
        assert!(s.list_needed(Some("m1"), 60));
        s.replace([("u".to_string(), 55)], true, 60);
        assert!(s.list_needed(Some("m1"), 90));
        assert!(s.list_needed(Some("m1"), 60 + LIST_SETTLE_SECS - 1));
        assert!(!s.list_needed(Some("m1"), 60 + LIST_SETTLE_SECS));
        // A failed read keeps the need alive beyond the settle window.
        assert!(s.list_needed(Some("m2"), 1000));
        s.refresh_failed(1000 + LIST_SETTLE_SECS - 1);
        assert!(s.list_needed(Some("m2"), 1000 + LIST_SETTLE_SECS + 10));
        // A first read that failed is retried even when the marker never changes.
        let mut fresh = RevocationSnapshot::default();
        assert!(fresh.list_needed(None, 0));
        fresh.refresh_failed(0);
        assert!(fresh.list_needed(None, 10_000));
    }

    #[test]
    fn local_changes_win_over_a_stale_list_for_a_while() {
        let mut s = RevocationSnapshot::default();
        s.replace(Vec::new(), true, 0);
        s.record_local("u", Some(10), 10);
        assert_eq!(s.revoked_at("u", 10), Some(10));
        // A stale list without the entry does not undo it on this isolate.
        s.replace(Vec::new(), true, 40);
        assert_eq!(s.revoked_at("u", 40), Some(10));
        // Once the override has expired, the list decides (by then it has caught up).
        assert_eq!(s.revoked_at("u", 10 + LOCAL_OVERRIDE_SECS), None);
        // A lift wins over a stale list that still shows the entry.
        let mut s = RevocationSnapshot::default();
        s.replace([("v".to_string(), 5)], true, 0);
        s.record_local("v", None, 20);
        s.replace([("v".to_string(), 5)], true, 30);
        assert_eq!(s.revoked_at("v", 30), None);
        assert!(s.entries(30).is_empty());
    }

    #[test]
    fn snapshot_and_local_overrides_stay_bounded() {
        let mut s = RevocationSnapshot::default();
        s.replace(
            (0..SNAPSHOT_LIMIT + 500).map(|i| (format!("u{i}"), 1)),
            true,
            0,
        );
        assert_eq!(s.entries(0).len(), SNAPSHOT_LIMIT);
        assert!(s.truncated());
        for i in 0..(MAX_LOCAL_OVERRIDES * 3) {
            s.record_local(&format!("local{i}"), Some(2), 1);
        }
        assert!(s.local.len() <= MAX_LOCAL_OVERRIDES);
        assert!(s.listed.len() <= SNAPSHOT_LIMIT);
        let status = status_json(&s, None, 1);
        assert_eq!(status["listed"].as_array().unwrap().len(), STATUS_LISTED);
        assert_eq!(status["truncated"], true);
    }

    #[test]
    fn status_lists_newest_first() {
        let mut s = RevocationSnapshot::default();
        s.replace([("old".to_string(), 1), ("new".to_string(), 9)], true, 10);
        let status = status_json(&s, Some(7), 10);
        assert_eq!(status["revoked_users"], 2);
        assert_eq!(status["listed"][0]["user_id"], "new");
        assert_eq!(status["nextauth_sessions_not_before"], 7);
        assert_eq!(status["truncated"], false);
    }
}
