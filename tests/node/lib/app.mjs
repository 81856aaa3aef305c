// Helpers shared by the end-to-end tests: purpose-built app folders, function references by
// name, and small assertions about errors thrown by the convex client.

import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { makeFunctionReference } from "convex/server";

/** Writes `files` ({"relative/path": "text"}) into a fresh temp folder and returns its path. */
export function writeApp(files) {
  const dir = mkdtempSync(join(tmpdir(), "pulsebase-e2e-app-"));
  for (const [path, text] of Object.entries(files)) {
    const full = join(dir, path);
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, text);
  }
  return dir;
}

/** A function reference for "module:name", usable with every convex client. */
export const q = (name) => makeFunctionReference(name);
export const m = (name) => makeFunctionReference(name);

/** Awaits `promise` and returns the error it rejects with; fails if it resolves. */
export async function rejection(promise, what = "the call") {
  try {
    const value = await promise;
    throw new Error(`${what} was expected to fail but resolved with ${safeJson(value)}`);
  } catch (e) {
    if (e instanceof Error && e.message.startsWith(`${what} was expected to fail`)) throw e;
    return e;
  }
}

export function safeJson(v) {
  try {
    return JSON.stringify(v, (_, x) => (typeof x === "bigint" ? `${x}n` : x));
  } catch {
    return String(v);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
