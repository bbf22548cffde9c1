/**
 * Work off the session's event loop: a worker thread that runs tasks posted
 * to it (TaskThread), and a pool of them (TaskPool). Used by the checks
 * whose work is heavy or not provably linear on hostile input: the DKIM,
 * ARC and DMARC verifier (src/mailauth) and the attachment walk
 * (src/attachments).
 *
 * Protocol with the thread's entry file: it gets { type: "task", id, ...the
 * task's fields } and answers { type: "done", id, result } or { type:
 * "failed", id, message }; any other message it sends goes to `onOther`
 * (the verifier's DNS questions), which may answer through the thread.
 *
 * Deadlines: a task's AbortSignal ends the whole thread (a synchronous
 * parser in it cannot be interrupted otherwise): every task in it fails and
 * the next task starts a new thread. An idle thread is unreferenced, so it
 * keeps no process alive; its heap is capped (heapMb).
 */
import { Worker } from "node:worker_threads";

export interface TaskThreadOptions {
  /** The thread's entry file. */
  readonly entry: URL;
  readonly heapMb: number;
  /** What a task does, for errors ("verification", "attachment walk"). */
  readonly what: string;
  /** A message from the thread that ends no task; `post` answers it. */
  readonly onOther?: (message: unknown, post: (m: unknown) => void) => void;
}

type Ended<R> = { readonly type: "done"; readonly id: number; readonly result: R } | { readonly type: "failed"; readonly id: number; readonly message: string };

interface Pending<R> {
  readonly resolve: (r: R) => void;
  readonly reject: (e: Error) => void;
}

export class TaskThread<T extends object, R> {
  private readonly opts: TaskThreadOptions;
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending<R>>();
  private nextId = 0;

  constructor(opts: TaskThreadOptions) {
    this.opts = opts;
  }

  /** Tasks in flight. */
  get busy(): number {
    return this.pending.size;
  }

  /** Runs one task in the thread; rejects when the thread fails or `signal` aborts (the thread is then ended). */
  run(task: T, signal?: AbortSignal): Promise<R> {
    if (signal?.aborted) return Promise.reject(new Error(`${this.opts.what} aborted`));
    const worker = this.thread();
    const id = this.nextId++;
    return new Promise<R>((resolve, reject) => {
      const onAbort = (): void => this.restart(worker, new Error(`${this.opts.what} stopped at the check deadline`));
      signal?.addEventListener("abort", onAbort, { once: true });
      const done = (): void => {
        signal?.removeEventListener("abort", onAbort);
        // Only a thread with work in flight keeps the process alive.
        if (this.pending.size === 0) worker.unref();
      };
      this.pending.set(id, {
        resolve: (r) => {
          done();
          resolve(r);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
      worker.ref();
      worker.postMessage({ ...task, type: "task", id });
    });
  }

  /** Ends the thread (tasks in flight fail). */
  close(): void {
    if (this.worker) this.restart(this.worker, new Error(`${this.opts.what} thread closed`));
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(this.opts.entry, { resourceLimits: { maxOldGenerationSizeMb: this.opts.heapMb } });
    w.on("message", (m: Ended<R> | { readonly type?: unknown }) => {
      if (m.type !== "done" && m.type !== "failed") return this.opts.onOther?.(m, (x) => w.postMessage(x));
      const e = m as Ended<R>;
      const p = this.pending.get(e.id);
      this.pending.delete(e.id);
      if (!p) return;
      if (e.type === "done") p.resolve(e.result);
      else p.reject(new Error(e.message));
    });
    w.on("error", (err) => this.restart(w, err));
    w.on("exit", () => this.restart(w, new Error(`${this.opts.what} thread exited`)));
    // An idle thread keeps nothing alive (after the listeners: adding them refs it again).
    w.unref();
    this.worker = w;
    return w;
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

export interface TaskPoolOptions extends TaskThreadOptions {
  /** Most threads. */
  readonly maxThreads: number;
  /** End idle threads beyond one after each task (a thread's parsed state is then kept in one). */
  readonly keepOneIdle?: boolean;
}

/** Up to maxThreads threads: each task to an idle one, else a new one, else the least busy. */
export class TaskPool<T extends object, R> {
  private readonly opts: TaskPoolOptions;
  private readonly threads: TaskThread<T, R>[] = [];

  constructor(opts: TaskPoolOptions) {
    this.opts = opts;
  }

  get size(): number {
    return this.threads.length;
  }

  async run(task: T, signal?: AbortSignal): Promise<R> {
    let t = this.threads.find((x) => x.busy === 0);
    if (t === undefined && this.threads.length < this.opts.maxThreads) {
      t = new TaskThread<T, R>(this.opts);
      this.threads.push(t);
    }
    t ??= this.threads.reduce((a, b) => (b.busy < a.busy ? b : a));
    try {
      return await t.run(task, signal);
    } finally {
      if (this.opts.keepOneIdle === true && t.busy === 0 && this.threads.some((x) => x !== t && x.busy === 0)) {
        t.close();
        this.threads.splice(this.threads.indexOf(t), 1);
      }
    }
  }

  close(): void {
    for (const t of this.threads.splice(0)) t.close();
  }
}
