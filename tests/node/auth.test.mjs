// Issue 3 through the real binary: tokens minted here with jose and keys generated here,
// served from a local JWKS / OpenID discovery server on 127.0.0.1; the example app's
// functions with an auth.config.toml written by the test.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConvexHttpClient } from "convex/browser";
import { RawSocket } from "./lib/raw_ws.mjs";

import { Server, copyExampleApp, runCli, waitFor } from "./lib/server.mjs";
import { q, m, rejection, sleep } from "./lib/app.mjs";
import { makeKey, mint, unsignedToken, hs256WithPublicKey, tamper, startIdp, now } from "./lib/idp.mjs";
import { createRemoteJWKSet, decodeJwt, jwtVerify } from "jose";

/** auth.config.toml text: an OIDC provider at the IdP and, optionally, customJwt providers. */
function authConfig(idp, { oidc = true, custom = [] } = {}) {
  let text = "# written by auth.test.mjs\n";
  if (oidc) text += `[[providers]]\ndomain = "${idp.url}"\napplicationID = "convex"\n\n`;
  for (const c of custom) {
    text += `[[providers]]\ntype = "customJwt"\nissuer = "${idp.url}${c}"\njwks = "${idp.url}${c}/jwks.json"\nalgorithm = "ES256"\n\n`;
  }
  return text;
}

