//! Verification keys: an RSA public key from a JWK, a PEM (`CLERK_JWT_KEY`) or DER, and a JWKS
//! reduced to its RS256 signing keys.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::FORGIVING_STANDARD_BASE64;

/// RSA moduli below this are refused; Clerk's keys are 2048-bit.
const MIN_RSA_MODULUS_BITS: usize = 2048;
const MAX_RSA_MODULUS_BITS: usize = 8192;

/// Why a key (JWKS entry, PEM) was refused. Key material is public, but messages stay short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// Not PEM / base64.
    InvalidPem,
    /// DER is not an RSA SubjectPublicKeyInfo (or PKCS#1 RSAPublicKey).
    NotAnRsaPublicKey,
    /// Modulus outside 2048..=8192 bits, or an even / tiny exponent.
    WeakOrInvalidRsaKey,
    InvalidJwks,
    /// A JWKS without a single usable RS256 signing key.
    NoUsableKeys,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidPem => "key is not a PEM-encoded public key",
            Self::NotAnRsaPublicKey => "key is not an RSA public key (SPKI)",
            Self::WeakOrInvalidRsaKey => "RSA key has an unacceptable modulus or exponent",
            Self::InvalidJwks => "JWKS is not valid JSON with a keys array",
            Self::NoUsableKeys => "JWKS has no RSA RS256 signing key",
        })
    }
}

impl std::error::Error for KeyError {}

/// An RSA public key as big-endian modulus and exponent (no leading zero bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RsaPublicKey {
    n: Vec<u8>,
    e: Vec<u8>,
}

impl RsaPublicKey {
    pub fn from_components(n: &[u8], e: &[u8]) -> Result<Self, KeyError> {
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        let n_bits = bit_length(n);
        let e_is_odd = e.last().is_some_and(|last| last & 1 == 1);
        // e ≥ 3 and at most 32 bits (WebCrypto and the rsa crate both cap it).
        let e_ok = e_is_odd && e.len() <= 4 && !(e.len() == 1 && e[0] < 3);
        if !(MIN_RSA_MODULUS_BITS..=MAX_RSA_MODULUS_BITS).contains(&n_bits) || !e_ok {
            return Err(KeyError::WeakOrInvalidRsaKey);
        }
        Ok(Self {
            n: n.to_vec(),
            e: e.to_vec(),
        })
    }

    /// `CLERK_JWT_KEY`: a PEM `PUBLIC KEY` (SPKI), also accepted with literal `\n` sequences (as
    /// env vars often carry it), as `RSA PUBLIC KEY` (PKCS#1) or as the bare base64 body.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let text = pem.replace("\\r", "").replace("\\n", "\n");
        let body: String = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat()
            .split_whitespace()
            .collect();
        if body.is_empty() {
            return Err(KeyError::InvalidPem);
        }
        let der = FORGIVING_STANDARD_BASE64
            .decode(body)
            .map_err(|_| KeyError::InvalidPem)?;
        Self::from_der(&der)
    }

    /// DER SubjectPublicKeyInfo with `rsaEncryption`, or a bare PKCS#1 `RSAPublicKey`.
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        let mut outer = DerReader::new(der);
        let sequence = outer.expect(DER_SEQUENCE)?;
        outer.finish()?;
        let mut inner = DerReader::new(sequence);
        match inner.peek_tag() {
            // PKCS#1: SEQUENCE { INTEGER n, INTEGER e }
            Some(DER_INTEGER) => read_rsa_components(sequence),
            // SPKI: SEQUENCE { SEQUENCE { OID, params }, BIT STRING }
            Some(DER_SEQUENCE) => {
                let mut algorithm = DerReader::new(inner.expect(DER_SEQUENCE)?);
                if algorithm.expect(DER_OID)? != RSA_ENCRYPTION_OID {
                    return Err(KeyError::NotAnRsaPublicKey);
                }
                let bits = inner.expect(DER_BIT_STRING)?;
                inner.finish()?;
                let key = bits
                    .strip_prefix(&[0u8])
                    .ok_or(KeyError::NotAnRsaPublicKey)?;
                let mut key_reader = DerReader::new(key);
                let rsa_key = key_reader.expect(DER_SEQUENCE)?;
                key_reader.finish()?;
                read_rsa_components(rsa_key)
            }
            _ => Err(KeyError::NotAnRsaPublicKey),
        }
    }

    pub fn modulus(&self) -> &[u8] {
        &self.n
    }

    pub fn exponent(&self) -> &[u8] {
        &self.e
    }

    /// Size of a valid signature for this key, in bytes.
    pub fn modulus_len(&self) -> usize {
        self.n.len()
    }

    /// JWK `n` (base64url, no padding).
    pub fn n_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.n)
    }

    /// JWK `e` (base64url, no padding).
    pub fn e_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.e)
    }

    /// Content address of the key (hex SHA-256 prefix of n and e), to cache imported keys by
    /// what they are rather than by a `kid` that a config change could reuse.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update((self.n.len() as u32).to_be_bytes());
        hasher.update(&self.n);
        hasher.update(&self.e);
        hasher.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

