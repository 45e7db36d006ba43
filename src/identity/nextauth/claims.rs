//! A decrypted session payload, read for the few claims the worker uses.
//!
//! The payload is parsed once, straight into [`ReadClaims`] ([`crate::json::read_members`]):
//! `sub`, `email`, `name`, `picture` as strings, `iat`, `nbf`, `exp` as numbers; every other
//! claim is parsed as a `serde_json::Value` and dropped, so no map of every claim (nor a copy of
//! each name) is built per token. A claim named twice counts with its last value, as
//! `JSON.parse` and `serde_json::Map` have it. The whole map stays available from the payload
//! text ([`super::SessionFacts::claims`]) for the rare reader that needs an app's own claim.

use serde_json::{Map, Value};

use super::{Header, NextAuthError, CLOCK_TOLERANCE_SECS};

/// One claim's value, as far as the worker cares.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar {
    Text(String),
    Number(f64),
    /// Anything else (`true`, `null`, an array, an object).
    Other,
}

impl From<Value> for Scalar {
    fn from(value: Value) -> Scalar {
        match value {
            Value::String(s) => Scalar::Text(s),
            Value::Number(n) => n.as_f64().map_or(Scalar::Other, Scalar::Number),
            _ => Scalar::Other,
        }
    }
}

/// The claims a session is read by; `None` = absent. Each holds the claim's last value.
#[derive(Debug, Default, PartialEq)]
pub(super) struct ReadClaims {
    pub sub: Option<Scalar>,
    pub email: Option<Scalar>,
    pub name: Option<Scalar>,
    pub picture: Option<Scalar>,
    pub iat: Option<Scalar>,
    pub nbf: Option<Scalar>,
    pub exp: Option<Scalar>,
}

/// The claims [`ReadClaims`] holds, in its fields' order.
const READ: [&str; 7] = ["sub", "email", "name", "picture", "iat", "nbf", "exp"];

impl ReadClaims {
    /// Parses a payload; `Err` when it is not one JSON object (what jose refuses).
    pub fn parse(text: &str) -> Result<ReadClaims, NextAuthError> {
        let read =
            crate::json::read_members(text, &READ).map_err(|_| NextAuthError::ClaimsNotObject)?;
        let [sub, email, name, picture, iat, nbf, exp] = read.map(|value| value.map(Scalar::from));
        Ok(ReadClaims {
            sub,
            email,
            name,
            picture,
            iat,
            nbf,
            exp,
        })
    }
}

/// A claim that must be a number when present.
fn numeric(claim: &Option<Scalar>, name: &'static str) -> Result<Option<f64>, NextAuthError> {
    match claim {
        None => Ok(None),
        Some(Scalar::Number(n)) => Ok(Some(*n)),
        Some(_) => Err(NextAuthError::InvalidClaim(name)),
    }
}

/// A claim's text, when it is a string.
pub(super) fn text(claim: Option<Scalar>) -> Option<String> {
    match claim {
        Some(Scalar::Text(s)) => Some(s),
        _ => None,
    }
}

/// What the checks found: `iat` as sent and `exp` in whole seconds.
#[derive(Debug, PartialEq)]
pub(super) struct Checked {
    pub iat: Option<f64>,
    pub exp: Option<u64>,
}

