//! `nextauth_claims`: fuzzes the *plaintext* of NextAuth / Auth.js tokens. The fuzzed claims are
//! encrypted with the real keys (derived here the way next-auth 4 and @auth/core derive them),
//! so every input gets past the AEAD check and reaches the claims parser and checks.
//!
//! Layout: `[scheme, flags, now offset (i32 LE, 4 bytes), plaintext…]`.
//! - scheme % 7: 0 v4 A256GCM; 1 v5 A256CBC-HS512 with kid; 2 the same without kid;
//!   3 v5 A256GCM with kid; 4 the same without kid; 5 v4 under an overridden cookie name;
//!   6 v5 A256CBC-HS512 with kid under the overridden name.
//! - flags: bit 0 second secret (schemes with a kid, and v4), bit 1 `__Secure-` name,
//!   bits 2–4 replicate `sub` / `iss` / `aud` from the claims into the protected header,
//!   bit 5 add `typ` and `cty` headers, bit 7 send the token as two cookie chunks.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockEncryptMut, KeyIvInit};
use aes::Aes256;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use auth_bridge::cookies::{Cookies, MAX_COOKIE_VALUE_LEN};
use auth_bridge::identity::nextauth::{
    NextAuthError, NextAuthOutcome, NextAuthVerifier, NextAuthVersion, MAX_TOKEN_LEN,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha512};

use crate::common::{NEXTAUTH_NOW, NEXTAUTH_SECRETS};
use crate::nextauth_jwe::{check_decode, verifiers, OVERRIDE_NAME};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Enc {
    Gcm,
    CbcHs512,
}

struct Scheme {
    version: NextAuthVersion,
    enc: Enc,
    with_kid: bool,
    overridden: bool,
}

fn scheme(selector: u8) -> Scheme {
    let (version, enc, with_kid, overridden) = match selector % 7 {
        0 => (NextAuthVersion::V4, Enc::Gcm, false, false),
        1 => (NextAuthVersion::V5, Enc::CbcHs512, true, false),
        2 => (NextAuthVersion::V5, Enc::CbcHs512, false, false),
        3 => (NextAuthVersion::V5, Enc::Gcm, true, false),
        4 => (NextAuthVersion::V5, Enc::Gcm, false, false),
        5 => (NextAuthVersion::V4, Enc::Gcm, false, true),
        _ => (NextAuthVersion::V5, Enc::CbcHs512, true, true),
    };
    Scheme {
        version,
        enc,
        with_kid,
        overridden,
    }
}

fn hkdf(secret: &str, salt: &[u8], info: &str, out: &mut [u8]) {
    Hkdf::<Sha256>::new(Some(salt), secret.as_bytes())
        .expand(info.as_bytes(), out)
        .expect("valid HKDF length");
}

