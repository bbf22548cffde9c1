/**
 * In a worker thread: tasks run in the primary's shared pools (shared.ts
 * PoolHost), straight over a port of their own to each pool thread. This
 * side schedules its tasks as TaskPool does (index.ts): the least busy
 * thread that takes tasks and is not stuck (BUSY counts every worker's
 * tasks there); none: the host is asked for a new one (the task waits for
 * it, or, when the host is full, goes to the least busy thread); a task
 * unread by a stuck thread after STALL_MS is moved, the one holding the
 * thread after HOLD_MS (that thread then takes no new task, SHUT, and is
 * ended when nothing is left in it or when the task is settled); a task's
 * deadline fails it at once: unread, it is dropped; read, in a thread
 * whose heartbeat moved within STALL_MS, it is abandoned there (task.ts:
 * the thread and its other tasks go on) when the pool's entry listens
 * (`abandons`), and the host ends the thread only if it does not answer
 * within GRACE_MS; read, in a stuck thread, the host ends its thread at
 * once. Each end is
 * told by the host ("gone"), and this side runs that thread's other tasks
 * again or fails them (shared.ts; one the thread never read always runs
 * again, up to MAX_REPOSTS times: index.ts). The threads' other messages (the
 * verifier's DNS questions about this worker's tasks) go to `onOther`.
 *
 * A task's byte arrays are copied once into buffers of their own and
 * transferred (the caller keeps its bytes, for a run elsewhere). The
 * messages to one thread in one turn of the event loop go as one batch,
 * as the thread's own do (index.ts batchedPeer): a wake-up costs more than
 * a copy.
 */
import type { MessagePort } from "node:worker_threads";
import { BEAT, BUSY, DROPPED, GRACE_MS, HOLD_MS, HOLDER, MAX_REPOSTS, mayMove, POSTED, POSTS, READ, SHUT, STALL_MS, unbatch } from "./index.ts";
import type { EndCause, GoneReason, SharedPoolOptions, ToHost, ToLink } from "./shared.ts";
import { turning } from "./task.ts";

type Handler = (message: unknown, post: (m: unknown) => void) => void;

interface Job {
  readonly task: object;
  readonly signal: AbortSignal | undefined;
  readonly resolve: (r: unknown) => void;
  readonly reject: (e: Error) => void;
  /** Times it was moved or run again elsewhere once a thread had read it (a move of a task no thread read counts in `reposts`). */
  moves: number;
  /** Times it was taken from a thread, or posted again at a thread's end, before that thread read it (at most MAX_REPOSTS: index.ts). */
  reposts: number;
  /** Called once it is settled: ends the threads that read it and had it taken away (their copy of its code may still run). */
  readonly left: (() => void)[];
}

interface Sent {
  readonly job: Job;
  readonly posted: number;
  readonly onAbort: () => void;
  /** Read by the thread, or dropped here (POSTED, READ, DROPPED). */
  readonly claim: Int32Array;
}

/** One pool thread as this worker sees it. */
interface View {
  readonly no: number;
  readonly port: MessagePort;
  readonly slot: Int32Array;
  /** This worker's tasks in flight there (and those abandoned there whose code has not answered yet), counted for the host (which ends the thread if this worker goes away with any). */
  readonly mine: Int32Array;
  /** This worker's tasks in flight there. */
  readonly pending: Map<number, Sent>;
  /** This worker's tasks abandoned there at their deadline, each with the timer that has the host end the thread if it does not answer within GRACE_MS (each counted in `mine` and BUSY until then). */
  readonly abandoned: Map<number, NodeJS.Timeout>;
  /** BEAT as last seen, and when this side last saw the thread do something. */
  beat: number;
  heard: number;
  /** The thread has shown life (its modules are loaded): before that it is not stuck. */
  ready: boolean;
  /** Messages posted in this turn of the event loop, sent as one (batchedPeer), with the buffers they transfer. */
  outbox: unknown[];
  transfer: ArrayBuffer[];
}

/** Posts `message` to the thread with this turn's others (one wake-up for them all). */
function send(v: View, message: unknown, transfer: readonly ArrayBuffer[] = []): void {
  v.transfer.push(...transfer);
  if (v.outbox.push(message) > 1) return;
  setImmediate(() => {
    const list = v.outbox;
    const buffers = v.transfer;
    v.outbox = [];
    v.transfer = [];
    v.port.postMessage(list.length === 1 ? list[0] : { type: "batch", list }, buffers);
  });
}

