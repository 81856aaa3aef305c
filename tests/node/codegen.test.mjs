// `pulsebase codegen` through the real binary: the generated api.js / api.d.ts /
// dataModel.d.ts type-check with `tsc --strict` against the convex package (a usage file
// with @ts-expect-error lines proves wrong arguments are refused), the api object works with
// the official client at run time, and `pulsebase dev` regenerates on startup and on sync.

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ConvexClient } from "convex/browser";
import { getFunctionName } from "convex/server";

import { Server, copyExampleApp, runCli, waitFor } from "./lib/server.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const TSC = join(HERE, "node_modules", "typescript", "bin", "tsc");

// Every kind of validator, a nested module, internal functions, `returns` validators (also
// `doc<TABLE>`, a stored document) and an HTTP action (which gets no reference).
const ADMIN_USERS = `
export const list = query(#{
    args: #{ limit: "optional<int64>", role: "'admin' | 'user'", tags: "array<string>",
             meta: "record<string, number>", blob: "bytes", flag: "boolean | null",
             nested: "object{a: number, b?: id<users>}", "odd-name": "any" },
    returns: "array<object{name: string, n: 3, id: id<users>}>",
    handler: |ctx, args| []
});
export const promote = internalMutation(#{ args: #{ id: "id<users>" }, handler: |ctx, args| () });
export const count = query(#{ args: #{}, returns: "number", handler: |ctx, args| 0.0 });
export const newest = query(#{ args: #{}, returns: "doc<users> | null", handler: |ctx, args| ctx.db.query("users").order("desc").first() });
export const fake = query(#{ args: #{}, returns: "doc<users>", handler: |ctx, args| #{ name: "not a stored document" } });
`;

const SCHEMA_EXTRA = `
[tables.profiles]
fields = { user = "id<users>", bio = "optional<string>", stats = "object{posts: int64, tags: array<string>}", kind = "'a' | 'b'" }
indexes = { by_user = ["user"] }

[tables.loose]
`;

const USAGE_TS = `
import { ConvexHttpClient } from "convex/browser";
import type { FunctionArgs, FunctionReference, FunctionReturnType } from "convex/server";
import { api, internal } from "./functions/_generated/api.js";
import type { DataModel, Doc, Id, TableNames } from "./functions/_generated/dataModel.js";

const client = new ConvexHttpClient("http://127.0.0.1:9");

export async function usage(todo: Id<"todos">, user: Id<"users">): Promise<void> {
  const todos: Doc<"todos">[] = await client.query(api.todos.getMyTodos);
  const firstText: string = todos[0].text;
  const firstId: Id<"todos"> = todos[0]._id;
  // @ts-expect-error getMyTodos declares returns: "array<doc<todos>>", so its result is not any
  const notStrings: string[] = await client.query(api.todos.getMyTodos);
  const newest: Doc<"users"> | null = await client.query(api.admin.users.newest);
  // @ts-expect-error "doc<users> | null" may be null
  const surely: Doc<"users"> = await client.query(api.admin.users.newest);
  await client.query(api.todos.getMyTodos, {});
  await client.mutation(api.todos.addTodo, { text: "x" });
  // @ts-expect-error text must be a string
  await client.mutation(api.todos.addTodo, { text: 1 });
  // @ts-expect-error text is required
  await client.mutation(api.todos.addTodo, {});
  // @ts-expect-error no such argument
  await client.mutation(api.todos.addTodo, { text: "x", extra: 1 });
  await client.mutation(api.todos.toggle, { id: todo });
  // @ts-expect-error an id of another table
  await client.mutation(api.todos.toggle, { id: user });
  // @ts-expect-error a plain string is not an id
  await client.mutation(api.todos.toggle, { id: "abc" });

  const rows = await client.query(api.admin.users.list, {
    role: "admin", tags: ["a"], meta: { x: 1 }, blob: new ArrayBuffer(1), flag: null,
    nested: { a: 1, b: user }, "odd-name": { anything: true }, limit: 10n,
  });
  const n: 3 = rows[0].n;
  const name: string = rows[0].name;
  const id: Id<"users"> = rows[0].id;
  const count: number = await client.query(api.admin.users.count);
  // @ts-expect-error not one of the literals
  await client.query(api.admin.users.list, { role: "root", tags: [], meta: {}, blob: new ArrayBuffer(0), flag: true, nested: { a: 1 }, "odd-name": 0 });
  // @ts-expect-error int64 is a bigint
  await client.query(api.admin.users.list, { limit: 1, role: "user", tags: [], meta: {}, blob: new ArrayBuffer(0), flag: true, nested: { a: 1 }, "odd-name": 0 });

  // Internal functions are only in \`internal\`, and the client refuses them.
  const byClerk: FunctionReference<"query", "internal"> = internal.users.getByClerkId;
  const promote: FunctionReference<"mutation", "internal", { id: Id<"users"> }> = internal.admin.users.promote;
  // @ts-expect-error internal functions are not part of api
  void api.users.getByClerkId;
  // @ts-expect-error the client calls public functions only
  await client.query(internal.users.getByClerkId, { clerkId: "c" });
  // @ts-expect-error HTTP actions have no reference
  void api.http;

  type ListArgs = FunctionArgs<typeof api.admin.users.list>;
  const args: ListArgs["nested"] = { a: 2 };
  type CountResult = FunctionReturnType<typeof api.admin.users.count>;
  const c: CountResult = 1;

  const profile: Doc<"profiles"> = {
    _id: "p" as Id<"profiles">, _creationTime: 1, user, stats: { posts: 1n, tags: [] }, kind: "a",
  };
  const bio: string | undefined = profile.bio;
  const loose: Doc<"loose"> = { _id: "l" as Id<"loose">, _creationTime: 2, whatever: [1, 2] };
  const tables: TableNames[] = ["todos", "users", "messages", "profiles", "loose"];
  // @ts-expect-error not a table
  const wrong: TableNames = "nope";
  const index: DataModel["profiles"]["indexes"]["by_user"] = ["user", "_creationTime"];
  void [todos, firstText, firstId, notStrings, newest, surely, n, name, id, count, byClerk, promote, args, c, bio, loose, tables, wrong, index];
}
`;

