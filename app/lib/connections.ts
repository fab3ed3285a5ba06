import postgres from "postgres";
import { createClient } from "redis";

/**
 * The app's connections to PostgreSQL and Redis, created once per process and shared by every
 * request (a new connection per request collapsed under load: 136 requests/s at 100 clients).
 *
 * Configuration, the same in every stack: DATABASE_URL and REDIS_URL (hosts db and redis). In dev
 * compose builds them from .env; in prod and swarm the runner's entrypoint (app/start.sh) builds
 * them at start from the secret files, so no password is in the container's configuration.
 */

/** PostgreSQL connections one app process may hold; also what `bench --load` checks against. */
export const DB_POOL_MAX = Number(process.env.DB_POOL_MAX ?? 5);
/** A connection that is not made in this time fails: a page that needs a dependency that is down
 * answers an error within it (the fault drills' bound is 2 s), never hangs. */
const CONNECT_TIMEOUT_S = 1.5;

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

type Sql = ReturnType<typeof postgres>;
let sql: Sql | undefined;

/**
 * The longest a query may take, a wait for a free pooled connection included, before the request
 * gives up on it (see `bounded`). Well above what a busy pool waits: at 1.5 s a write on a
 * 2-core machine under load committed and still answered 500, which invites a resubmission.
 */
export const QUERY_TIMEOUT_MS = Number(process.env.QUERY_TIMEOUT_MS ?? 5_000);

/**
 * `query`, or an error once `ms` has passed. A server that vanished (its node or container gone,
 * not shut down) never answers a query in flight, and TCP takes minutes to notice: a timeout
 * here also retires the pool, so the next request connects afresh (to the server's new address,
 * once it is back) instead of waiting on a dead connection. The retired pool's queries in flight
 * on live connections still finish (it closes them after as long again), so one slow query never
 * fails the others. A server that is down or shut down fails fast anyway: its connections are
 * refused or closed, and a new one fails within the connect timeout.
 */
export async function bounded<T>(query: PromiseLike<T>, ms = QUERY_TIMEOUT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const stale = sql;
      sql = undefined;
      stale?.end({ timeout: ms / 1000 }).catch(() => {});
      reject(new Error(`no answer from PostgreSQL within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([query, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function db(): Sql {
  if (sql) return sql;
  sql = postgres(required("DATABASE_URL"), {
    max: DB_POOL_MAX,
    connect_timeout: CONNECT_TIMEOUT_S,
    idle_timeout: 60,
    onnotice: () => {},
  });
  return sql;
}

type Redis = ReturnType<typeof createClient>;
let redis: Promise<Redis> | undefined;

/**
 * One client; it reconnects by itself (backing off to 2 s) when Redis restarts. While it is
 * down a command fails at once (no offline queue): a page that needs Redis answers an error
 * then, instead of hanging until Redis is back.
 */
export function cache(): Promise<Redis> {
  if (redis) return redis;
  const client: Redis = createClient({
    url: required("REDIS_URL"),
    disableOfflineQueue: true,
    socket: {
      connectTimeout: CONNECT_TIMEOUT_S * 1000,
      reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 2_000),
    },
  });
  let lastError = "";
  client.on("error", (e: Error) => {
    // Logged once per distinct error, not once per reconnect attempt.
    if (e.message !== lastError) console.error(`redis: ${e.message}`);
    lastError = e.message;
  });
  client.on("ready", () => {
    lastError = "";
  });
  const connecting = client.connect().then(
    () => client,
    (e: unknown) => {
      redis = undefined; // the next call tries again
      throw e;
    },
  );
  redis = connecting;
  return redis;
}
