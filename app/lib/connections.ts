import { readFileSync } from "node:fs";
import postgres from "postgres";
import { createClient } from "redis";

/**
 * The app's connections to PostgreSQL and Redis, created once per process and shared by every
 * request (a new connection per request collapsed under load: 136 requests/s at 100 clients).
 *
 * Configuration:
 * - dev: DATABASE_URL and REDIS_URL (compose builds them from .env);
 * - prod: DB_HOST, DB_NAME, DB_USER, DB_PASSWORD_FILE, REDIS_HOST, REDIS_PASSWORD_FILE. Passwords
 *   are read from the files compose mounts at /run/secrets, never from the environment, and go
 *   to the drivers as options, not inside a URL (no escaping of `@ : / #` needed).
 */

/** PostgreSQL connections one app process may hold; also what `bench --load` checks against. */
export const DB_POOL_MAX = Number(process.env.DB_POOL_MAX ?? 5);
const CONNECT_TIMEOUT_S = 2;

/** A secret: `NAME_FILE` (a mounted secret) wins over `NAME`. */
function secret(name: string): string | undefined {
  const file = process.env[`${name}_FILE`];
  if (file) return readFileSync(file, "utf8").replace(/\r?\n$/, "");
  return process.env[name];
}

function required(name: string, value: string | undefined): string {
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

type Sql = ReturnType<typeof postgres>;
let sql: Sql | undefined;

export function db(): Sql {
  if (sql) return sql;
  const common = {
    max: DB_POOL_MAX,
    connect_timeout: CONNECT_TIMEOUT_S,
    idle_timeout: 60,
    onnotice: () => {},
  };
  const url = process.env.DATABASE_URL;
  sql = url
    ? postgres(url, common)
    : postgres({
        ...common,
        host: required("DB_HOST", process.env.DB_HOST),
        port: Number(process.env.DB_PORT ?? 5432),
        database: required("DB_NAME", process.env.DB_NAME),
        username: required("DB_USER", process.env.DB_USER),
        password: required("DB_PASSWORD(_FILE)", secret("DB_PASSWORD")),
      });
  return sql;
}

type Redis = ReturnType<typeof createClient>;
let redis: Promise<Redis> | undefined;

/** One client; it reconnects by itself (backing off to 2 s) when Redis restarts. */
export function cache(): Promise<Redis> {
  if (redis) return redis;
  const url = process.env.REDIS_URL;
  const socket = {
    connectTimeout: CONNECT_TIMEOUT_S * 1000,
    reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 2_000),
  };
  const client: Redis = url
    ? createClient({ url, socket })
    : createClient({
        password: required("REDIS_PASSWORD(_FILE)", secret("REDIS_PASSWORD")),
        socket: {
          ...socket,
          host: required("REDIS_HOST", process.env.REDIS_HOST),
          port: Number(process.env.REDIS_PORT ?? 6379),
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
