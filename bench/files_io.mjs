// Issue 13 benchmark: file storage and data in/out through the real binary.
//
//   node bench/files_io.mjs [--mib 100] [--rounds 5] [--docs 1000000] [--seconds 5]
//
// Throughput figures are the median of --rounds transfers; --docs 0 skips parts 2 and 3.
//
// 1. Upload and download throughput of one file of --mib MiB (POST to an upload URL from
//    ctx.storage.generateUploadUrl, GET from ctx.storage.getUrl), beside `cp` of the same
//    file on the same disk, and beside a durable copy (`cp`, then `sync --data` of the
//    copy: the bytes on disk, as an upload's fsync leaves them; `cp` alone leaves them in
//    the page cache).
// 2. `pulsebase import` of --docs small documents (one .jsonl) into a fresh app with no
//    server running, then `pulsebase export` of them: documents per second.
// 3. HTTP mutation latency (4 concurrent writers) for --seconds, quiet, then while
//    `pulsebase export` runs, then while `pulsebase backup` runs, against the app holding
//    those documents: p50 / p99.
//
// Uses tests/node's helpers and the binary in PULSEBASE_BIN (default target/release/pulsebase).
// Client and server share the machine. Prints one JSON line of metrics.

import { execFileSync } from "node:child_process";
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { get, request } from "node:http";
import { createRequire } from "node:module";

import { Server, copyExampleApp, runCli } from "../tests/node/lib/server.mjs";

// Rate limits stay on but out of reach, as in pulsebase-bench (crates/bench/src/server.rs).
const BENCH_LIMITS = ["--rate-limit", "calls-per-user=100000000/s", "--rate-limit", "calls-per-ip=100000000/s"];

const require = createRequire(new URL("../tests/node/package.json", import.meta.url));
const { ConvexHttpClient } = require("convex/browser");
const { makeFunctionReference: ref } = require("convex/server");

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const MIB = arg("mib", 100);
const DOCS = arg("docs", 1_000_000);
const SECONDS = arg("seconds", 5);
const ROUNDS = arg("rounds", 5);
const work = mkdtempSync(join(tmpdir(), "pulsebase-files-bench-"));
const metrics = {};
const log = (...a) => console.error(...a);
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const seconds = (start) => Number(process.hrtime.bigint() - start) / 1e9;

/** POSTs a file to an upload URL, streamed in 1 MiB writes; resolves to the response body. */
function upload(url, file) {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", headers: { "Content-Type": "application/octet-stream", "Content-Length": statSync(file).size } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`upload: ${res.statusCode} ${body}`))));
    });
    req.on("error", reject);
    createReadStream(file, { highWaterMark: 1 << 20 }).pipe(req);
  });
}

/** GETs a URL and counts the bytes; resolves to the count. */
function download(url) {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let bytes = 0;
      res.on("data", (d) => (bytes += d.length));
      res.on("end", () => resolve(bytes));
    }).on("error", reject);
  });
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function throughput() {
  const file = join(work, "blob.bin");
  const out = createWriteStream(file);
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < MIB; i++) {
    chunk.fill(i & 0xff);
    chunk[7] = (i * 13) & 0xff;
    out.write(Buffer.from(chunk));
  }
  await new Promise((r) => out.end(r));
  execFileSync("sync");
  const copies = [];
  let t;
  for (let round = 0; round < ROUNDS; round++) {
    rmSync(join(work, "copy.bin"), { force: true });
    t = process.hrtime.bigint();
    execFileSync("cp", [file, join(work, "copy.bin")]);
    copies.push(MIB / seconds(t));
  }
  metrics.cp_mib_s = median(copies);
  const durable = [];
  for (let round = 0; round < ROUNDS; round++) {
    rmSync(join(work, "copy.bin"), { force: true });
    t = process.hrtime.bigint();
    execFileSync("cp", [file, join(work, "copy.bin")]);
    execFileSync("sync", ["--data", join(work, "copy.bin")]);
    durable.push(MIB / seconds(t));
  }
  rmSync(join(work, "copy.bin"), { force: true });
  metrics.cp_durable_mib_s = median(durable);
  const server = await new Server({ dir: copyExampleApp(), extraArgs: BENCH_LIMITS }).start();
  try {
    const http = new ConvexHttpClient(server.url);
    http.setAuth(await server.token("bench_user"));
    // Node's `http` module, not `fetch`: fetch's web streams cap a loopback transfer near
    // 300 MiB/s on this machine, which would measure the client rather than the server.
    const uploads = [];
    const downloads = [];
    let storageId;
    for (let round = 0; round < ROUNDS; round++) {
      const url = await http.mutation(ref("files:generateUploadUrl"), {});
      t = process.hrtime.bigint();
      storageId = JSON.parse(await upload(url, file)).storageId;
      uploads.push(MIB / seconds(t));
    }
    await http.mutation(ref("files:saveFile"), { storageId, name: "blob.bin" });
    const [listed] = await http.query(ref("files:list"), {});
    for (let round = 0; round < ROUNDS; round++) {
      t = process.hrtime.bigint();
      const bytes = await download(listed.url);
      downloads.push(MIB / seconds(t));
      if (bytes !== MIB << 20) throw new Error(`downloaded ${bytes} bytes`);
    }
    metrics.upload_mib_s = median(uploads);
    metrics.download_mib_s = median(downloads);
    metrics.upload_runs_mib_s = uploads.map(Math.round);
    metrics.download_runs_mib_s = downloads.map(Math.round);
  } finally {
    await server.dispose();
  }
  log(`cp ${metrics.cp_mib_s.toFixed(0)} MiB/s (durable ${metrics.cp_durable_mib_s.toFixed(0)}), upload ${metrics.upload_mib_s.toFixed(0)} MiB/s, download ${metrics.download_mib_s.toFixed(0)} MiB/s`);
}