/** POST /api/query with an optional bearer token; resolves to {status, body}. */
async function rawQuery(server, path, token) {
  const headers = { "content-type": "application/json" };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${server.url}/api/query`, {
    method: "POST",
    headers,
    body: JSON.stringify({ path, format: "convex_encoded_json", args: [{}] }),
  });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body };
}

/** The identity `users:getCurrentUser` sees with `token`, or throws with the refusal. */
async function identityOf(server, token) {
  const client = new ConvexHttpClient(server.url);
  client.setAuth(token);
  return client.query(q("users:getCurrentUser"), {});
}

/** Whether the server accepts `token` (HTTP 200 with a non-null identity). */
async function accepted(server, token) {
  const r = await rawQuery(server, "users:getCurrentUser", token);
  return r.status === 200 && r.body?.status === "success" && r.body.value !== null;
}

describe("token validation through the HTTP API", () => {
  let idp;
  let server;
  let rsa; // OIDC key, kid k1
  let ec; // customJwt key
  let ISS;
  let CUSTOM_ISS;

  before(async () => {
    idp = await startIdp();
    rsa = await makeKey("RS256", "k1");
    ec = await makeKey("ES256", "ec1");
    idp.oidcKeys = [rsa];
    idp.customKeys = [ec];
    ISS = idp.url;
    CUSTOM_ISS = `${idp.url}/custom`;
    const dir = copyExampleApp();
    writeFileSync(join(dir, "auth.config.toml"), authConfig(idp, { custom: ["/custom"] }));
    server = await new Server({ dir }).start();
  });

  after(async () => {
    await server?.dispose();
    await idp?.close();
  });

  const good = (extra = {}) => ({ iss: ISS, sub: "user_rs", aud: "convex", ...extra });

  test("a valid RS256 token from an OIDC provider yields Convex's UserIdentity with camelCase claims and custom claims", async () => {
    const token = await mint(rsa, {
      ...good(),
      name: "Ada Lovelace",
      email: "ada@example.com",
      email_verified: true,
      picture: "https://img.example/ada.png",
      given_name: "Ada",
      family_name: "Lovelace",
      preferred_username: "ada",
      role: "admin",
      public_metadata: { role: "editor", plan: "pro" },
    });
    const id = await identityOf(server, token);
    assert.equal(id.subject, "user_rs");
    assert.equal(id.issuer, ISS);
    assert.equal(id.tokenIdentifier, `${ISS}|user_rs`);
    assert.equal(id.name, "Ada Lovelace");
    assert.equal(id.email, "ada@example.com");
    assert.equal(id.emailVerified, true);
    assert.equal(id.pictureUrl, "https://img.example/ada.png");
    assert.equal(id.givenName, "Ada");
    assert.equal(id.familyName, "Lovelace");
    assert.equal(id.preferredUsername, "ada");
    assert.equal(id.role, "admin");
    assert.equal(id.public_metadata?.role, "editor");
    assert.equal(id.public_metadata?.plan, "pro");
    for (const dropped of ["exp", "iat", "aud", "iss", "sub", "picture", "email_verified"]) {
      assert.equal(id[dropped], undefined, `${dropped} is not part of the identity`);
    }
  });

  test("a valid ES256 token from a customJwt provider is accepted with its claims as-is and nested ones flattened", async () => {
    const token = await mint(ec, { iss: CUSTOM_ISS, sub: "user_ec", role: "viewer", public_metadata: { role: "owner" } });
    const id = await identityOf(server, token);
    assert.equal(id.subject, "user_ec");
    assert.equal(id.issuer, CUSTOM_ISS);
    assert.equal(id.tokenIdentifier, `${CUSTOM_ISS}|user_ec`);
    assert.equal(id.role, "viewer");
    assert.equal(id["public_metadata.role"], "owner");
  });

  test("refused tokens get HTTP 401 with a Convex error body and never an identity", async () => {
    const t = now();
    const other = await makeKey("RS256", "k1"); // same kid, different key
    const valid = await mint(rsa, good());
    const cases = {
      expired: await mint(rsa, good({ iat: t - 600, exp: t - 120 })),
      "not yet valid": await mint(rsa, good({ nbf: t + 600 })),
      "wrong issuer": await mint(rsa, good({ iss: `${ISS}/evil` })),
      "wrong audience": await mint(rsa, good({ aud: "other" })),
      "tampered payload": tamper(valid, { sub: "someone_else" }),
      "signed by another key under the same kid": await mint(other, good()),
      "alg none": unsignedToken("k1", good()),
      "HS256 keyed with the RSA public key": hs256WithPublicKey(rsa, good()),
      "missing exp": await mint(rsa, good({ exp: undefined })),
      "ES256 token under the RS256 OIDC issuer": await mint(ec, good()),
      "customJwt token with the wrong algorithm (HS256)": hs256WithPublicKey({ ...ec, kid: "ec1" }, { iss: CUSTOM_ISS, sub: "x" }),
      "not a JWT": "definitely-not-a-jwt",
    };
    const problems = [];
    for (const [name, token] of Object.entries(cases)) {
      const r = await rawQuery(server, "users:getCurrentUser", token);
      if (r.status !== 401) problems.push(`${name}: status ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
      else if (typeof r.body?.code !== "string" || typeof r.body?.message !== "string") {
        problems.push(`${name}: 401 body is not {code, message}: ${JSON.stringify(r.body).slice(0, 200)}`);
      }
    }
    assert.deepEqual(problems, []);
    // The token itself never appears in the server's output.
    for (const token of Object.values(cases)) {
      if (token.length > 40) assert.ok(!(server.stdout + server.stderr).includes(token), "the server logged a token");
    }
    // ConvexHttpClient surfaces the 401 as an Error carrying the JSON body.
    const err = await rejection(identityOf(server, cases.expired));
    assert.match(err.message, /"code"/);
    assert.match(err.message, /Could not verify|Unauthenticated/);
    // And a valid one still works afterwards.
    assert.equal((await identityOf(server, valid)).subject, "user_rs");
  });

  test("a 1 MiB token is refused without yielding an identity and the server keeps serving", async () => {
    const huge = await mint(rsa, good({ pad: "x".repeat(1 << 20) }));
    assert.ok(huge.length > 1 << 20);
    const r = await rawQuery(server, "users:getCurrentUser", huge).catch((e) => ({ status: "network error", body: String(e) }));
    assert.notEqual(r.status, 200, `a 1 MiB token was answered 200: ${JSON.stringify(r.body).slice(0, 200)}`);
    assert.ok(r.status === 401 || r.status === 431 || r.status === 400 || r.status === 413, `unexpected answer ${r.status}`);
    assert.equal((await identityOf(server, await mint(rsa, good()))).subject, "user_rs");
  });

  test("HTTP API callers as two users each see only their own todos", async () => {
    const alice = new ConvexHttpClient(server.url);
    alice.setAuth(await mint(rsa, good({ sub: "alice" })));
    const bob = new ConvexHttpClient(server.url);
    bob.setAuth(await mint(rsa, good({ sub: "bob" })));
    await alice.mutation(m("todos:addTodo"), { text: "alice 1" });
    await alice.mutation(m("todos:addTodo"), { text: "alice 2" });
    const bobTodo = await bob.mutation(m("todos:addTodo"), { text: "bob 1" });
    const a = await alice.query(q("todos:getMyTodos"), {});
    const b = await bob.query(q("todos:getMyTodos"), {});
    assert.deepEqual(a.map((t) => t.text).sort(), ["alice 1", "alice 2"]);
    assert.deepEqual(b.map((t) => t.text), ["bob 1"]);
    assert.ok(a.every((t) => t.userId === "alice"));
    // Alice cannot toggle Bob's todo.
    const err = await rejection(alice.mutation(m("todos:toggle"), { id: bobTodo }));
    assert.match(err.message, /Unauthorized/);
    // storeUser upserts by tokenIdentifier.
    const u1 = await alice.mutation(m("users:storeUser"), {});
    const u2 = await alice.mutation(m("users:storeUser"), {});
    assert.equal(u1, u2);
    assert.notEqual(await bob.mutation(m("users:storeUser"), {}), u1);
  });

  test("a token with an unknown kid is refused, then accepted once the JWKS publishes the new key; bogus kids do not hammer the issuer", async () => {
    const rotated = await makeKey("RS256", "k2");
    const token = await mint(rotated, good({ sub: "rotated" }));
    assert.equal(await accepted(server, token), false, "a kid the issuer does not publish must be refused");
    idp.oidcKeys = [rsa, rotated];
    // The server refetches on an unknown kid at most once per 10 s per provider.
    const started = Date.now();
    await waitFor(() => accepted(server, token), { timeout: 25_000, every: 500, what: "the rotated key to be accepted" });
    assert.ok(Date.now() - started < 21_000);
    assert.equal((await identityOf(server, token)).subject, "rotated");

    // A flood of unknown kids causes at most one refetch.
    const before = idp.hits["/jwks.json"] ?? 0;
    const bogus = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => mint(await makeKey("RS256", `bogus-${i}`), good())),
    );
    for (const t of bogus) assert.equal(await accepted(server, t), false);
    const fetched = (idp.hits["/jwks.json"] ?? 0) - before;
    assert.ok(fetched <= 1, `20 tokens with unknown kids caused ${fetched} JWKS fetches`);
  });
});

