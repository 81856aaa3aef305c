// File storage end to end with the real binary: the official client's upload pattern
// (generateUploadUrl, POST the bytes, save the storageId), getUrl with whole and ranged reads,
// a reactive ctx.db.system.query("_storage"), deletion and the bytes going away, refused
// upload URLs (expired, reused, forged) writing nothing, and a 200 MiB upload whose server
// memory stays flat.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statfsSync } from "node:fs";
import { join } from "node:path";
import WebSocket from "ws";
import { ConvexClient, ConvexHttpClient } from "convex/browser";

import { startExample, waitFor } from "./lib/server.mjs";
import { m, q, rejection, writeApp } from "./lib/app.mjs";
import { Server } from "./lib/server.mjs";

const sha256 = (buf) => createHash("sha256").update(buf).digest();

/** Every blob file in the app's file store. */
function storedBlobs(dir) {
  const root = join(dir, ".pulsebase", "storage");
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((d) => d.length === 2)
    .flatMap((d) => readdirSync(join(root, d)));
}

function rssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(status.match(/VmRSS:\s+(\d+)/)[1]);
}

describe("file storage", () => {
  let server;
  let http;
  before(async () => {
    server = await startExample({ env: { PULSEBASE_UPLOAD_URL_TTL_MS: "2000" } });
    http = new ConvexHttpClient(server.url);
    http.setAuth(await server.token("files_user", { name: "Files" }));
  });
  after(async () => server?.dispose());

  async function upload(bytes, type = "text/plain") {
    const postUrl = await http.mutation(m("files:generateUploadUrl"), {});
    const result = await fetch(postUrl, { method: "POST", headers: { "Content-Type": type }, body: bytes });
    assert.equal(result.status, 200, await result.clone().text());
    const { storageId } = await result.json();
    return storageId;
  }

  test("upload, getUrl (whole and a byte range), reactive _storage, delete and the bytes go", async () => {
    const client = new ConvexClient(server.url, { webSocketConstructor: WebSocket, logger: false });
    client.setAuth(async () => server.token("files_user", { name: "Files" }));
    const seen = [];
    const unsubscribe = client.onUpdate(q("files:storedFiles"), {}, (rows) => seen.push(rows));
    try {
      await waitFor(() => seen.length > 0, { what: "the first _storage result" });
      const before = seen.at(-1).length;
      const bytes = Buffer.from("hello, stored world! ".repeat(100));
      const storageId = await upload(bytes, "text/plain; charset=utf-8");
      const fileId = await http.mutation(m("files:saveFile"), { storageId, name: "hello.txt" });

      // The subscription to ctx.db.system.query("_storage") sees the new row.
      const rows = await waitFor(() => seen.at(-1).length === before + 1 && seen.at(-1), { what: "the new _storage row" });
      const meta = rows.find((r) => r._id === storageId);
      assert.equal(meta.size, bytes.length);
      assert.equal(meta.contentType, "text/plain; charset=utf-8");
      assert.equal(meta.sha256, sha256(bytes).toString("base64"));
      assert.equal(typeof meta._creationTime, "number");

      const [file] = (await http.query(q("files:list"), {})).filter((f) => f._id === fileId);
      assert.ok(file.url.startsWith(server.url), file.url);
      const whole = await fetch(file.url);
      assert.equal(whole.status, 200);
      assert.equal(whole.headers.get("content-type"), "text/plain; charset=utf-8");
      assert.deepEqual(Buffer.from(await whole.arrayBuffer()), bytes);
      const range = await fetch(file.url, { headers: { Range: "bytes=7-12" } });
      assert.equal(range.status, 206);
      assert.equal(range.headers.get("content-range"), `bytes 7-12/${bytes.length}`);
      assert.equal(await range.text(), "stored");
      // A URL not signed by the server is refused.
      const unsigned = await fetch(file.url.replace(/sig=[^&]+/, "sig=forged"));
      assert.equal(unsigned.status, 403);

      // ctx.db.get of a storage id points to ctx.db.system.get; user code cannot write _storage.
      assert.equal(storedBlobs(server.dir).length >= 1, true);
      await http.mutation(m("files:remove"), { id: fileId });
      await waitFor(() => seen.at(-1).length === before, { what: "the _storage row to go" });
      const digest = sha256(bytes).toString("hex");
      await waitFor(() => !storedBlobs(server.dir).includes(digest), { what: "the bytes to be removed" });
      const gone = await fetch(file.url);
      assert.equal(gone.status, 404);
    } finally {
      unsubscribe();
      await client.close();
    }
  });

  test("identical bytes are stored once and kept while any file refers to them", async () => {
    const bytes = Buffer.from("same content twice");
    const a = await upload(bytes);
    const b = await upload(bytes);
    assert.notEqual(a, b);
    const digest = sha256(bytes).toString("hex");
    assert.equal(storedBlobs(server.dir).filter((f) => f === digest).length, 1);
    const fa = await http.mutation(m("files:saveFile"), { storageId: a, name: "a" });
    const fb = await http.mutation(m("files:saveFile"), { storageId: b, name: "b" });
    await http.mutation(m("files:remove"), { id: fa });
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(storedBlobs(server.dir).includes(digest), "still referenced by b");
    await http.mutation(m("files:remove"), { id: fb });
    await waitFor(() => !storedBlobs(server.dir).includes(digest), { what: "the shared bytes to go" });
  });

  test("expired, reused and forged upload URLs are refused and write nothing", async () => {
    const count = async () => (await http.query(q("files:storedFiles"), {})).length;
    const blobs = storedBlobs(server.dir).length;
    const rows = await count();

    const url = await http.mutation(m("files:generateUploadUrl"), {});
    const first = await fetch(url, { method: "POST", body: "first" });
    assert.equal(first.status, 200);
    const reused = await fetch(url, { method: "POST", body: "second" });
    assert.equal(reused.status, 409);
    assert.match((await reused.json()).message, /already used/);

    const forged = url.replace(/token=(\d+)\./, (_, exp) => `token=${Number(exp) + 10_000_000}.`);
    const forgedRes = await fetch(forged, { method: "POST", body: "forged" });
    assert.equal(forgedRes.status, 403);
    assert.match((await forgedRes.json()).message, /signature/);
    const garbage = await fetch(`${server.url}/api/storage/upload?token=nonsense`, { method: "POST", body: "x" });
    assert.equal(garbage.status, 400);

    const soon = await http.mutation(m("files:generateUploadUrl"), {});
    await new Promise((r) => setTimeout(r, 2_300));
    const expired = await fetch(soon, { method: "POST", body: "late" });
    assert.equal(expired.status, 410);
    assert.match((await expired.json()).message, /expired/);

    assert.equal(await count(), rows + 1, "only the first upload was recorded");
    assert.equal(storedBlobs(server.dir).length, blobs + 1);
    const tmp = join(server.dir, ".pulsebase", "storage", "tmp");
    assert.deepEqual(readdirSync(tmp), [], "no temporary file left behind");
  });

  test("a 200 MiB upload streams to disk with flat server memory", async () => {
    const size = 200 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7) & 0xff;
    const hash = createHash("sha256");
    const pid = server.proc.pid;
    const baseline = rssKiB(pid);
    let peak = baseline;
    const sampler = setInterval(() => {
      try {
        peak = Math.max(peak, rssKiB(pid));
      } catch {
        // The server is gone; the upload's own error says so.
      }
    }, 25);
    let sent = 0;
    const body = new ReadableStream({
      pull(controller) {
        if (sent >= size) return controller.close();
        chunk[0] = sent / chunk.length;
        hash.update(chunk);
        controller.enqueue(new Uint8Array(chunk));
        sent += chunk.length;
      },
    });
    const url = await http.mutation(m("files:generateUploadUrl"), {});
    const started = Date.now();
    let res;
    try {
      res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body, duplex: "half" });
    } catch (e) {
      // A broken connection says nothing by itself: name its cause, the free disk and the server's log.
      const free = statfsSync(server.dir);
      throw new Error(
        `the upload broke off after ${sent >> 20} MiB: ${e.message} (${e.cause?.code ?? ""} ${e.cause?.message ?? ""}); ` +
          `server alive: ${server.proc.exitCode === null && server.proc.signalCode === null}, ` +
          `free disk ${Math.round((free.bavail * free.bsize) / 2 ** 20)} MiB; server log: ${server.stderr.slice(-2000)}`,
      );
    } finally {
      clearInterval(sampler);
    }
    assert.equal(res.status, 200, `${await res.clone().text()}; server log: ${server.stderr.slice(-2000)}`);
    const { storageId } = await res.json();
    const seconds = (Date.now() - started) / 1000;
    const rows = await http.query(q("files:storedFiles"), {});
    const meta = rows.find((r) => r._id === storageId);
    assert.equal(meta.size, size);
    assert.equal(meta.sha256, hash.digest("base64"));
    const growthMiB = (peak - baseline) / 1024;
    console.log(`200 MiB upload: ${(200 / seconds).toFixed(0)} MiB/s, server RSS ${baseline >> 10} MiB -> peak ${peak >> 10} MiB (+${growthMiB.toFixed(1)} MiB)`);
    assert.ok(growthMiB < 64, `server memory grew by ${growthMiB.toFixed(1)} MiB during a 200 MiB upload`);
  });

});

