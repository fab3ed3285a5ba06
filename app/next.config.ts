import type { NextConfig } from "next";

const nextConfig: NextConfig = {
  // server.js plus the traced node_modules: the runner image holds only this.
  output: "standalone",
  poweredByHeader: false,
};

export default nextConfig;
