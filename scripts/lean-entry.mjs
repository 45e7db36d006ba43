#!/usr/bin/env node
// Replaces the default export of worker-build's bundle (build/index.js) with a plain module
// worker object. worker-build exports a Proxy around a WorkerEntrypoint class: every request
// constructs the class, spreads a dozen proxy hooks into a fresh object and wraps the handler in
// two more Proxies, about 7% of the whole request's CPU for a worker this small. The object
// written here calls the same handlers with the same panic recovery (the reset check before each
// call, a WebAssembly trap marks the instance for reset) and nothing else.
//
//   node scripts/lean-entry.mjs build/index.js
//
// The bundle is minified, so the pieces are found by shape; if any is missing (another
// worker-build version), the build fails here rather than ship a worker without a fetch handler.
import fs from 'node:fs';

const file = process.argv[2] ?? 'build/index.js';
let code = fs.readFileSync(file, 'utf8');
const id = '[\\w$]+';
const find = (re, what) => {
  const m = code.match(re);
  if (!m) {
    console.error(`lean-entry: ${what} not found in ${file}; worker-build's output changed`);
    process.exit(1);
  }
  return m;
};
const [, entrypoint] = find(new RegExp(`(${id})\\.prototype\\.fetch=function\\(${id}\\)\\{return ${id}\\.call\\(this,${id},this\\.env,this\\.ctx\\)\\}`), 'the fetch handler');
const [, reinitialize] = find(new RegExp(`construct\\(${id},${id},${id}\\)\\{try\\{(${id})\\(\\);`), 'the reset check');
const [, , critical] = find(new RegExp(`catch\\((${id})\\)\\{throw (${id})\\(\\1\\),\\1\\}`), 'the trap handler');
const [exported, proxied] = find(new RegExp(`(${id}) as default\\}`), 'the default export');
if (!code.includes(`${proxied}=new Proxy(${entrypoint},`)) {
  console.error(`lean-entry: the default export is not the proxied entrypoint in ${file}`);
  process.exit(1);
}
// A request that can only be anonymous may be forwarded on the worker's plan (src/fast_path.rs,
// src/proxy.js forwardOnPlan) before the worker's Rust is entered; for one with cookies it asks
// the worker's cookiesHoldNoSession (src/gateway.rs), an export worker-build puts on the same
// class, handed to src/proxy.js here. Its glue reads the current wasm instance on every call,
// so it stays right after a reset.
if (!code.includes(`${entrypoint}.prototype.cookiesHoldNoSession=`)) {
  console.error(`lean-entry: the cookiesHoldNoSession export not found in ${file}`);
  process.exit(1);
}
const lean = `var __leanEntry=(()=>{const handlers={};globalThis[Symbol.for("auth-bridge.cookiesHoldNoSession")]=${entrypoint}.prototype.cookiesHoldNoSession;const onPlan=globalThis[Symbol.for("auth-bridge.forwardOnPlan")];for(const name of ["fetch","queue","scheduled"]){const handler=${entrypoint}.prototype[name];if(typeof handler!=="function")continue;const fast=name==="fetch"&&typeof onPlan==="function";handlers[name]=function(arg,env,ctx){${reinitialize}();if(fast){const forwarded=onPlan(arg);if(forwarded!==undefined)return forwarded}try{const out=handler.call({env,ctx},arg);return out&&typeof out.then==="function"?out.catch(e=>{${critical}(e);throw e}):out}catch(e){${critical}(e);throw e}}}return handlers})();`;
const at = code.lastIndexOf('export{');
code = code.slice(0, at) + lean + code.slice(at).replace(exported, '__leanEntry as default}');
fs.writeFileSync(file, code);
console.log(`lean-entry: ${file} exports a plain module worker (fetch, queue, scheduled) with the same reset handling`);
