import { cachedToken, createTaskApi, type TaskApi } from "@taskapi/client";

import type { AuthMode } from "@/lib/config";
import { tokenSources } from "@/lib/token";

/** The Task API for the browser: the user's JWT, fetched once per lifetime, on every call. */
export function browserTaskApi(baseUrl: string, mode: AuthMode): { api: TaskApi; signOut: () => void } {
  const { token, forget } = cachedToken(tokenSources[mode]);
  const api = createTaskApi({ baseUrl, token, onUnauthorized: forget });
  return { api, signOut: forget };
}
