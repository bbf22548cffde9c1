/**
 * The metrics listener: plain HTTP, `GET /metrics` (and `HEAD`) answers the
 * Prometheus text format; anything else 404 (405 for other methods). Run by
 * the primary; `collect` gathers the samples (its own and every worker's).
 *
 * Bounded: at most MAX_CONNECTIONS connections, requests with a body or
 * headers over 8 KB are refused by Node's parser, and a request gets
 * REQUEST_TIMEOUT_MS in all; a scrape whose collection fails answers 503.
 */
import type { Server, IncomingMessage, ServerResponse } from "node:http";
import type { ListenAddress } from "../config/index.ts";
import type { Logger } from "../log/index.ts";
import { exposition } from "./exposition.ts";
import type { Sample } from "./registry.ts";

// Not `import http from "node:http"`: an ES module import of node:http reads
// every export, whose lazy getters (WebSocket, MessageEvent...) load undici
// and http2, ~3 MB of heap in every thread that imports this file
// (docs/benchmarks.md, "Resident memory by thread").
const http = process.getBuiltinModule("node:http");

const MAX_CONNECTIONS = 16;
const REQUEST_TIMEOUT_MS = 10_000;
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export interface MetricsServerOptions {
  readonly listen: readonly ListenAddress[];
  readonly collect: () => Promise<readonly Sample[]>;
  readonly logger: Logger;
}

export class MetricsServer {
  readonly #servers: Server[] = [];
  readonly #opts: MetricsServerOptions;

  constructor(opts: MetricsServerOptions) {
    this.#opts = opts;
  }

  /** Binds every address; resolves with the bound ports (in order). */
  async listen(): Promise<{ host: string; port: number }[]> {
    const bound: { host: string; port: number }[] = [];
    for (const a of this.#opts.listen) {
      const server = http.createServer({ maxHeaderSize: 8192, requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS }, (req, res) => void this.#handle(req, res));
      server.maxConnections = MAX_CONNECTIONS;
      server.keepAliveTimeout = 5000;
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ host: a.host, port: a.port, exclusive: true }, () => {
          server.removeListener("error", reject);
          resolve();
        });
      });
      server.on("error", (err) => this.#opts.logger.error({ err: err.message }, "metrics listener error"));
      this.#servers.push(server);
      const addr = server.address();
      bound.push({ host: a.host, port: typeof addr === "object" && addr !== null ? addr.port : a.port });
    }
    return bound;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "").split("?")[0];
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: try /metrics\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("method not allowed\n");
      return;
    }
    let body: string;
    try {
      body = exposition(await this.#opts.collect());
    } catch (err) {
      this.#opts.logger.error({ err: err instanceof Error ? err.message : String(err) }, "metrics collection failed");
      res.writeHead(503, { "content-type": "text/plain" }).end("metrics unavailable\n");
      return;
    }
    res.writeHead(200, { "content-type": CONTENT_TYPE, "content-length": Buffer.byteLength(body) });
    res.end(req.method === "HEAD" ? undefined : body);
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
