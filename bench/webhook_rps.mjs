// Issue 5 benchmark (b): Clerk webhook requests per second through the real binary:
// Svix-signed `user.updated` posts to POST /clerk-users-webhook of the example app (verify,
// then one upsert mutation with its idempotency record, committed), from a few concurrent
// keep-alive connections.
//
//   node bench/webhook_rps.mjs [--seconds 10] [--concurrency 4] [--users 100]
//
// Uses the packages installed in tests/node and the binary in PULSEBASE_BIN (default
// target/release/pulsebase). The client runs on the same machine and takes CPU from the
// server; the figure is what one machine does end to end. Prints one JSON line.

import { createRequire } from "node:module";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

import { Server, copyExampleApp } from "../tests/node/lib/server.mjs";

const require = createRequire(new URL("../tests/node/package.json", import.meta.url));
const { Webhook } = require("svix");

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const SECONDS = arg("seconds", 10);
const CONCURRENCY = arg("concurrency", 4);
const USERS = arg("users", 100);
const SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const webhook = new Webhook(SECRET);

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

function userUpdated(n, seq) {
  return JSON.stringify({
    data: {
      id: `user_bench_${n}`,
      object: "user",
      username: `bench${n}`,
      first_name: "Bench",
      last_name: `User ${seq}`,
      image_url: "https://img.clerk.com/bench",
      primary_email_address_id: "idn_1",
      email_addresses: [{ id: "idn_1", object: "email_address", email_address: `bench${n}@example.com`, linked_to: [] }],
      public_metadata: { role: "member" },
      private_metadata: {},
      unsafe_metadata: {},
      created_at: 1700000000000,
      updated_at: 1700000000000 + seq,
    },
    event_attributes: { http_request: { client_ip: "127.0.0.1", user_agent: "bench" } },
    instance_id: "ins_bench",
    object: "event",
    timestamp: Date.now(),
    type: "user.updated",
  });
}

const dir = copyExampleApp();
writeFileSync(join(dir, ".env.local"), `CLERK_WEBHOOK_SECRET=${SECRET}\n`);
// Rate limits stay on but out of reach, as in pulsebase-bench: from one address, 4 connections
// outrun the default calls-per-ip budget (1,000/s, bursts of 5,000) within a 10 s run.
const BENCH_LIMITS = ["--rate-limit", "calls-per-ip=100000000/s"];
const server = await new Server({ dir, extraArgs: BENCH_LIMITS }).start();
const url = `${server.url}/clerk-users-webhook`;

let seq = 0;
const latencies = [];
let ok = 0;
let failed = 0;
let firstFailure = null;

async function worker(until) {
  while (performance.now() < until) {
    const n = seq % USERS;
    const id = `msg_bench_${process.pid}_${++seq}`;
    const body = userUpdated(n, seq);
    const date = new Date();
    const started = performance.now();
    const res = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "svix-id": id,
        "svix-timestamp": String(Math.floor(date.getTime() / 1000)),
        "svix-signature": webhook.sign(id, date, body),
      },
      body,
    });
    const text = await res.text();
    latencies.push(performance.now() - started);
    if (res.status === 200 && text.includes('"applied"')) ok += 1;
    else {
      failed += 1;
      firstFailure ??= `${res.status} ${text}`;
    }
  }
}

try {
  // Warm-up: creates the users, so the measured posts are updates.
  await Promise.all(Array.from({ length: CONCURRENCY }, () => worker(performance.now() + 1_000)));
  latencies.length = 0;
  ok = 0;
  failed = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, () => worker(started + SECONDS * 1000)));
  const elapsed = (performance.now() - started) / 1000;
  const sorted = [...latencies].sort((a, b) => a - b);
  const round = (x) => Math.round(x * 100) / 100;
  console.log(
    JSON.stringify({
      bench: "webhook_rps",
      seconds: round(elapsed),
      concurrency: CONCURRENCY,
      requests: ok + failed,
      ok,
      failed,
      rps: Math.round(ok / elapsed),
      p50_ms: round(percentile(sorted, 50)),
      p95_ms: round(percentile(sorted, 95)),
      p99_ms: round(percentile(sorted, 99)),
      first_failure: firstFailure,
    }),
  );
} finally {
  await server.dispose();
}
