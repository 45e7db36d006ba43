// Auth.js v5 (next-auth@5, installed under the alias `next-auth-v5` beside v4) on the same users,
// under its own base path so both versions run in one app. Its cookie is `authjs.session-token`.
import NextAuth from 'next-auth-v5';
import Credentials from 'next-auth-v5/providers/credentials';
import { checkPassword } from './users.js';

export const { handlers, auth, signIn, signOut } = NextAuth({
  basePath: '/api/v5/auth',
  providers: [
    Credentials({
      credentials: { username: { label: 'Username' }, password: { label: 'Password', type: 'password' } },
      authorize: async (credentials) => checkPassword(credentials?.username, credentials?.password),
    }),
  ],
  callbacks: {
    session: ({ session, token }) => ({ ...session, user: { ...session.user, id: token.sub } }),
  },
});
