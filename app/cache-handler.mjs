// The Next.js cache (ISR pages, route handler responses, fetch data) of the production server,
// shared by every replica: a separate cache Redis (CACHE_REDIS_URL), never the Redis of the
// job queue, which refuses writes when full instead of evicting (docker-compose.prod.yml).
//
// The handler is @fortedigital/nextjs-cache-handler (maintained for Next.js 16: tags with
// cache-life durations, expiry, the per-segment RSC data 16.3 needs); this file only connects
// it. It fails open: with the cache Redis down a command fails at once (no offline queue) or
// after TIMEOUT_MS, the handler answers "not cached" and the page is rendered again; the client
// reconnects in the background.
//
// Keys are per build: a release never serves another release's pages (their chunks and server
// action ids differ), and a revalidation reaches every replica of its release.
import { CacheHandler } from "@fortedigital/nextjs-cache-handler";
import createLruHandler from "@fortedigital/nextjs-cache-handler/local-lru";
import createRedisHandler from "@fortedigital/nextjs-cache-handler/redis-strings";
import { createClient } from "redis";

const TIMEOUT_MS = 1000;

CacheHandler.onCreation(({ buildId }) => {
  const url = process.env.CACHE_REDIS_URL;
  // No cache Redis (`next build`, `next start` by hand): one process's memory, as Next.js's own.
  if (!url) return { handlers: [createLruHandler()] };
  const client = createClient({
    url,
    disableOfflineQueue: true,
    socket: {
      connectTimeout: TIMEOUT_MS,
      reconnectStrategy: (attempt) => Math.min(100 * 2 ** attempt, 2000),
    },
  });
  // One line per outage, not one per reconnection attempt.
  let down = false;
  client.on("error", (e) => {
    if (!down) console.warn(`cache redis unavailable, serving uncached: ${e.message}`);
    down = true;
  });
  client.on("ready", () => {
    if (down) console.warn("cache redis back");
    down = false;
  });
  client.connect().catch(() => {});
  return {
    handlers: [
      createRedisHandler({ client, keyPrefix: `next:${buildId}:`, timeoutMs: TIMEOUT_MS }),
    ],
  };
});

export default CacheHandler;
