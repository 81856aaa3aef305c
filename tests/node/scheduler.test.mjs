// Scheduled functions and cron jobs through the real binary: ctx.scheduler.runAfter/runAt/
// cancel from mutations and actions, _scheduled_functions seen through a subscribed query,
// nothing scheduled by a failed mutation, jobs surviving `kill -9` and running exactly once
// after the restart, an interrupted action marked failed (not re-run), and crons.rhai under
// `pulsebase dev`: a one-second interval observed running, then removed live, and a bad cron
// expression reported with file:line while the previous crons keep running.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import WebSocket from "ws";
import { ConvexClient, ConvexHttpClient } from "convex/browser";

import { Server, waitFor } from "./lib/server.mjs";
import { q, m, rejection, sleep, writeApp } from "./lib/app.mjs";
import { HttpTarget } from "./lib/http_target.mjs";

const SCHEMA = `
[tables.effects]
fields = { tag = "string", at = "number" }
indexes = { by_tag = ["tag"] }
`;

const JOBS = `
// A mutation that schedules a mutation and an action, then fails when asked to.
export const scheduleBoth = mutation(#{
    args: #{ tag: "string", fail: "boolean", delayMs: "number" },
    handler: |ctx, args| {
        let a = ctx.scheduler.runAfter(args.delayMs, "jobs:record", #{ tag: args.tag + "-mutation" });
        let b = ctx.scheduler.runAt(ctx.now() + args.delayMs, "jobs:act", #{ tag: args.tag + "-action" });
        if args.fail { throw "failing on purpose"; }
        [a, b]
    }
});

export const record = internalMutation(#{
    args: #{ tag: "string" },
    handler: |ctx, args| ctx.db.insert("effects", #{ tag: args.tag, at: ctx.now() })
});

export const act = internalAction(#{
    args: #{ tag: "string" },
    handler: |ctx, args| {
        ctx.runMutation("jobs:record", #{ tag: args.tag });
        // An action can schedule too; each call is a commit of its own.
        ctx.scheduler.runAfter(0, "jobs:record", #{ tag: args.tag + "-followup" });
        "acted"
    }
});

export const slowAction = internalAction(#{
    args: #{ url: "string" },
    handler: |ctx, args| {
        fetch(args.url, #{ timeout: 60000 });
    }
});

export const scheduleSlow = mutation(#{
    args: #{ url: "string" },
    handler: |ctx, args| ctx.scheduler.runAfter(0, "jobs:slowAction", #{ url: args.url })
});

export const cancel = mutation(#{
    args: #{ id: "string" },
    handler: |ctx, args| ctx.scheduler.cancel(args.id)
});

export const badPath = mutation(|ctx, args| ctx.scheduler.runAfter(0, "jobs:nope", #{}));
export const badArgs = mutation(|ctx, args| ctx.scheduler.runAfter(0, "jobs:record", #{ tag: 5 }));

export const effects = query(|ctx, args| ctx.db.query("effects").collect().map(|e| e.tag));

export const jobs = query(|ctx, args| ctx.db.system.query("_scheduled_functions").collect().map(|j| #{
    id: j._id, name: j.name, state: j.state.kind, error: j.state.error, scheduledTime: j.scheduledTime,
    completedTime: j.completedTime, args: j.args, cron: j.cron
}));

export const job = query(#{ args: #{ id: "string" }, handler: |ctx, args| ctx.db.system.get(args.id) });

export const tick = internalMutation(|ctx, args| ctx.db.insert("effects", #{ tag: "tick", at: ctx.now() }));
`;

const CRONS_TICK = `export const crons = cronJobs()
    .interval("ticker", #{ seconds: 1 }, "jobs:tick", #{})
    .daily("never soon", #{ hourUTC: 3, minuteUTC: 0 }, "jobs:tick");
`;

function app(extra = {}) {
  return writeApp({ "schema.toml": SCHEMA, "functions/jobs.rhai": JOBS, ...extra });
}

function subscribe(client, name, args = {}) {
  const seen = [];
  const unsubscribe = client.onUpdate(q(name), args, (v) => seen.push(v));
  return {
    seen,
    unsubscribe,
    until: (pred, what, timeout = 10_000) =>
      waitFor(() => seen.length > 0 && pred(seen[seen.length - 1]) && seen[seen.length - 1], { timeout, what }),
  };
}

