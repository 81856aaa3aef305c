// Actions through the real binary: `action` / `internalAction` called by the official
// ConvexClient (the Action message over WebSocket) and ConvexHttpClient (POST /api/action) and
// by `pulsebase run`; `fetch` against a local HTTP server this test starts on 127.0.0.1
// (status, headers, JSON, timeouts, the body cap, the private-network policy and redirects);
// the example app's links:fetchTitle; and actions that hang while mutations and subscriptions
// go on at their usual speed.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import WebSocket from "ws";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { ConvexError } from "convex/values";
import { makeFunctionReference } from "convex/server";

import { Server, copyExampleApp, waitFor } from "./lib/server.mjs";
import { rejection, safeJson, sleep, writeApp } from "./lib/app.mjs";
import { HttpTarget } from "./lib/http_target.mjs";

const fn = (name) => makeFunctionReference(name);

// Test actions, added to a copy of the example app as functions/acts.rhai.
const ACTS = `
// \`returns\` makes the status (a Rhai integer, int64) a plain number for JavaScript.
export const get = action(#{
    args: #{ url: "string" },
    returns: "object{ status: number, ok: boolean, type: string, custom: string, json: any, url: string }",
    handler: |ctx, args| {
        let r = fetch(args.url);
        #{ status: r.status, ok: r.ok, type: r.headers["content-type"], custom: r.headers["x-custom"], json: r.json(), url: r.url }
    }
});

export const post = action(#{
    args: #{ url: "string", body: "any" },
    returns: "object{ status: number, json: any }",
    handler: |ctx, args| {
        let r = fetch(args.url, #{ method: "POST", body: args.body, headers: #{ "x-from": "pulsebase" } });
        #{ status: r.status, json: r.json() }
    }
});

export const size = action(#{
    args: #{ url: "string", timeout: "number" },
    handler: |ctx, args| fetch(args.url, #{ timeout: args.timeout }).text().len()
});

export const fails = action(#{
    args: #{ n: "number" },
    handler: |ctx, args| {
        print("about to fail");
        throw #{ code: "BAD", n: args.n };
    }
});

export const secret = internalAction(|ctx, args| "internal only");
export const callsSecret = action(|ctx, args| ctx.runAction("acts:secret"));

export const whoami = action(|ctx, args| {
    let me = ctx.auth.getUserIdentity();
    if me == () { () } else { me.subject }
});

// A plain mutation and query for the latency measurements.
export const note = mutation(#{
    args: #{ text: "string" },
    handler: |ctx, args| ctx.db.insert("links", #{ url: "note", title: args.text, status: 0.0 })
});
`;

function appWithActs() {
  const dir = copyExampleApp();
  writeFileSync(join(dir, "functions", "acts.rhai"), ACTS);
  return dir;
}

/** ConvexClients that log into `logs`; all closed by closeAll(). */
function clients() {
  const made = [];
  const logs = [];
  const logger = {
    logVerbose: () => {},
    log: (...a) => logs.push(a.join(" ")),
    warn: (...a) => logs.push(a.join(" ")),
    error: (...a) => logs.push(a.join(" ")),
  };
  return {
    logs,
    make(server) {
      const c = new ConvexClient(server.url, { webSocketConstructor: WebSocket, unsavedChangesWarning: false, logger });
      made.push(c);
      return c;
    },
    async closeAll() {
      await Promise.all(made.map((c) => Promise.race([c.close().catch(() => {}), sleep(2_000)])));
      made.length = 0;
    },
  };
}

async function health(server) {
  return (await fetch(`${server.url}/api/health`)).json();
}

