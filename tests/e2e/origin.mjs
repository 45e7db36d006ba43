// A test origin: echoes what it received and serves the awkward responses a proxy must keep intact.
import { createHash } from 'node:crypto';
import { listen } from './harness.mjs';

export const BIG_SIZE = 5 * 1024 * 1024;
/** The one database-session token the origin's `/api/auth/session` knows (a UUID, as next-auth makes them). */
export const DB_SESSION_VALID = '0f8fad5b-d9cb-469f-a165-70867728950e';

/** Deterministic bytes, so the receiver can check every byte of a large body. */
export function pattern(offset, length) {
  const buf = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) buf[i] = (offset + i) * 31 % 251;
  return buf;
}

export function startOrigin() {
  const received = [];
  return listen(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    const seen = {
      method: req.method,
      url: req.url,
      headers: req.headers,
      body: body.toString('utf8'),
      bodyLength: body.length,
      bodySha256: createHash('sha256').update(body).digest('hex'),
    };
    received.push(seen);
    const u = new URL(req.url, 'http://origin');
    switch (u.pathname) {
      case '/big': {
        // 5 MiB in 64 KiB writes with backpressure: a streamed response, no content-length.
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        for (let off = 0; off < BIG_SIZE; off += 65536) {
          if (!res.write(pattern(off, Math.min(65536, BIG_SIZE - off)))) {
            await new Promise((r) => res.once('drain', r));
          }
        }
        res.end();
        return;
      }
      case '/slow-stream': {
        // Two chunks a while apart: the first must reach the client before the second is sent.
        // (Server-sent events: the local runtime gzips text/plain and text/html for clients that
        // accept it, and its compressor holds small chunks back.)
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('first\n');
        await new Promise((r) => setTimeout(r, Number(u.searchParams.get('ms') ?? 700)));
        res.end('second\n');
        return;
      }
      case '/redirect':
        res.writeHead(302, { location: '/elsewhere', 'set-cookie': 'r=1; Path=/' });
        res.end();
        return;
      case '/cookies':
        res.writeHead(200, [
          ['set-cookie', 'a=1; Path=/; HttpOnly'],
          ['set-cookie', 'b=2; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT'],
          ['set-cookie', 'c=3; Path=/; SameSite=Lax; Secure'],
          ['content-type', 'text/plain'],
        ]);
        res.end('cookies');
        return;
      case '/api/auth/session': {
        // NextAuth's session endpoint for database sessions: the token is opaque to the worker.
        const cookie = req.headers.cookie ?? '';
        const valid = new RegExp(`(?:^|; )(?:__Secure-)?(?:next-auth|authjs)\\.session-token=${DB_SESSION_VALID}(?:;|$)`).test(cookie);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(valid ? { user: { id: 'db-user-1', email: 'db@example.com', name: 'Dee Bee' }, expires: '2099-01-01T00:00:00.000Z' } : {}));
        return;
      }
      case '/status':
        res.writeHead(Number(u.searchParams.get('code') ?? 200), { 'x-origin': 'yes' });
        res.end(`status ${u.searchParams.get('code')}`);
        return;
      default:
        res.writeHead(200, { 'content-type': 'application/json', 'x-origin': 'yes' });
        res.end(JSON.stringify(seen));
    }
  }).then((server) => ({ ...server, received }));
}
