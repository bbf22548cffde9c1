// A task its thread never read cannot have caused that thread's end: it runs again elsewhere at every
// end, however often it moved (src/threads index.ts, "A task the ended thread never read"). The path
// that failed such a task before: moved once (run again after a first thread's end), it sits unread
// in a second thread that another task's deadline ends, and was failed as a task moved before. Real
// threads (test/helpers/task-thread-entry.ts); every step is driven by hand (aborts), not by timing.
import assert from "node:assert/strict";
import { test } from "node:test";
import { HOLD_MS, MAX_REPOSTS, PoolHost, PoolLink, TaskPool, TaskThread, type SharedPoolOptions } from "./index.ts";

const ENTRY = new URL("../../test/helpers/task-thread-entry.ts", import.meta.url);

interface Task {
  readonly kind: "sync" | "hostile";
  readonly ms: number;
  readonly delay?: number;
  readonly name: string;
}

/** The thread the result came from. */
const where = (result: string): string | undefined => result.split(" on ")[1];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The threads' questions, answered after their delay; `asked` lists the delays asked (a task's tag). */
function answering(): { readonly asked: number[]; readonly onOther: (m: unknown, post: (x: unknown) => void) => void } {
  const asked: number[] = [];
  return {
    asked,
    onOther: (m, post) => {
      const a = m as { type?: string; q?: number; delay?: number };
      if (a.type !== "ask") return;
      asked.push(a.delay ?? 0);
      setTimeout(() => post({ type: "answer", q: a.q }), a.delay ?? 0).unref();
    },
  };
}

/** A task that holds its thread: read, answered after `delay` ms (its tag), then computing for 6 s. */
const HOLD = (name: string, delay: number): Task => ({ kind: "hostile", ms: 6000, delay, name });

/** `p`, whose rejection the test reads later (or never): not an unhandled rejection meanwhile. */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/** Starts each thread with a short task; where each ran. */
async function warm(...threads: TaskThread<Task, string>[]): Promise<(string | undefined)[]> {
  return (await Promise.all(threads.map((t) => t.run({ kind: "sync", ms: 1, name: "warm" })))).map(where);
}

/** Two links to one pool host, each answering its threads' questions (qa, qb). */
function sharedPair(options: SharedPoolOptions) {
  const host = new PoolHost();
  const a = new PoolLink(host.connect());
  const b = new PoolLink(host.connect());
  const qa = answering();
  const qb = answering();
  a.onOther("test", qa.onOther);
  b.onOther("test", qb.onOther);
  const run = (link: PoolLink, task: Task, signal?: AbortSignal): Promise<string> => link.run<Task, string>("test", options, task, signal);
  return { host, a, b, qa, qb, run };
}

/** Waits (at most 10 s) until every delay in `tags` was asked: the tasks so tagged were read. */
async function read(asked: readonly number[], ...tags: number[]): Promise<void> {
  for (let i = 0; i < 1000 && !tags.every((t) => asked.includes(t)); i++) await sleep(10);
  assert.ok(
    tags.every((t) => asked.includes(t)),
    `read: ${asked.join(", ")}`,
  );
}

