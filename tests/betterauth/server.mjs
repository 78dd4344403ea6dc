// A real Better Auth for the Task API's test suite: one Node process, several Better Auth
// instances, each on its own 127.0.0.1 port (so each has its own origin, hence its own iss/aud).
//
// Started by tests/betterauth_fixtures.py with BETTER_AUTH_SECRET in the environment. Prints one
// JSON line {"instances": {name: baseURL}, "stranger": URL} once every port listens, and exits
// when its stdin closes (the test process went away) or on SIGTERM.
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { dirname, extname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { bearer, jwt } from "better-auth/plugins";
import { SignJWT } from "jose";

const HERE = dirname(fileURLToPath(import.meta.url));
const secret = process.env.BETTER_AUTH_SECRET;
if (!secret || secret.length < 32) {
  console.error("BETTER_AUTH_SECRET (32+ characters) must be set");
  process.exit(2);
}

function jwksModeAuth(baseURL, database) {
  return betterAuth({
    baseURL, // the API's BETTER_AUTH_URL is this same URL
    secret: process.env.BETTER_AUTH_SECRET,
    database,
    emailAndPassword: { enabled: true },
    plugins: [jwt(), bearer()],
  });
}

function cookieCacheModeAuth(baseURL, database) {
  return betterAuth({
    baseURL,
    secret: process.env.BETTER_AUTH_SECRET, // the API's BETTER_AUTH_SECRET is this same value
    database,
    emailAndPassword: { enabled: true },
    session: { cookieCache: { enabled: true, maxAge: 5 * 60, strategy: "jwt" } },
  });
}

// Variations of the JWKS mode, one instance each: the plugin options are the only difference.
function jwtVariant(baseURL, database, jwtOptions) {
  return betterAuth({
    baseURL,
    secret: process.env.BETTER_AUTH_SECRET,
    database,
    emailAndPassword: { enabled: true },
    plugins: [jwt(jwtOptions), bearer()],
  });
}

// app/api/token/route.ts: a short-lived HS256 token for the API, signed with the shared secret.
export async function GET(request) {
  const session = await auth.api.getSession({ headers: request.headers });
  if (!session) return new Response(null, { status: 401 });
  const token = await new SignJWT({ email: session.user.email })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(session.user.id)
    .setIssuedAt()
    .setExpirationTime("15m")
    .sign(new TextEncoder().encode(process.env.BETTER_AUTH_SECRET));
  return Response.json({ token });
}

// Server side only (a route handler or server component): the cookie is HttpOnly.
function sessionCacheToken(request) {
  const cookies = request.headers.get("cookie") ?? "";
  const match = cookies.match(/(?:^|;\s*)(?:__Secure-)?better-auth\.session_data=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : null;
}

async function sessionTokenRoute(request) {
  const token = sessionCacheToken(request);
  return token ? Response.json({ token }) : new Response(null, { status: 401 });
}

// Better Auth's in-memory database: the memory adapter needs each table to exist.
function memoryDatabase() {
  return memoryAdapter({ user: [], session: [], account: [], verification: [], jwks: [] });
}

async function listen(server) {
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  return `http://127.0.0.1:${server.address().port}`;
}

async function toRequest(req, origin) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const body = chunks.length ? Buffer.concat(chunks) : undefined;
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    for (const item of Array.isArray(value) ? value : [value]) headers.append(name, item);
  }
  return new Request(new URL(req.url, origin), {
    method: req.method,
    headers,
    body: req.method === "GET" || req.method === "HEAD" ? undefined : body,
  });
}

