import { redirect } from 'next/navigation';
import { AuthError } from 'next-auth-v5';
import { auth, signIn, signOut } from '../../lib/auth-v5.js';
import IdentityHeaders from '../../lib/identity-headers.js';

export const dynamic = 'force-dynamic';

async function signInWithPassword(formData) {
  'use server';
  try {
    await signIn('credentials', {
      username: formData.get('username'),
      password: formData.get('password'),
      redirectTo: '/v5',
    });
  } catch (error) {
    if (error instanceof AuthError) redirect(`/v5?error=${encodeURIComponent(error.type)}`);
    throw error; // the redirect that signIn throws on success
  }
}

async function signOutAction() {
  'use server';
  await signOut({ redirectTo: '/v5' });
}

export default async function V5({ searchParams }) {
  const session = await auth();
  const { error } = await searchParams;
  return (
    <main>
      <h1>Auth.js v5</h1>
      {session ? (
        <div id="user">
          Signed in as <strong>{session.user.name}</strong> (<code>{session.user.id}</code>, {session.user.email}).
          <form action={signOutAction}>
            <button type="submit">Sign out</button>
          </form>
        </div>
      ) : (
        <div id="user">
          Not signed in.
          <form action={signInWithPassword}>
            <input name="username" placeholder="ada" /> <input name="password" type="password" placeholder="ada-password" />{' '}
            <button type="submit">Sign in</button>
          </form>
          {error ? <p role="alert">Sign-in failed ({error}).</p> : null}
        </div>
      )}
      <IdentityHeaders />
    </main>
  );
}
