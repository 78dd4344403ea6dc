// Drives the test page in a real Chromium (Debian's, never a downloaded one) and prints one JSON
// object describing what the page showed at each step. Run by tests/test_browser.py:
//   node browser.mjs '{"page": ..., "stranger": ..., "api": ..., "email": ..., "password": ...}'
import { chromium } from "playwright-core";

const input = JSON.parse(process.argv[2]);
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
const STEP_MS = 15_000;

const browser = await chromium.launch({
  executablePath: input.chromium,
  args: ARGS,
  timeout: 60_000,
});
const result = { console: [], steps: {} };
let shownNow = async () => null;
try {
  // A fresh context is a fresh profile: no cookies, no cache.
  const context = await browser.newContext();
  context.setDefaultTimeout(STEP_MS);
  const page = await context.newPage();
  page.on("console", (message) => result.console.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => result.console.push(`pageerror: ${error.message}`));

  const items = () =>
    page.$$eval("#tasks li", (lis) =>
      lis.map((li) => ({
        title: li.querySelector("span").textContent,
        completed: li.querySelector(".toggle").checked,
        done: li.classList.contains("done"),
      })),
    );
  const shown = async () => ({
    user: await page.textContent("#user"),
    count: await page.textContent("#count"),
    tasks: await items(),
    error: await page.textContent("#error"),
  });
  shownNow = shown;
  // Waits until `condition` (a JavaScript expression) holds on the page, or the page shows an
  // error: then the run stops at that step, with what the page showed recorded.
  const settle = async (step, condition) => {
    await page.waitForFunction(`document.querySelector("#error").textContent !== "" || (${condition})`);
    result.steps[step] = await shown();
    if (result.steps[step].error) throw new Error(`the page shows an error after ${step}`);
  };
  const count = (n) => `document.querySelector("#count").textContent === "${n} tasks"`;
  const firstTitle = (title) => `document.querySelector("#tasks li span")?.textContent === "${title}"`;

  await page.goto(`${input.page}/?api=${encodeURIComponent(input.api)}`);
  await page.waitForSelector("body[data-ready=true]");
  await page.fill("#name", input.name);
  await page.fill("#email", input.email);
  await page.fill("#password", input.password);
  await page.click("#sign-up");
  await settle("signedUp", count(0));

  for (const [n, title] of [[1, "Buy milk"], [2, "Walk the dog"]]) {
    await page.fill("#title", title);
    await page.click("#add");
    await settle("created", count(n));
  }

  await page.click("#tasks li:nth-child(1) .toggle");
  await settle("toggled", `document.querySelector("#tasks li:nth-child(1).done") !== null`);

  await page.fill("#tasks li:nth-child(1) .edit", "Buy oat milk");
  await page.click("#tasks li:nth-child(1) .save");
  await settle("edited", firstTitle("Buy oat milk"));

  await page.click("#tasks li:nth-child(2) .delete");
  await settle("deleted", count(1));

  // A 400 from the API: its detail, read cross-origin by the page.
  await page.fill("#title", "   ");
  await page.click("#add");
  await page.waitForFunction(() => document.querySelector("#error").textContent !== "");
  result.steps.blankTitle = await shown();

  // A 404: a task that is not there, through the page's own api().
  result.steps.missing = await page.evaluate(() =>
    window.taskPage.api("/api/tasks/999999999").then(
      (body) => ({ ok: true, body }),
      (error) => ({ ok: false, error: `${error.name}: ${error.message}` }),
    ),
  );

  // Conditional requests and retries from this origin (issue 12): the headers CORS must let
  // through both ways (ETag, Idempotent-Replayed out; If-None-Match, If-Match, Idempotency-Key in).
  result.steps.conditional = await page.evaluate(async (apiUrl) => {
    const { authClient } = await import("/page.mjs");
    const { data } = await authClient.token();
    const auth = { Authorization: `Bearer ${data.token}` };
    const listed = await fetch(`${apiUrl}/api/tasks`, { headers: auth }).then((r) => r.json());
    const url = `${apiUrl}/api/tasks/${listed[0].id}`;
    const read = await fetch(url, { headers: auth });
    const etag = read.headers.get("ETag");
    const again = await fetch(url, { headers: { ...auth, "If-None-Match": etag } });
    const json = { ...auth, "Content-Type": "application/json" };
    const stale = await fetch(url, {
      method: "PATCH",
      headers: { ...json, "If-Match": '"0"' },
      body: JSON.stringify({ description: "from a stale tab" }),
    });
    const key = { ...json, "Idempotency-Key": `browser-${Date.now()}` };
    const body = JSON.stringify({ description: "saved once" });
    const first = await fetch(url, { method: "PATCH", headers: key, body });
    const retry = await fetch(url, { method: "PATCH", headers: key, body });
    return {
      etag,
      notModified: again.status,
      stale: { status: stale.status, etag: stale.headers.get("ETag"), body: await stale.json() },
      first: first.status,
      retry: { status: retry.status, replayed: retry.headers.get("Idempotent-Replayed") },
    };
  }, input.api);

  // The same page and session from an origin that CORS_ORIGINS does not list.
  const stranger = await context.newPage();
  stranger.on("console", (message) => result.console.push(`stranger ${message.type()}: ${message.text()}`));
  await stranger.goto(`${input.stranger}/?api=${encodeURIComponent(input.api)}`);
  await stranger.waitForSelector("body[data-ready=true]");
  result.steps.strangerToken = await stranger.evaluate(async () => {
    const { authClient } = await import("/page.mjs");
    const { data } = await authClient.token();
    return data ? data.token : null;
  });
  await stranger.fill("#title", "from a stranger");
  await stranger.click("#add");
  await stranger.waitForFunction(() => document.querySelector("#error").textContent !== "");
  result.steps.stranger = {
    error: await stranger.textContent("#error"),
    tasks: await stranger.$$eval("#tasks li", (lis) => lis.length),
  };
  // The first page, reloaded: the stranger's task was never created.
  await page.reload();
  await page.waitForSelector("body[data-ready=true]");
  await page.evaluate(() => window.taskPage.api("/api/tasks")).then((tasks) => {
    result.steps.afterStranger = tasks.map((task) => task.title);
  });
} catch (error) {
  result.failure = String(error && error.stack ? error.stack : error);
  result.lastShown = await shownNow().catch(() => null); // what the page showed when it stopped
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