interface LinkPool {
  readonly name: string;
  options: SharedPoolOptions | undefined;
  readonly views: Map<number, View>;
  /** Tasks waiting for a thread the host was asked for, with their deadline listeners. */
  readonly waiting: Map<Job, () => void>;
  /** A "grow" is unanswered. */
  growing: boolean;
  /** The host said it has no room (until a thread ends). */
  full: boolean;
  /** One past the highest thread number seen (a "grow" tells the host which threads this side knew). */
  seen: number;
}

/** The task with each byte array copied into a buffer of its own, and those buffers, to transfer. */
function transferable(task: object): { message: Record<string, unknown>; transfer: ArrayBuffer[] } {
  const message: Record<string, unknown> = { ...(task as Record<string, unknown>) };
  const transfer: ArrayBuffer[] = [];
  for (const [k, v] of Object.entries(message)) {
    if (!(v instanceof Uint8Array)) continue;
    const own = new Uint8Array(v.byteLength);
    own.set(v);
    message[k] = own;
    transfer.push(own.buffer);
  }
  return { message, transfer };
}

/** In a worker thread: tasks run in the primary's shared pools (PoolHost), over direct ports to their threads. */
export class PoolLink {
  readonly #port: MessagePort;
  readonly #pools = new Map<string, LinkPool>();
  readonly #others = new Map<string, Handler>();
  #ids: Int32Array | undefined;
  #localIds = 0;
  /** Tasks in flight or waiting (the control port is referenced while there are any). */
  #open = 0;
  #closed = false;

  constructor(port: MessagePort) {
    this.#port = port;
    port.on("message", (m: ToLink) => {
      if (m.type === "hello") this.#ids = new Int32Array(m.ids);
      else if (m.type === "thread") this.#added(this.#pool(m.pool), m);
      else if (m.type === "full" || m.type === "known") {
        const pool = this.#pool(m.pool);
        pool.growing = false;
        if (m.type === "full") pool.full = true;
        // The host is closed (the primary shuts down): the tasks waiting for a thread fail now, not at their deadlines (or never).
        if (m.type === "full" && m.closed === true) {
          pool.full = false; // a later task asks again, and fails likewise
          this.#failWaiting(pool, new Error(`${this.#what(pool)} pool closed`));
        } else this.#flush(pool);
      } else if (m.type === "gone") this.#gone(this.#pool(m.pool), m.no, m.reason);
    });
    port.on("close", () => this.#fail(new Error("task pools closed")));
    port.unref();
  }

  /** Answers the other messages of the pool `name`'s threads (the verifier's DNS questions about this worker's tasks). */
  onOther(name: string, handler: Handler): void {
    this.#others.set(name, handler);
  }

  /** As TaskPool.run, in the host's pool `name` (made with `options` on first use). */
  run<T extends object, R>(name: string, options: SharedPoolOptions, task: T, signal?: AbortSignal): Promise<R> {
    if (signal?.aborted) return Promise.reject(new Error(`${options.what} aborted`));
    if (this.#closed) return Promise.reject(new Error("task pools closed"));
    const pool = this.#pool(name);
    pool.options ??= options;
    return new Promise<R>((resolve, reject) => {
      const left: (() => void)[] = [];
      const settle = (): void => {
        for (const f of left.splice(0)) f();
        if (--this.#open === 0) this.#port.unref();
      };
      if (this.#open++ === 0) this.#port.ref();
      const job: Job = {
        task,
        signal,
        resolve: (r) => {
          settle();
          resolve(r as R);
        },
        reject: (e) => {
          settle();
          reject(e);
        },
        moves: 0,
        reposts: 0,
        left,
      };
      this.#dispatch(pool, job);
    });
  }

  /** Closes the ports (tasks in flight fail; their threads, if busy, are ended by the host). */
  close(): void {
    this.#fail(new Error("task pools closed"));
  }

  #pool(name: string): LinkPool {
    let pool = this.#pools.get(name);
    if (pool === undefined) {
      pool = { name, options: undefined, views: new Map(), waiting: new Map(), growing: false, full: false, seen: 0 };
      this.#pools.set(name, pool);
    }
    return pool;
  }

  #what(pool: LinkPool): string {
    return pool.options?.what ?? "task";
  }

  #added(pool: LinkPool, m: Extract<ToLink, { type: "thread" }>): void {
    const slot = new Int32Array(m.slot);
    const beat = Atomics.load(slot, BEAT);
    const v: View = { no: m.no, port: m.port, slot, mine: new Int32Array(m.mine), pending: new Map(), abandoned: new Map(), beat, heard: performance.now(), ready: beat > 0, outbox: [], transfer: [] };
    if (this.#closed) return void m.port.close();
    pool.views.set(m.no, v);
    pool.seen = Math.max(pool.seen, m.no + 1);
    m.port.on("message", (batch: unknown) => {
      if (pool.views.get(v.no) !== v) return;
      v.heard = performance.now();
      v.ready = true;
      for (const item of unbatch(batch)) {
        const x = item as { readonly type?: unknown; readonly id?: number; readonly result?: unknown; readonly message?: string };
        if (x.type !== "done" && x.type !== "failed") {
          this.#others.get(pool.name)?.(x, (a) => send(v, a));
          continue;
        }
        const s = v.pending.get(x.id as number);
        if (s === undefined) {
          // An abandoned task's answer: its code is done, the thread stays (and no longer runs this worker's code).
          const timer = v.abandoned.get(x.id as number);
          if (timer === undefined) continue;
          clearTimeout(timer);
          v.abandoned.delete(x.id as number);
          this.#release(pool, v);
          continue;
        }
        this.#forget(pool, v, x.id as number, s);
        if (x.type === "done") s.job.resolve(x.result);
        else s.job.reject(new Error(x.message));
      }
    });
    m.port.unref();
    if (m.grown) pool.growing = false;
    this.#flush(pool);
  }

  /** The tasks waiting for a thread fail. */
  #failWaiting(pool: LinkPool, err: Error): void {
    const jobs = [...pool.waiting];
    pool.waiting.clear();
    for (const [job, onAbort] of jobs) {
      job.signal?.removeEventListener("abort", onAbort);
      job.reject(err);
    }
  }

  /** The tasks waiting for a thread, dispatched again. */
  #flush(pool: LinkPool): void {
    const jobs = [...pool.waiting];
    pool.waiting.clear();
    for (const [job, onAbort] of jobs) {
      job.signal?.removeEventListener("abort", onAbort);
      this.#dispatch(pool, job);
    }
  }

