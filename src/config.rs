//! Configuration: every `[vars]` and secret the worker reads, parsed and validated once.
//!
//! Parsing is pure (it takes a lookup function), so it is tested on the host. A bad value never
//! stops traffic: it becomes a [`ConfigProblem`] (logged once per isolate and shown in the admin
//! status) and the setting falls back to its safest meaning. Problems name the setting, never its
//! value, because several settings are secrets.

use std::fmt;

mod fraction;
mod values;

pub use values::{BaseUrl, DatabaseSessions, Phase, RateLimit};

/// A setting that is missing or malformed, named for the operator. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub setting: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.problem)
    }
}

/// Everything the worker is configured with. Secrets are kept as given and never printed:
/// the `Debug` impl redacts them.
#[derive(Clone)]
pub struct Config {
    pub phase: Phase,
    /// `None` = route mode: forward to the request's own URL.
    pub origin_url: Option<BaseUrl>,
    pub nextauth_secrets: Vec<String>,
    pub nextauth_cookie_name: Option<String>,
    pub clerk_secret_key: Option<String>,
    pub clerk_publishable_key: Option<String>,
    pub clerk_jwt_key: Option<String>,
    pub clerk_authorized_parties: Vec<String>,
    pub clerk_api_url: BaseUrl,
    pub clerk_sign_in_url: Option<BaseUrl>,
    pub clerk_rate_limit: RateLimit,
    /// Name of a session-token claim carrying the legacy user id, when the app added one.
    pub clerk_legacy_id_claim: Option<String>,
    /// `CLERK_TREAT_PENDING_AS_SIGNED_OUT` (default true): a pending Clerk session (`sts`)
    /// gives no identity, as in Clerk's SDKs.
    pub clerk_treat_pending_as_signed_out: bool,
    /// Which opaque NextAuth cookie values are asked about at the origin
    /// (`NEXTAUTH_DATABASE_SESSIONS`).
    pub database_sessions: DatabaseSessions,
    pub admin_token: Option<String>,
    pub assertion_secret: Option<String>,
    /// PKCS#8 PEM of the P-256 key that signs ES256 assertions (wins over the HS256 secret).
    pub assertion_key: Option<String>,
    /// The previous key (PKCS#8 or SPKI PEM), still listed in the JWKS during a rotation.
    pub assertion_key_previous: Option<String>,
    /// `NEXTAUTH_SESSIONS_NOT_BEFORE` in unix seconds: NextAuth sessions issued earlier are void.
    pub nextauth_sessions_not_before: Option<u64>,
    /// `READINESS_MIN_CLERK_SHARE`: share of the last day's users who must have a Clerk identity.
    pub readiness_min_clerk_share: f64,
    pub inject_client_script: bool,
    /// Paths of the NextAuth sign-in routes that `clerk-only` redirects to Clerk.
    pub nextauth_sign_in_paths: Vec<String>,
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |v: &Option<String>| if v.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("Config")
            .field("phase", &self.phase)
            .field("origin_url", &self.origin_url)
            .field("nextauth_secrets", &self.nextauth_secrets.len())
            .field("nextauth_cookie_name", &self.nextauth_cookie_name)
            .field("clerk_secret_key", &set(&self.clerk_secret_key))
            .field("clerk_publishable_key", &self.clerk_publishable_key)
            .field("clerk_jwt_key", &set(&self.clerk_jwt_key))
            .field("clerk_api_url", &self.clerk_api_url)
            .field("clerk_rate_limit", &self.clerk_rate_limit)
            .field("admin_token", &set(&self.admin_token))
            .field("assertion_secret", &set(&self.assertion_secret))
            .field("assertion_key", &set(&self.assertion_key))
            .field("assertion_key_previous", &set(&self.assertion_key_previous))
            .field(
                "nextauth_sessions_not_before",
                &self.nextauth_sessions_not_before,
            )
            .field("problems", &self.problems)
            .finish_non_exhaustive()
    }
}