describe("actions through the official clients", () => {
  let server;
  let target;
  const made = clients();

  before(async () => {
    target = await new HttpTarget().start();
    server = await new Server({ dir: appWithActs() }).start();
  });

  after(async () => {
    await made.closeAll();
    await server?.dispose();
    await target?.stop();
  });

  test("ConvexClient.action and ConvexHttpClient.action fetch a local endpoint", async () => {
    const client = made.make(server);
    const http = new ConvexHttpClient(server.url);
    for (const call of [(f, a) => client.action(f, a), (f, a) => http.action(f, a)]) {
      const got = await call(fn("acts:get"), { url: target.url("/json") });
      assert.deepEqual(got, {
        status: 200,
        ok: true,
        type: "application/json",
        custom: "yes",
        json: { hello: "world", n: 3 },
        url: target.url("/json"),
      });
      const followed = await call(fn("acts:get"), { url: target.url("/redirect-json") });
      assert.equal(followed.url, target.url("/json"));
      const posted = await call(fn("acts:post"), { url: target.url("/echo"), body: { a: [1, "two"] } });
      assert.equal(posted.status, 201);
      assert.deepEqual(posted.json, { method: "POST", type: "application/json", body: '{"a":[1.0,"two"]}' });
    }
  });

  test("the example's links:fetchTitle stores through a mutation, and subscribers see it", async () => {
    const watcher = made.make(server);
    const seen = [];
    watcher.onUpdate(fn("links:list"), {}, (links) => seen.push(links));
    const caller = made.make(server);
    caller.setAuth(() => server.token("user_links"));
    const done = await caller.action(fn("links:fetchTitle"), { url: target.url("/page") });
    assert.equal(done.title, "Hello from the target");
    const latest = await waitFor(() => seen.at(-1)?.find((l) => l._id === done.id), { what: "the link in links:list" });
    assert.equal(latest.title, "Hello from the target");
    assert.equal(latest.status, 200);
    assert.equal(latest.userId, "user_links");

    const http = new ConvexHttpClient(server.url);
    const failed = await rejection(http.action(fn("links:fetchTitle"), { url: target.url("/missing") }));
    assert.ok(failed instanceof ConvexError, String(failed));
    assert.deepEqual(failed.data, { code: "FETCH_FAILED", status: 404, url: target.url("/missing") });
  });

  test("argument validation, thrown ConvexError data and log lines reach both clients", async () => {
    const client = made.make(server);
    const http = new ConvexHttpClient(server.url);
    for (const call of [(f, a) => client.action(f, a), (f, a) => http.action(f, a)]) {
      const bad = await rejection(call(fn("acts:get"), { url: 5 }));
      assert.match(bad.message, /ArgumentValidationError: args\.url: expected string/);
      const thrown = await rejection(call(fn("acts:fails"), { n: 7 }));
      assert.ok(thrown instanceof ConvexError, String(thrown));
      assert.deepEqual(thrown.data, { code: "BAD", n: 7 });
    }
    await waitFor(() => made.logs.some((l) => l.includes("about to fail")), { what: "the action's log line" });
  });

  test("internal actions are invisible to clients, callable from actions and pulsebase run", async () => {
    const client = made.make(server);
    const http = new ConvexHttpClient(server.url);
    for (const call of [(f, a) => client.action(f, a), (f, a) => http.action(f, a)]) {
      const hidden = await rejection(call(fn("acts:secret"), {}));
      assert.match(hidden.message, /Could not find public function for 'acts:secret'/);
      assert.equal(await call(fn("acts:callsSecret"), {}), "internal only");
    }
    const run = await server.cli(["run", "acts:secret"]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(JSON.parse(run.stdout), "internal only");
    const fetched = await server.cli(["run", "acts:get", JSON.stringify({ url: target.url("/json") })]);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.deepEqual(JSON.parse(fetched.stdout).json, { hello: "world", n: 3 });
    const failed = await server.cli(["run", "acts:fails", '{"n": 2}']);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /about to fail/);
    assert.match(failed.stderr, /data: \{"code":"BAD","n":2(\.0)?\}/);
  });

  test("an action runs as its caller: a signed-in client, anonymous, or pulsebase run --identity", async () => {
    const client = made.make(server);
    client.setAuth(() => server.token("user_a"));
    assert.equal(await client.action(fn("acts:whoami"), {}), "user_a");
    assert.equal(await new ConvexHttpClient(server.url).action(fn("acts:whoami"), {}), null);
    const run = await server.cli(["run", "acts:whoami", "--identity", '{"subject":"u9","issuer":"x"}']);
    assert.equal(JSON.parse(run.stdout), "u9");
  });

  test("a fetch times out, and a body over 20 MiB is refused", async () => {
    const client = made.make(server);
    const started = Date.now();
    const slow = await rejection(client.action(fn("acts:size"), { url: target.url("/hang"), timeout: 300 }));
    assert.match(slow.message, /fetch to http:\/\/127\.0\.0\.1:\d+\/hang timed out after 300 ms/);
    assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
    const big = await rejection(client.action(fn("acts:size"), { url: target.url("/big"), timeout: 30_000 }));
    assert.match(big.message, /the response body exceeds the limit of 20971520 bytes/);
  });
});

