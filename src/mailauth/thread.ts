/**
 * The verifier thread's entry (started by offload.ts): runs verifyContent()
 * (DKIM, ARC, DMARC) and evaluateSpf() (SPF at MAIL, with this thread's SPF
 * result cache) for the tasks its parent posts, and asks the parent for
 * every DNS answer (the parent's resolver, its cache and its limits stay
 * the only road to DNS). At a check's deadline the parent abandons the
 * task when this thread is not stuck (src/threads task.ts: the task's
 * questions, those in flight and any later one, fail at once, and its
 * result is dropped), and ends the thread when it is stuck or when the
 * task goes on past GRACE_MS; nothing here is durable.
 *
 * Messages in: { type: "task", id, content, task } or { type: "task", id,
 * spf }, and { type: "dns", qid, answer, ttl | error }. Out: { type: "done",
 * id, result } or { type: "failed", id, message }, and { type: "dns", qid,
 * name, rrtype }. In the server they come and go over one port per session
 * worker (src/threads servePorts, shared.ts): a task's answer goes back on
 * the port it came from, and a DNS question to the worker whose task asked
 * (tasks of several workers waiting for one answer share one question; when
 * the worker asked goes away, the question goes to another that waits for
 * it, else it fails). A question no task waits for any more (its tasks
 * abandoned) is forgotten: its late answer is dropped.
 */
import { parentPort } from "node:worker_threads";
import { evaluateSpf, verifyContent, type ContentTask } from "./content.ts";
import { SpfCache, type SpfResolver } from "./spf-cache.ts";
import { DkimKeyCache } from "./verify.ts";
import type { SpfTask } from "./results.ts";
import { markTask, readTask, runTask, servePorts, type TaskPeer } from "../threads/index.ts";

type TaskMessage = { readonly type: "task"; readonly id: number } & ({ readonly content: Uint8Array; readonly task: ContentTask } | SpfTask);

interface DnsAnswer {
  readonly type: "dns";
  readonly qid: number;
  readonly answer?: unknown;
  /** Seconds the answer may be used (from the session thread's resolver); absent: not kept. */
  readonly ttl?: number;
  readonly error?: { readonly message: string; readonly code?: string; readonly ttl?: number };
}

/** Answers kept in this thread, within their TTL, so a domain's key and policy cost no round trip per message. */
export const MAX_KEPT_ANSWERS = 2048;
/** Estimated bytes of the answers kept (the count alone would let 2048 hostile 64 KiB TXT answers hold 128 MiB). */
export const MAX_KEPT_ANSWER_BYTES = 2 * 1024 * 1024;

/** The memory an answer keeps, estimated: its strings and bytes, plus a fixed cost per record and per field. */
export function answerWeight(answer: unknown): number {
  const size = (v: unknown): number => (typeof v === "string" ? 2 * v.length : v instanceof Uint8Array ? v.byteLength : 8);
  let w = 64;
  if (!Array.isArray(answer)) return w + size(answer);
  for (const r of answer as unknown[]) {
    w += 32;
    if (Array.isArray(r)) for (const x of r as unknown[]) w += 16 + size(x);
    else if (r !== null && typeof r === "object") for (const x of Object.values(r as Record<string, unknown>)) w += 16 + size(x);
    else w += size(r);
  }
  return w;
}

const port = parentPort;
if (!port) throw new Error("thread.ts runs in a worker thread");
const keys = new DkimKeyCache();
interface Question {
  readonly key: string;
  readonly name: string;
  readonly rrtype: string;
  readonly resolve: (v: { records: unknown; ttl: number }) => void;
  readonly reject: (e: Error) => void;
  /** The port it was asked on, and every port whose tasks wait for it. */
  port: TaskPeer;
  readonly ports: Set<TaskPeer>;
  /** Tasks that may still wait for it (a waiter with no signal counts for good). */
  waiters: number;
}
const questions = new Map<number, Question>();
let nextQid = 0;
/** Answers within their TTL (oldest first), and the questions in flight (one per name and type). */
const kept = new Map<string, { readonly answer: unknown; readonly until: number; readonly weight: number }>();
let keptBytes = 0;
function forget(key: string): void {
  const k = kept.get(key);
  if (k === undefined) return;
  kept.delete(key);
  keptBytes -= k.weight;
}
const asking = new Map<string, { readonly answer: Promise<{ records: unknown; ttl: number }>; readonly question: Question; readonly qid: number }>();
/** SPF results shared by every task of this thread (every worker's, with the process's shared pool) within their DNS TTLs. */
const spfCache = new SpfCache((name, rrtype) => query(name, rrtype, port));

/**
 * The resolver of one task: its code resumes after an answer, so the
 * thread notes that task (markTask). Each waiter gets the answer in its own
 * turn of the event loop (setImmediate): tasks waiting for the same
 * question then resume one after another, each with its own note, instead
 * of all notes first and then all the code.
 */
function resolverFor(id: number, from: TaskPeer, signal: AbortSignal): (name: string, rrtype: string) => Promise<unknown> {
  return marked(id, (name, rrtype) => query(name, rrtype, from, signal).then((a) => a.records));
}