void test("a task run again once after its thread's end, then left unread in a second thread ended at another task's deadline, runs again (it never ran there)", async () => {
  const q = answering();
  const opts = { entry: ENTRY, heapMb: 64, what: "test task", onOther: q.onOther };
  // As a pool does: what thread A hands back goes to B, what B hands back to C.
  const c = new TaskThread<Task, string>(opts);
  const b = new TaskThread<Task, string>(opts, { orphans: (jobs) => jobs.forEach((j) => c.post(j)), settled: () => undefined });
  const a = new TaskThread<Task, string>(opts, { orphans: (jobs) => jobs.forEach((j) => b.post(j)), settled: () => undefined });
  try {
    const [, , tc] = await warm(a, b, c);
    // H1 holds A, H2 holds B (each read, answered, then computing for 6 s); their deadlines are ours to fire.
    const d1 = new AbortController();
    const d2 = new AbortController();
    const h1 = quiet(a.run(HOLD("H1", 5), d1.signal));
    const h2 = quiet(b.run(HOLD("H2", 6), d2.signal));
    await read(q.asked, 5, 6);
    await sleep(50);
    // G is posted to A, which cannot read it. H1's deadline ends A: G runs again once, in B (moved once), which cannot read it either.
    const g = a.run({ kind: "sync", ms: 1, name: "G" }, AbortSignal.timeout(10_000));
    d1.abort();
    await assert.rejects(h1, /stopped at the check deadline/);
    assert.equal(a.busy, 0);
    assert.equal(b.busy, 2, "G waits unread in B behind H2");
    // H2's deadline ends B: G, never read there, runs again in C.
    d2.abort();
    await assert.rejects(h2, /stopped at the check deadline/);
    assert.equal(where(await g), tc, "G ran in C");
    assert.deepEqual([...q.asked].sort(), [5, 6], "H1 and H2 ran once each");
  } finally {
    a.close();
    b.close();
    c.close();
  }
});

void test("a task its thread had read is still run again only once: read in a thread ended at another task's deadline after one run again, it fails", async () => {
  const q = answering();
  const opts = { entry: ENTRY, heapMb: 64, what: "test task", onOther: q.onOther };
  const b = new TaskThread<Task, string>(opts, { orphans: () => assert.fail("nothing runs again"), settled: () => undefined });
  const a = new TaskThread<Task, string>(opts, { orphans: (jobs) => jobs.forEach((j) => b.post(j)), settled: () => undefined });
  try {
    await warm(a, b);
    const d1 = new AbortController();
    const d2 = new AbortController();
    // R is read in A and waits 300 ms for its answer; H1 then holds A. H1's deadline ends A: R runs again in B (its one run again), is read
    // there and waits 300 ms for its answer again; H2 then holds B, and its deadline ends B: R, read there, fails (the bound on a task that ran).
    const r = quiet(a.run({ kind: "hostile", ms: 1, delay: 300, name: "R" }, AbortSignal.timeout(10_000)));
    await read(q.asked, 300);
    void quiet(a.run(HOLD("H1", 5), d1.signal));
    await read(q.asked, 5);
    await sleep(30);
    d1.abort();
    for (let i = 0; i < 500 && q.asked.filter((x) => x === 300).length < 2; i++) await sleep(10);
    assert.deepEqual(q.asked, [300, 5, 300], "R ran again in B");
    void quiet(b.run(HOLD("H2", 6), d2.signal));
    await read(q.asked, 6);
    await sleep(30);
    d2.abort();
    await assert.rejects(r, /stopped at the check deadline/);
  } finally {
    a.close();
    b.close();
  }
});

void test("shared pools: a task run again once after its thread's end, then left unread in a second thread ended at another link's deadline, runs again (it never ran there)", async () => {
  const options: SharedPoolOptions = { entry: ENTRY.href, heapMb: 64, what: "test task", maxThreads: 2, keepOneIdle: true, idleMs: 10_000 };
  const { host, a, b, qa, run } = sharedPair(options);
  const ended = (): number => host.threadSamples().reduce((n, x) => n + (x.name === "wardmail_task_threads_ended_total" ? x.value : 0), 0);
  try {
    // Two threads: S (a) holds the first 700 ms, Q (b) is moved to a second one, started for it.
    const t0 = where(await run(a, { kind: "sync", ms: 1, name: "warm" }, AbortSignal.timeout(5000)));
    const s = run(a, { kind: "sync", ms: 700, name: "S" }, AbortSignal.timeout(5000));
    await sleep(20);
    const t1 = where(await run(b, { kind: "sync", ms: 1, name: "Q" }, AbortSignal.timeout(5000)));
    assert.equal(where(await s), t0);
    assert.notEqual(t1, t0);
    // H1 (a) holds the first thread, H2 (a) the second (each read, answered, then computing for 6 s); their deadlines are ours to fire.
    const d1 = new AbortController();
    const d2 = new AbortController();
    const h1 = quiet(run(a, HOLD("H1", 5), d1.signal));
    const h2 = quiet(run(a, HOLD("H2", 6), d2.signal));
    await read(qa.asked, 5, 6);
    await sleep(50);
    // G (b) goes to the first thread (as busy as the second, and first), which cannot read it. H1's deadline ends that thread:
    // G runs again once, in the second thread (moved once), which cannot read it either.
    const g = run(b, { kind: "sync", ms: 1, name: "G" }, AbortSignal.timeout(10_000));
    await sleep(10);
    d1.abort();
    await assert.rejects(h1, /stopped at the check deadline/);
    for (let i = 0; i < 100 && ended() < 1; i++) await sleep(5);
    await sleep(20);
    // H2's deadline ends the second thread (well before G's first look at it, STALL_MS after it came): G, never read there, runs again.
    d2.abort();
    await assert.rejects(h2, /stopped at the check deadline/);
    const ran = where(await g);
    assert.ok(ran !== t0 && ran !== t1, `G ran in a third thread (${ran}; ${t0}, ${t1} ended)`);
    assert.deepEqual([...qa.asked].sort(), [5, 6], "H1 and H2 ran once each");
    const gone = host.threadSamples().find((x) => x.name === "wardmail_task_threads_ended_total" && x.labels.reason === "deadline");
    assert.equal(gone?.value, 2, "both threads were ended at a deadline");
  } finally {
    a.close();
    b.close();
    host.close();
  }
});

