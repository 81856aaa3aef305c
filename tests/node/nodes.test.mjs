// Issue 16 through the real binary: several `pulsebase dev` nodes serving one app from one
// PostgreSQL database. The test starts its own throw-away cluster (scripts/pg-cluster.sh, on
// 127.0.0.1, stopped by PID), signs users' tokens with a local identity provider every node
// trusts, and drives the nodes with the official ConvexClient, ConvexHttpClient and raw
// protocol sockets; TCP proxies move a client between nodes and cut a node off the database.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { appendFileSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import WebSocket from "ws";
import { ConvexClient, ConvexHttpClient } from "convex/browser";

import { ROOT, Server, copyExampleApp, createDatabase, waitFor } from "./lib/server.mjs";
import { q, m, sleep, safeJson } from "./lib/app.mjs";
import { RawSocket, decodeTs } from "./lib/raw_ws.mjs";
import { makeKey, mint, startIdp } from "./lib/idp.mjs";
import { TcpProxy } from "./lib/tcp_proxy.mjs";

const CLUSTER = join(ROOT, "scripts/pg-cluster.sh");

// Scheduled jobs that leave one todo each (owner "scheduler"), and a count of them by tag.
const JOBS = `
export const schedule = mutation(#{
    args: #{ tag: "string", delayMs: "number" },
    handler: |ctx, args| ctx.scheduler.runAfter(args.delayMs, "nodejobs:record", #{ tag: args.tag })
});
export const record = internalMutation(#{
    args: #{ tag: "string" },
    handler: |ctx, args| ctx.db.insert("todos", #{ text: args.tag, userId: "scheduler", completed: false })
});
export const count = query(#{
    args: #{ tag: "string" },
    handler: |ctx, args| {
        let n = 0;
        for t in ctx.db.query("todos").withIndex("by_user", |q| q.eq("userId", "scheduler")).collect() {
            if t.text == args.tag { n += 1; }
        }
        n
    }
});
`;

