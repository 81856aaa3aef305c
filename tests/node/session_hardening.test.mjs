// Sync sessions under hostile or unusual input, through the real binary with raw protocol
// sockets: tokens with absurd lifetimes, oversized and binary frames, protocol violations,
// pipelined mutations, identity changes while mutations wait, admin sessions that become
// users, and providers removed from auth.config.toml while their users are connected. Also
// the dev issuer's reserved claims.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomUUID } from "node:crypto";

import { Server, waitFor } from "./lib/server.mjs";
import { writeApp, safeJson, sleep } from "./lib/app.mjs";
import { RawSocket, checkChain } from "./lib/raw_ws.mjs";
import { makeKey, mint } from "./lib/idp.mjs";

const CUSTOM_ISS = "https://custom.session-test.invalid";

const FUNCTIONS = `
export const me = query(#{
    args: #{},
    handler: |ctx, args| {
        let identity = ctx.auth.getUserIdentity();
        if identity == () { () } else { identity.subject }
    }
});

export const whoami = mutation(#{
    args: #{},
    handler: |ctx, args| {
        let identity = ctx.auth.getUserIdentity();
        if identity == () { () } else { identity.subject }
    }
});

// Burns script time: n loop iterations.
export const slow = mutation(#{
    args: #{ n: "number" },
    handler: |ctx, args| {
        let x = 0;
        for i in 0..args.n.to_int() { x += 1; }
        x
    }
});

export const bump = mutation(#{
    args: #{ i: "number" },
    handler: |ctx, args| { ctx.db.insert("items", #{ i: args.i }); }
});

export const secret = internalQuery(#{
    args: #{},
    handler: |ctx, args| "internal data"
});
`;

/** An app with the functions above, trusting the dev issuer and a customJwt provider whose JWKS is a file. */
async function makeApp() {
  const key = await makeKey("ES256", "custom1");
  const dir = writeApp({
    "schema.toml": `[tables.items]\nfields = { i = "number" }\n`,
    "functions/s.rhai": FUNCTIONS,
    "jwks.json": JSON.stringify({ keys: [key.jwk] }),
  });
  const config = (withCustom) =>
    withCustom ? `[[providers]]\ntype = "customJwt"\nissuer = "${CUSTOM_ISS}"\njwks = "${join(dir, "jwks.json")}"\nalgorithm = "ES256"\n` : "# no providers\n";
  writeFileSync(join(dir, "auth.config.toml"), config(true));
  return { dir, key, config };
}

async function connect(server) {
  const s = await RawSocket.open(server.url);
  s.send({ type: "Connect", sessionId: randomUUID(), connectionCount: 0, lastCloseReason: "InitialConnect", clientTs: Date.now() });
  return s;
}

const subscribe = (s, queryId, udfPath, version, args = {}) =>
  s.send({ type: "ModifyQuerySet", baseVersion: version - 1, newVersion: version, modifications: [{ type: "Add", queryId, udfPath, args: [args] }] });

const mutation = (requestId, udfPath, args = {}) => ({ type: "Mutation", requestId, udfPath, args: [args] });

async function health(server) {
  return (await fetch(`${server.url}/api/health`)).json();
}

/** The value query `queryId` has after the latest Transition that mentions it. */
function latestValue(s, queryId) {
  let value;
  for (const t of s.transitions()) {
    for (const mod of t.modifications) if (mod.queryId === queryId && mod.type === "QueryUpdated") value = { value: mod.value };
    for (const mod of t.modifications) if (mod.queryId === queryId && mod.type === "QueryFailed") value = { error: mod.errorMessage };
  }
  return value;
}

