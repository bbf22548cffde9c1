/**
 * A client of rspamd's HTTP protocol: POST /checkv2 on the normal worker
 * (https://rspamd.com/doc/developers/protocol.html). Trusts nothing it
 * reads back: the answer is bounded in size and time, parsed as JSON and
 * checked field by field; anything else is an error the caller maps to
 * "spam.error".
 *
 * Request headers: IP (client address), Helo, From (envelope sender; none
 * for the null reverse path), Rcpt (once per recipient), User (the
 * authenticated account), Queue-Id when known, Pass: all (run every rule,
 * so the score is the full one). Values are our own parsed, checked ones;
 * CR, LF and other control characters are refused anyway (Node's http
 * refuses them too).
 *
 * One keep-alive agent per client, at most MAX_SOCKETS connections (rspamd
 * 3.4 answers "Connection: close", so today each request opens its own
 * loopback connection; the agent then only bounds them); the
 * event loop is never blocked: the body is streamed out, the answer
 * collected in chunks and parsed once (at most MAX_ANSWER bytes).
 */
import type { Agent } from "node:http";

// Not `import http from "node:http"`: an ES module import of node:http reads
// every export, whose lazy getters (WebSocket, MessageEvent...) load undici
// and http2, ~3 MB of heap in every thread that imports this file
// (docs/benchmarks.md, "Resident memory by thread").
const http = process.getBuiltinModule("node:http");

/** Most bytes of rspamd's answer read (its JSON for a normal message is a few KiB). */
export const MAX_ANSWER = 1024 * 1024;
/** Most connections to rspamd at once per worker thread. */
export const MAX_SOCKETS = 64;
/** Most recipients passed as Rcpt headers (rspamd's own max_recipients default is 1024). */
const MAX_RCPT_HEADERS = 1000;

export type RspamdAction = "reject" | "soft reject" | "rewrite subject" | "add header" | "greylist" | "no action";
const ACTIONS: readonly string[] = ["reject", "soft reject", "rewrite subject", "add header", "greylist", "no action"];

export interface RspamdRequest {
  readonly clientIp: string;
  readonly helo: string;
  readonly mailFrom: string;
  readonly recipients: readonly string[];
  readonly user?: string;
  readonly queueId?: string;
  /** The message as rspamd should see it (CRLF). */
  readonly body: Buffer | readonly Buffer[];
  readonly signal?: AbortSignal;
}

export interface RspamdResult {
  readonly action: RspamdAction;
  readonly score: number;
  readonly required: number;
  /** Names of the symbols that matched, highest score first (at most 50). */
  readonly symbols: readonly string[];
  /** rspamd skipped its rules (e.g. a GTUBE pattern or a settings rule decided). */
  readonly skipped: boolean;
}

export class RspamdError extends Error {}

const SAFE = /^[\x21-\x7e\x80-\uffff][\x20-\x7e\x80-\uffff]*$/;

/** A request header value: control characters refused; non-ASCII (SMTPUTF8 addresses) sent as its UTF-8 bytes, as rspamd reads them. */
function headerValue(v: string): string {
  if (!SAFE.test(v)) throw new RspamdError("refusing a header value with control characters");
  return /^[\x20-\x7e]*$/.test(v) ? v : Buffer.from(v, "utf8").toString("latin1");
}

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/** Checks rspamd's JSON answer and keeps what Wardmail uses. */
export function parseAnswer(text: string): RspamdResult {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    throw new RspamdError("answer is not JSON");
  }
  if (typeof j !== "object" || j === null || Array.isArray(j)) throw new RspamdError("answer is not a JSON object");
  const o = j as Record<string, unknown>;
  if (typeof o.error === "string") throw new RspamdError(`rspamd error: ${o.error.slice(0, 200)}`);
  const action = o.action;
  const score = num(o.score);
  const required = num(o.required_score);
  if (typeof action !== "string" || !ACTIONS.includes(action)) throw new RspamdError("answer has no known action");
  if (score === undefined || required === undefined) throw new RspamdError("answer has no score");
  const symbols: { name: string; score: number }[] = [];
  if (typeof o.symbols === "object" && o.symbols !== null) {
    for (const [name, v] of Object.entries(o.symbols as Record<string, unknown>)) {
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) continue;
      const s = typeof v === "object" && v !== null ? num((v as Record<string, unknown>).score) ?? 0 : 0;
      symbols.push({ name, score: s });
    }
  }
  symbols.sort((a, b) => b.score - a.score || (a.name < b.name ? -1 : 1));
  return { action: action as RspamdAction, score, required, symbols: symbols.slice(0, 50).map((s) => s.name), skipped: o.is_skipped === true };
}

export class RspamdClient {
  private readonly host: string;
  private readonly port: number;
  private readonly timeoutMs: number;
  private readonly agent: Agent;

  /** @param url "http://host:port" (config spam.rspamd, checked). */
  constructor(url: string, timeoutMs: number) {
    const u = new URL(url);
    this.host = u.hostname.replace(/^\[|\]$/g, "");
    this.port = Number(u.port || 80);
    this.timeoutMs = timeoutMs;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS, maxFreeSockets: 16, timeout: 60_000 });
  }

  /** Scores one message; rejects with RspamdError (or a network error) on any failure. */
  check(req: RspamdRequest): Promise<RspamdResult> {
    const headers: [string, string][] = [
      ["IP", headerValue(req.clientIp)],
      ["Pass", "all"],
    ];
    if (req.helo !== "") headers.push(["Helo", headerValue(req.helo)]);
    if (req.mailFrom !== "") headers.push(["From", headerValue(req.mailFrom)]);
    for (const r of req.recipients.slice(0, MAX_RCPT_HEADERS)) headers.push(["Rcpt", headerValue(r)]);
    if (req.user !== undefined) headers.push(["User", headerValue(req.user)]);
    if (req.queueId !== undefined) headers.push(["Queue-Id", headerValue(req.queueId)]);
    const parts = Buffer.isBuffer(req.body) ? [req.body] : req.body;
    const length = parts.reduce((n, b) => n + b.length, 0);
    headers.push(["Content-Length", String(length)]);
    return new Promise<RspamdResult>((resolve, reject) => {
      let settled = false;
      const done = (err: Error | undefined, r?: RspamdResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.signal?.removeEventListener("abort", onAbort);
        if (err) reject(err);
        else resolve(r as RspamdResult);
      };
      const request = http.request({
        host: this.host,
        port: this.port,
        method: "POST",
        path: "/checkv2",
        agent: this.agent,
        headers: headers.flat(),
      });
      const timer = setTimeout(() => {
        request.destroy(new RspamdError(`no answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      const onAbort = (): void => void request.destroy(new RspamdError("aborted"));
      req.signal?.addEventListener("abort", onAbort, { once: true });
      request.on("error", (err) => done(err));
      request.on("response", (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          done(new RspamdError(`HTTP ${res.statusCode ?? "?"}`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > MAX_ANSWER) {
            res.destroy();
            done(new RspamdError(`answer larger than ${MAX_ANSWER} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on("error", (err) => done(err));
        res.on("end", () => {
          try {
            done(undefined, parseAnswer(Buffer.concat(chunks, size).toString("utf8")));
          } catch (err) {
            done(err as Error);
          }
        });
      });
      for (const p of parts) request.write(p);
      request.end();
    });
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }
}
