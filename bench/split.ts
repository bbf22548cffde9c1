/**
 * Spike: the cost of separating the network-facing thread from the sink
 * (spool writer) and the account lookups by a process boundary, as Postfix
 * separates smtpd from cleanup/qmgr (docs/architecture.md, "Separation by
 * trust"). Not a test.
 *
 * Two ways to queue the same messages, same machine, same run:
 * - in-process: the caller calls Spool.enqueue() directly (today's worker);
 * - split: the caller sends each message over a Unix domain socket to a
 *   child process that owns the spool (the only process with write rights
 *   to it) and answers with the queue id once the message is durable.
 *   Frames: 4-byte big-endian length, then a JSON head (envelope, session
 *   facts) and the content bytes. The child also answers account lookups
 *   (resolve, maySendAs) from a real accounts database.
 * Reported: messages/s, latency p50/p99, and CPU per message of both
 * processes (process.cpuUsage of each), and the round trip of one lookup.
 *
 * Run: node bench/split.ts [messages=20000] [concurrency=50] [size=10240]
 * Bounded: every loop runs a fixed count; the child is killed at the end.
 */
import { fork } from "node:child_process";
import { createServer, connect, type Socket } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { Spool, type IncomingMessage } from "../src/queue/index.ts";
import { AccountStore } from "../src/accounts/index.ts";
import { sampleMessage, tempDir } from "../test/helpers/queue.ts";

const MAX_FRAME = 64 * 1024 * 1024;

/** Length-prefixed frames on a stream: calls `onFrame` with each whole frame. */
function frames(sock: Socket, onFrame: (f: Buffer) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  sock.on("data", (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    while (buf.length >= 4) {
      const n = buf.readUInt32BE(0);
      if (n > MAX_FRAME) {
        sock.destroy(new Error("frame too large"));
        return;
      }
      if (buf.length < 4 + n) break;
      onFrame(buf.subarray(4, 4 + n));
      buf = buf.subarray(4 + n);
    }
  });
}

function frame(parts: readonly Buffer[]): Buffer {
  const len = parts.reduce((a, p) => a + p.length, 0);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(len);
  return Buffer.concat([head, ...parts], 4 + len);
}

/** A request: kind byte, JSON length, JSON, then content. */
function encodeMessage(id: number, m: IncomingMessage): Buffer {
  const json = Buffer.from(JSON.stringify({ id, envelope: m.envelope, received: m.received }));
  const h = Buffer.alloc(5);
  h[0] = 1;
  h.writeUInt32BE(json.length, 1);
  return frame([h, json, m.content]);
}

function encodeLookup(id: number, account: string, address: string): Buffer {
  const json = Buffer.from(JSON.stringify({ id, account, address }));
  const h = Buffer.alloc(5);
  h[0] = 2;
  h.writeUInt32BE(json.length, 1);
  return frame([h, json]);
}

// ---- the child: owns the spool and the accounts database ----
async function child(dir: string, sockPath: string): Promise<void> {
  const spool = Spool.open({ dataDir: dir, shard: 0, logger: pino({ level: "warn" }) });
  const accounts = AccountStore.open(dir, { create: true, localDomains: ["example.test"] });
  const server = createServer((sock) => {
    frames(sock, (f) => {
      const kind = f[0];
      const jlen = f.readUInt32BE(1);
      const head = JSON.parse(f.subarray(5, 5 + jlen).toString("utf8")) as Record<string, unknown>;
      if (kind === 1) {
        const msg = { envelope: head.envelope, received: head.received, content: Buffer.from(f.subarray(5 + jlen)) } as IncomingMessage;
        void spool.enqueue(msg).then((qid) => sock.write(frame([Buffer.from(JSON.stringify({ id: head.id, qid }))])));
      } else {
        const ok = accounts.maySendAs(String(head.account), String(head.address));
        sock.write(frame([Buffer.from(JSON.stringify({ id: head.id, ok }))]));
      }
    });
  });
  await new Promise<void>((r) => server.listen(sockPath, r));
  process.send?.({ ready: true });
  process.on("message", (m: { stop?: boolean }) => {
    if (!m.stop) return;
    spool.close();
    accounts.close();
    process.send?.({ cpu: process.cpuUsage() });
    server.close();
    setTimeout(() => process.exit(0), 50);
  });
}

// ---- the parent: plays the network-facing worker ----
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? 0;
const us = (c: NodeJS.CpuUsage): number => c.user + c.system;

