/**
 * The attachment walker thread's entry (started by offload.ts): runs
 * walkMessage() for the tasks its parent posts. Ended by the parent at the
 * check's deadline of a walk it has read (one it has not read is dropped:
 * readTask); nothing here is durable.
 *
 * Messages in: { type: "task", id, content, limits } (src/threads). Out:
 * { type: "done", id, result: findings }
 * or { type: "failed", id, message }.
 */
import { parentPort } from "node:worker_threads";
import { walkMessage, type WalkLimits } from "./walk.ts";
import { readTask } from "../threads/index.ts";

interface Task {
  readonly id: number;
  readonly content: Uint8Array;
  readonly limits: WalkLimits;
}

const port = parentPort;
if (!port) throw new Error("thread.ts runs in a worker thread");

port.on("message", (m: Task) => {
  if (!readTask(m)) return;
  const content = Buffer.from(m.content.buffer, m.content.byteOffset, m.content.byteLength);
  walkMessage(content, m.limits).then(
    (findings) => port.postMessage({ type: "done", id: m.id, result: findings }),
    (err: unknown) => port.postMessage({ type: "failed", id: m.id, message: err instanceof Error ? err.message : String(err) }),
  );
});
