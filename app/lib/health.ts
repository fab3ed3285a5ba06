import postgres from "postgres";
import { createClient } from "redis";

/** How long one dependency may take before it counts as down: well under a health-check timeout. */
const CHECK_TIMEOUT_MS = 2_000;

export type Check =
  | { ok: true; ms: number; detail: string }
  | { ok: false; ms: number; error: string };

export type Health = {
  status: "ok" | "degraded";
  checks: { db: Check; redis: Check };
};

async function timed(run: () => Promise<string>): Promise<Check> {
  const start = performance.now();
  const elapsed = () => Math.round(performance.now() - start);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)),
      CHECK_TIMEOUT_MS,
    );
  });
  try {
    const detail = await Promise.race([run(), timeout]);
    return { ok: true, ms: elapsed(), detail };
  } catch (e) {
    return { ok: false, ms: elapsed(), error: e instanceof Error ? e.message : String(e) };
  } finally {
    clearTimeout(timer);
  }
}

function required(name: "DATABASE_URL" | "REDIS_URL"): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

/** A real query, not just a connection: proves auth, database name and a working server. */
export function checkDb(): Promise<Check> {
  return timed(async () => {
    const sql = postgres(required("DATABASE_URL"), {
      max: 1,
      connect_timeout: CHECK_TIMEOUT_MS / 1000,
      idle_timeout: 1,
      onnotice: () => {},
    });
    try {
      const [row] =
        await sql`select current_database() as db, current_setting('server_version') as version`;
      return `postgres ${row.version} (${row.db})`;
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
}

export function checkRedis(): Promise<Check> {
  return timed(async () => {
    const client = createClient({
      url: required("REDIS_URL"),
      socket: { connectTimeout: CHECK_TIMEOUT_MS, reconnectStrategy: false },
    });
    client.on("error", () => {}); // the failure surfaces through connect()/ping()
    try {
      await client.connect();
      const pong = await client.ping();
      if (pong !== "PONG") throw new Error(`PING answered ${pong}`);
      const info = await client.info("server");
      const version = /redis_version:(\S+)/.exec(info)?.[1] ?? "unknown";
      return `redis ${version} (PONG)`;
    } finally {
      if (client.isOpen) await client.quit().catch(() => client.destroy());
    }
  });
}

export async function health(): Promise<Health> {
  const [db, redis] = await Promise.all([checkDb(), checkRedis()]);
  return { status: db.ok && redis.ok ? "ok" : "degraded", checks: { db, redis } };
}
