// Back-pressure (issue 4): a client that reads slowly gets the latest state, coalesced, not
// a queue of every update; a client that stops reading is disconnected after the stall limit
// with a log line, the connection dropped even though the client never reads its close, and
// other clients are unaffected.

import { test } from "node:test";
import { readFileSync } from "node:fs";
import assert from "node:assert/strict";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import WebSocket from "ws";
import { Server, waitFor } from "./lib/server.mjs";
import { writeApp, q, m } from "./lib/app.mjs";
import { RawSocket, checkChain } from "./lib/raw_ws.mjs";

const APP = {
  "schema.toml": `
[tables.blobs]
fields = { channel = "string", n = "number", data = "string" }
indexes = { by_channel = ["channel"] }
`,
  // Each document carries 256 KB so a few updates fill the socket buffers.
  "functions/blobs.rhai": `
export const latest = query(#{
    args: #{ channel: "string" },
    handler: |ctx, args| {
        let doc = ctx.db.query("blobs").withIndex("by_channel", |q| q.eq("channel", args.channel)).order("desc").first();
        if doc == () { () } else { #{ n: doc.n, data: doc.data } }
    }
});

export const put = mutation(#{
    args: #{ channel: "string", n: "number" },
    handler: |ctx, args| {
        let data = "";
        data.pad(262144, '.');
        ctx.db.insert("blobs", #{ channel: args.channel, n: args.n, data: data });
    }
});
`,
};

async function subscribeRaw(server) {
  const socket = await RawSocket.open(server.url);
  socket.send({ type: "Connect", sessionId: "5c5a0000-0000-4000-8000-000000000001", connectionCount: 0, lastCloseReason: "InitialConnect", clientTs: Date.now() });
  socket.send({
    type: "ModifyQuerySet",
    baseVersion: 0,
    newVersion: 1,
    modifications: [{ type: "Add", queryId: 0, udfPath: "blobs:latest", args: [{ channel: "c" }] }],
  });
  await socket.next((msg) => msg.type === "Transition" && msg.endVersion.querySet === 1, { what: "the first Transition" });
  return socket;
}

/**
 * Whether the kernel still has the server's end of the connection from `clientPort` to
 * `serverPort` on 127.0.0.1 in state ESTABLISHED (Linux /proc/net/tcp; state 01).
 */
function serverSideEstablished(serverPort, clientPort) {
  const hex = (port) => port.toString(16).toUpperCase().padStart(4, "0");
  const local = `0100007F:${hex(serverPort)}`;
  const remote = `0100007F:${hex(clientPort)}`;
  return readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .some((f) => f[1] === local && f[2] === remote && f[3] === "01");
}

function lastValue(socket) {
  const updates = socket.messages
    .map((e) => e.msg)
    .filter((msg) => msg.type === "Transition")
    .flatMap((msg) => msg.modifications.filter((mod) => mod.type === "QueryUpdated" && mod.queryId === 0));
  return updates.length ? updates[updates.length - 1].value : undefined;
}

test("a slow reader receives coalesced updates ending at the latest value", async () => {
  const server = await new Server({ dir: writeApp(APP) }).start();
  const socket = await subscribeRaw(server);
  const http = new ConvexHttpClient(server.url);
  try {
    socket.ws.pause();
    const commits = 40;
    for (let n = 1; n <= commits; n++) await http.mutation(m("blobs:put"), { channel: "c", n });
    socket.ws.resume();
    await waitFor(() => lastValue(socket)?.n === commits, { timeout: 15_000, what: "the latest value after resuming" });
    const transitions = socket.messages.filter((e) => e.msg.type === "Transition");
    assert.ok(transitions.length < commits, `updates are coalesced (${transitions.length} Transitions for ${commits} commits)`);
    checkChain(transitions.map((e) => e.msg));
    assert.equal(socket.closed, null, "a slow but reading client stays connected");
  } finally {
    socket.ws.terminate();
    await server.dispose();
  }
});

test("a client that stops reading is disconnected after the stall limit; others keep updating", async () => {
  const server = await new Server({ dir: writeApp(APP), env: { PULSEBASE_STALL_LIMIT_SECS: "2" } }).start();
  const stalled = await subscribeRaw(server);
  const healthy = new ConvexClient(server.url, { webSocketConstructor: WebSocket });
  const seen = [];
  healthy.onUpdate(q("blobs:latest"), { channel: "c" }, (v) => seen.push(v?.n ?? null));
  const http = new ConvexHttpClient(server.url);
  try {
    await waitFor(() => seen.length > 0, { what: "the healthy client's first result" });
    const clientPort = stalled.ws._socket.localPort;
    assert.ok(serverSideEstablished(server.port, clientPort), "the connection is visible in /proc/net/tcp before the stall");
    stalled.ws.pause();
    let n = 0;
    // Keep committing until the server gives up on the stalled client (bounded).
    await waitFor(
      async () => {
        n += 1;
        await http.mutation(m("blobs:put"), { channel: "c", n });
        return /client did not read its messages for 2 s/.test(server.stderr);
      },
      { timeout: 30_000, every: 50, what: "the server to log that it dropped the stalled client" },
    );
    await waitFor(() => seen[seen.length - 1] === n, { timeout: 5_000, what: `the healthy client to see n=${n}` });
    // Still paused: the server must let go of the connection by itself (its end of the TCP
    // connection leaves ESTABLISHED) and stop counting the session, however much it had
    // queued for a client that never reads.
    await waitFor(() => !serverSideEstablished(server.port, clientPort), {
      timeout: 10_000,
      every: 100,
      what: `the server to drop the stalled connection (127.0.0.1:${server.port} <- :${clientPort}) while its client is paused`,
    });
    await waitFor(async () => (await (await fetch(`${server.url}/api/health`)).json()).sessions === 1, {
      timeout: 5_000,
      what: "the health endpoint to count only the healthy session",
    });
    stalled.ws.resume();
    await waitFor(() => stalled.closed, { timeout: 10_000, what: "the stalled client's socket to close once it reads again" });
  } finally {
    stalled.ws.terminate();
    await healthy.close();
    await server.dispose();
  }
});
