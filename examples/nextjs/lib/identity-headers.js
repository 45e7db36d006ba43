// What the origin received from auth-bridge: the identity headers of this very request.
import { headers } from 'next/headers';

const NAMES = ['x-auth-source', 'x-auth-user-id', 'x-auth-clerk-user-id', 'x-auth-email', 'x-auth-session-id'];

export default async function IdentityHeaders() {
  const h = await headers();
  return (
    <section>
      <h2>Identity headers from auth-bridge</h2>
      <table id="identity">
        <tbody>
          {NAMES.map((name) => (
            <tr key={name}>
              <th>{name}</th>
              <td data-header={name}>{h.get(name) ?? '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