/** `resolve` with the task noted whenever its code resumes after an answer (see resolverFor). */
function marked(id: number, resolve: SpfResolver): SpfResolver {
  return (name, rrtype) =>
    new Promise((resolveP, reject) => {
      resolve(name, rrtype).then(
        (v) =>
          setImmediate(() => {
            markTask(id);
            resolveP(v);
          }),
        (err: unknown) =>
          setImmediate(() => {
            markTask(id);
            reject(err instanceof Error ? err : new Error(String(err)));
          }),
      );
    });
}

/** What an abandoned task's questions fail with (its result is dropped: only its code's end matters). */
function abandoned(): Error {
  return Object.assign(new Error("the task was abandoned at its deadline"), { code: "ECANCELLED" });
}

/**
 * The answer with the seconds it may still be used (0: not to be kept),
 * from this thread's answers or, asked on `from`, the session worker's
 * resolver. Once `signal` aborts (the task is abandoned) it fails at once,
 * and a question no other task waits for is forgotten.
 */
function query(name: string, rrtype: string, from: TaskPeer, signal?: AbortSignal): Promise<{ records: unknown; ttl: number }> {
  if (signal?.aborted === true) return Promise.reject(abandoned());
  const key = `${rrtype} ${name.toLowerCase()}`;
  const k = kept.get(key);
  if (k !== undefined) {
    const left = k.until - performance.now();
    if (left > 0) return Promise.resolve({ records: k.answer, ttl: Math.floor(left / 1000) });
    forget(key);
  }
  let entry = asking.get(key);
  if (entry !== undefined) entry.question.ports.add(from);
  else {
    const qid = nextQid++;
    let settle!: Pick<Question, "resolve" | "reject">;
    const answer = new Promise<{ records: unknown; ttl: number }>((resolve, reject) => {
      settle = { resolve, reject };
    });
    const question: Question = { key, name, rrtype, ...settle, port: from, ports: new Set([from]), waiters: 0 };
    questions.set(qid, question);
    from.postMessage({ type: "dns", qid, name, rrtype });
    const made = { answer, question, qid };
    asking.set(key, made);
    const done = (): void => {
      if (asking.get(key) === made) asking.delete(key);
    };
    made.answer.then(done, done);
    entry = made;
  }
  entry.question.waiters++;
  if (signal === undefined) return entry.answer;
  const { answer, question, qid } = entry;
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      // Nobody waits for it any more: forgotten (a late answer is dropped, the next asker asks again).
      if (--question.waiters === 0 && questions.get(qid) === question) {
        questions.delete(qid);
        if (asking.get(key)?.question === question) asking.delete(key);
      }
      reject(abandoned());
    };
    signal.addEventListener("abort", onAbort, { once: true });
    answer.then(
      (a) => {
        signal.removeEventListener("abort", onAbort);
        resolve(a);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** A session worker's port closed: its questions go to another port waiting for them, else fail. */
function portClosed(closed: TaskPeer): void {
  for (const [qid, q] of questions) {
    q.ports.delete(closed);
    if (q.port !== closed) continue;
    const next = q.ports.values().next().value;
    if (next === undefined) {
      questions.delete(qid);
      q.reject(new Error("the session worker that asked is gone"));
      continue;
    }
    q.port = next;
    next.postMessage({ type: "dns", qid, name: q.name, rrtype: q.rrtype });
  }
}

servePorts((message, from) => {
  const m = message as TaskMessage | DnsAnswer;
  if (m.type === "dns") {
    const q = questions.get(m.qid);
    questions.delete(m.qid);
    if (!q) return;
    if (m.error) {
      const { code, ttl } = m.error;
      q.reject(Object.assign(new Error(m.error.message), code !== undefined ? { code } : {}, ttl !== undefined ? { ttl } : {}));
    } else {
      const ttl = m.ttl ?? 0;
      const weight = ttl > 0 ? answerWeight(m.answer) : 0;
      if (ttl > 0 && weight <= MAX_KEPT_ANSWER_BYTES) {
        forget(q.key);
        // Oldest out until both bounds hold: at most one pass over the entries.
        while (kept.size > 0 && (kept.size >= MAX_KEPT_ANSWERS || keptBytes + weight > MAX_KEPT_ANSWER_BYTES)) forget(kept.keys().next().value as string);
        kept.set(q.key, { answer: m.answer, until: performance.now() + ttl * 1000, weight });
        keptBytes += weight;
      }
      q.resolve({ records: m.answer, ttl });
    }
    return;
  }
  if (!readTask(m)) return;
  const id = m.id;
  runTask(id, from, (signal) =>
    "spf" in m
      ? evaluateSpf(m.spf, spfCache, (r) => marked(id, r), (name, rrtype) => query(name, rrtype, from, signal))
      : verifyContent(Buffer.from(m.content.buffer, m.content.byteOffset, m.content.byteLength), m.task, resolverFor(id, from, signal), keys),
  );
}, portClosed);
