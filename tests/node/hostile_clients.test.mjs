// Hostile clients against the real binary: connections that never send a request or send half
// a header, keep-alive connections left idle, WebSockets that stop answering pings, a client
// that fills the connection cap or its address's share of it (also behind a trusted proxy),
// and clients over their rate limits (function calls per user, failed authentications and new
// connections per address). Each case starts its own server with the limits it needs.

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { randomUUID } from "node:crypto";
import WebSocket from "ws";
import { ConvexClient, ConvexHttpClient } from "convex/browser";

import { Server, copyExampleApp, waitFor } from "./lib/server.mjs";
import { m, q, rejection, safeJson, sleep } from "./lib/app.mjs";

const servers = [];
const clients = [];
const sockets = [];

after(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(clients.map((c) => Promise.race([c.close().catch(() => {}), sleep(2_000)])));
  for (const s of servers) await s.dispose();
});

async function start(extraArgs) {
  const server = new Server({ dir: copyExampleApp(), extraArgs });
  servers.push(server);
  return server.start();
}

const quiet = { logVerbose: () => {}, log: () => {}, warn: () => {}, error: () => {} };

function client(server, sub) {
  const c = new ConvexClient(server.url, { webSocketConstructor: WebSocket, unsavedChangesWarning: false, logger: quiet });
  clients.push(c);
  if (sub) c.setAuth(() => server.token(sub));
  return c;
}

/** A raw TCP connection that records what it receives and when it closes. */
function raw(server) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(server.port, "127.0.0.1");
    sockets.push(socket);
    const state = { socket, data: "", closedAt: null, openedAt: Date.now() };
    socket.on("data", (d) => (state.data += d.toString()));
    socket.on("close", () => (state.closedAt = Date.now()));
    socket.on("error", () => {});
    socket.once("connect", () => resolve(state));
    socket.once("error", reject);
  });
}

async function health(server) {
  return (await fetch(`${server.url}/api/health`)).json();
}