async function inProcess(messages: readonly IncomingMessage[], total: number, concurrency: number): Promise<{ rate: number; lat: number[]; cpuUs: number }> {
  const { dir, cleanup } = tempDir("wardmail-split-");
  const spool = Spool.open({ dataDir: dir, shard: 0, logger: pino({ level: "warn" }) });
  const lat: number[] = [];
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      const m = messages[next++ % messages.length] as IncomingMessage;
      const s = performance.now();
      await spool.enqueue(m);
      lat.push(performance.now() - s);
    }
  }));
  const secs = (performance.now() - t0) / 1000;
  const cpuUs = us(process.cpuUsage(cpu0));
  spool.close();
  cleanup();
  return { rate: total / secs, lat, cpuUs };
}

async function split(messages: readonly IncomingMessage[], total: number, concurrency: number, lookups: number): Promise<{ rate: number; lat: number[]; parentUs: number; childUs: number; lookupLat: number[] }> {
  const { dir, cleanup } = tempDir("wardmail-split-");
  const sockPath = join(dir, "sink.sock");
  const proc = fork(fileURLToPath(import.meta.url), ["--child", dir, sockPath], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  await new Promise<void>((r) => proc.once("message", () => r()));
  const sock = connect(sockPath);
  await new Promise<void>((r) => sock.once("connect", r));
  const pending = new Map<number, () => void>();
  frames(sock, (f) => {
    const { id } = JSON.parse(f.toString("utf8")) as { id: number };
    pending.get(id)?.();
    pending.delete(id);
  });
  let seq = 0;
  const call = (build: (id: number) => Buffer): Promise<void> => new Promise<void>((r) => {
    const id = ++seq;
    pending.set(id, r);
    sock.write(build(id));
  });
  // Account lookups: one at a time, the round trip each.
  const lookupLat: number[] = [];
  for (let i = 0; i < lookups; i++) {
    const s = performance.now();
    await call((id) => encodeLookup(id, "alice@example.test", "alice@example.test"));
    lookupLat.push(performance.now() - s);
  }
  const lat: number[] = [];
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      const m = messages[next++ % messages.length] as IncomingMessage;
      const s = performance.now();
      await call((id) => encodeMessage(id, m));
      lat.push(performance.now() - s);
    }
  }));
  const secs = (performance.now() - t0) / 1000;
  const parentUs = us(process.cpuUsage(cpu0));
  const childCpu = new Promise<NodeJS.CpuUsage>((r) => proc.on("message", (m: { cpu?: NodeJS.CpuUsage }) => m.cpu && r(m.cpu)));
  proc.send({ stop: true });
  const childUs = us(await childCpu);
  sock.destroy();
  await new Promise((r) => proc.once("exit", r));
  cleanup();
  return { rate: total / secs, lat, parentUs, childUs, lookupLat };
}

if (process.argv[2] === "--child") {
  await child(process.argv[3] as string, process.argv[4] as string);
} else {
  const total = Number(process.argv[2] ?? 20_000);
  const concurrency = Number(process.argv[3] ?? 50);
  const size = Number(process.argv[4] ?? 10_240);
  const messages = Array.from({ length: 64 }, () => sampleMessage({ size, to: ["a@example.test", "b@example.test"] }));
  const a = await inProcess(messages, total, concurrency);
  const b = await split(messages, total, concurrency, 2000);
  const ms = (x: number): string => x.toFixed(3);
  console.log(`messages ${total}, concurrency ${concurrency}, size ${size} B`);
  console.log(`in-process: ${Math.round(a.rate)} msg/s, latency p50 ${ms(pct(a.lat, 0.5))} ms p99 ${ms(pct(a.lat, 0.99))} ms, CPU ${ms(a.cpuUs / total / 1000)} ms/msg`);
  console.log(`split:      ${Math.round(b.rate)} msg/s, latency p50 ${ms(pct(b.lat, 0.5))} ms p99 ${ms(pct(b.lat, 0.99))} ms, CPU ${ms(b.parentUs / total / 1000)} (caller) + ${ms(b.childUs / total / 1000)} (sink, incl. its start) ms/msg`);
  console.log(`account lookup round trip (one at a time): p50 ${ms(pct(b.lookupLat, 0.5))} ms p99 ${ms(pct(b.lookupLat, 0.99))} ms`);
}
