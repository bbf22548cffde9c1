// The task pool (src/threads) with a test thread (test/helpers/task-thread-entry.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { MessageChannel } from "node:worker_threads";
import { HOLD_MS, PoolHost, PoolLink, TaskPool, TaskThread, batchedPeer, unbatch, type SharedPoolOptions } from "./index.ts";

const ENTRY = new URL("../../test/helpers/task-thread-entry.ts", import.meta.url);

interface Task {
  readonly kind: "sync" | "hostile" | "chunked";
  readonly parts?: number;
  readonly ms: number;
  readonly delay?: number;
  readonly name: string;
}

function pool(): TaskPool<Task, string> {
  return new TaskPool<Task, string>({
    entry: ENTRY,
    heapMb: 64,
    what: "test task",
    maxThreads: 4,
    keepOneIdle: true,
    idleMs: 200,
    onOther: (m, post) => {
      const a = m as { type?: string; q?: number; delay?: number };
      if (a.type === "ask") setTimeout(() => post({ type: "answer", q: a.q }), a.delay ?? 0);
    },
  });
}

/** CPU this process uses (every thread) over the next second, in ms. */
async function cpuMsOverNextSecond(): Promise<number> {
  const c0 = process.cpuUsage();
  await new Promise((r) => setTimeout(r, 1000));
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}

void test("a task taken from a thread it was running in leaves no code running there once its deadline is past (the thread is ended)", async () => {
  const p = pool();
  try {
    await p.run({ kind: "sync", ms: 1, name: "warm" });
    // H waits 400 ms for an answer, then holds its thread for 6 s; L holds the same thread for 500 ms meanwhile, so H is moved.
    const h = p.run({ kind: "hostile", ms: 6000, delay: 400, name: "H" }, AbortSignal.timeout(2500));
    h.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 20));
    const l = await p.run({ kind: "sync", ms: 500, name: "L" }, AbortSignal.timeout(5000));
    assert.match(l, /^L on /);
    await assert.rejects(h, /deadline/);
    // Every thread that ran H's code was ended: no CPU is spent after the tasks are settled.
    const ms = await cpuMsOverNextSecond();
    assert.ok(ms < 300, `${ms} ms of CPU in the second after the tasks settled`);
  } finally {
    p.close();
  }
});

void test("a task taken back before its thread read it is never run there (the thread drops it), so none of its code runs once it is settled", async () => {
  const p = pool();
  try {
    await p.run({ kind: "sync", ms: 1, name: "warm" });
    // S holds the thread for 700 ms; X, posted behind it, is not read there: the thread is stuck, so X moves to a new thread, where its deadline ends it.
    const s = p.run({ kind: "sync", ms: 700, name: "S" }, AbortSignal.timeout(10_000));
    await new Promise((r) => setTimeout(r, 20));
    const x = p.run({ kind: "sync", ms: 3000, name: "X" }, AbortSignal.timeout(1200));
    x.catch(() => undefined);
    assert.match(await s, /^S on /);
    await assert.rejects(x, /deadline/);
    // The first thread, freed by S, must not read X and spin for it.
    const ms = await cpuMsOverNextSecond();
    assert.ok(ms < 300, `${ms} ms of CPU in the second after the tasks settled`);
  } finally {
    p.close();
  }
});

