//! The publishable key (`pk_test_…` / `pk_live_…`): the Frontend API host (the tokens' issuer),
//! the instance type and the cookie suffix Clerk derives from the key.

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha1::{Digest as _, Sha1};

use super::{CLIENT_UAT_COOKIE, DEV_BROWSER_COOKIE, FORGIVING_STANDARD_BASE64, SESSION_COOKIE};

/// The cookies Clerk suffixes per instance.
const SUFFIXED_COOKIES: [&str; 3] = [SESSION_COOKIE, CLIENT_UAT_COOKIE, DEV_BROWSER_COOKIE];

/// Development (`pk_test_`) or production (`pk_live_`) instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceType {
    Development,
    Production,
}

/// Why `CLERK_PUBLISHABLE_KEY` was refused. Never carries the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishableKeyError {
    Missing,
    /// Neither `pk_test_` nor `pk_live_`, or not exactly three `_`-separated parts.
    UnknownPrefix,
    /// The part after the prefix is not base64.
    NotBase64,
    /// Decoded value is not `<host>$`.
    InvalidFormat,
}

impl fmt::Display for PublishableKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "Clerk publishable key is missing",
            Self::UnknownPrefix => "Clerk publishable key must start with pk_test_ or pk_live_",
            Self::NotBase64 => "Clerk publishable key is not valid base64 after its prefix",
            Self::InvalidFormat => {
                "Clerk publishable key does not decode to a Frontend API host followed by '$'"
            }
        })
    }
}

impl std::error::Error for PublishableKeyError {}

/// A parsed publishable key: the Frontend API host (= token issuer), the instance type and the
/// cookie suffix Clerk derives from the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishableKey {
    key: String,
    frontend_api: String,
    instance_type: InstanceType,
    cookie_suffix: String,
    /// `__session_<suffix>`, `__client_uat_<suffix>`, `__clerk_db_jwt_<suffix>`: read on every
    /// request, so built once.
    suffixed_names: [String; 3],
}

impl PublishableKey {
    /// Parses `pk_test_…` / `pk_live_…` as @clerk/shared `parsePublishableKey` does, and
    /// additionally requires the host to be a plain DNS name (optionally with a port), since it
    /// becomes the `https://` issuer and redirect target.
    pub fn parse(key: &str) -> Result<Self, PublishableKeyError> {
        // Config values often pick up a trailing newline; the key itself never has whitespace.
        let key = key.trim();
        if key.is_empty() {
            return Err(PublishableKeyError::Missing);
        }
        let instance_type = if key.starts_with("pk_live_") {
            InstanceType::Production
        } else if key.starts_with("pk_test_") {
            InstanceType::Development
        } else {
            return Err(PublishableKeyError::UnknownPrefix);
        };
        let parts: Vec<&str> = key.split('_').collect();
        if parts.len() != 3 || parts[2].is_empty() {
            return Err(PublishableKeyError::UnknownPrefix);
        }
        let decoded = FORGIVING_STANDARD_BASE64
            .decode(parts[2])
            .map_err(|_| PublishableKeyError::NotBase64)?;
        let decoded = String::from_utf8(decoded).map_err(|_| PublishableKeyError::InvalidFormat)?;
        let host = decoded
            .strip_suffix('$')
            .ok_or(PublishableKeyError::InvalidFormat)?;
        if !is_plausible_host(host) {
            return Err(PublishableKeyError::InvalidFormat);
        }
        let suffix = cookie_suffix(key);
        Ok(Self {
            suffixed_names: SUFFIXED_COOKIES.map(|name| format!("{name}_{suffix}")),
            cookie_suffix: suffix,
            key: key.to_owned(),
            frontend_api: host.to_owned(),
            instance_type,
        })
    }

    /// The key as configured (public by design; it is shipped to browsers).
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// Frontend API host, e.g. `clerk.example.com` or `happy-hippo-42.clerk.accounts.dev`.
    pub fn frontend_api(&self) -> &str {
        &self.frontend_api
    }

    /// Expected `iss` of session tokens: `https://<frontend api host>`.
    pub fn issuer(&self) -> String {
        format!("https://{}", self.frontend_api)
    }

    pub fn instance_type(&self) -> InstanceType {
        self.instance_type
    }

    pub fn is_development(&self) -> bool {
        self.instance_type == InstanceType::Development
    }

    /// First 8 characters of base64url(SHA-1(publishable key)).
    pub fn cookie_suffix(&self) -> &str {
        &self.cookie_suffix
    }

    /// `<name>_<suffix>`, e.g. `__session_k_2xjilp`.
    pub fn suffixed_cookie_name(&self, name: &str) -> String {
        self.suffixed(name).into_owned()
    }

    /// [`Self::suffixed_cookie_name`], borrowed for Clerk's own cookies (built once).
    pub fn suffixed(&self, name: &str) -> Cow<'_, str> {
        match SUFFIXED_COOKIES.iter().position(|known| *known == name) {
            Some(i) => Cow::Borrowed(&self.suffixed_names[i]),
            None => Cow::Owned(format!("{name}_{}", self.cookie_suffix)),
        }
    }
}

/// Same as @clerk/shared `getCookieSuffix`: standard base64 with `+`/`/` swapped for `-`/`_`,
/// which is base64url; the first 8 characters never reach padding.
fn cookie_suffix(publishable_key: &str) -> String {
    let digest = Sha1::digest(publishable_key.as_bytes());
    let mut encoded = URL_SAFE_NO_PAD.encode(digest);
    encoded.truncate(8);
    encoded
}

/// Clerk only asks for "contains a dot and one trailing `$`"; the host also ends up in URLs, so
/// only DNS characters and an optional port are allowed.
fn is_plausible_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok
        && name.contains('.')
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}
