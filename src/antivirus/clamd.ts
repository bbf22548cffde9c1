/**
 * A clamd client: INSTREAM over TCP or a unix socket (clamd's own protocol,
 * "z" commands ending in NUL).
 *
 * The message goes in chunks of at most 64 KiB, each after its 4-byte
 * big-endian length, then a zero length; writes wait for the socket to drain
 * (backpressure), so a slow clamd never makes Wardmail buffer a second copy.
 * The reply is read up to its NUL, at most MAX_REPLY bytes. One deadline
 * covers connecting and scanning; the caller's signal aborts too. The event
 * loop only copies bytes: the scanning happens in clamd.
 */
import net from "node:net";
import type { ClamdTarget } from "../config/index.ts";

/** Largest reply read from clamd; a signature name is far shorter. */
export const MAX_REPLY = 4096;
/** Bytes per INSTREAM chunk. */
export const CHUNK = 64 * 1024;
/** Longest signature name passed on (in replies and logs). */
const MAX_SIGNATURE = 200;

export type ScanResult =
  | { readonly kind: "clean" }
  | { readonly kind: "infected"; readonly signature: string }
  /** clamd refused the stream as longer than its StreamMaxLength. */
  | { readonly kind: "too_large" };

/** clamd unreachable, too slow, or answering with an error. */
export class ClamdError extends Error {}

export function describeTarget(t: ClamdTarget): string {
  return "path" in t ? t.path : t.host.includes(":") ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

/** A signature name as clamd gave it, made safe for an SMTP reply and a log line. */
export function cleanSignature(name: string): string {
  const s = name.replace(/[^\x21-\x7e]/g, "?");
  return s.length > MAX_SIGNATURE ? `${s.slice(0, MAX_SIGNATURE)}...` : s || "unknown";
}

/** Parses clamd's INSTREAM answer ("stream: OK", "stream: NAME FOUND", "... ERROR"). */
export function parseScanReply(text: string): ScanResult {
  const line = text.replace(/\0.*$/s, "").trim();
  if (/^(stream: )?OK$/.test(line)) return { kind: "clean" };
  const found = /^(?:stream: )?(.+) FOUND$/.exec(line);
  if (found) return { kind: "infected", signature: cleanSignature(found[1] ?? "") };
  if (/size limit exceeded/i.test(line)) return { kind: "too_large" };
  throw new ClamdError(`clamd answered ${JSON.stringify(line.slice(0, 200))}`);
}

interface Exchange {
  readonly target: ClamdTarget;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

/**
 * Connects, lets `send` write (awaiting drains), and resolves with clamd's
 * reply up to its NUL. Rejects with ClamdError on connect failure, timeout,
 * abort, a reply over MAX_REPLY or a close without a reply.
 */
function exchange(opts: Exchange, send: (write: (b: Buffer) => Promise<void>) => Promise<void>): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const sock = "path" in opts.target ? net.connect({ path: opts.target.path }) : net.connect({ host: opts.target.host, port: opts.target.port });
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err: Error | undefined, text?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      sock.destroy();
      if (err) reject(err);
      else resolve(text ?? "");
    };
    const timer = setTimeout(() => finish(new ClamdError(`clamd at ${describeTarget(opts.target)} did not answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    const onAbort = (): void => finish(new ClamdError("scan aborted (checks deadline)"));
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    sock.on("data", (d: Buffer) => {
      chunks.push(d);
      size += d.length;
      const all = Buffer.concat(chunks, size);
      const nul = all.indexOf(0);
      if (nul >= 0) return finish(undefined, all.subarray(0, nul).toString("latin1"));
      if (size > MAX_REPLY) finish(new ClamdError(`clamd reply longer than ${MAX_REPLY} bytes`));
    });
    // A reply without its NUL (clamd closing after "... ERROR") still counts.
    sock.on("end", () => finish(size > 0 ? undefined : new ClamdError("clamd closed the connection without a reply"), Buffer.concat(chunks, size).toString("latin1")));
    sock.on("error", (e: NodeJS.ErrnoException) => {
      // clamd may answer (size limit) and close while we still write: keep its answer.
      if (size > 0) return finish(undefined, Buffer.concat(chunks, size).toString("latin1"));
      finish(new ClamdError(`clamd at ${describeTarget(opts.target)}: ${e.code ?? e.message}`));
    });
    sock.on("close", () => finish(size > 0 ? undefined : new ClamdError("clamd closed the connection without a reply"), Buffer.concat(chunks, size).toString("latin1")));
    sock.once("connect", () => {
      const write = (b: Buffer): Promise<void> => {
        if (done) return Promise.reject(new ClamdError("connection closed"));
        if (sock.write(b)) return Promise.resolve();
        return new Promise<void>((res, rej) => {
          const onDrain = (): void => { sock.off("close", onClose); res(); };
          const onClose = (): void => { sock.off("drain", onDrain); rej(new ClamdError("connection closed")); };
          sock.once("drain", onDrain);
          sock.once("close", onClose);
        });
      };
      send(write).catch(() => {
        // The reply handlers (data/end/error/close) settle the exchange.
      });
    });
  });
}

/** Scans `content` with INSTREAM. */
export async function scan(content: Buffer, opts: Exchange): Promise<ScanResult> {
  const text = await exchange(opts, async (write) => {
    await write(Buffer.from("zINSTREAM\0", "latin1"));
    for (let off = 0; off < content.length; off += CHUNK) {
      const piece = content.subarray(off, Math.min(off + CHUNK, content.length));
      const len = Buffer.alloc(4);
      len.writeUInt32BE(piece.length);
      await write(Buffer.concat([len, piece], 4 + piece.length));
    }
    await write(Buffer.alloc(4));
  });
  return parseScanReply(text);
}

/** PING → PONG; false when clamd does not answer so within the time. */
export async function ping(opts: Exchange): Promise<boolean> {
  try {
    return (await exchange(opts, (write) => write(Buffer.from("zPING\0", "latin1")))).trim() === "PONG";
  } catch {
    return false;
  }
}
