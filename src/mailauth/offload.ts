/**
 * The verifier thread, seen from the session's thread: posts one message's
 * content to a worker thread (thread.ts) that runs DKIM, ARC and DMARC, and
 * answers the thread's DNS questions with the check's resolver.
 *
 * Why a thread: mailauth's parsers run synchronously, and some are not
 * linear (a regex over a long run of blanks in an h= tag took 15 s on a
 * 100 KiB header). On the event loop they would freeze every session of
 * the worker, and the check's deadline could not stop them. In the thread
 * they only cost that thread's time, and at the deadline (the check's
 * AbortSignal) the thread is ended: every task it had fails (the runner
 * answers 451 4.7.0, fail closed) and the next task starts a new thread.
 *
 * A message that is slow to verify must not hold up the others: the pool
 * (VerifierPool) gives each task an idle thread, starting one when none is
 * idle, up to MAX_THREADS; only past that do tasks share a thread.
 *
 * Bounds: at most MAX_THREADS threads per session thread, started on use,
 * and one kept when idle; each heap is capped (HEAP_MB); each task holds
 * one copy of the content (at most limits.max_message_size).
 */
import { Worker } from "node:worker_threads";
import type { ContentTask, Resolver, Verified } from "./content.ts";

/** Heap of a verifier thread (its old generation). */
const HEAP_MB = 256;
/** Verifier threads per session thread. */
export const MAX_THREADS = 4;
// Compiled to dist/*.js for production, run from src/*.ts in development.
const ENTRY = new URL(`./thread.${import.meta.url.endsWith(".ts") ? "ts" : "js"}`, import.meta.url);

interface Pending {
  readonly resolve: (v: Verified) => void;
  readonly reject: (e: Error) => void;
}

type FromThread =
  | { readonly type: "done"; readonly id: number; readonly result: Verified }
  | { readonly type: "failed"; readonly id: number; readonly message: string }
  | { readonly type: "dns"; readonly qid: number; readonly name: string; readonly rrtype: string };

export class VerifierThread {
  private readonly resolver: Resolver;
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  constructor(resolver: Resolver) {
    this.resolver = resolver;
  }

  /** Tasks in flight. */
  get busy(): number {
    return this.pending.size;
  }

  /** Verifies one message in the thread; rejects when the thread fails or `signal` aborts (the thread is then ended). */
  verify(content: Buffer, task: ContentTask, signal?: AbortSignal): Promise<Verified> {
    if (signal?.aborted) return Promise.reject(new Error("verification aborted"));
    const worker = this.thread();
    const id = this.nextId++;
    return new Promise<Verified>((resolve, reject) => {
      const onAbort = (): void => this.restart(worker, new Error("verification stopped at the check deadline"));
      signal?.addEventListener("abort", onAbort, { once: true });
      const done = (): void => {
        signal?.removeEventListener("abort", onAbort);
        // Only a thread with work in flight keeps the process alive.
        if (this.pending.size === 0) worker.unref();
      };
      this.pending.set(id, {
        resolve: (v) => {
          done();
          resolve(v);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
      worker.ref();
      worker.postMessage({ type: "task", id, content, task });
    });
  }

  /** Ends the thread (tasks in flight fail). */
  close(): void {
    if (this.worker) this.restart(this.worker, new Error("verifier closed"));
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(ENTRY, { resourceLimits: { maxOldGenerationSizeMb: HEAP_MB } });
    w.on("message", (m: FromThread) => this.message(w, m));
    w.on("error", (err) => this.restart(w, err));
    w.on("exit", () => this.restart(w, new Error("verifier thread exited")));
    // An idle verifier thread keeps nothing alive (after the listeners: adding them refs it again).
    w.unref();
    this.worker = w;
    return w;
  }

  private message(w: Worker, m: FromThread): void {
    if (m.type === "dns") {
      this.resolver(m.name, m.rrtype).then(
        (answer) => w.postMessage({ type: "dns", qid: m.qid, answer }),
        (err: unknown) => {
          const e = err as { message?: string; code?: string };
          w.postMessage({ type: "dns", qid: m.qid, error: { message: String(e.message ?? err), ...(typeof e.code === "string" ? { code: e.code } : {}) } });
        },
      );
      return;
    }
    const p = this.pending.get(m.id);
    this.pending.delete(m.id);
    if (!p) return;
    if (m.type === "done") p.resolve(m.result);
    else p.reject(new Error(m.message));
  }

  /** Ends `w` (when it is still the current thread) and fails its tasks; the next task starts a new thread. */
  private restart(w: Worker, err: Error): void {
    if (this.worker !== w) return;
    this.worker = undefined;
    void w.terminate();
    const tasks = [...this.pending.values()];
    this.pending.clear();
    for (const p of tasks) p.reject(err);
  }
}

/** Up to MAX_THREADS verifier threads: each task goes to an idle one (see the module comment). */
export class VerifierPool {
  private readonly threads: VerifierThread[] = [];
  private readonly resolver: Resolver;

  constructor(resolver: Resolver) {
    this.resolver = resolver;
  }

  /** Verifies one message in an idle thread (a new one if none is idle, up to MAX_THREADS; else the least busy). */
  async verify(content: Buffer, task: ContentTask, signal?: AbortSignal): Promise<Verified> {
    let t = this.threads.find((x) => x.busy === 0);
    if (t === undefined && this.threads.length < MAX_THREADS) {
      t = new VerifierThread(this.resolver);
      this.threads.push(t);
    }
    t ??= this.threads.reduce((a, b) => (b.busy < a.busy ? b : a));
    try {
      return await t.verify(content, task, signal);
    } finally {
      // Keep one idle thread (with its parsed keys); end the other idle ones.
      if (t.busy === 0 && this.threads.some((x) => x !== t && x.busy === 0)) {
        t.close();
        this.threads.splice(this.threads.indexOf(t), 1);
      }
    }
  }

  get size(): number {
    return this.threads.length;
  }

  close(): void {
    for (const t of this.threads.splice(0)) t.close();
  }
}