describe("several nodes on one PostgreSQL database", () => {
  let clusterDir;
  let clusterUrl;
  let idp;
  let key;
  let dir;
  const nodes = [];
  const proxies = [];
  const clients = [];
  const appDirs = [];


  const token = (sub) => mint(key, { iss: idp.url, aud: "convex", sub, name: sub });

  async function startNode(databaseUrl) {
    const node = await new Server({ dir, extraArgs: ["--database-url", databaseUrl] }).start();
    nodes.push(node);
    return node;
  }

  function client(url) {
    const c = new ConvexClient(url, { webSocketConstructor: WebSocket, unsavedChangesWarning: false, logger: false });
    clients.push(c);
    return c;
  }

  function watch(c, name, args) {
    const events = [];
    c.onUpdate(q(name), args, (value) => events.push({ value }), (error) => events.push({ error }));
    return {
      events,
      until: (pred, { timeout = 10_000, what = name } = {}) =>
        waitFor(() => {
          const e = events.at(-1);
          return e && pred(e) ? e : null;
        }, { timeout, what }).catch((err) => {
          throw new Error(`${err.message}; last: ${safeJson(events.slice(-2))}`);
        }),
    };
  }

  const texts = (e) => (Array.isArray(e.value) ? e.value.map((t) => t.text) : []);

  async function rawSession(node, sessionId, connectionCount, sub) {
    const s = await RawSocket.open(node.url);
    s.send({ type: "Connect", sessionId, connectionCount, lastCloseReason: connectionCount ? null : "InitialConnect", clientTs: Date.now() });
    s.send({ type: "Authenticate", baseVersion: 0, tokenType: "User", value: await token(sub) });
    s.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [] });
    return s;
  }

  async function countOf(node, sub, text) {
    const http = new ConvexHttpClient(node.url);
    http.setAuth(await token(sub));
    return (await http.query(q("todos:getMyTodos"), {})).filter((t) => t.text === text).length;
  }

  before(async () => {
    clusterDir = mkdtempSync(join(tmpdir(), "pulsebase-nodes-pg-"));
    clusterUrl = execFileSync("bash", [CLUSTER, "start", clusterDir], { encoding: "utf8" }).trim();
    idp = await startIdp();
    key = await makeKey("RS256", "nodes");
    idp.oidcKeys = [key];
    dir = copyExampleApp();
    writeFileSync(join(dir, "auth.config.toml"), `[[providers]]\ndomain = "${idp.url}"\napplicationID = "convex"\n`);
    writeFileSync(join(dir, "functions", "nodejobs.rhai"), JOBS);
    const app = createDatabase(clusterUrl, "app");
    // One after another: the first creates the tables, the others find them.
    for (let i = 0; i < 3; i++) await startNode(app);
  });

  after(async () => {
    await Promise.all(clients.map((c) => Promise.race([c.close().catch(() => {}), sleep(2_000)])));
    for (const node of nodes) await node.stop();
    for (const proxy of proxies) await proxy.stop();
    await idp?.close();
    if (clusterDir) {
      execFileSync("bash", [CLUSTER, "stop", clusterDir]);
      rmSync(clusterDir, { recursive: true, force: true });
    }
    for (const d of [dir, ...appDirs]) if (d) rmSync(d, { recursive: true, force: true });
  });

  test("a subscriber on node B sees a mutation sent through node A, and users stay apart across nodes", async () => {
    const [a, b, c] = nodes;
    const alice = client(b.url);
    alice.setAuth(() => token("alice"));
    const bob = client(c.url);
    bob.setAuth(() => token("bob"));
    const aliceTodos = watch(alice, "todos:getMyTodos", {});
    const bobTodos = watch(bob, "todos:getMyTodos", {});
    await aliceTodos.until((e) => Array.isArray(e.value), { what: "alice's first result" });
    await bobTodos.until((e) => Array.isArray(e.value), { what: "bob's first result" });

    const writer = client(a.url);
    writer.setAuth(() => token("alice"));
    const started = performance.now();
    await writer.mutation(m("todos:addTodo"), { text: "written on A" });
    await aliceTodos.until((e) => texts(e).includes("written on A"), { what: "alice's update on B" });
    const latency = performance.now() - started;

    // Bob's own write on A reaches him on C, and alice's never did.
    const bobWriter = client(a.url);
    bobWriter.setAuth(() => token("bob"));
    await bobWriter.mutation(m("todos:addTodo"), { text: "bob's" });
    await bobTodos.until((e) => texts(e).includes("bob's"), { what: "bob's update on C" });
    const leaked = bobTodos.events.filter((e) => texts(e).includes("written on A"));
    assert.deepEqual(leaked, [], "bob saw alice's todo");
    assert.ok(latency < 5_000, `cross-node update took ${latency} ms`);
  });

  test("commit timestamps strictly increase across nodes", async () => {
    const sockets = await Promise.all(nodes.map((n) => rawSession(n, randomUUID(), 0, "ts_user")));
    try {
      const seen = [];
      for (let i = 0; i < 12; i++) {
        const s = sockets[i % sockets.length];
        const mark = s.messages.length;
        s.send({ type: "Mutation", requestId: i, udfPath: "todos:addTodo", args: [{ text: `ts-${i}` }] });
        const r = await s.next((msg) => msg.type === "MutationResponse" && msg.requestId === i, { from: mark });
        assert.equal(r.success, true, safeJson(r));
        seen.push(decodeTs(r.ts));
      }
      for (let i = 1; i < seen.length; i++) assert.ok(seen[i] > seen[i - 1], `ts went from ${seen[i - 1]} to ${seen[i]}`);
    } finally {
      for (const s of sockets) s.close();
    }
  });

  test("a request re-sent to another node with the same session and request id is applied once", async () => {
    const [a, b] = nodes;
    const session = randomUUID();
    const s1 = await rawSession(a, session, 0, "dedupe_nodes");
    s1.send({ type: "Mutation", requestId: 0, udfPath: "todos:addTodo", args: [{ text: "once" }] });
    const first = await s1.next((msg) => msg.type === "MutationResponse");
    s1.close();
    const s2 = await rawSession(b, session, 1, "dedupe_nodes");
    s2.send({ type: "Mutation", requestId: 0, udfPath: "todos:addTodo", args: [{ text: "once" }] });
    const again = await s2.next((msg) => msg.type === "MutationResponse");
    s2.close();
    assert.equal(first.success, true, safeJson(first));
    assert.equal(again.result, first.result, "node B replays node A's response");
    assert.equal(await countOf(b, "dedupe_nodes", "once"), 1);
  });

  test("a client whose node is killed reconnects to another, and its pending mutation applies exactly once", async () => {
    const victim = await startNode(nodes[0].extraArgs.at(-1));
    const survivor = nodes[1];
    const proxy = await new TcpProxy(victim.port).start();
    proxies.push(proxy);
    const c = client(`http://127.0.0.1:${proxy.port}`);
    c.setAuth(() => token("mover"));
    const todos = watch(c, "todos:getMyTodos", {});
    await todos.until((e) => Array.isArray(e.value), { what: "first result through the victim" });

    // The victim stops answering, the mutation is sent and stays pending, then it dies.
    victim.proc.kill("SIGSTOP");
    const pending = c.mutation(m("todos:addTodo"), { text: "pending" });
    await sleep(300);
    proxy.pointTo(survivor.port);
    victim.proc.kill("SIGKILL");
    await victim.exited;
    proxy.dropAll();

    await Promise.race([pending, sleep(20_000).then(() => Promise.reject(new Error("the pending mutation never resolved")))]);
    await todos.until((e) => texts(e).includes("pending"), { what: "the subscription carrying on through the survivor" });
    assert.equal(await countOf(survivor, "mover", "pending"), 1, "applied exactly once");
  });

  test("kill -9 of a node under 32 writing clients loses no acknowledged mutation, and the others keep committing", async () => {
    const victim = await startNode(nodes[0].extraArgs.at(-1));
    const live = [nodes[0], nodes[1], nodes[2]];
    const targets = [...live, victim];
    const acked = [];
    let killedAt = null;
    let stop = false;
    const http = await Promise.all(
      Array.from({ length: 32 }, async (_, i) => {
        const h = new ConvexHttpClient(targets[i % targets.length].url);
        h.setAuth(await token("loader"));
        return h;
      }),
    );
    const loops = http.map(async (h, i) => {
      for (let n = 0; !stop && n < 10_000; n++) {
        const text = `load-${i}-${n}`;
        try {
          await h.mutation(m("todos:addTodo"), { text });
          acked.push({ text, at: performance.now() });
        } catch {
          // Clients of the killed node fail from then on; nothing they sent was acknowledged.
          await sleep(20);
        }
      }
    });
    await sleep(1_500);
    victim.proc.kill("SIGKILL");
    killedAt = performance.now();
    await sleep(2_000);
    stop = true;
    await Promise.all(loops);

    const after = acked.filter((x) => x.at > killedAt);
    assert.ok(after.length > 50, `only ${after.length} mutations were acknowledged after the kill`);
    const firstAfter = Math.min(...after.map((x) => x.at)) - killedAt;
    assert.ok(firstAfter < 10_000, `writes resumed ${firstAfter} ms after the kill`);

    const reader = new ConvexHttpClient(live[0].url);
    reader.setAuth(await token("loader"));
    const stored = new Map();
    for (const t of await reader.query(q("todos:getMyTodos"), {})) stored.set(t.text, (stored.get(t.text) ?? 0) + 1);
    const lost = acked.filter((x) => stored.get(x.text) !== 1).map((x) => `${x.text}: ${stored.get(x.text) ?? 0}`);
    assert.deepEqual(lost.slice(0, 10), [], `${lost.length} of ${acked.length} acknowledged mutations are not stored exactly once`);
  });

  test("a node cut off from the database refuses to commit, and commits after the others once it is back", async () => {
    const pgPort = Number(new URL(clusterUrl).port);
    const line = await new TcpProxy(pgPort).start();
    proxies.push(line);
    const app = nodes[0].extraArgs.at(-1);
    const cutUrl = app.replace(`:${pgPort}/`, `:${line.port}/`);
    const isolated = await startNode(cutUrl);
    const other = nodes[0];
    const http = (node) => {
      const h = new ConvexHttpClient(node.url);
      return token("fenced").then((t) => (h.setAuth(t), h));
    };
    const mutate = async (node, text) => (await http(node)).mutation(m("todos:addTodo"), { text });

    await mutate(isolated, "before the cut");
    line.cutOff();
    const refused = await mutate(isolated, "during the cut").then(
      () => null,
      (e) => e,
    );
    assert.ok(refused, "a node without its database acknowledged a mutation");
    assert.match(String(refused.message ?? refused), /DatabaseUnreachable|unreachable/i);
    await mutate(other, "the others go on");
    assert.equal(await countOf(other, "fenced", "during the cut"), 0, "nothing of the refused mutation was kept");

    line.restore();
    await waitFor(async () => mutate(isolated, "after the cut").then(() => true, () => false), { timeout: 15_000, every: 200, what: "the node to commit again" });
    const s = await rawSession(isolated, randomUUID(), 0, "fenced");
    const o = await rawSession(other, randomUUID(), 0, "fenced");
    try {
      o.send({ type: "Mutation", requestId: 0, udfPath: "todos:addTodo", args: [{ text: "other" }] });
      const r1 = await o.next((msg) => msg.type === "MutationResponse");
      s.send({ type: "Mutation", requestId: 0, udfPath: "todos:addTodo", args: [{ text: "isolated" }] });
      const r2 = await s.next((msg) => msg.type === "MutationResponse");
      assert.ok(decodeTs(r2.ts) > decodeTs(r1.ts), "the node that was cut off continues the one history");
    } finally {
      s.close();
      o.close();
    }
  });

  test("scheduled jobs run once across the nodes, and another node takes the scheduler over when its holder dies", async () => {
    const live = nodes.filter((n) => n.proc.exitCode === null && n.proc.signalCode === null);
    const holders = () => live.filter((n) => /holds the scheduler lease/.test(n.stdout + n.stderr));
    await waitFor(() => holders().length === 1, { what: "exactly one node to hold the scheduler lease" });
    const run = async (tags, via) => {
      for (const [i, tag] of tags.entries()) {
        await new ConvexHttpClient(via[i % via.length].url).mutation(m("nodejobs:schedule"), { tag, delayMs: 300 });
      }
      const reader = new ConvexHttpClient(via[0].url);
      await waitFor(async () => {
        for (const tag of tags) if (Number(await reader.query(q("nodejobs:count"), { tag })) < 1) return false;
        return true;
      }, { timeout: 15_000, every: 100, what: "every job to run" });
      await sleep(1_000); // room for a second run, which must not come
      for (const tag of tags) assert.equal(Number(await reader.query(q("nodejobs:count"), { tag })), 1, `job ${tag} ran more than once`);
    };
    await run(["job-1", "job-2", "job-3", "job-4", "job-5", "job-6"], live);

    const [holder] = holders();
    holder.proc.kill("SIGKILL");
    await holder.exited;
    const survivors = live.filter((n) => n !== holder);
    const killedAt = performance.now();
    await run(["after-1", "after-2", "after-3"], survivors);
    assert.ok(performance.now() - killedAt < 15_000);
    assert.equal(survivors.filter((n) => /holds the scheduler lease/.test(n.stdout + n.stderr)).length, 1, "one survivor took the lease");
  });

  test("a node whose schema.toml is not the one in force serves queries but refuses mutations (SchemaOutdated) until it runs the deployed app", async () => {
    const database = createDatabase(clusterUrl, "deploy");
    const appDir = () => {
      const d = copyExampleApp();
      writeFileSync(join(d, "auth.config.toml"), `[[providers]]\ndomain = "${idp.url}"\napplicationID = "convex"\n`);
      appDirs.push(d);
      return d;
    };
    const [oldDir, newDir] = [appDir(), appDir()];
    const start = async (d) => {
      const node = await new Server({ dir: d, extraArgs: ["--database-url", database] }).start();
      nodes.push(node);
      return node;
    };
    const oldNode = await start(oldDir);
    const newNode = await start(newDir);
    const http = async (node) => {
      const h = new ConvexHttpClient(node.url);
      h.setAuth(await token("deployer"));
      return h;
    };
    const add = async (node, text) => (await http(node)).mutation(m("todos:addTodo"), { text });
    await add(oldNode, "before the deploy");

    // The deploy reaches one node first: a new table and a function writing it, which
    // `pulsebase dev` on that node applies.
    appendFileSync(join(newDir, "schema.toml"), '\n[tables.notes]\nfields = { body = "string" }\n');
    writeFileSync(
      join(newDir, "functions", "notes.rhai"),
      'export const add = mutation(#{ args: #{ body: "string" }, handler: |ctx, args| ctx.db.insert("notes", #{ body: args.body }) });\n',
    );
    await waitFor(async () => (await http(newNode)).mutation(m("notes:add"), { body: "deployed" }).then(() => true, () => false), {
      timeout: 15_000,
      every: 200,
      what: "the deployed schema to come into force on the node that got it",
    });

    const refused = await add(oldNode, "on the old schema").then(() => null, (e) => e);
    assert.ok(refused, "a node on an outdated schema.toml acknowledged a mutation");
    assert.match(String(refused.message ?? refused), /SchemaOutdated: .*schema\.toml/);
    assert.deepEqual(
      (await (await http(oldNode)).query(q("todos:getMyTodos"), {})).map((t) => t.text),
      ["before the deploy"],
      "the outdated node still serves queries",
    );
    await add(newNode, "on the new schema");
    assert.equal(await countOf(newNode, "deployer", "on the old schema"), 0, "nothing of the refused mutation was kept");

    // The deploy reaches the other node too (`dev` applies it there); it writes again.
    copyFileSync(join(newDir, "schema.toml"), join(oldDir, "schema.toml"));
    copyFileSync(join(newDir, "functions", "notes.rhai"), join(oldDir, "functions", "notes.rhai"));
    await waitFor(async () => add(oldNode, "after the deploy").then(() => true, () => false), {
      timeout: 15_000,
      every: 200,
      what: "the node to write again once it runs the deployed app",
    });
    assert.deepEqual(
      (await (await http(newNode)).query(q("todos:getMyTodos"), {})).map((t) => t.text),
      ["before the deploy", "on the new schema", "after the deploy"],
    );
  });
});
