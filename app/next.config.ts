import type { NextConfig } from "next";

const nextConfig: NextConfig = {
  // server.js plus the traced node_modules: the runner image holds only this.
  output: "standalone",
  poweredByHeader: false,
  // The dev server accepts its HMR socket from http://localhost only; people (and the browser
  // test) open http://127.0.0.1 too.
  allowedDevOrigins: ["127.0.0.1"],
  // The dev container's health check asks every few seconds: not a line in the dev log each time.
  logging: { incomingRequests: { ignore: [/^\/api\/health/] } },
  // The dev image keeps dependencies in /app/node_modules, above the sources in /app/src
  // (docker/Dockerfile, stage dev); elsewhere Next.js infers the root as usual.
  ...(process.env.TURBOPACK_ROOT ? { turbopack: { root: process.env.TURBOPACK_ROOT } } : {}),
};

export default nextConfig;
