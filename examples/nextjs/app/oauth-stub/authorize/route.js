// A stand-in OAuth authorization server (the provider "acme"): approves at once as one fixed
// user. Only redirects back to this app's own callback.
import { PUBLIC_URL } from '../../../lib/urls.js';

export function GET(request) {
  const params = request.nextUrl.searchParams;
  const redirectUri = params.get('redirect_uri') || '';
  if (redirectUri !== `${PUBLIC_URL}/api/auth/callback/acme`) {
    return new Response('unknown redirect_uri\n', { status: 400 });
  }
  const back = new URL(redirectUri);
  back.searchParams.set('code', 'stub-code');
  if (params.get('state')) back.searchParams.set('state', params.get('state'));
  return Response.redirect(back, 302);
}
