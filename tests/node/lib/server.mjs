// Starts the real pulsebase binary on a loopback port for a test, as a user would:
// a fresh copy of an app folder, `pulsebase dev --port 0`, the ready line on stdout.
//
// Every wait here is bounded; stop() always ends the process.

import { execFileSync, spawn } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const BIN = process.env.PULSEBASE_BIN || join(ROOT, "target/release/pulsebase");

/** A fresh temp folder holding a copy of the example app at the repo root. */
export function copyExampleApp() {
  const dir = mkdtempSync(join(tmpdir(), "pulsebase-test-"));
  for (const entry of ["functions", "schema.toml", "auth.config.toml"]) {
    const from = join(ROOT, entry);
    if (existsSync(from)) cpSync(from, join(dir, entry), { recursive: true, filter: (p) => !p.includes("_generated") });
  }
  return dir;
}

/** Resolves when `pred()` is true, polling every `every` ms; rejects after `timeout` ms. */
export async function waitFor(pred, { timeout = 10_000, every = 10, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await pred();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

// With PULSEBASE_TEST_POSTGRES (the URL of a throw-away cluster's database, started by
// scripts/test-all.sh with scripts/pg-cluster.sh), every server stores its app in a fresh
// PostgreSQL database of that cluster instead of SQLite, so the same suites test both engines.
const POSTGRES = process.env.PULSEBASE_TEST_POSTGRES;
const databases = new Map();

/** Creates the database `name` in the PostgreSQL cluster of `clusterUrl` (the URL of any of
 * its databases) with psql; its URL. */
export function createDatabase(clusterUrl, name) {
  execFileSync("psql", [clusterUrl, "-qc", `CREATE DATABASE ${name}`], { stdio: ["ignore", "ignore", "inherit"] });
  return clusterUrl.replace(/\/[^/]*$/, `/${name}`);
}

/** The database of the app folder `dir` in the test cluster (new and empty the first time; a
 * restarted server on the same folder finds its data again); its URL. */
export function postgresDatabaseFor(dir) {
  if (!databases.has(dir)) {
    databases.set(dir, createDatabase(POSTGRES, `t_${process.pid}_${databases.size + 1}`));
  }
  return databases.get(dir);
}

export class Server {
  constructor({ dir, mode = "dev", port = 0, extraArgs = [], env = {} }) {
    this.dir = dir;
    this.mode = mode;
    this.port = port;
    // A server given its own SQLite file or database keeps it (those tests are about it).
    const ownFile = extraArgs.includes("--data") || extraArgs.includes("--database-url");
    this.extraArgs = POSTGRES && !ownFile ? [...extraArgs, "--database-url", postgresDatabaseFor(dir)] : extraArgs;
    this.env = env;
    this.stdout = "";
    this.stderr = "";
    this.url = null;
  }

  async start(timeout = 30_000) {
    this.stdout = "";
    this.stderr = "";
    this.proc = spawn(BIN, [this.mode, "--dir", this.dir, "--port", String(this.port), ...this.extraArgs], {
      env: { ...process.env, ...this.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.exited = new Promise((r) => this.proc.once("exit", (code, signal) => r({ code, signal })));
    this.proc.stdout.on("data", (d) => (this.stdout += d));
    this.proc.stderr.on("data", (d) => (this.stderr += d));
    const match = await waitFor(() => this.stdout.match(/http:\/\/127\.0\.0\.1:(\d+)/), {
      timeout,
      what: `the ready line of pulsebase (stderr: ${this.stderr.slice(-500)})`,
    }).catch(async (e) => {
      this.proc.kill("SIGKILL");
      throw e;
    });
    this.port = Number(match[1]);
    this.url = `http://127.0.0.1:${this.port}`;
    return this;
  }

  /** Waits until stdout or stderr matches `pattern`. */
  async waitForOutput(pattern, timeout = 10_000) {
    return waitFor(() => (this.stdout + this.stderr).match(pattern), { timeout, what: String(pattern) });
  }

  /** A token from the built-in dev issuer of this server. */
  async token(sub, { name, email, claims, ttl } = {}) {
    const res = await fetch(`${this.url}/dev-issuer/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sub, name, email, claims, ttl }),
    });
    if (!res.ok) throw new Error(`dev issuer refused: ${res.status} ${await res.text()}`);
    return (await res.json()).token;
  }

  /** Runs the pulsebase CLI against this app folder; resolves to {code, stdout, stderr}. */
  cli(args, { timeout = 30_000 } = {}) {
    return runCli([...args, "--dir", this.dir], { timeout });
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill("SIGTERM");
    const done = await Promise.race([this.exited, new Promise((r) => setTimeout(() => r(null), 5_000))]);
    if (!done) {
      this.proc.kill("SIGKILL");
      await this.exited;
    }
  }

  /** Stops and removes the app folder. */
  async dispose() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Copies the example app and starts `pulsebase dev` on it. */
export async function startExample(options = {}) {
  const server = new Server({ dir: options.dir ?? copyExampleApp(), ...options });
  return server.start();
}

/** Runs the binary with `args`; bounded by `timeout`. */
export function runCli(args, { timeout = 30_000, env = {} } = {}) {
  return new Promise((resolvePromise, reject) => {
    const proc = spawn(BIN, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (d) => (stdout += d));
    proc.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`pulsebase ${args.join(" ")} timed out`));
    }, timeout);
    proc.on("exit", (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}