  #dispatch(pool: LinkPool, job: Job, avoid?: View): void {
    if (this.#closed) return job.reject(new Error("task pools closed"));
    if (job.signal?.aborted === true) return job.reject(new Error(`${this.#what(pool)} stopped at the check deadline`));
    const now = performance.now();
    let best: View | undefined;
    let bestBusy = Infinity;
    let fallback: View | undefined;
    let fallbackBusy = Infinity;
    for (const v of pool.views.values()) {
      const busy = Atomics.load(v.slot, BUSY);
      if (busy < 0) continue;
      const open = Atomics.load(v.slot, SHUT) === 0;
      // Every thread stuck and no room for another: the least busy open one (else any).
      const rank = open ? busy : busy + 2 ** 20;
      if (rank < fallbackBusy) {
        fallback = v;
        fallbackBusy = rank;
      }
      if (v === avoid || !open || this.#stuck(v, now)) continue;
      if (busy < bestBusy) {
        best = v;
        bestBusy = busy;
      }
    }
    const target = best ?? (pool.full ? fallback : undefined);
    if (target === undefined) return this.#wait(pool, job);
    this.#post(pool, target, job);
  }

  /** No thread fit for the task: it waits for one, and the host is asked for a new one (unless it said it is full). */
  #wait(pool: LinkPool, job: Job): void {
    const onAbort = (): void => {
      if (!pool.waiting.delete(job)) return;
      job.reject(new Error(`${this.#what(pool)} stopped at the check deadline`));
    };
    job.signal?.addEventListener("abort", onAbort, { once: true });
    pool.waiting.set(job, onAbort);
    if (pool.growing || pool.full || pool.options === undefined) return;
    pool.growing = true;
    this.#port.postMessage({ type: "grow", pool: pool.name, options: pool.options, seen: pool.seen } satisfies ToHost);
  }

