import { createTaskApi, type TaskApi } from "@taskapi/client";
import { headers } from "next/headers";

import { auth } from "@/lib/auth";
import { authMode, taskApiUrl } from "@/lib/config";
import { hs256Token } from "@/lib/hs256";
import { sessionCacheToken } from "@/lib/session-cache";

/** The Task API for server code (a Server Component, a route handler, a server action), called
 * as the user of the request being rendered. Only for a request with a session. */
export function serverTaskApi(): TaskApi {
  return createTaskApi({ baseUrl: taskApiUrl(), token: serverToken });
}

async function serverToken(): Promise<string> {
  const mode = authMode();
  if (mode === "jwks") {
    // #region doc:server-token
    const { token } = await auth.api.getToken({ headers: await headers() });
    // #endregion doc:server-token
    return token;
  }
  const requestHeaders = await headers();
  if (mode === "secret") {
    const session = await auth.api.getSession({ headers: requestHeaders });
    if (!session) throw new Error("no session");
    return hs256Token(session.user);
  }
  const token = await sessionCacheToken(requestHeaders);
  if (!token) throw new Error("no session");
  return token;
}
