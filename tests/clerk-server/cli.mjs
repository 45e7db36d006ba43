#!/usr/bin/env node
// Runs the local Clerk Backend API server standalone.
//
//   node tests/clerk-server/cli.mjs --port 8788 [--rate 100/10s | --no-rate-limit]
//        [--fault-rate 0.2] [--fault-path '/v1/users*'] [--seed 1]
//        [--frontend-api host | --publishable-key pk_test_…] [--secret-key sk_test_…]
//        [--private-key-file key.pem] [--host 127.0.0.1] [--json]
//
// Prints the API URL, publishable key, secret key and the PEM public key (or one JSON object
// with --json), then serves until SIGINT/SIGTERM.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { startClerkServer, parseRate } from './server.mjs';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8788' },
    host: { type: 'string', default: '127.0.0.1' },
    rate: { type: 'string', default: '100/10s' },
    'no-rate-limit': { type: 'boolean', default: false },
    'fault-rate': { type: 'string' },
    'fault-path': { type: 'string', default: '/v1/*' },
    seed: { type: 'string', default: '1' },
    'frontend-api': { type: 'string' },
    'publishable-key': { type: 'string' },
    'secret-key': { type: 'string' },
    'private-key-file': { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  console.log(fs.readFileSync(new URL(import.meta.url), 'utf8').split('\n').slice(1, 10).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
  process.exit(0);
}

const faultRate = values['fault-rate'] !== undefined ? Number(values['fault-rate']) : 0;
if (!(faultRate >= 0 && faultRate <= 1)) {
  console.error('--fault-rate must be between 0 and 1');
  process.exit(2);
}

const server = await startClerkServer({
  port: Number(values.port),
  host: values.host,
  rateLimit: values['no-rate-limit'] ? false : parseRate(values.rate),
  faults: {
    seed: Number(values.seed),
    rules: faultRate > 0 ? [{ path: values['fault-path'], probability: faultRate, actions: [500, 502, 503] }] : [],
  },
  frontendApi: values['frontend-api'],
  publishableKey: values['publishable-key'],
  secretKey: values['secret-key'],
  privateKey: values['private-key-file'] ? fs.readFileSync(values['private-key-file'], 'utf8') : undefined,
});

if (values.json) {
  console.log(JSON.stringify(server.info()));
} else {
  const rl = server.rateLimit;
  console.log(`Clerk Backend API (local) listening on ${server.url}`);
  console.log(`CLERK_API_URL=${server.url}`);
  console.log(`CLERK_PUBLISHABLE_KEY=${server.publishableKey}`);
  console.log(`CLERK_SECRET_KEY=${server.secretKey}`);
  console.log(`frontend API: ${server.frontendApi} (session token iss ${server.issuer}), kid ${server.kid}`);
  console.log(`rate limit: ${rl.enabled ? `${rl.limit}/${rl.windowMs}ms` : 'off'}; fault rate: ${faultRate}`);
  console.log(`control routes: ${server.url}/__control/ (info, users, requests, stats, session-token, handshake, faults, rate-limit, reset)`);
  console.log('CLERK_JWT_KEY (PEM public key):');
  process.stdout.write(server.publicKeyPem);
}

const stop = async () => {
  await server.close();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
