import { betterAuth } from "better-auth";
import { memoryAdapter, type MemoryDB } from "better-auth/adapters/memory";
import { nextCookies } from "better-auth/next-js";
import { jwt } from "better-auth/plugins";

import { authMode, sessionCacheSeconds } from "@/lib/config";

// Better Auth's memory adapter: nothing to install or compile, and gone on restart (a real app
// passes its database here). Kept on globalThis because Next.js may load this module once for
// route handlers and once for Server Components, and both must see the same users, sessions
// and jwt() signing keys.
const store = globalThis as typeof globalThis & { betterAuthMemory?: MemoryDB };
store.betterAuthMemory ??= { user: [], session: [], account: [], verification: [], jwks: [] };

export const auth = betterAuth({
  baseURL: process.env.BETTER_AUTH_URL, // JWKS mode: the Task API's BETTER_AUTH_URL, the same URL
  secret: process.env.BETTER_AUTH_SECRET, // other modes: the Task API's BETTER_AUTH_SECRET, the same
  database: memoryAdapter(store.betterAuthMemory),
  emailAndPassword: { enabled: true },
  session: {
    cookieCache: {
      enabled: authMode() === "cookie-cache",
      maxAge: sessionCacheSeconds(),
      strategy: "jwt", // an HS256 JWT signed with the secret: what the Task API can verify
    },
  },
  plugins: [jwt(), nextCookies()], // nextCookies() last: it sets the cookies of server calls
});