void test("a task taken unread from a stuck thread keeps its one run again: read in a thread ended at another task's deadline, it runs again", async () => {
  const q = answering();
  const opts = { entry: ENTRY, heapMb: 64, what: "test task", onOther: q.onOther };
  const c = new TaskThread<Task, string>(opts);
  const b = new TaskThread<Task, string>(opts, { orphans: (jobs) => jobs.forEach((j) => c.post(j)), settled: () => undefined });
  const a = new TaskThread<Task, string>(opts, { orphans: () => undefined, settled: () => undefined });
  try {
    const [, , tc] = await warm(a, b, c); // id 0 in each
    const d1 = new AbortController();
    const d2 = new AbortController();
    void quiet(a.run(HOLD("H1", 5), d1.signal)); // id 1
    await read(q.asked, 5);
    await sleep(50);
    // G, posted to A, which cannot read it, is taken back (as from a stuck thread) and posted to B: a move of a task that ran nowhere.
    const g = a.run({ kind: "hostile", ms: 1, delay: 300, name: "G" }, AbortSignal.timeout(10_000)); // id 2
    const moved = a.take(2, performance.now() + 2 * HOLD_MS, 2);
    assert.ok(moved !== undefined, "G taken");
    assert.equal(moved.moves, 0, "not counted as a move of a task that ran");
    assert.equal(moved.reposts, 1);
    assert.equal(a.open, true, "A never read G: it still takes tasks");
    b.post(moved);
    // B reads G, which waits 300 ms for its answer; H2 then holds B, and its deadline ends B: G, read there, runs again once, in C.
    await read(q.asked, 300);
    const h2 = quiet(b.run(HOLD("H2", 6), d2.signal));
    await read(q.asked, 6);
    await sleep(30);
    d2.abort();
    await assert.rejects(h2, /stopped at the check deadline/);
    assert.equal(where(await g), tc, "G ran again in C");
    d1.abort();
  } finally {
    a.close();
    b.close();
    c.close();
  }
});

