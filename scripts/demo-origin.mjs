#!/usr/bin/env node
// A tiny origin for the local run: every page shows the request headers it received, so the
// identity headers the worker adds are visible in the browser.
import http from 'node:http';

const port = Number(process.env.DEMO_ORIGIN_PORT ?? 8790);

const escape = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

http
  .createServer((req, res) => {
    const identity = Object.entries(req.headers).filter(([k]) => k.startsWith('x-auth-'));
    const other = Object.entries(req.headers).filter(([k]) => !k.startsWith('x-auth-'));
    if (req.url.startsWith('/headers.json')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(req.headers, null, 2));
      return;
    }
    const rows = (list) => list.map(([k, v]) => `<tr><th>${escape(k)}</th><td>${escape(v)}</td></tr>`).join('');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html><head><title>auth-bridge demo origin</title>
<style>body{font:15px system-ui;margin:2rem}th{text-align:left;padding-right:1rem}td{font-family:monospace}</style></head>
<body><h1>Demo origin</h1><p>${escape(req.method)} ${escape(req.url)}</p>
<h2>Identity headers from auth-bridge</h2><table>${rows(identity) || '<tr><td>none</td></tr>'}</table>
<h2>Other request headers</h2><table>${rows(other)}</table></body></html>`);
  })
  .listen(port, '127.0.0.1', () => console.log(`demo origin on http://127.0.0.1:${port}`));
