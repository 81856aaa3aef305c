// Client compatibility, npm side: the cells of the README's client matrix (section "Clients")
// that no other test in this folder covers, against tests/client_app (the app the Rust and
// Python client tests use too).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { ConvexClient, ConvexHttpClient } from "convex/browser";

import { ROOT, Server, waitFor } from "./lib/server.mjs";
import { q, m, rejection, sleep } from "./lib/app.mjs";

const NOT_AN_ACTION = "'messages:send' is a mutation, not an action; call it as a mutation";

function copyClientApp() {
  const dir = mkdtempSync(join(tmpdir(), "pulsebase-clients-"));
  cpSync(join(ROOT, "tests", "client_app"), dir, { recursive: true });
  return dir;
}

describe("npm clients against tests/client_app", () => {
  let server;
  const clients = [];
  const connect = () => {
    const client = new ConvexClient(server.url, { webSocketConstructor: WebSocket, unsavedChangesWarning: false });
    clients.push(client);
    return client;
  };

  before(async () => {
    server = await new Server({ dir: copyClientApp() }).start();
  });

  after(async () => {
    await Promise.all(clients.map((c) => Promise.race([c.close().catch(() => {}), sleep(2_000)])));
    await server?.dispose();
  });

  test("an action runs through ConvexClient and ConvexHttpClient; a mutation called as an action is refused", async () => {
    const client = connect();
    assert.deepEqual(await client.action(q("actions:post"), { channel: "npm-act", body: "one" }), { count: 1, by: "anonymous" });
    const http = new ConvexHttpClient(server.url);
    assert.deepEqual(await http.action(q("actions:post"), { channel: "npm-act", body: "two" }), { count: 2, by: "anonymous" });
    const ws = await rejection(client.action(q("messages:send"), {}), "ConvexClient.action");
    assert.equal(ws.message, `[CONVEX A(messages:send)] ${NOT_AN_ACTION}\n  Called by client`);
    const refused = await rejection(http.action(q("messages:send"), {}), "ConvexHttpClient.action");
    assert.equal(refused.message, NOT_AN_ACTION);
  });

  test("a paginated subscription (ConvexClient.onPaginatedUpdate_experimental) loads more pages and updates live", async () => {
    const client = connect();
    for (let i = 0; i < 5; i++) await client.mutation(m("messages:send"), { channel: "pages", body: `b${i}` });
    let latest;
    const errors = [];
    const subscription = client.onPaginatedUpdate_experimental(
      q("messages:page"),
      { channel: "pages" },
      { initialNumItems: 3 },
      (result) => (latest = result),
      (error) => errors.push(error.message),
    );
    const bodies = () => latest?.results.map((d) => d.body);
    await waitFor(() => latest?.status === "CanLoadMore", { what: "the first page" });
    assert.deepEqual(bodies(), ["b0", "b1", "b2"]);
    assert.ok(subscription.getCurrentValue().loadMore(3), "loadMore starts");
    await waitFor(() => latest?.status === "Exhausted", { what: "the second page" });
    assert.deepEqual(bodies(), ["b0", "b1", "b2", "b3", "b4"]);
    // A write into the last page's range reaches the subscription.
    await connect().mutation(m("messages:send"), { channel: "pages", body: "new" });
    await waitFor(() => bodies()?.length === 6, { what: "the new document in the last page" });
    assert.deepEqual(bodies(), ["b0", "b1", "b2", "b3", "b4", "new"]);
    assert.deepEqual(errors, []);
    subscription.unsubscribe();
  });

  test("ConvexHttpClient: setAuth replaces the token for the next request, a refused token is a 401, clearAuth signs out", async () => {
    const http = new ConvexHttpClient(server.url);
    assert.equal(await http.query(q("auth:whoami"), {}), null);
    http.setAuth(await server.token("http_user", { name: "Ada" }));
    assert.equal((await http.query(q("auth:whoami"), {})).name, "Ada");
    await http.mutation(m("messages:sendSigned"), { channel: "h", body: "signed" });
    http.setAuth(await server.token("http_user", { name: "Ada Lovelace" }));
    assert.equal((await http.query(q("auth:whoami"), {})).name, "Ada Lovelace");
    http.setAuth("not-a-jwt");
    const refused = await rejection(http.query(q("auth:whoami"), {}), "a refused token");
    // The client surfaces the 401 body: Convex's short code and message.
    assert.equal(JSON.parse(refused.message).code, "InvalidAuthHeader");
    http.clearAuth();
    assert.equal(await http.query(q("auth:whoami"), {}), null);
  });
});
