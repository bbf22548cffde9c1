/**
 * One TaskPool per kind of task for the whole process, shared by the worker
 * threads, instead of one per worker thread: fewer isolates (each verifier
 * thread with mailauth loaded is tens of MB once it has worked) and each one
 * busier (its JIT hotter, its caches fuller).
 *
 * The primary thread holds a PoolHost and gives each worker thread a
 * MessagePort to it (PoolHost.connect(), in workerData). A worker runs tasks
 * through a PoolLink over that port: `run(name, options, task, signal)`
 * does what TaskPool.run does, in the host's pool of that name (made on
 * first use with the options of the first task, its `maxThreads` times the
 * links then connected, i.e. the workers: as many as their own pools had
 * together; the entry file's URL goes as text). Everything TaskPool guarantees holds, across workers: a thread
 * held by one message has its other tasks moved to another thread, and a
 * task's deadline (its AbortSignal, turned into an "abort" message) ends
 * the thread that runs it, the others there being run again once.
 *
 * A message from a pool thread that ends no task (the verifier's DNS
 * questions) goes to a worker that uses that pool (the one that posted
 * last, else any), whose handler for that pool (`PoolLink.onOther`) answers it; the
 * answer goes back to the thread. So the workers' resolvers stay the road
 * to DNS, as with a pool of their own.
 *
 * Messages, link → host: { type: "run", pool, options, id, task },
 * { type: "abort", id }, { type: "answer", ref, message }. Host → link:
 * { type: "done", id, result }, { type: "failed", id, message },
 * { type: "other", pool, ref, message }. Ids are per link.
 *
 * A worker that goes away (its port closes) has its tasks ended as at a
 * deadline: nobody waits for them any more; the questions it was asked and
 * did not answer go to another worker. A task moves between threads at most
 * as often as in one worker's own pool (`maxMoves`, default its
 * `maxThreads` before the host multiplies it).
 *
 * Bounds: a host keeps, per link, one AbortController per task in flight
 * and one note per unanswered "other" message; a task's bytes are held by
 * the host while it is in flight (to run it again elsewhere), as a local
 * pool holds them.
 */
import { MessageChannel, type MessagePort } from "node:worker_threads";
import { exact, TaskPool, type TaskPoolOptions } from "./index.ts";

/** A pool's options as they cross to the host: the entry file as a URL text, no handler. */
export interface SharedPoolOptions extends Omit<TaskPoolOptions, "entry" | "onOther"> {
  readonly entry: string;
}

type ToHost =
  | { readonly type: "run"; readonly pool: string; readonly options: SharedPoolOptions; readonly id: number; readonly task: object }
  | { readonly type: "abort"; readonly id: number }
  | { readonly type: "answer"; readonly ref: number; readonly message: unknown };

type ToLink =
  | { readonly type: "done"; readonly id: number; readonly result: unknown }
  | { readonly type: "failed"; readonly id: number; readonly message: string }
  | { readonly type: "other"; readonly pool: string; readonly ref: number; readonly message: unknown };

/** In the primary thread: the shared pools, served to the worker threads' links. */
export class PoolHost {
  readonly #pools = new Map<string, TaskPool<object, unknown>>();
  /** Per pool, the link that posted to it last (it answers the pool threads' other messages). */
  readonly #lastLink = new Map<string, MessagePort>();
  /** Every open link. */
  readonly #links = new Set<MessagePort>();
  /** Other messages waiting for a link's answer: how to answer the thread. */
  readonly #waiting = new Map<number, { readonly port: MessagePort; readonly pool: string; readonly message: unknown; readonly post: (m: unknown) => void }>();
  #nextRef = 0;
  #closed = false;

