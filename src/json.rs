//! JSON from bytes through serde_json's `&str` reader.
//!
//! The worker crate and most of this one parse JSON from `&str`; parsing bytes with
//! `serde_json::from_slice` as well would compile a second copy of the parser for each type read
//! both ways. Bytes that are not UTF-8 are refused as `from_slice` refuses them (JSON is UTF-8).
//!
//! [`read_members`] reads a few named members of an object without building the map of all.

use std::fmt;

use serde::de::{Deserialize, DeserializeSeed, Deserializer, Error as _, MapAccess, Visitor};
use serde_json::Value;

/// `serde_json::from_slice`, read as `&str`: the same values, the same refusals.
pub fn from_slice<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> serde_json::Result<T> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| serde_json::Error::custom("invalid unicode code point"))?;
    serde_json::from_str(text)
}

/// The values of `names` in the JSON object `text`, each its last value (as a map keeps a member
/// named twice); `Err` when `text` is not one JSON object, exactly when parsing it as a
/// `serde_json::Map` fails. Every other member is still parsed as a `Value` (the same grammar,
/// nesting limit and number range as the map's) and dropped, so no map and no copy of each
/// name is built.
pub fn read_members<const N: usize>(
    text: &str,
    names: &[&str; N],
) -> serde_json::Result<[Option<Value>; N]> {
    let mut read = std::array::from_fn(|_| None);
    read_members_into(text, names, &mut read)?;
    Ok(read)
}

/// [`read_members`], one copy of the code for every number of names.
fn read_members_into(
    text: &str,
    names: &[&str],
    read: &mut [Option<Value>],
) -> serde_json::Result<()> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    Members { names, read }.deserialize(&mut deserializer)?;
    deserializer.end()
}

/// As a seed, the object: where each kept member's value goes.
struct Members<'n, 'r> {
    names: &'n [&'n str],
    read: &'r mut [Option<Value>],
}

impl<'de> DeserializeSeed<'de> for Members<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Members<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(at) = map.next_key_seed(MemberName(self.names))? {
            let value: Value = map.next_value()?;
            if let Some(slot) = at.and_then(|at| self.read.get_mut(at)) {
                *slot = Some(value);
            }
        }
        Ok(())
    }
}

/// A member's name (escapes undone), read as its index among the names kept.
#[derive(Clone, Copy)]
struct MemberName<'n>(&'n [&'n str]);

impl<'de> DeserializeSeed<'de> for MemberName<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl Visitor<'_> for MemberName<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E>(self, name: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|kept| *kept == name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    #[test]
    fn accepts_and_refuses_what_serde_json_from_slice_does() {
        let cases: [&[u8]; 7] = [
            br#"{"a":[1,"x\u00e9",null],"b":{"c":true}}"#,
            "{\"name\":\"Zoë\"}".as_bytes(),
            b"{\"a\":",
            b"",
            b"{\"a\":\"\xff\"}",
            b"\xff",
            b"[1] trailing",
        ];
        for bytes in cases {
            let ours = from_slice::<Value>(bytes);
            let theirs = serde_json::from_slice::<Value>(bytes);
            assert_eq!(ours.is_ok(), theirs.is_ok(), "{bytes:?}");
            if let (Ok(a), Ok(b)) = (ours, theirs) {
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn borrows_strings_from_the_bytes() {
        let bytes = br#"{"user_id":"user_1"}"#;
        #[derive(serde::Deserialize)]
        struct Borrowed<'a> {
            user_id: &'a str,
        }
        let parsed: Borrowed = from_slice(bytes).unwrap();
        assert_eq!(parsed.user_id, "user_1");
    }

    /// The same members read from the whole map.
    fn from_map<const N: usize>(text: &str, names: &[&str; N]) -> Option<[Option<Value>; N]> {
        let map: Map<String, Value> = serde_json::from_str(text).ok()?;
        Some(names.map(|name| map.get(name).cloned()))
    }

    #[test]
    fn read_members_reads_what_the_whole_map_reads_and_refuses_what_it_refuses() {
        let names = ["sub", "iss", "exp", "sid", "café", "\u{1F600}"];
        let cases = [
            r#"{"sub":"user_1","iss":"https://a","exp":1,"sid":"sess_1","o":{"a":[1,{"b":null}]}}"#,
            // The last of a repeated member counts, whatever its type.
            r#"{"sub":"first","sub":"second","exp":1,"exp":"late"}"#,
            r#"{"sub":"first","sub":5,"iss":null,"iss":["x"]}"#,
            // Escaped names and values.
            r#"{"s\u0075b":"\u00e9t\u00e9","iss":"a\"b\\c","caf\u00e9":1,"\ud83d\ude00":2}"#,
            r#"{"sub\u0000":"x","SUB":"y","sub ":"z","su":"w"}"#,
            // Wrong types are kept as they are, for the checks to refuse.
            r#"{"sub":1,"iss":true,"exp":"1","sid":{}}"#,
            r#"{"exp":-1,"iss":1e300,"sid":18446744073709551615,"x":-9223372036854775808,"sub":1.5}"#,
            r#"{}"#,
            " { \"sub\" : \"u\" } ",
            // Not one object, or not JSON at all.
            r#"["sub","u"]"#,
            r#""sub""#,
            "null",
            "",
            r#"{"sub":"u"} trailing"#,
            r#"{"sub":"u"}{}"#,
            r#"{"sub":"u",}"#,
            r#"{"sub":"u""#,
            r#"{sub:"u"}"#,
            r#"{"sub":'u'}"#,
            // Out-of-range numbers, lone surrogates and bad escapes, in members read or not.
            r#"{"sub":"u","x":1e400}"#,
            r#"{"exp":1e400}"#,
            r#"{"sub":"\ud800"}"#,
            r#"{"sub":"u","x":"\ud800"}"#,
            r#"{"sub":"u","\udc00":1}"#,
            r#"{"sub":"u","x":{"y":"\ud800"}}"#,
            r#"{"sub":"u","x":[1e400]}"#,
            r#"{"sub":"u","x":01}"#,
            r#"{"sub":"u","x":"\q"}"#,
            "{\"sub\":\"a\u{1}b\"}",
            "{\"sub\":\"\u{1F600}\",\"iss\":\"\\ud83d\\ude00\"}",
        ];
        for text in cases {
            let ours = read_members(text, &names).ok();
            assert_eq!(ours, from_map(text, &names), "{text}");
        }
        // Nesting as deep as the map allows, and deeper, in a member read and in one not read.
        for depth in [120, 126, 127, 128, 129, 200] {
            for name in ["sub", "x"] {
                let text = format!(
                    r#"{{"{name}":{}1{}}}"#,
                    "[".repeat(depth),
                    "]".repeat(depth)
                );
                let ours = read_members(&text, &names).ok();
                assert_eq!(ours, from_map(&text, &names), "depth {depth} in {name}");
            }
        }
    }
}