pub const DEFAULT_CLERK_API_URL: &str = "https://api.clerk.com";
pub const DEFAULT_SIGN_IN_PATHS: &[&str] = &["/api/auth/signin"];
/// Default `READINESS_MIN_CLERK_SHARE`.
pub const DEFAULT_READINESS_MIN_CLERK_SHARE: f64 = 0.99;

/// Shortest admin token accepted: a guessable token would hand out the whole user table.
const MIN_ADMIN_TOKEN_LEN: usize = 16;

impl Config {
    /// The configuration of `pairs` (name, value); of a name given twice, the last counts.
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Config {
        Config::from_lookup(|name| {
            pairs
                .iter()
                .rev()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    /// Reads every setting through `lookup` (vars and secrets alike; an empty string is unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Config {
        let mut problems = Vec::new();
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut problem = |setting: &'static str, problem: &str| {
            problems.push(ConfigProblem {
                setting,
                problem: problem.to_string(),
            })
        };

        let phase = match get("MIGRATION_PHASE") {
            None => Phase::Migrate,
            Some(v) => Phase::parse(&v).unwrap_or_else(|| {
                // An unknown phase must not write to Clerk nor lock anyone out: observe does neither.
                problem(
                    "MIGRATION_PHASE",
                    "unknown phase (expected observe, migrate or clerk-only); running as observe",
                );
                Phase::Observe
            }),
        };

        let origin_url = get("ORIGIN_URL").and_then(|v| {
            let parsed = BaseUrl::parse(&v);
            if parsed.is_none() {
                problem(
                    "ORIGIN_URL",
                    "not an absolute http(s) URL; forwarding to each request's own URL",
                );
            }
            parsed
        });

        let nextauth_secrets: Vec<String> = get("NEXTAUTH_SECRET")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        if nextauth_secrets.is_empty() && phase.accepts_nextauth() {
            problem(
                "NEXTAUTH_SECRET",
                "missing; NextAuth sessions cannot be read",
            );
        }

        let nextauth_cookie_name = get("NEXTAUTH_COOKIE_NAME");
        if let Some(name) = &nextauth_cookie_name {
            if !is_cookie_name(name) {
                problem("NEXTAUTH_COOKIE_NAME", "not a valid cookie name");
            }
        }

        let clerk_secret_key = get("CLERK_SECRET_KEY");
        match &clerk_secret_key {
            None => problem(
                "CLERK_SECRET_KEY",
                "missing; the Backend API (migration, JWKS) is unavailable",
            ),
            Some(k) if !(k.starts_with("sk_test_") || k.starts_with("sk_live_")) => problem(
                "CLERK_SECRET_KEY",
                "does not look like a Clerk secret key (sk_test_… / sk_live_…)",
            ),
            Some(_) => {}
        }

        let clerk_publishable_key = get("CLERK_PUBLISHABLE_KEY");
        match &clerk_publishable_key {
            None => problem(
                "CLERK_PUBLISHABLE_KEY",
                "missing; Clerk sessions cannot be verified",
            ),
            Some(k) if !(k.starts_with("pk_test_") || k.starts_with("pk_live_")) => problem(
                "CLERK_PUBLISHABLE_KEY",
                "does not look like a Clerk publishable key (pk_test_… / pk_live_…)",
            ),
            Some(_) => {}
        }

        let clerk_jwt_key = get("CLERK_JWT_KEY");
        if let Some(pem) = &clerk_jwt_key {
            if !pem.contains("BEGIN PUBLIC KEY") {
                problem(
                    "CLERK_JWT_KEY",
                    "not a PEM public key (-----BEGIN PUBLIC KEY-----)",
                );
            }
        }

        let clerk_authorized_parties = get("CLERK_AUTHORIZED_PARTIES")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().trim_end_matches('/'))
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();

        let clerk_api_url = match get("CLERK_API_URL") {
            None => BaseUrl::parse(DEFAULT_CLERK_API_URL).expect("default is valid"),
            Some(v) => BaseUrl::parse(&v).unwrap_or_else(|| {
                problem(
                    "CLERK_API_URL",
                    "not an absolute http(s) URL; using https://api.clerk.com",
                );
                BaseUrl::parse(DEFAULT_CLERK_API_URL).expect("default is valid")
            }),
        };

        let clerk_sign_in_url = get("CLERK_SIGN_IN_URL").and_then(|v| {
            let parsed = BaseUrl::parse(&v);
            if parsed.is_none() {
                problem("CLERK_SIGN_IN_URL", "not an absolute http(s) URL");
            }
            parsed
        });
        if clerk_sign_in_url.is_none() && phase == Phase::ClerkOnly {
            problem(
                "CLERK_SIGN_IN_URL",
                "missing in clerk-only; NextAuth sign-in routes are passed to the origin",
            );
        }

        let clerk_rate_limit = match get("CLERK_RATE_LIMIT") {
            None => RateLimit::DEVELOPMENT,
            Some(v) => RateLimit::parse(&v).unwrap_or_else(|| {
                problem(
                    "CLERK_RATE_LIMIT",
                    "malformed (expected e.g. 1000/10s); using the development limit 100/10s",
                );
                RateLimit::DEVELOPMENT
            }),
        };

        let clerk_treat_pending_as_signed_out =
            match get("CLERK_TREAT_PENDING_AS_SIGNED_OUT").as_deref() {
                None | Some("true") | Some("1") => true,
                Some("false") | Some("0") => false,
                Some(_) => {
                    problem(
                        "CLERK_TREAT_PENDING_AS_SIGNED_OUT",
                        "expected true or false; pending sessions are signed out",
                    );
                    true
                }
            };

        let database_sessions = match get("NEXTAUTH_DATABASE_SESSIONS") {
            None => DatabaseSessions::NextAuthShaped,
            Some(v) => DatabaseSessions::parse(&v).unwrap_or_else(|| {
                problem(
                    "NEXTAUTH_DATABASE_SESSIONS",
                    "expected next-auth, any or off; asking only about next-auth-shaped values",
                );
                DatabaseSessions::NextAuthShaped
            }),
        };

        let admin_token = get("AUTH_BRIDGE_ADMIN_TOKEN").and_then(|t| {
            if t.len() < MIN_ADMIN_TOKEN_LEN {
                problem(
                    "AUTH_BRIDGE_ADMIN_TOKEN",
                    "shorter than 16 characters; admin API disabled",
                );
                None
            } else {
                Some(t)
            }
        });

        let inject_client_script = match get("INJECT_CLIENT_SCRIPT").as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(_) => {
                problem(
                    "INJECT_CLIENT_SCRIPT",
                    "expected true or false; not injecting",
                );
                false
            }
        };

