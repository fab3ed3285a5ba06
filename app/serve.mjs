// The runner's server (app/start.sh execs `bun serve.mjs`): Next.js's standalone server.js,
// stopped by a drain instead of Next's own SIGTERM handler.
//
// On SIGTERM (docker stop, a swarm update, a scale down):
//   1. /api/ready answers 503 at once (app/lib/lifecycle.ts): the proxy, which checks it every
//      second and takes a server out after two failures, stops sending new requests here;
//   2. after DRAIN_DELAY_MS (3 s) the server stops accepting connections, finishes every
//      request in flight, and closes keep-alive connections as soon as they are idle;
//   3. the process exits 0 when the last connection is gone, or after DRAIN_TIMEOUT_MS (8 s,
//      under the stack's 10 s stop_grace_period) whatever is left.
// Next.js skips its own handler when NEXT_MANUAL_SIG_HANDLE is set (its start-server.js); that
// handler closes the server at once, so requests the proxy sent in the meantime were refused.
import http from "node:http";

const DRAIN_DELAY_MS = Number(process.env.DRAIN_DELAY_MS ?? 3_000);
const DRAIN_TIMEOUT_MS = Number(process.env.DRAIN_TIMEOUT_MS ?? 8_000);
const DRAINING = Symbol.for("axion.draining");

process.env.NEXT_MANUAL_SIG_HANDLE = "true";

// Next creates its HTTP server itself; keep a hold of it to close it.
const servers = [];
const createServer = http.createServer;
http.createServer = (...args) => {
  const server = createServer(...args);
  servers.push(server);
  return server;
};

function drain(signal) {
  if (globalThis[DRAINING]) return;
  globalThis[DRAINING] = true;
  const started = Date.now();
  console.log(`drain: ${signal}: not ready; closing in ${DRAIN_DELAY_MS} ms`);
  setTimeout(() => process.exit(0), DRAIN_TIMEOUT_MS).unref();
  setTimeout(() => {
    let open = servers.length;
    const closed = () => {
      open -= 1;
      if (open > 0) return;
      console.log(`drain: every connection closed after ${Date.now() - started} ms`);
      process.exit(0);
    };
    if (open === 0) process.exit(0);
    for (const server of servers) {
      server.close(closed);
      // A keep-alive connection between requests holds close() up: closed now, and again
      // each time a request in flight leaves one idle.
      server.closeIdleConnections();
      setInterval(() => server.closeIdleConnections(), 100).unref();
    }
  }, DRAIN_DELAY_MS);
}

process.on("SIGTERM", () => drain("SIGTERM"));
process.on("SIGINT", () => drain("SIGINT"));

await import("./server.js");
