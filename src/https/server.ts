/**
 * The HTTPS listener (https.listen), run by the primary: the MTA-STS policy
 * (RFC 8461) on mta-sts.DOMAIN, Thunderbird autoconfig on autoconfig.DOMAIN
 * (and DOMAIN itself), Outlook Autodiscover on autodiscover.DOMAIN — for
 * each local domain. Everything else is 404; no files, no listings.
 *
 * Bounded: MAX_CONNECTIONS connections, headers under 8 KiB and at most
 * MAX_HEADERS of them, REQUEST_TIMEOUT_MS for a whole request, request
 * bodies only on the Autodiscover POST and at most MAX_BODY bytes; TLS 1.2
 * or later with the server's certificates (SNI, reloaded with them).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import https from "node:https";
import type { SecureContextOptions, TlsOptions } from "node:tls";
import type { ListenAddress } from "../config/index.ts";
import type { Logger } from "../log/index.ts";
import { autoconfigXml, autodiscoverAddress, autodiscoverXml, plainAddress, type MailSettings } from "./autoconfig.ts";
import { stsPolicyText, type StsPolicyOptions } from "./policy.ts";

export const MAX_CONNECTIONS = 64;
export const MAX_HEADERS = 32;
export const MAX_BODY = 8192;
export const REQUEST_TIMEOUT_MS = 10_000;

const STS_PATH = "/.well-known/mta-sts.txt";
const AUTOCONFIG_PATHS = new Set(["/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml"]);
const AUTODISCOVER_PATHS = new Set(["/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"]);

/** Sent with every answer. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "strict-transport-security": "max-age=31536000",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

export interface HttpsServerOptions {
  readonly listen: readonly ListenAddress[];
  /** Certificates and SNI (TlsManager.serverOptions()). */
  readonly tls: TlsOptions & SecureContextOptions;
  /** Called with each bound server so certificate reloads reach it (TlsManager.attach). */
  readonly attach?: (server: https.Server) => void;
  readonly localDomains: readonly string[];
  readonly sts: StsPolicyOptions;
  readonly mail: MailSettings;
  readonly logger: Logger;
}

/** The Host header's name: lower case, no port, no final dot; undefined when malformed. */
export function requestHost(host: string | undefined): string | undefined {
  if (host === undefined || host.length > 260) return undefined;
  const m = /^([A-Za-z0-9.-]{1,253})(?::\d{1,5})?$/.exec(host);
  return m?.[1]?.toLowerCase().replace(/\.$/, "");
}

export class HttpsServer {
  readonly #servers: https.Server[] = [];
  readonly #opts: HttpsServerOptions;
  readonly #domains: ReadonlySet<string>;
  readonly #policy: string;

  constructor(opts: HttpsServerOptions) {
    this.#opts = opts;
    this.#domains = new Set(opts.localDomains.map((d) => d.toLowerCase()));
    this.#policy = stsPolicyText(opts.sts);
  }

