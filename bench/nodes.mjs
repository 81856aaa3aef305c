// Issue 16 benchmark: several Pulsebase nodes on one PostgreSQL database.
//
//   node bench/nodes.mjs --database-url postgres://USER@HOST:PORT/DB [--subscribers 1000] [--writes 30]
//
// (a) Cross-node push latency: `--subscribers` raw protocol sockets subscribe to one query,
//     spread over three nodes, while a fourth node takes the writes (HTTP mutations, one at a
//     time); each write's delay is measured from the moment it was sent to the moment each
//     subscriber's Transition carrying it arrives. The same run with every subscriber and the
//     writer on one node gives the single-node figure of the same database, and once more
//     on SQLite (the default, one process).
// (b) Writes through a kill -9: 16 HTTP clients write through four nodes in closed loops, one
//     node is killed, and the bench reports the longest pause in acknowledged writes on the
//     surviving nodes around the kill (how long until writes are accepted again) and how many
//     were acknowledged after it.
//
// Each part gets a fresh database of the cluster named by --database-url (created with psql).
// Uses tests/node's packages and PULSEBASE_BIN (default target/release/pulsebase); every node
// is `pulsebase dev` on a loopback port, stopped by PID at the end. Prints one JSON line.

import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";

import { Server, copyExampleApp, createDatabase } from "../tests/node/lib/server.mjs";
import { RawSocket } from "../tests/node/lib/raw_ws.mjs";

const require = createRequire(new URL("../tests/node/package.json", import.meta.url));
const { ConvexHttpClient } = require("convex/browser");
const { makeFunctionReference } = require("convex/server");

const argValue = (name) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const CLUSTER = argValue("database-url");
if (!CLUSTER) {
  console.error("usage: node bench/nodes.mjs --database-url postgres://USER@HOST:PORT/DB [--subscribers N] [--writes N]");
  process.exit(2);
}
const SUBSCRIBERS = Number(argValue("subscribers") ?? 1000);
const WRITES = Number(argValue("writes") ?? 30);

const MODULE = `
export const count = query(#{
    args: #{},
    handler: |ctx, args| ctx.db.query("todos").withIndex("by_user", |q| q.eq("userId", "bench-nodes")).collect().len()
});
export const post = mutation(#{
    args: #{ n: "number" },
    handler: |ctx, args| ctx.db.insert("todos", #{ text: "w" + args.n, userId: "bench-nodes", completed: false })
});
`;

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let databases = 0;

function freshDatabase() {
  return createDatabase(CLUSTER, `bench_nodes_${process.pid}_${++databases}`);
}

async function startNodes(n, { sqlite = false } = {}) {
  const dir = copyExampleApp();
  writeFileSync(join(dir, "functions", "bench_nodes.rhai"), MODULE);
  const extraArgs = sqlite ? [] : ["--database-url", freshDatabase()];
  const nodes = [];
  for (let i = 0; i < n; i++) {
    nodes.push(await new Server({ dir, mode: "dev", extraArgs }).start(60_000));
  }
  return { dir, nodes };
}

async function stopNodes({ dir, nodes }) {
  for (const node of nodes) await node.stop();
  rmSync(dir, { recursive: true, force: true });
}

/** Opens `count` subscribers of bench_nodes:count over `nodes`; resolves when all have a first result. */
async function subscribe(nodes, count) {
  const sockets = [];
  for (let i = 0; i < count; i++) {
    const s = await RawSocket.open(nodes[i % nodes.length].url, { timeout: 30_000 });
    s.send({ type: "Connect", sessionId: crypto.randomUUID(), connectionCount: 0, lastCloseReason: "InitialConnect", clientTs: Date.now() });
    s.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [{ type: "Add", queryId: 0, udfPath: "bench_nodes:count", args: [{}] }] });
    sockets.push(s);
  }
  for (const s of sockets) await s.next((m) => m.type === "Transition" && m.modifications.some((x) => x.type === "QueryUpdated"), { timeout: 60_000 });
  return sockets;
}