describe("sync session hardening", () => {
  let server;
  let app;

  before(async () => {
    app = await makeApp();
    server = await new Server({ dir: app.dir }).start();
  });

  after(async () => {
    await server?.dispose();
  });

  test("a token whose exp is astronomically far away is refused without harming the server; one 9 years ahead works; the session is counted out when it closes", async () => {
    const baseline = (await health(server)).sessions;
    const absurd = await mint(app.key, { iss: CUSTOM_ISS, sub: "forever_user", exp: 1e19 });
    const farAway = await mint(app.key, { iss: CUSTOM_ISS, sub: "patient_user", exp: Math.floor(Date.now() / 1000) + 9 * 365 * 86400 });
    const refusedSocket = await connect(server);
    try {
      // The absurd exp is refused as such (it used to be accepted, and the session's expiry
      // timer overflowed and panicked): an AuthError, then the socket closes, as Convex does.
      refusedSocket.send({ type: "Authenticate", baseVersion: 0, tokenType: "User", value: absurd });
      subscribe(refusedSocket, 0, "s:me", 1);
      const refused = await refusedSocket.next((msg) => msg.type === "AuthError", { what: "the AuthError for the absurd exp" });
      assert.equal(refused.authUpdateAttempted, true);
      await refusedSocket.waitClosed();
    } finally {
      refusedSocket.close();
    }
    const s = await connect(server);
    try {
      subscribe(s, 0, "s:me", 1);
      // A long but sensible lifetime is accepted and arms the expiry timer without overflow.
      let mark = s.messages.length;
      s.send({ type: "Authenticate", baseVersion: 0, tokenType: "User", value: farAway });
      const accepted = await s.next((msg) => msg.type === "Transition" && msg.endVersion.identity === 1, { from: mark, what: "the Transition for the 9-year token" });
      assert.equal(accepted.modifications.find((x) => x.queryId === 0)?.value, "patient_user");
      mark = s.messages.length;
      s.send(mutation(1, "s:whoami"));
      const resp = await s.next((msg) => msg.type === "MutationResponse", { from: mark, what: "the mutation response" });
      assert.equal(resp.result, "patient_user");
      assert.equal(s.closed, null, "the socket stays open");
      assert.equal((await health(server)).sessions, baseline + 1);
    } finally {
      s.close();
    }
    await waitFor(async () => (await health(server)).sessions === baseline, { timeout: 5_000, what: "the session count to drop back" });
  });

  test("a frame over 20 MiB gets a FatalError naming the limit, a close and a log line", async () => {
    const s = await connect(server);
    const mark = server.stderr.length;
    try {
      s.send("x".repeat((20 << 20) + (1 << 20)));
      const fatal = await s.next((msg) => msg.type === "FatalError", { timeout: 10_000, what: "the FatalError" });
      assert.match(fatal.error, /a frame of 22020096 bytes exceeds the 20 MiB limit/);
      const closed = await s.waitClosed(10_000);
      assert.equal(closed.code, 1008, `closed as a policy violation: ${safeJson(closed)}`);
      await server.waitForOutput(/exceeds the 20 MiB limit/);
      assert.match(server.stderr.slice(mark), /protocol violation.*exceeds the 20 MiB limit|exceeds the 20 MiB limit.*protocol violation/);
    } finally {
      s.close();
    }
  });

  test("a binary frame, a duplicate queryId and an Authenticate with a wrong baseVersion each get a FatalError and a close", async () => {
    const cases = [
      ["binary frame", (s) => s.ws.send(Buffer.from([1, 2, 3]), { binary: true }), /binary frames are not part of the protocol/],
      [
        "duplicate queryId",
        (s) => {
          subscribe(s, 0, "s:me", 1);
          subscribe(s, 0, "s:me", 2);
        },
        /query id 0 was added twice/,
      ],
      ["Authenticate with a wrong baseVersion", (s) => s.send({ type: "Authenticate", baseVersion: 5, tokenType: "None" }), /Authenticate baseVersion 5 does not match the identity version 0/],
    ];
    const problems = [];
    for (const [name, act, pattern] of cases) {
      const s = await connect(server);
      try {
        act(s);
        const fatal = await s.next((msg) => msg.type === "FatalError", { what: `FatalError for ${name}` });
        if (!pattern.test(fatal.error)) problems.push(`${name}: "${fatal.error}" does not match ${pattern}`);
        const closed = await s.waitClosed();
        if (closed.code !== 1008) problems.push(`${name}: closed with ${safeJson(closed)}, expected 1008`);
      } catch (e) {
        problems.push(`${name}: ${e.message.slice(0, 400)}`);
      } finally {
        s.close();
      }
    }
    assert.deepEqual(problems, []);
  });

  test("pipelined mutations past the queue limit hold back the client's later frames until the queue drains", async () => {
    const MAX_QUEUED = 128; // MAX_QUEUED_MUTATIONS in crates/sync/src/session.rs
    const N = 400;
    const s = await connect(server);
    try {
      subscribe(s, 0, "s:me", 1);
      await s.next((msg) => msg.type === "Transition" && msg.endVersion.querySet === 1);
      const mark = s.messages.length;
      for (let i = 0; i < N; i++) s.send(mutation(i, "s:bump", { i }));
      subscribe(s, 1, "s:me", 2);
      const t = await s.next((msg) => msg.type === "Transition" && msg.endVersion.querySet === 2, { from: mark, timeout: 30_000, what: "the Transition for query set 2" });
      const tIndex = s.messages.findIndex((e) => e.msg === t);
      const before = s.messages.slice(mark, tIndex).filter((e) => e.msg.type === "MutationResponse").length;
      // The ModifyQuerySet frame is read only once at most MAX_QUEUED mutations wait, i.e.
      // after at least N - MAX_QUEUED - 1 of them finished (the last one may be in flight).
      assert.ok(before >= N - MAX_QUEUED - 1, `only ${before} of ${N} mutations answered before a frame sent after them was handled`);
      await waitFor(() => s.messages.filter((e) => e.msg.type === "MutationResponse").length === N, { timeout: 30_000, what: "every mutation response" });
      const responses = s.messages.filter((e) => e.msg.type === "MutationResponse").map((e) => e.msg);
      assert.deepEqual(responses.map((r) => r.requestId), [...Array(N).keys()], "answered in order");
      assert.ok(responses.every((r) => r.success), safeJson(responses.find((r) => !r.success)));
      checkChain(s.transitions());
    } finally {
      s.close();
    }
  });

  /** How many iterations of s:slow take about `ms` on this machine (measured, bounded). */
  async function calibrateSlow(s, ms) {
    let n = 200_000;
    for (let attempt = 0; attempt < 6; attempt++) {
      const mark = s.messages.length;
      const started = Date.now();
      s.send(mutation(1000 + attempt, "s:slow", { n }));
      await s.next((msg) => msg.type === "MutationResponse" && msg.requestId === 1000 + attempt, { from: mark, what: "a calibration run" });
      const took = Math.max(1, Date.now() - started);
      if (took >= ms / 2) return Math.min(Math.round((n * ms) / took), 50_000_000);
      n *= 4;
    }
    return n;
  }

  test("a mutation queued before an Authenticate runs as the identity that sent it", async () => {
    const s = await connect(server);
    try {
      const slowN = await calibrateSlow(s, 300);
      const alice = await server.token("queue_alice");
      const bob = await server.token("queue_bob");
      const mark = s.messages.length;
      s.send({ type: "Authenticate", baseVersion: 0, tokenType: "User", value: alice });
      s.send(mutation(0, "s:slow", { n: slowN })); // keeps the next ones waiting
      s.send(mutation(1, "s:whoami"));
      s.send({ type: "Authenticate", baseVersion: 1, tokenType: "User", value: bob });
      s.send(mutation(2, "s:whoami"));
      s.send({ type: "Authenticate", baseVersion: 2, tokenType: "None" });
      s.send(mutation(3, "s:whoami"));
      const answers = {};
      for (const id of [0, 1, 2, 3]) {
        answers[id] = await s.next((msg) => msg.type === "MutationResponse" && msg.requestId === id, { from: mark, what: `response ${id}` });
      }
      assert.equal(answers[0].success, true, safeJson(answers[0]));
      assert.equal(answers[1].result, "queue_alice", "queued while signed in as alice");
      assert.equal(answers[2].result, "queue_bob", "queued while signed in as bob");
      assert.equal(answers[3].result, null, "queued after signing out");
    } finally {
      s.close();
    }
  });

  test("a queued mutation whose sender's token expired before it started never runs as the user: the session is told and closed", async () => {
    const s = await connect(server);
    try {
      const slowN = await calibrateSlow(s, 300);
      // Mint at the start of a second so the 1 s token is still valid when it is checked.
      await waitFor(() => Date.now() % 1000 < 100, { timeout: 2_000, every: 5, what: "the start of a second" });
      const token = await server.token("short_lived", { ttl: 1 });
      const expiresAt = (Math.floor(Date.now() / 1000) + 1) * 1000;
      const mark = s.messages.length;
      s.send({ type: "Authenticate", baseVersion: 0, tokenType: "User", value: token });
      s.send(mutation(0, "s:whoami"));
      // Enough queued work to outlast the token (bounded: at most 10 slow mutations).
      const slowCount = Math.min(10, Math.ceil((expiresAt - Date.now() + 600) / 300));
      for (let i = 1; i <= slowCount; i++) s.send(mutation(i, "s:slow", { n: slowN }));
      const last = slowCount + 1;
      s.send(mutation(last, "s:whoami"));
      const first = await s.next((msg) => msg.type === "MutationResponse" && msg.requestId === 0, { from: mark, what: "the first whoami" });
      assert.equal(first.result, "short_lived", "sent and started while the token was valid");
      const authError = await s.next((msg) => msg.type === "AuthError", { from: mark, timeout: 15_000, what: "the AuthError at expiry" });
      assert.equal(authError.authUpdateAttempted, false);
      await s.waitClosed(15_000);
      assert.ok(Date.now() >= expiresAt, "the session ended after the token expired");
      // Every answer it sent came before the AuthError, and the late whoami never ran: as
      // Convex does, the client re-sends it on a new socket with a fresh token.
      const answered = s.messages.slice(mark).filter((e) => e.msg.type === "MutationResponse").map((e) => e.msg);
      assert.ok(!answered.some((msg) => msg.requestId === last), "the late whoami was not answered on the closed session");
    } finally {
      s.close();
    }
  });

  test("after an AuthError the server runs nothing more and closes the socket once the client has, or after a 2 s grace; a client that closes is counted out at once", async () => {
    const baseline = (await health(server)).sessions;
    // A client that ignores the AuthError: its frames get no answer, and the server closes.
    const lingering = await connect(server);
    try {
      const mark = lingering.messages.length;
      lingering.send({ type: "Authenticate", baseVersion: 0, tokenType: "User", value: "not.a.token" });
      const refused = await lingering.next((msg) => msg.type === "AuthError", { from: mark, what: "the AuthError" });
      const toldAt = Date.now();
      assert.equal(refused.authUpdateAttempted, true);
      assert.equal(lingering.closed, null, "the server leaves the close to the client first");
      lingering.send(mutation(0, "s:whoami"));
      const closed = await lingering.waitClosed(10_000);
      assert.equal(closed.code, 1000, `closed normally: ${safeJson(closed)}`);
      assert.match(closed.reason, /reconnect with a fresh token/);
      assert.ok(Date.now() - toldAt >= 1_000, `closed after the grace, not at once (${Date.now() - toldAt} ms)`);
      const answered = lingering.messages.slice(mark).filter((e) => e.msg.type === "MutationResponse");
      assert.deepEqual(answered, [], "a frame sent after the AuthError is not run");
    } finally {
      lingering.close();
    }
    // A client that closes at the AuthError (as the Rust client's reconnect does) ends the
    // session then, without waiting for the grace.
    const prompt = await connect(server);
    prompt.send({ type: "Authenticate", baseVersion: 0, tokenType: "User", value: "not.a.token" });
    await prompt.next((msg) => msg.type === "AuthError", { what: "the AuthError" });
    const closedAt = Date.now();
    prompt.close();
    await waitFor(async () => (await health(server)).sessions === baseline, { timeout: 5_000, what: "the session counted out" });
    assert.ok(Date.now() - closedAt < 1_500, `counted out when the client closed (${Date.now() - closedAt} ms)`);
  });

  test("an admin session that authenticates as a user, or as nobody, loses access to internal functions", async () => {
    const adminKey = readFileSync(join(app.dir, ".pulsebase", "admin_key"), "utf8").trim();
    for (const next of ["User", "None"]) {
      const s = await connect(server);
      try {
        s.send({ type: "Authenticate", baseVersion: 0, tokenType: "Admin", value: adminKey });
        subscribe(s, 0, "s:secret", 1);
        await waitFor(() => latestValue(s, 0)?.value === "internal data", { what: `the admin's internal query (${next})` });
        const value = next === "User" ? await server.token("demoted_admin") : undefined;
        s.send({ type: "Authenticate", baseVersion: 1, tokenType: next, ...(value ? { value } : {}) });
        await s.next((msg) => msg.type === "Transition" && msg.endVersion.identity === 2, { what: `identity 2 (${next})` });
        await waitFor(() => latestValue(s, 0)?.error, { what: `the internal query to fail after becoming ${next}` }).catch(() => {
          throw new Error(`after Authenticate ${next} the internal query still has ${safeJson(latestValue(s, 0))}`);
        });
        assert.match(latestValue(s, 0).error, /Could not find public function/);
        // A query added afterwards cannot reach it either.
        subscribe(s, 1, "s:secret", 2);
        await waitFor(() => latestValue(s, 1), { what: "the new query's result" });
        assert.match(latestValue(s, 1).error ?? safeJson(latestValue(s, 1)), /Could not find public function/);
        checkChain(s.transitions());
      } finally {
        s.close();
      }
    }
  });
});