describe("fetch and the private network", () => {
  let target;
  before(async () => {
    target = await new HttpTarget().start();
  });
  after(async () => {
    await target?.stop();
  });

  test("without the allowance, loopback is refused by address, by name, and never reached", async () => {
    const server = await new Server({ dir: appWithActs(), extraArgs: ["--allow-private-network=false"] }).start();
    try {
      const http = new ConvexHttpClient(server.url);
      const before = target.hits;
      const byAddress = await rejection(http.action(fn("acts:get"), { url: target.url("/json") }));
      assert.match(byAddress.message, /fetch to http:\/\/127\.0\.0\.1:\d+\/json refused: 127\.0\.0\.1 is a loopback address/);
      assert.match(byAddress.message, /--allow-private-network/);
      const byName = await rejection(http.action(fn("acts:get"), { url: `http://localhost:${target.port}/json` }));
      assert.match(byName.message, /localhost resolves to non-public addresses only: 127\.0\.0\.1 is a loopback address/);
      const mapped = await rejection(http.action(fn("acts:get"), { url: `http://[::ffff:127.0.0.1]:${target.port}/json` }));
      assert.match(mapped.message, /refused: .* is a loopback address/);
      const scheme = await rejection(http.action(fn("acts:get"), { url: "file:///etc/passwd" }));
      assert.match(scheme.message, /only http and https URLs can be fetched/);
      assert.equal(target.hits, before, "a refused fetch reached the target");
    } finally {
      await server.dispose();
    }
  });

  test("an allowed address may not redirect to one that is not", async () => {
    const server = await new Server({ dir: appWithActs(), extraArgs: ["--allow-private-network=127.0.0.1"] }).start();
    try {
      const http = new ConvexHttpClient(server.url);
      const allowed = await http.action(fn("acts:get"), { url: target.url("/json") });
      assert.equal(allowed.status, 200);
      const redirected = await rejection(http.action(fn("acts:get"), { url: target.url("/redirect-private") }));
      assert.match(
        redirected.message,
        /refused: it redirected to http:\/\/127\.0\.0\.2:\d+\/json, and 127\.0\.0\.2 is a loopback address/,
      );
    } finally {
      await server.dispose();
    }
  });

  test("HTTP actions get the same fetch", async () => {
    const dir = writeApp({
      "schema.toml": "",
      "functions/http.rhai": `
export const http = httpRouter()
    .route(#{ path: "/proxy", method: "GET", handler: httpAction(|ctx, request| {
        let r = fetch(request.query.url);
        #{ status: 200, body: #{ upstream: r.status, json: r.json() } }
    }) });
`,
    });
    const server = await new Server({ dir, extraArgs: ["--allow-private-network=127.0.0.1"] }).start();
    try {
      const ok = await fetch(`${server.url}/proxy?url=${encodeURIComponent(target.url("/json"))}`);
      assert.deepEqual(await ok.json(), { upstream: 200, json: { hello: "world", n: 3 } });
      const refused = await fetch(`${server.url}/proxy?url=${encodeURIComponent(`http://127.0.0.3:${target.port}/json`)}`);
      assert.equal(refused.status, 500);
      assert.match((await refused.json()).message, /127\.0\.0\.3 is a loopback address/);
    } finally {
      await server.dispose();
    }
  });
});

/** The median and the maximum of `samples`. */
function stats(samples) {
  const sorted = [...samples].sort((x, y) => x - y);
  return { p50: sorted[Math.floor(sorted.length / 2)], max: sorted.at(-1) };
}

/** Mutation round trips, and the time until a subscriber sees each one, `n` times. */
async function measure(writer, seen, n, label) {
  const mutation = [];
  const subscription = [];
  for (let i = 0; i < n; i++) {
    const text = `${label}-${i}`;
    const t0 = performance.now();
    await writer.mutation(fn("acts:note"), { text });
    mutation.push(performance.now() - t0);
    await waitFor(() => seen.at(-1)?.some((l) => l.title === text), { timeout: 10_000, what: `${text} at the subscriber` });
    subscription.push(performance.now() - t0);
  }
  return { mutation: stats(mutation), subscription: stats(subscription) };
}

describe("actions that hang", () => {
  let target;
  before(async () => {
    target = await new HttpTarget().start();
  });
  after(async () => {
    await target?.stop();
  });

  test("200 hanging actions delay neither mutations nor subscriptions", async () => {
    const server = await new Server({ dir: appWithActs() }).start();
    const made = clients();
    try {
      const writer = made.make(server);
      const watcher = made.make(server);
      const seen = [];
      watcher.onUpdate(fn("links:list"), {}, (links) => seen.push(links));
      await waitFor(() => seen.length > 0, { what: "the first links:list result" });
      await measure(writer, seen, 5, "warmup");
      const quiet = await measure(writer, seen, 20, "quiet");

      // More hanging actions than there are threads serving queries (16).
      const hangers = made.make(server);
      const pending = [];
      for (let i = 0; i < 200; i++) {
        pending.push(hangers.action(fn("acts:size"), { url: target.url("/hang"), timeout: 120_000 }).catch((e) => e));
      }
      await waitFor(async () => target.hanging >= 200 && (await health(server)).actionsInFlight >= 200, {
        timeout: 20_000,
        what: "200 actions hanging in fetch",
      });
      const busy = await measure(writer, seen, 20, "busy");
      console.log(`mutation p50/max ms quiet ${safeJson(quiet.mutation)} busy ${safeJson(busy.mutation)}; subscription quiet ${safeJson(quiet.subscription)} busy ${safeJson(busy.subscription)}`);
      for (const kind of ["mutation", "subscription"]) {
        assert.ok(
          busy[kind].p50 <= Math.max(3 * quiet[kind].p50, quiet[kind].p50 + 50),
          `${kind} p50 ${busy[kind].p50} ms with hanging actions vs ${quiet[kind].p50} ms without`,
        );
        assert.ok(busy[kind].max < 2_000, `${kind} max ${busy[kind].max} ms with hanging actions`);
      }
      assert.equal((await health(server)).actionsInFlight, 200, "the actions are still hanging");

      // Ending the target ends their fetches; every action answers.
      await target.stop();
      const outcomes = await Promise.race([Promise.all(pending), sleep(20_000).then(() => null)]);
      assert.ok(outcomes, "the hanging actions did not answer after their target stopped");
      assert.ok(outcomes.every((o) => o instanceof Error && /fetch to .*\/hang failed/.test(o.message)), safeJson(outcomes[0]?.message));
      await waitFor(async () => (await health(server)).actionsInFlight === 0, { what: "no action in flight" });
      target = await new HttpTarget().start();
    } finally {
      await made.closeAll();
      await server.dispose();
    }
  });

  test("past the running and waiting bound, an action is refused at once", async () => {
    const server = await new Server({ dir: appWithActs(), extraArgs: ["--max-actions", "1"] }).start();
    const made = clients();
    try {
      const client = made.make(server);
      // One runs and ten wait (the queue is ten times --max-actions).
      const pending = [];
      for (let i = 0; i < 11; i++) {
        pending.push(client.action(fn("acts:size"), { url: target.url("/hang"), timeout: 60_000 }).catch((e) => e));
      }
      await waitFor(async () => (await health(server)).actionsInFlight === 11, { what: "11 actions in flight" });
      const refused = await rejection(client.action(fn("acts:whoami"), {}));
      assert.match(refused.message, /too many actions in flight/);
      const overHttp = await rejection(new ConvexHttpClient(server.url).action(fn("acts:whoami"), {}));
      assert.match(overHttp.message, /TooManyActions/);
      // Mutations are not actions: they still run.
      await client.mutation(fn("acts:note"), { text: "still writable" });
    } finally {
      await made.closeAll();
      await server.dispose();
    }
  });
});