describe("pulsebase auth check and pulsebase token", () => {
  let idp;
  let server;
  let rsa;
  let ISS;

  before(async () => {
    idp = await startIdp();
    rsa = await makeKey("RS256", "k1");
    idp.oidcKeys = [rsa];
    ISS = idp.url;
    const dir = copyExampleApp();
    writeFileSync(join(dir, "auth.config.toml"), authConfig(idp));
    server = await new Server({ dir }).start();
  });

  after(async () => {
    await server?.dispose();
    await idp?.close();
  });

  const good = (extra = {}) => ({ iss: ISS, sub: "user_cli", aud: "convex", ...extra });

  test("auth check accepts a valid token and exits 0", async () => {
    const r = await server.cli(["auth", "check", await mint(rsa, good())]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /user_cli/);
  });

  test("auth check names the precise reason for each bad token and exits non-zero", async () => {
    const t = now();
    const valid = await mint(rsa, good());
    const cases = [
      ["issuer mismatch", await mint(rsa, good({ iss: "http://127.0.0.1:1/wrong" })), [/issuer/i, /http:\/\/127\.0\.0\.1:1\/wrong/, new RegExp(ISS.replace(/[.]/g, "\\."))]],
      ["audience", await mint(rsa, good({ aud: "other" })), [/audience/i, /other/, /`?convex`? JWT template/]],
      ["unknown kid", await mint(await makeKey("RS256", "nope-kid"), good()), [/kid/i, /nope-kid/]],
      ["bad signature", tamper(valid, { sub: "mallory" }), [/signature/i]],
      ["expired", await mint(rsa, good({ iat: t - 4000, exp: t - 3600 })), [/expired/i, /(1 h|60 min|3600 s|hour)/]],
      ["not yet valid", await mint(rsa, good({ nbf: t + 3600 })), [/not (yet )?valid( yet)?/i]],
      ["alg none", unsignedToken("k1", good()), [/algorithm/i, /none/]],
      ["HS256", hs256WithPublicKey(rsa, good()), [/algorithm/i, /HS256/]],
      ["missing exp", await mint(rsa, good({ exp: undefined })), [/\bexp\b/]],
    ];
    const problems = [];
    for (const [name, token, patterns] of cases) {
      const r = await server.cli(["auth", "check", token]);
      const out = r.stdout + r.stderr;
      if (r.code === 0) problems.push(`${name}: exited 0`);
      for (const p of patterns) if (!p.test(out)) problems.push(`${name}: output lacks ${p}:\n${out}`);
    }
    assert.deepEqual(problems, []);
  });

  test("reading auth.config.toml without changing it (as `auth check` does) causes no reload loop and no JWKS refetching", async () => {
    // Warm the key cache.
    assert.equal(await accepted(server, await mint(rsa, good({ sub: "warm" }))), true);
    const syncs = () => ((server.stdout + server.stderr).match(/auth\.config\.toml synced/g) || []).length;
    const before = syncs();
    const check = await server.cli(["auth", "check", await mint(rsa, good())]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    await sleep(1_500);
    const reloads = syncs() - before;
    const fetchesBefore = (idp.hits["/jwks.json"] ?? 0) + (idp.hits["/.well-known/openid-configuration"] ?? 0);
    for (let i = 0; i < 10; i++) {
      assert.equal(await accepted(server, await mint(rsa, good({ sub: `reader_${i}` }))), true);
      await sleep(50);
    }
    const fetches = (idp.hits["/jwks.json"] ?? 0) + (idp.hits["/.well-known/openid-configuration"] ?? 0) - fetchesBefore;
    assert.ok(reloads <= 1, `an unchanged auth.config.toml was reloaded ${reloads} times in 1.5 s after being read`);
    assert.ok(fetches <= 2, `10 validations with a warm key cache fetched discovery/JWKS ${fetches} times`);
  });

  test("tokens printed by `pulsebase token` are accepted by the running `pulsebase dev`", async () => {
    const r = await server.cli(["token", "--sub", "cli_user", "--name", "Cli User", "--email", "cli@example.com", "--claims", '{"role":"admin"}', "--ttl", "120"]);
    assert.equal(r.code, 0, r.stderr);
    const token = r.stdout.trim();
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    const id = await identityOf(server, token);
    assert.equal(id.subject, "cli_user");
    assert.equal(id.name, "Cli User");
    assert.equal(id.email, "cli@example.com");
    assert.equal(id.role, "admin");
    assert.equal(id.issuer, `${server.url}/dev-issuer`);
    assert.equal(id.tokenIdentifier, `${server.url}/dev-issuer|cli_user`);
    // And `auth check` agrees.
    const check = await server.cli(["auth", "check", token]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
  });
});

describe("auth.config.toml hot reload", () => {
  let idp;
  let server;
  let rsa;
  let ec;
  let configPath;

  before(async () => {
    idp = await startIdp();
    rsa = await makeKey("RS256", "k1");
    ec = await makeKey("ES256", "hot1");
    idp.oidcKeys = [rsa];
    idp.customKeys = [ec];
    const dir = copyExampleApp();
    configPath = join(dir, "auth.config.toml");
    writeFileSync(configPath, authConfig(idp));
    server = await new Server({ dir }).start();
  });

  after(async () => {
    await server?.dispose();
    await idp?.close();
  });

  test("adding a customJwt provider is honoured without restart, a broken edit keeps the previous config, removing it stops its tokens", async () => {
    const oidcToken = await mint(rsa, { iss: idp.url, sub: "oidc_user", aud: "convex" });
    const hotToken = await mint(ec, { iss: `${idp.url}/hot`, sub: "hot_user" });
    assert.equal(await accepted(server, oidcToken), true);
    assert.equal(await accepted(server, hotToken), false, "no provider for the hot issuer yet");

    // 1. Add the provider: it must take effect within a second of the write, measured from
    // just before the write to the first accepted request (polled every 20 ms, bounded).
    const t0 = Date.now();
    writeFileSync(configPath, authConfig(idp, { custom: ["/hot"] }));
    await waitFor(() => accepted(server, hotToken), { timeout: 1_000, every: 20, what: "the new customJwt provider to be honoured within 1 s" });
    const reloadMs = Date.now() - t0;
    assert.ok(reloadMs < 1_000, `the new provider took ${reloadMs} ms to be honoured`);
    assert.equal((await identityOf(server, hotToken)).subject, "hot_user");

    // 2. Broken TOML: reported, previous config keeps serving.
    let mark = (server.stdout + server.stderr).length;
    writeFileSync(configPath, `[[providers]\ndomain = "${idp.url}"\n`);
    await waitFor(() => /auth\.config\.toml/.test((server.stdout + server.stderr).slice(mark)), {
      timeout: 5_000,
      what: "the server to report the broken auth.config.toml",
    });
    await sleep(300);
    assert.equal(await accepted(server, hotToken), true, "the previous config (with the customJwt provider) keeps working");
    assert.equal(await accepted(server, oidcToken), true);

    // 3. Unknown key: reported with the key's name, previous config keeps serving.
    mark = (server.stdout + server.stderr).length;
    writeFileSync(configPath, authConfig(idp, { custom: [] }) + `[[providers]]\ntype = "customJwt"\nissuer = "${idp.url}/x"\njwks = "${idp.url}/x/jwks.json"\nalgorithm = "ES256"\nbogusKey = 1\n`);
    await waitFor(() => /bogusKey/.test((server.stdout + server.stderr).slice(mark)), {
      timeout: 5_000,
      what: "the server to report the unknown key bogusKey",
    });
    await sleep(300);
    assert.equal(await accepted(server, hotToken), true, "an invalid config must not replace the last good one");

    // A live WebSocket session signed in through the customJwt provider.
    const ws = await RawSocket.open(server.url);
    ws.send({ type: "Authenticate", baseVersion: 0, tokenType: "User", value: hotToken });
    ws.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [{ type: "Add", queryId: 0, udfPath: "users:getCurrentUser", args: [{}] }] });
    const t = await ws.next((msg) => msg.type === "Transition" && msg.endVersion.querySet === 1, { what: "the session's first result" });
    assert.equal(t.endVersion.identity, 1);
    assert.equal(t.modifications[0].value?.subject, "hot_user");

    // 4. Remove the customJwt provider: the same token stops being accepted.
    writeFileSync(configPath, authConfig(idp));
    await waitFor(async () => !(await accepted(server, hotToken)), {
      timeout: 5_000,
      every: 100,
      what: "the removed provider's token to be refused",
    });
    assert.equal(await accepted(server, oidcToken), true, "the remaining provider still works");
    // The live session signed in through it is told and closed (as on expiry).
    const revoked = await ws.next((msg) => msg.type === "AuthError", { what: "the AuthError of the removed provider's session" });
    assert.equal(revoked.authUpdateAttempted, false);
    await ws.waitClosed();
    // Re-sending the token on a new socket (what a client's reconnect does) is refused.
    const again = await RawSocket.open(server.url);
    again.send({ type: "Authenticate", baseVersion: 0, tokenType: "User", value: hotToken });
    const answer = await again.next((msg) => msg.type === "AuthError" || msg.type === "Transition", { what: "the answer to the re-sent token" });
    again.close();
    assert.equal(answer.type, "AuthError", `a removed provider's token was accepted again: ${JSON.stringify(answer).slice(0, 300)}`);
  });
});

