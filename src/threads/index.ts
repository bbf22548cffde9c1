/**
 * Work off the session's event loop: a worker thread that runs tasks posted
 * to it (TaskThread), and a pool of them (TaskPool). Used by the checks
 * whose work is heavy or not provably linear on hostile input: the DKIM,
 * ARC and DMARC verifier (src/mailauth) and the attachment walk
 * (src/attachments).
 *
 * Protocol with the thread's entry file: it gets { type: "task", id, claim,
 * ...the task's fields }, calls readTask(message) as soon as it reads it
 * and drops the task without a word when that returns false (the task was
 * taken back before the thread read it: it runs elsewhere), calls
 * markTask(id) whenever the task's code resumes after a wait (a DNS
 * answer), and answers { type: "done", id, result } or { type: "failed",
 * id, message }; any other message it sends goes to `onOther` (the
 * verifier's DNS questions), which may answer through the thread.
 * readTask and markTask write to memory shared with the parent instead of
 * sending messages (each message wakes the other thread). The entry reads
 * its messages through servePorts, which also serves the ports a shared
 * pool's host hands it (one per session worker, shared.ts) and answers on
 * the port a message came from.
 *
 * Deadlines: a task's AbortSignal fails it at once. A task its thread
 * has not read yet is dropped there (its claim). A task it read, in a
 * thread that is stuck (no heartbeat for STALL_MS: a synchronous parser,
 * which cannot be interrupted otherwise), ends the whole thread. In a
 * thread that is not stuck (it waits, for a DNS answer that may never
 * come) a task whose entry listens (`abandons`, task.ts runTask) is
 * abandoned: its questions fail at once there and it answers within
 * GRACE_MS, or its thread is ended then (its code went on computing); the
 * thread and its other tasks go on. When a thread is ended, in a
 * TaskThread used alone every task in it fails; in a pool, the other
 * tasks of that thread are run again once, in another thread, so one
 * hostile message costs the others time, not a refusal. An idle thread is
 * unreferenced, so it keeps no process alive; its heap is capped (heapMb).
 *
 * A task the ended thread never read (its claim still POSTED, flipped to
 * DROPPED there and then, so that the ending thread can never run it) ran
 * none of its code there: it cannot be the cause of that end, so it runs
 * again elsewhere at every end but a close, however often it moved. The
 * bounds on a task that ran stay: a task a thread had read runs again once
 * after a deadline's end (each time after a blameless end) and is moved
 * from stuck threads at most maxMoves times (`moves`), so a hostile task
 * is not handed from thread to thread; a move of a task no thread had read
 * (taken from a stuck thread, or posted again at an end) does not count
 * there: it ran nowhere. Why those re-posts cannot loop for ever: each one
 * follows a stuck thread (STALL_MS at least) or the end of a thread the
 * task sat in unread, and such an end needs another task's fault (a
 * deadline or grace of a task that ran there, a crash) or a close (which
 * fails the task). A task with a deadline (every check's) is settled by it
 * whatever happens; for one without, they are counted (`reposts`): past
 * MAX_REPOSTS it is moved no more and fails at its thread's end, as
 * before. So a thread that ends before reading anything (an entry that
 * crashes at start) starts at most MAX_REPOSTS + 1 times for a task, not
 * for ever.
 *
 * A pool thread runs many tasks at once (most of a verification is waiting
 * for DNS answers, which come from the parent). A task goes to the thread
 * with the fewest tasks in flight. A thread whose event loop is held (a
 * slow synchronous parse) reads nothing and sends nothing: when nothing
 * came from it for STALL_MS, its tasks move to another thread, started for
 * them when needed (up to maxThreads), all but the one holding it (the
 * thread notes in shared memory whose code it resumes: markTask; a note
 * naming a task already done names none, and then no task it read moves
 * yet); after HOLD_MS that one moves too and the stuck thread is ended (the note can
 * miss a resumption, and this stops the parse); a task a thread had read
 * moves at most maxMoves times (default maxThreads), then stays until its
 * deadline ends its thread.
 * A task it had read runs again from the start (tasks are pure; the stuck
 * thread's late answer is ignored). So a pool normally runs one thread, and
 * starts more only while one is stuck; a thread idle for IDLE_MS beyond
 * the first is ended.
 *
 * No code of a settled task keeps running: a task taken back before its
 * thread read it is dropped there (its claim, a word of shared memory the
 * thread and the pool each set once, with compare-and-swap, so exactly
 * one of "read" and "dropped" wins); a thread that had read it gets no new
 * task and is ended as soon as nothing it tracks is left, or as soon as
 * the task is settled (resolved or failed, here or elsewhere), whichever
 * comes first (the tasks it still tracks then run again elsewhere). So a
 * hostile task burns no CPU past its deadline.
 */
