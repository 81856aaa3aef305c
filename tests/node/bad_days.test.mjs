// Bad days for the operator, through the real binary: the database's disk fills up (a small
// tmpfs), its file system turns read-only, another process holds its lock, and the server is
// stopped with SIGTERM under a mutation load. Each must be reported as what it is, lose
// nothing acknowledged, apply nothing by halves, and recover when the cause is gone.
//
// The tmpfs needs root and `mount`; where that is impossible the test fails (it is not
// skipped), since then the disk-full behaviour would go untested.

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, statSync, unlinkSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import WebSocket from "ws";
import { ConvexClient, ConvexHttpClient } from "convex/browser";

import { BIN, Server, copyExampleApp, waitFor } from "./lib/server.mjs";
import { m, q, rejection, safeJson, sleep } from "./lib/app.mjs";

const servers = [];
const clients = [];
const mounts = [];
const children = [];

after(async () => {
  await Promise.all(clients.map((c) => Promise.race([c.close().catch(() => {}), sleep(2_000)])));
  for (const s of servers) await s.dispose();
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  for (const dir of mounts) {
    spawnSync("umount", ["-l", dir]);
    rmSync(dir, { recursive: true, force: true });
  }
});

const quiet = { logVerbose: () => {}, log: () => {}, warn: () => {}, error: () => {} };

function client(server, sub) {
  const c = new ConvexClient(server.url, { webSocketConstructor: WebSocket, unsavedChangesWarning: false, logger: quiet });
  clients.push(c);
  if (sub) c.setAuth(() => server.token(sub));
  return c;
}

/** A fresh tmpfs of `size`; fails (never skips) when it cannot be mounted. */
function tmpfs(size) {
  const dir = mkdtempSync(join(tmpdir(), "pulsebase-tmpfs-"));
  const uid = process.getuid?.();
  const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { encoding: "utf8" });
  assert.equal(mounted.status, 0, `this test needs to mount a tmpfs (running as uid ${uid}): ${mounted.stderr || mounted.error}`);
  mounts.push(dir);
  return dir;
}

/** Fills the file system holding `dir` with one file until it is full; returns its path. */
function fill(dir) {
  const path = join(dir, "filler");
  const fd = openSync(path, "w");
  const chunk = Buffer.alloc(64 << 10, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (e) {
    if (e.code !== "ENOSPC") throw e;
  }
  // Small writes take what the big ones left.
  try {
    for (;;) writeSync(fd, Buffer.alloc(512, 1));
  } catch (e) {
    if (e.code !== "ENOSPC") throw e;
  } finally {
    closeSync(fd);
  }
  return path;
}

async function httpMutation(server, token, text) {
  return fetch(`${server.url}/api/mutation`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ path: "todos:addTodo", args: [{ text }], format: "convex_encoded_json" }),
  });
}

