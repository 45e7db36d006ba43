/* auth-bridge client: signs a NextAuth user into Clerk silently (ticket strategy).
 *
 * Served at /__auth-bridge/client.js. No dependencies. It waits for the page's Clerk
 * (window.Clerk, loaded by the app), does nothing when a Clerk user is already signed in, asks
 * the worker for a sign-in token and signs in with it. Rate limiting and outages are retried a
 * few times with exponential backoff and full jitter, never sooner than Retry-After; every
 * other answer stops it. A sessionStorage note keeps reloads from starting over too soon.
 * window.__authBridgeTrickle is the run's promise (it resolves to what happened).
 */
(function () {
  'use strict';
  var ENDPOINT = '/__auth-bridge/sign-in-token';
  var NOTE = '__auth_bridge_trickle';
  var MAX_ATTEMPTS = 5;
  var BACKOFF_BASE_MS = 1000;
  var BACKOFF_CAP_MS = 30000;
  // A longer Retry-After is not waited out on this page; the note defers the next page.
  var LONGEST_WAIT_MS = 120000;
  // How long to wait for the app's Clerk to finish loading.
  var CLERK_WAIT_MS = 20000;
  // After a refusal or an exhausted retry budget, later pages of this tab stay quiet this long.
  var QUIET_AFTER_STOP_MS = 10 * 60 * 1000;
  var QUIET_AFTER_NO_SESSION_MS = 30 * 1000;
  // While a run is in progress (another tab load of the same session must not start one).
  var LEASE_MS = 15000;

  if (typeof window === 'undefined' || window.__authBridgeTrickle) return;

  function readNote() {
    try {
      var note = JSON.parse(window.sessionStorage.getItem(NOTE) || 'null');
      return note && typeof note.notBefore === 'number' ? note : null;
    } catch (e) {
      return null;
    }
  }

  function writeNote(notBefore, state) {
    try {
      window.sessionStorage.setItem(NOTE, JSON.stringify({ notBefore: notBefore, state: state }));
    } catch (e) {
      /* storage unavailable: only the per-page bounds apply */
    }
  }

  function sleep(ms) {
    return new Promise(function (resolve) {
      setTimeout(resolve, ms);
    });
  }

  function waitForClerk() {
    var deadline = Date.now() + CLERK_WAIT_MS;
    var interval = 50;
    return new Promise(function (resolve) {
      (function poll() {
        var clerk = window.Clerk;
        if (clerk && clerk.loaded) return resolve(clerk);
        if (Date.now() >= deadline) return resolve(null);
        interval = Math.min(interval * 2, 500);
        setTimeout(poll, interval);
      })();
    });
  }

  /** Retry-After in milliseconds (delta-seconds or an HTTP date), or null. */
  function retryAfterMs(response) {
    var value = response.headers.get('retry-after');
    if (!value) return null;
    if (/^\s*\d+\s*$/.test(value)) return parseInt(value, 10) * 1000;
    var at = Date.parse(value);
    return isNaN(at) ? null : Math.max(0, at - Date.now());
  }

  /** Full jitter: uniform in [0, min(cap, base * 2^attempt)). */
  function jitter(attempt) {
    return Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * Math.pow(2, attempt));
  }

  function stop(state, quietMs) {
    writeNote(Date.now() + quietMs, state);
    return state;
  }

  async function signIn(clerk, token) {
    var attempt = await clerk.client.signIn.create({ strategy: 'ticket', ticket: token });
    if (!attempt || attempt.status !== 'complete' || !attempt.createdSessionId) {
      return stop('sign-in-incomplete', QUIET_AFTER_STOP_MS);
    }
    await clerk.setActive({ session: attempt.createdSessionId });
    writeNote(0, 'signed-in');
    return 'signed-in';
  }

  async function run() {
    var note = readNote();
    if (note && Date.now() < note.notBefore) return 'deferred';
    var clerk = await waitForClerk();
    if (!clerk) return 'no-clerk';
    if (clerk.user) return 'already-signed-in';
    if (!clerk.client || !clerk.client.signIn) return 'no-clerk';

    for (var attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      writeNote(Date.now() + LEASE_MS, 'running');
      var response = null;
      try {
        response = await fetch(ENDPOINT, {
          method: 'POST',
          credentials: 'same-origin',
          cache: 'no-store',
          headers: { accept: 'application/json' },
        });
      } catch (e) {
        response = null; // network error: retried like a 503 without Retry-After
      }
      var status = response ? response.status : 0;
      if (status === 200) {
        var body = await response.json().catch(function () {
          return null;
        });
        if (!body || typeof body.token !== 'string') return stop('bad-answer', QUIET_AFTER_STOP_MS);
        if (window.Clerk && window.Clerk.user) return stop('already-signed-in', 0);
        try {
          return await signIn(clerk, body.token);
        } catch (e) {
          return stop('sign-in-failed', QUIET_AFTER_STOP_MS);
        }
      }
      if (status === 204) return stop('already-signed-in', 0);
      if (status === 401) return stop('no-session', QUIET_AFTER_NO_SESSION_MS);
      if (status !== 0 && status !== 429 && status !== 502 && status !== 503 && status !== 504) {
        return stop('refused-' + status, QUIET_AFTER_STOP_MS);
      }
      var wait = response ? retryAfterMs(response) : null;
      if (wait !== null && wait > LONGEST_WAIT_MS) return stop('retry-later', wait);
      if (attempt + 1 >= MAX_ATTEMPTS) break;
      var delay = (wait || 0) + jitter(attempt);
      writeNote(Date.now() + delay + LEASE_MS, 'waiting');
      await sleep(delay);
    }
    return stop('gave-up', QUIET_AFTER_STOP_MS);
  }

  window.__authBridgeTrickle = run().catch(function () {
    return stop('error', QUIET_AFTER_STOP_MS);
  });
})();