describe("scheduled functions", () => {
  let server;
  let client;
  let http;

  before(async () => {
    server = await new Server({ dir: app() }).start();
    client = new ConvexClient(server.url, { webSocketConstructor: WebSocket, logger: false });
    http = new ConvexHttpClient(server.url);
  });

  after(async () => {
    await client?.close();
    await server?.dispose();
  });

  test("a failed mutation schedules nothing; a successful one runs both jobs, seen reactively", async () => {
    const jobs = subscribe(client, "jobs:jobs");
    await jobs.until((v) => Array.isArray(v), "the first result");
    const err = await rejection(client.mutation(m("jobs:scheduleBoth"), { tag: "f", fail: true, delayMs: 0 }));
    assert.match(String(err.message), /failing on purpose/);
    await sleep(300);
    assert.deepEqual(await http.query(q("jobs:jobs"), {}), [], "a failed mutation leaves no job");

    // Due in 300 ms, so the pending state lasts long enough for a Transition to show it: with
    // no delay the scheduler may finish the job before the session's next Transition, which
    // then rightly shows only the latest state (seen on PostgreSQL in CI).
    const [a, b] = await client.mutation(m("jobs:scheduleBoth"), { tag: "ok", fail: false, delayMs: 300 });
    const done = await jobs.until(
      (v) => v.filter((j) => j.name.startsWith("jobs:record") || j.name === "jobs:act").every((j) => j.state === "success") &&
        v.some((j) => j.id === a) && v.some((j) => j.id === b) && v.length >= 3,
      "both jobs and the follow-up to succeed",
    );
    const byId = Object.fromEntries(done.map((j) => [j.id, j]));
    assert.equal(byId[a].name, "jobs:record");
    assert.deepEqual(byId[a].args, [{ tag: "ok-mutation" }], "args are stored as Convex does, in a one-element array");
    assert.equal(byId[b].name, "jobs:act");
    assert.ok(byId[a].completedTime >= byId[a].scheduledTime);
    // The states passed through pending, as the subscription saw.
    assert.ok(jobs.seen.some((v) => v.some((j) => j.id === a && j.state === "pending")), "pending was visible");
    await waitFor(async () => (await http.query(q("jobs:effects"), {})).length === 3, { what: "three effects" });
    assert.deepEqual((await http.query(q("jobs:effects"), {})).sort(), ["ok-action", "ok-action-followup", "ok-mutation"]);
    jobs.unsubscribe();
  });

  test("bad paths and bad arguments fail the scheduling mutation with a clear error", async () => {
    const path = await rejection(http.mutation(m("jobs:badPath"), {}));
    assert.match(String(path.message), /jobs:nope/);
    assert.match(String(path.message), /does not export `nope`/);
    const args = await rejection(http.mutation(m("jobs:badArgs"), {}));
    assert.match(String(args.message), /tag/);
  });

  test("cancel: a canceled job never runs", async () => {
    const [a, b] = await http.mutation(m("jobs:scheduleBoth"), { tag: "later", fail: false, delayMs: 1500 });
    await http.mutation(m("jobs:cancel"), { id: a });
    await http.mutation(m("jobs:cancel"), { id: b });
    await sleep(2000);
    const states = (await http.query(q("jobs:jobs"), {})).filter((j) => j.id === a || j.id === b).map((j) => j.state);
    assert.deepEqual(states, ["canceled", "canceled"]);
    assert.ok(!(await http.query(q("jobs:effects"), {})).some((t) => t.startsWith("later")), "nothing ran");
  });

  test("a job scheduled for later starts on time", async () => {
    const before = Date.now();
    const [a] = await http.mutation(m("jobs:scheduleBoth"), { tag: "timed", fail: false, delayMs: 700 });
    const job = await waitFor(async () => {
      const j = await http.query(q("jobs:job"), { id: a });
      return j.state.kind === "success" && j;
    }, { what: "the timed job" });
    assert.ok(job.completedTime - before >= 650, `ran after ${job.completedTime - before} ms`);
    assert.ok(job.completedTime - job.scheduledTime < 1000, `late by ${job.completedTime - job.scheduledTime} ms`);
  });
});

