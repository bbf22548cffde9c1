/**
 * The attachment walk off the session's thread: each message's content is
 * posted to a walker thread (thread.ts). The walk is linear, but a 25 MiB
 * message of short lines still costs MIME parsing a second of CPU; on the
 * event loop that second would delay every session of the worker. In a
 * thread it only costs that thread's time, and at the check's deadline (its
 * AbortSignal) the thread is ended: its tasks fail (the runner answers
 * 451 4.7.0, fail closed) and the next task starts a new thread.
 *
 * Bounds: at most MAX_THREADS threads per session thread, started on use
 * and kept (a thread's start costs far more than a walk); each heap capped
 * (HEAP_MB); each task holds one copy
 * of the content (at most limits.max_message_size) plus what the walk keeps
 * (walk.ts).
 */
import { Worker } from "node:worker_threads";
import type { Finding } from "./detect.ts";
import type { WalkLimits } from "./walk.ts";

const HEAP_MB = 256;
export const MAX_THREADS = 2;
// Compiled to dist/*.js for production, run from src/*.ts in development.
const ENTRY = new URL(`./thread.${import.meta.url.endsWith(".ts") ? "ts" : "js"}`, import.meta.url);

type FromThread = { readonly type: "done"; readonly id: number; readonly findings: Finding[] } | { readonly type: "failed"; readonly id: number; readonly message: string };

interface Pending {
  readonly resolve: (f: Finding[]) => void;
  readonly reject: (e: Error) => void;
}

class WalkerThread {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  get busy(): number {
    return this.pending.size;
  }

  walk(content: Buffer, limits: WalkLimits, signal?: AbortSignal): Promise<Finding[]> {
    if (signal?.aborted) return Promise.reject(new Error("attachment walk aborted"));
    const worker = this.thread();
    const id = this.nextId++;
    return new Promise<Finding[]>((resolve, reject) => {
      const onAbort = (): void => this.restart(worker, new Error("attachment walk stopped at the check deadline"));
      signal?.addEventListener("abort", onAbort, { once: true });
      const done = (): void => {
        signal?.removeEventListener("abort", onAbort);
        if (this.pending.size === 0) worker.unref();
      };
      this.pending.set(id, {
        resolve: (f) => {
          done();
          resolve(f);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
      worker.ref();
      worker.postMessage({ id, content, limits });
    });
  }

  close(): void {
    if (this.worker) this.restart(this.worker, new Error("attachment walker closed"));
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(ENTRY, { resourceLimits: { maxOldGenerationSizeMb: HEAP_MB } });
    w.on("message", (m: FromThread) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (!p) return;
      if (m.type === "done") p.resolve(m.findings);
      else p.reject(new Error(m.message));
    });
    w.on("error", (err) => this.restart(w, err));
    w.on("exit", () => this.restart(w, new Error("attachment walker thread exited")));
    w.unref();
    this.worker = w;
    return w;
  }

  private restart(w: Worker, err: Error): void {
    if (this.worker !== w) return;
    this.worker = undefined;
    void w.terminate();
    const tasks = [...this.pending.values()];
    this.pending.clear();
    for (const p of tasks) p.reject(err);
  }
}

/** Up to MAX_THREADS walker threads: each task to an idle one, else a new one, else the least busy. */
export class WalkerPool {
  private readonly threads: WalkerThread[] = [];

  walk(content: Buffer, limits: WalkLimits, signal?: AbortSignal): Promise<Finding[]> {
    let t = this.threads.find((x) => x.busy === 0);
    if (t === undefined && this.threads.length < MAX_THREADS) {
      t = new WalkerThread();
      this.threads.push(t);
    }
    t ??= this.threads.reduce((a, b) => (b.busy < a.busy ? b : a));
    // Threads stay (unref'd when idle): starting one costs tens of milliseconds of CPU, far more than a walk.
    return t.walk(content, limits, signal);
  }

  close(): void {
    for (const t of this.threads.splice(0)) t.close();
  }
}
