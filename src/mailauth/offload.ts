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
 * AbortSignal) that task fails at once (the runner answers 451 4.7.0, fail
 * closed); a thread held by a parse is ended (its other tasks run again
 * once in another thread, and the next task starts a new thread), while
 * in a thread that only waits (DNS) the task is abandoned: its questions
 * fail at once there (thread.ts), and the thread is ended only if the
 * task does not end within GRACE_MS (src/threads task.ts).
 *
 * A message that is slow to verify must not hold up the others for long:
 * the pool (VerifierPool, over src/threads' TaskPool) runs many tasks in
 * one thread (a verification mostly waits for DNS), and moves a task that
 * a stuck thread has not read within STALL_MS to another thread, started
 * for it up to MAX_THREADS. The thread keeps DNS answers within the TTL
 * the resolver gives (thread.ts).
 *
 * In the server the pool is the process's (src/threads shared.ts): the
 * primary thread starts and ends its threads and gives each worker thread
 * a port of its own to each of them; the worker's PoolLink posts its
 * tasks straight to a thread (the content transferred, not cloned) and
 * answers the DNS questions of its own tasks with its resolver. One
 * verifier thread then serves every worker, instead of one each.
 *
 * Bounds: at most MAX_THREADS threads per pool (one per check outside
 * the server; in the server's shared pool MAX_THREADS per worker), started on use,
 * idle ones beyond the first ended after IDLE_MS; each heap is capped (HEAP_MB); each task holds
 * one copy of the content (at most limits.max_message_size).
 */
import { TaskPool, TaskThread, type PoolLink, type SharedPoolOptions, type TaskThreadOptions } from "../threads/index.ts";
import type { ContentTask, Resolver, Verified } from "./content.ts";
import type { SpfAnswer, SpfTask } from "./results.ts";

/** Heap of a verifier thread (its old generation). */
const HEAP_MB = 256;
/** Verifier threads per session thread. */
export const MAX_THREADS = 4;
// Compiled to dist/*.js for production, run from src/*.ts in development.
const ENTRY = new URL(`./thread.${import.meta.url.endsWith(".ts") ? "ts" : "js"}`, import.meta.url);

/** What the thread gets for one message, or for the SPF identities of one MAIL. */
type Task = { readonly content: Buffer; readonly task: ContentTask } | SpfTask;

interface DnsQuestion {
  readonly type: "dns";
  readonly qid: number;
  readonly name: string;
  readonly rrtype: string;
}

/** Records with the seconds they may be used (the resolver's `query`). */
export type TtlResolver = (name: string, rrtype: string) => Promise<{ readonly records: unknown; readonly ttl: number }>;

/**
 * The thread's options: its DNS questions are answered with the check's
 * resolver; with `query`, the answer carries its TTL and the thread keeps
 * it that long (thread.ts).
 */
function threadOptions(resolver: Resolver, query?: TtlResolver): TaskThreadOptions {
  const ask = query ?? ((name: string, rrtype: string) => resolver(name, rrtype).then((records) => ({ records, ttl: 0 })));
  return {
    entry: ENTRY,
    heapMb: HEAP_MB,
    what: "verification",
    // thread.ts stops a task abandoned at its deadline (its DNS questions fail at once): a thread that only waits is kept.
    abandons: true,
    onOther: (m, post) => {
      const q = m as DnsQuestion;
      if (q.type !== "dns") return;
      ask(q.name, q.rrtype).then(
        (a) => post({ type: "dns", qid: q.qid, answer: a.records, ttl: a.ttl }),
        (err: unknown) => {
          // A denial's negative TTL (RFC 2308) goes with it: the thread's SPF cache keeps a result that long.
          const e = err as { message?: string; code?: string; ttl?: unknown };
          post({ type: "dns", qid: q.qid, error: { message: String(e.message ?? err), ...(typeof e.code === "string" ? { code: e.code } : {}), ...(typeof e.ttl === "number" ? { ttl: e.ttl } : {}) } });
        },
      );
    },
  };
}

/** One verifier thread (src/threads). */
export class VerifierThread {
  private readonly thread: TaskThread<Task, Verified | SpfAnswer[]>;

  constructor(resolver: Resolver) {
    this.thread = new TaskThread(threadOptions(resolver));
  }

  /** Tasks in flight. */
  get busy(): number {
    return this.thread.busy;
  }

  /** Verifies one message in the thread; rejects when the thread fails or `signal` aborts (the task is then abandoned there, or the thread ended when it is stuck). */
  verify(content: Buffer, task: ContentTask, signal?: AbortSignal): Promise<Verified> {
    return this.thread.run({ content, task }, signal) as Promise<Verified>;
  }

  /** Ends the thread (tasks in flight fail). */
  close(): void {
    this.thread.close();
  }
}

/** The name of the verifiers' pool among the process's shared pools (src/threads shared.ts). */
const SHARED_NAME = "verification";

/**
 * Up to MAX_THREADS verifier threads (src/threads TaskPool): tasks share the least busy thread; more start only while one is stuck; one idle thread (with its parsed keys) is kept.
 * With `link`, the threads are those of the process's shared pool (the primary's), and this pool answers their DNS questions when asked.
 */
export class VerifierPool {
  private readonly pool: TaskPool<Task, Verified | SpfAnswer[]> | undefined;
  private readonly link: PoolLink | undefined;
  private readonly shared: SharedPoolOptions;

  constructor(resolver: Resolver, opts: { readonly idleMs?: number; readonly query?: TtlResolver; readonly link?: PoolLink } = {}) {
    const { query, link, ...rest } = opts;
    const options = threadOptions(resolver, query);
    this.shared = { entry: ENTRY.href, heapMb: HEAP_MB, what: options.what, abandons: true, maxThreads: MAX_THREADS, keepOneIdle: true, ...rest };
    this.link = link;
    if (link !== undefined) {
      const onOther = options.onOther;
      if (onOther) link.onOther(SHARED_NAME, onOther);
    } else this.pool = new TaskPool<Task, Verified | SpfAnswer[]>({ ...options, maxThreads: MAX_THREADS, keepOneIdle: true, ...rest });
  }

  /** DKIM, ARC and DMARC (for task.authors) of one message. */
  verify(content: Buffer, task: ContentTask, signal?: AbortSignal): Promise<Verified> {
    return this.#run({ content, task }, signal) as Promise<Verified>;
  }

  /** SPF for the identities of one MAIL (results in the order of `task.senders`), through the threads' SPF cache. */
  spf(task: SpfTask["spf"], signal?: AbortSignal): Promise<SpfAnswer[]> {
    return this.#run({ spf: task }, signal) as Promise<SpfAnswer[]>;
  }

  #run(task: Task, signal: AbortSignal | undefined): Promise<Verified | SpfAnswer[]> {
    if (this.link !== undefined) return this.link.run<Task, Verified | SpfAnswer[]>(SHARED_NAME, this.shared, task, signal);
    return (this.pool as TaskPool<Task, Verified | SpfAnswer[]>).run(task, signal);
  }

  /** Threads this pool started so far (0 when they are the process's shared pool's): one ended at a deadline is started again on use. */
  get started(): number {
    return this.pool?.started ?? 0;
  }

  /** Threads of this pool (0 when they are the process's shared pool's). */
  get size(): number {
    return this.pool?.size ?? 0;
  }

  /** Ends this pool's threads (a shared pool's are the primary's to end). */
  close(): void {
    this.pool?.close();
  }
}
