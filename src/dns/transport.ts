/**
 * One DNS exchange with one server, over UDP (RFC 1035 §4.2.1) or TCP with a
 * two-octet length prefix (RFC 1035 §4.2.2, RFC 7766).
 *
 * UDP: a fresh socket per exchange, bound to a port the kernel picks at
 * random and connect()ed to the server, so the kernel drops datagrams from
 * any other address. Messages the caller's `judge` does not accept are
 * ignored and waiting goes on until the timeout (RFC 5452: a spoofer must
 * guess the id, the port and the question within that window).
 * TCP: one query per connection, closed after the answer; a message that is
 * not ours is an error there (nobody else can write into the connection).
 *
 * Never rejects: failures come back as a node-style code. Every exchange
 * clears its timer and closes its socket, also when `signal` aborts.
 */
import dgram from "node:dgram";
import net from "node:net";
import { IGNORE, MALFORMED } from "./packet.ts";

export interface Server {
  readonly host: string;
  readonly port: number;
}

export type Exchange<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly code: string };

/** Accepts a message (returns the value), or says it is not ours / unreadable. */
export type Judge<T> = (msg: Buffer) => T | typeof IGNORE | typeof MALFORMED;

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.length > 0 ? code : "ECONNREFUSED";
}

export function udpExchange<T>(server: Server, payload: Buffer, timeoutMs: number, judge: Judge<T>, signal: AbortSignal): Promise<Exchange<T>> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve({ ok: false, code: "ECANCELLED" });
      return;
    }
    const socket = dgram.createSocket(net.isIPv6(server.host) ? "udp6" : "udp4");
    let done = false;
    let sawMalformed = false;
    const finish = (result: Exchange<T>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      try {
        socket.close();
      } catch {
        // already closed
      }
      resolve(result);
    };
    const onAbort = (): void => finish({ ok: false, code: "ECANCELLED" });
    const timer = setTimeout(() => finish({ ok: false, code: sawMalformed ? "EBADRESP" : "ETIMEOUT" }), timeoutMs);
    signal.addEventListener("abort", onAbort, { once: true });
    socket.on("error", (err) => finish({ ok: false, code: errorCode(err) }));
    socket.on("message", (msg) => {
      if (done) return;
      const verdict = judge(msg);
      if (verdict === IGNORE) return;
      if (verdict === MALFORMED) {
        sawMalformed = true;
        return;
      }
      finish({ ok: true, value: verdict });
    });
    try {
      socket.bind(0, () => {
        if (done) return;
        socket.connect(server.port, server.host, () => {
          if (done) return;
          socket.send(payload, (err) => {
            if (err) finish({ ok: false, code: errorCode(err) });
          });
        });
      });
    } catch (err) {
      finish({ ok: false, code: errorCode(err) });
    }
  });
}

export function tcpExchange<T>(server: Server, payload: Buffer, timeoutMs: number, judge: Judge<T>, signal: AbortSignal): Promise<Exchange<T>> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve({ ok: false, code: "ECANCELLED" });
      return;
    }
    let done = false;
    const chunks: Buffer[] = [];
    let received = 0;
    const socket = net.connect({ host: server.host, port: server.port });
    const finish = (result: Exchange<T>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      socket.destroy();
      resolve(result);
    };
    const onAbort = (): void => finish({ ok: false, code: "ECANCELLED" });
    const timer = setTimeout(() => finish({ ok: false, code: "ETIMEOUT" }), timeoutMs);
    signal.addEventListener("abort", onAbort, { once: true });
    socket.setNoDelay(true);
    socket.on("error", (err) => finish({ ok: false, code: errorCode(err) }));
    socket.on("close", () => finish({ ok: false, code: "EBADRESP" }));
    socket.on("connect", () => {
      const frame = Buffer.alloc(2 + payload.length);
      frame.writeUInt16BE(payload.length, 0);
      payload.copy(frame, 2);
      socket.write(frame);
    });
    socket.on("data", (chunk: Buffer) => {
      if (done) return;
      chunks.push(chunk);
      received += chunk.length;
      if (received < 2) return;
      const all = chunks.length === 1 ? chunk : Buffer.concat(chunks);
      chunks.length = 0;
      chunks.push(all);
      const length = all.readUInt16BE(0);
      // The prefix bounds what we keep: at most 2 + 65535 octets are read.
      if (received < 2 + length) return;
      const verdict = judge(all.subarray(2, 2 + length));
      if (verdict === IGNORE || verdict === MALFORMED) finish({ ok: false, code: "EBADRESP" });
      else finish({ ok: true, value: verdict });
    });
  });
}
