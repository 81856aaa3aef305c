// Issue 5 part 1 through the real binary: `pulsebase dev` watching a purpose-built app while
// an official ConvexClient keeps a subscription open. Edits to a function file, a broken
// edit, an added index and a refused schema change, each checked from the client's side and
// in the server's output.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import WebSocket from "ws";
import { ConvexClient, ConvexHttpClient } from "convex/browser";

import { Server, waitFor } from "./lib/server.mjs";
import { writeApp, q, m, sleep, safeJson } from "./lib/app.mjs";

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
});
