// Issue 2 through the real binary: the HTTP API driven by the official ConvexHttpClient,
// against a purpose-built app (its own schema.toml and functions) and the example app.

import { after, before, describe, test } from "node:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { ConvexHttpClient } from "convex/browser";
import { ConvexError } from "convex/values";

import { Server, startExample } from "./lib/server.mjs";
import { writeApp, q, m, rejection } from "./lib/app.mjs";

const SCHEMA = `
[tables.items]
fields = { n = "number", tag = "string", note = "optional<string>" }
indexes = { by_n = ["n"], by_tag_n = ["tag", "n"] }

[tables.shapes]
fields = { name = "string", size = "number", inner = "optional<object{label: string, depth: int64}>" }

[tables.vals]
fields = { v = "any" }

[tables.typed]
fields = { big = "int64", raw = "bytes", f = "number" }

[tables.counters]
fields = { name = "string", value = "number" }
indexes = { by_name = ["name"] }
`;

const COUNTERS = `
export const bump = mutation(#{
    args: #{ name: "string" },
    handler: |ctx, args| {
        let c = ctx.db.query("counters").withIndex("by_name", |q| q.eq("name", args.name)).unique();
        if c == () {
            ctx.db.insert("counters", #{ name: args.name, value: 1.0 });
            1.0
        } else {
            ctx.db.patch(c._id, #{ value: c.value + 1.0 });
            c.value + 1.0
        }
    }
});

export const all = query(#{
    args: #{ name: "string" },
    handler: |ctx, args| ctx.db.query("counters").withIndex("by_name", |q| q.eq("name", args.name)).collect()
});
`;

const ITEMS = `
export const add = mutation(#{
    args: #{ n: "number", tag: "string" },
    handler: |ctx, args| ctx.db.insert("items", #{ n: args.n, tag: args.tag })
});

export const addMany = mutation(#{
    args: #{ count: "number", tag: "string" },
    handler: |ctx, args| {
        let ids = [];
        for i in 0..args.count.to_int() {
            ids.push(ctx.db.insert("items", #{ n: i.to_float(), tag: args.tag }));
        }
        ids
    }
});

export const byN = query(#{
    args: #{ order: "string", lo: "number", hi: "number" },
    handler: |ctx, args| ctx.db.query("items")
        .withIndex("by_n", |q| q.gte("n", args.lo).lt("n", args.hi))
        .order(args.order)
        .collect()
});

export const byTag = query(#{
    args: #{ tag: "string", order: "string" },
    handler: |ctx, args| ctx.db.query("items")
        .withIndex("by_tag_n", |q| q.eq("tag", args.tag))
        .order(args.order)
        .collect()
});

export const page = query(#{
    args: #{ tag: "string", paginationOpts: "any" },
    handler: |ctx, args| ctx.db.query("items")
        .withIndex("by_tag_n", |q| q.eq("tag", args.tag))
        .paginate(args.paginationOpts)
});

export const get = query(#{
    args: #{ id: "id<items>" },
    handler: |ctx, args| ctx.db.get(args.id)
});

export const setNote = mutation(#{
    args: #{ id: "id<items>", note: "string" },
    handler: |ctx, args| { ctx.db.patch(args.id, #{ note: args.note }); }
});

export const swap = mutation(#{
    args: #{ id: "id<items>", n: "number", tag: "string" },
    handler: |ctx, args| { ctx.db.replace(args.id, #{ n: args.n, tag: args.tag }); }
});

export const remove = mutation(#{
    args: #{ id: "id<items>" },
    handler: |ctx, args| { ctx.db.delete(args.id); }
});

export const addThenThrow = mutation(#{
    args: #{ tag: "string" },
    handler: |ctx, args| {
        ctx.db.insert("items", #{ n: 1.0, tag: args.tag });
        ctx.db.insert("items", #{ n: 2.0, tag: args.tag });
        throw "boom after writing";
    }
});

export const secret = internalQuery(#{
    args: #{ x: "string" },
    handler: |ctx, args| "secret:" + args.x
});

export const spin = query(#{
    args: #{},
    handler: |ctx, args| {
        let i = 0;
        loop { i += 1; }
        i
    }
});

export const ping = query(#{
    args: #{},
    handler: |ctx, args| "pong"
});

export const chatty = query(#{
    args: #{},
    handler: |ctx, args| {
        print("hello from rhai");
        "ok"
    }
});

export const failWithData = mutation(#{
    args: #{},
    handler: |ctx, args| {
        throw #{ code: "TAKEN", detail: #{ field: "name", tries: 3 } };
    }
});
`;

const SHAPES = `
export const put = mutation(#{
    args: #{ doc: "any" },
    handler: |ctx, args| ctx.db.insert("shapes", args.doc)
});
`;

const VALS = `
export const roundTrip = mutation(#{
    args: #{ v: "any" },
    handler: |ctx, args| {
        let id = ctx.db.insert("vals", #{ v: args.v });
        ctx.db.get(id).v
    }
});

export const echo = query(#{
    args: #{ v: "any" },
    handler: |ctx, args| args.v
});

export const typed = mutation(#{
    args: #{ big: "int64", raw: "bytes", f: "number" },
    handler: |ctx, args| {
        let id = ctx.db.insert("typed", #{ big: args.big, raw: args.raw, f: args.f });
        ctx.db.get(id)
    }
});
`;