void test("a thread that read a task taken from it is ended when that task is settled elsewhere, though it still runs another task (which runs again elsewhere)", async () => {
  const asks: number[] = [];
  const opts = {
    entry: ENTRY,
    heapMb: 64,
    what: "test task",
    onOther: (m: unknown, post: (x: unknown) => void) => {
      const a = m as { type?: string; q?: number; delay?: number };
      if (a.type !== "ask") return;
      asks.push(a.delay ?? 0);
      // A question asked with a delay of a minute is never answered: its task waits.
      if ((a.delay ?? 0) < 60_000) setTimeout(() => post({ type: "answer", q: a.q }), a.delay ?? 0);
    },
  };
  const orphaned: unknown[] = [];
  const a = new TaskThread<Task, string>(opts, { orphans: (jobs) => orphaned.push(...jobs), settled: () => undefined });
  const b = new TaskThread<Task, string>(opts);
  try {
    await a.run({ kind: "sync", ms: 1, name: "warm" }); // id 0
    // Q waits in A for an answer that never comes: A keeps tracking it.
    const q = a.run({ kind: "hostile", ms: 1, delay: 60_000, name: "Q" }); // id 1
    q.catch(() => undefined);
    // X waits 300 ms for its answer, then holds its thread for 6 s; its deadline is 2 s.
    const x = a.run({ kind: "hostile", ms: 6000, delay: 300, name: "X" }, AbortSignal.timeout(2000)); // id 2
    x.catch(() => undefined);
    for (let i = 0; i < 200 && asks.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(asks.length, 2, "A read Q and X");
    // The pool takes X from A (as from a stuck thread: past HOLD_MS) and runs it in B; A's copy of X will resume when its answer comes.
    const moved = a.take(2, performance.now() + 2 * HOLD_MS);
    assert.ok(moved !== undefined, "X taken");
    assert.equal(a.open, false, "A, which read X, takes no new task");
    assert.equal(a.busy, 1, "A still runs Q");
    b.post(moved);
    await assert.rejects(x, /deadline/);
    // X is settled (its deadline ended B): A was ended too, and Q handed back to run elsewhere.
    assert.equal(orphaned.length, 1, "Q runs again elsewhere");
    assert.equal(a.busy, 0);
    const ms = await cpuMsOverNextSecond();
    assert.ok(ms < 300, `${ms} ms of CPU in the second after X settled`);
  } finally {
    a.close();
    b.close();
  }
});

void test("a long task whose thread's event loop keeps turning is not taken for stuck (the heartbeat)", async () => {
  const p = pool();
  try {
    await p.run({ kind: "sync", ms: 1, name: "warm" });
    // One task of 1.2 s: 60 ms holds, 20 times, the loop turning in between (no note of its own); another task meanwhile.
    const long = p.run({ kind: "chunked", ms: 60, parts: 20, name: "long" }, AbortSignal.timeout(10_000));
    await new Promise((r) => setTimeout(r, 200));
    const other = p.run({ kind: "sync", ms: 1, name: "other" }, AbortSignal.timeout(10_000));
    assert.match(await long, /^long on /);
    assert.match(await other, /^other on /);
    assert.equal(p.size, 1, "no other thread was started");
  } finally {
    p.close();
  }
});

// The process's shared pools (shared.ts): two links, as two worker threads have, on one host, as the primary holds it.
void test("shared pools: the tasks of two links run in one thread of the host's pool, the threads' questions are answered by a link, and a deadline in one link ends the thread while the other link's task runs on", async () => {
  const host = new PoolHost();
  const a = new PoolLink(host.connect());
  const b = new PoolLink(host.connect());
  const options: SharedPoolOptions = { entry: ENTRY.href, heapMb: 64, what: "test task", maxThreads: 4, keepOneIdle: true, idleMs: 200 };
  const asked: string[] = [];
  for (const [name, link] of [["a", a], ["b", b]] as const) {
    link.onOther("test", (m, post) => {
      const q = m as { type?: string; q?: number; delay?: number };
      asked.push(name);
      if (q.type === "ask") setTimeout(() => post({ type: "answer", q: q.q }), q.delay ?? 0);
    });
  }
  const run = (link: PoolLink, task: Task, signal?: AbortSignal): Promise<string> => link.run<Task, string>("test", options, task, signal);
  try {
    const [x, y] = await Promise.all([run(a, { kind: "sync", ms: 1, name: "x" }), run(b, { kind: "sync", ms: 1, name: "y" })]);
    assert.equal(x.split(" on ")[1], y.split(" on ")[1], "one thread for both links");
    assert.deepEqual(host.sizes(), { test: 1 });
    // A question from the thread goes to a link that uses the pool, and its answer back.
    assert.match(await run(b, { kind: "hostile", ms: 1, delay: 10, name: "q" }, AbortSignal.timeout(5000)), /^q on /);
    assert.deepEqual(asked, ["b"]);
    // H (link a) holds its thread for 6 s once answered; its deadline is 1.5 s. L (link b) is posted meanwhile: it is moved and completes.
    const h = run(a, { kind: "hostile", ms: 6000, delay: 50, name: "H" }, AbortSignal.timeout(1500));
    h.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 150));
    const l = await run(b, { kind: "sync", ms: 5, name: "L" }, AbortSignal.timeout(5000));
    assert.match(l, /^L on /);
    await assert.rejects(h, /deadline/);
    // After the deadline the host ended H's thread: a new task still runs.
    assert.match(await run(a, { kind: "sync", ms: 1, name: "after" }, AbortSignal.timeout(5000)), /^after on /);
    // A closed link's tasks fail; the other link goes on.
    a.close();
    await assert.rejects(run(a, { kind: "sync", ms: 1, name: "closed" }), /closed/);
    assert.match(await run(b, { kind: "sync", ms: 1, name: "still" }, AbortSignal.timeout(5000)), /^still on /);
  } finally {
    a.close();
    b.close();
    host.close();
  }
});

