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
import { markTask, readTask } from "../threads/index.ts";

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
  /** Seconds the answer may be used (from the session thread's resolver); absent: not kept. */
  readonly ttl?: number;
  readonly error?: { readonly message: string; readonly code?: string };
}

/** Answers kept in this thread, within their TTL, so a domain's key and policy cost no round trip per message. */
export const MAX_KEPT_ANSWERS = 2048;

const port = parentPort;
if (!port) throw new Error("thread.ts runs in a worker thread");
const keys = new DkimKeyCache();
const questions = new Map<number, { key: string; resolve: (v: unknown) => void; reject: (e: Error) => void }>();
let nextQid = 0;
/** Answers within their TTL (oldest first), and the questions in flight (one per name and type). */
const kept = new Map<string, { readonly answer: unknown; readonly until: number }>();
const asking = new Map<string, Promise<unknown>>();

/**
 * The resolver of one task: its code resumes after an answer, so the
 * thread notes that task (markTask). Each waiter gets the answer in its own
 * turn of the event loop (setImmediate): tasks waiting for the same
 * question then resume one after another, each with its own note, instead
 * of all notes first and then all the code.
 */
function resolverFor(id: number): (name: string, rrtype: string) => Promise<unknown> {
  return (name, rrtype) =>
    new Promise((resolve, reject) => {
      resolver(name, rrtype).then(
        (v) =>
          setImmediate(() => {
            markTask(id);
            resolve(v);
          }),
        (err: unknown) =>
          setImmediate(() => {
            markTask(id);
            reject(err instanceof Error ? err : new Error(String(err)));
          }),
      );
    });
}

function resolver(name: string, rrtype: string): Promise<unknown> {
  const key = `${rrtype} ${name.toLowerCase()}`;
  const k = kept.get(key);
  if (k !== undefined) {
    if (k.until > performance.now()) return Promise.resolve(k.answer);
    kept.delete(key);
  }
  let p = asking.get(key);
  if (p === undefined) {
    const qid = nextQid++;
    p = new Promise((resolve, reject) => {
      questions.set(qid, { key, resolve, reject });
      port?.postMessage({ type: "dns", qid, name, rrtype });
    });
    asking.set(key, p);
    const done = (): void => void asking.delete(key);
    p.then(done, done);
  }
  return p;
}

port.on("message", (m: TaskMessage | DnsAnswer) => {
  if (m.type === "dns") {
    const q = questions.get(m.qid);
    questions.delete(m.qid);
    if (!q) return;
    if (m.error) q.reject(Object.assign(new Error(m.error.message), m.error.code !== undefined ? { code: m.error.code } : {}));
    else {
      if (m.ttl !== undefined && m.ttl > 0) {
        if (kept.size >= MAX_KEPT_ANSWERS) kept.delete(kept.keys().next().value as string);
        kept.set(q.key, { answer: m.answer, until: performance.now() + m.ttl * 1000 });
      }
      q.resolve(m.answer);
    }
    return;
  }
  if (!readTask(m)) return;
  const content = Buffer.from(m.content.buffer, m.content.byteOffset, m.content.byteLength);
  verifyContent(content, m.task, resolverFor(m.id), keys).then(
    (result) => port.postMessage({ type: "done", id: m.id, result }),
    (err: unknown) => port.postMessage({ type: "failed", id: m.id, message: err instanceof Error ? err.message : String(err) }),
  );
});
