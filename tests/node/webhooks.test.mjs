// Issue 5 parts 2–4 through the real binary: POST /clerk-users-webhook of the example app,
// signed with the real `svix` npm package, applied to the users table and read back with
// `pulsebase run users:getByClerkId`. Everything the verifier must refuse gets a 400 and
// writes nothing; a redelivered message (same svix-id) is applied once. Also `pulsebase run
// --identity` and `ctx.auth` in an HTTP action called with a valid bearer token.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Webhook } from "svix";

import { Server, copyExampleApp, waitFor } from "./lib/server.mjs";
import { writeApp } from "./lib/app.mjs";

const SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const OTHER_SECRET = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";

let server;
let nextId = 0;
const msgId = () => `msg_test_${process.pid}_${++nextId}`;

/** A Clerk-shaped user (AUTH_FACTS §6). */
function clerkUser(id, overrides = {}) {
  return {
    id,
    object: "user",
    username: "maria",
    first_name: "Maria",
    last_name: "Doe",
    image_url: "https://img.clerk.com/maria",
    has_image: true,
    primary_email_address_id: "idn_2",
    primary_phone_number_id: null,
    email_addresses: [
      { id: "idn_1", object: "email_address", email_address: "maria@example.com", linked_to: [], verification: { status: "verified" } },
      { id: "idn_2", object: "email_address", email_address: "maria@work.example", linked_to: [], verification: { status: "verified" } },
    ],
    phone_numbers: [],
    external_accounts: [],
    public_metadata: { role: "admin" },
    private_metadata: {},
    unsafe_metadata: {},
    created_at: 1700000000000,
    updated_at: 1700000000000,
    ...overrides,
  };
}

function event(type, data) {
  return JSON.stringify({
    data,
    event_attributes: { http_request: { client_ip: "203.0.113.7", user_agent: "test" } },
    instance_id: "ins_test",
    object: "event",
    timestamp: Date.now(),
    type,
  });
}

/** Signs `body` like Clerk/Svix does; returns the three svix-* headers. */
function signed(body, { id = msgId(), date = new Date(), secret = SECRET, prefix = "svix" } = {}) {
  const signature = new Webhook(secret).sign(id, date, body);
  return {
    [`${prefix}-id`]: id,
    [`${prefix}-timestamp`]: String(Math.floor(date.getTime() / 1000)),
    [`${prefix}-signature`]: signature,
  };
}

async function post(body, headers, path = "/clerk-users-webhook") {
  const res = await fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, text, json };
}

async function userByClerkId(clerkId) {
  const { code, stdout, stderr } = await server.cli(["run", "users:getByClerkId", JSON.stringify({ clerkId })]);
  assert.equal(code, 0, `pulsebase run failed: ${stderr}`);
  return JSON.parse(stdout);
}

before(async () => {
  const dir = copyExampleApp();
  writeFileSync(join(dir, ".env.local"), `CLERK_WEBHOOK_SECRET=${SECRET}\n`);
  server = await new Server({ dir }).start();
});

after(async () => {
  await server?.dispose();
});