const n = (docs) => docs.map((d) => d.n);

describe("HTTP API on a purpose-built app (ConvexHttpClient)", () => {
  let server;
  let client;

  before(async () => {
    const dir = writeApp({
      "schema.toml": SCHEMA,
      "functions/items.rhai": ITEMS,
      "functions/shapes.rhai": SHAPES,
      "functions/vals.rhai": VALS,
      "functions/counters.rhai": COUNTERS,
    });
    server = await new Server({ dir }).start();
    client = new ConvexHttpClient(server.url);
  });

  after(async () => {
    await server?.dispose();
  });

  test("insert returns an id naming its table and get reads the document back with system fields", async () => {
    const id = await client.mutation(m("items:add"), { n: 42, tag: "single" });
    assert.equal(typeof id, "string");
    const doc = await client.query(q("items:get"), { id });
    assert.equal(doc._id, id);
    assert.equal(doc.n, 42);
    assert.equal(doc.tag, "single");
    assert.equal(typeof doc._creationTime, "number");
    assert.ok(Math.abs(doc._creationTime - Date.now()) < 60_000, `_creationTime ${doc._creationTime} is ms since epoch`);
  });

  test("a query through an index returns documents in ascending and descending index order", async () => {
    // Insert out of order, in the range [1000, 1010).
    for (const v of [1005, 1001, 1009, 1003, 1000, 1007]) {
      await client.mutation(m("items:add"), { n: v, tag: "order" });
    }
    const asc = await client.query(q("items:byN"), { order: "asc", lo: 1000, hi: 1010 });
    assert.deepEqual(n(asc), [1000, 1001, 1003, 1005, 1007, 1009]);
    const desc = await client.query(q("items:byN"), { order: "desc", lo: 1000, hi: 1010 });
    assert.deepEqual(n(desc), [1009, 1007, 1005, 1003, 1001, 1000]);
    const narrow = await client.query(q("items:byN"), { order: "asc", lo: 1003, hi: 1007 });
    assert.deepEqual(n(narrow), [1003, 1005]);
    // Compound index: eq on the prefix, ordered by the next field.
    const byTag = await client.query(q("items:byTag"), { tag: "order", order: "desc" });
    assert.deepEqual(n(byTag), [1009, 1007, 1005, 1003, 1001, 1000]);
  });

  test("paginating 57 documents 10 at a time visits every document exactly once, in order", async () => {
    const ids = await client.mutation(m("items:addMany"), { count: 57, tag: "pages" });
    assert.equal(ids.length, 57);
    const seen = [];
    let cursor = null;
    let pages = 0;
    for (;;) {
      pages += 1;
      assert.ok(pages <= 10, "pagination must finish within 7 pages");
      const res = await client.query(q("items:page"), { tag: "pages", paginationOpts: { numItems: 10, cursor } });
      assert.ok(Array.isArray(res.page), "page is an array");
      assert.equal(typeof res.isDone, "boolean");
      assert.equal(typeof res.continueCursor, "string", "continueCursor is a string, even when done");
      assert.ok(res.page.length <= 10, `page of ${res.page.length} items exceeds numItems`);
      seen.push(...res.page);
      if (res.isDone) break;
      cursor = res.continueCursor;
    }
    assert.ok(pages >= 6 && pages <= 7, `57 items in pages of 10 take 6 or 7 pages, took ${pages}`);
    assert.deepEqual(n(seen), [...Array(57).keys()]);
    assert.deepEqual(new Set(seen.map((d) => d._id)), new Set(ids), "no duplicate or missing document");
  });

  test("patch merges fields, replace swaps the document, delete removes it", async () => {
    const id = await client.mutation(m("items:add"), { n: 7, tag: "crud" });
    await client.mutation(m("items:setNote"), { id, note: "hello" });
    let doc = await client.query(q("items:get"), { id });
    assert.deepEqual({ n: doc.n, tag: doc.tag, note: doc.note }, { n: 7, tag: "crud", note: "hello" });
    const created = doc._creationTime;

    await client.mutation(m("items:swap"), { id, n: 8, tag: "crud2" });
    doc = await client.query(q("items:get"), { id });
    assert.equal(doc.n, 8);
    assert.equal(doc.tag, "crud2");
    assert.equal(doc.note, undefined, "replace drops fields not in the new document");
    assert.equal(doc._id, id);
    assert.equal(doc._creationTime, created, "replace keeps _creationTime");

    await client.mutation(m("items:remove"), { id });
    assert.equal(await client.query(q("items:get"), { id }), null);
  });

  test("a mutation that throws after writing keeps none of its writes", async () => {
    const err = await rejection(client.mutation(m("items:addThenThrow"), { tag: "rolledback" }));
    assert.match(err.message, /boom after writing/);
    assert.deepEqual(await client.query(q("items:byTag"), { tag: "rolledback", order: "asc" }), []);
  });

  test("a write that breaks the schema fails with the field path and the expected type", async () => {
    const top = await rejection(client.mutation(m("shapes:put"), { doc: { name: "a", size: "big" } }));
    assert.match(top.message, /size/);
    assert.match(top.message, /number/);

    const nested = await rejection(
      client.mutation(m("shapes:put"), { doc: { name: "b", size: 1, inner: { label: 5, depth: 1n } } }),
    );
    assert.match(nested.message, /inner\.label/);
    assert.match(nested.message, /string/);

    const missing = await rejection(client.mutation(m("shapes:put"), { doc: { name: "c" } }));
    assert.match(missing.message, /size/);

    const extra = await rejection(client.mutation(m("shapes:put"), { doc: { name: "d", size: 1, color: "red" } }));
    assert.match(extra.message, /color/);

    // A valid document is accepted.
    const id = await client.mutation(m("shapes:put"), { doc: { name: "e", size: 1, inner: { label: "x", depth: 2n } } });
    assert.equal(typeof id, "string");
  });

  test("bad arguments fail with ArgumentValidationError naming the path and the expected type", async () => {
    const wrongType = await rejection(client.mutation(m("items:add"), { n: "five", tag: "x" }));
    assert.match(wrongType.message, /ArgumentValidationError/);
    assert.match(wrongType.message, /\bn\b/);
    assert.match(wrongType.message, /number/);

    const missing = await rejection(client.mutation(m("items:add"), { n: 5 }));
    assert.match(missing.message, /ArgumentValidationError/);
    assert.match(missing.message, /tag/);
    assert.match(missing.message, /string/);

    const extra = await rejection(client.mutation(m("items:add"), { n: 5, tag: "x", bogus: 1 }));
    assert.match(extra.message, /ArgumentValidationError/);
    assert.match(extra.message, /bogus/);

    const badId = await rejection(client.query(q("items:get"), { id: "not-an-id" }));
    assert.match(badId.message, /ArgumentValidationError/);
    assert.match(badId.message, /id/);
  });

  test("an unknown function fails with a clear error and the server keeps serving", async () => {
    const noModule = await rejection(client.query(q("nosuch:fn"), {}));
    assert.match(noModule.message, /Could not find/i);
    assert.match(noModule.message, /nosuch:fn/);
    const noExport = await rejection(client.mutation(m("items:nope"), {}));
    assert.match(noExport.message, /items:nope/);
    assert.equal(await client.query(q("items:ping"), {}), "pong");
  });

  test("an internal function is refused to clients but `pulsebase run` can call it", async () => {
    const err = await rejection(client.query(q("items:secret"), { x: "a" }));
    assert.match(err.message, /items:secret/);
    assert.doesNotMatch(err.message, /secret:a/);
    const run = await server.cli(["run", "items:secret", JSON.stringify({ x: "a" })]);
    assert.equal(run.code, 0, `pulsebase run failed: ${run.stderr}`);
    assert.equal(JSON.parse(run.stdout), "secret:a");
  });

  test("an infinite loop fails within its ~1 s limit and the next call works", async () => {
    const started = Date.now();
    const err = await rejection(client.query(q("items:spin"), {}));
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 3_000, `the runaway query took ${elapsed} ms to fail`);
    assert.match(err.message, /limit|time|operations|too long/i);
    const after = Date.now();
    assert.equal(await client.query(q("items:ping"), {}), "pong");
    assert.ok(Date.now() - after < 1_000, "the next call is fast");
  });

  test("a thrown object reaches the client as ConvexError with its data", async () => {
    const err = await rejection(client.mutation(m("items:failWithData"), {}));
    assert.ok(err instanceof ConvexError, `expected ConvexError, got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.data.code, "TAKEN");
    assert.equal(err.data.detail.field, "name");
    assert.equal(BigInt(err.data.detail.tries), 3n);
  });

  test("int64, bytes, special floats and nested values round-trip through storage and arguments", async () => {
    const bytes = new Uint8Array([0, 1, 2, 250, 255]).buffer;
    const value = {
      big: 2n ** 62n + 5n,
      neg: -(2n ** 63n),
      one: 1n,
      raw: bytes,
      nan: NaN,
      inf: Infinity,
      ninf: -Infinity,
      negZero: -0,
      plain: 1.5,
      nested: { arr: [1.5, -1n, null, false, "s"], empty: {} },
    };
    for (const fn of ["vals:roundTrip", "vals:echo"]) {
      const out = fn === "vals:echo" ? await client.query(q(fn), { v: value }) : await client.mutation(m(fn), { v: value });
      assert.equal(out.big, 2n ** 62n + 5n, `${fn}: int64`);
      assert.equal(out.neg, -(2n ** 63n), `${fn}: int64 min`);
      assert.equal(out.one, 1n, `${fn}: int64 stays int64`);
      assert.ok(out.raw instanceof ArrayBuffer, `${fn}: bytes decode to ArrayBuffer`);
      assert.deepEqual([...new Uint8Array(out.raw)], [0, 1, 2, 250, 255], `${fn}: bytes`);
      assert.ok(Number.isNaN(out.nan), `${fn}: NaN`);
      assert.equal(out.inf, Infinity, `${fn}: Infinity`);
      assert.equal(out.ninf, -Infinity, `${fn}: -Infinity`);
      assert.ok(Object.is(out.negZero, -0), `${fn}: -0 keeps its sign`);
      assert.equal(out.plain, 1.5);
      assert.deepEqual(out.nested, { arr: [1.5, -1n, null, false, "s"], empty: {} }, `${fn}: nested`);
    }
    const doc = await client.mutation(m("vals:typed"), { big: -5n, raw: bytes, f: 0.25 });
    assert.equal(doc.big, -5n);
    assert.deepEqual([...new Uint8Array(doc.raw)], [0, 1, 2, 250, 255]);
    assert.equal(doc.f, 0.25);
    // A float where int64 is declared is refused.
    const wrong = await rejection(client.mutation(m("vals:typed"), { big: 5, raw: bytes, f: 1 }));
    assert.match(wrong.message, /big/);
    assert.match(wrong.message, /int64/);
  });
});

describe("HTTP API details the official client relies on", () => {
  let server;
  let client;

  before(async () => {
    const dir = writeApp({
      "schema.toml": SCHEMA,
      "functions/items.rhai": ITEMS,
      "functions/shapes.rhai": SHAPES,
      "functions/vals.rhai": VALS,
      "functions/counters.rhai": COUNTERS,
    });
    server = await new Server({ dir }).start();
    client = new ConvexHttpClient(server.url);
  });

  after(async () => {
    await server?.dispose();
  });

  test("concurrent mutations are serializable: 40 parallel increments of one counter give 40 and one document", async () => {
    const results = await Promise.all(
      Array.from({ length: 40 }, () => client.mutation(m("counters:bump"), { name: "c" }, { skipQueue: true })),
    );
    assert.deepEqual([...results].sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => i + 1));
    const docs = await client.query(q("counters:all"), { name: "c" });
    assert.equal(docs.length, 1);
    assert.equal(docs[0].value, 40);
  });

  test("a document over 1 MiB is refused with a clear error and the server keeps serving", async () => {
    const err = await rejection(client.mutation(m("shapes:put"), { doc: { name: "x".repeat(1_100_000), size: 1 } }));
    assert.match(err.message, /1 ?MiB|1048576|1,048,576|too (large|big)|limit/i);
    assert.equal(await client.query(q("items:ping"), {}), "pong");
  });

  test("print() in a function reaches the response's logLines in Convex's [LEVEL] format", async () => {
    const res = await fetch(`${server.url}/api/query`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ path: "items:chatty", format: "convex_encoded_json", args: [{}] }),
    });
    const body = await res.json();
    assert.equal(body.status, "success");
    assert.equal(body.value, "ok");
    assert.ok(Array.isArray(body.logLines), JSON.stringify(body));
    assert.equal(body.logLines.length, 1);
    assert.match(body.logLines[0], /^\[[A-Z]+\] .*hello from rhai/);
  });

  test("function paths are canonicalised: a .js module suffix is accepted", async () => {
    const res = await fetch(`${server.url}/api/query`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ path: "items.js:ping", format: "convex_encoded_json", args: [{}] }),
    });
    const body = await res.json();
    assert.deepEqual({ status: body.status, value: body.value }, { status: "success", value: "pong" }, JSON.stringify(body));
  });

  test("POST /api/run/<module>/<name> runs any kind named in the URL, as Convex's HTTP API does", async () => {
    const run = async (identifier, body = { args: {} }, headers = {}) => {
      const res = await fetch(`${server.url}/api/run/${identifier}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: await res.json() };
    };
    assert.deepEqual((await run("items/ping")).body.value, "pong");
    const added = await run("items/add", { args: { n: 7, tag: "via-run" }, format: "json" });
    assert.equal(added.body.status, "success", JSON.stringify(added));
    const tagged = await client.query(q("items:byTag"), { tag: "via-run", order: "asc" });
    assert.deepEqual(tagged.map((d) => [d._id, d.n]), [[added.body.value, 7]]);
    // Internal functions: refused to a caller, run for the admin key.
    const refused = await run("items/secret", { args: { x: "a" } });
    assert.equal(refused.body.status, "error");
    assert.match(refused.body.errorMessage, /items:secret/);
    const key = readFileSync(join(server.dir, ".pulsebase", "admin_key"), "utf8").trim();
    const admin = await run("items/secret", { args: { x: "a" } }, { authorization: `Convex ${key}` });
    assert.equal(admin.body.value, "secret:a", JSON.stringify(admin));
    // Request errors say what is wrong.
    const noModule = await run("ping");
    assert.equal(noModule.status, 400);
    assert.equal(noModule.body.code, "MissingIdentifier");
    assert.match(noModule.body.message, /\/api\/run\/messages\/list/);
    const noArgs = await run("items/ping", {});
    assert.equal(noArgs.status, 400);
    assert.match(noArgs.body.message, /missing field `args`/);
    const get = await fetch(`${server.url}/api/run/items/ping`);
    assert.equal(get.status, 405);
  });

  test("values come back in the request's format: Convex's readable json by default, the client's encoding when asked; an unknown format is refused; GET /api/query works too", async () => {
    // {"$integer"} / {"$bytes"} / {"$float"} in: the arguments are always read as the client encodes them.
    const v = { big: { $integer: "BQAAAAAAAAA=" }, raw: { $bytes: "ABCD" }, nan: { $float: "AAAAAAAA+H8=" }, f: 2.5, s: "x", list: [{ $integer: "AQAAAAAAAAA=" }] };
    const call = async (format) => {
      const res = await fetch(`${server.url}/api/query`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ path: "vals:echo", args: { v }, ...(format === undefined ? {} : { format }) }),
      });
      return { status: res.status, body: await res.json() };
    };
    const readable = { big: "5", raw: "ABCD", nan: "NaN", f: 2.5, s: "x", list: ["1"] };
    assert.deepEqual((await call(undefined)).body.value, readable);
    assert.deepEqual((await call("json")).body.value, readable);
    assert.deepEqual((await call("convex_encoded_json")).body.value, v);
    // export_json: lossless and readable, as in an export's documents.jsonl.
    const exported = await fetch(`${server.url}/api/query`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ path: "vals:echo", args: { v }, format: "export_json" }),
    });
    const text = await exported.text();
    assert.match(text, /"big":5[,}]/);
    assert.match(text, /"f":2\.5/);
    assert.match(text, /"raw":\{"\$bytes":"ABCD"\}/);
    const unknown = await call("xml");
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.code, "BadFormat");
    assert.match(unknown.body.message, /got "xml"/);
    // GET /api/query takes the same call in its query string.
    const get = async (query) => {
      const res = await fetch(`${server.url}/api/query?${new URLSearchParams(query)}`);
      return { status: res.status, body: await res.json() };
    };
    assert.deepEqual((await get({ path: "vals:echo", args: JSON.stringify({ v }) })).body.value, readable);
    assert.deepEqual((await get({ path: "vals:echo", args: JSON.stringify({ v }), format: "convex_encoded_json" })).body.value, v);
    const noArgs = await get({ path: "vals:echo" });
    assert.equal(noArgs.status, 400);
    assert.match(noArgs.body.message, /args=<JSON>/);
    const badArgs = await get({ path: "vals:echo", args: "{not json" });
    assert.equal(badArgs.status, 400);
    assert.equal(badArgs.body.code, "BadArgs");
    // /api/run answers in the same formats.
    const run = await fetch(`${server.url}/api/run/vals/echo`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ args: { v } }) });
    assert.deepEqual((await run.json()).value, readable);
  });

  test("consistentQuery (/api/query_ts + /api/query_at_ts) works", async () => {
    assert.equal(await client.consistentQuery(q("items:ping"), {}), "pong");
  });

  test("a deployment URL with a trailing slash works (the client then requests //api/...)", async () => {
    const slashed = new ConvexHttpClient(`${server.url}/`);
    assert.equal(await slashed.query(q("items:ping"), {}), "pong");
    const id = await slashed.mutation(m("items:add"), { n: 1, tag: "slash" });
    assert.equal(typeof id, "string");
  });
});