describe("file storage limits", () => {
  test("PULSEBASE_MAX_UPLOAD_BYTES refuses larger uploads with 413 and stores nothing", async () => {
    const server = await startExample({ env: { PULSEBASE_MAX_UPLOAD_BYTES: "1000" } });
    try {
      const http = new ConvexHttpClient(server.url);
      http.setAuth(await server.token("limit_user"));
      const url = await http.mutation(m("files:generateUploadUrl"), {});
      const res = await fetch(url, { method: "POST", body: Buffer.alloc(5000) });
      assert.equal(res.status, 413);
      assert.match((await res.json()).message, /larger than the limit of 1000 bytes/);
      assert.deepEqual(storedBlobs(server.dir), []);
      const again = await fetch(url, { method: "POST", body: Buffer.alloc(10) });
      assert.equal(again.status, 200, "the refused upload did not use the URL");
    } finally {
      await server.dispose();
    }
  });

  test("a client still sending a large body reads the refusal, not a broken connection", async () => {
    const server = await startExample({ env: { PULSEBASE_MAX_UPLOAD_BYTES: String(1 << 20) } });
    try {
      const http = new ConvexHttpClient(server.url);
      http.setAuth(await server.token("limit_user"));
      const big = Buffer.alloc(64 << 20, 7);
      const streamed = () => {
        let sent = 0;
        return new ReadableStream({
          pull(controller) {
            if (sent >= big.length) return controller.close();
            controller.enqueue(new Uint8Array(big.subarray(sent, sent + (1 << 20))));
            sent += 1 << 20;
          },
        });
      };
      const post = async (url, body) => {
        const res = await fetch(url, { method: "POST", body, duplex: "half" }).catch((e) => {
          throw new Error(`the refusal did not reach the client: ${e.message} (${e.cause?.code ?? ""})`);
        });
        return { status: res.status, body: await res.json() };
      };
      for (let round = 0; round < 3; round++) {
        const url = await http.mutation(m("files:generateUploadUrl"), {});
        // No Content-Length: the limit is found while the bytes arrive.
        const chunked = await post(url, streamed());
        assert.equal(chunked.status, 413);
        assert.equal(chunked.body.code, "FileTooLarge");
        // A Content-Length over the limit is refused before a byte is read.
        const declared = await post(url, big);
        assert.equal(declared.status, 413);
        // A forged URL is refused before a byte is read.
        const forged = await post(url.replace(/token=[^&]*/, "token=forged"), big);
        assert.ok([400, 403].includes(forged.status), JSON.stringify(forged));
        assert.equal(forged.body.code, "InvalidUploadUrl");
      }
      assert.deepEqual(storedBlobs(server.dir), [], "nothing stored");
      assert.deepEqual(readdirSync(join(server.dir, ".pulsebase", "storage", "tmp")), [], "no temporary file left behind");
    } finally {
      await server.dispose();
    }
  });
});

