// Supa's bootstrap of a function worker: the function's own
// `Deno.serve(...)` listens on the Unix socket the runtime gave (and on
// nothing else), and `EdgeRuntime.waitUntil` keeps background work going
// after a response. Arguments: the socket's path, the entrypoint's URL.
const [socket, entrypoint] = Deno.args;
// A worker does not outlive its server: when that dies without stopping
// it (a crash, SIGKILL), the worker is re-parented and exits within a
// second instead of lingering with nobody to serve.
const parent = Deno.ppid;
Deno.unrefTimer(setInterval(() => {
  if (Deno.ppid !== parent) Deno.exit(0);
}, 1000));
const serve = Deno.serve.bind(Deno);
let served = false;
Deno.serve = (options, handler) => {
  if (served) throw new Error("a function serves once");
  served = true;
  const h = typeof options === "function" ? options : (handler ?? options?.handler);
  if (typeof h !== "function") throw new TypeError("Deno.serve needs a handler");
  const onError = typeof options === "object" ? options?.onError : undefined;
  return serve({ path: socket, onListen() {}, ...(onError ? { onError } : {}) }, h);
};
const pending = new Set();
globalThis.EdgeRuntime = {
  waitUntil(promise) {
    const p = Promise.resolve(promise).catch((e) => console.error(e)).finally(() => pending.delete(p));
    pending.add(p);
    return p;
  },
};
await import(entrypoint);