describe("HTTP API on the example app", () => {
  let server;
  before(async () => {
    server = await startExample();
  });
  after(async () => {
    await server?.dispose();
  });

  test("todos:getMyTodos called anonymously fails with Unauthorized", async () => {
    const client = new ConvexHttpClient(server.url);
    const err = await rejection(client.query(q("todos:getMyTodos"), {}));
    assert.match(err.message, /Unauthorized/);
    assert.equal(await client.query(q("users:getCurrentUser"), {}), null);
  });
});

// Errors, limits and the query chain through the real binary: every limit fails only the
// call that hit it, with a message naming the limit, and the server keeps serving.

const LIMITS_SCHEMA = `
[tables.rows]
fields = { n = "number", tag = "string" }
indexes = { by_tag = ["tag"] }

[tables.notes]
fields = { title = "string", body = "optional<string>", meta = "optional<any>" }
`;

const LIMITS = `
export const seed = mutation(#{
    args: #{ count: "number", tag: "string" },
    handler: |ctx, args| {
        for i in 0..args.count.to_int() {
            ctx.db.insert("rows", #{ n: i.to_float(), tag: args.tag });
        }
        args.count
    }
});

export const count = query(#{
    args: #{ tag: "string" },
    handler: |ctx, args| ctx.db.query("rows").withIndex("by_tag", |q| q.eq("tag", args.tag)).collect().len()
});

export const spinAfterWriting = mutation(#{
    args: #{ tag: "string" },
    handler: |ctx, args| {
        ctx.db.insert("rows", #{ n: 1.0, tag: args.tag });
        let i = 0;
        loop { i += 1; }
    }
});

export const scanRepeatedly = query(#{
    args: #{ tag: "string", times: "number" },
    handler: |ctx, args| {
        let total = 0;
        for i in 0..args.times.to_int() {
            total += ctx.db.query("rows").withIndex("by_tag", |q| q.eq("tag", args.tag)).collect().len();
        }
        total
    }
});

export const getRepeatedly = query(#{
    args: #{ id: "id<rows>", times: "number" },
    handler: |ctx, args| {
        for i in 0..args.times.to_int() { ctx.db.get(args.id); }
        args.times
    }
});

export const writeBig = mutation(#{
    args: #{ text: "string", copies: "number" },
    handler: |ctx, args| {
        for i in 0..args.copies.to_int() { ctx.db.insert("notes", #{ title: "big", body: args.text }); }
        args.copies
    }
});

export const countNotes = query(#{
    args: #{ title: "string" },
    handler: |ctx, args| ctx.db.query("notes").filter(|d| d.title == args.title).collect().len()
});

fn down(n) { down(n + 1) }
export const recurse = query(#{ args: #{}, handler: |ctx, args| down(0) });

export const recurseViaRunMutation = mutation(#{
    args: #{},
    handler: |ctx, args| ctx.runMutation("limits:recurseViaRunMutation", #{})
});

export const nested = mutation(#{
    args: #{ depth: "number" },
    handler: |ctx, args| {
        let v = "leaf";
        for i in 0..args.depth.to_int() { v = #{ inner: v }; }
        ctx.db.insert("notes", #{ title: "deep", meta: v })
    }
});

export const wide = mutation(#{
    args: #{ fields: "number" },
    handler: |ctx, args| {
        let m = #{};
        for i in 0..args.fields.to_int() { m["f" + i] = i; }
        ctx.db.insert("notes", #{ title: "wide", meta: m })
    }
});

export const longArray = query(#{
    args: #{ len: "number" },
    handler: |ctx, args| {
        let a = [];
        for i in 0..args.len.to_int() { a.push(i); }
        a
    }
});

export const page = query(#{
    args: #{ tag: "string", order: "string", paginationOpts: "any" },
    handler: |ctx, args| ctx.db.query("rows")
        .withIndex("by_tag", |q| q.eq("tag", args.tag))
        .order(args.order)
        .paginate(args.paginationOpts)
});

export const pageEven = query(#{
    args: #{ tag: "string", order: "string", paginationOpts: "any" },
    handler: |ctx, args| ctx.db.query("rows")
        .withIndex("by_tag", |q| q.eq("tag", args.tag))
        .order(args.order)
        .filter(|r| r.n % 2.0 == 0.0)
        .paginate(args.paginationOpts)
});

export const takeEven = query(#{
    args: #{ tag: "string", order: "string", n: "number" },
    handler: |ctx, args| ctx.db.query("rows")
        .withIndex("by_tag", |q| q.eq("tag", args.tag))
        .order(args.order)
        .filter(|r| r.n % 2.0 == 0.0)
        .take(args.n)
        .map(|r| r.n)
});

export const typeError = query(#{
    args: #{},
    handler: |ctx, args| {
        let n = 1;
        n - "a"
    }
});

export const clock = query(#{ args: #{}, handler: |ctx, args| timestamp() });

export const hidden = internalQuery(#{ args: #{}, handler: |ctx, args| "hidden" });
`;

