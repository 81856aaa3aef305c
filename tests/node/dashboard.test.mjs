// The dashboard (issue 14) in a real browser against the real binary: Debian's chromium
// driven by playwright-core, the example app served by `pulsebase dev`, and the official
// `convex` ConvexClient as a second, subscribed client. Sign-in with the admin key (a wrong
// key sees nothing), the example's tables, an edit in the dashboard reaching the subscribed
// client, a client mutation appearing live in the data view and in the logs, a function run
// as a given identity, an invalid edit showing the schema error under its field and
// writing nothing, the Schedules page (the cron jobs with their next run, and a client's
// scheduled function shown pending live and canceled from the page), and the Files page
// (upload, download through the signed link, delete and the bytes going). A screenshot of each page is saved to tests/node/artifacts/dashboard-*.png.
//
// Skipped, loudly, only where /usr/bin/chromium is missing (browser.test.mjs installs it).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import WebSocket from "ws";
import { ConvexClient } from "convex/browser";

import { ROOT, Server, copyExampleApp, waitFor } from "./lib/server.mjs";
import { q, m, sleep } from "./lib/app.mjs";

const ARTIFACTS = join(ROOT, "tests", "node", "artifacts");
const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const STEP_MS = 15_000;

let server;
let browser;
let page;
let client;
let adminKey;
const pageErrors = [];

before(async () => {
  if (!existsSync(CHROMIUM)) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  server = await new Server({ dir: copyExampleApp() }).start();
  adminKey = readFileSync(join(server.dir, ".pulsebase", "admin_key"), "utf8").trim();
  const { chromium } = await import("playwright-core");
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on("pageerror", (e) => pageErrors.push(e.message));
  client = new ConvexClient(server.url, { webSocketConstructor: WebSocket, unsavedChangesWarning: false, logger: false });
  client.setAuth(() => server.token("dash_user", { name: "Dash User" }));
});

after(async () => {
  await client?.close().catch(() => {});
  await browser?.close().catch(() => {});
  await server?.dispose();
});

function skipIfNoBrowser(t) {
  if (!existsSync(CHROMIUM)) {
    console.error("!!! SKIPPING the dashboard browser test: /usr/bin/chromium is missing (apt-get install -y chromium)");
    t.skip("no chromium");
    return true;
  }
  return false;
}

const shot = (name) => page.screenshot({ path: join(ARTIFACTS, `dashboard-${name}.png`), fullPage: false });

test("a wrong key sees nothing; the right one signs in and shows the example's tables", async (t) => {
  if (skipIfNoBrowser(t)) return;
  for (const path of ["/_dashboard/api/functions", "/_dashboard/api/logs", "/metrics"]) {
    const res = await fetch(`${server.url}${path}`, { headers: { authorization: "Convex not-the-key" } });
    assert.equal(res.status, 401, path);
  }
  await page.goto(`${server.url}/_dashboard/`);
  await page.fill("#admin-key", "not-the-key");
  await page.click("#sign-in");
  await page.waitForSelector(".signin-error:text('invalid')");
  assert.equal(await page.locator("nav").count(), 0, "no navigation without the key");
  await shot("signin");

  await page.fill("#admin-key", adminKey);
  await page.click("#sign-in");
  await page.waitForSelector(".nav-item.active[data-page=data]");
  for (const table of ["todos", "users", "messages", "webhookEvents"]) {
    await page.waitForSelector(`.table-item[data-table=${table}]`);
  }
});

