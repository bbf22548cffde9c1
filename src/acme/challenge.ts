/**
 * The HTTP-01 responder (RFC 8555 §8.3): plain HTTP on acme.http_listen,
 * answering `GET /.well-known/acme-challenge/TOKEN` with the key
 * authorization while an order is pending, 404 for anything else. Bound by
 * the primary while it is still root (port 80) and kept open for renewals.
 * Bounded: few connections, small headers, short timeouts; tokens are
 * base64url (RFC 8555 §8.1), anything else is 404.
 */
import type { Server } from "node:http";
import type { ListenAddress } from "../config/index.ts";
import type { Logger } from "../log/index.ts";

// Not `import http from "node:http"`: an ES module import of node:http reads
// every export, whose lazy getters (WebSocket, MessageEvent...) load undici
// and http2, ~3 MB of heap in every thread that imports this file
// (docs/benchmarks.md, "Resident memory by thread").
const http = process.getBuiltinModule("node:http");

const PREFIX = "/.well-known/acme-challenge/";
const TOKEN = /^[A-Za-z0-9_-]{1,256}$/;
/** Tokens kept at once (an order for a few names has one per name). */
const MAX_TOKENS = 100;

export class ChallengeServer {
  readonly #tokens = new Map<string, string>();
  readonly #servers: Server[] = [];
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  set(token: string, keyAuthorization: string): void {
    if (this.#tokens.size >= MAX_TOKENS) this.#tokens.clear();
    this.#tokens.set(token, keyAuthorization);
  }

  delete(token: string): void {
    this.#tokens.delete(token);
  }

  async listen(addresses: readonly ListenAddress[]): Promise<{ host: string; port: number }[]> {
    const bound: { host: string; port: number }[] = [];
    for (const a of addresses) {
      const server = http.createServer({ maxHeaderSize: 8192, requestTimeout: 10_000, headersTimeout: 10_000 }, (req, res) => {
        const path = (req.url ?? "").split("?")[0] ?? "";
        const token = path.startsWith(PREFIX) ? path.slice(PREFIX.length) : "";
        const answer = TOKEN.test(token) && (req.method === "GET" || req.method === "HEAD") ? this.#tokens.get(token) : undefined;
        if (answer === undefined) {
          res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
          return;
        }
        this.#logger.info({ ip: req.socket.remoteAddress, token }, "acme challenge answered");
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": Buffer.byteLength(answer) }).end(req.method === "HEAD" ? undefined : answer);
      });
      server.maxConnections = 32;
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ host: a.host, port: a.port, exclusive: true }, () => {
          server.removeListener("error", reject);
          resolve();
        });
      });
      server.on("error", (err) => this.#logger.error({ err: err.message }, "acme challenge listener error"));
      this.#servers.push(server);
      const addr = server.address();
      bound.push({ host: a.host, port: typeof addr === "object" && addr !== null ? addr.port : a.port });
    }
    return bound;
  }

  async close(): Promise<void> {
    await Promise.all(
      this.#servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
  }
}
