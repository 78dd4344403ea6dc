// The Task API's typed client: openapi-fetch over the types generated from the API's own OpenAPI
// document (./schema.d.ts, `make client`), plus what every caller needs around it: the bearer
// token, the API's `detail` on errors, and the paging headers.
import createClient, { type Client } from "openapi-fetch";

import type { components, paths } from "./schema";

export type { components, operations, paths } from "./schema";
export type Task = components["schemas"]["TaskPublic"];
export type NewTask = components["schemas"]["TaskCreate"];
export type TaskChanges = components["schemas"]["TaskUpdate"];
export type ListQuery = NonNullable<paths["/api/tasks"]["get"]["parameters"]["query"]>;
export type TaskApi = Client<paths>;

export interface TaskApiOptions {
  /** The API's base URL, e.g. `https://tasks.example.com`. */
  baseUrl: string;
  /** The signed-in user's JWT, asked for before every request (cache it: `cachedToken`). */
  token: () => Promise<string>;
  /** Called when the API answers 401, e.g. to drop a cached token that it refused. */
  onUnauthorized?: () => void;
}

export function createTaskApi({ baseUrl, token, onUnauthorized }: TaskApiOptions): TaskApi {
  const client = createClient<paths>({ baseUrl });
  client.use({
    async onRequest({ request }) {
      request.headers.set("Authorization", `Bearer ${await token()}`);
      return request;
    },
    onResponse({ response }) {
      if (response.status === 401) onUnauthorized?.();
      return undefined;
    },
  });
  return client;
}

/** An answer other than 2xx; `message` is the API's `detail`, written for the user to read. */
export class ApiError extends Error {
  readonly status: number;

  constructor(status: number, detail: string) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
  }
}

/** The body of a successful answer, or an `ApiError` with the API's `detail`. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  const { data, error, response } = result;
  if (!response.ok) {
    const detail =
      typeof error === "object" && error !== null && "detail" in error ? error.detail : null;
    throw new ApiError(
      response.status,
      typeof detail === "string" ? detail : `${response.status} ${response.statusText}`,
    );
  }
  return data as T; // response.ok: openapi-fetch parsed the documented success body
}

/** `X-Total-Count` of a list answer: every task matching the filter, not just this page. */
export function totalCount(response: Response): number {
  return Number(response.headers.get("X-Total-Count") ?? "0");
}

/** The `cursor` of the next page, from `Link: </api/tasks?...&cursor=...>; rel="next"`. */
export function nextCursor(response: Response): string | null {
  const next = response.headers.get("Link")?.match(/<([^>]*)>\s*;\s*rel="next"/)?.[1];
  return next === undefined ? null : new URL(next, response.url).searchParams.get("cursor");
}

/** Seconds before `exp` at which a cached token is replaced: more than the time a request takes. */
const REFRESH_BEFORE_EXP_SECONDS = 60;

/**
 * `fetchToken`, asked again only when the token it gave is about to expire: one token request
 * per token lifetime (15 minutes for Better Auth's jwt() plugin) instead of one per API call.
 * Callers waiting at the same time share one request. `forget()` drops it (sign-out, a 401).
 */
export function cachedToken(fetchToken: () => Promise<string>): {
  token: () => Promise<string>;
  forget: () => void;
} {
  let cached: { token: string; refreshAt: number } | null = null;
  let pending: Promise<string> | null = null;
  const token = async (): Promise<string> => {
    if (cached && Date.now() < cached.refreshAt) return cached.token;
    pending ??= fetchToken()
      .then((fresh) => {
        cached = { token: fresh, refreshAt: (expiry(fresh) - REFRESH_BEFORE_EXP_SECONDS) * 1000 };
        return fresh;
      })
      .finally(() => {
        pending = null;
      });
    return pending;
  };
  const forget = (): void => {
    cached = null;
  };
  return { token, forget };
}

/** A JWT's `exp` (seconds), read without verifying it: only to know when to ask again. */
function expiry(token: string): number {
  const payload = token.split(".")[1] ?? "";
  const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
  const exp: unknown = (JSON.parse(json) as { exp?: unknown }).exp;
  return typeof exp === "number" ? exp : 0;
}
