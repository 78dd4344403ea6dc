// Where the browser gets the JWT it sends to the Task API, in each mode (docs/better-auth.md).
import { authClient } from "@/lib/auth-client";
import type { AuthMode } from "@/lib/config";

/** No session (never signed in, signed out, expired): the page says "signed out". */
export class SignedOutError extends Error {
  constructor() {
    super("You are signed out");
    this.name = "SignedOutError";
  }
}

// #region doc:jwks-token
// JWKS mode: the jwt() plugin's GET /api/auth/token, with the session cookie.
async function jwksToken(): Promise<string> {
  const { data, error } = await authClient.token();
  if (error) {
    if (error.status === 401) throw new SignedOutError();
    throw new Error(`/api/auth/token: ${error.message ?? error.statusText}`);
  }
  return data.token;
}
// #endregion doc:jwks-token

// #region doc:route-token
// Shared-secret and cookie-cache modes: a route of this app (app/api/token/route.ts,
// app/api/session-token/route.ts) answers {"token"} for the signed-in user, 401 otherwise.
async function routeToken(path: string): Promise<string> {
  const response = await fetch(path, { cache: "no-store" });
  if (response.status === 401) throw new SignedOutError();
  if (!response.ok) throw new Error(`${path}: ${response.status} ${response.statusText}`);
  const { token } = (await response.json()) as { token: string };
  return token;
}
// #endregion doc:route-token

export const tokenSources: Record<AuthMode, () => Promise<string>> = {
  jwks: jwksToken,
  secret: () => routeToken("/api/token"),
  "cookie-cache": () => routeToken("/api/session-token"),
};