void test("shared pools: a link that goes away while its task waits for its answer does not hold the pool; the other link's tasks go on", async () => {
  const host = new PoolHost();
  const a = new PoolLink(host.connect());
  const b = new PoolLink(host.connect());
  const options: SharedPoolOptions = { entry: ENTRY.href, heapMb: 64, what: "test task", maxThreads: 4, keepOneIdle: true, idleMs: 200 };
  // a's worker dies instead of answering its thread's question.
  a.onOther("test", () => a.close());
  b.onOther("test", (m, post) => post({ type: "answer", q: (m as { q?: number }).q }));
  try {
    const warm = await b.run<Task, string>("test", options, { kind: "sync", ms: 1, name: "warm" }, AbortSignal.timeout(5000));
    const lost = a.run<Task, string>("test", options, { kind: "hostile", ms: 1, name: "lost" });
    await assert.rejects(lost, /closed/);
    await new Promise((r) => setTimeout(r, 200));
    // b's tasks, a question of their own included, still run, in a thread started anew: a's task was ended with its thread.
    const next = await b.run<Task, string>("test", options, { kind: "sync", ms: 1, name: "next" }, AbortSignal.timeout(5000));
    assert.notEqual(next.split(" on ")[1], warm.split(" on ")[1], "the thread that held a's task was ended");
    assert.match(await b.run<Task, string>("test", options, { kind: "hostile", ms: 1, name: "asks" }, AbortSignal.timeout(5000)), /^asks on /);
  } finally {
    b.close();
    host.close();
  }
});

void test("shared pools: links that go away with no task in a thread leave that thread and the other link's task there alone", async () => {
  const host = new PoolHost();
  const a = new PoolLink(host.connect());
  const b = new PoolLink(host.connect());
  const c = new PoolLink(host.connect());
  const options: SharedPoolOptions = { entry: ENTRY.href, heapMb: 64, what: "test task", maxThreads: 4, keepOneIdle: true, idleMs: 200 };
  let asks = 0;
  b.onOther("test", (m, post) => {
    const q = m as { q?: number; delay?: number };
    asks++;
    setTimeout(() => post({ type: "answer", q: q.q }), q.delay ?? 0);
  });
  try {
    const warm = await b.run<Task, string>("test", options, { kind: "sync", ms: 1, name: "warm" }, AbortSignal.timeout(5000));
    // b's task waits 300 ms for its answer; meanwhile two other workers, which never posted a task, go away.
    const mine = b.run<Task, string>("test", options, { kind: "hostile", ms: 1, delay: 300, name: "B" }, AbortSignal.timeout(8000));
    await new Promise((r) => setTimeout(r, 50));
    a.close();
    await new Promise((r) => setTimeout(r, 100));
    c.close();
    const done = await mine;
    assert.equal(done.split(" on ")[1], warm.split(" on ")[1], "b's task finished in the thread it was in");
    assert.equal(asks, 1, "b's task was not run again");
  } finally {
    a.close();
    b.close();
    c.close();
    host.close();
  }
});