describe("restart and kill -9", () => {
  test("pending jobs survive kill -9 and run exactly once after restart; an interrupted action is failed", async () => {
    const dir = app();
    const target = await new HttpTarget().start();
    let server = await new Server({ dir }).start();
    try {
      const http1 = new ConvexHttpClient(server.url);
      // Due in 3 s: the server is killed before then.
      for (let i = 0; i < 5; i++) {
        await http1.mutation(m("jobs:scheduleBoth"), { tag: `k${i}`, fail: false, delayMs: 3000 });
      }
      // An action that runs when the server dies.
      const slow = await http1.mutation(m("jobs:scheduleSlow"), { url: target.url("/hang") });
      await waitFor(async () => (await http1.query(q("jobs:job"), { id: slow })).state.kind === "inProgress", { what: "the slow action to start" });
      server.proc.kill("SIGKILL");
      await server.exited;
      await sleep(3500); // the jobs' time passes while the server is down

      server = await new Server({ dir, port: 0 }).start();
      const http2 = new ConvexHttpClient(server.url);
      await waitFor(async () => {
        const jobs = await http2.query(q("jobs:jobs"), {});
        return jobs.filter((j) => j.name !== "jobs:slowAction").every((j) => j.state === "success") && jobs.length >= 15;
      }, { what: "every job to run after the restart", timeout: 15_000 });
      const effects = await http2.query(q("jobs:effects"), {});
      for (let i = 0; i < 5; i++) {
        for (const suffix of ["mutation", "action", "action-followup"]) {
          const n = effects.filter((t) => t === `k${i}-${suffix}`).length;
          assert.equal(n, 1, `k${i}-${suffix} ran ${n} times`);
        }
      }
      const interrupted = await http2.query(q("jobs:job"), { id: slow });
      assert.equal(interrupted.state.kind, "failed");
      assert.match(interrupted.state.error, /server stopped while this action ran/);
      // And it stays failed: it is not re-run.
      await sleep(500);
      assert.equal((await http2.query(q("jobs:job"), { id: slow })).state.kind, "failed");
    } finally {
      await server.dispose();
      await target.stop();
    }
  });
});

describe("cron jobs under pulsebase dev", () => {
  test("a one-second interval runs, a bad expression is reported with file:line while it keeps running, and removing it stops it", async () => {
    const dir = app({ "functions/crons.rhai": CRONS_TICK });
    const server = await new Server({ dir }).start();
    try {
      const http = new ConvexHttpClient(server.url);
      const ticks = async () => (await http.query(q("jobs:effects"), {})).filter((t) => t === "tick").length;
      await waitFor(async () => (await ticks()) >= 2, { what: "two ticks", timeout: 6_000 });
      const runs = (await http.query(q("jobs:jobs"), {})).filter((j) => j.cron === "ticker");
      assert.ok(runs.length >= 2 && runs.every((j) => j.name === "jobs:tick"), "each run is recorded in _scheduled_functions");

      // A bad cron expression: a load error at file:line, and the ticker keeps running.
      const outBefore = server.stdout.length + server.stderr.length;
      writeFileSync(join(dir, "functions/crons.rhai"), `export const crons = cronJobs()
    .interval("ticker", #{ seconds: 1 }, "jobs:tick", #{})
    .cron("broken", "0 25 * * *", "jobs:tick", #{});
`);
      await waitFor(() => (server.stdout + server.stderr).slice(outBefore - 1).match(/functions\/crons\.rhai:3/), { what: "the error report with file:line" });
      assert.match(server.stdout + server.stderr, /0 25 \* \* \*/);
      const during = await ticks();
      await waitFor(async () => (await ticks()) >= during + 2, { what: "the ticker to keep running", timeout: 6_000 });

      // Removed live: it stops.
      writeFileSync(join(dir, "functions/crons.rhai"), `export const crons = cronJobs();\n`);
      await server.waitForOutput(/functions synced: crons/);
      await sleep(300);
      const stopped = await ticks();
      await sleep(2500);
      assert.equal(await ticks(), stopped, "no tick after the cron was removed");
    } finally {
      await server.dispose();
    }
  });
});