describe("connection hygiene", () => {
  test("connections that send nothing, half a header, or stay idle after a response are closed within --header-timeout; a live WebSocket is not", async () => {
    const server = await start(["--header-timeout", "1"]);
    const silent = await raw(server);
    const half = await raw(server);
    half.socket.write("GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
    const keepAlive = await raw(server);
    keepAlive.socket.write("GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    await waitFor(() => keepAlive.data.includes('"status":"ok"'), { what: "the keep-alive response" });
    const answeredAt = Date.now();
    const ws = client(server, "live_user");
    const seen = [];
    ws.onUpdate(q("todos:getMyTodos"), {}, (v) => seen.push(v));
    await waitFor(() => seen.length > 0, { what: "the live session's first result" });

    await waitFor(() => silent.closedAt && half.closedAt && keepAlive.closedAt, { timeout: 5_000, what: "the three connections to be closed" });
    for (const [name, c, from] of [["silent", silent, silent.openedAt], ["half header", half, half.openedAt], ["idle keep-alive", keepAlive, answeredAt]]) {
      const after = c.closedAt - from;
      assert.ok(after >= 800 && after < 3_500, `${name} closed after ${after} ms (limit 1 s)`);
    }
    assert.equal(silent.data, "", "nothing is sent to a connection that never asked");

    // The WebSocket outlives several header timeouts and still works.
    await sleep(2_500);
    await ws.mutation(m("todos:addTodo"), { text: "still here" });
    await waitFor(() => seen.at(-1)?.some((t) => t.text === "still here"), { what: "the update on the live session" });
    assert.ok((await health(server)).guard.headerTimeouts >= 3);
  });

  test("a WebSocket whose peer stops answering pings is closed after --websocket-idle-timeout; one that answers stays", async () => {
    const server = await start(["--websocket-idle-timeout", "2"]);
    const url = server.url.replace("http", "ws") + "/api/1.48.0/sync";
    const open = (options) =>
      new Promise((resolve, reject) => {
        const s = new WebSocket(url, options);
        const state = { s, closed: null };
        s.on("close", (code, reason) => (state.closed = { code, reason: reason.toString(), at: Date.now() }));
        s.once("open", () => resolve(state));
        s.once("error", reject);
      });
    const deaf = await open({ autoPong: false });
    const alive = await open({});
    for (const c of [deaf, alive]) c.s.send(JSON.stringify({ type: "Connect", sessionId: randomUUID(), connectionCount: 0, lastCloseReason: "InitialConnect" }));
    // The server pings every 15 s; the deaf peer is dropped at the first ping after 2 s of silence.
    await waitFor(() => deaf.closed, { timeout: 20_000, what: "the deaf WebSocket to be closed" });
    assert.match(deaf.closed.reason, /no answer to pings/);
    assert.equal(alive.closed, null, "the WebSocket that answers pings stays open");
    alive.s.close();
    assert.ok((await health(server)).guard.webSocketsClosedIdle >= 1);
  });

  test("the connection cap refuses a new connection with a 503 naming the limit while existing clients keep working", async () => {
    const server = await start(["--max-connections", "4", "--header-timeout", "30"]);
    const alice = client(server, "cap_alice");
    const seen = [];
    alice.onUpdate(q("todos:getMyTodos"), {}, (v) => seen.push(v));
    await waitFor(() => seen.length > 0, { what: "alice's first result" });
    // Fill the cap with idle connections (alice's WebSocket and the HTTP client's pooled
    // connection already hold slots) until one is refused.
    const holders = [];
    let refused = null;
    for (let i = 0; i < 6 && !refused; i++) {
      const c = await raw(server);
      await sleep(150);
      if (c.closedAt !== null || c.data) refused = c;
      else holders.push(c);
    }
    assert.ok(refused, "a connection past the cap is refused");
    await waitFor(() => refused.closedAt, { what: "the refused connection to close" });
    assert.match(refused.data, /^HTTP\/1\.1 503 /);
    assert.match(refused.data, /"code":"TooManyConnections"/);
    assert.match(refused.data, /connection limit \(4 open connections, --max-connections\)/);
    assert.ok(holders.length >= 1 && holders.length <= 3, `${holders.length} idle connections fit`);

    // Alice's session is untouched.
    await alice.mutation(m("todos:addTodo"), { text: "during the cap" });
    await waitFor(() => seen.at(-1)?.some((t) => t.text === "during the cap"), { what: "alice's update" });

    for (const h of holders) h.socket.destroy();
    const h = await waitFor(async () => {
      const res = await fetch(`${server.url}/api/health`).catch(() => null);
      return res?.status === 200 ? res.json() : null;
    }, { what: "a slot to come back" });
    assert.ok(h.guard.refusedAtMaxConnections >= 1, safeJson(h.guard));
    await server.waitForOutput(/refused \d+ connection\(s\) since the last report: the server is at its connection limit/);
  });

  test("--max-connections-per-ip counts each forwarded client separately behind a trusted proxy", async () => {
    const server = await start(["--max-connections-per-ip", "2", "--trust-proxy", "loopback"]);
    const url = server.url.replace("http", "ws") + "/api/1.48.0/sync";
    const open = (forwardedFor) =>
      new Promise((resolve) => {
        const s = new WebSocket(url, { headers: { "x-forwarded-for": forwardedFor } });
        s.once("open", () => resolve({ ok: true, s }));
        s.once("unexpected-response", (_req, res) => {
          let body = "";
          res.on("data", (d) => (body += d));
          res.on("end", () => resolve({ ok: false, status: res.statusCode, body }));
        });
        s.once("error", (e) => resolve({ ok: false, error: e.message }));
      });
    const first = await open("198.51.100.1, 203.0.113.7");
    const second = await open("203.0.113.7");
    const third = await open("203.0.113.7");
    const other = await open("203.0.113.8");
    try {
      assert.ok(first.ok && second.ok, "two sessions from one client");
      assert.equal(third.ok, false);
      assert.equal(third.status, 503);
      assert.match(third.body, /TooManyConnectionsFromAddress/);
      assert.match(third.body, /--max-connections-per-ip/);
      assert.ok(other.ok, "another client behind the same proxy is not affected");
      // The proxy itself is not capped per address: plain requests still pass.
      for (let i = 0; i < 5; i++) assert.equal((await fetch(`${server.url}/api/health`)).status, 200);
    } finally {
      for (const c of [first, second, third, other]) c.s?.close();
    }
  });

  test("a client still sending a large body reads the refusal, and a drained connection serves its next request", async () => {
    const server = await start([]);
    const big = Buffer.alloc(64 << 20, 32);
    const post = async (path) => {
      const res = await fetch(server.url + path, { method: "POST", headers: { "content-type": "application/json" }, body: big }).catch((e) => {
        throw new Error(`POST ${path}: the refusal did not reach the client: ${e.message} (${e.cause?.code ?? ""})`);
      });
      return { status: res.status, body: await res.json() };
    };
    for (let round = 0; round < 3; round++) {
      const mutation = await post("/api/mutation");
      assert.equal(mutation.status, 413);
      assert.deepEqual(mutation.body, { code: "PayloadTooLarge", message: "the request body is larger than the limit of 20 MiB" });
      const unknown = await post("/api/no-such-route");
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.code, "NotFound");
    }
    // Refused before its body was read, the request is drained, so the same connection answers the next one.
    const socket = await raw(server);
    const body = Buffer.alloc(8 << 20, 32);
    socket.socket.write(`POST /api/no-such-route HTTP/1.1\r\nhost: x\r\ncontent-length: ${body.length}\r\n\r\n`);
    socket.socket.write(body);
    socket.socket.write("GET /api/health HTTP/1.1\r\nhost: x\r\n\r\n");
    await waitFor(() => (socket.data.match(/HTTP\/1\.1 /g) ?? []).length >= 2, { what: `two responses on one connection (got: ${socket.data.slice(0, 300)})` });
    assert.match(socket.data, /^HTTP\/1\.1 404/);
    assert.match(socket.data, /HTTP\/1\.1 200[\s\S]*"status":"ok"/);
    assert.equal(socket.closedAt, null, "the connection stays open");
  });
});

describe("rate limits", () => {
  test("a user over calls-per-user gets Convex's RateLimited error naming the limit and the retry time; other users are not affected", async () => {
    const server = await start(["--rate-limit", "calls-per-user=2/s:4"]);
    const alice = client(server, "rl_alice");
    const bob = client(server, "rl_bob");
    // One subscription each (a call too), then a burst of mutations from alice.
    const seen = [];
    alice.onUpdate(q("todos:getMyTodos"), {}, (v) => seen.push(v));
    await waitFor(() => seen.length > 0, { what: "alice's subscription" });
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => alice.mutation(m("todos:addTodo"), { text: `a${i}` })));
    const ok = results.filter((r) => r.status === "fulfilled").length;
    const limited = results.filter((r) => r.status === "rejected").map((r) => r.reason);
    assert.ok(ok >= 2 && ok <= 5, `${ok} of 10 passed with a burst of 4 (one token went to the subscription)`);
    assert.equal(ok + limited.length, 10);
    for (const e of limited) {
      assert.equal(e.data?.kind, "RateLimited", safeJson({ message: e.message, data: e.data }));
      assert.equal(e.data.name, "calls-per-user");
      assert.ok(e.data.retryAfter > 0 && e.data.retryAfter <= 1_000, `retryAfter ${e.data.retryAfter} ms`);
      assert.match(e.message, /Rate limit calls-per-user exceeded: this server allows 2 a second function calls per user \(bursts of 4\); retry in \d/);
    }
    // Bob is unaffected at the same moment.
    for (let i = 0; i < 3; i++) await bob.mutation(m("todos:addTodo"), { text: `b${i}` });
    // Alice can go on once the bucket refills.
    await sleep(limited[0].data.retryAfter + 50);
    await alice.mutation(m("todos:addTodo"), { text: "after waiting" });
    await waitFor(() => seen.at(-1)?.some((t) => t.text === "after waiting"), { what: "alice's later mutation to show" });

    // Over HTTP: 429 with Retry-After; ConvexHttpClient surfaces the message.
    const token = await server.token("rl_carol");
    const http = new ConvexHttpClient(server.url);
    http.setAuth(token);
    const outcomes = await Promise.allSettled(Array.from({ length: 8 }, () => http.query(q("todos:getMyTodos"), {})));
    const httpErrors = outcomes.filter((r) => r.status === "rejected").map((r) => r.reason.message);
    assert.ok(httpErrors.length >= 3, `${httpErrors.length} HTTP calls refused`);
    assert.match(httpErrors[0], /RateLimited/);
    assert.match(httpErrors[0], /calls-per-user/);
    let res;
    for (let i = 0; i < 8; i++) {
      res = await fetch(`${server.url}/api/query`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ path: "todos:getMyTodos", args: [{}], format: "convex_encoded_json" }),
      });
      if (res.status === 429) break;
    }
    assert.equal(res.status, 429);
    assert.ok(Number(res.headers.get("retry-after")) >= 1);
    const body = await res.json();
    assert.equal(body.kind, "RateLimited");
    assert.equal(body.name, "calls-per-user");

    const h = await health(server);
    assert.ok(h.guard.rateLimited["calls-per-user"] >= limited.length + 3, safeJson(h.guard));
    await server.waitForOutput(/rate limit calls-per-user \(2\/s:4\) refused \d+ request\(s\)/);
  });

  test("calls-per-ip counts every way to call a function over HTTP, /api/run/... included", async () => {
    const server = await start(["--rate-limit", "calls-per-ip=1/min:2"]);
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${server.url}/api/run/todos/getMyTodos`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ args: {} }),
      });
      statuses.push([res.status, await res.json()]);
    }
    assert.deepEqual(statuses.map(([s]) => s), [200, 200, 429], safeJson(statuses));
    assert.equal(statuses[2][1].name, "calls-per-ip");
    const viaQuery = await fetch(`${server.url}/api/query`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ path: "todos:getMyTodos", args: {} }),
    });
    assert.equal(viaQuery.status, 429, "the same bucket");
  });

  test("failed authentications per address: past the limit the address is refused before its token is looked at", async () => {
    const server = await start(["--rate-limit", "failed-auth-per-ip=1/min:3"]);
    const call = (token) =>
      fetch(`${server.url}/api/query`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ path: "users:getCurrentUser", args: [{}], format: "convex_encoded_json" }),
      });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await call(`forged.${i}.token`)).status);
    assert.deepEqual(statuses, [401, 401, 401, 401], "three failures fill the bucket; the fourth failure empties it");
    const blocked = await call("another.forged.token");
    assert.equal(blocked.status, 429);
    const body = await blocked.json();
    assert.equal(body.name, "failed-auth-per-ip");
    assert.match(body.message, /failed authentications per client address/);
    // A good token from the same address waits too; anonymous calls are not affected.
    assert.equal((await call(await server.token("good_user"))).status, 429);
    const anonymous = await new ConvexHttpClient(server.url).query(q("users:getCurrentUser"), {});
    assert.equal(anonymous, null);
    // Over the WebSocket: the Authenticate is answered with an AuthError naming the limit.
    const s = new WebSocket(server.url.replace("http", "ws") + "/api/1.48.0/sync");
    const messages = [];
    s.on("message", (d) => messages.push(JSON.parse(d.toString())));
    await new Promise((r) => s.once("open", r));
    s.send(JSON.stringify({ type: "Connect", sessionId: randomUUID(), connectionCount: 0, lastCloseReason: "InitialConnect" }));
    s.send(JSON.stringify({ type: "Authenticate", baseVersion: 0, tokenType: "User", value: await server.token("good_user") }));
    const authError = await waitFor(() => messages.find((x) => x.type === "AuthError"), { what: "the AuthError" });
    assert.match(authError.error, /Rate limit failed-auth-per-ip exceeded/);
    s.close();
  });

  test("new connections per address over connections-per-ip get a 429 with Retry-After", async () => {
    const server = await start(["--rate-limit", "connections-per-ip=1/min:3"]);
    // Each fetch below opens a new connection (no keep-alive agent between calls).
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      const c = await raw(server);
      c.socket.write("GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
      await waitFor(() => c.closedAt, { what: "a connection to finish" });
      statuses.push(c.data.split(" ")[1]);
    }
    const refused = await raw(server);
    await waitFor(() => refused.closedAt, { what: "the refused connection to close" });
    assert.deepEqual(statuses, ["200", "200", "200"]);
    assert.match(refused.data, /^HTTP\/1\.1 429 Too Many Requests/);
    assert.match(refused.data, /retry-after: \d+/);
    assert.match(refused.data, /"name":"connections-per-ip"/);
  });
});

describe("limits on values", () => {
  test("a 17 MiB query result fails naming the 16 MiB limit and the function", async () => {
    const dir = copyExampleApp();
    const { writeFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    writeFileSync(
      join(dir, "functions", "big.rhai"),
      `export const result = query(#{
    args: #{ mib: "number" },
    handler: |ctx, args| {
        let chunk = "x";
        while chunk.len() < 1048576 { chunk += chunk; }
        let out = [];
        for i in 0..args.mib.to_int() { out.push(chunk); }
        out
    }
});
`,
    );
    const server = new Server({ dir });
    servers.push(server);
    await server.start();
    const http = new ConvexHttpClient(server.url);
    assert.equal((await http.query(q("big:result"), { mib: 2 })).length, 2);
    const error = await rejection(http.query(q("big:result"), { mib: 17 }), "the 17 MiB query");
    assert.match(error.message, /big:result/);
    assert.match(error.message, /16 MiB/);
    const ws = client(server);
    const wsError = await rejection(ws.query(q("big:result"), { mib: 17 }), "the 17 MiB query over the WebSocket");
    assert.match(wsError.message, /big:result.*16 MiB/);
  });
});
