// A small client of Convex's sync protocol: one WebSocket, authenticated as the admin
// (`Authenticate` with tokenType "Admin"), queries added and removed with `ModifyQuerySet`,
// results from `Transition`s, mutations answered by `MutationResponse`. It reconnects with
// backoff and subscribes its queries again; the server's read-set invalidation keeps every
// subscribed result live, which is what makes the dashboard a reactive client.

import { decode, encode } from "./values.js";

export class SyncClient {
  constructor(adminKey, { onStatus = () => {}, onAuthError = () => {} } = {}) {
    this.adminKey = adminKey;
    this.onStatus = onStatus;
    this.onAuthError = onAuthError;
    this.sessionId = crypto.randomUUID();
    this.nextQueryId = 0;
    this.nextRequestId = 0;
    this.queries = new Map(); // queryId -> {path, args, callback, last}
    this.pending = new Map(); // requestId -> {resolve, reject}
    this.connections = 0;
    this.closed = false;
    this.connect();
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/api/dashboard/sync`;
  }

  connect() {
    const ws = new WebSocket(this.url());
    this.ws = ws;
    this.querySetVersion = 0;
    ws.onopen = () => {
      this.onStatus("live");
      this.send({ type: "Connect", sessionId: this.sessionId, connectionCount: this.connections, lastCloseReason: this.connections ? "Reconnect" : "InitialConnect", clientTs: Date.now() });
      this.connections += 1;
      this.send({ type: "Authenticate", baseVersion: 0, tokenType: "Admin", value: this.adminKey });
      const adds = [...this.queries].map(([queryId, q]) => ({ type: "Add", queryId, udfPath: q.path, args: [encode(q.args)] }));
      this.modify(adds);
    };
    ws.onmessage = (event) => this.receive(JSON.parse(event.data));
    ws.onclose = () => {
      for (const { reject } of this.pending.values()) reject(new Error("the connection to the server closed; retry"));
      this.pending.clear();
      if (this.closed) return;
      this.onStatus("reconnecting");
      setTimeout(() => this.connect(), Math.min(5000, 250 * 2 ** Math.min(this.connections, 4)));
    };
  }

  close() {
    this.closed = true;
    this.ws?.close();
  }

  send(message) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  modify(modifications) {
    const base = this.querySetVersion;
    this.querySetVersion += 1;
    this.send({ type: "ModifyQuerySet", baseVersion: base, newVersion: base + 1, modifications });
  }

  /** Subscribes `callback({value} | {error, errorData})` to `path(args)`; returns an unsubscribe. */
  subscribe(path, args, callback) {
    const queryId = this.nextQueryId++;
    this.queries.set(queryId, { path, args, callback });
    this.modify([{ type: "Add", queryId, udfPath: path, args: [encode(args)] }]);
    return () => {
      if (!this.queries.delete(queryId)) return;
      this.modify([{ type: "Remove", queryId }]);
    };
  }

  /** Runs a mutation; resolves to its value, rejects with an Error carrying `data`. */
  mutation(path, args) {
    const requestId = this.nextRequestId++;
    return new Promise((resolve, reject) => {
      if (this.ws?.readyState !== WebSocket.OPEN) {
        reject(new Error("not connected to the server"));
        return;
      }
      this.pending.set(requestId, { resolve, reject });
      this.send({ type: "Mutation", requestId, udfPath: path, args: [encode(args)] });
    });
  }

  receive(message) {
    switch (message.type) {
      case "Transition":
        for (const m of message.modifications) {
          const q = this.queries.get(m.queryId);
          if (!q) continue;
          if (m.type === "QueryUpdated") q.callback({ value: decode(m.value) });
          else if (m.type === "QueryFailed") q.callback({ error: m.errorMessage, errorData: m.errorData && decode(m.errorData) });
        }
        break;
      case "MutationResponse": {
        const p = this.pending.get(message.requestId);
        if (!p) break;
        this.pending.delete(message.requestId);
        if (message.success) p.resolve(decode(message.result));
        else {
          const error = new Error(message.result);
          error.data = message.errorData && decode(message.errorData);
          p.reject(error);
        }
        break;
      }
      case "AuthError":
        this.onAuthError(message.error);
        break;
      case "FatalError":
        console.error("sync: fatal error from the server:", message.error);
        break;
      default:
        break;
    }
  }
}