test("a client's mutation appears live in the data view; an edit there reaches the subscribed client", async (t) => {
  if (skipIfNoBrowser(t)) return;
  const seen = [];
  const unsubscribe = client.onUpdate(q("todos:getMyTodos"), {}, (todos) => seen.push(todos));
  await waitFor(() => seen.length > 0, { what: "the client's first result" });
  await page.click(".table-item[data-table=todos]");
  await client.mutation(m("todos:addTodo"), { text: "from the convex client" });
  const row = page.locator("table.docs tbody tr", { hasText: "from the convex client" });
  await row.waitFor({ timeout: 5_000 });
  await page.waitForSelector(".count[data-count=todos]:text('1')");
  await shot("data");

  await row.click();
  await page.click("#edit-doc");
  await page.fill("#editor input[name=text]", "edited in the dashboard");
  await page.click("#save-doc");
  await waitFor(() => seen.at(-1)?.[0]?.text === "edited in the dashboard", { timeout: 5_000, what: "the client to receive the edit" });

  await page.locator("table.docs tbody tr", { hasText: "edited in the dashboard" }).click();
  await page.click("#edit-doc");
  await page.fill("#editor textarea[name=completed]", '"yes"');
  await page.click("#save-doc");
  const error = page.locator(".field-error[data-field=completed]");
  await error.waitFor();
  assert.match(await error.textContent(), /expected boolean/);
  await shot("invalid-edit");
  await page.click("#editor button:text('Cancel')");
  await sleep(300);
  assert.equal(seen.at(-1)[0].completed, false, "the invalid edit wrote nothing");
  assert.equal(seen.at(-1)[0].text, "edited in the dashboard");
  unsubscribe();
});

test("a client's mutation appears live in the logs", async (t) => {
  if (skipIfNoBrowser(t)) return;
  await page.click(".nav-item[data-page=logs]");
  await page.waitForSelector("#log-status:text('live')");
  const rows = page.locator("tr.log-row[data-path='todos:addTodo']", { hasText: "user dash_user" });
  const before = await rows.count();
  await client.mutation(m("todos:addTodo"), { text: "logged live" });
  await waitFor(async () => (await rows.count()) > before, { timeout: 5_000, what: "the mutation's log row" });
  const row = rows.first();
  assert.match(await row.textContent(), /mutation/);
  assert.match(await row.textContent(), /success/);
  await shot("logs");
});

test("a function runs as a given identity", async (t) => {
  if (skipIfNoBrowser(t)) return;
  await page.click(".nav-item[data-page=functions]");
  await page.click(".fn-item[data-path='todos:getMyTodos']");
  await page.selectOption("#fn-as", "identity");
  await page.fill("#fn-identity", JSON.stringify({ subject: "dash_user", issuer: "https://dashboard.test" }));
  await page.click("#fn-run");
  const result = page.locator("#fn-result pre.result");
  await result.waitFor();
  const text = await result.textContent();
  assert.match(text, /logged live/);
  assert.match(text, /edited in the dashboard/);
  await shot("functions");
  await page.selectOption("#fn-as", "anonymous");
  await page.click("#fn-run");
  await page.waitForSelector("#fn-result .run-error:text('Unauthorized')");
});

test("schedules: the example's cron jobs with their next run; a client's scheduled reminder is pending live and Cancel cancels it", async (t) => {
  if (skipIfNoBrowser(t)) return;
  await page.click(".nav-item[data-page=schedules]");
  for (const name of ["clear stale presence", "clear old reminders"]) {
    await page.waitForSelector(`#cron-jobs tr[data-cron='${name}']`);
  }
  const presence = page.locator("#cron-jobs tr[data-cron='clear stale presence']");
  assert.match(await presence.textContent(), /presence:clearStale/);
  assert.match(await presence.textContent(), /crons\.rhai:\d+/);
  // The next run comes from the scheduler's cron table.
  await page.waitForFunction(() => document.querySelector("#cron-jobs tr[data-cron='clear old reminders'] .next-run")?.textContent !== "–");

  const seen = [];
  const unsubscribe = client.onUpdate(q("reminders:list"), {}, (list) => seen.push(list));
  const id = await client.mutation(m("reminders:schedule"), { text: "cancel me from the dashboard", delayMs: 3_600_000 });
  const row = page.locator("#jobs tr[data-state=pending]", { hasText: "reminders:deliver" }).filter({ hasText: id });
  await row.waitFor({ timeout: 5_000 });
  await shot("schedules");
  await row.locator("button.cancel-job").click();
  await waitFor(() => seen.at(-1)?.find((r) => r.id === id)?.state === "canceled", { timeout: 5_000, what: "the client to see its reminder's job canceled" });
  await row.waitFor({ state: "detached", timeout: 5_000 });
  await page.click("#job-states button[data-state=canceled]");
  await page.locator("#jobs tr[data-state=canceled]", { hasText: id }).waitFor({ timeout: 5_000 });
  unsubscribe();
});