describe("bad days", () => {
  test("a full disk answers DiskFull, logs it as such, applies nothing, keeps everything acknowledged and recovers; a read-only file system is named at startup", async () => {
    const mnt = tmpfs("8m");
    const dir = copyExampleApp();
    const server = new Server({ dir, extraArgs: ["--data", join(mnt, "db.sqlite3")] });
    servers.push(server);
    await server.start();
    const alice = client(server, "disk_alice");
    const acknowledged = [];
    for (let i = 0; i < 5; i++) {
      await alice.mutation(m("todos:addTodo"), { text: `before ${i}` });
      acknowledged.push(`before ${i}`);
    }
    const filler = fill(mnt);
    const big = (tag) => `${tag} ${"x".repeat(300_000)}`;
    const wsError = await rejection(alice.mutation(m("todos:addTodo"), { text: big("while full") }), "a mutation on a full disk");
    assert.match(wsError.message, /DiskFull: the server's disk is full, so this write was not applied \(nothing of it was kept\); retry later/);
    const token = await server.token("disk_alice");
    const res = await httpMutation(server, token, big("http while full"));
    assert.equal(res.status, 503);
    const body = await res.json();
    assert.equal(body.code, "DiskFull", safeJson(body));
    await server.waitForOutput(/database writes refused: the disk holding the database is full.*free space on the volume/);
    assert.doesNotMatch(server.stderr, /is corrupt/);

    // Reads still work and show exactly what was acknowledged.
    const http = new ConvexHttpClient(server.url);
    http.setAuth(token);
    const texts = async () => (await http.query(q("todos:getMyTodos"), {})).map((t) => t.text);
    assert.deepEqual((await texts()).sort(), [...acknowledged].sort());

    // Space returns: writes work again by themselves.
    unlinkSync(filler);
    await alice.mutation(m("todos:addTodo"), { text: big("after") });
    acknowledged.push(big("after"));
    await server.waitForOutput(/database writes work again after \d+ failed batch/);

    // A restart finds every acknowledged mutation and nothing else.
    await server.stop();
    await server.start();
    const again = new ConvexHttpClient(server.url);
    again.setAuth(await server.token("disk_alice"));
    const stored = (await again.query(q("todos:getMyTodos"), {})).map((t) => t.text);
    assert.deepEqual(stored.sort(), [...acknowledged].sort());

    // A read-only file system (a file system with open writers cannot be remounted, so this
    // is the case of a server started on one) is refused at startup for what it is.
    await server.stop();
    const ro = spawnSync("mount", ["-o", "remount,ro", mnt], { encoding: "utf8" });
    assert.equal(ro.status, 0, `remount read-only: ${ro.stderr}`);
    const refused = spawnSync(BIN, ["serve", "--dir", dir, "--port", "0", "--data", join(mnt, "db.sqlite3")], { encoding: "utf8", timeout: 20_000 });
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /cannot open the database .*db\.sqlite3: the database is on a read-only file system .*make the database file, its folder and its file system writable/);
    const rw = spawnSync("mount", ["-o", "remount,rw", mnt], { encoding: "utf8" });
    assert.equal(rw.status, 0, `remount read-write: ${rw.stderr}`);
  });

  test("a database locked by another process answers DatabaseLocked after the busy timeout and works once the lock is gone", async () => {
    const dir = copyExampleApp();
    const server = new Server({ dir });
    servers.push(server);
    await server.start();
    const token = await server.token("lock_user");
    assert.equal((await httpMutation(server, token, "before the lock")).status, 200);
    // sqlite3 from Python holds the write lock until its stdin closes.
    const holder = spawn("python3", ["-c", `
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
c.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
c.execute("ROLLBACK")
`, join(dir, ".pulsebase", "data.sqlite3")], { stdio: ["pipe", "pipe", "pipe"] });
    children.push(holder);
    let out = "";
    holder.stdout.on("data", (d) => (out += d));
    await waitFor(() => out.includes("locked"), { timeout: 10_000, what: "python to take the lock" });
    const res = await httpMutation(server, token, "during the lock");
    const body = await res.json();
    assert.equal(res.status, 503, safeJson(body));
    assert.equal(body.code, "DatabaseLocked");
    assert.match(body.message, /another process holds the lock on the server's database file/);
    await server.waitForOutput(/database writes refused: another process holds the database's lock/);
    holder.stdin.end();
    await new Promise((r) => holder.once("exit", r));
    assert.equal((await httpMutation(server, token, "after the lock")).status, 200);
    const http = new ConvexHttpClient(server.url);
    http.setAuth(token);
    const texts = (await http.query(q("todos:getMyTodos"), {})).map((t) => t.text).sort();
    assert.deepEqual(texts, ["after the lock", "before the lock"]);
  });

  test("SIGTERM under a mutation load: exit 0 within the deadline, WebSockets closed with 1001, nothing acknowledged lost, nothing left unanswered", async () => {
    const dir = copyExampleApp();
    const server = new Server({ dir });
    servers.push(server);
    await server.start();
    const port = server.port;
    const users = Array.from({ length: 6 }, (_, i) => `term_${i}`);
    let stop = false;
    const acked = new Map(users.map((u) => [u, new Set()]));
    const httpRefused = [];
    const loops = [];
    // WebSocket clients, each its own user, in a closed loop.
    for (const user of users.slice(0, 4)) {
      const c = client(server, user);
      loops.push((async () => {
        for (let i = 0; !stop; i++) {
          const text = `${user} ${i}`;
          await c.mutation(m("todos:addTodo"), { text });
          acked.get(user).add(text);
        }
      })());
    }
    // HTTP clients: each answer is either a success or a refusal (503 while shutting down,
    // or no connection at all).
    for (const user of users.slice(4)) {
      const token = await server.token(user, { ttl: 600 });
      loops.push((async () => {
        for (let i = 0; !stop; i++) {
          const text = `${user} ${i}`;
          try {
            const res = await fetch(`http://127.0.0.1:${port}/api/mutation`, {
              method: "POST",
              headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
              body: JSON.stringify({ path: "todos:addTodo", args: [{ text }], format: "convex_encoded_json" }),
            });
            const body = await res.json().catch(() => ({}));
            if (res.status === 200 && body.status === "success") acked.get(user).add(text);
            else httpRefused.push({ user, text, status: res.status, body });
          } catch (e) {
            httpRefused.push({ user, text, error: String(e.cause?.code ?? e.message) });
            await sleep(50);
          }
        }
      })());
    }
    // A raw session to see the close frame.
    const raw = new WebSocket(`ws://127.0.0.1:${port}/api/1.48.0/sync`);
    let closed = null;
    raw.on("close", (code, reason) => (closed = { code, reason: reason.toString() }));
    await new Promise((r) => raw.once("open", r));
    raw.send(JSON.stringify({ type: "Connect", sessionId: randomUUID(), connectionCount: 0, lastCloseReason: "InitialConnect" }));

    await waitFor(() => [...acked.values()].every((s) => s.size >= 20), { timeout: 30_000, what: "every client to have 20 acknowledged mutations" });
    const t0 = Date.now();
    server.proc.kill("SIGTERM");
    const exit = await Promise.race([server.exited, sleep(15_000).then(() => null)]);
    const took = Date.now() - t0;
    assert.ok(exit, "the server exits within 15 s of SIGTERM");
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(took < 10_000, `stopped in ${took} ms (shutdown timeout 10 s)`);
    await waitFor(() => closed, { timeout: 5_000, what: "the raw session's close" });
    assert.equal(closed.code, 1001, safeJson(closed));
    assert.match(server.stderr, /shutting down: no longer accepting connections/);
    assert.match(server.stderr, /stopped: every acknowledged mutation is in the database file/);
    const wal = join(dir, ".pulsebase", "data.sqlite3-wal");
    assert.ok(!existsSync(wal) || statSync(wal).size === 0, "the WAL was checkpointed into the database file");

    // The same server comes back on the same port; the WebSocket clients reconnect and
    // re-send what was not answered, which is applied once.
    const second = new Server({ dir, port });
    servers.push(second);
    await second.start();
    stop = true;
    await Promise.race([
      Promise.all(loops),
      sleep(30_000).then(() => {
        throw new Error("some mutations were never answered");
      }),
    ]);
    const http = new ConvexHttpClient(second.url);
    let total = 0;
    for (const user of users) {
      http.setAuth(await second.token(user));
      const stored = (await http.query(q("todos:getMyTodos"), {})).map((t) => t.text);
      const want = acked.get(user);
      total += want.size;
      assert.equal(new Set(stored).size, stored.length, `${user}: no mutation applied twice`);
      for (const text of want) assert.ok(stored.includes(text), `${user}: acknowledged "${text}" is stored`);
      const extra = stored.filter((t) => !want.has(t));
      assert.deepEqual(extra, [], `${user}: nothing stored that was not acknowledged (refused: ${safeJson(httpRefused.filter((r) => r.user === user).slice(0, 3))})`);
    }
    assert.ok(total >= 120, `${total} mutations acknowledged`);
  });
});
