// ClerkErrors bodies. Codes, statuses and messages follow Clerk's error catalogue
// (api-errors.json, 2026-05-12); `<param>`-style placeholders are filled in per request.
import crypto from 'node:crypto';

export class ApiError extends Error {
  constructor(status, errors, { headers = {} } = {}) {
    super(errors.map((e) => e.code).join(','));
    this.status = status;
    this.errors = errors;
    this.headers = headers;
  }
}

export function traceId() {
  return crypto.randomBytes(16).toString('hex');
}

export function body(errors) {
  return { errors, clerk_trace_id: traceId() };
}

function err(code, message, long_message, meta) {
  const e = { message, long_message, code };
  if (meta && Object.keys(meta).length) e.meta = meta;
  return e;
}

const param = (name) => ({ param_name: name });

// --- authentication (auth.go) ---
export const clerkKeyInvalid = () =>
  new ApiError(401, [
    err(
      'clerk_key_invalid',
      'The provided Clerk Secret Key is invalid. Make sure that your Clerk Secret Key is correct.',
      'The provided Clerk Secret Key is invalid. Make sure that your Clerk Secret Key is correct.',
    ),
  ]);
export const authHeaderFormatInvalid = () =>
  new ApiError(401, [
    err(
      'authorization_header_format_invalid',
      'Invalid Authorization header format',
      "Invalid Authorization header format. Must be 'Bearer <YOUR_API_KEY>'",
    ),
  ]);

// --- internal.go / network.go ---
export const tooManyRequests = (retryAfterSeconds) =>
  new ApiError(429, [err('too_many_requests', 'Too many requests', 'Too many requests, retry later')], {
    headers: { 'Retry-After': String(retryAfterSeconds) },
  });
export const internalError = () =>
  new ApiError(500, [
    err(
      'internal_clerk_error',
      'Oops, an unexpected error occurred',
      "There was an internal error on our servers. We've been notified and are working on fixing it.",
    ),
  ]);
export const serviceUnavailable = () =>
  new ApiError(503, [err('service_unavailable', 'Service unavailable', 'Service unavailable')]);
export const gatewayTimeout = () =>
  new ApiError(504, [err('gateway_timeout', 'Gateway Timeout', 'A request to a 3rd party service timed out')]);

// --- requests.go ---
export const requestBodyInvalid = () =>
  new ApiError(400, [
    err(
      'request_body_invalid',
      'Request body invalid',
      'The request body is invalid. Please consult the API documentation for more information.',
    ),
  ]);
export const missingQueryParameter = (name) =>
  new ApiError(400, [
    err(
      'missing_query_parameter',
      'Missing query parameter',
      `The query parameter '${name}' is missing from the request. Please consult the API documentation for more information.`,
      param(name),
    ),
  ]);

// --- not found ---
export const userNotFound = (id) =>
  new ApiError(404, [err('resource_not_found', 'not found', `No user was found with id ${id}`)]);
export const resourceNotFound = () =>
  new ApiError(404, [err('resource_not_found', 'Resource not found', 'Resource not found')]);
export const routeNotFound = () =>
  new ApiError(404, [err('resource_not_found', 'not found', 'Resource not found')]);

