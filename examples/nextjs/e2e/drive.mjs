// Drives the example in a real Chromium (Debian's; playwright-core never downloads one) and
// prints one JSON object: what each page showed after each step. Run by
// tests/test_example_app.py, once per auth mode:
//   node e2e/drive.mjs '{"chromium", "app", "api", "mode", "users": [{name, email, password}] x2,
//                        "cacheSeconds"?, "search"?}'
// It asserts nothing itself; a step that cannot complete ends the run with `failure` set.
import { chromium } from "playwright-core";

const input = JSON.parse(process.argv[2]);
const STEP_MS = 20_000;
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];
// Where the browser gets its JWT in each mode (lib/token.ts).
const TOKEN_PATH = { jwks: "/api/auth/token", secret: "/api/token", "cookie-cache": "/api/session-token" };

const result = { console: [], steps: {} };
const browser = await chromium.launch({ executablePath: input.chromium, args: ARGS, timeout: 60_000 });
let lastPage = null;

async function newUserPage(label) {
  const context = await browser.newContext();
  context.setDefaultTimeout(STEP_MS);
  const page = await context.newPage();
  page.on("console", (message) => result.console.push(`${label} ${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => result.console.push(`${label} pageerror: ${error.message}`));
  return page;
}

const text = (page, selector) =>
  page.$eval(selector, (element) => element.textContent).catch(() => null);

/** What the tasks page shows. */
async function shown(page) {
  return {
    path: new URL(page.url()).pathname,
    user: await text(page, "#user"),
    signedOut: await text(page, "#signed-out"),
    count: await text(page, "#count"),
    error: await text(page, "#error"),
    more: (await page.$("#more")) !== null,
    tasks: await page.$$eval("#tasks li.task", (items) =>
      items.map((item) => ({
        title: item.querySelector(".title")?.textContent ?? null,
        description: item.querySelector(".description")?.textContent ?? null,
        completed: item.dataset.completed === "true",
      })),
    ),
  };
}

/** What the home page (a Server Component) shows. */
async function home(page) {
  return {
    user: await text(page, "#user"),
    signedOut: await text(page, "#signed-out"),
    summary: await text(page, "#summary"),
    latest: await page.$$eval("#latest li", (items) => items.map((item) => item.textContent)),
    serverError: await text(page, "#server-error"),
  };
}

const version = (page) =>
  page
    .$eval("[data-version]", (element) => Number(element.dataset.version))
    .catch(() => -1);

/** Runs `action`, then waits until the list has finished what it started (data-version moved
 * on and nothing is in flight), and records what the page shows as `step`. */
async function act(page, step, action) {
  lastPage = page;
  const before = await version(page);
  await action();
  await page.waitForFunction(
    (before) => {
      const element = document.querySelector("[data-version]");
      return element && Number(element.dataset.version) > before && element.dataset.busy !== "true";
    },
    before,
  );
  result.steps[step] = await shown(page);
  return result.steps[step];
}

/** Opens the tasks page at `path` and records what it shows once its first load finished. */
async function openTasks(page, step, path = "/tasks") {
  lastPage = page;
  await page.goto(`${input.app}${path}`);
  await page.waitForSelector("[data-version]:not([data-version='0'])");
  await page.waitForFunction(() => document.querySelector("[data-version]")?.dataset.busy !== "true");
  result.steps[step] = await shown(page);
  return result.steps[step];
}

async function visitHome(page, step) {
  lastPage = page;
  await page.goto(`${input.app}/`);
  await page.waitForSelector("#home");
  result.steps[step] = await home(page);
}

async function signUp(page, user, step) {
  await page.goto(`${input.app}/`);
  await page.click("text=Sign up");
  await page.waitForSelector("form#sign-up");
  await act(page, step, async () => {
    await page.fill("input[name=name]", user.name);
    await page.fill("input[name=email]", user.email);
    await page.fill("input[name=password]", user.password);
    await page.click("form#sign-up button[type=submit]");
    await page.waitForURL("**/tasks");
  });
}

async function addTask(page, title, description, step) {
  await act(page, step, async () => {
    await page.fill("#new-task input[name=title]", title);
    await page.fill("#new-task input[name=description]", description);
    await page.click("#new-task button[type=submit]");
  });
}

/** The signed-in user's JWT, fetched by the page the way lib/token.ts does in this mode. */
const tokenOf = (page) =>
  page.evaluate(async (path) => {
    const response = await fetch(path, { cache: "no-store" });
    return (await response.json()).token;
  }, TOKEN_PATH[input.mode]);

const row = (page, title) => page.locator("#tasks li.task", { hasText: title });

/** The session cookie cache (cookie-cache mode), as the browser holds it now. */
async function sessionCacheCookie(page) {
  const cookies = await page.context().cookies();
  const cookie = cookies.find((c) => /(^|__Secure-)better-auth\.session_data$/.test(c.name));
  return cookie && cookie.expires * 1000 > Date.now() ? cookie : null;
}

try {
  const [alice, bob] = input.users;
  const a = await newUserPage("alice");
  // Requests Alice's page makes: token fetches and calls to the API (preflights not included).
  const requests = { token: 0, api: 0 };
  a.on("request", (request) => {
    const url = new URL(request.url());
    if (url.origin === input.app && url.pathname === TOKEN_PATH[input.mode]) requests.token += 1;
    if (url.origin === new URL(input.api).origin && request.method() !== "OPTIONS") requests.api += 1;
  });
  const counted = () => ({ ...requests });

  // Signed out: the Server Component says so.
  await visitHome(a, "homeSignedOut");

  // Sign up: on to the tasks page, empty.
  await signUp(a, alice, "signedUp");
  const afterSignUp = counted();

  // Create, toggle, edit (newest first).
  await addTask(a, "Buy milk", "2 litres", "created1");
  await addTask(a, "Walk the dog", "", "created2");
  await addTask(a, "Call mum", "", "created3");
  await act(a, "toggled", () => row(a, "Buy milk").locator(".toggle").click());
  await act(a, "edited", async () => {
    await row(a, "Walk the dog").locator(".edit").click();
    const form = a.locator("#tasks form.edit-form");
    await form.locator("input[name=title]").fill("Walk the dog twice");
    await form.locator("input[name=description]").fill("morning and evening");
    await form.locator(".save").click();
  });

  // The API's detail for an invalid title; nothing changes.
  await act(a, "blankTitle", async () => {
    await a.fill("#new-task input[name=title]", "   ");
    await a.click("#new-task button[type=submit]");
  });
  await act(a, "tooLongEdit", async () => {
    await row(a, "Call mum").locator(".edit").click();
    await a.locator("#tasks form.edit-form input[name=title]").fill("x".repeat(201));
    await a.locator("#tasks form.edit-form .save").click();
  });
  await a.locator("#tasks form.edit-form .cancel").click();

  // Filter.
  await act(a, "pending", () => a.selectOption("#status", "pending"));
  await act(a, "completed", () => a.selectOption("#status", "completed"));
  await act(a, "all", () => a.selectOption("#status", "all"));

  // Token fetches and API calls between two points of one page's life (no reload in between).
  result.requests = { afterSignUp, beforePaging: counted() };

  // Pages of two, through the Link header.
  await openTasks(a, "page1", "/tasks?limit=2");
  await act(a, "page2", () => a.click("#more"));

  // Delete.
  await act(a, "deleted", () => row(a, "Call mum").locator(".delete").click());

  // The Server Component's own call to the API, from the server.
  await visitHome(a, "homeAlice");

  if (input.cacheSeconds) {
    // Cookie-cache mode: let the cache cookie expire in the browser, then keep working.
    await openTasks(a, "beforeCacheExpired");
    const before = await sessionCacheCookie(a);
    const deadline = Date.now() + (input.cacheSeconds + 10) * 1000;
    while ((await sessionCacheCookie(a)) !== null && Date.now() < deadline) await a.waitForTimeout(250);
    const dropped = (await sessionCacheCookie(a)) === null;
    await addTask(a, "After the cache expired", "", "afterCacheExpired");
    const after = await sessionCacheCookie(a);
    result.steps.cacheCookie = {
      before: before?.value ?? null,
      dropped,
      after: after?.value ?? null,
    };
    await visitHome(a, "homeAfterCacheExpired");
  }

  // A second user: their own, empty list; the first user's list is untouched.
  const b = await newUserPage("bob");
  await signUp(b, bob, "bobSignedUp");
  await addTask(b, "Bob's task", "", "bobCreated");
  await visitHome(b, "homeBob");
  await openTasks(a, "aliceAfterBob");

  // Another origin, not in the API's CORS_ORIGINS: this very app as http://localhost:PORT (the
  // same server, another origin). With Alice's valid token its fetch fails: the browser refuses
  // the API's answer to the preflight, and nothing is created.
  const strangerOrigin = input.app.replace("127.0.0.1", "localhost");
  const token = await tokenOf(a);
  const stranger = await a.context().newPage();
  stranger.on("console", (message) => result.console.push(`stranger ${message.type()}: ${message.text()}`));
  await stranger.goto(`${strangerOrigin}/sign-in`);
  result.steps.stranger = await stranger.evaluate(
    async ({ api, token }) => {
      try {
        const response = await fetch(`${api}/api/tasks`, {
          method: "POST",
          headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
          body: JSON.stringify({ title: "from a stranger" }),
        });
        return { status: response.status };
      } catch (error) {
        return { error: `${error.name}: ${error.message}` };
      }
    },
    { api: input.api, token },
  );
  await stranger.close();
  // Only the origin was wrong: the same token, from the app's own origin, is accepted.
  result.steps.sameTokenFromApp = await a.evaluate(
    async ({ api, token }) =>
      (await fetch(`${api}/api/tasks`, { headers: { Authorization: `Bearer ${token}` } })).status,
    { api: input.api, token },
  );

  // Sign out: the tasks page (in the browser) and the home page (on the server) say so.
  await openTasks(a, "beforeSignOut");
  await a.click("#sign-out");
  await a.waitForURL("**/sign-in");
  result.steps.signedOutAt = new URL(a.url()).pathname;
  await openTasks(a, "tasksSignedOut");
  await visitHome(a, "homeAfterSignOut");

  // Sign in again: everything is still there.
  await a.goto(`${input.app}/sign-in`);
  await act(a, "signedIn", async () => {
    await a.fill("input[name=email]", alice.email);
    await a.fill("input[name=password]", alice.password);
    await a.click("form#sign-in button[type=submit]");
    await a.waitForURL("**/tasks");
  });

  if (input.search) {
    // Search (case-insensitive, title or description), with the status filter.
    await act(a, "searchMilk", () => a.fill("#search", "milk"));
    await act(a, "searchDescription", () => a.fill("#search", "LITRES"));
    await act(a, "searchNothing", () => a.fill("#search", "no such task"));
    await act(a, "searchDog", () => a.fill("#search", "dog"));
    await act(a, "searchDogCompleted", () => a.selectOption("#status", "completed"));
    await act(a, "searchAll", () => a.selectOption("#status", "all"));
    await act(a, "searchCleared", () => a.fill("#search", ""));
  }

  // A fresh token for the test to read what the API stored for Alice.
  result.token = await tokenOf(a);
} catch (error) {
  result.failure = String(error && error.stack ? error.stack : error);
  result.lastShown = lastPage ? await shown(lastPage).catch(() => null) : null;
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