fn bit_length(bytes: &[u8]) -> usize {
    match bytes.first() {
        None => 0,
        Some(&top) => (bytes.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

const DER_INTEGER: u8 = 0x02;
const DER_BIT_STRING: u8 = 0x03;
const DER_OID: u8 = 0x06;
const DER_SEQUENCE: u8 = 0x30;
/// 1.2.840.113549.1.1.1
const RSA_ENCRYPTION_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

fn read_rsa_components(sequence: &[u8]) -> Result<RsaPublicKey, KeyError> {
    let mut reader = DerReader::new(sequence);
    let n = reader.expect(DER_INTEGER)?;
    let e = reader.expect(DER_INTEGER)?;
    reader.finish()?;
    // A positive INTEGER has its top bit clear (a 0x00 pad keeps it so).
    if n.first().is_none_or(|b| b & 0x80 != 0) || e.first().is_none_or(|b| b & 0x80 != 0) {
        return Err(KeyError::NotAnRsaPublicKey);
    }
    RsaPublicKey::from_components(n, e)
}

/// Just enough DER for public keys: definite lengths, single-byte tags.
struct DerReader<'a> {
    rest: &'a [u8],
}

impl<'a> DerReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn expect(&mut self, tag: u8) -> Result<&'a [u8], KeyError> {
        let malformed = KeyError::NotAnRsaPublicKey;
        let (&found, rest) = self.rest.split_first().ok_or(malformed.clone())?;
        if found != tag {
            return Err(malformed);
        }
        let (&first_len, mut rest) = rest.split_first().ok_or(malformed.clone())?;
        let len = if first_len < 0x80 {
            usize::from(first_len)
        } else {
            let count = usize::from(first_len & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return Err(malformed);
            }
            let (len_bytes, after) = rest.split_at(count);
            rest = after;
            len_bytes
                .iter()
                .fold(0usize, |len, &b| (len << 8) | usize::from(b))
        };
        if rest.len() < len {
            return Err(malformed);
        }
        let (content, after) = rest.split_at(len);
        self.rest = after;
        Ok(content)
    }

    fn finish(&self) -> Result<(), KeyError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(KeyError::NotAnRsaPublicKey)
        }
    }
}

/// A parsed JWKS: the RS256 signing keys by `kid`, in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jwks {
    keys: Vec<(String, RsaPublicKey)>,
}

impl Jwks {
    /// Parses `{"keys":[…]}`. Entries that are not RSA signing keys for RS256 (`kty` ≠ `RSA`,
    /// `use` ≠ `sig`, `alg` ≠ `RS256`, no `kid`, weak modulus) are skipped, not fatal: a JWKS
    /// may legitimately hold other keys. A document with no usable key is an error.
    pub fn parse(json: &str) -> Result<Self, KeyError> {
        let document: Value = serde_json::from_str(json).map_err(|_| KeyError::InvalidJwks)?;
        let entries = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(KeyError::InvalidJwks)?;
        let mut keys: Vec<(String, RsaPublicKey)> = Vec::new();
        for entry in entries {
            let Some((kid, key)) = rsa_signing_key_from_jwk(entry) else {
                continue;
            };
            // First entry wins; a duplicate kid must not replace a key already trusted.
            if !keys.iter().any(|(known, _)| *known == kid) {
                keys.push((kid, key));
            }
        }
        if keys.is_empty() {
            return Err(KeyError::NoUsableKeys);
        }
        Ok(Self { keys })
    }

    pub fn get(&self, kid: &str) -> Option<&RsaPublicKey> {
        self.keys
            .iter()
            .find(|(known, _)| known == kid)
            .map(|(_, key)| key)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(kid, _)| kid.as_str())
    }
}

fn rsa_signing_key_from_jwk(entry: &Value) -> Option<(String, RsaPublicKey)> {
    let field = |name: &str| entry.get(name);
    if field("kty")?.as_str()? != "RSA" {
        return None;
    }
    if field("use").is_some_and(|usage| usage.as_str() != Some("sig")) {
        return None;
    }
    if field("alg").is_some_and(|alg| alg.as_str() != Some("RS256")) {
        return None;
    }
    let kid = field("kid")?.as_str().filter(|kid| !kid.is_empty())?;
    let n = URL_SAFE_NO_PAD.decode(field("n")?.as_str()?).ok()?;
    let e = URL_SAFE_NO_PAD.decode(field("e")?.as_str()?).ok()?;
    let key = RsaPublicKey::from_components(&n, &e).ok()?;
    Some((kid.to_owned(), key))
}
