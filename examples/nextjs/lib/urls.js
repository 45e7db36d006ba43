// Two addresses of this app. The public one is the address the browser uses — auth-bridge's,
// since the app runs behind it — and must be given (NEXTAUTH_URL / AUTH_URL): next-auth builds
// its redirects and callback URLs from it. The internal one is where the app itself listens, for
// server-to-server calls that need not pass through the worker (the OAuth stub's token endpoint).
export const PUBLIC_URL = (process.env.NEXTAUTH_URL || process.env.AUTH_URL || 'http://localhost:8787').replace(/\/+$/, '');
export const INTERNAL_URL = `http://127.0.0.1:${process.env.PORT || 3000}`;