void test("shared pools: a thread's question goes to the link whose task asked, not to the one that posted last", async () => {
  const options: SharedPoolOptions = { entry: ENTRY.href, heapMb: 64, what: "test task", maxThreads: 4, keepOneIdle: true, idleMs: 200 };
  const host = new PoolHost();
  const a = new PoolLink(host.connect());
  const b = new PoolLink(host.connect());
  const asked: string[] = [];
  for (const [name, link] of [["a", a], ["b", b]] as const) {
    link.onOther("test", (m, post) => {
      asked.push(name);
      post({ type: "answer", q: (m as { q?: number }).q });
    });
  }
  try {
    const warm = await b.run<Task, string>("test", options, { kind: "sync", ms: 1, name: "warm" }, AbortSignal.timeout(5000));
    // B's task waits behind a 40 ms one and asks when the thread reaches it; a posts after it, to the same thread.
    // (Well under STALL_MS: a thread held near 100 ms on a starved machine would have its unread tasks moved to another.)
    const first = b.run<Task, string>("test", options, { kind: "sync", ms: 40, name: "first" }, AbortSignal.timeout(8000));
    const q = b.run<Task, string>("test", options, { kind: "hostile", ms: 1, name: "B" }, AbortSignal.timeout(8000));
    await new Promise((r) => setTimeout(r, 10));
    const other = await a.run<Task, string>("test", options, { kind: "sync", ms: 1, name: "A" }, AbortSignal.timeout(8000));
    assert.match(await first, /^first on /);
    assert.match(await q, /^B on /);
    assert.equal(other.split(" on ")[1], warm.split(" on ")[1], "one thread");
    assert.deepEqual(asked, ["b"]);
  } finally {
    a.close();
    b.close();
    host.close();
  }
});

void test("shared pools: tasks, results and questions go straight between the links and the thread; the host gets no message per task", async () => {
  const options: SharedPoolOptions = { entry: ENTRY.href, heapMb: 64, what: "test task", maxThreads: 4, keepOneIdle: true, idleMs: 200 };
  const host = new PoolHost();
  const a = new PoolLink(host.connect());
  const b = new PoolLink(host.connect());
  for (const link of [a, b]) link.onOther("test", (m, post) => post({ type: "answer", q: (m as { q?: number }).q }));
  try {
    await a.run<Task, string>("test", options, { kind: "sync", ms: 1, name: "warm" }, AbortSignal.timeout(5000));
    const before = host.received;
    const runs: Promise<string>[] = [];
    for (let i = 0; i < 20; i++) {
      const link = i % 2 === 0 ? a : b;
      runs.push(link.run<Task, string>("test", options, { kind: i % 4 === 0 ? "hostile" : "sync", ms: 1, name: `t${i}` }, AbortSignal.timeout(5000)));
    }
    const done = await Promise.all(runs);
    assert.equal(done.length, 20);
    assert.equal(host.received - before, 0, "no task, result or question through the host");
    assert.deepEqual(host.sizes(), { test: 1 });
  } finally {
    a.close();
    b.close();
    host.close();
  }
});

void test("shared pools: a thread ended at a task's deadline runs the other links' tasks it had read again once, in another thread, over that thread's own ports", async () => {
  const options: SharedPoolOptions = { entry: ENTRY.href, heapMb: 64, what: "test task", maxThreads: 4, keepOneIdle: true, idleMs: 200 };
  const host = new PoolHost();
  const a = new PoolLink(host.connect());
  const b = new PoolLink(host.connect());
  let asks = 0;
  b.onOther("test", (m, post) => {
    asks++;
    setTimeout(() => post({ type: "answer", q: (m as { q?: number }).q }), (m as { delay?: number }).delay ?? 0);
  });
  try {
    const warm = await a.run<Task, string>("test", options, { kind: "sync", ms: 1, name: "warm" }, AbortSignal.timeout(5000));
    // W (link b) is read and waits 300 ms for its answer; H (link a) then holds the thread for 5 s, past its 600 ms deadline.
    const w = b.run<Task, string>("test", options, { kind: "hostile", ms: 1, delay: 300, name: "W" }, AbortSignal.timeout(8000));
    await new Promise((r) => setTimeout(r, 50));
    const h = a.run<Task, string>("test", options, { kind: "sync", ms: 5000, name: "H" }, AbortSignal.timeout(600));
    h.catch(() => undefined);
    await assert.rejects(h, /deadline/);
    const again = await w;
    assert.match(again, /^W on /);
    assert.notEqual(again.split(" on ")[1], warm.split(" on ")[1], "W ran again in another thread");
    assert.equal(asks, 2, "W ran twice: it asked twice");
  } finally {
    a.close();
    b.close();
    host.close();
  }
});

