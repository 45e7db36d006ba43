// import-users: uploads an import NDJSON file to a running auth-bridge worker
// (POST /__auth-bridge/admin/imports) in chunks, then optionally watches
// GET /__auth-bridge/admin/status until nothing is pending.
import fs from 'node:fs';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

export const USAGE = `usage: import-users --url <worker base url> [options] <file.ndjson | ->

  --url <url>              worker base URL, e.g. https://app.example.com
  --token <token>          admin token (default: $AUTH_BRIDGE_ADMIN_TOKEN)
  --chunk-lines <n>        records per request (default 5000)
  --chunk-bytes <n>        also cut a chunk before it exceeds this size (default 8388608)
  --from-line <n>          start at this line of the file (resume after a failure)
  --max-retries <n>        attempts per chunk on 429 / 5xx / network errors (default 10)
  --watch                  after the upload, follow /admin/status until pending is 0
  --watch-interval <s>     seconds between status polls (default 5)
  -h, --help

Exit status: 0 all records accepted, 3 some lines rejected, 1 error, 2 usage.
`;

export class UsageError extends Error {}
class FatalError extends Error {}

const IMPORTS_PATH = '/__auth-bridge/admin/imports';
const STATUS_PATH = '/__auth-bridge/admin/status';
const MAX_BACKOFF_S = 60;

function posInt(value, flag, { min = 1 } = {}) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`${flag} must be an integer ≥ ${min}`);
  return n;
}

export function parseImportArgs(argv, env = process.env) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        url: { type: 'string' },
        token: { type: 'string' },
        'chunk-lines': { type: 'string', default: '5000' },
        'chunk-bytes': { type: 'string', default: String(8 * 1024 * 1024) },
        'from-line': { type: 'string', default: '1' },
        'max-retries': { type: 'string', default: '10' },
        watch: { type: 'boolean', default: false },
        'watch-interval': { type: 'string', default: '5' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError(err.message);
  }
  const v = parsed.values;
  if (v.help) return { help: true };
  if (!v.url) throw new UsageError('--url is required');
  let base;
  try {
    base = new URL(v.url);
  } catch {
    throw new UsageError(`--url is not a URL: ${v.url}`);
  }
  if (!/^https?:$/.test(base.protocol)) throw new UsageError('--url must be http(s)');
  const token = v.token ?? env.AUTH_BRIDGE_ADMIN_TOKEN;
  if (!token) throw new UsageError('an admin token is required: --token or AUTH_BRIDGE_ADMIN_TOKEN');
  if (parsed.positionals.length !== 1) throw new UsageError('exactly one NDJSON file (or -) is expected');
  const interval = Number(v['watch-interval']);
  if (!(interval > 0)) throw new UsageError('--watch-interval must be a positive number of seconds');
  return {
    base: v.url.replace(/\/+$/, ''),
    token,
    file: parsed.positionals[0],
    chunkLines: posInt(v['chunk-lines'], '--chunk-lines'),
    chunkBytes: posInt(v['chunk-bytes'], '--chunk-bytes', { min: 1024 }),
    fromLine: posInt(v['from-line'], '--from-line'),
    maxRetries: posInt(v['max-retries'], '--max-retries', { min: 0 }),
    watch: v.watch,
    watchInterval: interval,
  };
}

/** Retry-After as seconds: delta-seconds or an HTTP date; null if absent/unreadable. */
export function retryAfterSeconds(header, now = Date.now()) {
  if (header === null || header === undefined || header === '') return null;
  const s = String(header).trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
  const t = Date.parse(s);
  if (Number.isNaN(t)) return null;
  return Math.max(0, (t - now) / 1000);
}

const backoff = (attempt) => Math.min(MAX_BACKOFF_S, 2 ** attempt);

function snippet(text) {
  const t = String(text ?? '').replace(/\s+/g, ' ').trim();
  return t.length > 300 ? `${t.slice(0, 300)}…` : t;
}

