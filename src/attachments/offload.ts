/**
 * The attachment walk off the session's thread: each message's content is
 * posted to a walker thread (thread.ts). The walk is linear, but a 25 MiB
 * message of short lines still costs MIME parsing a second of CPU; on the
 * event loop that second would delay every session of the worker. In a
 * thread it only costs that thread's time, and at the check's deadline (its
 * AbortSignal) that task fails (the runner answers 451 4.7.0, fail closed):
 * a walk the thread has not read yet is dropped there, one it has read ends
 * the thread (the walker does not listen for an abandon, src/threads
 * task.ts), and the thread's other walks run again once in another thread. The pool (src/threads) moves the walks of a stuck
 * thread to another.
 *
 * Bounds: at most MAX_THREADS threads per session thread, started on use
 * and kept (a thread's start costs far more than a walk); each heap capped
 * (HEAP_MB); each task holds one copy
 * of the content (at most limits.max_message_size) plus what the walk keeps
 * (walk.ts).
 */
import { TaskPool } from "../threads/index.ts";
import type { Finding } from "./detect.ts";
import type { WalkLimits } from "./walk.ts";

const HEAP_MB = 256;
export const MAX_THREADS = 2;
// Compiled to dist/*.js for production, run from src/*.ts in development.
const ENTRY = new URL(`./thread.${import.meta.url.endsWith(".ts") ? "ts" : "js"}`, import.meta.url);

/** Up to MAX_THREADS walker threads (src/threads); they stay once started: a thread's start costs far more than a walk. */
export class WalkerPool {
  private readonly pool = new TaskPool<{ content: Buffer; limits: WalkLimits }, Finding[]>({ entry: ENTRY, heapMb: HEAP_MB, what: "attachment walk", maxThreads: MAX_THREADS });

  walk(content: Buffer, limits: WalkLimits, signal?: AbortSignal): Promise<Finding[]> {
    return this.pool.run({ content, limits }, signal);
  }

  close(): void {
    this.pool.close();
  }
}