        let nextauth_sign_in_paths = get("NEXTAUTH_SIGN_IN_PATHS")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|p| p.starts_with('/'))
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_else(|| {
                DEFAULT_SIGN_IN_PATHS
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            });

        let nextauth_sessions_not_before = get("NEXTAUTH_SESSIONS_NOT_BEFORE").and_then(|v| {
            crate::identity::revocation::parse_not_before(&v)
                .map_err(|why| {
                    problem(
                        "NEXTAUTH_SESSIONS_NOT_BEFORE",
                        &format!("{why}; no cut-off applied"),
                    )
                })
                .ok()
        });

        let readiness_min_clerk_share = match get("READINESS_MIN_CLERK_SHARE") {
            None => DEFAULT_READINESS_MIN_CLERK_SHARE,
            // The same number as `v.parse::<f64>()`, without core's float parser in the wasm.
            Some(v) => match fraction::parse_fraction(&v) {
                Some(share) => share,
                None => {
                    problem(
                        "READINESS_MIN_CLERK_SHARE",
                        "expected a number between 0 and 1 with at most 15 significant digits (e.g. 0.99); using 0.99",
                    );
                    DEFAULT_READINESS_MIN_CLERK_SHARE
                }
            },
        };

        let assertion_key = get("AUTH_BRIDGE_ASSERTION_KEY");
        let assertion_key_previous = get("AUTH_BRIDGE_ASSERTION_KEY_PREVIOUS");
        if assertion_key_previous.is_some() && assertion_key.is_none() {
            problem(
                "AUTH_BRIDGE_ASSERTION_KEY_PREVIOUS",
                "set without AUTH_BRIDGE_ASSERTION_KEY; not served",
            );
        }

        Config {
            phase,
            origin_url,
            nextauth_secrets,
            nextauth_cookie_name,
            clerk_secret_key,
            clerk_publishable_key,
            clerk_jwt_key,
            clerk_authorized_parties,
            clerk_api_url,
            clerk_sign_in_url,
            clerk_rate_limit,
            clerk_legacy_id_claim: get("CLERK_LEGACY_ID_CLAIM"),
            clerk_treat_pending_as_signed_out,
            database_sessions,
            admin_token,
            assertion_secret: get("AUTH_BRIDGE_ASSERTION_SECRET"),
            assertion_key,
            assertion_key_previous,
            nextauth_sessions_not_before,
            readiness_min_clerk_share,
            inject_client_script,
            nextauth_sign_in_paths,
            problems,
        }
    }
}