/// RFC 7638 thumbprint of an `oct` JWK, as @auth/core computes the `kid`.
fn thumbprint(key: &[u8]) -> String {
    let jwk = format!(r#"{{"k":"{}","kty":"oct"}}"#, URL_SAFE_NO_PAD.encode(key));
    if key.len() == 64 {
        URL_SAFE_NO_PAD.encode(Sha512::digest(jwk.as_bytes()))
    } else {
        URL_SAFE_NO_PAD.encode(Sha256::digest(jwk.as_bytes()))
    }
}

/// Encrypts `plaintext` into a compact JWE as next-auth 4 (`v4`) or @auth/core would.
pub fn encrypt(
    version: NextAuthVersion,
    cbc: bool,
    secret: &str,
    cookie_name: &str,
    with_kid: bool,
    extra_header: &Map<String, Value>,
    plaintext: &[u8],
) -> String {
    let key_len = if cbc { 64 } else { 32 };
    let mut key = vec![0u8; key_len];
    match version {
        NextAuthVersion::V4 => hkdf(
            secret,
            b"",
            "NextAuth.js Generated Encryption Key",
            &mut key,
        ),
        NextAuthVersion::V5 => hkdf(
            secret,
            cookie_name.as_bytes(),
            &format!("Auth.js Generated Encryption Key ({cookie_name})"),
            &mut key,
        ),
    }
    let mut header = Map::new();
    header.insert("alg".into(), "dir".into());
    header.insert(
        "enc".into(),
        if cbc { "A256CBC-HS512" } else { "A256GCM" }.into(),
    );
    if with_kid {
        header.insert("kid".into(), thumbprint(&key).into());
    }
    for (k, v) in extra_header {
        header.insert(k.clone(), v.clone());
    }
    let header_b64 = URL_SAFE_NO_PAD.encode(Value::Object(header).to_string());
    let aad = header_b64.as_bytes();
    let (iv, ciphertext, tag) = if cbc {
        let iv = [7u8; 16];
        let (mac_key, enc_key) = key.split_at(32);
        let mut buffer = plaintext.to_vec();
        buffer.resize(plaintext.len() + 16 - plaintext.len() % 16, 0);
        let ciphertext = cbc::Encryptor::<Aes256>::new(enc_key.into(), (&iv).into())
            .encrypt_padded_mut::<Pkcs7>(&mut buffer, plaintext.len())
            .expect("room for the padding")
            .to_vec();
        let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(mac_key).expect("any key length");
        mac.update(aad);
        mac.update(&iv);
        mac.update(&ciphertext);
        mac.update(&((aad.len() as u64) * 8).to_be_bytes());
        let tag = mac.finalize().into_bytes()[..32].to_vec();
        (iv.to_vec(), ciphertext, tag)
    } else {
        let iv = [9u8; 12];
        let cipher = Aes256Gcm::new_from_slice(&key).expect("32-byte key");
        let mut buffer = plaintext.to_vec();
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&iv), aad, &mut buffer)
            .expect("encrypt");
        (iv.to_vec(), buffer, tag.to_vec())
    };
    format!(
        "{header_b64}..{}.{}.{}",
        URL_SAFE_NO_PAD.encode(iv),
        URL_SAFE_NO_PAD.encode(ciphertext),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

pub fn run(data: &[u8]) {
    if data.len() < 6 {
        return;
    }
    let scheme = scheme(data[0]);
    let flags = data[1];
    let offset = i32::from_le_bytes([data[2], data[3], data[4], data[5]]);
    let now = NEXTAUTH_NOW.saturating_add_signed(i64::from(offset));
    let plaintext = &data[6..];

    let secret_index = if scheme.with_kid || scheme.version == NextAuthVersion::V4 {
        usize::from(flags & 1)
    } else {
        0 // without a kid, @auth/core (and we) use the first secret only
    };
    let secure = flags & 2 != 0;
    let name = if scheme.overridden {
        OVERRIDE_NAME
    } else {
        match (scheme.version, secure) {
            (NextAuthVersion::V4, false) => "next-auth.session-token",
            (NextAuthVersion::V4, true) => "__Secure-next-auth.session-token",
            (NextAuthVersion::V5, false) => "authjs.session-token",
            (NextAuthVersion::V5, true) => "__Secure-authjs.session-token",
        }
    };

    let claims: Option<Map<String, Value>> = std::str::from_utf8(plaintext)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        });
    let mut extra = Map::new();
    let mut floats_replicated = false;
    for (bit, claim) in [(4u8, "sub"), (8, "iss"), (16, "aud")] {
        if flags & bit != 0 {
            if let Some(value) = claims.as_ref().and_then(|c| c.get(claim)) {
                floats_replicated |= has_float(value);
                extra.insert(claim.to_owned(), value.clone());
            }
        }
    }
    if flags & 32 != 0 {
        extra.insert("typ".into(), "JWT".into());
        extra.insert("cty".into(), "JWT".into());
    }

    let token = encrypt(
        scheme.version,
        scheme.enc == Enc::CbcHs512,
        NEXTAUTH_SECRETS[secret_index],
        name,
        scheme.with_kid,
        &extra,
        plaintext,
    );
    let v = verifiers();
    let verifier: &NextAuthVerifier = if scheme.overridden {
        &v.overridden
    } else {
        &v.defaults
    };

    check_decode(verifier, name, &token, now);
    let result = verifier.decode(name, &token, now);
    match &result {
        Ok(session) => assert_eq!(session.version, scheme.version),
        Err(
            NextAuthError::NotUtf8
            | NextAuthError::ClaimsNotObject
            | NextAuthError::InvalidClaim(_)
            | NextAuthError::Expired
            | NextAuthError::NotYetValid
            | NextAuthError::MissingSubject
            | NextAuthError::TooLarge,
        ) => {}
        // Claims copied into the protected header can push it past the header's size bound
        // (a deliberate refusal of oversized headers, not a decoding fault).
        Err(NextAuthError::BadHeader) if token.split('.').next().map_or(0, str::len) > 2048 => {}
        Err(NextAuthError::HeaderClaimMismatch(claim)) => {
            // The header carries the claim's own value, so only float re-encoding may differ.
            assert!(
                floats_replicated,
                "replicated {claim} reported as a mismatch"
            );
        }
        Err(e) => panic!("a correctly encrypted token stopped before its claims: {e:?}"),
    }
    // Oracle: an object with a non-empty string sub and no time claims is a session.
    if let Some(claims) = &claims {
        let has_sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        let timeless = ["iat", "nbf", "exp"]
            .iter()
            .all(|c| !claims.contains_key(*c));
        let header_len = token.split('.').next().map_or(0, str::len);
        if has_sub
            && timeless
            && !floats_replicated
            && token.len() <= MAX_TOKEN_LEN
            && header_len <= 2048
        {
            assert!(result.is_ok(), "valid claims refused: {result:?}");
        }
    }

    // The same token through the Cookie header, whole or as two chunks, gives the same answer.
    if token.len() <= MAX_COOKIE_VALUE_LEN {
        let header = if flags & 128 != 0 {
            let (a, b) = token.split_at(token.len() / 2);
            format!("{name}.1={b}; other=1; {name}.0={a}")
        } else {
            format!("{name}={token}")
        };
        let cookies = Cookies::parse(&header);
        match (verifier.session_from_cookies(&cookies, now), &result) {
            (NextAuthOutcome::Session(s), Ok(d)) => assert_eq!(&s, d),
            (NextAuthOutcome::Rejected(e), Err(d)) => assert_eq!(&e, d),
            (outcome, _) => panic!("cookie path and decode disagree: {outcome:?} vs {result:?}"),
        }
    }
}
