// A local identity provider for tests: keys generated here, served as a JWKS and an OpenID
// discovery document over node:http on 127.0.0.1, tokens minted with jose.

import { createServer } from "node:http";
import { createHmac } from "node:crypto";
import { SignJWT, exportJWK, exportSPKI, generateKeyPair } from "jose";

/** Generates a key pair for `alg` ("RS256" or "ES256") with `kid`. */
export async function makeKey(alg, kid) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, modulusLength: 2048 });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { alg, kid, publicKey, privateKey, jwk, spki: await exportSPKI(publicKey) };
}

const now = () => Math.floor(Date.now() / 1000);
const b64u = (obj) => Buffer.from(typeof obj === "string" ? obj : JSON.stringify(obj)).toString("base64url");

/**
 * Signs `claims` with `key`. Defaults: iat = now, exp = now + 600 unless `claims` sets them
 * (`exp: undefined` leaves exp out).
 */
export async function mint(key, claims, { header = {} } = {}) {
  const body = { iat: now(), exp: now() + 600, ...claims };
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  return new SignJWT(body).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "JWT", ...header }).sign(key.privateKey);
}

/** A token with `alg: none` and no signature. */
export function unsignedToken(kid, claims) {
  return `${b64u({ alg: "none", kid, typ: "JWT" })}.${b64u({ iat: now(), exp: now() + 600, ...claims })}.`;
}

/** HS256 keyed with the RSA public key's PEM text: the classic algorithm-confusion attack. */
export function hs256WithPublicKey(rsaKey, claims) {
  const head = b64u({ alg: "HS256", kid: rsaKey.kid, typ: "JWT" });
  const body = b64u({ iat: now(), exp: now() + 600, ...claims });
  const sig = createHmac("sha256", rsaKey.spki).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/** The same token with its payload changed and the original signature kept. */
export function tamper(token, change) {
  const [h, p, s] = token.split(".");
  const payload = JSON.parse(Buffer.from(p, "base64url").toString());
  return `${h}.${b64u({ ...payload, ...change })}.${s}`;
}

export { now };

/**
 * Serves, on 127.0.0.1:
 *   /.well-known/openid-configuration  (issuer = base URL, jwks_uri = /jwks.json)
 *   /jwks.json                          (the keys in `oidcKeys`, mutable)
 *   /<anything>/jwks.json               (the keys in `customKeys`, mutable)
 * and counts requests per path.
 */
export async function startIdp() {
  const idp = {
    oidcKeys: [],
    customKeys: [],
    hits: {},
    url: null,
  };
  const server = createServer((req, res) => {
    idp.hits[req.url] = (idp.hits[req.url] ?? 0) + 1;
    const send = (obj) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(obj));
    };
    if (req.url === "/.well-known/openid-configuration") {
      return send({
        issuer: idp.url,
        jwks_uri: `${idp.url}/jwks.json`,
        id_token_signing_alg_values_supported: ["RS256", "ES256"],
        response_types_supported: ["id_token"],
        subject_types_supported: ["public"],
      });
    }
    if (req.url === "/jwks.json") return send({ keys: idp.oidcKeys.map((k) => k.jwk) });
    if (req.url.endsWith("/jwks.json")) {
      return send({ keys: idp.customKeys.map((k) => k.jwk) });
    }
    res.writeHead(404).end();
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  idp.url = `http://127.0.0.1:${server.address().port}`;
  idp.close = () =>
    new Promise((r) => {
      server.closeAllConnections?.();
      server.close(() => r());
    });
  return idp;
}