  /** Pools made so far, by name, with their thread count (for tests and metrics). */
  sizes(): Record<string, number> {
    return Object.fromEntries([...this.#pools].map(([name, p]) => [name, p.size]));
  }

  /** A new link's port (hand it to one worker thread, in its transferList). */
  connect(): MessagePort {
    const { port1, port2 } = new MessageChannel();
    const running = new Map<number, AbortController>();
    port1.on("message", (m: ToHost) => {
      if (m.type === "abort") return void running.get(m.id)?.abort();
      if (m.type === "answer") {
        const w = this.#waiting.get(m.ref);
        this.#waiting.delete(m.ref);
        return void w?.post(m.message);
      }
      if (m.type !== "run") return;
      const pool = this.#pool(m.pool, m.options);
      this.#lastLink.set(m.pool, port1);
      const ac = new AbortController();
      running.set(m.id, ac);
      pool.run(m.task, ac.signal).then(
        (result) => port1.postMessage({ type: "done", id: m.id, result } satisfies ToLink),
        (err: unknown) => port1.postMessage({ type: "failed", id: m.id, message: err instanceof Error ? err.message : String(err) } satisfies ToLink),
      ).finally(() => running.delete(m.id));
    });
    this.#links.add(port1);
    // The worker is gone: its tasks are ended as at a deadline (nobody waits for them, and a question of
    // theirs that went to it would never be answered); the other tasks of their threads run again once.
    port1.on("close", () => {
      this.#links.delete(port1);
      for (const [name, p] of this.#lastLink) if (p === port1) this.#lastLink.delete(name);
      // Its unanswered questions may be other workers' tasks' (a thread asks through the link that posted last,
      // and shares one question among its tasks): they go to another open link instead of waiting for a deadline.
      for (const [ref, w] of this.#waiting) {
        if (w.port !== port1) continue;
        const next = this.#links.values().next().value;
        if (next === undefined) {
          this.#waiting.delete(ref);
          continue;
        }
        this.#waiting.set(ref, { ...w, port: next });
        next.postMessage({ type: "other", pool: w.pool, ref, message: w.message } satisfies ToLink);
      }
      for (const ac of running.values()) ac.abort();
      running.clear();
    });
    // The primary lives as long as its workers; a link does not keep it alive.
    port1.unref();
    return port2;
  }

  /** Ends every pool thread (tasks in flight fail). */
  close(): void {
    this.#closed = true;
    for (const p of this.#pools.values()) p.close();
    this.#pools.clear();
  }

  #pool(name: string, options: SharedPoolOptions): TaskPool<object, unknown> {
    let pool = this.#pools.get(name);
    if (pool !== undefined) return pool;
    if (this.#closed) throw new Error("task pools closed");
    pool = new TaskPool<object, unknown>({
      ...options,
      // As many threads at most as the workers' own pools had together (each worker's share of a stuck-thread storm stays the same).
      maxThreads: options.maxThreads * Math.max(1, this.#links.size),
      // But a stuck task moves no more often than in a worker's own pool (each move can cost a thread start).
      maxMoves: options.maxMoves ?? options.maxThreads,
      entry: new URL(options.entry),
      onOther: (message, post) => {
        // The link that posted last, else any open one (a question nobody answers holds its task until its deadline).
        const port = this.#lastLink.get(name) ?? this.#links.values().next().value;
        if (port === undefined) return;
        const ref = this.#nextRef++;
        this.#waiting.set(ref, { port, pool: name, message, post });
        port.postMessage({ type: "other", pool: name, ref, message } satisfies ToLink);
      },
    });
    this.#pools.set(name, pool);
    return pool;
  }
}

interface Pending {
  readonly resolve: (r: unknown) => void;
  readonly reject: (e: Error) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

/** In a worker thread: tasks run in the primary's shared pools (PoolHost). */
export class PoolLink {
  readonly #port: MessagePort;
  readonly #pending = new Map<number, Pending>();
  readonly #others = new Map<string, (message: unknown, post: (m: unknown) => void) => void>();
  #nextId = 0;
  #closed = false;

  constructor(port: MessagePort) {
    this.#port = port;
    port.on("message", (m: ToLink) => {
      if (m.type === "other") {
        const answer = (x: unknown): void => port.postMessage({ type: "answer", ref: m.ref, message: x } satisfies ToHost);
        return void this.#others.get(m.pool)?.(m.message, answer);
      }
      const p = this.#pending.get(m.id);
      if (p === undefined) return;
      this.#settle(m.id, p);
      if (m.type === "done") p.resolve(m.result);
      else p.reject(new Error(m.message));
    });
    port.on("close", () => this.#fail(new Error("task pools closed")));
    port.unref();
  }

  /** Answers the other messages of the pool `name`'s threads (the verifier's DNS questions). */
  onOther(name: string, handler: (message: unknown, post: (m: unknown) => void) => void): void {
    this.#others.set(name, handler);
  }

  /** As TaskPool.run, in the host's pool `name` (made with `options` on first use). */
  run<T extends object, R>(name: string, options: SharedPoolOptions, task: T, signal?: AbortSignal): Promise<R> {
    if (signal?.aborted) return Promise.reject(new Error(`${options.what} aborted`));
    if (this.#closed) return Promise.reject(new Error("task pools closed"));
    return new Promise<R>((resolve, reject) => {
      const id = this.#nextId++;
      // At the deadline: the task fails here at once; the host ends the thread that runs it.
      const onAbort = (): void => {
        const p = this.#pending.get(id);
        if (p === undefined) return;
        this.#settle(id, p);
        this.#port.postMessage({ type: "abort", id } satisfies ToHost);
        reject(new Error(`${options.what} stopped at the check deadline`));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#pending.set(id, { resolve: resolve as (r: unknown) => void, reject, signal, onAbort });
      if (this.#pending.size === 1) this.#port.ref();
      this.#port.postMessage({ type: "run", pool: name, options, id, task: exact(task) } satisfies ToHost);
    });
  }

  /** Closes the port (tasks in flight fail). */
  close(): void {
    this.#port.close();
    this.#fail(new Error("task pools closed"));
  }

  #settle(id: number, p: Pending): void {
    this.#pending.delete(id);
    p.signal?.removeEventListener("abort", p.onAbort);
    if (this.#pending.size === 0) this.#port.unref();
  }

  #fail(err: Error): void {
    this.#closed = true;
    for (const [id, p] of [...this.#pending]) {
      this.#settle(id, p);
      p.reject(err);
    }
  }
}
