// The seeds' React front-end (examples/react-todo: ConvexReactClient, ConvexProviderWithAuth
// fed by the dev issuer, <Authenticated>/<Unauthenticated>/<AuthLoading>, useQuery,
// useMutation) in a real browser against the real binary: Debian's chromium driven by
// playwright-core. Builds the example (npm ci + tsc + vite build), serves it with
// `pulsebase dev --static-dir`, and signs in two users in two browser contexts plus a second
// tab of the first: todos sync between the tabs within a second without reload, the other
// user never sees them, and signing out shows the Unauthenticated view. A screenshot is saved
// to tests/node/artifacts/.
//
// Chromium is installed with apt-get when /usr/bin/chromium is missing; the test is skipped,
// loudly, only where apt-get cannot run (not root, or no apt-get).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { randomUUID } from "node:crypto";

import { BIN, ROOT, Server, copyExampleApp } from "./lib/server.mjs";

const EXAMPLE = join(ROOT, "examples", "react-todo");
const DIST = join(EXAMPLE, "dist");
const ARTIFACTS = join(ROOT, "tests", "node", "artifacts");
const CHROMIUM = "/usr/bin/chromium";
// What the machine doc lists: without the background-networking flags chromium keeps trying
// to reach Google's hosts, which the closed network refuses.
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
/** "within a second without reload" */
const SYNC_DEADLINE_MS = 1_000;
/** Any other UI step (sign-in, first render). */
const STEP_MS = 15_000;

/** Runs a command, bounded by `timeout`; resolves to {code, out}. */
function run(cmd, args, { cwd, timeout, env = {} }) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const proc = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    proc.stdout.on("data", (d) => (out += d));
    proc.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`${cmd} ${args.join(" ")} timed out after ${timeout} ms:\n${out.slice(-4000)}`));
    }, timeout);
    proc.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out, ms: Date.now() - started });
    });
  });
}

async function runOk(cmd, args, options) {
  const result = await run(cmd, args, options);
  assert.equal(result.code, 0, `${cmd} ${args.join(" ")} failed (exit ${result.code}):\n${result.out.slice(-4000)}`);
  return result;
}

/**
 * Makes sure /usr/bin/chromium exists, installing Debian's package when it does not.
 * Returns null when chromium is there, or the reason apt-get cannot run here.
 */
async function ensureChromium() {
  if (existsSync(CHROMIUM)) return null;
  const hasAptGet = spawnSync("sh", ["-c", "command -v apt-get"], { stdio: "ignore" }).status === 0;
  if (!hasAptGet) return "apt-get is not available on this machine";
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  const sudo = !isRoot && spawnSync("sudo", ["-n", "true"], { stdio: "ignore" }).status === 0;
  if (!isRoot && !sudo) return "apt-get needs root (or password-less sudo), and this test runs as an ordinary user";
  const prefix = sudo ? ["sudo", "-n"] : [];
  const apt = (args, timeout) => {
    const [cmd, ...rest] = [...prefix, "apt-get", ...args];
    return runOk(cmd, rest, { cwd: ROOT, timeout, env: { DEBIAN_FRONTEND: "noninteractive" } });
  };
  console.log("/usr/bin/chromium is missing: installing Debian's chromium with apt-get");
  await apt(["update", "-q"], 240_000);
  await apt(["install", "-y", "-q", "chromium"], 480_000);
  assert.ok(existsSync(CHROMIUM), "apt-get install chromium did not provide /usr/bin/chromium");
  return null;
}

let skipReason = null;
let server;
let browser;

