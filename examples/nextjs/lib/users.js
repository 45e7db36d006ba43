// The app's own user table, as it was before Clerk: these ids are what the app's database keys
// on, and what auth-bridge forwards as `x-auth-user-id` whichever session the browser carries.
export const USERS = [
  { id: 'user-1001', username: 'ada', password: 'ada-password', name: 'Ada Lovelace', email: 'ada@example.com' },
  { id: 'user-1002', username: 'alan', password: 'alan-password', name: 'Alan Turing', email: 'alan@example.com' },
];

/** The OAuth stub always answers as this user. */
export const OAUTH_USER = { id: 'oauth-2001', name: 'Grace Hopper', email: 'grace@example.com' };

/** The user whose name and password match, without the password; null otherwise. */
export function checkPassword(username, password) {
  const user = USERS.find((u) => u.username === username && u.password === password);
  if (!user) return null;
  const { password: _, username: __, ...profile } = user;
  return profile;
}
