import { getServerSession } from 'next-auth';
import { authOptions } from '../lib/auth-v4.js';
import IdentityHeaders from '../lib/identity-headers.js';

export const dynamic = 'force-dynamic';

export default async function Home() {
  const session = await getServerSession(authOptions);
  return (
    <main>
      <h1>next-auth v4</h1>
      {session ? (
        <p id="user">
          Signed in as <strong>{session.user.name}</strong> (<code>{session.user.id}</code>, {session.user.email}).{' '}
          <a href="/api/auth/signout">Sign out</a>
        </p>
      ) : (
        <p id="user">
          Not signed in. <a href="/api/auth/signin">Sign in</a> (ada / ada-password, or the OAuth stub)
        </p>
      )}
      <IdentityHeaders />
    </main>
  );
}
