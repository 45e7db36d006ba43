#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/seeds/<target>/ (committed; re-run to regenerate).

NextAuth seeds come from tests/fixtures/nextauth/tokens.json (minted by the real next-auth and
@auth/core); Clerk seeds are real-shaped RS256 tokens, keys and JWKS made here with a throwaway
RSA key (needs the `cryptography` package).
"""
import base64
import hashlib
import json
import os
import shutil
import struct

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ROOT = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(ROOT, "seeds")
FIXTURE = os.path.join(ROOT, "..", "tests", "fixtures", "nextauth", "tokens.json")

CLERK_NOW = 1_760_000_000
DEV_PK = "pk_test_aGFwcHktaGlwcG8tNDIuY2xlcmsuYWNjb3VudHMuZGV2JA"
DEV_FAPI = "happy-hippo-42.clerk.accounts.dev"
LIVE_PK = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k"
LIVE_FAPI = "clerk.example.com"
DEV_SUFFIX = "k_2xjilp"
LIVE_SUFFIX = "naoXFJnI"
AZP = "https://app.example.com"
KID = "ins_2abcTESTkid"


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def fixture():
    with open(FIXTURE) as f:
        return json.load(f)


# ------------------------------------------------------------------------------------------
def cookies(fx):
    for h in fx["cookie_headers"]:
        write("cookies", "fixture-" + h["label"], h["header"])
    base = "authjs.session-token"
    hand = {
        "plain": f"theme=dark; {base}=abc; other=1",
        "chunks": f"{base}.1=B; {base}.0=A; {base}.2=C",
        "gap": f"{base}.0=A; {base}.2=C",
        "plain-and-chunks": f"{base}=P; {base}.0=A",
        "odd-names": f"{base}.01=A; {base}.x=B; {base}.=C; {base}X=D; {base}.-1=E; {base}.+1=F",
        "too-many-chunks": "; ".join(f"{base}.{i}=v{i}" for i in range(40)),
        "index-32": f"{base}.32=A",
        "empty-pieces": f"{base}=; {base}.0=A; {base}.1=",
        "duplicates": f"{base}.0=A; {base}.1=B; {base}.0=Z",
        "whitespace": f" \t{base} \t= \tA \t;\t;; flag; =v; n=; =",
        "secure-v4": "__Secure-next-auth.session-token.0=A; __Secure-next-auth.session-token.1=B; next-auth.session-token=C",
        "clerk": f"__session=eyJ.x.y; __client_uat=1760000000; __session_{DEV_SUFFIX}=a.b.c; __client_uat_{DEV_SUFFIX}=0; __clerk_db_jwt=dvb_x",
        "many-pairs": "; ".join(f"k{i}=v" for i in range(210)),
        "utf8": "näme=välue; a=\u2603; \u00e9=1; s.0=\u0101; s.1=x",
        "short-bases": "a=1; a.0=2; s.0.0=x; s.0=y; s.0.1=z",
    }
    for name, header in hand.items():
        write("cookies", name, header)


# ------------------------------------------------------------------------------------------
def nextauth_jwe(fx):
    for t in fx["tokens"]:
        write("nextauth_jwe", "token-" + t["label"], t["token"])
        write("nextauth_jwe", "cookie-" + t["label"], f"{t['cookie_name']}={t['token']}")
    for h in fx["cookie_headers"]:
        write("nextauth_jwe", "header-" + h["label"], h["header"])
    write("nextauth_jwe", "database-session", "next-auth.session-token=3f1c2b7a-9d1e-4f5a-8b6c-1d2e3f4a5b6c")
    write("nextauth_jwe", "database-session-hex", "authjs.session-token=" + "ab" * 32)
    write("nextauth_jwe", "precedence", "next-auth.session-token=old; authjs.session-token=; __Secure-authjs.session-token=new.a.b.c.d")
    v5 = next(t for t in fx["tokens"] if t["label"] == "v5")["token"]
    write("nextauth_jwe", "override-cookie", f"custom.session-token={v5}")
    parts = v5.split(".")
    write("nextauth_jwe", "encrypted-key", ".".join([parts[0], "AAAA"] + parts[2:]))
    write("nextauth_jwe", "six-parts", v5 + ".x")


# ------------------------------------------------------------------------------------------
def nextauth_claims(fx):
    # [scheme, flags, now offset i32 LE, plaintext]
    def seed(name, scheme, flags, offset, plaintext):
        if isinstance(plaintext, (dict, list)):
            plaintext = json.dumps(plaintext, separators=(",", ":"))
        if isinstance(plaintext, str):
            plaintext = plaintext.encode()
        write("nextauth_claims", name, bytes([scheme, flags]) + struct.pack("<i", offset) + plaintext)

    claims = []
    for t in fx["tokens"]:
        c = t.get("minted_claims") or t.get("claims")
        if isinstance(c, dict):
            claims.append((t["label"], c))
    for i, (label, c) in enumerate(claims):
        seed(f"{label}", i % 7, (i * 37) & 0xFF, 0, c)
    base = dict(claims[0][1])
    for scheme in range(7):
        seed(f"base-scheme{scheme}", scheme, 0, 0, base)
        seed(f"base-scheme{scheme}-chunked", scheme, 0x80 | 1, 0, base)
    seed("replicated", 1, 4 | 8 | 16, 0, dict(base, iss="https://app", aud=["a", "b"]))
    seed("typ-cty", 3, 32, 0, base)
    seed("timeless", 2, 0, 0, {"sub": "user_1"})
    seed("fractional", 1, 0, 0, dict(base, exp=1795670445.5, nbf=1795670000.25, iat=1.5))
    seed("negative-exp", 1, 0, 0, dict(base, exp=-1))
    seed("huge-exp", 1, 0, 0, dict(base, exp=1e308))
    seed("expired", 0, 0, 0x7FFFFFFF, base)
    seed("not-yet", 1, 0, -0x7FFFFFFF, dict(base, nbf=1795670445))
    seed("array", 1, 0, 0, [1, 2])
    seed("string", 1, 0, 0, '"sub"')
    seed("not-utf8", 1, 0, 0, b"\xff\xfe{")
    seed("empty", 1, 0, 0, b"")
    seed("nested", 4, 0, 0, {"sub": "u", "a": {"b": [{"c": None}] * 3}})
    seed("duplicate-keys", 1, 4, 0, '{"sub":"a","sub":"b"}')


# ------------------------------------------------------------------------------------------
def clerk(fx):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=3, key_size=2048)
    pub = key.public_key()

    def jwk(k, kid, **extra):
        nums = k.public_key().public_numbers()
        n = nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")
        e = nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big")
        d = {"use": "sig", "kty": "RSA", "kid": kid, "alg": "RS256", "n": b64u(n), "e": b64u(e)}
        d.update(extra)
        return d

    def token(header, claims, sign=True):
        h = b64u(json.dumps(header, separators=(",", ":")))
        p = b64u(json.dumps(claims, separators=(",", ":")))
        signing = f"{h}.{p}".encode()
        sig = key.sign(signing, padding.PKCS1v15(), hashes.SHA256()) if sign else b"x"
        return f"{h}.{p}.{b64u(sig)}"

    header = {"alg": "RS256", "cat": "cl_B7d4PD111AAA", "kid": KID, "typ": "JWT"}
    claims = {
        "azp": AZP,
        "exp": CLERK_NOW + 60,
        "fva": [0, -1],
        "iat": CLERK_NOW - 10,
        "iss": f"https://{LIVE_FAPI}",
        "nbf": CLERK_NOW - 20,
        "sid": "sess_2abcDEF",
        "sub": "user_2abcDEF",
        "v": 2,
        "o": {"id": "org_1", "rol": "admin", "slg": "acme"},
    }
    t = "clerk_jws"
    toks = {
        "session": token(header, claims),
        "session-dev": token(header, dict(claims, iss=f"https://{DEV_FAPI}")),
        "no-cat": token({"alg": "RS256", "kid": KID}, claims),
        "template": token(dict(header, cat="cl_B7d4PD222AAA"), claims),
        "m2m": token(header, dict(claims, sub="mch_123")),
        "alg-none": token(dict(header, alg="none"), claims, sign=False),
        "hs256": token(dict(header, alg="HS256"), claims, sign=False),
        "crit": token(dict(header, crit=["b64"]), claims),
        "typ-at": token(dict(header, typ="at+jwt"), claims),
        "expired": token(header, dict(claims, exp=CLERK_NOW - 100)),
        "future-iat": token(header, dict(claims, iat=CLERK_NOW + 100)),
        "float-exp": token(header, dict(claims, exp=CLERK_NOW + 60.5)),
        "no-sid": token(header, {k: v for k, v in claims.items() if k != "sid"}),
        "wrong-azp": token(header, dict(claims, azp="https://evil.example")),
    }
    for name, tok in toks.items():
        write(t, "token-" + name, tok)
    for name, pk in {"dev": DEV_PK, "live": LIVE_PK, "padded": "pk_live_Y2xlcmsuZXhhbXBsLmNvbSQ=",
                     "port": "pk_live_" + b64u(b"clerk.example.com:8443$"), "no-dollar": "pk_live_Y2xlcmsuZXhhbXBsZS5jb20",
                     "parts": "pk_live_Y2xl_cmsu", "newline": LIVE_PK + "\n"}.items():
        write(t, "pk-" + name, pk)
    write(t, "jwks", json.dumps({"keys": [jwk(key, KID)]}))
    write(t, "jwks-mixed", json.dumps({"keys": [
        {"kty": "oct", "k": "AAAA", "kid": "hmac"},
        jwk(other, "ins_other"),
        jwk(key, KID, use="enc"),
        jwk(key, KID),
        jwk(key, KID, alg="RS512"),
        {"kty": "RSA", "kid": "weak", "n": "AQAB", "e": "AQAB"},
    ]}))
    write(t, "jwks-empty", '{"keys":[]}')
    spki_pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    pkcs1_pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1).decode()
    write(t, "pem-spki", spki_pem)
    write(t, "pem-spki-escaped", spki_pem.replace("\n", "\\n"))
    write(t, "pem-pkcs1", pkcs1_pem)
    write(t, "pem-bare", "".join(l for l in spki_pem.splitlines() if not l.startswith("-----")))
    write(t, "der-spki", pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    write(t, "der-pkcs1", pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1))
    s = toks["session"]
    sd = toks["session-dev"]
    reqs = {
        "bearer": f"a=1\nBearer {s}",
        "bare-authorization": f"\n{s}",
        "basic": f"__session={s}; __client_uat={CLERK_NOW - 20}\nBasic dXNlcjpwYXNz",
        "cookie": f"__session={s}; __client_uat={CLERK_NOW - 20}",
        "cookie-uat-zero": f"__session={s}; __client_uat=0",
        "uat-only": f"__client_uat={CLERK_NOW}",
        "dev": f"__session={sd}; __client_uat={CLERK_NOW - 20}; __clerk_db_jwt=dvb_2abc",
        "suffixed": f"__session={s}; __client_uat=0; __session_{DEV_SUFFIX}={sd}; __client_uat_{DEV_SUFFIX}={CLERK_NOW}; __clerk_db_jwt_{DEV_SUFFIX}=dvb_x",
        "suffixed-live": f"__session={sd}; __client_uat=1; __session_{LIVE_SUFFIX}={s}; __client_uat_{LIVE_SUFFIX}=+{CLERK_NOW}abc",
    }
    for name, r in reqs.items():
        write(t, "request-" + name, r)


# ------------------------------------------------------------------------------------------
def import_line(fx):
    t = "import_line"
    full = {
        "id": "u_1", "email": "ada@example.com", "email_verified": True, "name": "Ada Lovelace",
        "first_name": "Ada", "last_name": "Lovelace", "image": "https://example.com/a.png",
        "username": "ada", "phone": "+15551234567",
        "password_digest": "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
        "password_hasher": "bcrypt", "created_at": "2021-04-01T12:00:00.123+02:00",
        "public_metadata": {"plan": "pro", "n": 1.5}, "private_metadata": {"stripe": "cus_1"},
    }
    line = lambda d: json.dumps(d, separators=(",", ":"), ensure_ascii=False)
    write(t, "full", line(full))
    minimal = {"id": "u_2", "email": "b@example.com"}
    write(t, "minimal", line(minimal))
    variants = {
        "numeric-id": {"id": 42, "email": "c@example.com"},
        "phone-only": {"id": "p", "phone": "+447700900123"},
        "username-only": {"id": "n", "username": "neo"},
        "verified-timestamp": dict(minimal, email_verified="2020-02-29T23:59:60Z"),
        "verified-number": dict(minimal, email_verified=1),
        "verified-null": dict(minimal, email_verified=None),
        "argon2": dict(minimal, password_digest="$argon2id$v=19$m=16,t=2,p=1$c2FsdA$aGFzaA", password_hasher="argon2id"),
        "scrypt": dict(minimal, password_digest="abc==", password_hasher="scrypt_firebase"),
        "bad-hasher": dict(minimal, password_digest="$fz$secretdigest", password_hasher="rot13"),
        "digest-only": dict(minimal, password_digest="$fz$secretdigest"),
        "unknown-field": dict(minimal, avatar="x"),
        "bad-email": dict(minimal, email="nope"),
        "bad-phone": dict(minimal, email=None, phone="555"),
        "bad-created": dict(minimal, created_at="2021-02-30T00:00:00Z"),
        "created-offset": dict(minimal, created_at="1970-01-01t00:00:00.999999-23:59"),
        "metadata-array": dict(minimal, public_metadata=[1]),
        "blank-strings": {"id": " x ", "email": "  ", "username": "u", "name": "   "},
        "control-id": {"id": "a\u0001b", "email": "d@example.com"},
        "long-id": {"id": "x" * 300, "email": "d@example.com"},
        "unicode": {"id": "üñí", "email": "ü@exämple.com", "name": "Zoë Ünal"},
    }
    for name, d in variants.items():
        write(t, name, line(d))
    write(t, "ndjson", "\n".join([line(full), "", line(minimal), "not json", line(minimal), "  \r",
                                  line(variants["numeric-id"]) + "\r", "[1]", "null", "{}"]) + "\n")
    write(t, "ndjson-crlf", "\r\n".join(line(dict(minimal, id=f"u{i}")) for i in range(5)))


# ------------------------------------------------------------------------------------------
def clerk_errors(fx):
    t = "clerk_errors"

    def seed(name, status, retry, body):
        data = struct.pack(">H", status)
        if retry is not None:
            data += retry.encode() + b"\n"
        data += body.encode() if isinstance(body, str) else body
        write(t, name, data)

    exists = {"errors": [{"message": "That email address is taken. Please try another.",
                          "long_message": "That email address is taken. Please try another.",
                          "code": "form_identifier_exists", "meta": {"param_name": "email_address"}}],
              "clerk_trace_id": "abc"}
    seed("identifier-exists", 422, None, json.dumps(exists))
    seed("rate-limited", 429, "7", '{"errors":[{"code":"too_many_requests","message":"Too many requests"}]}')
    seed("rate-limited-date", 429, "Wed, 21 Oct 2015 07:28:00 GMT", "")
    seed("unavailable", 503, " 30 ", "<html>Service Unavailable</html>")
    seed("not-found-html", 404, None, "<!doctype html><title>404</title>")
    seed("many", 400, "", json.dumps({"errors": [{"code": "a", "message": "m" * 600, "long_message": "",
                                                   "meta": {"name": "n", "param": 1}}, {"code": None}]}))
    seed("empty-errors", 400, None, '{"errors":[]}')
    seed("conflict", 409, "999999999999", '{"errors":[{"code":"conflict","meta":{"param":"x"}}]}')
    seed("unicode", 422, None, json.dumps({"errors": [{"code": "\u00e9" * 120, "message": "\u2603" * 520}]}, ensure_ascii=False))


# ------------------------------------------------------------------------------------------
def config(fx):
    t = "config"
    order = ["MIGRATION_PHASE", "ORIGIN_URL", "NEXTAUTH_SECRET", "NEXTAUTH_COOKIE_NAME", "CLERK_SECRET_KEY",
             "CLERK_PUBLISHABLE_KEY", "CLERK_JWT_KEY", "CLERK_AUTHORIZED_PARTIES", "CLERK_API_URL",
             "CLERK_SIGN_IN_URL", "CLERK_RATE_LIMIT", "CLERK_LEGACY_ID_CLAIM", "AUTH_BRIDGE_ADMIN_TOKEN",
             "AUTH_BRIDGE_ASSERTION_SECRET", "INJECT_CLIENT_SCRIPT", "NEXTAUTH_SIGN_IN_PATHS"]
    full = {
        "MIGRATION_PHASE": "migrate", "ORIGIN_URL": "https://App.Example.com:8443/base/",
        "NEXTAUTH_SECRET": "secret-one-0123456789, secret-two-0123456789",
        "NEXTAUTH_COOKIE_NAME": "custom.session-token", "CLERK_SECRET_KEY": "sk_test_0123456789abcdef",
        "CLERK_PUBLISHABLE_KEY": LIVE_PK, "CLERK_JWT_KEY": "-----BEGIN PUBLIC KEY-----\\nMIIB\\n-----END PUBLIC KEY-----",
        "CLERK_AUTHORIZED_PARTIES": "https://app.example.com/, https://admin.example.com",
        "CLERK_API_URL": "http://127.0.0.1:8787", "CLERK_SIGN_IN_URL": "https://accounts.example.com/sign-in",
        "CLERK_RATE_LIMIT": "1000/10s", "CLERK_LEGACY_ID_CLAIM": "legacy_id",
        "AUTH_BRIDGE_ADMIN_TOKEN": "admin-token-0123456789abcdef", "AUTH_BRIDGE_ASSERTION_SECRET": "assertion-secret-0123456789",
        "INJECT_CLIENT_SCRIPT": "true", "NEXTAUTH_SIGN_IN_PATHS": "/api/auth/signin, /login, nope",
    }
    write(t, "full", "\n".join(full[k] for k in order))
    variants = {
        "empty": {},
        "clerk-only": {"MIGRATION_PHASE": " clerk-only ", "CLERK_RATE_LIMIT": "600/1m"},
        "observe": {"MIGRATION_PHASE": "observe", "CLERK_RATE_LIMIT": "100/10"},
        "bad": {"MIGRATION_PHASE": "nope", "ORIGIN_URL": "ftp://x", "CLERK_SECRET_KEY": "not-a-key-but-secret",
                "CLERK_PUBLISHABLE_KEY": "pk_nope", "CLERK_JWT_KEY": "garbage", "CLERK_API_URL": "https://user@host",
                "CLERK_SIGN_IN_URL": "https://h:99999", "CLERK_RATE_LIMIT": "0/10s",
                "AUTH_BRIDGE_ADMIN_TOKEN": "shortsecret", "INJECT_CLIENT_SCRIPT": "maybe",
                "NEXTAUTH_COOKIE_NAME": "bad name;"},
        "ipv6": {"ORIGIN_URL": "http://[::1]:8080/", "CLERK_API_URL": "https://[2001:db8::1]", "CLERK_RATE_LIMIT": "36000/1h"},
        "rate-edge": {"CLERK_RATE_LIMIT": "4294967295/4294967295h"},
        "rate-per-second": {"CLERK_RATE_LIMIT": "+20/s"},
    }
    for name, v in variants.items():
        write(t, name, "\n".join(v.get(k, "") for k in order))
    for name, v in {"rate-1": "100/10s", "rate-2": " 20 / 1s ", "rate-3": "100/25s", "url-1": "https://a.b/c/d//",
                    "url-2": "http://x:0", "url-3": "https://:80/"}.items():
        write(t, name, v)


def main():
    if os.path.isdir(SEEDS):
        shutil.rmtree(SEEDS)
    fx = fixture()
    for gen in (cookies, nextauth_jwe, nextauth_claims, clerk, import_line, clerk_errors, config):
        gen(fx)
    for target in sorted(os.listdir(SEEDS)):
        print(target, len(os.listdir(os.path.join(SEEDS, target))))


if __name__ == "__main__":
    main()