describe("removing a provider from auth.config.toml", () => {
  let server;
  let app;

  before(async () => {
    app = await makeApp();
    server = await new Server({ dir: app.dir }).start();
  });

  after(async () => {
    await server?.dispose();
  });

  test("revokes the identity of live sessions signed in through it; other sessions keep theirs", async () => {
    const custom = await connect(server);
    const dev = await connect(server);
    try {
      custom.send({ type: "Authenticate", baseVersion: 0, tokenType: "User", value: await mint(app.key, { iss: CUSTOM_ISS, sub: "custom_user", exp: Math.floor(Date.now() / 1000) + 600 }) });
      subscribe(custom, 0, "s:me", 1);
      dev.send({ type: "Authenticate", baseVersion: 0, tokenType: "User", value: await server.token("dev_user") });
      subscribe(dev, 0, "s:me", 1);
      await waitFor(() => latestValue(custom, 0)?.value === "custom_user", { what: "the custom provider's user" });
      await waitFor(() => latestValue(dev, 0)?.value === "dev_user", { what: "the dev issuer's user" });

      const mark = custom.messages.length;
      const devMark = dev.messages.length;
      const out = server.stdout.length;
      writeFileSync(join(app.dir, "auth.config.toml"), app.config(false));
      await waitFor(() => /auth\.config\.toml synced: 0 auth provider/.test(server.stdout.slice(out)), { what: "the reload" });
      const authError = await custom.next((msg) => msg.type === "AuthError", { from: mark, timeout: 5_000, what: "an AuthError on the custom provider's session" });
      assert.equal(authError.authUpdateAttempted, false);
      assert.match(authError.error, /no longer/);
      // Then the session closes, as Convex does: nothing more runs as that user on it.
      await custom.waitClosed();

      // The dev issuer's session is untouched.
      await sleep(300);
      assert.ok(!dev.messages.slice(devMark).some((e) => e.msg.type === "AuthError"), "no AuthError for the dev issuer's session");
      assert.equal(latestValue(dev, 0)?.value, "dev_user");
      checkChain(custom.transitions());
      checkChain(dev.transitions());
    } finally {
      custom.close();
      dev.close();
    }
  });
});

