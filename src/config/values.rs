//! The typed values of single settings — the migration phase, a rate limit, the database
//! session mode, a base URL — each parsed from its text alone. [`super::Config`] reads the
//! settings and reports the values these refuse.

use std::fmt;

/// What the worker does with each identity source, per `MIGRATION_PHASE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Identity from Clerk or NextAuth; nothing is written to Clerk (dry run).
    Observe,
    /// Identity from Clerk or NextAuth; trickle and batch write to Clerk.
    Migrate,
    /// Identity from Clerk only; NextAuth sign-in routes redirect to Clerk.
    ClerkOnly,
}

impl Phase {
    pub fn parse(value: &str) -> Option<Phase> {
        match value.trim() {
            "observe" => Some(Phase::Observe),
            "migrate" => Some(Phase::Migrate),
            "clerk-only" => Some(Phase::ClerkOnly),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Observe => "observe",
            Phase::Migrate => "migrate",
            Phase::ClerkOnly => "clerk-only",
        }
    }

    /// Whether this phase may write to Clerk (create, link, mint sign-in tokens).
    pub fn writes_to_clerk(self) -> bool {
        self == Phase::Migrate
    }

    /// Whether a NextAuth session still counts as an identity.
    pub fn accepts_nextauth(self) -> bool {
        self != Phase::ClerkOnly
    }
}

/// A Backend API budget: `calls` requests per `window_secs` seconds (`CLERK_RATE_LIMIT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub calls: u32,
    pub window_secs: u32,
}

impl RateLimit {
    /// Clerk's development-instance limit, the default.
    pub const DEVELOPMENT: RateLimit = RateLimit {
        calls: 100,
        window_secs: 10,
    };

    /// Parses `1000/10s`, `100/10s`, `20/1s`, `600/1m`, `100/10` (seconds implied).
    pub fn parse(value: &str) -> Option<RateLimit> {
        let (calls, window) = value.trim().split_once('/')?;
        let calls: u32 = calls.trim().parse().ok()?;
        let window = window.trim();
        let (number, unit) = match window.find(|c: char| !c.is_ascii_digit()) {
            Some(at) => window.split_at(at),
            None => (window, "s"),
        };
        let number: u32 = if number.is_empty() {
            1
        } else {
            number.parse().ok()?
        };
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return None,
        };
        let window_secs = number.checked_mul(scale)?;
        (calls > 0 && window_secs > 0).then_some(RateLimit { calls, window_secs })
    }

    /// Calls per second, for progress and ETA figures.
    pub fn per_second(self) -> f64 {
        f64::from(self.calls) / f64::from(self.window_secs)
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.calls, self.window_secs)
    }
}

/// Which opaque (database-session) NextAuth cookie values the origin is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseSessions {
    /// `next-auth` (default): only values shaped like the tokens next-auth generates (a UUID,
    /// or 64 hex characters).
    NextAuthShaped,
    /// `any`: every value (an app with its own `generateSessionToken`).
    Any,
    /// `off`: never (JWT sessions only).
    Off,
}

impl DatabaseSessions {
    pub fn parse(value: &str) -> Option<DatabaseSessions> {
        match value.trim() {
            "next-auth" => Some(DatabaseSessions::NextAuthShaped),
            "any" => Some(DatabaseSessions::Any),
            "off" => Some(DatabaseSessions::Off),
            _ => None,
        }
    }
}

/// An absolute `http(s)` URL split into the parts the worker needs, without a URL crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// `https://host[:port]`, no trailing slash.
    pub origin: String,
    /// The path prefix without a trailing slash (empty for `/`).
    pub path: String,
}

