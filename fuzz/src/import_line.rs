//! `import_line`: `parse_ndjson` on the input as a body and `parse_line` on the input as one
//! line. Accepted records must be well-formed and survive `to_line` → `parse_line`; errors and
//! Debug must never show a password digest.

use std::collections::HashSet;

use auth_bridge::migration::record::{MAX_ID_CHARS, MAX_LINE_BYTES, PASSWORD_HASHERS};
use auth_bridge::migration::{parse_line, parse_ndjson, ImportRecord};
use serde_json::Value;

use crate::common::text;

pub fn run(data: &[u8]) {
    let body = text(data);
    let body = body.as_ref();

    let (records, rejected) = parse_ndjson(body);
    let lines: Vec<&str> = body.split('\n').collect();
    let non_empty = lines.iter().filter(|l| !l.trim().is_empty()).count();
    assert_eq!(
        records.len() + rejected.len(),
        non_empty,
        "accepted + rejected != non-empty lines"
    );
    let mut previous = 0;
    for r in &rejected {
        assert!(
            r.line > previous && r.line <= lines.len(),
            "bad line number"
        );
        previous = r.line;
        let line = lines[r.line - 1];
        assert!(!line.trim().is_empty());
        check_error_hides_digest(line, &r.error);
    }
    let mut ids = HashSet::new();
    for rec in &records {
        assert!(ids.insert(rec.id.as_str()), "duplicate id accepted");
        check_record(rec);
    }

    let line = body.strip_suffix('\r').unwrap_or(body);
    match parse_line(line) {
        Ok(rec) => check_record(&rec),
        Err(e) => check_error_hides_digest(line, &e),
    }
}

/// The digest of a line, when it is one that an error could only show by leaking it.
fn digest_of(line: &str) -> Option<String> {
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(line) else {
        return None;
    };
    let digest = obj.get("password_digest")?.as_str()?.to_owned();
    let hashers = PASSWORD_HASHERS.join(", ");
    // Too short, one of the hasher names listed in an error, or also a key name (which an
    // unknown-field error rightly shows): not a leak.
    if digest.len() < 8 || hashers.contains(&digest) || obj.keys().any(|k| k.contains(&digest)) {
        return None;
    }
    Some(digest)
}

fn check_error_hides_digest(line: &str, error: &str) {
    let Some(digest) = digest_of(line) else {
        return;
    };
    if !error.contains(&digest) {
        return;
    }
    // The parser's own words may hold a short digest by chance (`s not a valid email add` in
    // "is not a valid email address"): that is no leak when the same line with any other digest
    // gives an error showing it too.
    let mut obj: serde_json::Map<String, Value> =
        serde_json::from_str(line).expect("digest_of parsed it");
    obj.insert(
        "password_digest".into(),
        Value::String("#".repeat(digest.len())),
    );
    let other = serde_json::to_string(&obj).expect("a JSON object");
    let own_words = parse_line(&other).is_err_and(|again| again.contains(&digest));
    assert!(own_words, "error shows the password digest: {error}");
}

fn check_record(rec: &ImportRecord) {
    assert!(!rec.id.trim().is_empty());
    assert!(rec.id.chars().count() <= MAX_ID_CHARS);
    assert!(!rec.id.chars().any(char::is_control));
    assert!(rec.email.is_some() || rec.phone.is_some() || rec.username.is_some());
    if let Some(email) = &rec.email {
        assert!(email.contains('@'));
    }
    if let Some(phone) = &rec.phone {
        assert!(phone.starts_with('+'));
    }
    if let Some(p) = &rec.password {
        assert!(PASSWORD_HASHERS.contains(&p.hasher.as_str()));
        let digest = p.digest.expose();
        let mut without = rec.clone();
        without.password = None;
        if digest.len() >= 8 && !format!("{without:?}").contains(digest) {
            assert!(
                !format!("{rec:?}").contains(digest),
                "Debug shows the digest"
            );
        }
    }

    // `to_line` is how records are stored; `parse_line` must read them back.
    let stored = rec.to_line();
    if stored.len() > MAX_LINE_BYTES {
        return;
    }
    let back = parse_line(&stored).unwrap_or_else(|e| panic!("stored record refused: {e}"));
    // Metadata may hold floats, which serde_json re-reads within one ulp: compare its keys.
    let keys = |m: &Option<serde_json::Map<String, Value>>| {
        m.as_ref().map(|m| m.keys().cloned().collect::<Vec<_>>())
    };
    assert_eq!(keys(&back.public_metadata), keys(&rec.public_metadata));
    assert_eq!(keys(&back.private_metadata), keys(&rec.private_metadata));
    let strip = |r: &ImportRecord| ImportRecord {
        public_metadata: None,
        private_metadata: None,
        ..r.clone()
    };
    assert_eq!(strip(&back), strip(rec), "record changed through to_line");
}
