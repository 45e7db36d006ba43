// The worker's settings for a local run (scripts/dev): what the environment gives wins, the demo
// defaults fill the rest. Written as a dotenv file that `wrangler dev --env-file` reads.
//
//   node scripts/lib/dev-settings.mjs <out file> [<local Clerk info JSON file>]
//
// Prints one line per setting (secrets masked) so the user sees what the worker runs with.
import fs from 'node:fs';

/** Names the worker reads (README "Configuration"): taken from the environment as they are. */
const SETTING = /^(ORIGIN_URL|MIGRATION_PHASE|INJECT_CLIENT_SCRIPT|READINESS_[A-Z0-9_]+|NEXTAUTH_[A-Z0-9_]+|CLERK_[A-Z0-9_]+|AUTH_BRIDGE_[A-Z0-9_]+)$/;
/** Variables of the scripts and tests themselves, not of the worker. */
const TOOLING = /^AUTH_BRIDGE_(DEV_|SCREENSHOT)/;
/** Settings whose values are not printed. */
const SECRET = /SECRET|TOKEN|_KEY$/;
const PUBLIC = new Set(['CLERK_PUBLISHABLE_KEY', 'CLERK_JWT_KEY']);

export const DEMO_NEXTAUTH_SECRET = 'local-development-secret-change-me';
export const DEMO_ADMIN_TOKEN = 'local-admin-token-change-me';

/** Whether the environment names a Clerk instance of its own (then no local stand-in runs). */
export function usesOwnClerk(env) {
  return Boolean(env.CLERK_SECRET_KEY || env.CLERK_PUBLISHABLE_KEY);
}

/**
 * The settings: `env` values for every setting name it holds, else the demo defaults (`demoOrigin`,
 * and the local Clerk stand-in's `clerk` info when the environment has no Clerk keys).
 */
export function devSettings(env, { demoOrigin, clerk } = {}) {
  const settings = {
    NEXTAUTH_SECRET: DEMO_NEXTAUTH_SECRET,
    AUTH_BRIDGE_ADMIN_TOKEN: DEMO_ADMIN_TOKEN,
  };
  if (demoOrigin) settings.ORIGIN_URL = demoOrigin;
  if (clerk && !usesOwnClerk(env)) {
    settings.CLERK_API_URL = clerk.api_url;
    settings.CLERK_PUBLISHABLE_KEY = clerk.publishable_key;
    settings.CLERK_SECRET_KEY = clerk.secret_key;
  }
  // An Auth.js v5 app's secret is usually AUTH_SECRET; the worker reads it as NEXTAUTH_SECRET.
  if (env.AUTH_SECRET && !env.NEXTAUTH_SECRET) settings.NEXTAUTH_SECRET = env.AUTH_SECRET;
  for (const [name, value] of Object.entries(env)) {
    if (SETTING.test(name) && !TOOLING.test(name) && value !== undefined && value !== '') settings[name] = value;
  }
  return settings;
}

/**
 * One dotenv line. wrangler reads the file with dotenv, then expands `$NAME` with dotenv-expand:
 * double quotes keep spaces and `#`, `\n` carries a PEM's line breaks, `\$` keeps a dollar sign.
 */
export function dotenvLine(name, value) {
  const text = String(value);
  if (/["\\]/.test(text)) {
    throw new Error(`${name}: a value with a double quote or a backslash cannot be passed to wrangler dev`);
  }
  const escaped = text.replace(/\r?\n/g, '\\n').replace(/\$/g, '\\$');
  return `${name}="${escaped}"`;
}

/** `name = value` for the terminal, secrets shortened. */
export function describe(name, value) {
  const text = String(value);
  if (SECRET.test(name) && !PUBLIC.has(name)) {
    return `${name} = ${text.length > 12 ? `${text.slice(0, 8)}… (${text.length} characters)` : '(set)'}`;
  }
  return `${name} = ${text.includes('\n') ? `${text.split('\n')[0]}…` : text}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [out, clerkInfo] = process.argv.slice(2);
  const clerk = clerkInfo ? JSON.parse(fs.readFileSync(clerkInfo, 'utf8')) : undefined;
  const demoOrigin = process.env.DEMO_ORIGIN_URL || undefined;
  const settings = devSettings(process.env, { demoOrigin, clerk });
  const lines = Object.entries(settings).map(([k, v]) => dotenvLine(k, v));
  fs.writeFileSync(out, `# Written by scripts/dev on each start; settings come from the environment.\n${lines.join('\n')}\n`, {
    mode: 0o600,
  });
  for (const [k, v] of Object.entries(settings)) console.log(`    ${describe(k, v)}`);
}
