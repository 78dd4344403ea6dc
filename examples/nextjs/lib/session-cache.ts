import { auth } from "@/lib/auth";

const SESSION_DATA = /^(?:__Secure-)?better-auth\.session_data=([^;]*)/;

/**
 * Cookie-cache mode: the session cookie cache (an HS256 JWT signed with BETTER_AUTH_SECRET) to
 * send as the bearer token, or null without a session.
 *
 * The cookie lives `maxAge` seconds; then the browser drops it. getSession() is how Better Auth
 * refreshes it: with no valid cache cookie it reads the session from the database and sets a
 * new one. That new value is the one to send; otherwise the cookie the request carried.
 */
export async function sessionCacheToken(requestHeaders: Headers): Promise<string | null> {
  const { headers: answer, response: session } = await auth.api.getSession({
    headers: requestHeaders,
    returnHeaders: true,
  });
  if (!session) return null;
  const fresh = answer.getSetCookie().map((cookie) => cookie.match(SESSION_DATA)?.[1]);
  const sent = (requestHeaders.get("cookie") ?? "").split(/;\s*/).map((c) => c.match(SESSION_DATA)?.[1]);
  const token = [...fresh, ...sent].find((value) => value); // a fresh one first; "" is a deletion
  return token ? decodeURIComponent(token) : null;
}