const CALLER = `
export const callsTypeError = query(#{
    args: #{},
    handler: |ctx, args| {
        let result = ctx.runQuery("limits:typeError", #{});
        result
    }
});
`;

/** 1-based line and column of the first occurrence of `needle` in `source`. */
function positionOf(source, needle) {
  const lines = source.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const column = lines[i].indexOf(needle);
    if (column >= 0) return [i + 1, column + 1];
  }
  throw new Error(`${needle} is not in the source`);
}

describe("limits, errors and the query chain through the binary (ConvexHttpClient)", () => {
  let server;
  let client;

  before(async () => {
    const dir = writeApp({
      "schema.toml": LIMITS_SCHEMA,
      "functions/limits.rhai": LIMITS,
      "functions/caller.rhai": CALLER,
    });
    server = await new Server({ dir }).start();
    client = new ConvexHttpClient(server.url);
  });

  after(async () => {
    await server?.dispose();
  });

  /** Follows continueCursor until isDone (bounded); the `n` of every page. */
  async function paginate(fn, args, numItems) {
    const pages = [];
    let cursor = null;
    for (let i = 0; i < 30; i++) {
      const res = await client.query(q(fn), { ...args, paginationOpts: { numItems, cursor } });
      assert.ok(res.page.length <= numItems, `page of ${res.page.length} exceeds numItems`);
      assert.equal(typeof res.continueCursor, "string");
      pages.push(res.page.map((d) => d.n));
      if (res.isDone) return pages;
      cursor = res.continueCursor;
    }
    throw new Error(`${fn} did not finish within 30 pages`);
  }

  test("descending pagination and pagination with a filter visit every document once", async () => {
    await client.mutation(m("limits:seed"), { count: 57, tag: "pages" });
    const desc = await paginate("limits:page", { tag: "pages", order: "desc" }, 10);
    assert.deepEqual(desc.map((p) => p.length), [10, 10, 10, 10, 10, 7]);
    assert.deepEqual(desc.flat(), [...Array(57).keys()].reverse(), "newest first, no duplicate or missing document");

    const evens = [...Array(57).keys()].filter((n) => n % 2 === 0);
    const asc = await paginate("limits:pageEven", { tag: "pages", order: "asc" }, 8);
    assert.deepEqual(asc.flat(), evens);
    assert.ok(asc.slice(0, -1).every((p) => p.length === 8), `pages are filled with matching documents: ${JSON.stringify(asc)}`);
    const descEven = await paginate("limits:pageEven", { tag: "pages", order: "desc" }, 8);
    assert.deepEqual(descEven.flat(), [...evens].reverse());
  });

  test("filter and take: take(n) counts the documents that pass the filter", async () => {
    await client.mutation(m("limits:seed"), { count: 9, tag: "take" });
    assert.deepEqual(await client.query(q("limits:takeEven"), { tag: "take", order: "asc", n: 3 }), [0, 2, 4]);
    assert.deepEqual(await client.query(q("limits:takeEven"), { tag: "take", order: "desc", n: 2 }), [8, 6]);
    assert.deepEqual(await client.query(q("limits:takeEven"), { tag: "take", order: "asc", n: 100 }), [0, 2, 4, 6, 8]);
    assert.deepEqual(await client.query(q("limits:takeEven"), { tag: "take", order: "asc", n: 0 }), []);
  });

  test("a cursor passed to a different query fails with InvalidCursor instead of an empty page", async () => {
    await client.mutation(m("limits:seed"), { count: 5, tag: "cursorA" });
    await client.mutation(m("limits:seed"), { count: 5, tag: "cursorB" });
    const first = await client.query(q("limits:page"), { tag: "cursorA", order: "asc", paginationOpts: { numItems: 2, cursor: null } });
    const cursor = first.continueCursor;
    const same = await client.query(q("limits:page"), { tag: "cursorA", order: "asc", paginationOpts: { numItems: 2, cursor } });
    assert.deepEqual(same.page.map((d) => d.n), [2, 3]);
    for (const [fn, args] of [
      ["limits:page", { tag: "cursorB", order: "asc" }],
      ["limits:page", { tag: "cursorA", order: "desc" }],
      ["limits:pageEven", { tag: "cursorB", order: "asc" }],
    ]) {
      const err = await rejection(client.query(q(fn), { ...args, paginationOpts: { numItems: 2, cursor } }), `${fn} ${JSON.stringify(args)}`);
      assert.match(err.message, /InvalidCursor/);
      assert.match(err.message, /different query/);
    }
    const bogus = await rejection(client.query(q("limits:page"), { tag: "cursorA", order: "asc", paginationOpts: { numItems: 2, cursor: "kAAAA" } }));
    assert.match(bogus.message, /InvalidCursor/);
  });

  test("a mutation that loops forever fails within its ~1 s limit, keeps none of its writes, and the next call works", async () => {
    const started = Date.now();
    const err = await rejection(client.mutation(m("limits:spinAfterWriting"), { tag: "spin" }));
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 3_000, `the runaway mutation took ${elapsed} ms to fail`);
    assert.match(err.message, /timed out: limits:spinAfterWriting ran longer than the limit of 1 s of user code/);
    const [line] = positionOf(LIMITS, "export const spinAfterWriting");
    assert.match(err.message, new RegExp(`at functions/limits\\.rhai:${line}:\\d+ \\(limits:spinAfterWriting\\)`));
    assert.equal(await client.query(q("limits:count"), { tag: "spin" }), 0n, "the insert before the loop was rolled back");
    const after = Date.now();
    assert.equal(await client.mutation(m("limits:seed"), { count: 1, tag: "afterSpin" }), 1);
    assert.ok(Date.now() - after < 1_000, "the next mutation is fast");
  });

  test("reading more than 32,000 documents fails naming the limit (each read counts, also of the same documents)", async () => {
    await client.mutation(m("limits:seed"), { count: 100, tag: "scan" });
    assert.equal(await client.query(q("limits:scanRepeatedly"), { tag: "scan", times: 320 }), 32_000n, "exactly at the limit is allowed");
    const err = await rejection(client.query(q("limits:scanRepeatedly"), { tag: "scan", times: 321 }));
    assert.match(err.message, /Too many documents read in a single function execution \(limit: 32000\)/);
    assert.match(err.message, /at functions\/limits\.rhai:\d+:\d+ \(limits:scanRepeatedly\)/);
  });

  test("reading more than 4,096 index ranges fails naming the limit", async () => {
    assert.equal(await client.mutation(m("limits:seed"), { count: 1, tag: "ranges" }), 1);
    const page = await client.query(q("limits:page"), { tag: "ranges", order: "asc", paginationOpts: { numItems: 1, cursor: null } });
    const docId = page.page[0]._id;
    assert.equal(await client.query(q("limits:getRepeatedly"), { id: docId, times: 4096 }), 4096);
    const err = await rejection(client.query(q("limits:getRepeatedly"), { id: docId, times: 4097 }));
    assert.match(err.message, /Too many reads in a single function execution \(limit: 4096 index ranges\)/);
  });

  test("writing more than 16,000 documents or 16 MiB in one mutation fails naming the limit and keeps nothing", async () => {
    const err = await rejection(client.mutation(m("limits:seed"), { count: 16_001, tag: "many" }));
    assert.match(err.message, /Too many writes in a single function execution \(limit: 16000\)/);
    assert.equal(await client.query(q("limits:count"), { tag: "many" }), 0n);

    const text = "x".repeat(1_000_000);
    const big = await rejection(client.mutation(m("limits:writeBig"), { text, copies: 17 }));
    assert.match(big.message, /Too many bytes written in a single function execution \(limit: 16777216 bytes\)/);
    assert.equal(await client.query(q("limits:countNotes"), { title: "big" }), 0n);
    assert.equal(await client.mutation(m("limits:writeBig"), { text: "small", copies: 2 }), 2, "the next mutation works");
  });

  test("unbounded recursion hits the call-depth limit, also through ctx.runMutation, naming the function and its file:line", async () => {
    for (const [fn, declaration] of [
      ["limits:recurse", "export const recurse"],
      ["limits:recurseViaRunMutation", "export const recurseViaRunMutation"],
    ]) {
      const call = fn.endsWith("ViaRunMutation") ? client.mutation(m(fn), {}) : client.query(q(fn), {});
      const err = await rejection(call, fn);
      assert.match(err.message, new RegExp(`maximum call depth in ${fn} \\(limit: 64 nested calls`));
      const [line] = positionOf(LIMITS, declaration);
      assert.match(err.message, new RegExp(`at functions/limits\\.rhai:${line}:\\d+ \\(${fn}\\)`));
    }
    assert.equal(await client.query(q("limits:count"), { tag: "none" }), 0n, "the server keeps serving");
  });

  test("nesting depth, field count and array length limits apply to what a function writes and returns", async () => {
    assert.equal(typeof (await client.mutation(m("limits:nested"), { depth: 10 })), "string");
    const deep = await rejection(client.mutation(m("limits:nested"), { depth: 20 }));
    assert.match(deep.message, /nested more than 16 levels deep/);

    assert.equal(typeof (await client.mutation(m("limits:wide"), { fields: 1024 })), "string");
    const wide = await rejection(client.mutation(m("limits:wide"), { fields: 1025 }));
    assert.match(wide.message, /object with 1025 fields at meta \(limit 1024\)/);

    assert.equal((await client.query(q("limits:longArray"), { len: 8192 })).length, 8192);
    const long = await rejection(client.query(q("limits:longArray"), { len: 8193 }));
    assert.match(long.message, /array with 8193 elements at the top level \(limit 8192\)/);
  });

  test("a runtime type error explains the mismatch at the callee's file:line:column, then the caller's", async () => {
    const err = await rejection(client.query(q("caller:callsTypeError"), {}));
    const [line, column] = positionOf(LIMITS, '- "a"');
    const [callLine] = positionOf(CALLER, "ctx.runQuery");
    const lines = err.message.split("\n");
    assert.equal(lines[0], "Uncaught Error: Function not found: - (i64, string): cannot apply `-` to an integer and a string; convert the string with parse_int(s) or parse_float(s), or the number with to_string()");
    assert.equal(lines[1], `    at functions/limits.rhai:${line}:${column} (limits:typeError)`);
    assert.match(lines[2], new RegExp(`^    at functions/caller\\.rhai:${callLine}:\\d+ \\(caller:callsTypeError\\)$`));
  });

  test("timestamp() is refused with a sandbox message pointing to ctx.now()", async () => {
    const err = await rejection(client.query(q("limits:clock"), {}));
    assert.match(err.message, /^Uncaught Error: timestamp\(\) is not available in Pulsebase functions: functions must be deterministic/);
    assert.match(err.message, /use ctx\.now\(\)/);
    assert.match(err.message, /at functions\/limits\.rhai:\d+:\d+ \(limits:clock\)/);
  });

  test("an internal function looks to a client exactly like a missing one; the server log says why", async () => {
    const hidden = await rejection(client.query(q("limits:hidden"), {}));
    const missing = await rejection(client.query(q("limits:nosuch"), {}));
    assert.equal(hidden.message, missing.message.replaceAll("nosuch", "hidden"));
    assert.match(hidden.message, /^Could not find public function for 'limits:hidden'/);
    assert.doesNotMatch(hidden.message, /internal/i);
    await server.waitForOutput(/internal query limits:hidden/);
  });
});