// -------------------------------------------------------------- progress

class Progress {
  constructor(stream, totalBytes) {
    this.stream = stream;
    this.tty = Boolean(stream.isTTY);
    this.total = totalBytes;
    this.lastDraw = 0;
  }
  bar(fraction, width = 30) {
    const filled = Math.round(Math.max(0, Math.min(1, fraction)) * width);
    return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
  }
  update(state, force = false) {
    if (!this.tty) return;
    const now = Date.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const head = this.total
      ? `${this.bar(state.bytesRead / this.total)} ${Math.floor((100 * state.bytesRead) / this.total)
        .toString()
        .padStart(3)}%`
      : `${state.linesRead} lines read`;
    const width = this.stream.columns || 100;
    const line =
      `${head}  ${state.sent} sent, ${state.accepted} accepted, ${state.rejected.length} rejected` +
      (state.waiting ? `  (${state.waiting})` : '');
    this.stream.write(`\r${line.slice(0, width - 1).padEnd(Math.min(width - 1, this.prevLen ?? 0))}`);
    this.prevLen = Math.min(width - 1, line.length);
  }
  note(text) {
    // A message that must stay on screen: finish the bar line first on a TTY.
    if (this.tty && this.prevLen) this.stream.write('\n');
    this.prevLen = 0;
    this.stream.write(`${text}\n`);
  }
  done(state) {
    if (!this.tty) return;
    this.update(state, true);
    this.stream.write('\n');
    this.prevLen = 0;
  }
}

// -------------------------------------------------------------- upload