function run(cmd, args, { cwd, timeout = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    proc.stdout.on("data", (d) => (out += d));
    proc.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`${cmd} ${args.join(" ")} timed out after ${timeout} ms:\n${out}`));
    }, timeout);
    proc.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

/** The example app plus a nested module and more tables, in a folder under tests/node so that
 *  `convex` and `typescript` resolve from tests/node/node_modules. */
function richApp() {
  const base = join(HERE, "artifacts");
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, "codegen-"));
  const example = copyExampleApp();
  cpSync(example, dir, { recursive: true });
  rmSync(example, { recursive: true, force: true });
  mkdirSync(join(dir, "functions", "admin"), { recursive: true });
  writeFileSync(join(dir, "functions", "admin", "users.rhai"), ADMIN_USERS);
  writeFileSync(join(dir, "schema.toml"), readFileSync(join(dir, "schema.toml"), "utf8") + SCHEMA_EXTRA);
  return dir;
}

const cleanup = [];
after(() => {
  for (const dir of cleanup) rmSync(dir, { recursive: true, force: true });
});

describe("pulsebase codegen", () => {
  test("generated code type-checks with tsc --strict, and wrong arguments are refused", async () => {
    const dir = richApp();
    cleanup.push(dir);
    const gen = await runCli(["codegen", "--dir", dir]);
    assert.equal(gen.code, 0, gen.stdout + gen.stderr);
    assert.match(gen.stdout, /wrote api\.js, api\.d\.ts, dataModel\.d\.ts/);
    for (const f of ["api.js", "api.d.ts", "dataModel.d.ts"]) {
      assert.ok(existsSync(join(dir, "functions", "_generated", f)), `${f} written`);
    }
    const apiDts = readFileSync(join(dir, "functions", "_generated", "api.d.ts"), "utf8");
    assert.match(apiDts, /getMyTodos: FunctionReference<"query", "public", Record<string, never>, Array<Doc<"todos">>>;/);
    assert.match(apiDts, /newest: FunctionReference<"query", "public", Record<string, never>, \(Doc<"users"> \| null\)>;/);
    writeFileSync(join(dir, "usage.ts"), USAGE_TS);
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true, noEmit: true, target: "ES2022", module: "ESNext", moduleResolution: "Bundler",
          lib: ["ES2022", "DOM"], types: [],
          // Declaration files are checked too: the generated .d.ts files are the subject.
          skipLibCheck: false,
        },
        files: ["usage.ts", "functions/_generated/api.d.ts", "functions/_generated/dataModel.d.ts"],
      }),
    );
    const tsc = await run(process.execPath, [TSC, "-p", "tsconfig.json"], { cwd: dir, timeout: 120_000 });
    assert.equal(tsc.code, 0, `tsc --strict on the generated code failed:\n${tsc.out}`);

    // api.js itself, checked as JavaScript against convex's types.
    writeFileSync(
      join(dir, "tsconfig.js.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true, noEmit: true, allowJs: true, checkJs: true, target: "ES2022", module: "ESNext",
          moduleResolution: "Bundler", lib: ["ES2022", "DOM"], types: [], skipLibCheck: true,
        },
        files: ["functions/_generated/api.js"],
      }),
    );
    const tscJs = await run(process.execPath, [TSC, "-p", "tsconfig.js.json"], { cwd: dir, timeout: 120_000 });
    assert.equal(tscJs.code, 0, `tsc --strict --checkJs on api.js failed:\n${tscJs.out}`);

    // --check: up to date now; out of date after a change.
    const fresh = await runCli(["codegen", "--dir", dir, "--check"]);
    assert.equal(fresh.code, 0, fresh.stdout + fresh.stderr);
    writeFileSync(join(dir, "functions", "extra.rhai"), `export const ping = query(#{ args: #{}, handler: |ctx, args| "pong" });`);
    const stale = await runCli(["codegen", "--dir", dir, "--check"]);
    assert.equal(stale.code, 1);
    assert.match(stale.stderr, /out of date \(api\.js, api\.d\.ts\)/);
  });

  test("the generated api works with the official client; a broken app is refused", async () => {
    const dir = richApp();
    cleanup.push(dir);
    const out = join(dir, "client-api");
    const gen = await runCli(["codegen", "--dir", dir, "--out", out]);
    assert.equal(gen.code, 0, gen.stdout + gen.stderr);
    const { api, internal } = await import(pathToFileURL(join(out, "api.js")).href);
    assert.equal(getFunctionName(api.todos.getMyTodos), "todos:getMyTodos");
    assert.equal(getFunctionName(api.admin.users.list), "admin/users:list");
    assert.equal(getFunctionName(internal.users.getByClerkId), "users:getByClerkId");
    assert.equal(api.users.getByClerkId, undefined, "internal functions are not in api");

    const server = await new Server({ dir }).start();
    const client = new ConvexClient(server.url, { logger: false });
    try {
      const token = await server.token("codegen_user", { name: "Cody" });
      client.setAuth(async () => token);
      const seen = [];
      client.onUpdate(api.todos.getMyTodos, {}, (todos) => seen.push(todos.map((t) => t.text)));
      await client.mutation(api.todos.addTodo, { text: "typed" });
      await waitFor(() => seen.some((list) => list.includes("typed")), { timeout: 5_000, what: "the todo through api.todos" });
      assert.equal(await client.query(api.admin.users.count, {}), 0);
      // doc<TABLE> results are checked at run time: documents pass, other objects do not.
      const stored = await client.mutation(api.users.storeUser, {});
      const newest = await client.query(api.admin.users.newest, {});
      assert.equal(newest._id, stored);
      assert.equal(newest.name, "Cody");
      await assert.rejects(client.query(api.admin.users.fake, {}), /ReturnsValidationError: missing required field return value\._id/);
    } finally {
      await client.close();
      await server.stop();
    }

    writeFileSync(join(dir, "functions", "broken.rhai"), "export const x = query(#{ args: #{ a: \"strng\" }, handler: |ctx, args| 1 });");
    const broken = await runCli(["codegen", "--dir", dir, "--out", out]);
    assert.notEqual(broken.code, 0);
    assert.match(broken.stderr, /broken\.rhai/);
  });

  test("pulsebase dev writes functions/_generated at startup and after every sync", async () => {
    const server = await new Server({ dir: copyExampleApp() }).start();
    try {
      const generated = join(server.dir, "functions", "_generated");
      const apiDts = join(generated, "api.d.ts");
      assert.ok(existsSync(apiDts), "written at startup");
      assert.match(readFileSync(apiDts, "utf8"), /getMyTodos: FunctionReference<"query", "public"/);

      writeFileSync(join(server.dir, "functions", "notes.rhai"), `export const list = query(#{ args: #{ tag: "string" }, handler: |ctx, args| [] });`);
      await server.waitForOutput(/functions synced: notes/);
      await waitFor(() => readFileSync(apiDts, "utf8").includes("notes: {"), { timeout: 5_000, what: "notes in api.d.ts" });
      assert.match(readFileSync(apiDts, "utf8"), /list: FunctionReference<"query", "public", \{ tag: string \}, any>/);

      writeFileSync(join(server.dir, "schema.toml"), readFileSync(join(server.dir, "schema.toml"), "utf8") + `\n[tables.notes]\nfields = { body = "string" }\n`);
      await server.waitForOutput(/schema synced/);
      const dataModel = join(generated, "dataModel.d.ts");
      await waitFor(() => readFileSync(dataModel, "utf8").includes(`notes: {`), { timeout: 5_000, what: "notes in dataModel.d.ts" });
      assert.doesNotMatch(server.stderr, /⚠ codegen/, "no codegen warning");
    } finally {
      await server.dispose();
    }
  });

  test("a codegen folder that cannot be written is a warning, not fatal", async () => {
    const dir = copyExampleApp();
    writeFileSync(join(dir, "functions", "_generated"), "a file where the folder should be");
    const server = await new Server({ dir }).start();
    try {
      await server.waitForOutput(/codegen: cannot create/);
      const health = await fetch(`${server.url}/api/health`);
      assert.equal(health.status, 200);
    } finally {
      await server.dispose();
    }
  });
});