/// Claim checks of jose's `jwtDecrypt` with next-auth's 15 s tolerance, then our `sub` rule.
/// `payload` is the text `claims` were read from: replicated header parameters (which
/// next-auth never sends) are compared with the full claims map.
pub(super) fn check_claims(
    header: &Header,
    claims: &ReadClaims,
    payload: &str,
    now: u64,
) -> Result<Checked, NextAuthError> {
    let now = now as f64;
    let tolerance = CLOCK_TOLERANCE_SECS as f64;
    let iat = numeric(&claims.iat, "iat")?;
    if let Some(nbf) = numeric(&claims.nbf, "nbf")? {
        if nbf > now + tolerance {
            return Err(NextAuthError::NotYetValid);
        }
    }
    let exp = numeric(&claims.exp, "exp")?;
    if let Some(exp) = exp {
        if exp <= now - tolerance {
            return Err(NextAuthError::Expired);
        }
    }
    if !header.replicated.is_empty() {
        let all: Map<String, Value> =
            serde_json::from_str(payload).map_err(|_| NextAuthError::ClaimsNotObject)?;
        for (claim, value) in &header.replicated {
            if all.get(*claim) != Some(value) {
                return Err(NextAuthError::HeaderClaimMismatch(claim));
            }
        }
    }
    match &claims.sub {
        Some(Scalar::Text(sub)) if !sub.is_empty() => {}
        _ => return Err(NextAuthError::MissingSubject),
    }
    Ok(Checked {
        iat,
        // Fractional or negative expiry is legal JSON; keep whole seconds.
        exp: exp.filter(|e| e.is_finite() && *e >= 0.0).map(|e| e as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same claims read from the full `serde_json` map, as the decoder once did.
    fn from_map(text: &str) -> Option<ReadClaims> {
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
            return None;
        };
        let read = |name: &str| {
            map.get(name).map(|v| match v {
                Value::String(s) => Scalar::Text(s.clone()),
                Value::Number(n) => Scalar::Number(n.as_f64().unwrap()),
                _ => Scalar::Other,
            })
        };
        Some(ReadClaims {
            sub: read("sub"),
            email: read("email"),
            name: read("name"),
            picture: read("picture"),
            iat: read("iat"),
            nbf: read("nbf"),
            exp: read("exp"),
        })
    }

    #[test]
    fn reads_what_the_full_map_reads_and_refuses_what_it_refuses() {
        let cases = [
            r#"{"sub":"u1","email":"a@b.c","name":"Ada","picture":"p","iat":1,"nbf":2.5,"exp":3}"#,
            r#"{"sub":"u1","role":"admin","nested":{"a":[1,{"b":null}],"c":"x"},"list":[true,false]}"#,
            // The last of a repeated claim counts.
            r#"{"sub":"first","sub":"second","exp":1,"exp":"late"}"#,
            r#"{"sub":"first","sub":5}"#,
            // Escaped names and values.
            r#"{"s\u0075b":"\u00e9t\u00e9","email":"a\"b\\c"}"#,
            // Wrong types are kept as "other", to be refused or ignored later.
            r#"{"sub":1,"email":true,"name":null,"picture":["x"],"iat":"1","nbf":{},"exp":null}"#,
            r#"{"iat":-1,"exp":1e300,"nbf":18446744073709551615,"x":-9223372036854775808}"#,
            r#"{}"#,
            " { \"sub\" : \"u\" } ",
            // Not one object, or not JSON at all.
            r#"["sub","u"]"#,
            r#""sub""#,
            "null",
            "",
            r#"{"sub":"u"} trailing"#,
            r#"{"sub":"u",}"#,
            r#"{"sub":"u""#,
            // Numbers out of f64's range and lone surrogates, in a claim nobody reads too.
            r#"{"sub":"u","x":1e400}"#,
            r#"{"sub":"u","x":"\ud800"}"#,
            r#"{"sub":"u","x":{"y":"\ud800"}}"#,
            r#"{"sub":"u","x":[1e400]}"#,
            r#"{"sub":"u","x":01}"#,
            r#"{"sub":"u","x":"\q"}"#,
        ];
        for text in cases {
            let ours = ReadClaims::parse(text).ok();
            assert_eq!(ours, from_map(text), "{text}");
        }
        // Nesting as deep as the map allows, and one level deeper.
        for depth in [120, 127, 128, 129, 200] {
            let text = format!(
                r#"{{"sub":"u","x":{}1{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            );
            let ours = ReadClaims::parse(&text).ok();
            assert_eq!(ours.is_some(), from_map(&text).is_some(), "depth {depth}");
        }
    }

    #[test]
    fn checks_types_times_and_sub() {
        let header = Header {
            enc: super::super::Enc::A256Gcm,
            kid: None,
            replicated: Vec::new(),
        };
        let check = |text: &str, now: u64| {
            check_claims(&header, &ReadClaims::parse(text).unwrap(), text, now)
        };
        assert_eq!(
            check(r#"{"sub":"u","iat":100.5,"exp":200}"#, 150),
            Ok(Checked {
                iat: Some(100.5),
                exp: Some(200)
            })
        );
        assert_eq!(
            check(r#"{"sub":"u","iat":"100"}"#, 150),
            Err(NextAuthError::InvalidClaim("iat"))
        );
        assert_eq!(
            check(r#"{"sub":"u","nbf":null}"#, 150),
            Err(NextAuthError::InvalidClaim("nbf"))
        );
        assert_eq!(
            check(r#"{"sub":"u","exp":[200]}"#, 150),
            Err(NextAuthError::InvalidClaim("exp"))
        );
        // Within the 15 s tolerance, and just past it.
        assert!(check(r#"{"sub":"u","exp":200}"#, 214).is_ok());
        assert_eq!(
            check(r#"{"sub":"u","exp":200}"#, 215),
            Err(NextAuthError::Expired)
        );
        assert!(check(r#"{"sub":"u","nbf":200}"#, 185).is_ok());
        assert_eq!(
            check(r#"{"sub":"u","nbf":200}"#, 184),
            Err(NextAuthError::NotYetValid)
        );
        for missing in [
            r#"{}"#,
            r#"{"sub":""}"#,
            r#"{"sub":7}"#,
            r#"{"sub":"u","sub":null}"#,
        ] {
            assert_eq!(
                check(missing, 150),
                Err(NextAuthError::MissingSubject),
                "{missing}"
            );
        }
        // Expiry is remembered in whole seconds (saturating).
        assert_eq!(
            check(r#"{"sub":"u","exp":1e300}"#, 150).unwrap().exp,
            Some(u64::MAX)
        );
        assert_eq!(
            check(r#"{"sub":"u","exp":200.9}"#, 150).unwrap().exp,
            Some(200)
        );
    }

    #[test]
    fn replicated_header_parameters_are_compared_with_the_full_claims() {
        let header = Header {
            enc: super::super::Enc::A256CbcHs512,
            kid: None,
            replicated: vec![("iss", Value::from("https://a")), ("sub", Value::from("u"))],
        };
        let check = |text: &str| check_claims(&header, &ReadClaims::parse(text).unwrap(), text, 0);
        assert!(check(r#"{"sub":"u","iss":"https://a"}"#).is_ok());
        assert_eq!(
            check(r#"{"sub":"u","iss":"https://b"}"#),
            Err(NextAuthError::HeaderClaimMismatch("iss"))
        );
        assert_eq!(
            check(r#"{"sub":"u"}"#),
            Err(NextAuthError::HeaderClaimMismatch("iss"))
        );
    }
}