/** When socket `s` first saw the count reach `value` (ms, Date.now clock), or null. */
function seenAt(s, value) {
  for (const { at, msg } of s.messages) {
    if (msg.type !== "Transition") continue;
    for (const m of msg.modifications) {
      if (m.type === "QueryUpdated" && Number(m.value?.$integer ? Buffer.from(m.value.$integer, "base64").readBigInt64LE() : m.value) >= value) return at;
    }
  }
  return null;
}

/** Sends WRITES mutations one at a time through `writer`; the delays to every subscriber. */
async function pushes(writer, sockets) {
  const http = new ConvexHttpClient(writer.url);
  const sent = [];
  for (let i = 1; i <= WRITES; i++) {
    sent.push(Date.now());
    await http.mutation(makeFunctionReference("bench_nodes:post"), { n: i });
    await sleep(100);
  }
  await sleep(2_000);
  const delays = [];
  let missing = 0;
  for (let i = 1; i <= WRITES; i++) {
    for (const s of sockets) {
      const at = seenAt(s, i);
      if (at === null) missing += 1;
      else delays.push(at - sent[i - 1]);
    }
  }
  delays.sort((a, b) => a - b);
  return { p50: percentile(delays, 50), p99: percentile(delays, 99), missing };
}

async function crossNode() {
  const deployment = await startNodes(4);
  try {
    const [writer, ...serving] = deployment.nodes;
    const sockets = await subscribe(serving, SUBSCRIBERS);
    const r = await pushes(writer, sockets);
    for (const s of sockets) s.close();
    return r;
  } finally {
    await stopNodes(deployment);
  }
}

async function singleNode(options) {
  const deployment = await startNodes(1, options);
  try {
    const [node] = deployment.nodes;
    const sockets = await subscribe([node], SUBSCRIBERS);
    const r = await pushes(node, sockets);
    for (const s of sockets) s.close();
    return r;
  } finally {
    await stopNodes(deployment);
  }
}

async function killUnderLoad() {
  const deployment = await startNodes(4);
  try {
    const nodes = deployment.nodes;
    const victim = nodes[3];
    const acks = []; // times (ms) of writes acknowledged by surviving nodes
    let stop = false;
    const loops = Array.from({ length: 16 }, async (_, i) => {
      const node = nodes[i % nodes.length];
      const http = new ConvexHttpClient(node.url);
      for (let n = 0; !stop && n < 1_000_000; n++) {
        try {
          await http.mutation(makeFunctionReference("bench_nodes:post"), { n });
          if (node !== victim) acks.push(performance.now());
        } catch {
          await sleep(10);
        }
      }
    });
    await sleep(2_000);
    const killedAt = performance.now();
    victim.proc.kill("SIGKILL");
    await sleep(3_000);
    stop = true;
    await Promise.all(loops);
    acks.sort((a, b) => a - b);
    const around = acks.filter((t) => t > killedAt - 1_000);
    let gap = 0;
    let prev = killedAt;
    for (const t of around.filter((t) => t >= killedAt)) {
      gap = Math.max(gap, t - prev);
      prev = t;
    }
    return { gap_ms: gap, acked_after: acks.filter((t) => t > killedAt).length };
  } finally {
    await stopNodes(deployment);
  }
}

const sqlite = await singleNode({ sqlite: true });
const single = await singleNode();
const cross = await crossNode();
const kill = await killUnderLoad();
console.log(
  JSON.stringify({
    subscribers: SUBSCRIBERS,
    writes: WRITES,
    sqlite_single_node_push_p50_ms: sqlite.p50,
    sqlite_single_node_push_p99_ms: sqlite.p99,
    single_node_push_p50_ms: single.p50,
    single_node_push_p99_ms: single.p99,
    cross_node_push_p50_ms: cross.p50,
    cross_node_push_p99_ms: cross.p99,
    missed_updates: sqlite.missing + single.missing + cross.missing,
    kill_longest_write_pause_ms: Math.round(kill.gap_ms),
    kill_acked_after: kill.acked_after,
  }),
);
