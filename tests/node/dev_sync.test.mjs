// Issue 5 part 1 through the real binary: `pulsebase dev` watching a purpose-built app while
// an official ConvexClient keeps a subscription open. Edits to a function file, a broken
// edit (and undoing it), an added and a dropped index, a refused schema change and broken
// schema edits, each checked from the client's side and in the server's output (one line per
// sync).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import WebSocket from "ws";
import { ConvexClient, ConvexHttpClient } from "convex/browser";

import { Server, waitFor } from "./lib/server.mjs";
import { writeApp, q, m, sleep, safeJson, rejection } from "./lib/app.mjs";

const SCHEMA_V1 = `
[tables.notes]
fields = { text = "string", tag = "string", n = "number" }
indexes = { by_tag = ["tag"] }
`;

// V1 plus an index on n.
const SCHEMA_WITH_BY_N = `
[tables.notes]
fields = { text = "string", tag = "string", n = "number" }
indexes = { by_tag = ["tag"], by_n = ["n"] }
`;

// Drops the field \`tag\` (and its index), which the stored notes still have.
const SCHEMA_WITHOUT_TAG = `
[tables.notes]
fields = { text = "string", n = "number" }
indexes = { by_n = ["n"] }
`;

// SCHEMA_WITH_BY_N without the index by_tag (the field stays).
const SCHEMA_WITHOUT_BY_TAG = `
[tables.notes]
fields = { text = "string", tag = "string", n = "number" }
indexes = { by_n = ["n"] }
`;

const notesModule = (greeting) => `
export const greeting = query(#{ args: #{}, handler: |ctx, args| "${greeting}" });

export const add = mutation(#{
    args: #{ text: "string", tag: "string", n: "number" },
    handler: |ctx, args| ctx.db.insert("notes", #{ text: args.text, tag: args.tag, n: args.n })
});

export const byTag = query(#{
    args: #{ tag: "string" },
    handler: |ctx, args| ctx.db.query("notes").withIndex("by_tag", |q| q.eq("tag", args.tag)).collect().map(|d| d.text)
});
`;

// Uses the index added to the schema; written once by_n exists.
const RANKED_MODULE = `
export const atLeast = query(#{
    args: #{ min: "number" },
    handler: |ctx, args| ctx.db.query("notes")
        .withIndex("by_n", |q| q.gte("n", args.min))
        .collect()
        .map(|d| d.text)
});
`;

/** A WebSocket class that counts the sockets the client opens. */
function countingWebSocket() {
  const counter = { opened: 0 };
  class Counted extends WebSocket {
    constructor(...args) {
      super(...args);
      counter.opened += 1;
    }
  }
  return { Counted, counter };
}

/** Subscribes and records every result and error. */
function subscribe(client, name, args) {
  const events = [];
  const unsubscribe = client.onUpdate(
    q(name),
    args,
    (value) => events.push({ value }),
    (error) => events.push({ error }),
  );
  return {
    events,
    unsubscribe,
    until: (pred, what, timeout = 10_000) =>
      waitFor(() => (events.length && pred(events.at(-1)) ? events.at(-1) : null), { timeout, what }).catch((e) => {
        throw new Error(`${e.message}; last events: ${safeJson(events.slice(-3).map((x) => x.error?.message ?? x.value))}`);
      }),
  };
}

