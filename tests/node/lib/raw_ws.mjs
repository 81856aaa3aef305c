// A raw sync-protocol WebSocket for tests that need to see or send individual frames.

import WebSocket from "ws";
import { waitFor } from "./server.mjs";

export const ZERO_TS = "AAAAAAAAAAA=";

/** Decodes a u64b64 timestamp (8 little-endian bytes, base64) to a BigInt. */
export function decodeTs(b64) {
  const bytes = Buffer.from(b64, "base64");
  if (bytes.length !== 8) throw new Error(`ts ${b64} is not 8 bytes`);
  return bytes.readBigUInt64LE(0);
}

export class RawSocket {
  /** Opens `ws://…/api/1.48.0/sync` on `serverUrl`; resolves once open. */
  static async open(serverUrl, { timeout = 5_000 } = {}) {
    const s = new RawSocket(serverUrl.replace(/^http/, "ws") + "/api/1.48.0/sync");
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("websocket did not open")), timeout);
      s.ws.once("open", () => {
        clearTimeout(timer);
        resolve();
      });
      s.ws.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    return s;
  }

  constructor(url) {
    this.messages = []; // {at, msg} — parsed JSON, or {raw} when not JSON
    this.closed = null; // {code, reason} once closed
    this.ws = new WebSocket(url);
    this.ws.on("message", (data) => {
      const text = data.toString();
      let msg;
      try {
        msg = JSON.parse(text);
      } catch {
        msg = { raw: text };
      }
      this.messages.push({ at: Date.now(), msg });
    });
    this.ws.on("close", (code, reason) => (this.closed = { code, reason: reason.toString() }));
    this.ws.on("error", () => {});
  }

  send(obj) {
    this.ws.send(typeof obj === "string" ? obj : JSON.stringify(obj));
  }

  /** Resolves with the first message (from index `from`) matching `pred`. */
  async next(pred, { from = 0, timeout = 5_000, what = "a matching message" } = {}) {
    return waitFor(
      () => {
        const hit = this.messages.slice(from).find((e) => pred(e.msg));
        if (hit) return hit.msg;
        if (this.closed) throw new Error(`socket closed (${this.closed.code} ${this.closed.reason}) while waiting for ${what}; got ${JSON.stringify(this.messages.map((e) => e.msg)).slice(0, 1500)}`);
        return null;
      },
      { timeout, what },
    );
  }

  transitions() {
    return this.messages.map((e) => e.msg).filter((msg) => msg.type === "Transition");
  }

  async waitClosed(timeout = 5_000) {
    return waitFor(() => this.closed, { timeout, what: "the socket to close" });
  }

  close() {
    try {
      this.ws.terminate();
    } catch {}
  }
}

/** Asserts-by-exception that every Transition's startVersion equals the previous endVersion. */
export function checkChain(transitions) {
  let prev = { querySet: 0, identity: 0, ts: ZERO_TS };
  for (const [i, t] of transitions.entries()) {
    const s = t.startVersion;
    if (s.querySet !== prev.querySet || s.identity !== prev.identity || s.ts !== prev.ts) {
      throw new Error(`Transition #${i} starts at ${JSON.stringify(s)} but the previous ended at ${JSON.stringify(prev)}`);
    }
    if (decodeTs(t.endVersion.ts) < decodeTs(s.ts)) {
      throw new Error(`Transition #${i} goes back in time: ${JSON.stringify(t.startVersion)} -> ${JSON.stringify(t.endVersion)}`);
    }
    prev = t.endVersion;
  }
  return prev;
}
