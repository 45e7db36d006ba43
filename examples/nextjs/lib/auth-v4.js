// next-auth v4: a Credentials provider and an OAuth provider whose endpoints are a stub served by
// this app (app/oauth-stub/), so the OAuth round trip works offline. JWT sessions (the cookie
// auth-bridge reads); the session carries the app's user id.
import CredentialsProvider from 'next-auth/providers/credentials';
import { checkPassword } from './users.js';
import { PUBLIC_URL, INTERNAL_URL } from './urls.js';

export const authOptions = {
  session: { strategy: 'jwt' },
  providers: [
    CredentialsProvider({
      name: 'password',
      credentials: {
        username: { label: 'Username', type: 'text', placeholder: 'ada' },
        password: { label: 'Password', type: 'password' },
      },
      authorize: async (credentials) => checkPassword(credentials?.username, credentials?.password),
    }),
    {
      id: 'acme',
      name: 'Acme (OAuth stub)',
      type: 'oauth',
      clientId: 'example-client',
      clientSecret: 'example-client-secret',
      // The browser is sent here: through the worker, like every page.
      authorization: { url: `${PUBLIC_URL}/oauth-stub/authorize`, params: { scope: 'profile' } },
      // next-auth calls these from the server.
      token: `${INTERNAL_URL}/oauth-stub/token`,
      userinfo: `${INTERNAL_URL}/oauth-stub/userinfo`,
      checks: ['state'],
      profile: (profile) => ({ id: profile.id, name: profile.name, email: profile.email }),
    },
  ],
  callbacks: {
    session: ({ session, token }) => ({ ...session, user: { ...session.user, id: token.sub } }),
  },
};
