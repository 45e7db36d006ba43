// The stub's user info endpoint.
import { OAUTH_USER } from '../../../lib/users.js';

export function GET(request) {
  const [scheme, token] = (request.headers.get('authorization') || '').split(' ');
  if (scheme?.toLowerCase() !== 'bearer' || token !== 'stub-access-token') {
    return Response.json({ error: 'invalid_token' }, { status: 401 });
  }
  return Response.json(OAUTH_USER);
}
