// A task thread for src/threads' tests: "sync" tasks hold the thread for ms;
// "hostile" tasks first wait for an answer from the parent (like a DNS
// question), then hold the thread for ms; "chunked" tasks hold it for ms,
// `parts` times, letting the event loop turn in between (as a long
// asynchronous walk does), without any note of their own. Notes its reads and resumptions
// as the real entries do (readTask, markTask). A task the pool abandons (src/threads task.ts)
// stops waiting at once; a "stubborn" one then holds the thread for ms all the same (code
// that goes on computing). { type: "running" } answers { type: "running", count } (tasks
// whose work has not settled here).
import { parentPort, threadId } from "node:worker_threads";
import { markTask, readTask, runTask, runningTasks, servePorts, type TaskPeer } from "../../src/threads/index.ts";

interface Task {
  readonly type: "task";
  readonly id: number;
  readonly kind: "sync" | "hostile" | "chunked";
  readonly parts?: number;
  readonly ms: number;
  readonly delay?: number;
  readonly stubborn?: boolean;
  readonly name: string;
}

const port = parentPort;
if (!port) throw new Error("a worker thread entry");
const waits = new Map<number, () => void>();
let nextQ = 0;

function spin(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    /* hold the event loop */
  }
}

// Tasks come from the parent, or from a session worker's own port (a shared pool, src/threads shared.ts): questions and answers go back on it.
servePorts((message, from: TaskPeer) => {
  const m = message as Task | { readonly type: "answer"; readonly q: number } | { readonly type: "running" };
  if (m.type === "answer") {
    waits.get(m.q)?.();
    waits.delete(m.q);
    return;
  }
  if (m.type === "running") return from.postMessage({ type: "running", count: runningTasks(), waits: waits.size });
  if (!readTask(m)) return;
  runTask(m.id, from, async (signal) => {
    if (m.kind === "hostile") {
      const q = nextQ++;
      try {
        await new Promise<void>((resolve, reject) => {
          waits.set(q, resolve);
          from.postMessage({ type: "ask", q, delay: m.delay ?? 0 });
          signal.addEventListener(
            "abort",
            () => {
              waits.delete(q);
              reject(new Error("abandoned"));
            },
            { once: true },
          );
        });
      } catch (err) {
        if (m.stubborn === true) spin(m.ms);
        throw err;
      }
      markTask(m.id);
    }
    if (m.kind === "chunked") {
      for (let i = 0; i < (m.parts ?? 1); i++) {
        spin(m.ms);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    } else spin(m.ms);
    return `${m.name} on ${threadId}`;
  });
});