describe("pulsebase serve: ${VAR} from .env.local, hot reload, no dev issuer", () => {
  let idp;
  let server;
  let rsa;
  let dir;

  before(async () => {
    idp = await startIdp();
    rsa = await makeKey("RS256", "k1");
    idp.oidcKeys = [rsa];
    dir = copyExampleApp();
    writeFileSync(join(dir, "auth.config.toml"), `[[providers]]\ndomain = "\${E2E_ISSUER}"\napplicationID = "convex"\n`);
    writeFileSync(join(dir, ".env.local"), `E2E_ISSUER=${idp.url}\n`);
    server = await new Server({ dir, mode: "serve" }).start();
  });

  after(async () => {
    await server?.dispose();
    await idp?.close();
  });

  test("a provider whose domain comes from .env.local accepts its tokens; dev-issuer tokens are refused under serve", async () => {
    const token = await mint(rsa, { iss: idp.url, sub: "serve_user", aud: "convex" });
    assert.equal((await identityOf(server, token)).subject, "serve_user");
    const dev = await server.cli(["token", "--sub", "dev_user"]);
    assert.equal(dev.code, 0, dev.stderr);
    const r = await rawQuery(server, "users:getCurrentUser", dev.stdout.trim());
    assert.equal(r.status, 401, `serve accepted a dev-issuer token: ${JSON.stringify(r.body)}`);
    assert.equal((await fetch(`${server.url}/dev-issuer/.well-known/openid-configuration`)).status, 404);
  });

  test("editing .env.local is hot-reloaded under serve; a missing variable is reported with file and line and the previous providers stay", async () => {
    const token = await mint(rsa, { iss: idp.url, sub: "serve_user", aud: "convex" });
    let mark = (server.stdout + server.stderr).length;
    writeFileSync(join(dir, ".env.local"), "# E2E_ISSUER removed\n");
    await waitFor(() => /auth\.config\.toml:2:\d+.*E2E_ISSUER/.test((server.stdout + server.stderr).slice(mark)), {
      timeout: 5_000,
      what: "a report naming auth.config.toml:2 and E2E_ISSUER",
    });
    assert.equal(await accepted(server, token), true, "the previous providers stay after a broken reload");

    writeFileSync(join(dir, ".env.local"), `E2E_ISSUER=${idp.url}/moved\n`);
    await waitFor(async () => !(await accepted(server, token)), { timeout: 5_000, every: 100, what: "the old issuer to stop being trusted" });
    const moved = await mint(rsa, { iss: `${idp.url}/moved`, sub: "moved_user", aud: "convex" });
    const r = await rawQuery(server, "users:getCurrentUser", moved);
    // The moved issuer has no discovery document, so its tokens cannot be verified either.
    assert.equal(r.status, 401);
  });
});

