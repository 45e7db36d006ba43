#!/usr/bin/env node
// What the runtime's native crypto costs inside workerd, per operation, for the checks a fresh
// session token needs: Clerk's RS256 signature (node:crypto `verify`, WebCrypto `verify`, and
// WebCrypto `importKey` + `verify` as @clerk/backend does per token) and the NextAuth JWE's
// content decryption through node:crypto (AES-256-GCM; A256CBC-HS512 = HMAC-SHA-512 + AES-256-CBC).
//
//   node benches/native-crypto.mjs [--ops N] [--rounds N]
//
// One request per case runs N operations, each on its own input (distinct messages, signatures,
// IVs and ciphertexts); every answer is checked (the request fails unless all N verify or
// decrypt to the expected bytes). Figures are wall time per operation, less an empty loop over
// the same inputs, median over the rounds (cases in a new seeded order each round, after one
// warm-up round: benches/common.mjs `perOperation`). A tight
// loop keeps the code and data hot: in the hot-path bench (benches/hotpath.mjs), where requests
// of other workers come between, the same node:crypto decryption cost several times more than
// the worker's RustCrypto in wasm (see the README's Benchmark section).
import crypto from 'node:crypto';
import { Miniflare } from 'miniflare';
import { COMPATIBILITY_DATE, COMPATIBILITY_FLAGS } from '../tests/e2e/harness.mjs';
import { option, perOperation } from './common.mjs';

const args = process.argv.slice(2);
const N = option(args, 'ops', 'NATIVE_CRYPTO_OPS', 2000);
const ROUNDS = option(args, 'rounds', 'NATIVE_CRYPTO_ROUNDS', 7);

const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const b64 = (b) => Buffer.from(b).toString('base64');
const gcmKey = crypto.randomBytes(32);
const cbcKey = crypto.randomBytes(64);
const aad = Buffer.from('eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0');
const inputs = [];
for (let i = 0; i < N; i++) {
  const data = Buffer.from(`header.payload-${i}-${crypto.randomBytes(300).toString('base64url')}`);
  const plain = crypto.randomBytes(300);
  const iv = crypto.randomBytes(12);
  const gcm = crypto.createCipheriv('aes-256-gcm', gcmKey, iv);
  gcm.setAAD(aad);
  const gcmCt = Buffer.concat([gcm.update(plain), gcm.final()]);
  const iv16 = crypto.randomBytes(16);
  const cbc = crypto.createCipheriv('aes-256-cbc', cbcKey.subarray(32), iv16);
  const cbcCt = Buffer.concat([cbc.update(plain), cbc.final()]);
  const bits = Buffer.alloc(8);
  bits.writeBigUInt64BE(BigInt(aad.length) * 8n);
  const tag = crypto.createHmac('sha512', cbcKey.subarray(0, 32)).update(aad).update(iv16).update(cbcCt).update(bits).digest().subarray(0, 32);
  inputs.push([data, crypto.sign('sha256', data, privateKey), plain, iv, gcmCt, gcm.getAuthTag(), iv16, cbcCt, tag].map(b64));
}

const script = `
import nc from 'node:crypto';
const bytes = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const JWK = ${JSON.stringify(publicKey.export({ format: 'jwk' }))};
const GCM_KEY = bytes(${JSON.stringify(b64(gcmKey))});
const CBC_KEY = bytes(${JSON.stringify(b64(cbcKey))});
const AAD = bytes(${JSON.stringify(b64(aad))});
const INPUTS = ${JSON.stringify(inputs)}.map((row) => row.map(bytes));
const ALG = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const joined = (a, b) => { const o = new Uint8Array(a.length + b.length); o.set(a); o.set(b, a.length); return o; };
let nodeKey, subtleKey;
const CASES = {
  baseline: async ([data]) => data.length > 0,
  'rs256 node:crypto verify': async ([data, sig]) => nc.verify('sha256', data, nodeKey, sig),
  'rs256 WebCrypto verify': async ([data, sig]) => crypto.subtle.verify('RSASSA-PKCS1-v1_5', subtleKey, sig, data),
  'rs256 WebCrypto importKey + verify': async ([data, sig]) =>
    crypto.subtle.verify('RSASSA-PKCS1-v1_5', await crypto.subtle.importKey('jwk', JWK, ALG, false, ['verify']), sig, data),
  'aes-256-gcm open, node:crypto': async ([, , plain, iv, ct, tag]) => {
    const d = nc.createDecipheriv('aes-256-gcm', GCM_KEY, iv, { authTagLength: 16 });
    d.setAAD(AAD);
    d.setAuthTag(tag);
    return same(joined(d.update(ct), d.final()), plain);
  },
  'a256cbc-hs512 open, node:crypto': async ([, , plain, , , , iv, ct, tag]) => {
    const bits = new Uint8Array(8);
    new DataView(bits.buffer).setBigUint64(0, BigInt(AAD.length) * 8n);
    const mac = nc.createHmac('sha512', CBC_KEY.subarray(0, 32)).update(AAD).update(iv).update(ct).update(bits).digest();
    if (!nc.timingSafeEqual(new Uint8Array(mac).subarray(0, 32), tag)) return false;
    const d = nc.createDecipheriv('aes-256-cbc', CBC_KEY.subarray(32), iv);
    return same(joined(d.update(ct), d.final()), plain);
  },
};
export default {
  async fetch(request) {
    nodeKey ??= nc.createPublicKey({ key: JWK, format: 'jwk' });
    subtleKey ??= await crypto.subtle.importKey('jwk', JWK, ALG, false, ['verify']);
    const run = CASES[decodeURIComponent(new URL(request.url).pathname.slice(1))];
    let ok = 0;
    for (const input of INPUTS) if (await run(input)) ok++;
    return new Response(String(ok));
  },
};`;

const mf = new Miniflare({ modules: true, script, compatibilityDate: COMPATIBILITY_DATE, compatibilityFlags: COMPATIBILITY_FLAGS });
try {
  await mf.ready;
  const names = ['baseline', 'rs256 node:crypto verify', 'rs256 WebCrypto verify', 'rs256 WebCrypto importKey + verify', 'aes-256-gcm open, node:crypto', 'a256cbc-hs512 open, node:crypto'];
  const { baseline, cost } = await perOperation(mf, names, { ops: N, rounds: ROUNDS, baseline: 'baseline' });
  console.log(`native crypto in workerd: ${N} distinct inputs per case, ${ROUNDS} rounds, us per operation (median, less the empty loop ${baseline.toFixed(2)} us)`);
  for (const [name, us] of Object.entries(cost)) console.log(`  ${name.padEnd(40)} ${us.toFixed(1)}`);
} finally {
  await mf.dispose();
}
