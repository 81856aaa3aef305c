// A small HTTP server on 127.0.0.1 for actions to fetch: fixed routes, a count of requests,
// and requests that hang until the server closes. Started and stopped by each test.

import { createServer } from "node:http";

const BIG = Buffer.alloc(21 * 1024 * 1024, "x");

export class HttpTarget {
  constructor() {
    this.hits = 0;
    this.hanging = 0;
    this.sockets = new Set();
  }

  async start() {
    this.server = createServer((req, res) => this.answer(req, res));
    this.server.on("connection", (socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = this.server.address().port;
    this.base = `http://127.0.0.1:${this.port}`;
    return this;
  }

  url(path) {
    return `${this.base}${path}`;
  }

  answer(req, res) {
    this.hits += 1;
    const path = new URL(req.url, this.base).pathname;
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      switch (path) {
        case "/json":
          res.writeHead(200, { "content-type": "application/json", "x-custom": "yes" });
          res.end(JSON.stringify({ hello: "world", n: 3 }));
          break;
        case "/echo":
          res.writeHead(201, { "content-type": "application/json" });
          res.end(JSON.stringify({ method: req.method, type: req.headers["content-type"] ?? null, body }));
          break;
        case "/page":
          res.writeHead(200, { "content-type": "text/html" });
          res.end("<!doctype html><html><head><TITLE> Hello from the target </title></head><body>hi</body></html>");
          break;
        case "/missing":
          res.writeHead(404, { "content-type": "text/plain" });
          res.end("not here");
          break;
        case "/big":
          res.writeHead(200, { "content-type": "application/octet-stream" });
          res.end(BIG);
          break;
        case "/redirect-private":
          res.writeHead(302, { location: `http://127.0.0.2:${this.port}/json` });
          res.end();
          break;
        case "/redirect-json":
          res.writeHead(302, { location: "/json" });
          res.end();
          break;
        case "/hang":
          // Never answers; the socket closes when the action gives up or the target stops.
          this.hanging += 1;
          req.socket.on("close", () => (this.hanging -= 1));
          break;
        default:
          res.writeHead(404);
          res.end();
      }
    });
  }

  async stop() {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