async function send(res, response) {
  const headers = {};
  response.headers.forEach((value, name) => {
    if (name !== "set-cookie") headers[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length) headers["set-cookie"] = cookies;
  res.writeHead(response.status, headers);
  res.end(Buffer.from(await response.arrayBuffer()));
}

// The page loads Better Auth's real browser client straight from node_modules: an import map
// names the file of every bare specifier the client's modules import (resolved as Node does),
// and only those files are served.
const CLIENT_ENTRIES = ["better-auth/client", "better-auth/client/plugins"];
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+)["']/g;

async function clientModules() {
  const imports = {};
  const files = new Set();
  const visit = async (file) => {
    if (files.has(file)) return;
    files.add(file);
    for (const [, spec] of (await readFile(file, "utf8")).matchAll(IMPORT)) {
      if (spec.startsWith(".")) await visit(resolve(dirname(file), spec));
      else await visitBare(spec);
    }
  };
  const visitBare = async (spec) => {
    if (spec in imports) return;
    const file = fileURLToPath(import.meta.resolve(spec));
    imports[spec] = "/" + relative(HERE, file).split(sep).join("/");
    await visit(file);
  };
  for (const entry of CLIENT_ENTRIES) await visitBare(entry);
  return { importMap: JSON.stringify({ imports }), files };
}

const { importMap, files: clientFiles } = await clientModules();
const TYPES = { ".html": "text/html; charset=utf-8", ".mjs": "text/javascript", ".js": "text/javascript" };

async function page(pathname) {
  let file = { "/": "page.html", "/page.mjs": "page.mjs" }[pathname];
  if (!file && pathname.startsWith("/node_modules/")) {
    const candidate = join(HERE, ...decodeURIComponent(pathname).split("/"));
    if (clientFiles.has(candidate)) file = relative(HERE, candidate);
  }
  if (!file) return null;
  let body = await readFile(join(HERE, file), "utf8");
  if (file === "page.html") body = body.replace("IMPORT_MAP", importMap);
  const type = TYPES[extname(file)];
  return new Response(body, { headers: { "content-type": type, "cache-control": "no-store" } });
}

// One HTTP server per instance; `routes` answers what is not under /api/auth.
async function serve(name, makeAuth, routes = {}) {
  const server = createServer();
  const baseURL = await listen(server);
  const instance = makeAuth(baseURL);
  const onRequest = async (req, res) => {
    try {
      const origin = `http://${req.headers.host}`;
      const request = await toRequest(req, origin);
      const { pathname } = new URL(request.url);
      let response;
      if (pathname.startsWith("/api/auth/")) response = await instance.handler(request);
      else if (routes[pathname]) response = await routes[pathname](request);
      else response = (await page(pathname)) ?? new Response("not found", { status: 404 });
      await send(res, response);
    } catch (error) {
      console.error(`[${name}]`, error);
      res.writeHead(500).end();
    }
  };
  server.on("request", onRequest);
  return { name, baseURL, server, instance, onRequest };
}

const mainDatabase = memoryDatabase();
const instances = [];
// The main instance: JWKS mode (EdDSA, the default), the Next.js token route, and the page.
const main = await serve("main", (url) => jwksModeAuth(url, mainDatabase), {
  "/api/token": (request) => GET(request),
});
const auth = main.instance; // what the token route (a Next.js route would import it) calls
instances.push(main);
// Same database and secret as main (so the same signing keys), another origin: its tokens carry
// another issuer and audience, and only those claims tell them apart.
instances.push(await serve("twin", (url) => jwksModeAuth(url, mainDatabase)));
for (const alg of ["ES256", "ES512", "PS256", "RS256"]) {
  const keyPairConfig = alg.startsWith("ES") ? { alg } : { alg, modulusLength: 2048 };
  instances.push(
    await serve(alg, (url) => jwtVariant(url, memoryDatabase(), { jwks: { keyPairConfig } })),
  );
}
// Keys expire one second after creation; the next token is signed with a new key and the old
// one stays in the JWKS for the grace period (30 days by default).
instances.push(
  await serve("rotating", (url) =>
    jwtVariant(url, memoryDatabase(), { jwks: { rotationInterval: 1 } }),
  ),
);
instances.push(
  await serve("custom", (url) =>
    jwtVariant(url, memoryDatabase(), {
      jwt: { issuer: "https://auth.example.test", audience: "https://tasks-api.example.test" },
    }),
  ),
);
instances.push(
  await serve("short", (url) =>
    jwtVariant(url, memoryDatabase(), { jwt: { expirationTime: "3s" } }),
  ),
);
instances.push(
  await serve("cookie", (url) => cookieCacheModeAuth(url, memoryDatabase()), {
    "/api/session-token": sessionTokenRoute,
  }),
);
// The main instance and its page again, from another origin (another port: the browser shares
// 127.0.0.1's cookies across ports, so the session carries over). The API's CORS_ORIGINS does
// not list this origin; its tokens are main's own (same issuer), so only CORS tells them apart.
const stranger = createServer(main.onRequest);
const strangerURL = await listen(stranger);

console.log(
  JSON.stringify({
    instances: Object.fromEntries(instances.map((i) => [i.name, i.baseURL])),
    stranger: strangerURL,
  }),
);

function shutdown() {
  for (const { server } of instances) server.close();
  stranger.close();
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
process.stdin.on("end", shutdown);
process.stdin.resume();