describe("offline dev tokens, rejection logs and the dev issuer as an OIDC client sees it", () => {
  let idp;
  let server;
  let rsa;
  let offline; // minted by `pulsebase token` before any server ran

  before(async () => {
    idp = await startIdp();
    rsa = await makeKey("RS256", "k1");
    idp.oidcKeys = [rsa];
    const dir = copyExampleApp();
    writeFileSync(join(dir, "auth.config.toml"), authConfig(idp));
    // No server is running from `dir` yet: the token's iss falls back to the default port.
    const r = await runCli(["token", "--dir", dir, "--sub", "offline_user", "--name", "Off Line"]);
    assert.equal(r.code, 0, r.stderr);
    offline = r.stdout.trim();
    server = await new Server({ dir }).start();
  });

  after(async () => {
    await server?.dispose();
    await idp?.close();
  });

  /** The server's log so far, without colour codes. */
  const log = () => (server.stdout + server.stderr).replace(/\x1b\[[0-9;]*m/g, "");

  test("a token minted with no server running is accepted by `pulsebase dev --port 0`", async () => {
    assert.equal(decodeJwt(offline).iss, "http://127.0.0.1:3210/dev-issuer");
    assert.notEqual(server.port, 3210, "the server should be on a port picked by --port 0");
    const id = await identityOf(server, offline);
    assert.equal(id.subject, "offline_user");
    assert.equal(id.name, "Off Line");
    assert.equal(id.tokenIdentifier, "http://127.0.0.1:3210/dev-issuer|offline_user");
    // Over the WebSocket too, and `auth check` agrees.
    const ws = await RawSocket.open(server.url);
    ws.send({ type: "Authenticate", baseVersion: 0, tokenType: "User", value: offline });
    ws.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [{ type: "Add", queryId: 0, udfPath: "users:getCurrentUser", args: [{}] }] });
    const t = await ws.next((msg) => msg.type === "Transition" && msg.endVersion.querySet === 1, { what: "the offline user's first result" });
    ws.close();
    assert.equal(t.modifications[0].value?.subject, "offline_user");
    const check = await server.cli(["auth", "check", offline]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
  });

  test("the server logs why it refused a token, and never the token", async () => {
    const t = now();
    const cases = [
      ["expired", await mint(rsa, { iss: idp.url, sub: "late", aud: "convex", iat: t - 600, exp: t - 120 }), /token rejected.*the token expired (2 min|1[2-9]\d s) ago/],
      ["issuer mismatch", await mint(rsa, { iss: `${idp.url}/evil`, sub: "evil", aud: "convex" }), /token rejected.*no auth provider matches iss "[^"]*\/evil".*issuer mismatch/s],
      ["absurd exp", await mint(rsa, { iss: idp.url, sub: "forever", aud: "convex", exp: 1.8e19 }), /token rejected.*`exp` claim is invalid: must be seconds since 1970 up to the year 9999/],
    ];
    for (const [name, token, reason] of cases) {
      const mark = log().length;
      const r = await rawQuery(server, "users:getCurrentUser", token);
      assert.equal(r.status, 401, `${name}: ${JSON.stringify(r.body).slice(0, 200)}`);
      await waitFor(() => reason.test(log().slice(mark)), { timeout: 2_000, every: 20, what: `the log to explain the ${name} refusal` });
      const [, payload, signature] = token.split(".");
      for (const part of [token, payload, signature]) {
        assert.ok(!log().includes(part), `${name}: the server logged (part of) the token`);
      }
    }
  });

  test("the dev issuer's discovery document and JWKS work for a standard OIDC client", async () => {
    const token = await server.token("oidc_client", { name: "Oidc Client" });
    const { iss } = decodeJwt(token);
    assert.equal(iss, `${server.url}/dev-issuer`);
    // A client derives the discovery URL from iss alone, as OIDC Discovery §4 says.
    const res = await fetch(`${iss}/.well-known/openid-configuration`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    const doc = await res.json();
    assert.equal(doc.issuer, iss, "the discovery issuer must equal the token's iss byte for byte");
    assert.ok(doc.id_token_signing_alg_values_supported.includes("RS256"));
    const jwksRes = await fetch(doc.jwks_uri);
    assert.equal(jwksRes.status, 200);
    const jwks = await jwksRes.json();
    assert.ok(jwks.keys.length >= 1 && jwks.keys.every((k) => k.kty === "RSA" && !("d" in k)), "public keys only");
    const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(doc.jwks_uri)), {
      issuer: doc.issuer,
      audience: "convex",
      algorithms: doc.id_token_signing_alg_values_supported,
    });
    assert.equal(payload.sub, "oidc_client");
    assert.equal(payload.name, "Oidc Client");
    assert.ok(jwks.keys.some((k) => k.kid === protectedHeader.kid));
    // `pulsebase token` with the server running mints the same discoverable iss.
    const cli = await server.cli(["token", "--sub", "cli_oidc"]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(decodeJwt(cli.stdout.trim()).iss, doc.issuer);
  });
});