describe("Clerk user sync", () => {
  test("user.created, user.updated and user.deleted are applied", async () => {
    const created = event("user.created", clerkUser("user_lifecycle"));
    const r1 = await post(created, signed(created));
    assert.equal(r1.status, 200, r1.text);
    assert.equal(r1.json.outcome, "applied");
    const user = await userByClerkId("user_lifecycle");
    assert.equal(user.clerkId, "user_lifecycle");
    assert.equal(user.name, "Maria Doe");
    assert.equal(user.email, "maria@work.example", "the primary email, not the first one");
    assert.equal(user.imageUrl, "https://img.clerk.com/maria");
    assert.equal(user.role, "admin");

    const updated = event(
      "user.updated",
      clerkUser("user_lifecycle", {
        first_name: null,
        last_name: null,
        username: "maria_d",
        primary_email_address_id: "idn_1",
        public_metadata: {},
        updated_at: 1700000600000,
      }),
    );
    const r2 = await post(updated, signed(updated));
    assert.equal(r2.status, 200, r2.text);
    const updatedUser = await userByClerkId("user_lifecycle");
    assert.equal(updatedUser._id, user._id, "updated in place");
    assert.equal(updatedUser.name, "maria_d", "falls back to the username");
    assert.equal(updatedUser.email, "maria@example.com");
    assert.equal(updatedUser.role, undefined, "a role Clerk no longer sends is removed");

    const deleted = event("user.deleted", { deleted: true, id: "user_lifecycle", object: "user" });
    const r3 = await post(deleted, signed(deleted));
    assert.equal(r3.status, 200, r3.text);
    assert.equal(await userByClerkId("user_lifecycle"), null);
  });

  test("user.updated for an unknown user creates it (upsert), unbranded webhook-* headers work", async () => {
    const body = event("user.updated", clerkUser("user_unbranded", { first_name: "Ada", last_name: null }));
    const res = await post(body, signed(body, { prefix: "webhook" }));
    assert.equal(res.status, 200, res.text);
    assert.equal((await userByClerkId("user_unbranded")).name, "Ada");
  });

  test("a redelivered message (same svix-id) is applied once", async () => {
    const id = msgId();
    const v1 = event("user.created", clerkUser("user_redelivered", { first_name: "First" }));
    const headers = signed(v1, { id });
    const first = await post(v1, headers);
    assert.equal(first.json.outcome, "applied", first.text);
    // Svix retries with the same body and id, identical or re-signed with a new timestamp.
    const again = await post(v1, headers);
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.outcome, "duplicate");

    const v2 = event("user.updated", clerkUser("user_redelivered", { first_name: "Second" }));
    assert.equal((await post(v2, signed(v2))).json.outcome, "applied");
    const resigned = await post(v1, signed(v1, { id, date: new Date(Date.now() - 1000) }));
    assert.equal(resigned.status, 200, resigned.text);
    assert.equal(resigned.json.outcome, "duplicate");
    assert.equal((await userByClerkId("user_redelivered")).name, "Second Doe", "the late redelivery changed nothing");
  });

  test("unknown event types are acknowledged and ignored", async () => {
    const body = event("session.created", { id: "sess_1", object: "session" });
    const res = await post(body, signed(body));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.outcome, "ignored");
  });
});

describe("refused webhooks write nothing", () => {
  /** Posts a refused message, checks the 400, then proves nothing was written: neither the
   *  user, nor the message id (the same id, correctly signed, is then applied, not a duplicate). */
  async function refused(clerkId, send, reason) {
    const id = msgId();
    const body = event("user.created", clerkUser(clerkId));
    const res = await send(body, id);
    assert.equal(res.status, 400, res.text);
    assert.match(res.json.error, reason);
    assert.equal(await userByClerkId(clerkId), null, "no user written");
    const ok = await post(body, signed(body, { id }));
    assert.equal(ok.json?.outcome, "applied", `the id was not recorded: ${ok.text}`);
  }

  test("tampered body", async () => {
    await refused(
      "user_tampered",
      (body, id) => post(body.replace("Maria", "Mallory"), signed(body, { id })),
      /No matching signature/,
    );
  });

  test("wrong secret", async () => {
    await refused("user_wrong_secret", (body, id) => post(body, signed(body, { id, secret: OTHER_SECRET })), /No matching signature/);
  });

  test("stale timestamp (signed 6 minutes ago) and one from the future", async () => {
    await refused(
      "user_stale",
      (body, id) => post(body, signed(body, { id, date: new Date(Date.now() - 6 * 60 * 1000) })),
      /too old/,
    );
    await refused(
      "user_future",
      (body, id) => post(body, signed(body, { id, date: new Date(Date.now() + 6 * 60 * 1000) })),
      /too new/,
    );
  });

  test("missing headers", async () => {
    for (const missing of ["svix-id", "svix-timestamp", "svix-signature"]) {
      await refused(
        `user_missing_${missing.replace("svix-", "")}`,
        (body, id) => {
          const headers = signed(body, { id });
          delete headers[missing];
          return post(body, headers);
        },
        /Missing required headers/,
      );
    }
  });

  test("malformed bodies, correctly signed", async () => {
    const malformed = [
      ["not json", () => "not json", /the payload is not JSON/],
      ["no data", () => JSON.stringify({ type: "user.created" }), /malformed Clerk event/],
      ["a numeric id", () => JSON.stringify({ type: "user.created", data: { id: 7 } }), /malformed Clerk event/],
      // A complete user, but no event type: it must not be written either.
      ["no type", (clerkId) => JSON.stringify({ data: clerkUser(clerkId), object: "event" }), /malformed Clerk event/],
    ];
    for (const [what, make, reason] of malformed) {
      const clerkId = `user_malformed_${what.replaceAll(" ", "_")}`;
      // Sent under the message id of a well-formed event for clerkId, signed correctly.
      await refused(clerkId, (_, id) => {
        const body = make(clerkId);
        return post(body, signed(body, { id }));
      }, reason);
    }
  });

  test("a missing secret is a 500 naming the variable, and nothing is written", async () => {
    const env = join(server.dir, ".env.local");
    renameSync(env, `${env}.off`);
    try {
      const body = event("user.created", clerkUser("user_no_secret"));
      const res = await post(body, signed(body));
      assert.equal(res.status, 500, res.text);
      assert.match(res.json.message, /CLERK_WEBHOOK_SECRET/);
      assert.equal(await userByClerkId("user_no_secret"), null);
    } finally {
      renameSync(`${env}.off`, env);
    }
  });
});