before(async () => {
  skipReason = await ensureChromium();
  if (skipReason) {
    const line = "!".repeat(100);
    console.error(`\n${line}\n!!! SKIPPING the browser test: ${skipReason}.\n!!! Install Debian's chromium (apt-get install -y chromium) to run it.\n${line}\n`);
    return;
  }

  // The example imports the typed api from the repo's functions/_generated/: regenerate it
  // from functions/ and schema.toml first (as `pulsebase dev` at the repo root would), so the
  // build always type-checks against the functions this run serves.
  const codegen = await runOk(BIN, ["codegen", "--dir", ROOT], { cwd: ROOT, timeout: 30_000 });
  console.log(`codegen: ${codegen.out.includes("unchanged") ? "functions/_generated was up to date" : "regenerated functions/_generated"}`);
  const ci = await runOk("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: EXAMPLE, timeout: 240_000 });
  const build = await runOk("npm", ["run", "build"], { cwd: EXAMPLE, timeout: 120_000 });
  console.log(`example: npm ci ${ci.ms} ms, tsc + vite build ${build.ms} ms`);
  assert.ok(existsSync(join(DIST, "index.html")), "vite build wrote dist/index.html");

  server = await new Server({ dir: copyExampleApp(), extraArgs: ["--static-dir", DIST] }).start();
  const { chromium } = await import("playwright-core");
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.dispose();
});

/** DEBUG_BROWSER=1: prints the page's sync protocol frames (but Pings) and HTTP requests. */
function traceProtocol(page, label) {
  const t0 = Date.now();
  const print = (what, text) => {
    if (!text.includes('"Ping"')) console.log(`${Date.now() - t0} ms ${label} ${what} ${text.slice(0, 160)}`);
  };
  page.on("websocket", (ws) => {
    ws.on("framesent", (f) => print("sent", String(f.payload)));
    ws.on("framereceived", (f) => print("recv", String(f.payload)));
  });
  page.on("request", (r) => print("http", `${r.method()} ${r.url()}`));
}

/** Opens a page on the app and records page errors (uncaught exceptions) for the end. */
async function open(context, errors, label) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on("pageerror", (e) => errors.push(`${label}: ${e.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") console.log(`[${label} console] ${msg.text()}`);
  });
  if (process.env.DEBUG_BROWSER) traceProtocol(page, label);
  await page.goto(server.url, { timeout: STEP_MS });
  return page;
}

async function signIn(page, sub, name) {
  await page.bringToFront();
  const form = page.getByTestId("sign-in");
  await form.waitFor();
  await form.locator('input[name="sub"]').fill(sub);
  await form.locator('input[name="name"]').fill(name);
  await form.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("current-user").filter({ hasText: `Signed in as ${name} (${sub})` }).waitFor();
}

/** The texts of the todos on the page. */
const todoTexts = (page) => page.getByTestId("todo").allTextContents();

/** Waits until `page` lists a todo with `text`; returns how long it took from `since`. */
async function seen(page, text, since, timeout = SYNC_DEADLINE_MS) {
  await page.getByTestId("todo").filter({ hasText: text }).first().waitFor({ timeout });
  return Date.now() - since;
}

async function addTodo(page, text) {
  await page.bringToFront();
  const input = page.getByTestId("new-todo");
  await input.fill(text);
  const since = Date.now();
  await input.press("Enter");
  return since;
}

test("react-todo in chromium: live sync across tabs, isolation between users, sign-out", async (t) => {
  if (skipReason) {
    t.skip(`SKIPPED: ${skipReason}`);
    return;
  }
  const errors = [];
  const tag = randomUUID().slice(0, 8);
  const alice = { sub: `alice_${tag}`, name: "Alice" };
  const bob = { sub: `bob_${tag}`, name: "Bob" };

  const contextA = await browser.newContext({ viewport: { width: 900, height: 700 } });
  const contextB = await browser.newContext({ viewport: { width: 900, height: 700 } });
  try {
    // Signed out first: the <Unauthenticated> view.
    const a1 = await open(contextA, errors, "alice tab 1");
    await signIn(a1, alice.sub, alice.name);
    await a1.getByTestId("stored-user").waitFor(); // users:storeUser ran after sign-in
    await a1.getByTestId("empty").waitFor();

    // A second tab of the same browser profile is signed in as Alice too.
    const a2 = await open(contextA, errors, "alice tab 2");
    await a2.getByTestId("current-user").filter({ hasText: `(${alice.sub})` }).waitFor();
    await a2.getByTestId("empty").waitFor();

    const b = await open(contextB, errors, "bob");
    await signIn(b, bob.sub, bob.name);
    await b.getByTestId("empty").waitFor();

    await t.test("a todo added in one tab appears in the other within a second", async () => {
      const first = `buy milk ${tag}`;
      let since = await addTodo(a1, first);
      const ms1 = await seen(a2, first, since);
      await seen(a1, first, since);
      const second = `walk the dog ${tag}`;
      since = await addTodo(a2, second);
      const ms2 = await seen(a1, second, since);
      console.log(`tab 1 -> tab 2 in ${ms1} ms, tab 2 -> tab 1 in ${ms2} ms`);
      assert.deepEqual((await todoTexts(a1)).sort(), [first, second].sort());
      assert.deepEqual((await todoTexts(a2)).sort(), [first, second].sort());
    });

    await t.test("toggling in one tab shows in the other within a second", async () => {
      await a2.bringToFront();
      // click(), not check(): the checkbox is controlled by the query result, so it flips only
      // when the server's answer arrives, and check() would click again.
      await a2.getByTestId("todo").filter({ hasText: "buy milk" }).getByRole("checkbox").click();
      const since = Date.now();
      await a1.locator('[data-testid="todo"].done').filter({ hasText: "buy milk" }).waitFor({ timeout: SYNC_DEADLINE_MS });
      console.log(`toggle tab 2 -> tab 1 in ${Date.now() - since} ms`);
      await a2.locator('[data-testid="todo"].done').filter({ hasText: "buy milk" }).waitFor({ timeout: SYNC_DEADLINE_MS });
      assert.equal(await a1.getByTestId("todo").filter({ hasText: "walk the dog" }).getByRole("checkbox").isChecked(), false);
    });

    await t.test("the other user never sees them", async () => {
      const bobs = `bob's own ${tag}`;
      const since = await addTodo(b, bobs);
      await seen(b, bobs, since);
      // Alice's tabs were live all along; give them the same second to (wrongly) show it.
      await a1.waitForTimeout(SYNC_DEADLINE_MS);
      assert.deepEqual(await todoTexts(b), [bobs]);
      for (const page of [a1, a2]) {
        const texts = await todoTexts(page);
        assert.equal(texts.length, 2, `Alice sees exactly her two todos, saw ${JSON.stringify(texts)}`);
        assert.ok(!texts.some((x) => x.includes("bob's own")), "Alice never sees Bob's todo");
      }
      await b.getByTestId("current-user").filter({ hasText: `(${bob.sub})` }).waitFor();
    });

    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, "browser.png");
    await a1.screenshot({ path: shot, fullPage: true });
    await b.screenshot({ path: join(ARTIFACTS, "browser-bob.png"), fullPage: true });
    console.log(`screenshot: ${shot}`);

    await t.test("signing out shows the Unauthenticated view (in every tab of the profile)", async () => {
      await a1.bringToFront();
      await a1.getByRole("button", { name: "Sign out" }).click();
      await a1.getByTestId("sign-in").waitFor();
      assert.equal(await a1.getByTestId("todo").count(), 0);
      await a2.getByTestId("sign-in").waitFor();
      assert.equal(await a2.getByTestId("todo").count(), 0);
      // Bob, in another browser profile, is still signed in and still sees his todo.
      await b.getByTestId("current-user").filter({ hasText: `(${bob.sub})` }).waitFor();
      assert.equal(await b.getByTestId("todo").count(), 1);
      await a1.screenshot({ path: join(ARTIFACTS, "browser-signed-out.png") });
    });

    await t.test("signing in again as Alice brings her todos back", async () => {
      await signIn(a1, alice.sub, alice.name);
      await a1.getByTestId("todo").nth(1).waitFor();
      assert.equal(await a1.getByTestId("todo").count(), 2);
    });

    assert.deepEqual(errors, [], "no uncaught errors in the pages");
  } finally {
    await contextA.close().catch(() => {});
    await contextB.close().catch(() => {});
  }
});