describe("system tables", () => {
  test("user code cannot write _storage; ctx.db.get / ctx.db.query point to ctx.db.system", async () => {
    const dir = writeApp({
      "schema.toml": '[tables.notes]\nfields = { file = "optional<id<_storage>>" }\n',
      "functions/sys.rhai": `
export const forge = mutation(|ctx, args| ctx.db.insert("_storage", #{ sha256: "x", size: 1.0 }));
export const scan = query(|ctx, args| ctx.db.query("_storage").collect());
export const getDirect = query(#{ args: #{ id: "id<_storage>" }, handler: |ctx, args| ctx.db.get(args.id) });
export const getSystem = query(#{ args: #{ id: "id<_storage>" }, handler: |ctx, args| ctx.db.system.get(args.id) });
export const upload = mutation(|ctx, args| ctx.storage.generateUploadUrl());
export const urlInQuery = query(|ctx, args| ctx.storage.generateUploadUrl());
`,
    });
    const server = await new Server({ dir }).start();
    try {
      const http = new ConvexHttpClient(server.url);
      const forge = await rejection(http.mutation(m("sys:forge"), {}), "sys:forge");
      assert.match(String(forge.message), /cannot write the system table "_storage"/);
      const scan = await rejection(http.query(q("sys:scan"), {}), "sys:scan");
      assert.match(String(scan.message), /ctx\.db\.system\.query\("_storage"\)/);
      const inQuery = await rejection(http.query(q("sys:urlInQuery"), {}), "sys:urlInQuery");
      assert.match(String(inQuery.message), /not available in a query/);
      const url = await http.mutation(m("sys:upload"), {});
      const { storageId } = await (await fetch(url, { method: "POST", body: "abc" })).json();
      const direct = await rejection(http.query(q("sys:getDirect"), { id: storageId }), "sys:getDirect");
      assert.match(String(direct.message), /ctx\.db\.system\.get/);
      const meta = await http.query(q("sys:getSystem"), { id: storageId });
      assert.equal(meta.size, 3);
      const bad = await rejection(http.query(q("sys:getSystem"), { id: "nope" }), "sys:getSystem");
      assert.match(String(bad.message), /id<_storage>|id/);
    } finally {
      await server.dispose();
    }
  });
});