// --- forms.go: individual error entries, combined into one 422 by the validators ---
export const E = {
  unknown: (p) => err('form_param_unknown', 'is unknown', `${p} is not a valid parameter for this request.`, param(p)),
  typeMismatch: (p, received, expected) =>
    err('form_param_value_invalid', 'is invalid', `${p} is invalid. Received ${received}, must be of type ${expected}.`, param(p)),
  missing: (p) => err('form_param_missing', 'is missing', `${p} must be included.`, param(p)),
  atLeastOne: (params) =>
    err(
      'form_param_missing',
      'at least one parameter must be provided',
      `at least one of \`${params.join(', ')}\` must be provided`,
      param(params.join(',')),
    ),
  valueNotAllowed: (p, value, allowed) =>
    err(
      'form_param_value_invalid',
      'is invalid',
      `${value} does not match the allowed values for parameter ${p}. Allowed values: ${allowed.join(', ')}`,
      param(p),
    ),
  valueInvalid: (p, value) =>
    err('form_param_value_invalid', 'is invalid', `${value} does not match one of the allowed values for parameter ${p}`, param(p)),
  notEmpty: (p) => err('form_param_value_invalid', 'is invalid', `${p} is invalid. Must be not empty`, param(p)),
  invalidEmail: (p) => err('form_param_format_invalid', 'is invalid', `${p} must be a valid email address.`, param(p)),
  invalidPhone: (p) =>
    err('form_param_format_invalid', 'is invalid', `${p} must be a valid phone number according to E.164 international standard.`, param(p)),
  invalidTime: (p) =>
    err(
      'form_param_invalid_time',
      'invalid format',
      `${p} must contain a datetime specified in RFC3339 format (e.g. \`2022-10-20T10:00:27.645Z\`).`,
      param(p),
    ),
  futureDate: (p) => err('form_disallow_future_date', 'Date values must not be in the future.', 'Date values must not be in the future.', param(p)),
  duplicateValues: (p, value) => err('form_param_duplicate', 'duplicate values', `${value} contains duplicate values`, param(p)),
  arrayLengthMismatch: (p, other) =>
    err('form_param_array_length_mismatch', 'length mismatch', `${p} must contain exactly one item for each item in ${other}.`, param(p)),
  arrayTooLarge: (p, max) => err('form_param_array_size_exceeded', 'exceeds maximum size', `${p} should not exceed ${max} items.`, param(p)),
  conditionalMissing: (missing, present) =>
    err('form_conditional_param_missing', 'is missing', `\`${missing}\` is required when \`${present}\` is present.`, param(missing)),
  conditionalDisallowed: (notAllowed, existing) =>
    err(
      'form_conditional_param_disallowed',
      'is not allowed',
      `\`${notAllowed}\` isn't allowed when \`${existing}\` is present.`,
      param(notAllowed),
    ),
  passwordDigestInvalid: () =>
    err(
      'form_password_digest_invalid_code',
      'is invalid',
      'The password digest is not valid for the given password hasher.',
      param('password_digest'),
    ),
  passwordTooShort: (min) =>
    err('form_password_length_too_short', `Passwords must be ${min} characters or more.`, `Passwords must be ${min} characters or more.`, param('password')),
  passwordTooLong: () =>
    err(
      'form_password_size_in_bytes_exceeded',
      'Your password is too long. Please use a shorter one.',
      'Your password is too long. Please use a shorter one.',
      param('password'),
    ),
  identifierExists: (p) => {
    const what = { email_address: 'email address', phone_number: 'phone number', username: 'username', external_id: 'external ID', web3_wallet: 'web3 wallet' }[p] || p;
    return err('form_identifier_exists', `That ${what} is taken. Please try another.`, `That ${what} is taken. Please try another.`, param(p));
  },
  usernameLength: (min, max) =>
    err('form_username_invalid_length', `Usernames must be between ${min} and ${max} characters long.`, `Usernames must be between ${min} and ${max} characters long.`, param('username')),
  usernameCharacter: () =>
    err(
      'form_username_invalid_character',
      "Usernames can only contain letters, numbers, and '_' or '-'.",
      "Usernames can only contain letters, numbers, and '_' or '-'.",
      param('username'),
    ),
  metadataInvalid: (p) => err('form_param_value_invalid', 'is invalid', `${p} must be a valid key-value object.`, param(p)),
  tooLarge: (p, max) => err('form_param_value_too_large', 'Value too large', `The value of ${p} can't be greater than ${max}`, param(p)),
  tooSmall: (p, min) => err('form_param_value_invalid', 'is invalid', `${p} must be greater than or equal to ${min}`, param(p)),
  resourceMissing: (p) => err('form_resource_not_found', 'is missing', `The resource associated with the supplied ${p} was not found.`, param(p)),
  verificationNeeded: (p) =>
    err('form_verification_needed', 'is unverified', 'This identification needs to be verified before you can perform this action.', param(p)),
};

export const unprocessable = (errors) => new ApiError(422, errors);

// --- sign_in_tokens.go ---
export const signInTokenAlreadyUsed = () =>
  new ApiError(400, [
    err('sign_in_token_already_used_code', 'sign in token has already been used', 'This sign in token has already been used. Each token can only be used once.'),
  ]);
export const signInTokenRevoked = () =>
  new ApiError(400, [err('sign_in_token_revoked_code', 'sign in token has been revoked', 'This sign in token has been revoked and cannot be used anymore.')]);
export const signInTokenCannotBeUsed = () =>
  new ApiError(400, [
    err('sign_in_token_cannot_be_used_code', 'sign in token cannot be used', 'This sign in token cannot be used anymore. Please request a new one.'),
  ]);
export const signInTokenCannotBeRevoked = (status) =>
  new ApiError(400, [
    err(
      'sign_in_token_cannot_be_revoked_code',
      'cannot revoke',
      `Sign in token cannot be revoked because its status is ${status}. Only pending tokens can be revoked.`,
    ),
  ]);