describe("dev issuer reserved claims", () => {
  let server;

  before(async () => {
    server = await new Server({ dir: (await makeApp()).dir }).start();
  });

  after(async () => {
    await server?.dispose();
  });

  test("POST /dev-issuer/token and `pulsebase token --claims` refuse claims that would replace iss, sub, aud, exp, iat or nbf", async () => {
    for (const claim of ["iss", "sub", "aud", "exp", "iat", "nbf"]) {
      const res = await fetch(`${server.url}/dev-issuer/token`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ sub: "u", claims: { [claim]: claim === "aud" || claim === "iss" || claim === "sub" ? "x" : 9e18 } }),
      });
      const text = await res.text();
      assert.equal(res.status, 400, `${claim}: ${text}`);
      assert.match(text, new RegExp(`claims may not set \`${claim}\``));
    }
    const cli = await server.cli(["token", "--sub", "u", "--claims", '{"exp": 99999999999}']);
    assert.notEqual(cli.code, 0, cli.stdout);
    assert.match(cli.stderr, /claims may not set `exp`/);
    // Other claims still pass, name included.
    const ok = await server.cli(["token", "--sub", "u", "--claims", '{"role":"admin","name":"Renamed"}']);
    assert.equal(ok.code, 0, ok.stderr);
    const payload = JSON.parse(Buffer.from(ok.stdout.trim().split(".")[1], "base64url").toString());
    assert.equal(payload.role, "admin");
    assert.equal(payload.name, "Renamed");
    assert.equal(payload.sub, "u");
  });
});
