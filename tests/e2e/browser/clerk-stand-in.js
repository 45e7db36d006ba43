// A recording stand-in for the Clerk browser SDK (window.Clerk): just the surface client.js
// uses. Query parameters: `user` = already signed in as that id; `loadDelay` = ms until
// `loaded`; `incomplete` = signIn.create answers a sign-in that is not complete.
(function () {
  var params = new URLSearchParams(location.search);
  var calls = (window.__clerkCalls = []);
  var clerk = {
    loaded: false,
    user: params.get('user') ? { id: params.get('user') } : null,
    client: {
      signIn: {
        create: function (input) {
          calls.push({ fn: 'signIn.create', input: input, at: Date.now() });
          if (params.get('incomplete')) return Promise.resolve({ status: 'needs_first_factor', createdSessionId: null });
          return Promise.resolve({ status: 'complete', createdSessionId: 'sess_from_ticket' });
        },
      },
    },
    setActive: function (input) {
      calls.push({ fn: 'setActive', input: input, at: Date.now() });
      clerk.user = { id: 'signed-in-by-ticket' };
      return Promise.resolve();
    },
  };
  window.Clerk = clerk;
  setTimeout(function () {
    clerk.loaded = true;
  }, Number(params.get('loadDelay') || 200));
})();
