/**
 * Encryption off the delivery worker's event loop: large messages are
 * encrypted in one extra thread (thread.ts) per delivery worker, so a
 * 10 MB message (a few hundred ms of OpenPGP.js or CMS encoding, see
 * docs/benchmarks.md) does not pause that worker's SMTP sessions. Small
 * messages (below INLINE_MAX, about a millisecond of work) are encrypted in
 * place: posting them to the thread would cost as much.
 *
 * Bounds: one thread, started on first use and unreferenced when idle; its
 * heap is capped (HEAP_MB) and at most IN_THREAD tasks are in it at once
 * (each holds a copy of the content, its armor or base64 and the result:
 * about 3.5 times the message), the others wait here in order (the
 * caller's delivery concurrency bounds them); a task that
 * takes longer than TASK_TIMEOUT_MS ends the thread (every task in it fails,
 * the next one starts a new thread): the delivery is then deferred, never
 * stored in the clear.
 */
import { Worker } from "node:worker_threads";
import { encryptForStore } from "./encrypt.ts";
import type { UsableKey } from "./keys.ts";
import { ownBytes, YOUNG_GENERATION_MB } from "../threads/index.ts";

/** Messages up to this size are encrypted on the calling thread. */
export const INLINE_MAX = 64 * 1024;
const HEAP_MB = 512;
/** Tasks in the thread at once. */
export const IN_THREAD = 2;
export const TASK_TIMEOUT_MS = 120_000;
// Compiled to dist/*.js for production, run from src/*.ts in development.
const ENTRY = new URL(`./thread.${import.meta.url.endsWith(".ts") ? "ts" : "js"}`, import.meta.url);

type FromThread = { readonly id: number; readonly content: Uint8Array } | { readonly id: number; readonly error: string };

interface Queued {
  readonly raw: Buffer;
  readonly keys: readonly string[];
  readonly resolve: (b: Buffer) => void;
  readonly reject: (e: Error) => void;
}

interface Pending {
  readonly resolve: (b: Buffer) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export class EncryptionThread {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private readonly waiting: Queued[] = [];
  private nextId = 0;
  private readonly inlineMax: number;

  constructor(opts: { readonly inlineMax?: number } = {}) {
    this.inlineMax = opts.inlineMax ?? INLINE_MAX;
  }

  /** encryptForStore, in the thread for messages above inlineMax. */
  encrypt = (raw: Buffer, keys: readonly UsableKey[]): Promise<Buffer> => {
    if (raw.length <= this.inlineMax) return encryptForStore(raw, keys);
    return new Promise<Buffer>((resolve, reject) => {
      this.waiting.push({ raw, keys: keys.map((k) => k.info.data), resolve, reject });
      this.pump();
    });
  };

  /** Posts waiting tasks while fewer than IN_THREAD are in the thread. */
  private pump(): void {
    while (this.pending.size < IN_THREAD) {
      const task = this.waiting.shift();
      if (task === undefined) return;
      const worker = this.thread();
      const id = this.nextId++;
      const timer = setTimeout(() => this.restart(worker, new Error(`encryption took longer than ${TASK_TIMEOUT_MS / 1000} s`)), TASK_TIMEOUT_MS);
      timer.unref();
      this.pending.set(id, { resolve: task.resolve, reject: task.reject, timer });
      worker.ref();
      worker.postMessage({ id, content: ownBytes(task.raw), keys: task.keys });
    }
  }

  /** Ends the thread; tasks in flight and waiting fail. */
  close(): void {
    const err = new Error("encryption thread closed");
    if (this.worker) this.restart(this.worker, err);
    for (const t of this.waiting.splice(0)) t.reject(err);
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(ENTRY, { resourceLimits: { maxOldGenerationSizeMb: HEAP_MB, maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } });
    w.on("message", (m: FromThread) => this.done(w, m));
    w.on("error", (err) => this.restart(w, err));
    w.on("exit", () => this.restart(w, new Error("encryption thread exited")));
    w.unref();
    this.worker = w;
    return w;
  }

  private done(w: Worker, m: FromThread): void {
    const p = this.pending.get(m.id);
    this.pending.delete(m.id);
    if (this.pending.size === 0) w.unref();
    if (!p) return;
    clearTimeout(p.timer);
    if ("error" in m) p.reject(new Error(m.error));
    else p.resolve(Buffer.from(m.content.buffer, m.content.byteOffset, m.content.byteLength));
    this.pump();
  }

  private restart(w: Worker, err: Error): void {
    if (this.worker !== w) return;
    this.worker = undefined;
    void w.terminate();
    const tasks = [...this.pending.values()];
    this.pending.clear();
    for (const p of tasks) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    // Waiting tasks go to a new thread (unless close() fails them next).
    queueMicrotask(() => this.pump());
  }
}
