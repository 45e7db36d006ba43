//! A session token's payload, read for the claims the worker uses.
//!
//! The payload is parsed once, straight into one slot per claim in `READ`: those the checks
//! read (`sub`, `sid`, `azp`, `iss`, `exp`, `nbf`, `iat`), the status (`sts`) and the e-mail
//! claims. Every other claim is parsed and dropped ([`crate::json::read_members`]), so no map of
//! every claim (nor a copy of each name) is built per token. An app's own claim such as
//! `CLERK_LEGACY_ID_CLAIM` is read by a second pass for that one member
//! ([`ClerkClaims::value_of`]), still without the map; the whole map is built from the payload
//! text on first need only (a handshake token's `handshake`), so [`ClerkClaims::get`] answers
//! every name as the map would.

use std::cell::OnceCell;
use std::fmt;

use serde_json::{Map, Value};

/// The claims read when the payload is parsed; any other is looked up in the whole map.
const READ: [&str; 11] = [
    "sub",
    "sid",
    "azp",
    "iss",
    "exp",
    "nbf",
    "iat",
    "sts",
    "email",
    "primary_email",
    "primaryEmail",
];

/// A payload's claims: what `serde_json::Map` would hold, read lazily beyond `READ`.
pub struct ClerkClaims {
    /// Each claim of [`READ`], at the same index: its last value, `None` when absent.
    read: [Option<Value>; READ.len()],
    /// The payload's JSON text, for the whole map.
    text: Box<str>,
    all: OnceCell<Map<String, Value>>,
}

impl ClerkClaims {
    /// Parses a payload; `Err` exactly when it is not one JSON object.
    pub fn parse(text: String) -> serde_json::Result<ClerkClaims> {
        let read = crate::json::read_members(&text, &READ)?;
        Ok(ClerkClaims {
            read,
            text: text.into_boxed_str(),
            all: OnceCell::new(),
        })
    }

    /// The claim's value, as the whole map has it.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match READ.iter().position(|read| *read == name) {
            Some(at) => self.read[at].as_ref(),
            None => self.all().get(name),
        }
    }

    /// The claim's value, as the whole map has it, without building the map: a name outside
    /// `READ` (an app's own claim, read once per fresh token) is read from the payload text
    /// again for that one member.
    pub fn value_of(&self, name: &str) -> Option<Value> {
        if let Some(at) = READ.iter().position(|read| *read == name) {
            return self.read[at].clone();
        }
        if let Some(all) = self.all.get() {
            return all.get(name).cloned();
        }
        // The text parsed as an object when read, and parses the same way again.
        let [value] = crate::json::read_members(&self.text, &[name]).ok()?;
        value
    }

    /// Every claim, parsed from the payload text on first use.
    pub fn all(&self) -> &Map<String, Value> {
        // The text parsed as an object when read, and parses the same way again.
        self.all
            .get_or_init(|| serde_json::from_str(&self.text).unwrap_or_default())
    }
}

impl fmt::Debug for ClerkClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.all()).finish()
    }
}

impl PartialEq for ClerkClaims {
    fn eq(&self, other: &ClerkClaims) -> bool {
        self.all() == other.all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_every_name_as_the_whole_map() {
        let texts = [
            r#"{"sub":"user_1","sid":"sess_1","iss":"https://a","exp":2,"iat":1,"nbf":1,"azp":"https://b","sts":"active","email":"a@b.c","o":{"id":"org_1"},"legacy_id":"42"}"#,
            r#"{"sub":"first","sub":"second","legacy_id":"1","legacy_id":2,"exp":"x","exp":3}"#,
            r#"{"s\u0075b":"u","primary\u005femail":"e","primaryEmail":null}"#,
            r#"{}"#,
        ];
        let names = READ
            .iter()
            .copied()
            .chain(["o", "legacy_id", "missing", "SUB", "sub "]);
        for text in texts {
            let map: Map<String, Value> = serde_json::from_str(text).unwrap();
            let claims = ClerkClaims::parse(text.to_owned()).unwrap();
            // Read member by member, the map is never built.
            let fresh = ClerkClaims::parse(text.to_owned()).unwrap();
            for name in names.clone() {
                assert_eq!(
                    fresh.value_of(name).as_ref(),
                    map.get(name),
                    "{name} in {text}"
                );
            }
            assert!(fresh.all.get().is_none(), "no map built for {text}");
            for name in names.clone() {
                assert_eq!(claims.get(name), map.get(name), "{name} in {text}");
            }
            assert_eq!(claims.all(), &map);
            // Once the map is built, it answers.
            for name in names.clone() {
                assert_eq!(
                    claims.value_of(name).as_ref(),
                    map.get(name),
                    "{name} in {text}"
                );
            }
        }
        for refused in ["[]", "", r#"{"sub":"u","x":1e400}"#, r#"{"sub":"\ud800"}"#] {
            assert!(ClerkClaims::parse(refused.to_owned()).is_err(), "{refused}");
        }
    }
}