void test("shared pools: a task moved unread from a stuck thread keeps its one run again: read in a thread ended at another link's deadline, it runs again", async () => {
  const options: SharedPoolOptions = { entry: ENTRY.href, heapMb: 64, what: "test task", maxThreads: 2, keepOneIdle: true, idleMs: 10_000 };
  const { host, a, b, qa, qb, run } = sharedPair(options);
  const d1 = new AbortController();
  const d2 = new AbortController();
  try {
    // Two threads: S (a) holds the first 700 ms, Q (b) is moved to a second one, started for it.
    const t0 = where(await run(a, { kind: "sync", ms: 1, name: "warm" }, AbortSignal.timeout(5000)));
    const s = run(a, { kind: "sync", ms: 700, name: "S" }, AbortSignal.timeout(5000));
    await sleep(20);
    const t1 = where(await run(b, { kind: "sync", ms: 1, name: "Q" }, AbortSignal.timeout(5000)));
    assert.equal(where(await s), t0);
    // H1 (a) holds the first thread (read, answered, computing for 6 s); P (a) waits 1 s for its answer in the second.
    void quiet(run(a, HOLD("H1", 5), d1.signal));
    await read(qa.asked, 5);
    const p = run(a, { kind: "hostile", ms: 1, delay: 1000, name: "P" }, AbortSignal.timeout(10_000));
    await read(qa.asked, 1000);
    // G (b) goes to the first thread (as busy as the second, and first), which cannot read it; after STALL_MS it is moved to the
    // second, read there, and waits 300 ms for its answer.
    const g = run(b, { kind: "hostile", ms: 1, delay: 300, name: "G" }, AbortSignal.timeout(10_000));
    await read(qb.asked, 300);
    // H2 (a) then holds the second thread, and its deadline ends it: G, read there, runs again (its first run again: its move ran nowhere).
    const h2 = quiet(run(a, HOLD("H2", 6), d2.signal));
    await read(qa.asked, 6);
    await sleep(20);
    d2.abort();
    await assert.rejects(h2, /stopped at the check deadline/);
    // H1's deadline ends the first thread too; G runs in a third.
    await sleep(20);
    d1.abort();
    const ran = where(await g);
    assert.ok(ran !== t0 && ran !== t1, `G ran in a third thread (${ran}; ${t0}, ${t1} ended)`);
    assert.match(await p, /^P on /);
    assert.equal(qb.asked.filter((x) => x === 300).length, 2, "G ran twice: in the second thread, then in a third");
  } finally {
    d1.abort();
    a.close();
    b.close();
    host.close();
  }
});

void test("a task that moved as often as it may (maxMoves), then left unread behind a task holding its thread, may still be taken from that thread: that move runs nowhere", async () => {
  const q = answering();
  const opts = { entry: ENTRY, heapMb: 64, what: "test task", onOther: q.onOther };
  const a = new TaskThread<Task, string>(opts, { orphans: () => undefined, settled: () => undefined });
  const b = new TaskThread<Task, string>(opts, { orphans: () => undefined, settled: () => undefined });
  const d = new AbortController();
  try {
    await warm(a, b); // id 0 in each
    // G is read in A (it waits 5 s for its answer), then taken from it: its one move of a task that ran (maxMoves 1).
    const g = quiet(a.run({ kind: "hostile", ms: 1, delay: 5000, name: "G" }, AbortSignal.timeout(10_000))); // id 1
    await read(q.asked, 5000);
    assert.equal(a.movable(1, 1), true, "read, not moved yet");
    const moved = a.take(1, performance.now() + 2 * HOLD_MS, 1);
    assert.ok(moved !== undefined, "G taken from A");
    assert.equal(moved.moves, 1);
    // H holds B (computing for 6 s); G, posted in the same turn behind it, is not read there.
    void quiet(b.run({ kind: "sync", ms: 6000, name: "H" }, d.signal)); // id 1
    const id = b.post(moved); // id 2
    assert.equal(b.movable(id, 1), true, "unread in B: a pool still looks to move it when B is stuck (it was left there until another task's end)");
    const again = b.take(id, performance.now() + 2 * HOLD_MS, 1);
    assert.ok(again === moved, "G taken from B unread");
    assert.equal(again.moves, 1, "not a move of a task that ran");
    assert.equal(again.reposts, 1);
    assert.equal(b.open, true, "B never read G");
    again.reject(new Error("taken"));
    await assert.rejects(g, /taken/);
  } finally {
    d.abort();
    a.close();
    b.close();
  }
});

