import { headers } from "next/headers";

import { auth } from "@/lib/auth";
import { authMode } from "@/lib/config";
import { hs256Token } from "@/lib/hs256";

// Shared-secret mode: the browser's token for the Task API. Only for the signed-in user.
export async function GET(): Promise<Response> {
  if (authMode() !== "secret") return new Response(null, { status: 404 });
  const session = await auth.api.getSession({ headers: await headers() });
  if (!session) return Response.json({ detail: "Signed out" }, { status: 401 });
  const token = await hs256Token(session.user);
  return Response.json({ token }, { headers: { "Cache-Control": "no-store" } });
}
