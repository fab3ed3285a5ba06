/**
 * Where this process is in its life, for the health endpoints:
 * - live (`/api/live`): the process answers, so its event loop runs. The image's HEALTHCHECK and
 *   swarm use it: a task is replaced only when it is itself broken, never because PostgreSQL or
 *   Redis is (a shared dependency down would otherwise get every replica killed at once).
 * - ready (`/api/ready`): it takes new requests; false once it drains (app/serve.mjs, on
 *   SIGTERM). The swarm proxy routes by it.
 * - `/api/health` stays the deep check (a real query, a PING): what `verify` proves and what a
 *   person or a monitor asks; 503 names the dependency that is down.
 */
const DRAINING = Symbol.for("axion.draining");

export function draining(): boolean {
  return (globalThis as Record<symbol, unknown>)[DRAINING] === true;
}

export const noStore = { "cache-control": "no-store" };