import { Worker } from "node:worker_threads";
import { BEAT, DROPPED, HOLDER, POSTED, READ, SLOTS, exact } from "./slots.ts";
import { turning } from "./task.ts";

/** A pool task not acknowledged by its thread within this time goes to another thread. */
export const STALL_MS = 100;
/** A thread stuck this long gives up even the task holding it (it runs again elsewhere, at most maxThreads times) and is ended. */
export const HOLD_MS = 1000;
/** An abandoned task (task.ts) that has not answered this long after its deadline has its thread ended (its code went on computing); twice STALL_MS. */
export const GRACE_MS = 200;
/** Most times a task is taken from a thread, or posted again at a thread's end, before that thread read it (the module comment): a bound for a task without a deadline (src/limits/fixed-tasks.ts: task_reposts). */
export const MAX_REPOSTS = 8;

/** Whether a task may still be taken from its thread: one the thread read, at most maxMoves times (`moves`); one it did not, at most MAX_REPOSTS (`reposts`). */
export function mayMove(claim: Int32Array, job: { readonly moves: number; readonly reposts: number }, maxMoves: number): boolean {
  return Atomics.load(claim, 0) === POSTED ? job.reposts < MAX_REPOSTS : job.moves < maxMoves;
}
/** An idle pool thread beyond the first is ended after this time. */
export const IDLE_MS = 30_000;
/**
 * Young-generation heap of each task thread: 4 MB, half the session
 * workers' (src/server/primary.ts). Against 8 it keeps about 5 MiB less of
 * the verifier thread resident at the stack bench's peak, for 0.03–0.04 ms
 * more of the verifier's CPU per message (+5–7 % of its own, 1–1.5 % of the
 * server's; docs/benchmarks.md, "Peak RSS under 200 MB").
 */
export const YOUNG_GENERATION_MB = 4;

export interface TaskThreadOptions {
  /** The thread's entry file. */
  readonly entry: URL;
  readonly heapMb: number;
  /** What a task does, for errors ("verification", "attachment walk"). */
  readonly what: string;
  /** A message from the thread that ends no task; `post` answers it. */
  readonly onOther?: (message: unknown, post: (m: unknown) => void) => void;
  /** The entry stops a task the pool abandons (task.ts runTask): a task past its deadline in a thread that is not stuck is abandoned, its thread kept. */
  readonly abandons?: boolean;
}

type FromThread<R> =
  | { readonly type: "done"; readonly id: number; readonly result: R }
  | { readonly type: "failed"; readonly id: number; readonly message: string };

/** One task and its caller's promise; it may move from thread to thread. */
interface Job<T, R> {
  readonly task: T;
  readonly signal: AbortSignal | undefined;
  readonly resolve: (r: R) => void;
  readonly reject: (e: Error) => void;
  /** Times it was moved or run again elsewhere once a thread had read it (a move of a task no thread read counts in `reposts`). */
  moves: number;
  /** Times it was taken from a thread, or posted again at a thread's end, before that thread read it (at most MAX_REPOSTS). */
  reposts: number;
  /** Called once it is settled: ends the threads that read it and had it taken away (their copy of its code may still run). */
  readonly left: (() => void)[];
}

/** A job whose resolve and reject first end the threads left running its code (Job.left). */
function job<T, R>(task: T, signal: AbortSignal | undefined, resolve: (r: R) => void, reject: (e: Error) => void): Job<T, R> {
  const left: (() => void)[] = [];
  const end = (): void => {
    for (const f of left.splice(0)) f();
  };
  return {
    task,
    signal,
    resolve: (r) => {
      end();
      resolve(r);
    },
    reject: (e) => {
      end();
      reject(e);
    },
    moves: 0,
    reposts: 0,
    left,
  };
}

