// Runs the built worker (build/index.js + build/index_bg.wasm) in Miniflare 4 — real workerd —
// with local KV and Queue bindings, as wrangler.toml declares them.
import path from 'node:path';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BUILD = path.join(ROOT, 'build');

export const COMPATIBILITY_DATE = '2026-04-01';
/** As wrangler.toml: `nodejs_compat` lets Clerk signatures be checked synchronously. */
export const COMPATIBILITY_FLAGS = ['nodejs_compat'];

/** The worker's module list, as Miniflare needs it. */
export function bridgeModules() {
  return {
    modulesRoot: BUILD,
    modules: [
      { type: 'ESModule', path: path.join(BUILD, 'index.js') },
      { type: 'CompiledWasm', path: path.join(BUILD, 'index_bg.wasm') },
    ],
  };
}

/** Options for the bridge worker with the bindings from wrangler.toml. */
export function bridgeWorker(vars = {}, extra = {}) {
  return {
    name: 'auth-bridge',
    ...bridgeModules(),
    compatibilityDate: COMPATIBILITY_DATE,
    compatibilityFlags: COMPATIBILITY_FLAGS,
    bindings: { MIGRATION_PHASE: 'migrate', ...vars },
    kvNamespaces: ['AUTH_BRIDGE_KV'],
    queueProducers: { IMPORT_QUEUE: { queueName: 'auth-bridge-import' } },
    queueConsumers: {
      // As wrangler.toml: one page per invocation (Miniflare runs one batch at a time, so its
      // lone consumer spends the whole budget).
      'auth-bridge-import': {
        maxBatchSize: 1,
        maxBatchTimeout: 1,
        maxRetries: 3,
        deadLetterQueue: 'auth-bridge-import-dlq',
      },
      'auth-bridge-import-dlq': { maxBatchSize: 10, maxBatchTimeout: 1 },
    },
    ...extra,
  };
}

/**
 * Starts Miniflare with `workers` on an ephemeral port of 127.0.0.1 (the first is the bridge);
 * `options` go to Miniflare as well (`upstream`, `kvPersist`, …). Returns its base URL, the
 * instance, `fetch(path, init)` (redirects not followed), `scheduled(time)` (the cron trigger) and
 * `close()`. With `captureLogs`, everything the runtime prints (the worker's console.log/error
 * included) is kept in `logs` instead of reaching the terminal.
 */
export async function startWorkers(workers, { log = false, captureLogs = false, ...options } = {}) {
  const logs = [];
  const capture = captureLogs
    ? {
        handleRuntimeStdio(stdout, stderr) {
          stdout.on('data', (d) => logs.push(d.toString()));
          stderr.on('data', (d) => logs.push(d.toString()));
        },
      }
    : {};
  const mf = new Miniflare({ workers, port: 0, host: '127.0.0.1', verbose: log, ...capture, ...options });
  const url = (await mf.ready).toString().replace(/\/$/, '');
  return {
    mf,
    url,
    fetch: (p, init = {}) => fetch(url + p, { redirect: 'manual', ...init }),
    scheduled: async (scheduledTime = Date.now()) => {
      const worker = await mf.getWorker(workers[0].name);
      return worker.scheduled({ cron: '* * * * *', scheduledTime: new Date(scheduledTime) });
    },
    logs,
    close: () => mf.dispose(),
  };
}

/**
 * Starts the worker. `vars` become [vars]/secrets; returns what `startWorkers` does, plus `kv()`
 * (its KV namespace). Close it with `await w.close()`.
 */
export async function startBridge(vars = {}, { log = false, extraWorkers = [], captureLogs = false } = {}) {
  const bridge = await startWorkers([bridgeWorker(vars), ...extraWorkers], { log, captureLogs });
  return { ...bridge, kv: () => bridge.mf.getKVNamespace('AUTH_BRIDGE_KV') };
}

/**
 * Starts a Node HTTP server on 127.0.0.1 with the given handler; resolves to {url, port, server,
 * close}. `options` go to `http.createServer` (e.g. `maxHeaderSize`), plus `keepAliveTimeout`.
 */
export function listen(handler, { keepAliveTimeout, ...options } = {}) {
  return new Promise((resolve) => {
    const server = http.createServer(options, handler);
    if (keepAliveTimeout !== undefined) server.keepAliveTimeout = keepAliveTimeout;
    const sockets = new Set();
    server.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({
        url: `http://127.0.0.1:${port}`,
        port,
        server,
        close: () =>
          new Promise((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}

/** A free TCP port on 127.0.0.1 that nothing listens on (for "origin down"). */
export async function deadPort() {
  const s = await listen(() => {});
  const { port } = s;
  await s.close();
  return port;
}
