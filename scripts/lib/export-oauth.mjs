// export-oauth: what the accounts table tells the export. NextAuth leaves
// `emailVerified` null when a user signs up through OAuth, so without this
// every OAuth user would reach Clerk with an unverified address.
//
// - `--trust-providers` marks a user's email verified when the user holds an
//   account of a provider the operator trusts to verify addresses, unless the
//   account itself says otherwise: an account email (an `email` column the
//   application added, or the `email` claim of the OpenID Connect id_token the
//   adapters store) that differs from the user's, or `email_verified: false`
//   in that id_token. An account that stores no email at all (plain OAuth 2,
//   e.g. GitHub) vouches on the provider alone, but not for a user who also
//   has a password: that user may have typed the address in and linked the
//   provider later.
// - `--report` counts providers, users who sign in only through OAuth and
//   account emails that differ from the user's, saying which providers'
//   accounts carry an email at all.
//
// A verified import record is what lets the worker link a legacy user to an
// existing Clerk user by email (SPEC.md, "Guarantees"), so this errs towards
// leaving an address unverified.

const OAUTH_TYPES = new Set(['oauth', 'oidc']);
const SHOWN = 20;
const MAX_COMBINATIONS = 50;

export const PROVIDER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * `{email, verified}` read from an id_token's claims (the payload is decoded,
 * not verified: it was stored by the application, which checked it at sign-in).
 * Null when the token is absent or unreadable.
 */
export function idTokenEmail(token) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  let claims;
  try {
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return null;
  }
  if (!claims || typeof claims !== 'object' || Array.isArray(claims)) return null;
  const email = typeof claims.email === 'string' && claims.email.trim() !== '' ? claims.email.trim() : null;
  const v = claims.email_verified;
  const verified = v === true || v === 'true' ? true : v === false || v === 'false' ? false : undefined;
  if (email === null && verified === undefined) return null;
  return { email, verified };
}

/** A row's accounts list ([[provider, type, id_token, email], …] from SQL) as objects. */
export function accountsOf(row) {
  const list = row.accounts;
  if (!Array.isArray(list)) return [];
  return list
    .filter((a) => Array.isArray(a) && a[0] !== null && a[0] !== undefined)
    .map(([provider, type, idToken, email]) => {
      const claims = idTokenEmail(idToken);
      const column = typeof email === 'string' && email.trim() !== '' ? email.trim() : null;
      return {
        provider: String(provider),
        // No type column (a custom table): every account is taken for OAuth.
        oauth: type === null || type === undefined ? true : OAUTH_TYPES.has(String(type)),
        email: column ?? claims?.email ?? null,
        emailFrom: column ? 'column' : claims?.email ? 'id_token' : null,
        emailVerifiedClaim: claims?.verified,
      };
    });
}

const sameEmail = (a, b) => a.trim().toLowerCase() === b.trim().toLowerCase();

/**
 * Checks --trust-providers against the providers found in the accounts
 * table; throws on a name no account uses or a provider that is not OAuth.
 */
export function checkTrustedProviders(trusted, providers, table) {
  const inUse = [...new Set(providers.map((p) => p.provider))];
  const listed = inUse.length ? inUse.join(', ') : 'none';
  for (const name of trusted) {
    const rows = providers.filter((p) => p.provider === name);
    if (rows.length === 0) {
      const near = inUse.find((p) => p.toLowerCase() === name.toLowerCase());
      throw new Error(
        `--trust-providers: no account of provider "${name}" in "${table}"` +
          (near ? ` (did you mean "${near}"?)` : '') +
          `; providers in use: ${listed}`,
      );
    }
    if (!rows.some((p) => p.type === null || OAUTH_TYPES.has(p.type))) {
      throw new Error(
        `--trust-providers: "${name}" is not an OAuth provider (its accounts are of type ${rows.map((p) => p.type).join(', ')})`,
      );
    }
  }
}

/**
 * Walks the exported users once: decides trust for each record and keeps
 * the counts of the report (memory bounded by the number of providers).
 */
export class OAuthAccounts {
  constructor({ trusted = [], passwordKnown = false, accounts, providers }) {
    this.trusted = new Set(trusted);
    this.passwordKnown = passwordKnown;
    this.accounts = accounts;
    this.providers = providers;
    this.users = 0;
    this.oauthOnly = 0;
    this.oauthOnlyBy = new Map();
    this.evidence = new Map(); // provider -> {accounts, column, idToken}
    this.differs = { count: 0, shown: [] };
    this.trust = {
      byEmail: 0,
      byProvider: 0,
      alreadyVerified: 0,
      differs: 0,
      unverifiedClaim: 0,
      passwordNoEvidence: 0,
      stillUnverified: 0,
    };
  }