  /** Binds every address; resolves with the bound ports (in order). */
  async listen(): Promise<{ host: string; port: number }[]> {
    const bound: { host: string; port: number }[] = [];
    for (const a of this.#opts.listen) {
      const server = https.createServer(
        {
          ...this.#opts.tls,
          minVersion: this.#opts.tls.minVersion === "TLSv1.3" ? "TLSv1.3" : "TLSv1.2",
          maxHeaderSize: 8192,
          requestTimeout: REQUEST_TIMEOUT_MS,
          headersTimeout: REQUEST_TIMEOUT_MS,
          handshakeTimeout: REQUEST_TIMEOUT_MS,
          // Enforce requestTimeout/headersTimeout every second (Node's default checks every 30 s).
          connectionsCheckingInterval: 1000,
        },
        (req, res) => this.#handle(req, res),
      );
      server.maxConnections = MAX_CONNECTIONS;
      server.maxHeadersCount = MAX_HEADERS;
      server.maxRequestsPerSocket = 100;
      server.keepAliveTimeout = 5000;
      server.on("tlsClientError", (err) => this.#opts.logger.debug({ err: err.message }, "https: TLS handshake failed"));
      server.on("clientError", (err: Error & { code?: string }, socket) => {
        const status = err.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? "408 Request Timeout" : "400 Bad Request";
        if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
        else socket.destroy();
        this.#opts.logger.debug({ err: err.message }, "https: bad request");
      });
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ host: a.host, port: a.port, exclusive: true }, () => {
          server.removeListener("error", reject);
          resolve();
        });
      });
      server.on("error", (err) => this.#opts.logger.error({ err: err.message }, "https listener error"));
      this.#opts.attach?.(server);
      this.#servers.push(server);
      const addr = server.address();
      bound.push({ host: a.host, port: typeof addr === "object" && addr !== null ? addr.port : a.port });
    }
    return bound;
  }

  #send(req: IncomingMessage, res: ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
    if (!req.complete) res.setHeader("connection", "close");
    res.writeHead(status, { ...SECURITY_HEADERS, ...extra, "content-type": type, "content-length": Buffer.byteLength(body) });
    res.end(req.method === "HEAD" ? undefined : body);
    if (!req.complete) req.resume();
  }

  #notFound(req: IncomingMessage, res: ServerResponse): void {
    this.#send(req, res, 404, "text/plain; charset=utf-8", "not found\n");
  }

  #method(req: IncomingMessage, res: ServerResponse, allow: string): void {
    this.#send(req, res, 405, "text/plain; charset=utf-8", "method not allowed\n", { allow });
  }

  /** The local domain a host name stands for, after removing `prefix` (a name that is itself a local domain counts too when bare). */
  #domainOf(host: string | undefined, prefix: string, bare: boolean): string | undefined {
    if (host === undefined) return undefined;
    if (host.startsWith(prefix) && this.#domains.has(host.slice(prefix.length))) return host.slice(prefix.length);
    return bare && this.#domains.has(host) ? host : undefined;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? "";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    const host = requestHost(req.headers.host);
    const method = req.method ?? "";
    if (path === STS_PATH) {
      const domain = this.#domainOf(host, "mta-sts.", false);
      if (domain === undefined) return this.#notFound(req, res);
      if (method !== "GET" && method !== "HEAD") return this.#method(req, res, "GET, HEAD");
      this.#opts.logger.info({ ip: req.socket.remoteAddress, domain }, "https: MTA-STS policy served");
      return this.#send(req, res, 200, "text/plain; charset=utf-8", this.#policy);
    }
    if (AUTOCONFIG_PATHS.has(path)) {
      const domain = this.#domainOf(host, "autoconfig.", true);
      if (domain === undefined) return this.#notFound(req, res);
      if (method !== "GET" && method !== "HEAD") return this.#method(req, res, "GET, HEAD");
      this.#opts.logger.info({ ip: req.socket.remoteAddress, domain }, "https: autoconfig served");
      return this.#send(req, res, 200, "application/xml; charset=utf-8", autoconfigXml(domain, this.#opts.mail));
    }
    if (AUTODISCOVER_PATHS.has(path)) {
      if (this.#domainOf(host, "autodiscover.", true) === undefined) return this.#notFound(req, res);
      if (method !== "POST") return this.#method(req, res, "POST");
      return this.#autodiscover(req, res);
    }
    this.#notFound(req, res);
  }

  #autodiscover(req: IncomingMessage, res: ServerResponse): void {
    const declared = req.headers["content-length"];
    if (declared !== undefined && !(Number(declared) <= MAX_BODY)) return this.#send(req, res, 413, "text/plain; charset=utf-8", "request too large\n");
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on("data", (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > MAX_BODY) {
        done = true;
        this.#send(req, res, 413, "text/plain; charset=utf-8", "request too large\n");
        return;
      }
      chunks.push(chunk);
    });
    req.on("error", () => req.socket.destroy());
    req.on("end", () => {
      if (done) return;
      done = true;
      const address = autodiscoverAddress(Buffer.concat(chunks).toString("utf8"));
      const parsed = address === undefined ? undefined : plainAddress(address);
      if (address === undefined || parsed === undefined) return this.#send(req, res, 400, "text/plain; charset=utf-8", "no EMailAddress in the request\n");
      if (!this.#domains.has(parsed.domain)) return this.#notFound(req, res);
      this.#opts.logger.info({ ip: req.socket.remoteAddress, domain: parsed.domain }, "https: autodiscover served");
      this.#send(req, res, 200, "application/xml; charset=utf-8", autodiscoverXml(`${parsed.local}@${parsed.domain}`, this.#opts.mail));
    });
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
