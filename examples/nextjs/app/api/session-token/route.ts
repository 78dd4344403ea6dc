import { headers } from "next/headers";

import { authMode } from "@/lib/config";
import { sessionCacheToken } from "@/lib/session-cache";

// Cookie-cache mode: the browser's token for the Task API, read from (or refreshed into) the
// HttpOnly cache cookie. nextCookies() puts a refreshed cookie on this response.
export async function GET(): Promise<Response> {
  if (authMode() !== "cookie-cache") return new Response(null, { status: 404 });
  const token = await sessionCacheToken(await headers());
  if (!token) return Response.json({ detail: "Signed out" }, { status: 401 });
  return Response.json({ token }, { headers: { "Cache-Control": "no-store" } });
}
