//! `config`: `Config::from_lookup` with a fuzzed value for every setting (line *i* of the input
//! is the value of `SETTINGS[i]`; missing lines are unset), `RateLimit::parse` (config and
//! pacer) and `BaseUrl::parse` on every value.

use auth_bridge::config::{BaseUrl, Config, Phase, RateLimit};
use auth_bridge::pacer;

use crate::common::text;

pub const SETTINGS: &[&str] = &[
    "MIGRATION_PHASE",
    "ORIGIN_URL",
    "NEXTAUTH_SECRET",
    "NEXTAUTH_COOKIE_NAME",
    "CLERK_SECRET_KEY",
    "CLERK_PUBLISHABLE_KEY",
    "CLERK_JWT_KEY",
    "CLERK_AUTHORIZED_PARTIES",
    "CLERK_API_URL",
    "CLERK_SIGN_IN_URL",
    "CLERK_RATE_LIMIT",
    "CLERK_LEGACY_ID_CLAIM",
    "AUTH_BRIDGE_ADMIN_TOKEN",
    "AUTH_BRIDGE_ASSERTION_SECRET",
    "INJECT_CLIENT_SCRIPT",
    "NEXTAUTH_SIGN_IN_PATHS",
];

/// Settings whose values must never be shown (Debug, problems).
const SECRETS: &[&str] = &[
    "NEXTAUTH_SECRET",
    "CLERK_SECRET_KEY",
    "AUTH_BRIDGE_ADMIN_TOKEN",
    "AUTH_BRIDGE_ASSERTION_SECRET",
];

fn lookup<'a>(
    values: &'a [&'a str],
    skip: Option<&'a str>,
) -> impl Fn(&str) -> Option<String> + 'a {
    move |name: &str| {
        if Some(name) == skip {
            return None;
        }
        let i = SETTINGS.iter().position(|s| *s == name)?;
        values.get(i).map(|v| v.to_string())
    }
}

fn shown(config: &Config) -> String {
    let problems: Vec<String> = config.problems.iter().map(|p| p.to_string()).collect();
    format!("{config:?}\n{}", problems.join("\n"))
}

pub fn run(data: &[u8]) {
    let input = text(data);
    let input = input.as_ref();
    let values: Vec<&str> = input.split('\n').collect();
    let value = |name: &str| {
        let i = SETTINGS
            .iter()
            .position(|s| *s == name)
            .expect("known setting");
        values.get(i).map(|v| v.trim()).filter(|v| !v.is_empty())
    };

    let config = Config::from_lookup(lookup(&values, None));
    let text = shown(&config);

    // Secrets: a secret shows up only if it shows up just as well when it is unset (i.e. it is
    // also some other setting's value, or a fixed word), or inside a setting's name (which a
    // problem names: `AUTH_BRI` is no leak of an admin token in "AUTH_BRIDGE_ADMIN_TOKEN: …").
    let outside_names = SETTINGS
        .iter()
        .fold(text.clone(), |t, name| t.replace(name, "\0"));
    for secret_name in SECRETS {
        let Some(secret) = value(secret_name) else {
            continue;
        };
        let pieces: Vec<&str> = if *secret_name == "NEXTAUTH_SECRET" {
            secret.split(',').map(str::trim).collect()
        } else {
            vec![secret]
        };
        let without = shown(&Config::from_lookup(lookup(&values, Some(secret_name))));
        for piece in pieces {
            if piece.len() >= 8 && !without.contains(piece) {
                assert!(
                    !outside_names.contains(piece),
                    "{secret_name} is shown: {text}"
                );
            }
        }
    }

    let expected_phase = match value("MIGRATION_PHASE") {
        None => Phase::Migrate,
        Some(v) => Phase::parse(v).unwrap_or(Phase::Observe),
    };
    assert_eq!(config.phase, expected_phase);
    assert!(config.clerk_rate_limit.calls > 0 && config.clerk_rate_limit.window_secs > 0);
    if let Some(v) = value("CLERK_RATE_LIMIT") {
        if let Some(limit) = RateLimit::parse(v) {
            assert_eq!(config.clerk_rate_limit, limit);
        }
    }
    if let Some(admin) = &config.admin_token {
        assert!(admin.len() >= 16);
    }
    assert!(config
        .nextauth_secrets
        .iter()
        .all(|s| !s.is_empty() && s.trim() == s));
    assert!(config
        .nextauth_sign_in_paths
        .iter()
        .all(|p| p.starts_with('/')));
    for url in [&config.origin_url, &config.clerk_sign_in_url]
        .into_iter()
        .flatten()
        .chain([&config.clerk_api_url])
    {
        check_base_url(url);
    }

    for v in values.iter().copied().chain([input]) {
        rate_limit(v);
        if let Some(url) = BaseUrl::parse(v) {
            check_base_url(&url);
        }
    }
}

fn rate_limit(v: &str) {
    let limit = RateLimit::parse(v);
    if let Some(limit) = limit {
        assert!(limit.calls > 0 && limit.window_secs > 0);
        assert!(limit.per_second() > 0.0);
        assert_eq!(
            RateLimit::parse(&limit.to_string()),
            Some(limit),
            "Display round trip"
        );
    }
    if let Ok(paced) = pacer::RateLimit::parse(v) {
        assert!(paced.calls > 0);
        assert!(paced.window_ms >= 1000 && paced.window_ms % 1000 == 0);
        assert!(paced.window_ms <= 24 * 3_600_000);
        // The pacer and the config read the same setting: where the pacer accepts it, the
        // config must agree.
        let limit = limit.unwrap_or_else(|| panic!("pacer accepts {v:?}, config does not"));
        assert_eq!(limit.calls, paced.calls);
        assert_eq!(u64::from(limit.window_secs) * 1000, paced.window_ms);
    }
}

fn check_base_url(url: &BaseUrl) {
    assert!(url.origin.starts_with("https://") || url.origin.starts_with("http://"));
    assert!(!url.origin.ends_with('/'));
    assert!(!url.path.ends_with('/'));
    assert!(url.path.is_empty() || url.path.starts_with('/'));
    assert!(!url.host().is_empty());
    assert!(!url.host().contains('/'));
    assert_eq!(
        url.join("/v1/users"),
        format!("{}{}/v1/users", url.origin, url.path)
    );
    let again = BaseUrl::parse(&format!("{}{}", url.origin, url.path));
    assert_eq!(again.as_ref(), Some(url), "BaseUrl does not round-trip");
}
