import { SignJWT } from "jose";

import { requiredEnv } from "@/lib/config";

/** Shared-secret mode: a 15-minute HS256 token for the Task API, signed with BETTER_AUTH_SECRET. */
export async function hs256Token(user: { id: string; email: string }): Promise<string> {
  const origin = new URL(requiredEnv("BETTER_AUTH_URL")).origin;
  return new SignJWT({ email: user.email })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(user.id) // the Task API's user id
    .setIssuer(origin) // iss and aud: what JWT_ISSUER and JWT_AUDIENCE require, when set
    .setAudience(origin)
    .setIssuedAt()
    .setExpirationTime("15m")
    .sign(new TextEncoder().encode(requiredEnv("BETTER_AUTH_SECRET")));
}