void test("in a pool whose read tasks may not move (maxMoves 0), a task left unread behind one holding its thread is still moved to another thread", async () => {
  const p = new TaskPool<Task, string>({ entry: ENTRY, heapMb: 64, what: "test task", maxThreads: 2, maxMoves: 0, keepOneIdle: true, idleMs: 10_000 });
  const d = new AbortController();
  try {
    const t0 = where(await p.run({ kind: "sync", ms: 1, name: "warm" }));
    // H holds the thread for 8 s; G, posted in the same turn, waits behind it unread, until the thread is seen stuck.
    void quiet(p.run({ kind: "sync", ms: 8000, name: "H" }, d.signal));
    const g = p.run({ kind: "sync", ms: 1, name: "G" }, AbortSignal.timeout(6000));
    const ran = where(await g);
    assert.ok(ran !== undefined && ran !== t0, `G ran in a second thread (${ran}; the first: ${t0})`);
    assert.equal(p.started, 2);
  } finally {
    d.abort();
    p.close();
  }
});

void test("shared pools: with maxMoves 0, a task left unread behind one holding its thread is still moved to another thread", async () => {
  const options: SharedPoolOptions = { entry: ENTRY.href, heapMb: 64, what: "test task", maxThreads: 2, maxMoves: 0, keepOneIdle: true, idleMs: 10_000 };
  const host = new PoolHost();
  const a = new PoolLink(host.connect());
  const d = new AbortController();
  try {
    const t0 = where(await a.run<Task, string>("test", options, { kind: "sync", ms: 1, name: "warm" }, AbortSignal.timeout(5000)));
    void quiet(a.run<Task, string>("test", options, { kind: "sync", ms: 8000, name: "H" }, d.signal));
    const g = a.run<Task, string>("test", options, { kind: "sync", ms: 1, name: "G" }, AbortSignal.timeout(6000));
    const ran = where(await g);
    assert.ok(ran !== undefined && ran !== t0, `G ran in a second thread (${ran}; the first: ${t0})`);
  } finally {
    d.abort();
    a.close();
    host.close();
  }
});

void test("a hostile task that holds every thread it is moved to moves at most maxMoves times: the threads it ends are bounded", async () => {
  const p = new TaskPool<Task, string>({ entry: ENTRY, heapMb: 64, what: "test task", maxThreads: 4, maxMoves: 2, keepOneIdle: true, idleMs: 10_000 });
  try {
    await p.run({ kind: "sync", ms: 1, name: "warm" });
    // H holds its thread for 20 s; it moves after HOLD_MS each time (twice), and its deadline ends the last thread.
    const h = p.run({ kind: "sync", ms: 20_000, name: "H" }, AbortSignal.timeout(4 * HOLD_MS + 600));
    await assert.rejects(h, /stopped at the check deadline/);
    assert.equal(p.started, 3, "the first thread and one per move");
  } finally {
    p.close();
  }
});

/** An entry that fails as it starts: every thread ends before it reads anything. */
const BROKEN = new URL("data:text/javascript,throw new Error('a broken entry')");

void test("a task without a deadline, in a pool whose threads end before reading anything (a broken entry), fails after MAX_REPOSTS re-posts, not for ever", async () => {
  const p = new TaskPool<Task, string>({ entry: BROKEN, heapMb: 64, what: "test task", maxThreads: 4 });
  try {
    await assert.rejects(p.run({ kind: "sync", ms: 1, name: "G" }), /a broken entry/);
    assert.equal(p.started, 1 + MAX_REPOSTS);
  } finally {
    p.close();
  }
});

void test("shared pools: a task without a deadline, in a pool whose threads end before reading anything (a broken entry), fails after MAX_REPOSTS re-posts, not for ever", async () => {
  const host = new PoolHost();
  const a = new PoolLink(host.connect());
  try {
    const options: SharedPoolOptions = { entry: BROKEN.href, heapMb: 64, what: "test task", maxThreads: 4 };
    await assert.rejects(a.run<Task, string>("test", options, { kind: "sync", ms: 1, name: "G" }), /test task thread exited/);
    const started = host.threadSamples().find((x) => x.name === "wardmail_task_threads_started_total")?.value;
    assert.equal(started, 1 + MAX_REPOSTS);
  } finally {
    a.close();
    host.close();
  }
});