describe("HTTP action routing", () => {
  test("unknown routes and methods are 404 with the reason", async () => {
    const res = await post("{}", {}, "/no-such-route");
    assert.equal(res.status, 404);
    assert.match(res.json.message, /no HTTP route/);
    const get = await fetch(`${server.url}/clerk-users-webhook`);
    assert.equal(get.status, 404);
    assert.match((await get.json()).message, /accept POST, not GET/);
  });

  test("GET / without --static-dir explains how to serve a front-end, not a bare 404", async () => {
    const json = await fetch(`${server.url}/`);
    assert.equal(json.status, 200);
    const body = await json.json();
    assert.match(body.message, /no front-end is served at \/ because the server was started without --static-dir/);
    assert.match(body.example, /bash scripts\/example\.sh/);
    assert.match(body.ownFrontEnd, /--static-dir DIR/);
    const page = await fetch(`${server.url}/`, { headers: { accept: "text/html,application/xhtml+xml" } });
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type"), /^text\/html/);
    const html = await page.text();
    assert.match(html, /<pre>bash scripts\/example\.sh<\/pre>/);
    // Only / is special: other unknown paths keep the 404 with its reason.
    assert.equal((await fetch(`${server.url}/index.html`)).status, 404);
  });

  test("an invalid bearer token does not fail the request", async () => {
    const body = event("user.created", clerkUser("user_with_bad_token"));
    const res = await post(body, { ...signed(body), authorization: "Bearer not.a.jwt" });
    assert.equal(res.status, 200, res.text);
    assert.equal((await userByClerkId("user_with_bad_token")).name, "Maria Doe");
  });

  test("routes reload live; a route in the reserved space is a load error at file:line", async () => {
    const file = join(server.dir, "functions", "http.rhai");
    const original = readFileSync(file, "utf8");
    const withRoute = (route) =>
      original.replace("export const http = httpRouter()\n", `export const http = httpRouter()\n${route}\n`);
    try {
      writeFileSync(
        file,
        withRoute(`    .route(#{ pathPrefix: "/hello/", method: "GET", handler: httpAction(|ctx, request| #{ body: #{ path: request.path, q: request.query } }) })`),
      );
      const hello = await waitFor(
        async () => {
          const res = await fetch(`${server.url}/hello/there?x=1`);
          return res.status === 200 ? res.json() : null;
        },
        { what: "the new route" },
      );
      assert.deepEqual(hello, { path: "/hello/there", q: { x: "1" } });

      const stderrMark = server.stderr.length;
      const lines = original.split("\n");
      const routeLine = lines.indexOf("export const http = httpRouter()") + 2;
      writeFileSync(file, withRoute(`    .route(#{ path: "/api/mine", method: "GET", handler: httpAction(|ctx, request| #{}) })`));
      const report = await waitFor(() => server.stderr.slice(stderrMark).match(/functions\/http\.rhai:(\d+):\d+:[^\n]*/), {
        what: "the load error",
      });
      assert.match(report[0], /reserved/);
      assert.equal(Number(report[1]), routeLine, report[0]);
      // The last good version keeps serving, the /hello/ route included.
      assert.equal((await fetch(`${server.url}/hello/again`)).status, 200);
      const body = event("user.created", clerkUser("user_during_broken_edit"));
      assert.equal((await post(body, signed(body))).status, 200);
    } finally {
      writeFileSync(file, original);
    }
    await waitFor(async () => (await fetch(`${server.url}/hello/x`)).status === 404, { what: "the original routes back" });
  });
});