async function postChunk(opts, chunk, state, progress, fetchImpl) {
  const body = chunk.lines.join('\n') + '\n';
  const range = `lines ${chunk.fileLines[0]}-${chunk.fileLines[chunk.fileLines.length - 1]}`;
  for (let attempt = 0; ; attempt++) {
    let res;
    let waitS;
    let why;
    try {
      res = await fetchImpl(opts.base + IMPORTS_PATH, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${opts.token}`,
          'content-type': 'application/x-ndjson',
        },
        body,
      });
    } catch (err) {
      why = `network error (${err.cause?.code ?? err.message})`;
      waitS = backoff(attempt);
    }
    if (res) {
      const text = await res.text();
      if (res.status === 200 || res.status === 202) {
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          throw new FatalError(`chunk ${chunk.index} (${range}): answer is not JSON: ${snippet(text)}`);
        }
        return json;
      }
      if (res.status === 429 || res.status === 503 || res.status === 500 || res.status === 502 || res.status === 504) {
        const ra = retryAfterSeconds(res.headers.get('retry-after'));
        waitS = ra ?? backoff(attempt);
        why = `HTTP ${res.status}`;
      } else if (res.status === 401 || res.status === 403) {
        throw new FatalError(`HTTP ${res.status}: the admin token was refused`);
      } else if (res.status === 404) {
        throw new FatalError(
          'HTTP 404: no admin API at this URL (is AUTH_BRIDGE_ADMIN_TOKEN set on the worker, and --url right?)',
        );
      } else if (res.status === 413) {
        throw new FatalError(`HTTP 413: chunk ${chunk.index} is too large; use a smaller --chunk-lines / --chunk-bytes`);
      } else {
        throw new FatalError(`chunk ${chunk.index} (${range}): HTTP ${res.status}: ${snippet(text)}`);
      }
    }
    if (attempt >= opts.maxRetries) {
      throw new FatalError(`chunk ${chunk.index} (${range}): ${why}, giving up after ${attempt + 1} attempts`);
    }
    const msg = `chunk ${chunk.index} (${range}): ${why}, retrying in ${waitS}s`;
    if (progress.tty) {
      state.waiting = msg;
      progress.update(state, true);
    } else {
      progress.note(msg);
    }
    await sleep(waitS * 1000);
    state.waiting = null;
  }
}

function applyAnswer(json, chunk, state) {
  const accepted = Number(json.accepted);
  if (!Number.isFinite(accepted)) {
    throw new FatalError(`chunk ${chunk.index}: answer has no "accepted" count`);
  }
  state.accepted += accepted;
  if (json.import_id !== undefined && json.import_id !== null) state.importIds.push(String(json.import_id));
  const rejected = Array.isArray(json.rejected) ? json.rejected : [];
  for (const r of rejected) {
    const n = Number(r.line);
    const fileLine = Number.isInteger(n) && n >= 1 && n <= chunk.fileLines.length ? chunk.fileLines[n - 1] : null;
    state.rejected.push({
      line: fileLine,
      chunkLine: n,
      chunk: chunk.index,
      error: typeof r.error === 'string' ? r.error : JSON.stringify(r.error),
    });
  }
  return rejected.length;
}

async function* readLines(file) {
  const input = file === '-' ? process.stdin : fs.createReadStream(file);
  const rl = readline.createInterface({ input, crlfDelay: Infinity });
  try {
    for await (const line of rl) yield line;
  } finally {
    rl.close();
  }
}

export async function runImport(opts, { stdout = process.stdout, stderr = process.stderr, fetchImpl = fetch } = {}) {
  let totalBytes = 0;
  if (opts.file !== '-') {
    try {
      totalBytes = fs.statSync(opts.file).size;
    } catch (err) {
      throw new FatalError(`cannot read ${opts.file}: ${err.code ?? err.message}`);
    }
  }
  const progress = new Progress(stderr, totalBytes);
  const state = {
    linesRead: 0,
    bytesRead: 0,
    sent: 0,
    blank: 0,
    accepted: 0,
    rejected: [],
    importIds: [],
    waiting: null,
    mismatches: 0,
    lastDoneLine: opts.fromLine - 1,
  };
  let chunk = null;
  let chunkIndex = 0;
  const newChunk = () => ({ index: ++chunkIndex, lines: [], fileLines: [], bytes: 0 });

  const flush = async () => {
    if (!chunk || chunk.lines.length === 0) return;
    const answer = await postChunk(opts, chunk, state, progress, fetchImpl);
    const nRejected = applyAnswer(answer, chunk, state);
    const answered = Number(answer.accepted) + nRejected;
    if (answered !== chunk.lines.length) {
      state.mismatches++;
      progress.note(
        `warning: chunk ${chunk.index}: ${chunk.lines.length} lines sent but the answer counts` +
          ` ${Number(answer.accepted)} accepted + ${nRejected} rejected`,
      );
    }
    state.sent += chunk.lines.length;
    state.lastDoneLine = chunk.lastLine;
    if (!progress.tty) {
      progress.note(
        `chunk ${chunk.index} (lines ${chunk.fileLines[0]}-${chunk.fileLines[chunk.fileLines.length - 1]}):` +
          ` ${Number(answer.accepted)} accepted, ${nRejected} rejected`,
      );
    }
    progress.update(state, true);
    chunk = null;
  };

  let lineNo = 0;
  let failure = null;
  try {
    for await (const line of readLines(opts.file)) {
      lineNo++;
      state.linesRead = lineNo;
      state.bytesRead += Buffer.byteLength(line) + 1;
      if (lineNo < opts.fromLine) continue;
      if (line.trim() === '') {
        state.blank++;
        if (chunk) chunk.lastLine = lineNo;
        else state.lastDoneLine = lineNo;
        continue;
      }
      const size = Buffer.byteLength(line) + 1;
      if (chunk && chunk.lines.length > 0 && chunk.bytes + size > opts.chunkBytes) await flush();
      chunk ??= newChunk();
      chunk.lines.push(line);
      chunk.fileLines.push(lineNo);
      chunk.bytes += size;
      chunk.lastLine = lineNo;
      if (chunk.lines.length >= opts.chunkLines) await flush();
      else progress.update(state);
    }
    await flush();
  } catch (err) {
    failure = err;
  }
  progress.done(state);

  const out = [];
  out.push(`accepted: ${state.accepted}`);
  out.push(`rejected: ${state.rejected.length}`);
  if (state.blank) out.push(`blank lines ignored: ${state.blank}`);
  for (const r of state.rejected) {
    const where = r.line === null ? `line ? (chunk ${r.chunk}, line ${r.chunkLine})` : `line ${r.line}`;
    out.push(`  ${where}: ${r.error}`);
  }
  if (state.importIds.length) out.push(`import ids: ${state.importIds.join(', ')}`);
  stdout.write(out.join('\n') + '\n');

  if (failure) {
    const next = state.lastDoneLine + 1;
    const resume = ` (lines before ${next} are done; resume with --from-line ${next})`;
    throw new FatalError(`${failure.message}${resume}`);
  }
  if (opts.watch) await watchStatus(opts, { stderr, fetchImpl });
  return { accepted: state.accepted, rejected: state.rejected };
}

// -------------------------------------------------------------- watch

function countsOf(status) {
  const c = status && typeof status.counts === 'object' && status.counts !== null ? status.counts : status ?? {};
  return {
    pending: c.pending,
    migrated: c.migrated,
    failed: c.failed,
    skipped: c.skipped,
  };
}

function show(value) {
  if (value === undefined || value === null) return '?';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

export function formatStatus(status) {
  const c = countsOf(status);
  const parts = [];
  if (status?.phase) parts.push(`phase ${status.phase}`);
  parts.push(`pending ${show(c.pending)}`, `migrated ${show(c.migrated)}`, `failed ${show(c.failed)}`, `skipped ${show(c.skipped)}`);
  if (status?.rate !== undefined) parts.push(`rate ${show(status.rate)}`);
  const eta = status?.eta ?? status?.eta_seconds;
  if (eta !== undefined && eta !== null) parts.push(`eta ${show(eta)}`);
  return parts.join(', ');
}

export async function watchStatus(opts, { stderr = process.stderr, fetchImpl = fetch } = {}) {
  const tty = Boolean(stderr.isTTY);
  let errors = 0;
  let last = '';
  for (;;) {
    let waitS = opts.watchInterval;
    try {
      const res = await fetchImpl(opts.base + STATUS_PATH, {
        headers: { authorization: `Bearer ${opts.token}`, accept: 'application/json' },
      });
      const text = await res.text();
      if (res.status === 200) {
        errors = 0;
        const status = JSON.parse(text);
        const line = formatStatus(status);
        if (tty) stderr.write(`\r${line}\x1b[K`);
        else if (line !== last) stderr.write(`${line}\n`);
        last = line;
        const pending = Number(countsOf(status).pending);
        if (pending === 0) {
          if (tty) stderr.write('\n');
          return status;
        }
      } else if (res.status === 429 || res.status === 503) {
        waitS = retryAfterSeconds(res.headers.get('retry-after')) ?? waitS;
      } else if (res.status === 401 || res.status === 403 || res.status === 404) {
        throw new FatalError(`status: HTTP ${res.status}`);
      } else {
        errors++;
        stderr.write(`${tty ? '\n' : ''}status: HTTP ${res.status}: ${snippet(text)}\n`);
      }
    } catch (err) {
      if (err instanceof FatalError) throw err;
      errors++;
      stderr.write(`${tty ? '\n' : ''}status: ${err.message}\n`);
    }
    if (errors >= 5) throw new FatalError('status: giving up after 5 consecutive errors');
    await sleep(waitS * 1000);
  }
}

export async function main(argv = process.argv.slice(2)) {
  let opts;
  try {
    opts = parseImportArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`import-users: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    throw err;
  }
  if (opts.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    const { rejected } = await runImport(opts);
    return rejected.length ? 3 : 0;
  } catch (err) {
    process.stderr.write(`import-users: error: ${err.message}\n`);
    return 1;
  }
}
