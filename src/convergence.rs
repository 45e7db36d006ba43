//! Convergence figures: how much traffic still rides on NextAuth, and how many users already
//! carry a Clerk session, over the last hour and the last day.
//!
//! Each forwarded request is counted under one kind: `nextauth_only` (a valid NextAuth session,
//! no Clerk session), `clerk_only`, `both` (a valid Clerk session and a valid NextAuth JWT
//! cookie) or `anonymous`. Distinct users per kind are kept in a sparse HyperLogLog (2¹²
//! registers, ~1.6 % error, exact-ish below a few hundred thanks to linear counting) of a 64-bit
//! SipHash-1-3 of `x-auth-user-id` under a fixed key, so sets from many isolates merge by
//! register maximum.
//!
//! Why that hash: HyperLogLog needs well-mixed 64-bit values, not a cryptographic digest (the
//! ids are the app's own, and a register set reveals nothing usable either way), and it runs
//! on every signed-in request. It must also be the SAME function in every isolate and every
//! release within a day, or one user would count once per isolate: hence a fixed key (a
//! per-isolate random key would break the union) and the `siphasher` crate, whose output is
//! specified (std's `DefaultHasher` may change between Rust releases). Sets stored before this
//! hash replaced SHA-256 (a one-off change) may count a user twice in the day window until they
//! expire.
//!
//! Counting is per isolate and in memory, in 10-minute buckets grouped by clock hour; at most
//! once a minute an isolate writes its whole current hour to `conv:v1:<hour>:<isolate id>`
//! (a blind overwrite, no read-modify-write, so isolates never race). [`kv::report`] lists those
//! keys, merges them and sums the windows. The cost of that is one KV list and one read per
//! isolate-hour of the last day; beyond [`MAX_KEYS_READ`] keys the report says it is partial.
//! Lost on isolate eviction: at most the last minute of that isolate's counts.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use hll::Hll;

use crate::identity::Source;

mod hll;
pub mod kv;

pub const KV_PREFIX: &str = "conv:v1:";
pub const BUCKET_SECS: u64 = 600;
pub const HOUR_SECS: u64 = 3600;
pub const DAY_SECS: u64 = 86_400;
/// An isolate writes its counts at most this often.
pub const FLUSH_INTERVAL_SECS: u64 = 60;
/// Upper bound on KV reads by one report.
pub const MAX_KEYS_READ: usize = 1000;

/// The identity sources of one forwarded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NextAuthOnly,
    ClerkOnly,
    Both,
    Anonymous,
}

/// Requests per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requests {
    #[serde(default)]
    pub nextauth_only: u64,
    #[serde(default)]
    pub clerk_only: u64,
    #[serde(default)]
    pub both: u64,
    #[serde(default)]
    pub anonymous: u64,
}

impl Requests {
    fn add(&mut self, other: &Requests) {
        self.nextauth_only += other.nextauth_only;
        self.clerk_only += other.clerk_only;
        self.both += other.both;
        self.anonymous += other.anonymous;
    }
}

/// Distinct users per signed-in kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Users {
    pub nextauth_only: Hll,
    pub clerk_only: Hll,
    pub both: Hll,
}

impl Users {
    fn merge(&mut self, other: &Users) {
        self.nextauth_only.merge(&other.nextauth_only);
        self.clerk_only.merge(&other.clerk_only);
        self.both.merge(&other.both);
    }
}

/// Ten minutes of counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bucket {
    pub start: u64,
    pub requests: Requests,
    pub users: Users,
}

#[derive(Serialize, Deserialize, Default)]
struct StoredUsers {
    #[serde(default)]
    nextauth_only: Vec<u32>,
    #[serde(default)]
    clerk_only: Vec<u32>,
    #[serde(default)]
    both: Vec<u32>,
}

#[derive(Serialize, Deserialize)]
struct StoredBucket {
    start: u64,
    requests: Requests,
    users: StoredUsers,
}

#[derive(Serialize, Deserialize)]
struct StoredHour {
    buckets: Vec<StoredBucket>,
}