interface InFlight<T, R> {
  readonly job: Job<T, R>;
  readonly posted: number;
  readonly onAbort: () => void;
  /** Read by the thread, or dropped by the pool (POSTED, READ, DROPPED). */
  readonly claim: Int32Array;
}

export class TaskThread<T extends object, R> {
  private readonly opts: TaskThreadOptions;
  private worker: Worker | undefined;
  /** The current thread has answered once (its modules are loaded). */
  private ready = false;
  /** When the current thread was last seen doing something (a message from it, or its resumption counter moved). */
  private heard = 0;
  /** The resumption counter as last seen. */
  private beat = 0;
  /** The current thread's shared slots (see HOLDER, BEAT); undefined between threads. */
  private slot: Int32Array | undefined;
  /**
   * A task the current thread had read was taken away: its code may still
   * run there, untracked and past any deadline. Such a thread gets no new
   * task and is ended as soon as nothing tracked is left in it.
   */
  private tainted = false;
  private readonly pending = new Map<number, InFlight<T, R>>();
  /** Tasks abandoned at their deadline in the current thread (task.ts), each with the timer that ends the thread if it does not answer within GRACE_MS. */
  private readonly abandoned = new Map<number, NodeJS.Timeout>();
  private nextId = 0;
  /** Threads started so far (tests and metrics). */
  private starts = 0;
  /** In a pool: where the other tasks of a thread ended at a deadline go. */
  private readonly orphans: ((jobs: Job<T, R>[]) => void) | undefined;
  /** In a pool: a task is settled (the pool looks at idle threads). */
  private readonly settled: (() => void) | undefined;

  constructor(opts: TaskThreadOptions, pool?: { orphans: (jobs: Job<T, R>[]) => void; settled: () => void }) {
    this.opts = opts;
    this.orphans = pool?.orphans;
    this.settled = pool?.settled;
  }

  /** Tasks in flight, and those abandoned here whose code has not answered yet (it still runs: the pool does not offer this thread new tasks as if free). */
  get busy(): number {
    return this.pending.size + this.abandoned.size;
  }

  /** Threads started so far, the current one included. */
  get started(): number {
    return this.starts;
  }

  /** Whether the thread may take a new task (see `tainted`). */
  get open(): boolean {
    return !this.tainted;
  }

  /**
   * True when the thread looks held by a synchronous parse: it has had a
   * task for more than STALL_MS and shown no sign of life (no task read or
   * resumed, no message) for as long. A thread still loading its modules
   * reads nothing yet: it is not stuck.
   */
  stuck(now: number): boolean {
    this.look(now);
    if (!this.ready || now - this.heard <= STALL_MS) return false;
    for (const p of this.pending.values()) if (now - p.posted > STALL_MS) return true;
    return false;
  }

  /** Runs one task in the thread; rejects when the thread fails or `signal` aborts (the task is then dropped, abandoned or its thread ended: deadline()). */
  run(task: T, signal?: AbortSignal): Promise<R> {
    if (signal?.aborted) return Promise.reject(new Error(`${this.opts.what} aborted`));
    return new Promise<R>((resolve, reject) => this.post(job(task, signal, resolve, reject)));
  }

  /** Posts a job; returns its id here. */
  post(job: Job<T, R>): number {
    if (job.signal?.aborted === true) {
      job.reject(new Error(`${this.opts.what} stopped at the check deadline`));
      return -1;
    }
    const worker = this.thread();
    const id = this.nextId++;
    const onAbort = (): void => this.deadline(worker, id);
    job.signal?.addEventListener("abort", onAbort, { once: true });
    const claim = new Int32Array(new SharedArrayBuffer(4));
    this.pending.set(id, { job, posted: performance.now(), onAbort, claim });
    worker.ref();
    worker.postMessage({ ...exact(job.task), type: "task", id, claim: claim.buffer });
    return id;
  }

