/**
 * One TaskPool-like set of threads per kind of task for the whole process,
 * shared by the worker threads, instead of one pool per worker thread:
 * fewer isolates (each verifier thread with mailauth loaded is tens of MB
 * once it has worked) and each one busier (its JIT hotter, its caches
 * fuller).
 *
 * The primary thread holds a PoolHost and gives each worker thread a
 * control port to it (PoolHost.connect(), in workerData); the worker runs
 * tasks through a PoolLink (link.ts) over it: `run(name, options, task,
 * signal)` does what TaskPool.run does, in the shared pool of that name.
 *
 * A direct road per (worker, pool thread) pair: the host starts the
 * threads and, for each thread and each link, makes a MessageChannel and
 * transfers one port to the thread ({ type: "link", port }, read by
 * servePorts in the thread's entry) and the other to the link ({ type:
 * "thread", ... }). Tasks, their results and the thread's questions (the
 * verifier's DNS questions, answered by the worker whose task asked, with
 * its resolver) then go between the worker and the thread alone: the
 * primary relays no task. A task's bytes are copied once into a buffer of
 * their own and transferred, not cloned. The link schedules its own tasks
 * as TaskPool does (the least busy thread that takes tasks and is not
 * stuck; a stuck thread's tasks moved; a task moved at most `maxMoves`
 * times), reading the threads' shared slots (src/threads index.ts: BUSY
 * counts every worker's tasks in flight there, SHUT marks a thread that
 * takes no new task, HOLDER and BEAT show what it runs).
 *
 * The host decides what only it can: starting a thread (a link with no
 * thread fit for a task asks, { type: "grow" }; the host starts one while
 * below `maxThreads` times the links then connected, unless it started one
 * the link had not seen yet, else answers "full"),
 * and ending one (a task's deadline in a stuck thread, or an abandoned
 * task that did not end within GRACE_MS, { type: "end" }; a stuck thread that
 * lost a task it had read; a crash; idleness: a thread beyond the first
 * with no task posted for `idleMs` (default IDLE_MS) when keepOneIdle).
 * Every end is told to every link ({ type: "gone", reason }), which then
 * runs that thread's other tasks again once elsewhere (a deadline), each
 * of them again (the thread was ended for no fault of theirs), or fails
 * them (the thread crashed); a task the thread never read runs again
 * whatever the reason but a close (up to MAX_REPOSTS times: index.ts). A worker that goes away has its tasks ended
 * as at a deadline: the threads with any of its tasks in flight (each link
 * counts its own tasks per thread in a shared counter, `mine`, beside
 * BUSY; an abandoned task until its code answers) are ended, the other workers' tasks there run again once; a
 * thread holding none of its tasks is left alone.
 *
 * Messages, link → host: { type: "grow", pool, options, seen }, { type:
 * "end", pool, no, reason, cause }. Host → link: { type: "hello", ids }, { type:
 * "thread", pool, no, port, slot, grown }, { type: "full", pool, closed }, { type:
 * "known", pool }, { type: "gone", pool, no, reason }. No message per task
 * crosses the host.
 *
 * The host counts the threads it starts and ends, by pool and reason
 * (threadSamples: the primary's metrics; EndReason).
 *
 * Bounds: the host keeps per pool one entry per thread (at most maxThreads
 * times the links); ports are one per (link, thread). A link keeps, per
 * task in flight, its job (the task, for a run elsewhere) and its claim.
 */
import { MessageChannel, Worker, type MessagePort } from "node:worker_threads";
import { BUSY, IDLE_MS, POSTS, SLOTS, YOUNG_GENERATION_MB, type TaskPoolOptions } from "./index.ts";

/** A pool's options as they cross to the host: the entry file as a URL text, no handler. */
export interface SharedPoolOptions extends Omit<TaskPoolOptions, "entry" | "onOther"> {
  readonly entry: string;
}

/** Why a thread was ended: what its other tasks' links do with them (link.ts). */
export type GoneReason = "deadline" | "blameless" | "idle" | "crash" | "closed";

/**
 * Why a link asks the host to end a thread (the metrics' `reason`): `stuck`, a task's deadline in a thread held by
 * a synchronous parse; `grace`, an abandoned task whose code did not answer within GRACE_MS; `deadline`, a task's
 * deadline in a pool whose entry does not abandon; `shut`, a stuck thread whose tasks were moved, with nothing left in it.
 */
export type EndCause = "stuck" | "grace" | "deadline" | "shut";

/** Why threads ended, as counted by the host (wardmail_task_threads_ended_total's `reason`). */
export type EndReason = EndCause | "worker_gone" | "idle" | "crash" | "closed";