/// The KV value of one isolate-hour.
pub fn encode_hour(buckets: &[Bucket]) -> String {
    let stored = StoredHour {
        buckets: buckets
            .iter()
            .map(|b| StoredBucket {
                start: b.start,
                requests: b.requests,
                users: StoredUsers {
                    nextauth_only: b.users.nextauth_only.packed(),
                    clerk_only: b.users.clerk_only.packed(),
                    both: b.users.both.packed(),
                },
            })
            .collect(),
    };
    serde_json::to_string(&stored).unwrap_or_else(|_| r#"{"buckets":[]}"#.to_string())
}

pub fn decode_hour(value: &str) -> Vec<Bucket> {
    let Ok(stored) = serde_json::from_str::<StoredHour>(value) else {
        return Vec::new();
    };
    stored
        .buckets
        .into_iter()
        .map(|b| Bucket {
            start: b.start,
            requests: b.requests,
            users: Users {
                nextauth_only: Hll::from_packed(&b.users.nextauth_only),
                clerk_only: Hll::from_packed(&b.users.clerk_only),
                both: Hll::from_packed(&b.users.both),
            },
        })
        .collect()
}

pub fn hour_of(now: u64) -> u64 {
    now - now % HOUR_SECS
}

pub fn kv_key(hour: u64, isolate: &str) -> String {
    format!("{KV_PREFIX}{hour}:{isolate}")
}

/// The hour a key belongs to, from its name (no read needed to skip old keys).
pub fn hour_of_key(key: &str) -> Option<u64> {
    key.strip_prefix(KV_PREFIX)?.split(':').next()?.parse().ok()
}

/// One isolate's counts not yet final in KV.
#[derive(Debug)]
pub struct Tally {
    isolate: String,
    /// `(hour start, its buckets)`, oldest hour and bucket first (one or two hours: those
    /// before the current one are dropped once flushed).
    hours: Vec<(u64, Vec<Bucket>)>,
    dirty: bool,
    last_flush: Option<u64>,
}

impl Tally {
    pub fn new(isolate: impl Into<String>) -> Tally {
        Tally {
            isolate: isolate.into(),
            hours: Vec::new(),
            dirty: false,
            last_flush: None,
        }
    }

    pub fn record(&mut self, kind: Kind, user_id: Option<&str>, now: u64) {
        self.record_many(kind, 1, user_id, now);
    }

    /// [`Self::record`] for `count` requests of the same kind and user at `now`.
    pub fn record_many(&mut self, kind: Kind, count: u64, user_id: Option<&str>, now: u64) {
        let start = now - now % BUCKET_SECS;
        let hour = hour_of(now);
        let at = match self.hours.iter().rposition(|(h, _)| *h == hour) {
            Some(at) => at,
            None => {
                let at = self.hours.partition_point(|(h, _)| *h < hour);
                self.hours.insert(at, (hour, Vec::new()));
                at
            }
        };
        let buckets = &mut self.hours[at].1;
        // Almost always the last bucket; requests counted late (see `kv::record_forwarded`)
        // may belong to an earlier one, kept in order.
        let at = match buckets.iter().rposition(|b| b.start == start) {
            Some(at) => at,
            None => {
                let at = buckets.partition_point(|b| b.start < start);
                buckets.insert(
                    at,
                    Bucket {
                        start,
                        ..Bucket::default()
                    },
                );
                at
            }
        };
        let bucket = &mut buckets[at];
        let (requests, users) = match kind {
            Kind::NextAuthOnly => (
                &mut bucket.requests.nextauth_only,
                Some(&mut bucket.users.nextauth_only),
            ),
            Kind::ClerkOnly => (
                &mut bucket.requests.clerk_only,
                Some(&mut bucket.users.clerk_only),
            ),
            Kind::Both => (&mut bucket.requests.both, Some(&mut bucket.users.both)),
            Kind::Anonymous => (&mut bucket.requests.anonymous, None),
        };
        *requests += count;
        if let (Some(users), Some(id)) = (users, user_id.filter(|id| !id.is_empty())) {
            users.add(Hll::hash(id));
        }
        self.dirty = true;
    }

    /// The KV writes due now (`(key, value, expiration_ttl)`), at most once per
    /// [`FLUSH_INTERVAL_SECS`]; past hours are final after this and leave memory.
    pub fn take_flush(&mut self, now: u64) -> Vec<(String, String, u64)> {
        let due = self
            .last_flush
            .is_none_or(|last| now >= last + FLUSH_INTERVAL_SECS);
        if !self.dirty || !due {
            return Vec::new();
        }
        self.last_flush = Some(now);
        self.dirty = false;
        let writes = self
            .hours
            .iter()
            .map(|&(hour, ref buckets)| {
                let expires = hour + HOUR_SECS + DAY_SECS + BUCKET_SECS;
                let ttl = expires.saturating_sub(now).max(60);
                (kv_key(hour, &self.isolate), encode_hour(buckets), ttl)
            })
            .collect();
        let current = hour_of(now);
        self.hours.retain(|(hour, _)| *hour >= current);
        writes
    }
}

/// Merged figures of one window.
#[derive(Debug, Default)]
pub struct Window {
    pub requests: Requests,
    pub users: Users,
}

impl Window {
    pub fn to_json(&self) -> Value {
        let mut with_clerk = self.users.clerk_only.clone();
        with_clerk.merge(&self.users.both);
        let mut total = with_clerk.clone();
        total.merge(&self.users.nextauth_only);
        let (with_clerk, total) = (with_clerk.estimate(), total.estimate());
        let r = &self.requests;
        let signed_in = r.nextauth_only + r.clerk_only + r.both;
        let share = |n: u64, of: u64| {
            if of == 0 {
                Value::Null
            } else {
                json!(((n as f64 / of as f64) * 1000.0).round() / 1000.0)
            }
        };
        json!({
            "requests": r,
            "users": {
                "nextauth_only": self.users.nextauth_only.estimate(),
                "clerk_only": self.users.clerk_only.estimate(),
                "both": self.users.both.estimate(),
                "total": total,
                "with_clerk": with_clerk,
                "without_clerk": total.saturating_sub(with_clerk),
            },
            "clerk_request_share": share(r.clerk_only + r.both, signed_in),
            "clerk_user_share": share(with_clerk, total),
        })
    }
}

/// Sums buckets into the last-hour and last-day windows at `now`. A bucket counts when any of
/// it falls inside the window (so "hour" spans 60–70 minutes).
pub fn summarize(buckets: &[Bucket], now: u64) -> (Window, Window) {
    let mut hour = Window::default();
    let mut day = Window::default();
    for bucket in buckets {
        let end = bucket.start + BUCKET_SECS;
        if end > now.saturating_sub(DAY_SECS) {
            day.requests.add(&bucket.requests);
            day.users.merge(&bucket.users);
        }
        if end > now.saturating_sub(HOUR_SECS) {
            hour.requests.add(&bucket.requests);
            hour.users.merge(&bucket.users);
        }
    }
    (hour, day)
}

/// Hours in [`hourly`]'s series: the last day.
pub const SERIES_HOURS: u64 = 24;

/// The last day hour by hour, oldest first, for the dashboard's chart: each clock hour's start
/// (unix seconds), its signed-in requests, and the shares of requests and of users that carried a
/// Clerk session (`null` for an hour without signed-in traffic). The current hour is the last.
pub fn hourly(buckets: &[Bucket], now: u64) -> Vec<Value> {
    let first = hour_of(now).saturating_sub((SERIES_HOURS - 1) * HOUR_SECS);
    let mut hours: Vec<Window> = (0..SERIES_HOURS).map(|_| Window::default()).collect();
    for bucket in buckets
        .iter()
        .filter(|b| b.start >= first && b.start <= now)
    {
        let slot = &mut hours[((bucket.start - first) / HOUR_SECS) as usize];
        slot.requests.add(&bucket.requests);
        slot.users.merge(&bucket.users);
    }
    hours
        .iter()
        .enumerate()
        .map(|(i, window)| {
            let figures = window.to_json();
            let r = &window.requests;
            json!({
                "hour": first + i as u64 * HOUR_SECS,
                "signed_in_requests": r.nextauth_only + r.clerk_only + r.both,
                "clerk_request_share": figures["clerk_request_share"],
                "clerk_user_share": figures["clerk_user_share"],
            })
        })
        .collect()
}

/// The kind of a resolved request: its identity's source, and for a Clerk session whether a
/// valid NextAuth JWT session came beside it (the resolver checks it, stopping at Clerk).
pub fn kind_of(source: Source, nextauth_beside_clerk: bool) -> Kind {
    match source {
        Source::Anonymous => Kind::Anonymous,
        Source::NextAuth => Kind::NextAuthOnly,
        Source::Clerk if nextauth_beside_clerk => Kind::Both,
        Source::Clerk => Kind::ClerkOnly,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_kinds_and_flushes_at_most_once_a_minute() {
        let mut tally = Tally::new("iso");
        let t0 = 1_700_000_000 - 1_700_000_000 % HOUR_SECS + 30;
        tally.record(Kind::NextAuthOnly, Some("legacy-1"), t0);
        tally.record(Kind::NextAuthOnly, Some("legacy-1"), t0 + 1);
        tally.record(Kind::Both, Some("legacy-2"), t0 + 2);
        tally.record(Kind::Anonymous, None, t0 + 3);
        let first = tally.take_flush(t0 + 3);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].0, format!("conv:v1:{}:iso", hour_of(t0)));
        tally.record(Kind::ClerkOnly, Some("user_3"), t0 + 10);
        assert!(tally.take_flush(t0 + 30).is_empty(), "not a minute yet");
        let second = tally.take_flush(t0 + 63);
        assert_eq!(second.len(), 1);
        let buckets = decode_hour(&second[0].1);
        let (hour, _) = summarize(&buckets, t0 + 63);
        assert_eq!(
            hour.requests,
            Requests {
                nextauth_only: 2,
                clerk_only: 1,
                both: 1,
                anonymous: 1
            }
        );
        assert_eq!(hour.users.nextauth_only.estimate(), 1);
        assert!(tally.take_flush(t0 + 200).is_empty(), "nothing new");
    }

    #[test]
    fn requests_counted_late_land_in_their_own_bucket() {
        let mut tally = Tally::new("iso");
        let hour = 1_700_000_000 - 1_700_000_000 % HOUR_SECS;
        tally.record(Kind::Anonymous, None, hour + 5);
        tally.record(Kind::ClerkOnly, Some("user_1"), hour + BUCKET_SECS + 5);
        // Forwarded during the first bucket, counted once the second had begun.
        tally.record_many(Kind::Anonymous, 40, None, hour + 100);
        tally.record_many(Kind::Anonymous, 2, None, hour + 2 * BUCKET_SECS);
        let buckets = &tally.hours[0].1;
        let starts: Vec<u64> = buckets.iter().map(|b| b.start).collect();
        assert_eq!(
            starts,
            [hour, hour + BUCKET_SECS, hour + 2 * BUCKET_SECS],
            "in order"
        );
        let anonymous: Vec<u64> = buckets.iter().map(|b| b.requests.anonymous).collect();
        assert_eq!(anonymous, [41, 0, 2]);
        assert_eq!(buckets[1].requests.clerk_only, 1);
        assert!(tally.dirty);
    }

    #[test]
    fn hourly_series_places_buckets_in_their_clock_hour() {
        let now = 1_700_000_000 - 1_700_000_000 % HOUR_SECS + 1_234;
        let bucket = |start: u64, kind: Kind, user: &str| {
            let mut tally = Tally::new("iso");
            tally.record(kind, Some(user), start);
            let hour = tally.hours.first().map(|h| h.1.clone()).unwrap_or_default();
            hour[0].clone()
        };
        let buckets = vec![
            bucket(now - 10, Kind::ClerkOnly, "a"),
            bucket(now - 20, Kind::NextAuthOnly, "b"),
            bucket(now - 5 * HOUR_SECS, Kind::NextAuthOnly, "c"),
            bucket(now - 2 * DAY_SECS, Kind::ClerkOnly, "too-old"),
        ];
        let series = hourly(&buckets, now);
        assert_eq!(series.len(), SERIES_HOURS as usize);
        assert_eq!(series[23]["hour"], json!(hour_of(now)));
        assert_eq!(series[0]["hour"], json!(hour_of(now) - 23 * HOUR_SECS));
        assert_eq!(series[23]["signed_in_requests"], json!(2));
        assert_eq!(series[23]["clerk_user_share"], json!(0.5));
        assert_eq!(series[18]["clerk_user_share"], json!(0.0));
        assert_eq!(series[17]["clerk_user_share"], Value::Null, "no traffic");
        let total: u64 = series
            .iter()
            .map(|h| h["signed_in_requests"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(total, 3, "the bucket older than a day is left out");
    }

    #[test]
    fn hour_rollover_flushes_the_past_hour_once_more_then_forgets_it() {
        let mut tally = Tally::new("iso");
        let h = 1_700_000_000 - 1_700_000_000 % HOUR_SECS;
        tally.record(Kind::NextAuthOnly, Some("a"), h + HOUR_SECS - 5);
        assert_eq!(tally.take_flush(h + HOUR_SECS - 5).len(), 1);
        tally.record(Kind::NextAuthOnly, Some("b"), h + HOUR_SECS - 1);
        tally.record(Kind::ClerkOnly, Some("c"), h + HOUR_SECS + 70);
        let writes = tally.take_flush(h + HOUR_SECS + 70);
        let keys: Vec<&str> = writes.iter().map(|w| w.0.as_str()).collect();
        assert_eq!(keys, vec![kv_key(h, "iso"), kv_key(h + HOUR_SECS, "iso")]);
        tally.record(Kind::ClerkOnly, Some("d"), h + HOUR_SECS + 140);
        let writes = tally.take_flush(h + HOUR_SECS + 140);
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].0, kv_key(h + HOUR_SECS, "iso"));
    }

    #[test]
    fn windows_select_buckets_by_age_and_union_users() {
        let now = 1_700_000_000;
        let mut recent = Bucket {
            start: now - now % BUCKET_SECS,
            ..Bucket::default()
        };
        recent.requests.clerk_only = 3;
        recent.users.clerk_only.add(Hll::hash("x"));
        let mut old = Bucket {
            start: now - 5 * HOUR_SECS,
            ..Bucket::default()
        };
        old.requests.nextauth_only = 7;
        old.users.nextauth_only.add(Hll::hash("x"));
        old.users.nextauth_only.add(Hll::hash("y"));
        let ancient = Bucket {
            start: now - 2 * DAY_SECS,
            requests: Requests {
                anonymous: 100,
                ..Requests::default()
            },
            ..Bucket::default()
        };
        let (hour, day) = summarize(&[recent, old, ancient], now);
        assert_eq!(hour.requests.nextauth_only, 0);
        assert_eq!(hour.requests.clerk_only, 3);
        assert_eq!(day.requests.nextauth_only, 7);
        assert_eq!(day.requests.anonymous, 0);
        let json = day.to_json();
        assert_eq!(json["users"]["total"], 2);
        assert_eq!(json["users"]["with_clerk"], 1);
        assert_eq!(json["users"]["without_clerk"], 1);
        assert_eq!(json["clerk_request_share"], 0.3);
    }

    #[test]
    fn stored_hours_round_trip_and_garbage_is_empty() {
        let mut bucket = Bucket {
            start: 600,
            ..Bucket::default()
        };
        bucket.requests.both = 2;
        bucket.users.both.add(Hll::hash("z"));
        let encoded = encode_hour(std::slice::from_ref(&bucket));
        assert_eq!(decode_hour(&encoded), vec![bucket]);
        assert!(decode_hour("not json").is_empty());
        assert_eq!(hour_of_key("conv:v1:3600:abc"), Some(3600));
        assert_eq!(hour_of_key("other:3600"), None);
    }
}
