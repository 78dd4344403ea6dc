// Configuration, read on the server at request time (never inlined at build time, as a
// NEXT_PUBLIC_ variable would be): one `next build` runs against any Task API, in any mode.

/** How the browser and the server get the JWT they send to the Task API (docs/better-auth.md). */
export type AuthMode = "jwks" | "secret" | "cookie-cache";

export function authMode(): AuthMode {
  const mode = process.env.AUTH_MODE ?? "jwks";
  if (mode === "jwks" || mode === "secret" || mode === "cookie-cache") return mode;
  throw new Error(`AUTH_MODE must be jwks, secret or cookie-cache, not ${JSON.stringify(mode)}`);
}

/** The Task API's base URL, e.g. https://tasks.example.com. */
export function taskApiUrl(): string {
  return process.env.TASK_API_URL ?? "http://127.0.0.1:8000";
}

/** Lifetime of Better Auth's session cookie cache (cookie-cache mode), in seconds. */
export function sessionCacheSeconds(): number {
  return Number(process.env.SESSION_CACHE_SECONDS ?? 5 * 60);
}

export function requiredEnv(name: "BETTER_AUTH_URL" | "BETTER_AUTH_SECRET"): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (see examples/nextjs/README.md)`);
  return value;
}
