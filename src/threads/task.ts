/**
 * The thread side of the task pools (index.ts): what a task thread's entry
 * reads its messages with (servePorts; answers batched per turn of the
 * event loop on a session worker's port) and runs its tasks with
 * (runTask), so that a task the pool gives up at its deadline ("abandon")
 * while the thread is not stuck stops there, and the thread and its other
 * tasks go on instead of being ended with it.
 *
 * The pool (TaskThread, PoolLink) fails the task at its deadline at once
 * (a task its thread has not read yet is dropped there: its claim), then
 * looks at the thread's heartbeat (PULSE, below): a thread whose event loop
 * turned within STALL_MS is waiting, not computing (a verification waiting
 * for a DNS answer that never comes), and is sent { type: "abandon", id }
 * on the road the task came by. servePorts hands that to
 * abandonTask: the task's AbortSignal (runTask) aborts, and the entry's
 * code makes every question of that task fail at once (those in flight and
 * any later one), so it ends within a few turns of the event loop; its
 * result is dropped and the thread answers { type: "failed", id, message:
 * "abandoned" }, which tells the pool the task's code is done. A task that
 * does not answer within GRACE_MS (its code went on computing, or its entry
 * does not listen) has its thread ended, as a stuck one is at once.
 *
 * Whether the thread is stuck is read from its heartbeat: the timer that
 * moves BEAT every 25 ms while its event loop turns (and every resumption
 * of a task) also writes the time into PULSE; older than STALL_MS, the
 * thread is held by a synchronous parse (the counter alone cannot tell when
 * it last moved unless watched, and a task's deadline must decide at once).
 *
 * Bounds: one AbortController per task running in this thread, removed
 * when the task's work settles; an abandon naming a task that is done (or
 * was never read) is ignored.
 */
import { parentPort, type MessagePort } from "node:worker_threads";
import { PULSE, STALL_MS } from "./index.ts";

/** Where a task thread's answers go: the parent, or one session worker's port. */
export interface TaskPeer {
  postMessage(message: unknown): void;
}

/**
 * A port whose messages posted in one turn of the event loop go as one
 * ({ type: "batch", list }): each message to a thread that sleeps costs
 * a wake-up, which costs both threads tens of microseconds of CPU, more
 * than copying the message (docs/benchmarks.md, "direct ports").
 */
export function batchedPeer(port: MessagePort): TaskPeer {
  let queue: unknown[] = [];
  const flush = (): void => {
    const list = queue;
    queue = [];
    port.postMessage(list.length === 1 ? list[0] : { type: "batch", list });
  };
  return {
    postMessage(message: unknown): void {
      if (queue.push(message) === 1) setImmediate(flush);
    },
  };
}

/** The messages of one that may be a batch (batchedPeer). */
export function unbatch(m: unknown): readonly unknown[] {
  const b = m as { readonly type?: unknown; readonly list?: unknown } | null;
  return b?.type === "batch" && Array.isArray(b.list) ? b.list : [m];
}

/**
 * In a task thread's entry: `on(message, peer)` for every message from the
 * parent and from each port a shared pool's host hands over ({ type:
 * "link", port }: one session worker's own road to this thread, shared.ts;
 * its batches unpacked); answers go back through `peer` (batched per turn
 * on a worker's port). `closed(peer)` when a handed-over port closes (its
 * worker is gone).
 */
export function servePorts(on: (message: unknown, peer: TaskPeer) => void, closed?: (peer: TaskPeer) => void): void {
  const parent = parentPort;
  if (!parent) throw new Error("servePorts runs in a worker thread");
  parent.on("message", (m: unknown) => {
    const link = (m as { type?: unknown; port?: unknown } | null)?.type === "link" ? (m as { port?: unknown }).port : undefined;
    if (link === undefined) return void (abandonTask(m) || on(m, parent));
    const port = link as MessagePort;
    const peer = batchedPeer(port);
    port.on("message", (x: unknown) => {
      for (const item of unbatch(x)) if (!abandonTask(item)) on(item, peer);
    });
    port.on("close", () => closed?.(peer));
  });
}

/** The tasks whose work runs in this thread (runTask), by id. */
const running = new Map<number, AbortController>();

/**
 * Runs one task's work with a signal that aborts when the pool abandons the
 * task, and answers on `peer`: { type: "done", id, result }, or { type:
 * "failed", id, message } (also, without its result, for an abandoned task).
 */
export function runTask(id: number, peer: TaskPeer, work: (signal: AbortSignal) => Promise<unknown>): void {
  const control = new AbortController();
  running.set(id, control);
  let promise: Promise<unknown>;
  try {
    promise = work(control.signal);
  } catch (err) {
    promise = Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  promise.then(
    (result) => {
      running.delete(id);
      peer.postMessage(control.signal.aborted ? { type: "failed", id, message: "abandoned" } : { type: "done", id, result });
    },
    (err: unknown) => {
      running.delete(id);
      peer.postMessage({ type: "failed", id, message: control.signal.aborted ? "abandoned" : err instanceof Error ? err.message : String(err) });
    },
  );
}

/** True when `m` is the pool's { type: "abandon", id }: the task's signal is aborted (if it still runs here). */
export function abandonTask(m: unknown): boolean {
  const a = m as { readonly type?: unknown; readonly id?: unknown } | null;
  if (a?.type !== "abandon" || typeof a.id !== "number") return false;
  running.get(a.id)?.abort(new Error("the task was abandoned at its deadline"));
  return true;
}

/** Tasks running in this thread (tests: abandoned tasks are released). */
export function runningTasks(): number {
  return running.size;
}

/** Milliseconds on a clock every thread of the process shares (the time origin plus the monotonic time), in 30 bits, for PULSE. */
export function clock(): number {
  return Math.floor(performance.timeOrigin + performance.now()) & 0x3fffffff;
}

/** Whether the thread of these slots turned its event loop within STALL_MS (its heartbeat wrote PULSE): waiting, not held by a synchronous parse. */
export function turning(slot: Int32Array): boolean {
  return ((clock() - Atomics.load(slot, PULSE)) & 0x3fffffff) <= STALL_MS;
}