export type ToHost =
  | { readonly type: "grow"; readonly pool: string; readonly options: SharedPoolOptions; readonly seen: number }
  | { readonly type: "end"; readonly pool: string; readonly no: number; readonly reason: "deadline" | "blameless"; readonly cause?: EndCause };

export type ToLink =
  | { readonly type: "hello"; readonly ids: SharedArrayBuffer }
  | { readonly type: "thread"; readonly pool: string; readonly no: number; readonly port: MessagePort; readonly slot: SharedArrayBuffer; readonly mine: SharedArrayBuffer; readonly grown: boolean }
  | { readonly type: "full"; readonly pool: string; /** The host is closed: no thread will ever come (the link fails the tasks waiting). */ readonly closed?: boolean }
  | { readonly type: "known"; readonly pool: string }
  | { readonly type: "gone"; readonly pool: string; readonly no: number; readonly reason: GoneReason };

/** BUSY of a thread the host ends for idleness: a link that adds to it sees a negative count and posts elsewhere. */
const CLOSING = -(2 ** 30);

interface HostThread {
  readonly no: number;
  readonly worker: Worker;
  readonly slot: Int32Array;
  /** Per link: its own tasks in flight in this thread (the link counts them beside BUSY). */
  readonly links: Map<MessagePort, Int32Array>;
  /** POSTS as last seen, and since when (idleness). */
  posts: number;
  since: number;
}

interface HostPool {
  readonly options: SharedPoolOptions;
  readonly maxThreads: number;
  readonly threads: Map<number, HostThread>;
  nextNo: number;
  timer: NodeJS.Timeout | undefined;
}

/** In the primary thread: the shared pools' threads, and a control port per worker thread (link). */
export class PoolHost {
  readonly #pools = new Map<string, HostPool>();
  readonly #links = new Set<MessagePort>();
  /** Task ids, unique across links (a thread notes the id of the task it resumes: HOLDER). */
  readonly #ids = new SharedArrayBuffer(4);
  #closed = false;
  #received = 0;
  /** Threads started, by pool; threads ended, by pool and reason (the metrics; a handful of keys each). */
  readonly #started = new Map<string, number>();
  readonly #ended = new Map<string, { readonly pool: string; readonly reason: EndReason; count: number }>();

  /** Messages the links sent here (none per task: tests). */
  get received(): number {
    return this.#received;
  }

