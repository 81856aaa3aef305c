// Export, import, backup and restore end to end with the real binary: an export of the
// example app while a writer runs, imported into a fresh app and compared document by
// document; a hand-made Convex-format ZIP with references between tables and a stored file;
// an import that violates the schema writing nothing; an import through a running server
// reaching a subscriber; and a backup taken while writing, restored and compared.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { ConvexClient, ConvexHttpClient } from "convex/browser";

import { Server, copyExampleApp, runCli, startExample, waitFor } from "./lib/server.mjs";
import { m, q, writeApp } from "./lib/app.mjs";
import { convexId, jsonLines, readZip, writeZip } from "./lib/zip.mjs";

const scratch = mkdtempSync(join(tmpdir(), "pulsebase-data-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Documents of every table in an export ZIP, sorted by _id, by table. */
function tablesOf(zipPath) {
  const entries = readZip(zipPath);
  const tables = {};
  for (const [name, data] of entries) {
    const match = name.match(/^([^/]+)\/documents\.jsonl$/);
    if (match && match[1] !== "_tables") {
      tables[match[1]] = jsonLines(data).sort((a, b) => (a._id < b._id ? -1 : 1));
    }
  }
  return { entries, tables };
}

async function exportOf(dir, name, extra = []) {
  const path = join(scratch, name);
  const out = await runCli(["export", "--dir", dir, "--path", path, ...extra]);
  assert.equal(out.code, 0, out.stderr);
  return path;
}

/** Runs `todos:addTodo` in a loop until stopped; counts completions. */
function startWriter(http) {
  const state = { written: 0, errors: [], running: true };
  state.done = (async () => {
    while (state.running) {
      try {
        await http.mutation(m("todos:addTodo"), { text: `written ${state.written}` });
        state.written++;
      } catch (e) {
        state.errors.push(e);
        return;
      }
    }
  })();
  state.stop = async () => {
    state.running = false;
    await state.done;
  };
  return state;
}

describe("export and import", () => {
  let server;
  let http;
  before(async () => {
    server = await startExample();
    http = new ConvexHttpClient(server.url);
    http.setAuth(await server.token("data_user", { name: "Data", email: "data@example.com" }));
    for (let i = 0; i < 30; i++) await http.mutation(m("todos:addTodo"), { text: `todo ${i}` });
    for (let i = 0; i < 5; i++) await http.mutation(m("messages:send"), { body: `message ${i}` });
    await http.mutation(m("users:storeUser"), {});
    const url = await http.mutation(m("files:generateUploadUrl"), {});
    const res = await fetch(url, { method: "POST", headers: { "Content-Type": "image/png" }, body: Buffer.from("not really a png") });
    const { storageId } = await res.json();
    await http.mutation(m("files:saveFile"), { storageId, name: "picture.png" });
  });
  after(async () => server?.dispose());

  test("an export taken while a writer runs imports into a fresh app with every document equal", async () => {
    const writer = startWriter(http);
    await waitFor(() => writer.written >= 10, { what: "the writer to start" });
    const before = writer.written;
    const zip = await exportOf(server.dir, "live.zip", ["--include-file-storage"]);
    const after = writer.written;
    await waitFor(() => writer.written >= after + 5, { what: "writes after the export" });
    await writer.stop();
    assert.deepEqual(writer.errors, [], "the server kept committing during the export");

    const { entries, tables } = tablesOf(zip);
    assert.ok(entries.has("README.md"));
    assert.equal(entries.get("todos/generated_schema.jsonl").toString(), '"uniform"\n');
    const tableList = jsonLines(entries.get("_tables/documents.jsonl")).map((t) => t.name);
    // Every user table of the example app's schema.toml, and no system table.
    const declared = [...readFileSync(join(server.dir, "schema.toml"), "utf8").matchAll(/^\[tables\.([A-Za-z0-9_]+)\]/gm)].map((x) => x[1]);
    assert.ok(declared.includes("todos") && declared.includes("files"), declared.join(","));
    assert.deepEqual(tableList.sort(), declared.sort());
    // One snapshot: every todo written before the export started, none written after it ended.
    const todos = tables.todos.length;
    assert.ok(todos >= 30 + before && todos <= 30 + after, `${todos} todos in [${30 + before}, ${30 + after}]`);
    assert.equal(typeof tables.todos[0]._creationTime, "number");
    assert.equal(tables.messages.length, 5);
    const [stored] = tables._storage;
    assert.equal(stored.contentType, "image/png");
    assert.deepEqual(entries.get(`_storage/${stored._id}`), Buffer.from("not really a png"));

    const fresh = copyExampleApp();
    try {
      const imported = await runCli(["import", zip, "--dir", fresh]);
      assert.equal(imported.code, 0, imported.stderr);
      assert.match(imported.stdout, /imported \d+ documents and 1 files/);
      const again = tablesOf(await exportOf(fresh, "reexport.zip", ["--include-file-storage"]));
      for (const table of Object.keys(tables)) {
        assert.deepEqual(again.tables[table], tables[table], `table ${table} round-trips`);
      }
      // The imported app serves the imported file.
      const copy = await new Server({ dir: fresh }).start();
      try {
        const client = new ConvexHttpClient(copy.url);
        client.setAuth(await copy.token("data_user", { name: "Data", email: "data@example.com" }));
        const [file] = await client.query(q("files:list"), {});
        assert.equal(file.name, "picture.png");
        assert.equal(await (await fetch(file.url)).text(), "not really a png");
        // Importing the same ZIP again into tables that now hold documents is refused.
        const refused = await copy.cli(["import", zip]);
        assert.notEqual(refused.code, 0);
        assert.match(refused.stderr, /already has documents; pass --append/);
      } finally {
        await copy.stop();
      }
    } finally {
      rmSync(fresh, { recursive: true, force: true });
    }
  });

  test("an import that violates the schema writes nothing", async () => {
    const fresh = copyExampleApp();
    try {
      const file = join(scratch, "todos.jsonl");
      writeFileSync(
        file,
        [
          { text: "fine", userId: "u", completed: false },
          { text: 5, userId: "u", completed: false },
          { text: "also fine", userId: "u", completed: "no" },
        ]
          .map((d) => JSON.stringify(d))
          .join("\n"),
      );
      const out = await runCli(["import", file, "--dir", fresh]);
      assert.notEqual(out.code, 0);
      assert.match(out.stderr, /nothing was imported: 2 problems/);
      assert.match(out.stderr, /todos line 2: .*text/);
      assert.match(out.stderr, /todos line 3: .*completed/);
      const { tables } = tablesOf(await exportOf(fresh, "after-refusal.zip"));
      assert.deepEqual(tables.todos, []);
    } finally {
      rmSync(fresh, { recursive: true, force: true });
    }
  });

  test("an import through the running server reaches a subscriber as ordinary commits", async () => {
    const client = new ConvexClient(server.url, { webSocketConstructor: WebSocket, logger: false });
    client.setAuth(async () => server.token("import_user"));
    const seen = [];
    const unsubscribe = client.onUpdate(q("todos:getMyTodos"), {}, (todos) => seen.push(todos));
    try {
      await waitFor(() => seen.length > 0, { what: "the first result" });
      const csv = join(scratch, "todos.csv");
      writeFileSync(csv, "text,userId,completed\nfrom csv 1,import_user,false\nfrom csv 2,import_user,true\n");
      const out = await server.cli(["import", csv, "--table", "todos", "--append"]);
      assert.equal(out.code, 0, out.stderr);
      const todos = await waitFor(() => seen.at(-1).length === 2 && seen.at(-1), { what: "the imported todos" });
      assert.deepEqual(todos.map((t) => [t.text, t.completed]).sort(), [["from csv 1", false], ["from csv 2", true]]);
    } finally {
      unsubscribe();
      await client.close();
    }
  });
});

describe("import of a Convex export", () => {
  test("a hand-made Convex-format ZIP keeps references between tables, creation times and files", async () => {
    const dir = writeApp({
      "schema.toml": `
[tables.authors]
fields = { name = "string" }

[tables.books]
fields = { title = "string", author = "id<authors>", pages = "int64", rating = "number", cover = 'optional<id<"_storage">>' }
indexes = { by_author = ["author"] }
`,
      "functions/books.rhai": `
export const list = query(|ctx, args| {
    let out = [];
    for book in ctx.db.query("books").collect() {
        book.authorName = ctx.db.get(book.author).name;
        if book.cover != () { book.coverUrl = ctx.storage.getUrl(book.cover); }
        out.push(book);
    }
    out
});
export const byAuthor = query(#{ args: #{ author: "id<authors>" }, handler: |ctx, args|
    ctx.db.query("books").withIndex("by_author", |q| q.eq("author", args.author)).collect() });
`,
    });
    const ada = convexId(10001, 1);
    const grace = convexId(10001, 2);
    const cover = convexId(10005, 9);
    const png = Buffer.from("\x89PNG fake cover bytes");
    const lines = (docs) => docs.map((d) => JSON.stringify(d)).join("\n") + "\n";
    const zip = writeZip({
      "README.md": "# Welcome to your Convex snapshot export!\n",
      "_tables/documents.jsonl": lines([{ name: "authors", id: 10001 }, { name: "books", id: 10002 }]),
      "authors/documents.jsonl": lines([
        { _id: ada, _creationTime: 1700000000000.5, name: "Ada" },
        { _id: grace, _creationTime: 1700000000001.25, name: "Grace" },
      ]),
      "authors/generated_schema.jsonl": '"uniform"\n',
      "books/documents.jsonl": lines([
        { _id: convexId(10002, 1), _creationTime: 1700000000002, title: "Notes", author: ada, pages: 42, rating: 4, cover },
        { _id: convexId(10002, 2), _creationTime: 1700000000003, title: "Compilers", author: grace, pages: 300, rating: 4.5 },
        { _id: convexId(10002, 3), _creationTime: 1700000000004, title: "More notes", author: ada, pages: 7, rating: 3 },
      ]),
      "books/generated_schema.jsonl": '"uniform"\n',
      "_storage/documents.jsonl": lines([
        {
          _id: cover,
          _creationTime: 1700000000000,
          sha256: createHash("sha256").update(png).digest("base64"),
          size: png.length,
          contentType: "image/png",
          internalId: "5fbb4b38-6cb8-4d1a-a3f3-1d9c2f0b6a11",
        },
      ]),
      [`_storage/${cover}.png`]: png,
    });
    const path = join(scratch, "convex-export.zip");
    writeFileSync(path, zip);
    try {
      const out = await runCli(["import", path, "--dir", dir]);
      assert.equal(out.code, 0, out.stderr);
      assert.match(out.stdout, /imported 6 documents and 1 files in 1 commit/);
      const server = await new Server({ dir }).start();
      try {
        const http = new ConvexHttpClient(server.url);
        const books = await http.query(q("books:list"), {});
        assert.deepEqual(
          books.map((b) => [b.title, b.authorName, b.pages, b.rating, b._creationTime]).sort(),
          [
            ["Compilers", "Grace", 300n, 4.5, 1700000000003],
            ["More notes", "Ada", 7n, 3, 1700000000004],
            ["Notes", "Ada", 42n, 4, 1700000000002],
          ],
        );
        const notes = books.find((b) => b.title === "Notes");
        assert.equal(await (await fetch(notes.coverUrl)).text(), png.toString());
        const byAda = await http.query(q("books:byAuthor"), { author: notes.author });
        assert.equal(byAda.length, 2, "the index on the mapped reference finds both of Ada's books");
        assert.notEqual(notes.author, ada, "Convex ids became Pulsebase ids");
      } finally {
        await server.stop();
      }
      // The same ZIP again, appended: the derived ids are the same, so it is refused as duplicates.
      const twice = await runCli(["import", path, "--dir", dir, "--append"]);
      assert.notEqual(twice.code, 0);
      assert.match(twice.stderr, /already exists/);
      // --replace brings it back to exactly the export.
      const replaced = await runCli(["import", path, "--dir", dir, "--replace"]);
      assert.equal(replaced.code, 0, replaced.stderr);
      assert.match(replaced.stdout, /after deleting 6 documents/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("backup and restore", () => {
  test("a backup taken while writing restores into another app dir", async () => {
    const server = await startExample();
    const http = new ConvexHttpClient(server.url);
    http.setAuth(await server.token("backup_user"));
    const fresh = copyExampleApp();
    try {
      for (let i = 0; i < 20; i++) await http.mutation(m("todos:addTodo"), { text: `before ${i}` });
      const url = await http.mutation(m("files:generateUploadUrl"), {});
      const { storageId } = await (await fetch(url, { method: "POST", body: "backed up bytes" })).json();
      await http.mutation(m("files:saveFile"), { storageId, name: "kept.txt" });
      const writer = startWriter(http);
      await waitFor(() => writer.written >= 5, { what: "the writer to start" });
      const before = writer.written;
      const file = join(scratch, "backup.zip");
      const out = await server.cli(["backup", file]);
      const after = writer.written;
      await writer.stop();
      assert.equal(out.code, 0, out.stderr);
      assert.deepEqual(writer.errors, []);
      assert.match(out.stdout, /and 1 files/);

      const restored = await runCli(["restore", file, "--dir", fresh]);
      assert.equal(restored.code, 0, restored.stderr);
      const refused = await runCli(["restore", file, "--dir", fresh]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /already holds data.*--force/);

      const copy = await new Server({ dir: fresh }).start();
      try {
        const client = new ConvexHttpClient(copy.url);
        client.setAuth(await copy.token("backup_user"));
        const todos = await client.query(q("todos:getMyTodos"), {});
        assert.ok(
          todos.length >= 20 + before && todos.length <= 20 + after,
          `${todos.length} todos in [${20 + before}, ${20 + after}]`,
        );
        const original = await http.query(q("todos:getMyTodos"), {});
        const ids = new Set(original.map((t) => t._id));
        assert.ok(todos.every((t) => ids.has(t._id)), "every restored todo is one of the original's");
        const [kept] = await client.query(q("files:list"), {});
        assert.equal(await (await fetch(kept.url)).text(), "backed up bytes");
      } finally {
        await copy.stop();
      }
      const forced = await runCli(["restore", file, "--dir", fresh, "--force"]);
      assert.equal(forced.code, 0, forced.stderr);
      assert.match(forced.stdout, /kept in .*before-restore-/);
    } finally {
      await server.dispose();
      rmSync(fresh, { recursive: true, force: true });
    }
  });
});