impl BaseUrl {
    pub fn parse(value: &str) -> Option<BaseUrl> {
        let value = value.trim();
        let rest = value
            .strip_prefix("https://")
            .map(|r| ("https://", r))
            .or_else(|| value.strip_prefix("http://").map(|r| ("http://", r)))?;
        let (scheme, rest) = rest;
        if rest.contains(|c: char| "?#\\".contains(c) || c.is_whitespace() || c.is_control()) {
            return None;
        }
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        // An IPv6 literal is bracketed (`[::1]`, `[::1]:8080`) and written as URL parsing
        // writes it (compressed, lowercase); any other host has no `:` of its own.
        let ipv6;
        let (host, port) = if authority.starts_with('[') {
            let (bracketed, after) = authority.split_at(authority.find(']')? + 1);
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':')?),
            };
            ipv6 = url::Host::parse(bracketed).ok()?.to_string();
            (ipv6.as_str(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() || (!host.starts_with('[') && host.contains(':')) {
            return None;
        }
        if let Some(port) = port {
            if port.parse::<u16>().is_err() {
                return None;
            }
        }
        // A default port is dropped, as URL parsing drops it from the `Host` header the origin
        // receives: `host()` is the assertion's `aud`, which the origin compares with that header.
        let default_port = match scheme {
            "https://" => "443",
            _ => "80",
        };
        let with_port;
        let authority = match port {
            Some(port) if port != default_port => {
                with_port = format!("{host}:{port}");
                with_port.as_str()
            }
            _ => host,
        };
        Some(BaseUrl {
            origin: format!("{scheme}{}", authority.to_ascii_lowercase()),
            path: path.trim_end_matches('/').to_string(),
        })
    }

    /// The host (and port) part, as it appears in a `Host` header.
    pub fn host(&self) -> &str {
        self.origin
            .split_once("://")
            .map(|(_, h)| h)
            .unwrap_or(&self.origin)
    }

    /// This base joined with an absolute path (`/v1/users`).
    pub fn join(&self, path_and_query: &str) -> String {
        let mut url = String::new();
        self.push_join(&mut url, path_and_query);
        url
    }

    /// [`Self::join`], appended to `out`.
    pub fn push_join(&self, out: &mut String, path_and_query: &str) {
        out.push_str(&self.origin);
        out.push_str(&self.path);
        out.push_str(path_and_query);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_phase_parses() {
        for (raw, phase) in [
            ("observe", Phase::Observe),
            ("migrate", Phase::Migrate),
            ("clerk-only", Phase::ClerkOnly),
        ] {
            assert_eq!(Phase::parse(raw), Some(phase));
            assert_eq!(phase.as_str(), raw);
        }
        assert!(Phase::Migrate.writes_to_clerk());
        assert!(!Phase::Observe.writes_to_clerk());
        assert!(!Phase::ClerkOnly.accepts_nextauth());
    }

    #[test]
    fn rate_limits_parse() {
        let cases = [
            ("1000/10s", Some((1000, 10))),
            ("100/10s", Some((100, 10))),
            ("20/1s", Some((20, 1))),
            ("600/1m", Some((600, 60))),
            ("600/m", Some((600, 60))),
            ("50/10", Some((50, 10))),
            (" 5 / 2s ", Some((5, 2))),
            ("0/10s", None),
            ("10/0s", None),
            ("10/10d", None),
            ("ten/10s", None),
            ("100", None),
            ("", None),
        ];
        for (raw, want) in cases {
            let got = RateLimit::parse(raw).map(|r| (r.calls, r.window_secs));
            assert_eq!(got, want, "{raw:?}");
        }
        assert_eq!(RateLimit::parse("1000/10s").unwrap().per_second(), 100.0);
    }

    #[test]
    fn base_urls_parse_and_join() {
        let u = BaseUrl::parse("http://127.0.0.1:8788/").unwrap();
        assert_eq!(u.origin, "http://127.0.0.1:8788");
        assert_eq!(u.host(), "127.0.0.1:8788");
        assert_eq!(
            u.join("/v1/users?limit=1"),
            "http://127.0.0.1:8788/v1/users?limit=1"
        );
        let u = BaseUrl::parse("https://App.Example.com/base/").unwrap();
        assert_eq!(u.join("/x"), "https://app.example.com/base/x");
        // Default ports are dropped (the Host header the origin sees has none).
        let u = BaseUrl::parse("https://app.example.com:443/base").unwrap();
        assert_eq!(u.host(), "app.example.com");
        assert_eq!(u.join("/x"), "https://app.example.com/base/x");
        assert_eq!(
            BaseUrl::parse("http://10.0.0.2:80").unwrap().host(),
            "10.0.0.2"
        );
        assert_eq!(BaseUrl::parse("http://[::1]:80/").unwrap().host(), "[::1]");
        // IPv6 literals with and without a port, written as URL parsing writes them; each
        // parses back to itself.
        for (raw, host) in [
            ("http://[::1]/a", "[::1]"),
            ("http://[::1]:8788/a", "[::1]:8788"),
            ("https://[0:0:0:0:0:0:0:1]:443", "[::1]"),
            ("http://[2001:DB8::A]:80", "[2001:db8::a]"),
            ("http://[::ffff:10.0.0.2]", "[::ffff:a00:2]"),
            ("http://[1:0:0:2:0:0:0:3]", "[1:0:0:2::3]"),
            ("http://[1:0:0:2:0:0:3:4]", "[1::2:0:0:3:4]"),
            ("http://[1:2:3:4:5:6:7:0]", "[1:2:3:4:5:6:7:0]"),
            ("http://[1:2:3:4:5:6:0:0]", "[1:2:3:4:5:6::]"),
            ("http://[::]", "[::]"),
        ] {
            let u = BaseUrl::parse(raw).unwrap_or_else(|| panic!("{raw}"));
            assert_eq!(u.host(), host, "{raw}");
            let again = BaseUrl::parse(&format!("{}{}", u.origin, u.path));
            assert_eq!(again.as_ref(), Some(&u), "{raw}");
        }
        assert_eq!(BaseUrl::parse("http://h:443").unwrap().host(), "h:443");
        assert_eq!(BaseUrl::parse("https://h:80").unwrap().host(), "h:80");
        for bad in [
            "",
            "example.com",
            "https://",
            "https://a:b",
            "https://a:b:80",
            "https://::1",
            "https://[::1",
            "https://[]",
            "https://[zz]:80",
            "https://[::1]x",
            "https://[::1]:",
            "https://[127.0.0.1]",
            "https://u@h",
            "https://h?q",
            "javascript:alert(1)",
        ] {
            assert_eq!(BaseUrl::parse(bad), None, "{bad:?}");
        }
    }
}
