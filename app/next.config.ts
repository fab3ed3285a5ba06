import type { NextConfig } from "next";

/**
 * Security headers on every response of the production server (`verify --prod` checks them).
 * The CSP allows inline scripts and styles because Next.js inlines its bootstrap (a nonce needs
 * a proxy.ts and makes every page dynamic); it still blocks other origins' scripts, plugins,
 * framing and foreign form targets. HSTS belongs to whatever terminates TLS, not to the app.
 * The dev server gets none of it (HMR needs eval and a websocket).
 */
const SECURITY_HEADERS = [
  {
    key: "Content-Security-Policy",
    value: [
      "default-src 'self'",
      "script-src 'self' 'unsafe-inline'",
      "style-src 'self' 'unsafe-inline'",
      "img-src 'self' data: blob:",
      "font-src 'self' data:",
      "connect-src 'self'",
      "object-src 'none'",
      "base-uri 'self'",
      "form-action 'self'",
      "frame-ancestors 'none'",
    ].join("; "),
  },
  { key: "X-Content-Type-Options", value: "nosniff" },
  { key: "Referrer-Policy", value: "strict-origin-when-cross-origin" },
  { key: "X-Frame-Options", value: "DENY" },
  { key: "Permissions-Policy", value: "camera=(), microphone=(), geolocation=()" },
];

/**
 * One id per release, the same in every replica: the git commit the xtask passes at build time
 * (AXION_BUILD_ID; unset for a tree with uncommitted changes, which gets Next.js's random id).
 * As deploymentId it is Next.js's skew protection: a client of an older release that asks the
 * server of a newer one gets a hard reload instead of a broken page.
 */
const releaseId = process.env.AXION_BUILD_ID || undefined;

const nextConfig: NextConfig = {
  // One cache for every replica (cache-handler.mjs): nothing of it in a process's memory, so a
  // revalidation on one replica is what the others serve next.
  cacheHandler: require.resolve("./cache-handler.mjs"),
  cacheMaxMemorySize: 0,
  ...(releaseId ? { generateBuildId: async () => releaseId, deploymentId: releaseId } : {}),
  async headers() {
    if (process.env.NODE_ENV !== "production") return [];
    return [{ source: "/:path*", headers: SECURITY_HEADERS }];
  },
  // server.js plus the traced node_modules: the runner image holds only this.
  output: "standalone",
  poweredByHeader: false,
  // The dev server accepts its HMR socket from http://localhost only; people (and the browser
  // test) open http://127.0.0.1 too.
  allowedDevOrigins: ["127.0.0.1"],
  // Health checks ask every second or few (the containers', the swarm proxy's): not a line in
  // the log each time.
  logging: { incomingRequests: { ignore: [/^\/api\/(health|live|ready)(\?|$)/] } },
  // The dev image keeps dependencies in /app/node_modules, above the sources in /app/src
  // (docker/Dockerfile, stage dev); elsewhere Next.js infers the root as usual.
  ...(process.env.TURBOPACK_ROOT ? { turbopack: { root: process.env.TURBOPACK_ROOT } } : {}),
};

export default nextConfig;
