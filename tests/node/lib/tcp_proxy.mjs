// A TCP proxy on 127.0.0.1 for tests that move or cut a connection: clients connect to the
// proxy, which forwards to the target port it is given (and can be re-pointed), or refuses
// and drops everything while it is cut.

import { createServer, connect } from "node:net";

export class TcpProxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.cut = false;
    this.pairs = new Set();
  }

  async start() {
    this.server = createServer((client) => {
      if (this.cut) return client.destroy();
      const upstream = connect(this.targetPort, "127.0.0.1");
      const pair = { client, upstream };
      this.pairs.add(pair);
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.pairs.delete(pair);
      };
      client.on("error", end).on("close", end);
      upstream.on("error", end).on("close", end);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise((r) => this.server.listen(0, "127.0.0.1", r));
    this.port = this.server.address().port;
    return this;
  }

  /** New connections go to `port` from now on (open ones stay where they are). */
  pointTo(port) {
    this.targetPort = port;
  }

  /** Drops every open connection. */
  dropAll() {
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  /** Cuts the line: drops every connection and refuses new ones until `restore()`. */
  cutOff() {
    this.cut = true;
    this.dropAll();
  }

  restore() {
    this.cut = false;
  }

  async stop() {
    this.dropAll();
    await new Promise((r) => this.server.close(() => r()));
  }
}