  #post(pool: LinkPool, v: View, job: Job): void {
    // The host is ending this thread for idleness: elsewhere.
    if (Atomics.add(v.slot, BUSY, 1) < 0) {
      Atomics.sub(v.slot, BUSY, 1);
      return this.#wait(pool, job);
    }
    Atomics.add(v.slot, POSTS, 1);
    Atomics.add(v.mine, 0, 1);
    const id = (this.#ids !== undefined ? Atomics.add(this.#ids, 0, 1) : this.#localIds++) & 0x3fffffff;
    const claim = new Int32Array(new SharedArrayBuffer(4));
    const onAbort = (): void => this.#deadline(pool, v, id);
    job.signal?.addEventListener("abort", onAbort, { once: true });
    v.pending.set(id, { job, posted: performance.now(), onAbort, claim });
    if (v.pending.size === 1) v.port.ref();
    const { message, transfer } = transferable(job.task);
    send(v, { ...message, type: "task", id, claim: claim.buffer }, transfer);
    const options = pool.options;
    if (options === undefined || options.maxThreads < 2) return;
    const maxMoves = options.maxMoves ?? options.maxThreads;
    // While it is in flight: when its thread is stuck, move the task (one that ran at most maxMoves times: #take), unless it holds the thread.
    const check = (): void => {
      // A task that moved as often as it may is still taken while its thread has not read it (it ran nowhere there: TaskThread.movable).
      const s = v.pending.get(id);
      if (s === undefined || pool.views.get(v.no) !== v) return;
      if (!mayMove(s.claim, job, maxMoves)) return;
      const now = performance.now();
      const moved = this.#stuck(v, now) ? this.#take(pool, v, id, now, maxMoves) : undefined;
      if (moved === undefined) {
        setTimeout(check, STALL_MS).unref();
        return;
      }
      this.#dispatch(pool, moved, v);
    };
    setTimeout(check, STALL_MS + 1).unref();
  }