describe("pulsebase run", () => {
  test("--identity runs a query as that user; internal functions are callable", async () => {
    // A todo of run_user, added through the HTTP API with a dev-issuer token.
    const token = await server.token("run_user", { name: "Runner" });
    const added = await fetch(`${server.url}/api/mutation`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ path: "todos:addTodo", args: [{ text: "run me" }], format: "convex_encoded_json" }),
    }).then((r) => r.json());
    assert.equal(added.status, "success", JSON.stringify(added));

    // The README's form: any issuer, the subject is what the function reads.
    const mine = await server.cli(["run", "todos:getMyTodos", "--identity", '{"subject":"run_user","issuer":"x"}']);
    assert.equal(mine.code, 0, mine.stderr);
    const todos = JSON.parse(mine.stdout);
    assert.deepEqual(todos.map((t) => [t.text, t.userId, t.completed]), [["run me", "run_user", false]]);
    assert.equal(todos[0]._id, added.value);

    const other = await server.cli(["run", "todos:getMyTodos", "--identity", '{"subject":"someone_else","issuer":"x"}']);
    assert.equal(other.code, 0, other.stderr);
    assert.deepEqual(JSON.parse(other.stdout), []);

    const anonymous = await server.cli(["run", "todos:getMyTodos"]);
    assert.equal(anonymous.code, 1);
    assert.match(anonymous.stderr, /Unauthorized/);

    const identity = await server.cli(["run", "users:getCurrentUser", "--identity", '{"subject":"run_user","issuer":"x","name":"Runner"}']);
    assert.equal(identity.code, 0, identity.stderr);
    const me = JSON.parse(identity.stdout);
    assert.equal(me.subject, "run_user");
    assert.equal(me.name, "Runner");

    const bad = await server.cli(["run", "todos:getMyTodos", "--identity", "not json"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--identity is not JSON/);
  });

  test("an internal function (users:getByClerkId) is callable by run and refused to clients", async () => {
    const body = event("user.created", clerkUser("user_for_run", { first_name: "Rita", last_name: null }));
    assert.equal((await post(body, signed(body))).status, 200);
    const run = await server.cli(["run", "users:getByClerkId", JSON.stringify({ clerkId: "user_for_run" })]);
    assert.equal(run.code, 0, run.stderr);
    const user = JSON.parse(run.stdout);
    assert.equal(user.name, "Rita");
    assert.equal(user.clerkId, "user_for_run");
    // As a given identity too: --identity changes who calls, not what may be called.
    const asUser = await server.cli(["run", "users:getByClerkId", JSON.stringify({ clerkId: "user_for_run" }), "--identity", '{"subject":"u","issuer":"x"}']);
    assert.equal(asUser.code, 0, asUser.stderr);
    assert.equal(JSON.parse(asUser.stdout)._id, user._id);

    const client = await fetch(`${server.url}/api/query`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ path: "users:getByClerkId", args: [{ clerkId: "user_for_run" }], format: "convex_encoded_json" }),
    }).then((r) => r.json());
    assert.equal(client.status, "error", JSON.stringify(client));
    assert.doesNotMatch(JSON.stringify(client), /Rita/);
  });
});

describe("ctx.auth in HTTP actions", () => {
  let app;

  before(async () => {
    app = await new Server({
      dir: writeApp({
        "functions/me.rhai": `
export const viewer = query(#{ args: #{}, handler: |ctx, args| {
    let identity = ctx.auth.getUserIdentity();
    if identity == () { () } else { identity.subject }
} });
`,
        "functions/http.rhai": `
export const http = httpRouter()
    .route(#{ path: "/whoami", method: "GET", handler: httpAction(|ctx, request| {
        #{ status: 200, body: #{ identity: ctx.auth.getUserIdentity(), viaQuery: ctx.runQuery("me:viewer", #{}) } }
    }) });
`,
      }),
    }).start();
  });

  after(async () => {
    await app?.dispose();
  });

  const whoami = (headers = {}) =>
    fetch(`${app.url}/whoami`, { headers }).then(async (r) => ({ status: r.status, body: await r.json() }));

  test("a valid bearer token is the action's identity, and its runQuery's", async () => {
    const token = await app.token("http_user", { name: "Hattie", email: "hattie@example.com", claims: { role: "admin" } });
    const res = await whoami({ authorization: `Bearer ${token}` });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const { identity, viaQuery } = res.body;
    const issuer = `${app.url}/dev-issuer`;
    assert.equal(identity.subject, "http_user");
    assert.equal(identity.issuer, issuer);
    assert.equal(identity.tokenIdentifier, `${issuer}|http_user`);
    assert.equal(identity.name, "Hattie");
    assert.equal(identity.email, "hattie@example.com");
    assert.equal(identity.role, "admin");
    assert.equal(viaQuery, "http_user");
  });

  test("no token is anonymous; a bad one makes getUserIdentity throw (500)", async () => {
    assert.deepEqual(await whoami(), { status: 200, body: { identity: null, viaQuery: null } });
    const bad = await whoami({ authorization: "Bearer not.a.jwt" });
    assert.equal(bad.status, 500, JSON.stringify(bad.body));
    assert.doesNotMatch(JSON.stringify(bad.body), /not\.a\.jwt/, "the token is not echoed");
  });
});
