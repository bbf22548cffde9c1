/**
 * The memory a task thread shares with its pool (src/threads index.ts,
 * shared.ts, link.ts): the slots' layout, a task's claim, and what a
 * thread's entry file calls as it reads and resumes tasks (readTask,
 * markTask); and the copies that keep postMessage from cloning a view's
 * whole buffer (exact, ownBytes). Imported through index.ts.
 */
import { workerData } from "node:worker_threads";
import { clock } from "./task.ts";

/**
 * The task with each byte array that is a view into a larger buffer copied
 * out: postMessage copies a view's whole underlying buffer (a 10 KB
 * message in a 64 KB receive block cost 36 us instead of 5; a message
 * sliced from a bigger block, far more).
 */
export function exact<T extends object>(task: T): T {
  let copy: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(task)) {
    if (v instanceof Uint8Array && v.byteLength !== v.buffer.byteLength) {
      copy ??= { ...(task as Record<string, unknown>) };
      copy[k] = ownBytes(v);
    }
  }
  return (copy ?? task) as T;
}

/** `bytes` with a buffer of its own (copied when it is a view into a larger one), for postMessage. */
export function ownBytes(bytes: Uint8Array): Uint8Array {
  return bytes.byteLength === bytes.buffer.byteLength ? bytes : new Uint8Array(bytes);
}

/**
 * The memory a task thread shares with its parent (Int32 slots): the task
 * whose code it resumed last (id + 1), and a counter of resumptions (a
 * thread whose counter stands still while it has tasks is stuck).
 */
export const HOLDER = 0;
export const BEAT = 1;
/**
 * A shared pool's thread (shared.ts) has three more, read and written by
 * every worker that posts to it and by the primary: its tasks in flight
 * (BUSY, below 0 once the primary ends it for idleness), whether it takes
 * no new task (SHUT: a task it had read was taken away) and how many tasks
 * were ever posted to it (POSTS, for idleness).
 */
export const BUSY = 2;
export const SHUT = 3;
export const POSTS = 4;
/** When the thread's event loop last turned (its heartbeat or a resumption; clock()): a task's deadline reads it (task.ts turning). */
export const PULSE = 5;
export const SLOTS = 6;
/** A task's claim (one Int32 of its own, sent with it): posted, then either read by the thread or dropped by the pool, never both. */
export const POSTED = 0;
export const READ = 1;
export const DROPPED = 2;
/** How often a task thread's heartbeat moves BEAT (well under STALL_MS). */
const BEAT_MS = 25;

/** In a task thread: its shared slots (null outside a task thread). */
let ownSlot: Int32Array | null | undefined;

/**
 * What a thread's entry file calls whenever it resumes a task's code: when
 * it reads the task, and where an answer it waited for (a DNS answer)
 * comes back. When the thread is stuck, the task noted last is the one
 * holding it; the others can run elsewhere.
 */
export function markTask(id: number): void {
  if (ownSlot === undefined) {
    const sab = (workerData as { taskSlot?: unknown } | null)?.taskSlot;
    ownSlot = sab instanceof SharedArrayBuffer ? new Int32Array(sab) : null;
    // A heartbeat: it fires only when the event loop turns, so long asynchronous work (a big walk, a body hash in chunks) shows life, and a held loop does not.
    const slot = ownSlot;
    if (slot !== null) {
      setInterval(() => {
        Atomics.add(slot, BEAT, 1);
        Atomics.store(slot, PULSE, clock());
      }, BEAT_MS).unref();
    }
  }
  if (ownSlot !== null) {
    Atomics.store(ownSlot, HOLDER, id + 1);
    Atomics.add(ownSlot, BEAT, 1);
    Atomics.store(ownSlot, PULSE, clock());
  }
}

/**
 * What a thread's entry file calls when it reads a task (before any work on
 * it), with the message as it came. False: the pool took the task back
 * before the thread read it (it runs elsewhere); the entry must drop it
 * without running any of its code and without an answer.
 */
export function readTask(task: { readonly id: number }): boolean {
  const sab = (task as { readonly claim?: unknown }).claim;
  if (sab instanceof SharedArrayBuffer && Atomics.compareExchange(new Int32Array(sab), 0, POSTED, READ) === DROPPED) return false;
  markTask(task.id);
  return true;
}
