import path from "node:path";

import type { NextConfig } from "next";

// The typed client is TypeScript source in ../../clients/typescript (a `file:` dependency), so
// the build's root is the repository: Turbopack only compiles files under its root.
const root = path.resolve(__dirname, "../..");

const nextConfig: NextConfig = {
  turbopack: { root },
  outputFileTracingRoot: root,
  transpilePackages: ["@taskapi/client"],
};

export default nextConfig;