describe("the example app's messages through the HTTP API (dev-issuer tokens)", () => {
  let server;
  before(async () => {
    server = await startExample();
  });
  after(async () => {
    await server?.dispose();
  });

  async function signedIn(sub, claims) {
    const client = new ConvexHttpClient(server.url);
    client.setAuth(await server.token(sub, claims));
    return client;
  }

  test("messages:send stores the caller's email as author and getForCurrentUser returns only the caller's messages", async () => {
    const ada = await signedIn("user_ada", { name: "Ada", email: "ada@example.com" });
    const bob = await signedIn("user_bob", { name: "Bob", email: "bob@example.com" });
    const first = await ada.mutation(m("messages:send"), { body: "hello from ada" });
    assert.equal(typeof first, "string");
    await bob.mutation(m("messages:send"), { body: "hi from bob" });
    await ada.mutation(m("messages:send"), { body: "second from ada" });

    const adas = await ada.query(q("messages:getForCurrentUser"), {});
    assert.deepEqual(adas.map((x) => x.body), ["hello from ada", "second from ada"]);
    assert.ok(adas.every((x) => x.author === "ada@example.com"), JSON.stringify(adas));
    assert.equal(adas[0]._id, first);
    const bobs = await bob.query(q("messages:getForCurrentUser"), {});
    assert.deepEqual(bobs.map((x) => [x.body, x.author]), [["hi from bob", "bob@example.com"]]);

    // A second token of the same email sees the same messages.
    const adaAgain = await signedIn("user_ada_2", { name: "Ada", email: "ada@example.com" });
    assert.equal((await adaAgain.query(q("messages:getForCurrentUser"), {})).length, 2);
  });

  test("anonymous callers get Not authenticated; a token without email cannot send; nothing is written", async () => {
    const anonymous = new ConvexHttpClient(server.url);
    assert.match((await rejection(anonymous.query(q("messages:getForCurrentUser"), {}))).message, /Not authenticated/);
    assert.match((await rejection(anonymous.mutation(m("messages:send"), { body: "x" }))).message, /Not authenticated/);

    const noEmail = await signedIn("user_nomail", { name: "No Mail" });
    const err = await rejection(noEmail.mutation(m("messages:send"), { body: "x" }));
    assert.match(err.message, /no email claim/);
    assert.deepEqual(await noEmail.query(q("messages:getForCurrentUser"), {}), []);

    const carol = await signedIn("user_carol", { name: "Carol", email: "carol@example.com" });
    const bad = await rejection(carol.mutation(m("messages:send"), { body: 5 }));
    assert.match(bad.message, /ArgumentValidationError: args\.body: expected string/);
    assert.deepEqual(await carol.query(q("messages:getForCurrentUser"), {}), []);
  });
});