void test("shared pools: a second thread started while the first was stuck is ended once idle for idleMs; one idle thread stays", async () => {
  const options: SharedPoolOptions = { entry: ENTRY.href, heapMb: 64, what: "test task", maxThreads: 4, keepOneIdle: true, idleMs: 200 };
  const host = new PoolHost();
  const a = new PoolLink(host.connect());
  const b = new PoolLink(host.connect());
  try {
    await a.run<Task, string>("test", options, { kind: "sync", ms: 1, name: "warm" }, AbortSignal.timeout(5000));
    // S holds the only thread for 700 ms; Q (the other link) is moved to a second thread, started for it.
    const s = a.run<Task, string>("test", options, { kind: "sync", ms: 700, name: "S" }, AbortSignal.timeout(5000));
    await new Promise((r) => setTimeout(r, 20));
    const q = await b.run<Task, string>("test", options, { kind: "sync", ms: 1, name: "Q" }, AbortSignal.timeout(5000));
    const held = await s;
    assert.notEqual(q.split(" on ")[1], held.split(" on ")[1]);
    assert.deepEqual(host.sizes(), { test: 2 });
    await new Promise((r) => setTimeout(r, 700));
    assert.deepEqual(host.sizes(), { test: 1 });
    assert.match(await b.run<Task, string>("test", options, { kind: "sync", ms: 1, name: "after" }, AbortSignal.timeout(5000)), /^after on /);
  } finally {
    a.close();
    b.close();
    host.close();
  }
});

void test("a task thread's answers posted in one turn of the event loop go as one message; one alone goes as itself", async () => {
  const { port1, port2 } = new MessageChannel();
  const got: unknown[] = [];
  port2.on("message", (m: unknown) => got.push(m));
  try {
    const peer = batchedPeer(port1);
    peer.postMessage({ n: 1 });
    peer.postMessage({ n: 2 });
    peer.postMessage({ n: 3 });
    await new Promise((r) => setTimeout(r, 50));
    peer.postMessage({ n: 4 });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(got.length, 2);
    assert.deepEqual(unbatch(got[0]), [{ n: 1 }, { n: 2 }, { n: 3 }]);
    assert.deepEqual(got[1], { n: 4 });
    assert.deepEqual(unbatch(got[1]), [{ n: 4 }]);
  } finally {
    port1.close();
  }
});

void test("shared pools: once the host is closed, a link's tasks fail at once, those in flight and those that then ask for a thread (none has a deadline)", async () => {
  const options: SharedPoolOptions = { entry: ENTRY.href, heapMb: 64, what: "test task", maxThreads: 2 };
  const host = new PoolHost();
  const a = new PoolLink(host.connect());
  try {
    assert.match(await a.run<Task, string>("test", options, { kind: "sync", ms: 1, name: "warm" }), /^warm on /);
    const h = a.run<Task, string>("test", options, { kind: "sync", ms: 3000, name: "H" });
    await new Promise((r) => setTimeout(r, 50));
    host.close();
    await assert.rejects(h, /test task pool closed/);
    // Each asks the closed host for a thread: it fails instead of waiting for ever.
    const late = [1, 2].map((n) => a.run<Task, string>("test", options, { kind: "sync", ms: 1, name: `L${n}` }));
    const timeout = new Promise<string>((r) => setTimeout(() => r("still waiting after 3 s"), 3000).unref());
    for (const l of late) assert.equal(await Promise.race([l.then(() => "ran", (e: Error) => e.message), timeout]), "test task pool closed");
    await assert.rejects(a.run<Task, string>("test", options, { kind: "sync", ms: 1, name: "L3" }), /test task pool closed/);
  } finally {
    a.close();
  }
});