test("files: upload through the page, download through its signed link, delete and the bytes go; the routes need the key", async (t) => {
  if (skipIfNoBrowser(t)) return;
  for (const [method, path] of [["POST", "/_dashboard/api/files/urls"], ["POST", "/_dashboard/api/files/upload-url"], ["DELETE", "/_dashboard/api/files/x"]]) {
    const res = await fetch(`${server.url}${path}`, { method, headers: { authorization: "Convex not-the-key" }, body: method === "POST" ? "{}" : undefined });
    assert.equal(res.status, 401, `${method} ${path}`);
  }
  await page.click(".nav-item[data-page=files]");
  await page.waitForSelector("#files td.empty");
  const content = "hello from the dashboard, " + "x".repeat(2000);
  await page.setInputFiles("#file-input", { name: "hello.txt", mimeType: "text/plain", buffer: Buffer.from(content) });
  await page.click("#file-upload");
  const row = page.locator("#files tbody tr[data-id]", { hasText: "text/plain" });
  await row.waitFor({ timeout: 5_000 });
  assert.equal(await row.locator("td.size").getAttribute("data-bytes"), String(content.length));
  await shot("files");
  const href = await row.locator("a.download").getAttribute("href");
  const download = await fetch(href);
  assert.equal(download.status, 200);
  assert.equal(download.headers.get("content-type"), "text/plain");
  assert.equal(await download.text(), content);
  const blobs = () => {
    const root = join(server.dir, ".pulsebase", "storage");
    return readdirSync(root).filter((d) => d.length === 2).flatMap((d) => readdirSync(join(root, d)));
  };
  assert.equal(blobs().length, 1);
  page.once("dialog", (dialog) => dialog.accept());
  await row.locator("button.delete-file").click();
  await row.waitFor({ state: "detached", timeout: 5_000 });
  await waitFor(() => blobs().length === 0, { timeout: 10_000, what: "the deleted file's bytes to go" });
  assert.equal((await fetch(href)).status, 404, "the old link no longer serves the file");
});

test("auth and health pages", async (t) => {
  if (skipIfNoBrowser(t)) return;
  await page.click(".nav-item[data-page=auth]");
  await page.waitForSelector(".provider");
  await page.fill("#token-input", await server.token("checked_user"));
  await page.click("#token-check");
  await page.waitForSelector("#token-report .badge:text('accepted')");
  await shot("auth");
  await page.click(".nav-item[data-page=health]");
  await page.waitForSelector("[data-metric=sessions]");
  await sleep(2_200);
  assert.ok(Number(await page.textContent("[data-metric=sessions]")) >= 2, "the dashboard and the client are sessions");
  await shot("health");
  assert.deepEqual(pageErrors, [], "no uncaught errors in the page");
});

test("--log-format json writes one JSON line per function execution", async (t) => {
  if (skipIfNoBrowser(t)) return;
  const json = await new Server({ dir: copyExampleApp(), extraArgs: ["--log-format", "json"] }).start();
  try {
    const res = await fetch(`${json.url}/api/mutation`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${await json.token("json_user")}` },
      body: JSON.stringify({ path: "todos:addTodo", args: [{ text: "structured" }], format: "convex_encoded_json" }),
    });
    assert.equal((await res.json()).status, "success");
    await json.waitForOutput(/"target":"pulsebase::execution"/);
    const line = json.stderr.split("\n").find((l) => l.includes('"target":"pulsebase::execution"'));
    const event = JSON.parse(line);
    assert.equal(event.fields.path, "todos:addTodo");
    assert.equal(event.fields.kind, "mutation");
    assert.equal(event.fields.caller, "user json_user");
    assert.equal(event.fields.outcome, "success");
    assert.ok(event.fields.duration_ms > 0);
  } finally {
    await json.dispose();
  }
});
