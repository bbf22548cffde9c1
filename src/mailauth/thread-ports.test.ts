// The verifier thread's entry (thread.ts) with two session workers' ports,
// as the process's shared pool hands them over ({ type: "link", port }):
// a DNS question shared by the tasks of both is asked on the first worker's
// port; when that port closes before the answer, the question goes to the
// other worker (portClosed), whose task then gets its answer. When the only
// port waiting for a question closes, the question fails and is forgotten:
// a later task asks it again instead of joining a question nobody answers.
// A real thread and real MessageChannels; this side plays both workers.
import assert from "node:assert/strict";
import { test } from "node:test";
import { MessageChannel, Worker, type MessagePort } from "node:worker_threads";

const ENTRY = new URL("./thread.ts", import.meta.url);
const task = { mailFrom: "a@example.org", clientIp: "192.0.2.1", helo: "client.example", authservId: "mx.example.test", spf: false as const };
/** A DKIM signature whose key the thread must ask for: TXT s._domainkey.example.org. */
const signed = "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s; c=relaxed/relaxed; h=from; bh=AAAA; b=AAAA\r\nFrom: a@example.org\r\n\r\nbody\r\n";
const KEY = "s._domainkey.example.org";

interface Question {
  readonly type: "dns";
  readonly qid: number;
  readonly name: string;
  readonly rrtype: string;
}
type Answer = { readonly type: "done"; readonly id: number; readonly result: unknown } | { readonly type: "failed"; readonly id: number; readonly message: string };

/** One session worker's side of its port to the thread: what came from the thread, and a bounded wait for the next of a kind. */
class SessionPort {
  readonly port: MessagePort;
  readonly got: (Question | Answer)[] = [];
  private wake: (() => void) | undefined;

  constructor(thread: Worker) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    thread.postMessage({ type: "link", port: port2 }, [port2]);
    port1.on("message", (m: unknown) => {
      // The thread batches what it posts in one turn (src/threads batchedPeer).
      const b = m as { type?: unknown; list?: unknown };
      for (const x of b.type === "batch" && Array.isArray(b.list) ? (b.list as unknown[]) : [m]) this.got.push(x as Question | Answer);
      this.wake?.();
    });
  }

  send(id: number): void {
    this.port.postMessage({ type: "task", id, content: new Uint8Array(Buffer.from(signed, "latin1")), task });
  }

  /** The first message matching `match`, waiting at most `ms`; undefined when none came. */
  async next<T extends Question | Answer>(match: (m: Question | Answer) => m is T, ms: number): Promise<T | undefined> {
    const until = performance.now() + ms;
    for (;;) {
      const i = this.got.findIndex(match);
      if (i >= 0) return this.got.splice(i, 1)[0] as T;
      const left = until - performance.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  close(): void {
    this.port.close();
  }
}

const isKeyQuestion = (m: Question | Answer): m is Question => m.type === "dns" && m.name === KEY && m.rrtype === "TXT";
const answerOf =
  (id: number) =>
  (m: Question | Answer): m is Answer =>
    (m.type === "done" || m.type === "failed") && m.id === id;
const notFound = (qid: number): unknown => ({ type: "dns", qid, error: { message: "not found", code: "ENOTFOUND" } });
/** The DKIM result of a verification answered done. */
const dkimResult = (a: Answer | undefined): unknown => (a?.type === "done" ? (a.result as { dkim?: { results?: { status?: { result?: unknown } }[] } }).dkim?.results?.[0]?.status?.result : a);

function startThread(): Worker {
  const thread = new Worker(ENTRY);
  thread.unref();
  return thread;
}

void test("a DNS question shared by two workers' tasks goes to the second worker when the first worker's port closes before the answer", async () => {
  const thread = startThread();
  const a = new SessionPort(thread);
  const b = new SessionPort(thread);
  try {
    a.send(1);
    // Generous for a cold thread (it loads mailauth first).
    const asked = await a.next(isKeyQuestion, 10_000);
    assert.ok(asked, `worker A was not asked for the key: ${JSON.stringify(a.got)}`);
    b.send(2);
    // B's task waits for the same question: it is not asked again (give the thread time to read B's task).
    assert.equal(await b.next(isKeyQuestion, 300), undefined, "B's task shares A's question");
    a.close();
    // A went away without answering: the question goes to B, the worker still waiting for it, with the same qid.
    const again = await b.next(isKeyQuestion, 3000);
    assert.ok(again, "after A's port closed, B was asked the shared question (portClosed)");
    assert.equal(again.qid, asked.qid);
    b.port.postMessage(notFound(again.qid));
    const done = await b.next(answerOf(2), 3000);
    assert.equal(done?.type, "done", JSON.stringify(done));
    // A key that does not exist: a DKIM result from the answer, not a timeout.
    assert.notEqual(dkimResult(done), undefined);
  } finally {
    a.close();
    b.close();
    await thread.terminate();
  }
});

void test("a question whose only waiting worker's port closes fails and is forgotten: a later task asks it again", async () => {
  const thread = startThread();
  const a = new SessionPort(thread);
  const c = new SessionPort(thread);
  try {
    a.send(1);
    const asked = await a.next(isKeyQuestion, 10_000);
    assert.ok(asked, `worker A was not asked for the key: ${JSON.stringify(a.got)}`);
    a.close();
    // Let the thread see the close before C's task arrives.
    await new Promise((r) => setTimeout(r, 100));
    c.send(3);
    const fresh = await c.next(isKeyQuestion, 3000);
    assert.ok(fresh, "C's task asked the question again (the one A left was failed and forgotten)");
    assert.notEqual(fresh.qid, asked.qid);
    c.port.postMessage(notFound(fresh.qid));
    const done = await c.next(answerOf(3), 3000);
    assert.equal(done?.type, "done", JSON.stringify(done));
  } finally {
    a.close();
    c.close();
    await thread.terminate();
  }
});
