// The stub's token endpoint: trades the code for an access token.
export async function POST(request) {
  const body = new URLSearchParams(await request.text());
  if (body.get('code') !== 'stub-code') {
    return Response.json({ error: 'invalid_grant' }, { status: 400 });
  }
  return Response.json({ access_token: 'stub-access-token', token_type: 'bearer', scope: 'profile' });
}
