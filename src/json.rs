//! JSON from bytes through serde_json's `&str` reader.
//!
//! The worker crate and most of this one parse JSON from `&str`; parsing bytes with
//! `serde_json::from_slice` as well would compile a second copy of the parser for each type read
//! both ways. Bytes that are not UTF-8 are refused as `from_slice` refuses them (JSON is UTF-8).

use serde::de::{Deserialize, Error as _};

/// `serde_json::from_slice`, read as `&str`: the same values, the same refusals.
pub fn from_slice<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> serde_json::Result<T> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| serde_json::Error::custom("invalid unicode code point"))?;
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

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
}