  /**
   * Looks at one user (the raw row and the record built from it, or null when
   * skipped); sets `record.email_verified = true` when a trusted provider
   * vouches for the address. Returns the provider that did, or null.
   */
  visit(row, record) {
    this.users++;
    const accounts = accountsOf(row);
    const oauth = accounts.filter((a) => a.oauth);
    const hasPassword = row.passwordDigest !== null && row.passwordDigest !== undefined && String(row.passwordDigest).trim() !== '';
    for (const a of oauth) {
      const e = this.evidence.get(a.provider) ?? { accounts: 0, column: 0, idToken: 0 };
      e.accounts++;
      if (a.emailFrom === 'column') e.column++;
      if (a.emailFrom === 'id_token') e.idToken++;
      this.evidence.set(a.provider, e);
    }
    if (oauth.length > 0 && oauth.length === accounts.length && !hasPassword) {
      this.oauthOnly++;
      let key = [...new Set(oauth.map((a) => a.provider))].sort().join(' + ');
      if (!this.oauthOnlyBy.has(key) && this.oauthOnlyBy.size >= MAX_COMBINATIONS) key = '(other combinations)';
      this.oauthOnlyBy.set(key, (this.oauthOnlyBy.get(key) ?? 0) + 1);
    }
    const userEmail = record?.email ?? null;
    if (userEmail) {
      for (const a of oauth) {
        if (a.email && !sameEmail(a.email, userEmail)) {
          this.differs.count++;
          if (this.differs.shown.length < SHOWN) {
            this.differs.shown.push({ id: record.id, provider: a.provider, account: a.email, user: userEmail });
          }
        }
      }
    }
    if (!record?.email || this.trusted.size === 0) return null;
    if (record.email_verified !== false) {
      this.trust.alreadyVerified++;
      return null;
    }
    const reasons = new Set();
    const vouching = [];
    for (const a of oauth) {
      if (!this.trusted.has(a.provider)) continue;
      if (a.email && !sameEmail(a.email, userEmail)) reasons.add('differs');
      else if (a.emailVerifiedClaim === false) reasons.add('unverifiedClaim');
      else if (!a.email && hasPassword) reasons.add('passwordNoEvidence');
      else vouching.push(a);
    }
    if (vouching.length > 0) {
      // An account showing the same address is the stronger evidence: count it first.
      const best = vouching.find((a) => a.email) ?? vouching[0];
      record.email_verified = true;
      if (best.email) this.trust.byEmail++;
      else this.trust.byProvider++;
      return best.provider;
    }
    // One reason per user, the strongest evidence first.
    if (reasons.has('differs')) this.trust.differs++;
    else if (reasons.has('unverifiedClaim')) this.trust.unverifiedClaim++;
    else if (reasons.has('passwordNoEvidence')) this.trust.passwordNoEvidence++;
    this.trust.stillUnverified++;
    return null;
  }

  get markedVerified() {
    return this.trust.byEmail + this.trust.byProvider;
  }

  /** The readiness report, as lines of text. */
  report() {
    const out = [];
    const { table, columns } = this.accounts;
    out.push(`OAuth readiness report (accounts table "${table}")`);
    out.push('  providers in use (enable each OAuth one in Clerk, or its users cannot sign in):');
    if (this.providers.length === 0) out.push('    none: no accounts');
    const width = Math.max(8, ...this.providers.map((p) => String(p.provider).length));
    for (const p of this.providers) {
      const oauth = p.type === null || OAUTH_TYPES.has(p.type);
      const tags = [];
      if (!oauth) tags.push('not OAuth');
      if (this.trusted.has(p.provider)) tags.push('trusted');
      out.push(
        `    ${String(p.provider).padEnd(width)}  ${String(p.type ?? '-').padEnd(8)}  ${p.users} users, ${p.accounts} accounts` +
          (tags.length ? `  (${tags.join(', ')})` : ''),
      );
    }
    out.push(`  users who sign in only through OAuth: ${this.oauthOnly} of ${this.users}`);
    for (const [key, n] of [...this.oauthOnlyBy].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))) {
      out.push(`    ${key}: ${n}`);
    }
    out.push(
      this.passwordKnown
        ? '    (users with a password digest are not counted: they can also sign in with it)'
        : '    (no --password-column: users who also have a password are counted too)',
    );
    out.push(`  account emails that differ from the user's email: ${this.differs.count}`);
    for (const d of this.differs.shown) {
      out.push(`    id=${d.id} ${d.provider}: account ${d.account}, user ${d.user}`);
    }
    if (this.differs.count > this.differs.shown.length) {
      out.push(`    … ${this.differs.count - this.differs.shown.length} more`);
    }
    out.push(
      columns.email
        ? `    account emails come from the "${columns.email}" column, or else the id_token's email claim`
        : columns.idToken
          ? `    "${table}" has no email column: account emails come only from OpenID Connect id_tokens`
          : `    "${table}" stores neither an email nor an id_token: account emails cannot be compared`,
    );
    for (const [provider, e] of [...this.evidence].sort((a, b) => a[0].localeCompare(b[0]))) {
      const known = e.column + e.idToken;
      out.push(
        `    ${provider}: ${known} of ${e.accounts} accounts carry an email` +
          (known === 0 ? ' (none compared)' : e.column ? '' : ' (id_token)'),
      );
    }
    if (this.trusted.size > 0) {
      const t = this.trust;
      out.push(`  email verification (--trust-providers ${[...this.trusted].join(',')}):`);
      out.push(`    marked verified: ${this.markedVerified} (${t.byEmail} with a matching account email, ${t.byProvider} on the provider alone)`);
      out.push(`    already verified in the database: ${t.alreadyVerified}`);
      out.push(
        `    left unverified: ${t.stillUnverified}` +
          ` (account email differs: ${t.differs}, id_token says unverified: ${t.unverifiedClaim},` +
          ` password user whose account stores no email: ${t.passwordNoEvidence}, no trusted account: ` +
          `${t.stillUnverified - t.differs - t.unverifiedClaim - t.passwordNoEvidence})`,
      );
      if (!this.passwordKnown) {
        out.push('    (no --password-column: accounts without an email vouch even for users who also have a password)');
      }
    }
    return out;
  }
}