describe("pulsebase dev live sync", () => {
  let server;
  let client;
  let http;
  let sockets;
  const file = (name) => join(server.dir, name);

  /** Waits for `re` in the output written after the marks taken by `marks()`. */
  async function waitForNewOutput(re, stdoutMark, stderrMark, what) {
    return waitFor(
      () => {
        const fresh = server.stdout.slice(stdoutMark) + server.stderr.slice(stderrMark);
        return fresh.match(re);
      },
      { timeout: 10_000, what: `${what} (${re}); output: ${(server.stdout + server.stderr).slice(-800)}` },
    );
  }
  const marks = () => [server.stdout.length, server.stderr.length];
  /** The sync lines (✓ ...) printed after the marks. */
  const syncLines = (o, e) => (server.stdout.slice(o) + server.stderr.slice(e)).split("\n").filter((l) => l.startsWith("✓"));

  before(async () => {
    const dir = writeApp({ "schema.toml": SCHEMA_V1, "functions/notes.rhai": notesModule("v1") });
    server = await new Server({ dir }).start();
    const { Counted, counter } = countingWebSocket();
    sockets = counter;
    client = new ConvexClient(server.url, {
      webSocketConstructor: Counted,
      unsavedChangesWarning: false,
      logger: { logVerbose() {}, log() {}, warn() {}, error() {} },
    });
    http = new ConvexHttpClient(server.url);
  });

  after(async () => {
    await Promise.race([client?.close().catch(() => {}), sleep(2_000)]);
    await server?.dispose();
  });

  test("editing a function file pushes the new result without reconnecting", async () => {
    const greeting = subscribe(client, "notes:greeting", {});
    await greeting.until((e) => e.value === "v1", "the first result");
    const opened = sockets.opened;
    assert.equal(opened, 1);

    for (const [version, save] of [
      ["v2", "in place"],
      ["v3", "atomically"],
    ]) {
      const [o, e] = marks();
      if (save === "in place") {
        writeFileSync(file("functions/notes.rhai"), notesModule(version));
      } else {
        // What vim, JetBrains and many tools do: write a hidden temp file, rename it over.
        writeFileSync(file("functions/.notes.rhai.tmp"), notesModule(version));
        renameSync(file("functions/.notes.rhai.tmp"), file("functions/notes.rhai"));
      }
      await greeting.until((ev) => ev.value === version, `the pushed ${version}`);
      await waitForNewOutput(/functions synced: notes/, o, e, "the sync line");
    }
    assert.equal(sockets.opened, opened, "the client did not reconnect");
    assert.equal(client.connectionState().isWebSocketConnected, true);
    assert.ok(greeting.events.every((ev) => !ev.error), "no error was pushed in between");
    greeting.unsubscribe();
  });

  test("a Rhai syntax error is reported at file:line and the old version keeps serving", async () => {
    const greeting = subscribe(client, "notes:greeting", {});
    await greeting.until((e) => e.value === "v3", "the current result");
    const [o, e] = marks();
    // Line 3 has an unclosed call.
    writeFileSync(
      file("functions/notes.rhai"),
      `// broken on purpose\nexport const greeting = query(#{ args: #{}, handler: |ctx, args| "v4" });\nlet oops = (1 + ;\n`,
    );
    const report = await waitForNewOutput(/functions\/notes\.rhai:(\d+):(\d+)[^\n]*/, o, e, "the error report");
    assert.equal(report[1], "3", `the report names line 3: ${report[0]}`);
    assert.match(server.stdout.slice(o) + server.stderr.slice(e), /previous version keeps serving/);

    assert.equal(await http.query(q("notes:greeting"), {}), "v3", "the old function still serves");
    assert.equal(greeting.events.at(-1).value, "v3");
    assert.ok(greeting.events.every((ev) => !ev.error));

    // Fixing the file syncs again, in one line that says the error is gone.
    const [o2, e2] = marks();
    writeFileSync(file("functions/notes.rhai"), notesModule("v5"));
    await greeting.until((ev) => ev.value === "v5", "the fixed version");
    const fixed = await waitForNewOutput(/✓ functions synced: notes[^\n]*/, o2, e2, "the sync line of the fix");
    assert.match(fixed[0], /error fixed/, fixed[0]);
    greeting.unsubscribe();
  });

  test("undoing a broken edit prints one back-in-sync line; later syncs are plain", async () => {
    const good = readFileSync(file("functions/notes.rhai"), "utf8");
    const [o, e] = marks();
    writeFileSync(file("functions/notes.rhai"), `${good}\nlet oops = (1 + ;\n`);
    await waitForNewOutput(/functions\/notes\.rhai:\d+:\d+/, o, e, "the error report");

    // Back to exactly the version that kept serving: nothing to swap, but the user saw an
    // error and must see it resolved.
    const [o2, e2] = marks();
    writeFileSync(file("functions/notes.rhai"), good);
    const line = await waitForNewOutput(/✓ functions back in sync:[^\n]*/, o2, e2, "the back-in-sync line");
    assert.match(line[0], /error fixed/);
    assert.match(line[0], /\(\d+ functions\) in \d+ ms$/, line[0]);
    await sleep(300);
    assert.deepEqual(syncLines(o2, e2), [line[0]], "exactly one line for the fix");
    assert.equal(await http.query(q("notes:greeting"), {}), "v5");

    // The next sync is an ordinary one: one line, naming the module, with no "fixed".
    const [o3, e3] = marks();
    writeFileSync(file("functions/notes.rhai"), notesModule("v6"));
    const next = await waitForNewOutput(/✓ functions synced: notes[^\n]*/, o3, e3, "the next sync line");
    assert.doesNotMatch(next[0], /fixed/);
    await sleep(300);
    assert.equal(syncLines(o3, e3).length, 1, `one line per sync: ${syncLines(o3, e3).join(" | ")}`);
    // Only the handler changed, so the generated types did not; codegen never prints a line of
    // its own (a sync that changes them says so in its line, see the back-fill test).
    assert.doesNotMatch(next[0], /types regenerated/, next[0]);
    assert.doesNotMatch(server.stdout + server.stderr, /codegen: wrote/);
  });

  test("editing .env.local names .env.local in its sync line", async () => {
    const [o, e] = marks();
    writeFileSync(file(".env.local"), "SOME_SETTING=1\n");
    const line = await waitForNewOutput(/✓ [^\n]*synced[^\n]*/, o, e, "the sync line");
    assert.match(line[0], /^✓ \.env\.local synced: \d+ auth provider\(s\) in \d+ ms$/, line[0]);
    assert.doesNotMatch(line[0], /auth\.config\.toml/);
  });

  test("broken schema.toml is reported with its line and the schema stays", async () => {
    const [o, e] = marks();
    writeFileSync(file("schema.toml"), `${SCHEMA_V1}\n[tables.broken\nfields = {}\n`);
    const report = await waitForNewOutput(/schema\.toml not applied[\s\S]*?schema\.toml:(\d+)/, o, e, "the TOML report");
    assert.equal(report[1], "6", report[0]); // the unclosed [tables.broken header
    assert.deepEqual(await http.query(q("notes:byTag"), { tag: "none" }), []);
    const [o2, e2] = marks();
    writeFileSync(file("schema.toml"), SCHEMA_V1);
    await sleep(300);
    assert.doesNotMatch(server.stdout.slice(o2) + server.stderr.slice(e2), /not applied/);
  });

  test("an index added to schema.toml is back-filled and a function using it works", async () => {
    const ids = [];
    for (const [text, n] of [["low", 1], ["mid", 5], ["high", 9]]) {
      ids.push(await client.mutation(m("notes:add"), { text, tag: "t", n }));
    }
    const [o, e] = marks();
    writeFileSync(file("schema.toml"), SCHEMA_WITH_BY_N);
    const synced = await waitForNewOutput(/schema synced:[^\n]*/, o, e, "the schema sync line");
    assert.match(synced[0], /notes\.by_n/);
    assert.match(synced[0], /3 documents back-filled/);
    assert.match(synced[0], /types regenerated/, "codegen is folded into the sync line");
    await sleep(200);
    assert.equal(syncLines(o, e).length, 1, syncLines(o, e).join(" | "));

    writeFileSync(file("functions/ranked.rhai"), RANKED_MODULE);
    const ranked = subscribe(client, "ranked:atLeast", { min: 5 });
    await ranked.until((ev) => safeJson(ev.value) === safeJson(["mid", "high"]), "the back-filled index read");
    // The new index is live: a new note shows up in the subscription.
    await client.mutation(m("notes:add"), { text: "top", tag: "t", n: 10 });
    await ranked.until((ev) => safeJson(ev.value) === safeJson(["mid", "high", "top"]), "an update through the new index");
    ranked.unsubscribe();
  });

  test("removing a field the stored documents still have is refused; the old schema stays", async () => {
    const stored = await http.query(q("notes:byTag"), { tag: "t" });
    assert.equal(stored.length, 4);
    const [o, e] = marks();
    writeFileSync(file("schema.toml"), SCHEMA_WITHOUT_TAG);
    const refused = await waitForNewOutput(/schema\.toml not applied[\s\S]*?documents first/, o, e, "the refusal");
    const text = refused[0];
    assert.match(text, /4 of 4 documents in table "notes"/, text);
    assert.match(text, /e\.g\. [0-9a-z]{20,}/, `example ids: ${text}`);
    assert.match(text, /tag/, "names the field");

    // The old schema keeps working: its index answers and writes with `tag` still pass.
    await client.mutation(m("notes:add"), { text: "after", tag: "t", n: 2 });
    assert.deepEqual(await http.query(q("notes:byTag"), { tag: "t" }), ["low", "mid", "high", "top", "after"]);

    // Putting the old schema back is a no-op sync, not an error.
    const [o2, e2] = marks();
    writeFileSync(file("schema.toml"), SCHEMA_WITH_BY_N);
    await sleep(500);
    assert.doesNotMatch(server.stdout.slice(o2) + server.stderr.slice(e2), /not applied/);
  });
  test("an index dropped from schema.toml is removed; a function using it fails naming it, others keep working", async () => {
    const byTag = subscribe(client, "notes:byTag", { tag: "t" });
    await byTag.until((ev) => Array.isArray(ev.value) && ev.value.length === 5, "the notes by tag");
    const ranked = subscribe(client, "ranked:atLeast", { min: 9 });
    await ranked.until((ev) => safeJson(ev.value) === safeJson(["high", "top"]), "the ranked notes");

    const [o, e] = marks();
    writeFileSync(file("schema.toml"), SCHEMA_WITHOUT_BY_TAG);
    const synced = await waitForNewOutput(/✓ schema synced:[^\n]*/, o, e, "the schema sync line");
    assert.match(synced[0], /indexes dropped: notes\.by_tag/, synced[0]);
    await sleep(200);
    assert.equal(syncLines(o, e).length, 1, syncLines(o, e).join(" | "));

    // The subscriber of the function that reads the dropped index is told why, by name.
    const pushed = await byTag.until((ev) => ev.error, "the error pushed to the by_tag subscriber");
    assert.match(pushed.error.message, /table "notes" has no index "by_tag"/, pushed.error.message);
    const called = await rejection(http.query(q("notes:byTag"), { tag: "t" }), "notes:byTag");
    assert.match(called.message, /table "notes" has no index "by_tag" \(known: by_creation_time, by_n\)/, called.message);

    // Everything else keeps working: writes, the remaining index and its subscription.
    await client.mutation(m("notes:add"), { text: "summit", tag: "t", n: 12 });
    await ranked.until((ev) => safeJson(ev.value) === safeJson(["high", "top", "summit"]), "an update through by_n");
    assert.equal(await http.query(q("notes:greeting"), {}), "v6");
    byTag.unsubscribe();
    ranked.unsubscribe();
  });

  /** Line and column (1-based) of the first `needle` in `text`. */
  function position(text, needle) {
    const at = text.indexOf(needle);
    assert.ok(at >= 0, `${needle} is in the schema`);
    const before = text.slice(0, at).split("\n");
    return `${before.length}:${before.at(-1).length + 1}`;
  }

  test("broken schema edits name schema.toml:line:column with a fix; the old schema keeps serving", async () => {
    const cases = [
      {
        what: "an index on an unknown field",
        schema: SCHEMA_WITHOUT_BY_TAG.replace('by_n = ["n"]', 'by_n = ["n"], by_tag = ["tagg"]'),
        at: '"tagg"',
        message: /index `notes\.by_tag`: field `tagg` is not declared in the table's fields \(did you mean `tag`\?\)/,
      },
      {
        what: "another table named in an index",
        schema: `${SCHEMA_WITHOUT_BY_TAG.replace('by_n = ["n"]', 'by_n = ["n"], by_author = ["users.name"]')}\n[tables.users]\nfields = { name = "string" }\n`,
        at: '"users.name"',
        message: /index `notes\.by_author`: field `users\.name` is not declared in the table's fields; `users` is a table: an index covers its own table's fields only, so index the field that holds an id<users>/,
      },
      {
        what: "an id of an undeclared table",
        schema: SCHEMA_WITHOUT_BY_TAG.replace('n = "number" }', 'n = "number", owner = "optional<id<userz>>" }'),
        at: "optional<id<userz>>",
        message: /in the type of field `notes\.owner`: id<userz> names a table that schema\.toml does not declare \(declare it with \[tables\.userz\] or name one of: notes\)/,
      },
    ];
    for (const c of cases) {
      const [o, e] = marks();
      writeFileSync(file("schema.toml"), c.schema);
      const report = await waitForNewOutput(/✗ schema\.toml not applied[^\n]*\n(schema\.toml:(\d+:\d+): [^\n]*)/, o, e, c.what);
      assert.equal(report[2], position(c.schema, c.at), `${c.what}: ${report[1]}`);
      assert.match(report[1], c.message, c.what);

      // The previous schema serves: its index answers and writes of its shape pass.
      await client.mutation(m("notes:add"), { text: `during ${c.what}`, tag: "t", n: 100 });
      const top = await http.query(q("ranked:atLeast"), { min: 100 });
      assert.ok(top.includes(`during ${c.what}`), `${c.what}: ${safeJson(top)}`);

      // Putting the good schema back is one line that says the error is fixed.
      const [o2, e2] = marks();
      writeFileSync(file("schema.toml"), SCHEMA_WITHOUT_BY_TAG);
      const back = await waitForNewOutput(/✓ schema synced:[^\n]*/, o2, e2, `the fix of ${c.what}`);
      assert.match(back[0], /no table or index changes in \d+ ms, error fixed$/, back[0]);
    }
  });
});