  /**
   * Takes back a task to run it elsewhere (undefined when it is done here,
   * or is the task whose code the thread resumed last, the one holding
   * it, and the thread has been stuck for less than HOLD_MS, or has moved
   * as often as it may): the thread's answer to it is then ignored. Tasks
   * are pure (a verification, a walk), so running one twice is only work.
   * A task the thread had read counts the move in `moves` (at most
   * `maxMoves`); one it had not, in `reposts` (at most MAX_REPOSTS: it ran
   * nowhere, so it keeps its one run again after a deadline's end).
   */
  take(id: number, now: number, maxMoves = Infinity): Job<T, R> | undefined {
    const p = this.pending.get(id);
    if (p === undefined) return undefined;
    // The task holding the thread stays, unless the thread has been stuck for HOLD_MS (the note may be wrong: another task's code may have resumed without one).
    // A note naming no task in flight here (it is done) tells nothing: any task the thread read may hold it (one that resumed without a note).
    const noted = this.holding();
    const read = Atomics.load(p.claim, 0) === READ;
    const holder = read && (noted === id || noted === undefined || !this.pending.has(noted));
    if (holder && now - this.heard <= HOLD_MS) return undefined;
    if (!mayMove(p.claim, p.job, maxMoves)) return undefined;
    // Not read yet: dropped, the thread will skip it (readTask). Read (before or just now): its code may run here, untracked, so the thread
    // takes no new task, and is ended when nothing tracked is left in it (forget) or when the task is settled, wherever (Job.left).
    if (Atomics.compareExchange(p.claim, 0, POSTED, DROPPED) === POSTED) p.job.reposts++;
    else {
      // Read just now: the bound of a task that ran.
      if (p.job.moves >= maxMoves) return undefined;
      p.job.moves++;
      this.tainted = true;
      const w = this.worker;
      if (w !== undefined) p.job.left.push(() => this.restart(w, new Error(`${this.opts.what} thread ended`), undefined, true));
    }
    this.forget(id, p);
    return p.job;
  }

  /**
   * Task `id`'s deadline: it fails at once. Not read yet: dropped (the
   * thread skips it). Read, in a thread whose event loop turned within
   * STALL_MS, with an entry that listens: abandoned (task.ts), the thread
   * kept unless the task does not answer within GRACE_MS. Else the thread
   * is ended (its other tasks run again once elsewhere, in a pool).
   */
  private deadline(w: Worker, id: number): void {
    const p = this.pending.get(id);
    if (this.worker !== w || p === undefined) return;
    const err = new Error(`${this.opts.what} stopped at the check deadline`);
    const unread = Atomics.compareExchange(p.claim, 0, POSTED, DROPPED) === POSTED;
    if (!unread && this.opts.abandons !== true) return this.restart(w, err, id);
    this.forget(id, p);
    p.job.reject(err);
    this.settled?.();
    if (unread) return;
    if (this.slot === undefined || !turning(this.slot)) return this.restart(w, err, id);
    w.postMessage({ type: "abandon", id });
    const timer = setTimeout(() => {
      if (this.abandoned.delete(id)) this.restart(w, new Error(`${this.opts.what} thread ended: an abandoned task went on`), id);
    }, GRACE_MS);
    this.abandoned.set(id, timer.unref());
  }

  /** Whether the task is still in flight here. */
  has(id: number): boolean {
    return this.pending.has(id);
  }

  /**
   * Whether task `id` is still here and may yet be taken from this thread
   * when it is stuck (take): one the thread has not read, up to MAX_REPOSTS
   * times whatever its moves (a move of it runs nowhere), or one it read
   * that moved fewer than `maxMoves` times.
   */
  movable(id: number, maxMoves: number): boolean {
    const p = this.pending.get(id);
    if (p === undefined) return false;
    return mayMove(p.claim, p.job, maxMoves);
  }

  /** The task whose code the thread resumed last (markTask): when it is stuck, the one holding it. */
  private holding(): number | undefined {
    const v = this.slot === undefined ? 0 : Atomics.load(this.slot, HOLDER);
    return v > 0 ? v - 1 : undefined;
  }

  /** Notes activity seen in the shared counter since the last look. */
  private look(now: number): void {
    if (this.slot === undefined) return;
    const b = Atomics.load(this.slot, BEAT);
    if (b === this.beat) return;
    this.beat = b;
    this.heard = now;
    this.ready = true;
  }

  /** Ends the thread (tasks in flight fail). */
  close(): void {
    if (this.worker) this.restart(this.worker, new Error(`${this.opts.what} thread closed`), undefined, false, true);
  }