async function latencies(http, what, during) {
  const samples = [];
  let stop = false;
  const writers = Array.from({ length: 4 }, async (_, w) => {
    let n = 0;
    while (!stop) {
      const t = process.hrtime.bigint();
      await http.mutation(ref("todos:addTodo"), { text: `latency ${w} ${n++}` });
      samples.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
  });
  const started = Date.now();
  const task = during ? during() : new Promise((r) => setTimeout(r, SECONDS * 1000));
  const result = await task;
  // At least --seconds of samples, also when the operation ends sooner.
  while (Date.now() - started < SECONDS * 1000) await new Promise((r) => setTimeout(r, 50));
  stop = true;
  await Promise.all(writers);
  samples.sort((a, b) => a - b);
  metrics[`${what}.p50_ms`] = percentile(samples, 50);
  metrics[`${what}.p99_ms`] = percentile(samples, 99);
  metrics[`${what}.mutations`] = samples.length;
  log(`${what}: ${samples.length} mutations, p50 ${metrics[`${what}.p50_ms`].toFixed(2)} ms, p99 ${metrics[`${what}.p99_ms`].toFixed(2)} ms`);
  return result;
}

async function bulk() {
  const dir = copyExampleApp();
  const jsonl = join(work, "todos.jsonl");
  const out = createWriteStream(jsonl);
  for (let i = 0; i < DOCS; i++) {
    out.write(`{"text":"imported todo ${i}","userId":"user_${i % 1000}","completed":${i % 3 === 0}}\n`);
  }
  await new Promise((r) => out.end(r));
  let t = process.hrtime.bigint();
  const imported = await runCli(["import", jsonl, "--dir", dir, "--table", "todos"], { timeout: 1_800_000 });
  if (imported.code !== 0) throw new Error(imported.stderr);
  metrics.import_docs_s = DOCS / seconds(t);
  t = process.hrtime.bigint();
  const zip = join(work, "export.zip");
  const exported = await runCli(["export", "--dir", dir, "--path", zip], { timeout: 1_800_000 });
  if (exported.code !== 0) throw new Error(exported.stderr);
  metrics.export_docs_s = DOCS / seconds(t);
  metrics.export_zip_mib = statSync(zip).size / (1 << 20);
  log(`import ${metrics.import_docs_s.toFixed(0)} docs/s, export ${metrics.export_docs_s.toFixed(0)} docs/s (${metrics.export_zip_mib.toFixed(1)} MiB ZIP)`);

  // The writers are one user; lift the per-user call limit (100/s by default) out of the way.
  const server = await new Server({ dir, extraArgs: BENCH_LIMITS }).start(120_000);
  try {
    const http = new ConvexHttpClient(server.url);
    http.setAuth(await server.token("bench_writer"));
    await latencies(http, "quiet");
    await latencies(http, "during_export", async () => {
      const t0 = process.hrtime.bigint();
      const r = await runCli(["export", "--dir", dir, "--path", join(work, "during.zip")], { timeout: 1_800_000 });
      if (r.code !== 0) throw new Error(r.stderr);
      metrics.live_export_s = seconds(t0);
    });
    await latencies(http, "during_backup", async () => {
      const t0 = process.hrtime.bigint();
      const r = await runCli(["backup", join(work, "backup.zip"), "--dir", dir], { timeout: 1_800_000 });
      if (r.code !== 0) throw new Error(r.stderr);
      metrics.live_backup_s = seconds(t0);
    });
  } finally {
    await server.dispose();
  }
}

try {
  await throughput();
  if (DOCS > 0) await bulk();
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(JSON.stringify(metrics));