  /** Pools made so far, by name, with their thread count (for tests and metrics). */
  sizes(): Record<string, number> {
    return Object.fromEntries([...this.#pools].map(([name, p]) => [name, p.threads.size]));
  }

  /**
   * The pools' threads as metric samples: started and ended (by reason) since the host began, and running now
   * (wardmail_task_threads_started_total, wardmail_task_threads_ended_total, wardmail_task_threads).
   */
  threadSamples(): { name: string; labels: Record<string, string>; value: number }[] {
    const out: { name: string; labels: Record<string, string>; value: number }[] = [];
    for (const [pool, value] of this.#started) out.push({ name: "wardmail_task_threads_started_total", labels: { pool }, value });
    for (const e of this.#ended.values()) out.push({ name: "wardmail_task_threads_ended_total", labels: { pool: e.pool, reason: e.reason }, value: e.count });
    for (const [pool, p] of this.#pools) out.push({ name: "wardmail_task_threads", labels: { pool }, value: p.threads.size });
    return out;
  }

  /** A new link's control port (hand it to one worker thread, in its transferList). */
  connect(): MessagePort {
    const { port1, port2 } = new MessageChannel();
    this.#links.add(port1);
    port1.postMessage({ type: "hello", ids: this.#ids } satisfies ToLink);
    for (const [name, pool] of this.#pools) for (const t of pool.threads.values()) this.#hand(name, t, port1, false);
    port1.on("message", (m: ToHost) => {
      this.#received++;
      if (m.type === "grow") this.#grow(m.pool, m.options, m.seen, port1);
      else if (m.type === "end") this.#end(m.pool, m.no, m.reason, m.cause ?? (m.reason === "blameless" ? "shut" : "deadline"));
    });
    // The worker is gone: its tasks in flight still run in their threads (nobody waits for them, their questions
    // go unanswered), so the threads holding any of ITS tasks are ended as at a deadline; the other workers' tasks
    // there run again once. A thread with none of its tasks is left alone.
    port1.on("close", () => {
      this.#links.delete(port1);
      for (const [name, pool] of this.#pools) {
        for (const t of [...pool.threads.values()]) {
          const mine = t.links.get(port1);
          t.links.delete(port1);
          if (mine !== undefined && Atomics.load(mine, 0) > 0) this.#end(name, t.no, "deadline", "worker_gone");
        }
      }
    });
    // The primary lives as long as its workers; a link does not keep it alive.
    port1.unref();
    return port2;
  }

  /** Ends every pool thread (tasks in flight fail). */
  close(): void {
    this.#closed = true;
    for (const [name, pool] of this.#pools) {
      clearInterval(pool.timer);
      for (const t of [...pool.threads.values()]) this.#end(name, t.no, "closed");
    }
    this.#pools.clear();
  }

  /** A port to thread `t` for `link` (and its other end to the thread). */
  #hand(name: string, t: HostThread, link: MessagePort, grown: boolean): void {
    const { port1, port2 } = new MessageChannel();
    const mine = new Int32Array(new SharedArrayBuffer(4));
    t.links.set(link, mine);
    t.worker.postMessage({ type: "link", port: port1 }, [port1]);
    link.postMessage({ type: "thread", pool: name, no: t.no, port: port2, slot: t.slot.buffer as SharedArrayBuffer, mine: mine.buffer, grown } satisfies ToLink, [port2]);
  }

  /**
   * A link found no thread fit for a task among those numbered below
   * `seen`: a new one, when there is room, unless one was started since
   * (two workers asking at once get one thread: "known", look again).
   */
  #grow(name: string, options: SharedPoolOptions, seen: number, from: MessagePort): void {
    let pool = this.#pools.get(name);
    if (pool === undefined && !this.#closed) {
      // As many threads at most as the workers' own pools had together (each worker's share of a stuck-thread storm stays the same).
      pool = { options, maxThreads: options.maxThreads * Math.max(1, this.#links.size), threads: new Map(), nextNo: 0, timer: undefined };
      this.#pools.set(name, pool);
    }
    if (pool !== undefined && [...pool.threads.keys()].some((no) => no >= seen)) return void from.postMessage({ type: "known", pool: name } satisfies ToLink);
    if (pool === undefined || pool.threads.size >= pool.maxThreads) {
      return void from.postMessage({ type: "full", pool: name, ...(this.#closed ? { closed: true } : {}) } satisfies ToLink);
    }
    const slot = new Int32Array(new SharedArrayBuffer(SLOTS * 4));
    const worker = new Worker(new URL(pool.options.entry), {
      name,
      workerData: { taskSlot: slot.buffer },
      resourceLimits: { maxOldGenerationSizeMb: pool.options.heapMb, maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
    });
    const t: HostThread = { no: pool.nextNo++, worker, slot, links: new Map(), posts: 0, since: performance.now() };
    pool.threads.set(t.no, t);
    this.#started.set(name, (this.#started.get(name) ?? 0) + 1);
    worker.on("error", () => this.#end(name, t.no, "crash"));
    worker.on("exit", () => this.#end(name, t.no, "crash"));
    // An idle thread keeps nothing alive (after the listeners: adding them refs it again); the links' ports do while they wait.
    worker.unref();
    for (const link of this.#links) this.#hand(name, t, link, link === from);
    if (pool.threads.size > 1) this.#watchIdle(name, pool);
  }

  /** Ends thread `no` of pool `name` (once) and tells every link. */
  #end(name: string, no: number, reason: GoneReason, why: EndReason = reason as EndReason): void {
    const t = this.#pools.get(name)?.threads.get(no);
    if (t === undefined) return;
    this.#pools.get(name)?.threads.delete(no);
    const key = `${name}\0${why}`;
    const e = this.#ended.get(key);
    if (e === undefined) this.#ended.set(key, { pool: name, reason: why, count: 1 });
    else e.count++;
    void t.worker.terminate();
    for (const link of this.#links) link.postMessage({ type: "gone", pool: name, no, reason } satisfies ToLink);
  }

  /** While a pool has more than one thread: threads beyond the first idle one are ended once no task was posted to them for idleMs. */
  #watchIdle(name: string, pool: HostPool): void {
    if (pool.options.keepOneIdle !== true || pool.timer !== undefined) return;
    const idleMs = pool.options.idleMs ?? IDLE_MS;
    pool.timer = setInterval(() => {
      const now = performance.now();
      let kept = false;
      for (const t of [...pool.threads.values()]) {
        const posts = Atomics.load(t.slot, POSTS);
        if (Atomics.load(t.slot, BUSY) !== 0 || posts !== t.posts) {
          t.posts = posts;
          t.since = now;
          continue;
        }
        // The first idle thread stays (with its parsed state); a link that posts just now sees CLOSING and posts elsewhere.
        if (!kept) kept = true;
        else if (now - t.since >= idleMs && Atomics.compareExchange(t.slot, BUSY, 0, CLOSING) === 0) this.#end(name, t.no, "idle");
      }
      if (pool.threads.size < 2) {
        clearInterval(pool.timer);
        pool.timer = undefined;
      }
    }, Math.max(10, Math.floor(idleMs / 4)));
    pool.timer.unref();
  }
}

export { PoolLink } from "./link.ts";
