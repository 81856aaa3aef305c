// Issue 5 benchmark (a): time from saving a function file to the first subscriber receiving
// the re-run result, through the real binary (`pulsebase dev`, notify watcher + debounce +
// reload + re-run + push) and the official ConvexClient.
//
//   node bench/dev_sync_latency.mjs [--saves 30] [--gap-ms 150]
//
// Uses the packages installed in tests/node (cd tests/node && npm ci) and the binary in
// PULSEBASE_BIN (default target/release/pulsebase). Prints one JSON line.

import { createRequire } from "node:module";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

import { Server } from "../tests/node/lib/server.mjs";
import { writeApp } from "../tests/node/lib/app.mjs";

const require = createRequire(new URL("../tests/node/package.json", import.meta.url));
const WebSocket = require("ws");
const { ConvexClient } = require("convex/browser");
const { makeFunctionReference } = require("convex/server");

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const SAVES = arg("saves", 30);
const GAP_MS = arg("gap-ms", 150);

const moduleText = (version) => `
export const greeting = query(#{ args: #{}, handler: |ctx, args| "${version}" });
`;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

const dir = writeApp({ "schema.toml": "", "functions/bench_sync.rhai": moduleText("v0") });
const server = await new Server({ dir }).start();
const client = new ConvexClient(server.url, {
  webSocketConstructor: WebSocket,
  unsavedChangesWarning: false,
  logger: { logVerbose() {}, log() {}, warn() {}, error() {} },
});

let waiter = null;
let latest = null;
client.onUpdate(makeFunctionReference("bench_sync:greeting"), {}, (value) => {
  latest = value;
  if (waiter && value === waiter.want) {
    waiter.resolve(performance.now());
    waiter = null;
  }
});

const samples = [];
const serverMs = [];
try {
  const deadline = Date.now() + 10_000;
  while (latest !== "v0" && Date.now() < deadline) await sleep(10);
  if (latest !== "v0") throw new Error("no first result");
  for (let i = 1; i <= SAVES; i++) {
    const want = `v${i}`;
    const received = new Promise((resolve, reject) => {
      waiter = { want, resolve };
      setTimeout(() => reject(new Error(`no push of ${want} within 5 s`)), 5_000);
    });
    const before = server.stdout.length;
    const saved = performance.now();
    writeFileSync(join(dir, "functions/bench_sync.rhai"), moduleText(want));
    const at = await received;
    samples.push(at - saved);
    // The server's own "✓ functions synced: ... in N ms" (load + swap), for the breakdown.
    await sleep(GAP_MS);
    const line = server.stdout.slice(before).match(/functions synced:.* in (\d+) ms/);
    if (line) serverMs.push(Number(line[1]));
  }
} finally {
  await Promise.race([client.close().catch(() => {}), sleep(2_000)]);
  await server.dispose();
}

const sorted = [...samples].sort((a, b) => a - b);
const round = (x) => Math.round(x * 10) / 10;
console.log(
  JSON.stringify({
    bench: "dev_sync_latency",
    saves: samples.length,
    median_ms: round(percentile(sorted, 50)),
    p95_ms: round(percentile(sorted, 95)),
    min_ms: round(sorted[0]),
    max_ms: round(sorted.at(-1)),
    server_reload_median_ms: serverMs.length ? [...serverMs].sort((a, b) => a - b)[Math.floor(serverMs.length / 2)] : null,
    debounce_ms: 40,
  }),
);