/// RFC 6265 token characters.
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::from_pairs(pairs)
    }

    fn complete() -> Vec<(&'static str, &'static str)> {
        vec![
            ("NEXTAUTH_SECRET", "s3cret-value"),
            ("CLERK_SECRET_KEY", "sk_test_abc"),
            ("CLERK_PUBLISHABLE_KEY", "pk_test_Y2xlcmsuZXhhbXBsZS5jb20k"),
        ]
    }

    #[test]
    fn complete_config_has_no_problems_and_safe_defaults() {
        let c = config(&complete());
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.phase, Phase::Migrate);
        assert_eq!(c.clerk_rate_limit, RateLimit::DEVELOPMENT);
        assert_eq!(
            c.clerk_api_url.join("/v1/jwks"),
            "https://api.clerk.com/v1/jwks"
        );
        assert_eq!(c.origin_url, None);
        assert_eq!(c.nextauth_sign_in_paths, vec!["/api/auth/signin"]);
        assert!(!c.inject_client_script);
    }

    #[test]
    fn unknown_phase_runs_as_observe_and_is_reported() {
        let mut pairs = complete();
        pairs.push(("MIGRATION_PHASE", "clerk_only"));
        let c = config(&pairs);
        assert_eq!(c.phase, Phase::Observe);
        assert_eq!(c.problems.len(), 1);
        assert_eq!(c.problems[0].setting, "MIGRATION_PHASE");
    }

    #[test]
    fn secrets_split_on_commas_and_are_never_printed() {
        let mut pairs = complete();
        pairs[0] = ("NEXTAUTH_SECRET", " new-secret , old-secret ,");
        pairs.push(("AUTH_BRIDGE_ADMIN_TOKEN", "admin-token-0123456789"));
        let c = config(&pairs);
        assert_eq!(c.nextauth_secrets, vec!["new-secret", "old-secret"]);
        let printed = format!("{c:?}");
        for secret in [
            "new-secret",
            "old-secret",
            "sk_test_abc",
            "admin-token-0123456789",
        ] {
            assert!(!printed.contains(secret), "{secret} leaked in {printed}");
        }
    }

    #[test]
    fn missing_settings_are_named_without_values() {
        let c = config(&[]);
        let named: Vec<_> = c.problems.iter().map(|p| p.setting).collect();
        assert_eq!(
            named,
            vec![
                "NEXTAUTH_SECRET",
                "CLERK_SECRET_KEY",
                "CLERK_PUBLISHABLE_KEY"
            ]
        );
    }

    #[test]
    fn malformed_values_fall_back_and_are_reported() {
        let mut pairs = complete();
        pairs.extend([
            ("ORIGIN_URL", "ftp://nope"),
            ("CLERK_API_URL", "localhost:8788"),
            ("CLERK_RATE_LIMIT", "lots"),
            ("CLERK_SECRET_KEY", "pk_live_wrong_kind"),
            ("AUTH_BRIDGE_ADMIN_TOKEN", "short"),
            ("CLERK_JWT_KEY", "not a pem"),
            ("NEXTAUTH_COOKIE_NAME", "bad name;"),
        ]);
        let c = config(&pairs);
        assert_eq!(c.origin_url, None);
        assert_eq!(c.clerk_api_url.origin, "https://api.clerk.com");
        assert_eq!(c.clerk_rate_limit, RateLimit::DEVELOPMENT);
        assert_eq!(c.admin_token, None);
        let named: Vec<_> = c.problems.iter().map(|p| p.setting).collect();
        for setting in [
            "ORIGIN_URL",
            "CLERK_API_URL",
            "CLERK_RATE_LIMIT",
            "CLERK_SECRET_KEY",
            "AUTH_BRIDGE_ADMIN_TOKEN",
            "CLERK_JWT_KEY",
            "NEXTAUTH_COOKIE_NAME",
        ] {
            assert!(
                named.contains(&setting),
                "{setting} not reported: {named:?}"
            );
        }
        assert!(!format!("{:?}", c.problems).contains("pk_live_wrong_kind"));
    }

    #[test]
    fn cutover_settings_parse_or_are_reported() {
        let mut pairs = complete();
        pairs.extend([
            ("NEXTAUTH_SESSIONS_NOT_BEFORE", "2026-01-01T00:00:00Z"),
            ("READINESS_MIN_CLERK_SHARE", "0.95"),
        ]);
        let c = config(&pairs);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.nextauth_sessions_not_before, Some(1_767_225_600));
        assert_eq!(c.readiness_min_clerk_share, 0.95);
        assert_eq!(config(&complete()).readiness_min_clerk_share, 0.99);

        let mut pairs = complete();
        pairs.extend([
            ("NEXTAUTH_SESSIONS_NOT_BEFORE", "last tuesday"),
            ("READINESS_MIN_CLERK_SHARE", "99"),
            (
                "AUTH_BRIDGE_ASSERTION_KEY_PREVIOUS",
                "-----BEGIN PUBLIC KEY-----",
            ),
        ]);
        let c = config(&pairs);
        assert_eq!(c.nextauth_sessions_not_before, None);
        assert_eq!(c.readiness_min_clerk_share, 0.99);
        let named: Vec<_> = c.problems.iter().map(|p| p.setting).collect();
        assert_eq!(
            named,
            [
                "NEXTAUTH_SESSIONS_NOT_BEFORE",
                "READINESS_MIN_CLERK_SHARE",
                "AUTH_BRIDGE_ASSERTION_KEY_PREVIOUS"
            ]
        );
        assert!(!format!("{:?}", c.problems).contains("last tuesday"));
    }

    #[test]
    fn sign_in_paths_and_injection_flag() {
        let mut pairs = complete();
        pairs.extend([
            ("NEXTAUTH_SIGN_IN_PATHS", "/api/auth/signin, /login ,nope"),
            ("INJECT_CLIENT_SCRIPT", "true"),
            ("MIGRATION_PHASE", "clerk-only"),
            ("CLERK_SIGN_IN_URL", "https://accounts.example.com/sign-in"),
        ]);
        let c = config(&pairs);
        assert_eq!(c.nextauth_sign_in_paths, vec!["/api/auth/signin", "/login"]);
        assert!(c.inject_client_script);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
    }
}