  /**
   * A task's deadline: it fails here at once. Unread: dropped there. Read,
   * in a thread that is not stuck, with an entry that listens: abandoned
   * there (task.ts), and the host ends the thread only if it does not
   * answer within GRACE_MS. Else the host ends the thread that runs it
   * (its other tasks run again once).
   */
  #deadline(pool: LinkPool, v: View, id: number): void {
    const s = v.pending.get(id);
    if (s === undefined) return;
    const unread = Atomics.compareExchange(s.claim, 0, POSTED, DROPPED) === POSTED;
    const abandon = !unread && pool.options?.abandons === true && turning(v.slot);
    this.#unlist(v, id, s);
    // Abandoned, its code still runs there until it answers: it stays counted in `mine` (if this worker goes away
    // within the grace, and its timer with it, the host ends the thread, as for a task in flight: shared.ts) and in
    // BUSY (the thread is not offered new tasks as if it were free meanwhile).
    if (!abandon) this.#release(pool, v);
    s.job.reject(new Error(`${this.#what(pool)} stopped at the check deadline`));
    if (unread) return;
    if (pool.options?.abandons !== true) return this.#end(pool, v, "deadline");
    if (!abandon) return this.#end(pool, v, "stuck");
    send(v, { type: "abandon", id });
    const timer = setTimeout(() => {
      if (!v.abandoned.delete(id)) return;
      this.#end(pool, v, "grace");
      this.#release(pool, v);
    }, GRACE_MS);
    v.abandoned.set(id, timer.unref());
  }

  /** Has the host end thread `v` as at a deadline (its other tasks run again once). */
  #end(pool: LinkPool, v: View, cause: EndCause): void {
    if (this.#closed || pool.views.get(v.no) !== v) return;
    this.#port.postMessage({ type: "end", pool: pool.name, no: v.no, reason: "deadline", cause } satisfies ToHost);
  }

  /** True when the thread looks held by a synchronous parse (as TaskThread.stuck, for this worker's tasks there). */
  #stuck(v: View, now: number): boolean {
    const b = Atomics.load(v.slot, BEAT);
    if (b !== v.beat) {
      v.beat = b;
      v.heard = now;
      v.ready = true;
    }
    if (!v.ready || now - v.heard <= STALL_MS) return false;
    for (const s of v.pending.values()) if (now - s.posted > STALL_MS) return true;
    return false;
  }

  /** As TaskThread.take: takes back a task of a stuck thread to run it elsewhere (undefined: it stays; a move counted in `moves` or `reposts`). */
  #take(pool: LinkPool, v: View, id: number, now: number, maxMoves: number): Job | undefined {
    const s = v.pending.get(id);
    if (s === undefined) return undefined;
    // The note names the task whose code the thread resumed last; one naming no task of this worker's there may be
    // another worker's, or done: then any task the thread read may hold it.
    const h = Atomics.load(v.slot, HOLDER);
    const noted = h > 0 ? h - 1 : undefined;
    const read = Atomics.load(s.claim, 0) === READ;
    const holder = read && (noted === id || noted === undefined || !v.pending.has(noted));
    if (holder && now - v.heard <= HOLD_MS) return undefined;
    if (!mayMove(s.claim, s.job, maxMoves)) return undefined;
    // Read: its code may run there, untracked: the thread takes no new task, and is ended when nothing is left in it
    // (forget) or when the task is settled, wherever (Job.left).
    if (Atomics.compareExchange(s.claim, 0, POSTED, DROPPED) === POSTED) s.job.reposts++;
    else {
      // Read just now: the bound of a task that ran.
      if (s.job.moves >= maxMoves) return undefined;
      s.job.moves++;
      Atomics.store(v.slot, SHUT, 1);
      s.job.left.push(() => this.#port.postMessage({ type: "end", pool: pool.name, no: v.no, reason: "blameless" } satisfies ToHost));
    }
    this.#forget(pool, v, id, s);
    return s.job;
  }

  #forget(pool: LinkPool, v: View, id: number, s: Sent): void {
    this.#unlist(v, id, s);
    this.#release(pool, v);
  }

  /** Task `id` is no longer this side's to settle (its counts in `mine` and BUSY are left to #release). */
  #unlist(v: View, id: number, s: Sent): void {
    v.pending.delete(id);
    s.job.signal?.removeEventListener("abort", s.onAbort);
    if (v.pending.size === 0) v.port.unref();
  }

  /** One of this worker's tasks no longer runs in thread `v`: its counts in `mine` and BUSY go. */
  #release(pool: LinkPool, v: View): void {
    Atomics.sub(v.mine, 0, 1);
    const left = Atomics.sub(v.slot, BUSY, 1) - 1;
    // A thread that takes no new task, with nothing left in it: ended (that stops the code of the tasks taken from it).
    if (left === 0 && Atomics.load(v.slot, SHUT) !== 0) this.#port.postMessage({ type: "end", pool: pool.name, no: v.no, reason: "blameless" } satisfies ToHost);
  }

  /**
   * The host ended thread `no`: its tasks here run again elsewhere or fail, by the reason; a task it never read runs
   * again whatever the reason (but a close), up to MAX_REPOSTS times (index.ts, the module comment).
   */
  #gone(pool: LinkPool, no: number, reason: GoneReason): void {
    const v = pool.views.get(no);
    pool.full = false;
    if (v !== undefined) {
      pool.views.delete(no);
      v.port.close();
      for (const timer of v.abandoned.values()) clearTimeout(timer);
      v.abandoned.clear();
      const what = this.#what(pool);
      const again: Job[] = [];
      for (const [id, s] of [...v.pending]) {
        v.pending.delete(id);
        s.job.signal?.removeEventListener("abort", s.onAbort);
        // Never read: dropped for good (the ended thread may not be gone yet), and innocent of this end.
        const unread = reason !== "closed" && Atomics.compareExchange(s.claim, 0, POSTED, DROPPED) === POSTED;
        if (unread ? s.job.reposts++ < MAX_REPOSTS : reason === "blameless" || reason === "idle" || (reason === "deadline" && s.job.moves === 0)) {
          if (!unread) s.job.moves++;
          again.push(s.job);
        } else s.job.reject(new Error(reason === "closed" ? `${what} pool closed` : reason === "deadline" ? `${what} stopped at the check deadline` : `${what} thread exited`));
      }
      for (const job of again) this.#dispatch(pool, job);
    }
    this.#flush(pool);
  }

  #fail(err: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#port.close();
    for (const pool of this.#pools.values()) {
      const jobs = [...pool.waiting.keys()];
      pool.waiting.clear();
      for (const v of pool.views.values()) {
        for (const s of v.pending.values()) {
          s.job.signal?.removeEventListener("abort", s.onAbort);
          jobs.push(s.job);
        }
        v.pending.clear();
        for (const timer of v.abandoned.values()) clearTimeout(timer);
        v.abandoned.clear();
        v.port.close();
      }
      pool.views.clear();
      for (const job of jobs) job.reject(err);
    }
  }
}