  private forget(id: number, p: InFlight<T, R>): void {
    this.pending.delete(id);
    p.job.signal?.removeEventListener("abort", p.onAbort);
    if (this.pending.size > 0) return;
    // A tainted thread with nothing tracked left is ended: that stops the code of the tasks taken from it.
    if (this.tainted && this.worker !== undefined) this.restart(this.worker, new Error(`${this.opts.what} thread ended`));
    // Only a thread with work in flight keeps the process alive.
    else this.worker?.unref();
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const slot = new Int32Array(new SharedArrayBuffer(SLOTS * 4));
    const w = new Worker(this.opts.entry, { workerData: { taskSlot: slot.buffer }, resourceLimits: { maxOldGenerationSizeMb: this.opts.heapMb, maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } });
    // A new thread loads its modules first: it is not stuck until it has shown life (look, or an answer).
    this.starts++;
    this.slot = slot;
    this.beat = 0;
    this.ready = false;
    this.heard = performance.now();
    w.on("message", (m: FromThread<R> | { readonly type?: unknown }) => {
      if (this.worker === w) this.heard = performance.now();
      if (m.type !== "done" && m.type !== "failed") return this.opts.onOther?.(m, (x) => w.postMessage(x));
      const e = m as FromThread<R>;
      if (this.worker !== w) return;
      this.ready = true;
      const p = this.pending.get(e.id);
      if (p === undefined) {
        // An abandoned task's answer: its code is done, the thread stays (and is free of it: the pool may find it idle).
        clearTimeout(this.abandoned.get(e.id));
        if (this.abandoned.delete(e.id)) this.settled?.();
        return;
      }
      this.forget(e.id, p);
      if (e.type === "done") p.job.resolve(e.result);
      else p.job.reject(new Error(e.message));
      this.settled?.();
    });
    w.on("error", (err) => this.restart(w, err));
    w.on("exit", () => this.restart(w, new Error(`${this.opts.what} thread exited`)));
    // An idle thread keeps nothing alive (after the listeners: adding them refs it again).
    w.unref();
    this.worker = w;
    return w;
  }

  /**
   * Ends `w` (when it is still the current thread); the next task starts a
   * new thread. The task whose deadline ended it (`culprit`) fails; the
   * others fail too, or, in a pool, are run again once elsewhere (each of
   * them, however often it moved, when `blameless`: the thread was ended
   * for the code of a task it no longer tracks); in a pool, a task the
   * thread never read runs again elsewhere whatever ended it (but a close),
   * up to MAX_REPOSTS times (the module comment).
   */
  private restart(w: Worker, err: Error, culprit?: number, blameless = false, closing = false): void {
    if (this.worker !== w) return;
    this.worker = undefined;
    // Until the next thread: nothing to look at (the ended thread's counter must not pass for the next one's life).
    this.slot = undefined;
    this.ready = false;
    this.tainted = false;
    for (const timer of this.abandoned.values()) clearTimeout(timer);
    this.abandoned.clear();
    void w.terminate();
    const again: Job<T, R>[] = [];
    for (const [id, p] of [...this.pending]) {
      this.forget(id, p);
      // Never read: dropped for good (the ending thread may still reach it), and innocent of this end.
      const unread = Atomics.compareExchange(p.claim, 0, POSTED, DROPPED) === POSTED;
      if (this.orphans === undefined || closing) p.job.reject(err);
      else if (unread ? p.job.reposts++ < MAX_REPOSTS : blameless || (id !== culprit && culprit !== undefined && p.job.moves === 0)) {
        if (!unread) p.job.moves++;
        again.push(p.job);
      } else p.job.reject(err);
    }
    if (again.length > 0) this.orphans?.(again);
    this.settled?.();
  }
}

export interface TaskPoolOptions extends TaskThreadOptions {
  /** Most threads. */
  readonly maxThreads: number;
  /** Most times a task that a thread had read moves to another thread when its thread is stuck (default maxThreads; moves of a task no thread read are bounded by MAX_REPOSTS). */
  readonly maxMoves?: number;
  /** End idle threads beyond one after IDLE_MS (a thread's parsed state is then kept in one). */
  readonly keepOneIdle?: boolean;
  /** How long an idle thread beyond the first lives with keepOneIdle (default IDLE_MS). */
  readonly idleMs?: number;
}

