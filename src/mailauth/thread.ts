/**
 * The verifier thread's entry (started by offload.ts): runs verifyContent()
 * for the tasks its parent posts, and asks the parent for every DNS answer
 * (the parent's resolver, its cache and its limits stay the only road to
 * DNS). Ended by the parent at a check's deadline; nothing here is durable.
 *
 * Messages in: { type: "task", id, content, task } and { type: "dns", qid,
 * answer | error }. Out: { type: "done", id, result } or { type: "failed",
 * id, message }, and { type: "dns", qid, name, rrtype }.
 */
import { parentPort } from "node:worker_threads";
import { verifyContent, type ContentTask } from "./content.ts";
import { DkimKeyCache } from "./verify.ts";
import { startedMessage } from "../threads/index.ts";

interface TaskMessage {
  readonly type: "task";
  readonly id: number;
  readonly content: Uint8Array;
  readonly task: ContentTask;
}

interface DnsAnswer {
  readonly type: "dns";
  readonly qid: number;
  readonly answer?: unknown;
  readonly error?: { readonly message: string; readonly code?: string };
}

const port = parentPort;
if (!port) throw new Error("thread.ts runs in a worker thread");
const keys = new DkimKeyCache();
const questions = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
let nextQid = 0;

function resolver(name: string, rrtype: string): Promise<unknown> {
  const qid = nextQid++;
  return new Promise((resolve, reject) => {
    questions.set(qid, { resolve, reject });
    port?.postMessage({ type: "dns", qid, name, rrtype });
  });
}

port.on("message", (m: TaskMessage | DnsAnswer) => {
  if (m.type === "dns") {
    const q = questions.get(m.qid);
    questions.delete(m.qid);
    if (!q) return;
    if (m.error) q.reject(Object.assign(new Error(m.error.message), m.error.code !== undefined ? { code: m.error.code } : {}));
    else q.resolve(m.answer);
    return;
  }
  port.postMessage(startedMessage(m.id));
  const content = Buffer.from(m.content.buffer, m.content.byteOffset, m.content.byteLength);
  verifyContent(content, m.task, resolver, keys).then(
    (result) => port.postMessage({ type: "done", id: m.id, result }),
    (err: unknown) => port.postMessage({ type: "failed", id: m.id, message: err instanceof Error ? err.message : String(err) }),
  );
});
