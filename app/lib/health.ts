import { bounded, cache, db } from "@/lib/connections";

/**
 * How long one dependency may take before it counts as down: well under a health-check timeout,
 * and the answer (503 naming it) leaves within 2 s with the proxies' share.
 */
const CHECK_TIMEOUT_MS = 1_500;

/** What the public answer says of a check: whether it passed and how long it took. */
export type Check = { ok: boolean; ms: number };

export type Health = {
  status: "ok" | "degraded";
  checks: { db: Check; redis: Check };
  failed: string[];
};

async function timed(name: string, run: () => Promise<void>): Promise<Check> {
  const start = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)),
      CHECK_TIMEOUT_MS,
    );
  });
  try {
    await Promise.race([run(), timeout]);
    return { ok: true, ms: Math.round(performance.now() - start) };
  } catch (e) {
    // Details (driver errors, hosts) go to the server log, never to the public answer.
    console.error(`health: ${name} failed: ${e instanceof Error ? e.message : String(e)}`);
    return { ok: false, ms: Math.round(performance.now() - start) };
  } finally {
    clearTimeout(timer);
  }
}

let versionsLogged = false;

/** A real query on the shared pool: proves auth, database and a working server. */
function checkDb(): Promise<Check> {
  return timed("db", async () => {
    // bounded: a query that never answers also gets the pool dropped (its timer runs on after
    // `timed` has answered).
    const [row] = await bounded(db()`select current_setting('server_version') as version`);
    if (!versionsLogged) console.log(`health: postgres ${row.version}`);
  });
}

function checkRedis(): Promise<Check> {
  return timed("redis", async () => {
    const client = await cache();
    const pong = await client.ping();
    if (pong !== "PONG") throw new Error(`PING answered ${pong}`);
  });
}

async function measure(): Promise<Health> {
  const [dbCheck, redisCheck] = await Promise.all([checkDb(), checkRedis()]);
  versionsLogged ||= dbCheck.ok;
  const checks = { db: dbCheck, redis: redisCheck };
  const failed = Object.entries(checks)
    .filter(([, c]) => !c.ok)
    .map(([name]) => name);
  return { status: failed.length === 0 ? "ok" : "degraded", checks, failed };
}

let inFlight: Promise<Health> | undefined;

/**
 * Requests that arrive while a check runs share its answer (single flight): under load the
 * database sees one health query at a time, not one per request; every answer is fresh.
 */
export function health(): Promise<Health> {
  inFlight ??= measure().finally(() => {
    inFlight = undefined;
  });
  return inFlight;
}