describe("file storage in actions", () => {
  test("an HTTP action stores, reads, serves and deletes files; mutations cannot store", async () => {
    const dir = writeApp({
      "schema.toml": "",
      "functions/notes.rhai": `
export const storeInMutation = mutation(|ctx, args| ctx.storage.store("nope"));
`,
      "functions/http.rhai": `
export const http = httpRouter()
    .route(#{ path: "/store", method: "POST", handler: httpAction(|ctx, request| {
        let id = ctx.storage.store(request.text(), #{ contentType: "text/markdown" });
        #{ status: 200, body: #{ id: id, url: ctx.storage.getUrl(id) } }
    }) })
    .route(#{ path: "/read", method: "GET", handler: httpAction(|ctx, request| {
        let bytes = ctx.storage.get(request.query.id);
        if bytes == () { return #{ status: 404, body: "missing" }; }
        ctx.storage.delete(request.query.id);
        #{ status: 200, body: bytes }
    }) });
`,
    });
    const server = await new Server({ dir }).start();
    try {
      const stored = await fetch(`${server.url}/store`, { method: "POST", body: "# stored by an action" });
      assert.equal(stored.status, 200, await stored.clone().text());
      const { id, url } = await stored.json();
      const served = await fetch(url);
      assert.equal(served.headers.get("content-type"), "text/markdown");
      assert.equal(await served.text(), "# stored by an action");
      const read = await fetch(`${server.url}/read?id=${id}`);
      assert.equal(await read.text(), "# stored by an action");
      const again = await fetch(`${server.url}/read?id=${id}`);
      assert.equal(again.status, 404, "deleted by the first read");
      await waitFor(() => storedBlobs(dir).length === 0, { what: "the deleted file's bytes to go" });
      const http = new ConvexHttpClient(server.url);
      const refused = await rejection(http.mutation(m("notes:storeInMutation"), {}), "storeInMutation");
      assert.match(String(refused.message), /only available in actions/);
    } finally {
      await server.dispose();
    }
  });
});
