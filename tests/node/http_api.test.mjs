// Issue 2 through the real binary: the HTTP API driven by the official ConvexHttpClient,
// against a purpose-built app (its own schema.toml and functions) and the example app.

import { after, before, describe, test } from "node:test";
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
