//! `clerk-only`: NextAuth's sign-in routes send the browser to Clerk's sign-in page.
//!
//! Each path in `NEXTAUTH_SIGN_IN_PATHS` (default `/api/auth/signin`) and every sub-path of it
//! (`/api/auth/signin/github`) answers a `302` to `CLERK_SIGN_IN_URL?redirect_url=<absolute URL>`.
//! The `redirect_url` is the request's `callbackUrl` when that resolves to this very origin
//! (relative, or absolute on the same scheme, host and port), otherwise the site root: an
//! attacker's `callbackUrl` never becomes an open redirect. A `302` (not `307`) because next-auth
//! posts its provider forms: the browser must arrive at Clerk with a `GET`. Without
//! `CLERK_SIGN_IN_URL` the routes pass through to the origin (a config problem says so).

use worker::Url;

use crate::config::{Config, Phase};

/// The query parameter next-auth reads the post-sign-in destination from.
pub const CALLBACK_URL_PARAM: &str = "callbackUrl";

/// Whether `path` is one of the sign-in paths or below one (`/api/auth/signin/github`), but not
/// a mere prefix match (`/api/auth/signinfo`).
pub fn is_sign_in_path(paths: &[String], path: &str) -> bool {
    paths.iter().any(|p| {
        let p = p.trim_end_matches('/');
        !p.is_empty()
            && path
                .strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Where the user should land after signing in: `callbackUrl` if it stays on this origin,
/// else the site root. Always absolute.
pub fn safe_return_url(request_url: &Url) -> String {
    let root = || {
        let mut root = request_url.clone();
        root.set_path("/");
        root.set_query(None);
        root.set_fragment(None);
        root.to_string()
    };
    let Some(callback) = request_url
        .query_pairs()
        .find(|(k, _)| k == CALLBACK_URL_PARAM)
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.trim().is_empty())
    else {
        return root();
    };
    // Resolving against the request handles relative forms; `//evil`, `/\evil` and
    // `https://evil` then show up as another origin, `javascript:` as an opaque one.
    match request_url.join(callback.trim()) {
        Ok(target)
            if matches!(target.scheme(), "http" | "https")
                && target.origin() == request_url.origin()
                && target.username().is_empty()
                && target.password().is_none() =>
        {
            target.to_string()
        }
        _ => root(),
    }
}

/// The sign-in redirect target for this request, when the phase and the path call for one.
pub fn sign_in_redirect(config: &Config, request_url: &Url) -> Option<String> {
    if config.phase != Phase::ClerkOnly {
        return None;
    }
    let sign_in = config.clerk_sign_in_url.as_ref()?;
    if !is_sign_in_path(&config.nextauth_sign_in_paths, request_url.path()) {
        return None;
    }
    let mut target = Url::parse(&sign_in.join("")).ok()?;
    target
        .query_pairs_mut()
        .append_pair("redirect_url", &safe_return_url(request_url));
    Some(target.to_string())
}

/// Glue: the `302` for a NextAuth sign-in route in `clerk-only`, if this is one.
pub fn clerk_only_redirect(config: &Config, request_url: &Url) -> Option<web_sys::Response> {
    let location = sign_in_redirect(config, request_url)?;
    let response = crate::respond::empty(302);
    let _ = response.headers().set("location", &location);
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(phase: &str, sign_in: Option<&str>) -> Config {
        Config::from_lookup(|name| match name {
            "MIGRATION_PHASE" => Some(phase.to_string()),
            "CLERK_SIGN_IN_URL" => sign_in.map(str::to_string),
            _ => None,
        })
    }

    fn target(config: &Config, url: &str) -> Option<String> {
        sign_in_redirect(config, &Url::parse(url).unwrap())
    }

    fn redirect_url(location: &str) -> String {
        Url::parse(location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "redirect_url")
            .unwrap()
            .1
            .into_owned()
    }

    #[test]
    fn sign_in_paths_match_exactly_or_below() {
        let paths = vec!["/api/auth/signin".to_string()];
        assert!(is_sign_in_path(&paths, "/api/auth/signin"));
        assert!(is_sign_in_path(&paths, "/api/auth/signin/"));
        assert!(is_sign_in_path(&paths, "/api/auth/signin/github"));
        assert!(!is_sign_in_path(&paths, "/api/auth/signinfo"));
        assert!(!is_sign_in_path(&paths, "/api/auth/signout"));
        assert!(!is_sign_in_path(&paths, "/"));
    }

    #[test]
    fn only_clerk_only_with_a_sign_in_url_redirects() {
        let url = "https://app.example.com/api/auth/signin";
        assert!(target(
            &config("migrate", Some("https://accounts.example.com/sign-in")),
            url
        )
        .is_none());
        assert!(target(
            &config("observe", Some("https://accounts.example.com/sign-in")),
            url
        )
        .is_none());
        assert!(target(&config("clerk-only", None), url).is_none());
        let location = target(
            &config("clerk-only", Some("https://accounts.example.com/sign-in")),
            url,
        )
        .unwrap();
        assert!(location.starts_with("https://accounts.example.com/sign-in?redirect_url="));
        assert_eq!(redirect_url(&location), "https://app.example.com/");
    }

    #[test]
    fn same_origin_callback_urls_are_kept() {
        let c = config("clerk-only", Some("https://accounts.example.com/sign-in"));
        let cases = [
            (
                "/api/auth/signin?callbackUrl=%2Fdashboard%3Ftab%3D2",
                "https://app.example.com/dashboard?tab=2",
            ),
            (
                "/api/auth/signin/github?callbackUrl=https%3A%2F%2Fapp.example.com%2Fx",
                "https://app.example.com/x",
            ),
        ];
        for (path, expected) in cases {
            let location = target(&c, &format!("https://app.example.com{path}")).unwrap();
            assert_eq!(redirect_url(&location), expected, "{path}");
        }
    }

    #[test]
    fn foreign_callback_urls_fall_back_to_the_root() {
        let c = config("clerk-only", Some("https://accounts.example.com/sign-in"));
        for callback in [
            "https://evil.example",
            "//evil.example/x",
            "/\\evil.example",
            "javascript:alert(1)",
            "http://app.example.com/downgrade",
            "https://app.example.com:8443/port",
            "https://user:pw@app.example.com/",
            "https://app.example.com.evil.example/",
        ] {
            let mut url = Url::parse("https://app.example.com/api/auth/signin").unwrap();
            url.query_pairs_mut().append_pair("callbackUrl", callback);
            let location = target(&c, url.as_str()).unwrap();
            assert_eq!(
                redirect_url(&location),
                "https://app.example.com/",
                "{callback}"
            );
        }
    }
}