/** Up to maxThreads threads: each task to the least busy thread that is not stuck, else a new one (see the module comment). */
export class TaskPool<T extends object, R> {
  private readonly opts: TaskPoolOptions;
  private readonly threads: TaskThread<T, R>[] = [];
  private idleTimer: NodeJS.Timeout | undefined;
  /** Threads started by the TaskThreads this pool no longer holds. */
  private retired = 0;
  /** Closed: no thread starts again (a thread ended at close may hand back tasks, see TaskThread.restart). */
  private closed = false;

  constructor(opts: TaskPoolOptions) {
    this.opts = opts;
  }

  get size(): number {
    return this.threads.length;
  }

  /** Threads started so far (tests and metrics: a thread ended at a deadline is started again on use). */
  get started(): number {
    return this.threads.reduce((n, t) => n + t.started, this.retired);
  }

  run(task: T, signal?: AbortSignal): Promise<R> {
    if (signal?.aborted) return Promise.reject(new Error(`${this.opts.what} aborted`));
    return new Promise<R>((resolve, reject) => this.dispatch(job(task, signal, resolve, reject)));
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.idleTimer);
    for (const t of this.threads.splice(0)) t.close();
  }

  private dispatch(job: Job<T, R>, avoid?: TaskThread<T, R>): void {
    if (this.closed) return job.reject(new Error(`${this.opts.what} pool closed`));
    const now = performance.now();
    let t: TaskThread<T, R> | undefined;
    for (const x of this.threads) {
      if (x === avoid || !x.open || x.stuck(now)) continue;
      if (t === undefined || x.busy < t.busy) t = x;
    }
    if (t === undefined && this.threads.length < this.opts.maxThreads) {
      t = new TaskThread<T, R>(this.opts, { orphans: (jobs) => jobs.forEach((j) => this.dispatch(j)), settled: () => this.settled() });
      this.threads.push(t);
    }
    // Every thread stuck and no room for another: the least busy open one (else any).
    t ??= this.threads.filter((x) => x.open).reduce<TaskThread<T, R> | undefined>((a, b) => (a === undefined || b.busy < a.busy ? b : a), undefined) ?? this.threads.reduce((a, b) => (b.busy < a.busy ? b : a));
    const thread = t;
    let id: number;
    try {
      id = thread.post(job);
    } catch (err) {
      // A thread that cannot start (this runs from timers too: it must not throw).
      job.reject(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (id < 0 || this.opts.maxThreads < 2) return;
    // While it is in flight: when its thread is stuck, move the task (one that ran at most maxMoves times: take), unless it holds the thread.
    const maxMoves = this.opts.maxMoves ?? this.opts.maxThreads;
    const check = (): void => {
      // A task that moved as often as it may is still taken while its thread has not read it (it ran nowhere there).
      if (!thread.movable(id, maxMoves)) return;
      const now = performance.now();
      const moved = thread.stuck(now) ? thread.take(id, now, maxMoves) : undefined;
      if (moved === undefined) {
        setTimeout(check, STALL_MS).unref();
        return;
      }
      this.dispatch(moved, thread);
    };
    setTimeout(check, STALL_MS + 1).unref();
  }

  /** After a task: idle threads beyond the first are ended once idle for IDLE_MS. */
  private settled(): void {
    if (this.opts.keepOneIdle !== true || this.idleTimer !== undefined) return;
    if (this.threads.filter((x) => x.busy === 0).length < 2) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      const idle = this.threads.filter((x) => x.busy === 0);
      for (const t of idle.slice(1)) {
        t.close();
        this.retired += t.started;
        this.threads.splice(this.threads.indexOf(t), 1);
      }
    }, this.opts.idleMs ?? IDLE_MS);
    this.idleTimer.unref();
  }
}

export { BEAT, BUSY, DROPPED, HOLDER, POSTED, POSTS, PULSE, READ, SHUT, SLOTS, exact, markTask, ownBytes, readTask } from "./slots.ts";
export { PoolHost, PoolLink, type EndCause, type EndReason, type SharedPoolOptions } from "./shared.ts";
export { batchedPeer, runTask, runningTasks, servePorts, unbatch, type TaskPeer } from "./task.ts";
