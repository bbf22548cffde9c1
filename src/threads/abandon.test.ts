// A task past its deadline in a thread that is not stuck is abandoned there (src/threads task.ts):
// the thread and its other tasks go on. A stuck thread, or an abandoned task that goes on computing,
// still has its thread ended. Real threads (test/helpers/task-thread-entry.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { GRACE_MS, HOLD_MS, PoolHost, PoolLink, TaskPool, type SharedPoolOptions } from "./index.ts";

const ENTRY = new URL("../../test/helpers/task-thread-entry.ts", import.meta.url);
/** A question asked with this delay is never answered (a DNS server that never answers). */
const NEVER = 3_600_000;

interface Task {
  readonly kind: "sync" | "hostile";
  readonly ms: number;
  readonly delay?: number;
  readonly stubborn?: boolean;
  readonly name: string;
}

/** The thread the result came from. */
const where = (result: string): string | undefined => result.split(" on ")[1];

interface Probe {
  /** Answers from the thread to { type: "running" }: its tasks whose work has not settled, its unanswered questions. */
  readonly running: { count: number; waits: number }[];
  readonly onOther: (m: unknown, post: (x: unknown) => void) => void;
}

/** The threads' questions answered after their delay (never: NEVER); a question with delay 1 first asks the thread what still runs in it. */
function probe(): Probe {
  const running: { count: number; waits: number }[] = [];
  return {
    running,
    onOther: (m, post) => {
      const a = m as { type?: string; q?: number; delay?: number; count?: number; waits?: number };
      if (a.type === "running") return void running.push({ count: a.count ?? -1, waits: a.waits ?? -1 });
      if (a.type !== "ask" || a.delay === NEVER) return;
      if (a.delay === 1) post({ type: "running" });
      setTimeout(() => post({ type: "answer", q: a.q }), a.delay ?? 0).unref();
    },
  };
}

function pool(p: Probe): TaskPool<Task, string> {
  return new TaskPool<Task, string>({ entry: ENTRY, heapMb: 64, what: "test task", maxThreads: 4, keepOneIdle: true, idleMs: 10_000, abandons: true, onOther: p.onOther });
}

/** Asserts this process (every thread) uses under 300 ms of CPU over the next second: no task's code still runs. */
async function assertQuietNextSecond(after: string): Promise<void> {
  const c0 = process.cpuUsage();
  await new Promise((r) => setTimeout(r, 1000));
  const c = process.cpuUsage(c0);
  const ms = (c.user + c.system) / 1000;
  assert.ok(ms < 300, `${ms} ms of CPU in the second after ${after}`);
}

void test("a task waiting for an answer that never comes fails at its deadline; the other task in its thread completes there, and no thread is started again", async () => {
  const pr = probe();
  const p = pool(pr);
  try {
    const warm = where(await p.run({ kind: "sync", ms: 1, name: "warm" }));
    // W waits for an answer that never comes (deadline 300 ms); O, in the same thread, gets its answer after 1.5 s.
    const w = p.run({ kind: "hostile", ms: 1, delay: NEVER, name: "W" }, AbortSignal.timeout(300));
    w.catch(() => undefined);
    const o = p.run({ kind: "hostile", ms: 1, delay: 1500, name: "O" }, AbortSignal.timeout(8000));
    const t0 = performance.now();
    await assert.rejects(w, /stopped at the check deadline/);
    assert.ok(performance.now() - t0 < 600, "W failed at its deadline, at once");
    // Later: what runs in the thread is O and the probe; W's work and its question are gone.
    await new Promise((r) => setTimeout(r, 2 * GRACE_MS));
    assert.equal(where(await p.run({ kind: "hostile", ms: 1, delay: 1, name: "probe" }, AbortSignal.timeout(5000))), warm);
    assert.deepEqual(pr.running, [{ count: 2, waits: 2 }], "O and the probe run there; W was released");
    assert.equal(where(await o), warm, "O completed in the thread it was in");
    assert.equal(p.started, 1, "the thread was not ended");
    assert.equal(p.size, 1);
  } finally {
    p.close();
  }
});

void test("a task holding its thread in a synchronous loop past its deadline still ends the thread; the other task runs again elsewhere", async () => {
  const p = pool(probe());
  try {
    const warm = where(await p.run({ kind: "sync", ms: 1, name: "warm" }));
    // O is read and waits 300 ms for its answer; H then holds the thread for 5 s, past its 600 ms deadline.
    const o = p.run({ kind: "hostile", ms: 1, delay: 300, name: "O" }, AbortSignal.timeout(8000));
    await new Promise((r) => setTimeout(r, 50));
    const h = p.run({ kind: "sync", ms: 5000, name: "H" }, AbortSignal.timeout(600));
    h.catch(() => undefined);
    const t0 = performance.now();
    await assert.rejects(h, /stopped at the check deadline/);
    assert.ok(performance.now() - t0 < 1000, "H failed at its deadline, at once");
    const again = await o;
    assert.notEqual(where(again), warm, "O ran again in another thread");
    assert.ok(p.started >= 2, "H's thread was ended (a new one started)");
    await assertQuietNextSecond("the tasks settled");
  } finally {
    p.close();
  }
});

void test("an abandoned task whose code goes on computing is ended with its thread after the grace; the other task runs again elsewhere", async () => {
  const p = pool(probe());
  try {
    const warm = where(await p.run({ kind: "sync", ms: 1, name: "warm" }));
    // S waits for an answer that never comes; once abandoned it computes for 4 s all the same.
    const s = p.run({ kind: "hostile", ms: 4000, delay: NEVER, stubborn: true, name: "S" }, AbortSignal.timeout(300));
    s.catch(() => undefined);
    const o = p.run({ kind: "hostile", ms: 1, delay: 600, name: "O" }, AbortSignal.timeout(8000));
    await assert.rejects(s, /stopped at the check deadline/);
    const again = await o;
    assert.notEqual(where(again), warm, "O ran again in another thread");
    assert.ok(p.started >= 2, "S's thread was ended after the grace");
    await assertQuietNextSecond("the tasks settled");
  } finally {
    p.close();
  }
});

void test("a task past its deadline that its thread has not read is dropped there; the thread is not ended", async () => {
  const p = pool(probe());
  try {
    const warm = where(await p.run({ kind: "sync", ms: 1, name: "warm" }));
    // Three tasks at once: the thread holds A 150 ms, during which B's 50 ms deadline passes (B unread); C waits.
    const a = p.run({ kind: "sync", ms: 150, name: "A" }, AbortSignal.timeout(5000));
    const b = p.run({ kind: "sync", ms: 3000, name: "B" }, AbortSignal.timeout(50));
    b.catch(() => undefined);
    const c = p.run({ kind: "sync", ms: 1, name: "C" }, AbortSignal.timeout(5000));
    await assert.rejects(b, /deadline/);
    assert.equal(where(await a), warm);
    assert.match(await c, /^C on /);
    await assertQuietNextSecond("B never ran");
  } finally {
    p.close();
  }
});

void test("a task abandoned at its deadline stays counted in its thread's tasks until its code answers: meanwhile a new task goes to a thread that is free, not to that one as if it were", async () => {
  const p = pool(probe());
  try {
    // Two threads: S holds the first 700 ms, Q is moved to a second one, started for it.
    const first = where(await p.run({ kind: "sync", ms: 1, name: "warm" }));
    const s = p.run({ kind: "sync", ms: 700, name: "S" }, AbortSignal.timeout(5000));
    await new Promise((r) => setTimeout(r, 20));
    const second = where(await p.run({ kind: "sync", ms: 1, name: "Q" }, AbortSignal.timeout(5000)));
    assert.equal(where(await s), first);
    assert.notEqual(second, first);
    // W goes to the first thread (both idle) and waits for an answer that never comes; abandoned at its deadline, its code computes 60 ms more.
    const w = p.run({ kind: "hostile", ms: 60, delay: NEVER, stubborn: true, name: "W" }, AbortSignal.timeout(300));
    await assert.rejects(w, /stopped at the check deadline/);
    // Meanwhile N goes to the second thread: the first still runs W's code.
    assert.equal(where(await p.run({ kind: "sync", ms: 1, name: "N" }, AbortSignal.timeout(5000))), second);
    await new Promise((r) => setTimeout(r, 2 * GRACE_MS));
    assert.equal(p.started, 2, "W answered within its grace: no thread was ended");
    assert.equal(where(await p.run({ kind: "sync", ms: 1, name: "after" }, AbortSignal.timeout(5000))), first);
  } finally {
    p.close();
  }
});

// The process's shared pools (shared.ts): the same through a PoolLink.
const shared: SharedPoolOptions = { entry: ENTRY.href, heapMb: 64, what: "test task", maxThreads: 4, keepOneIdle: true, idleMs: 10_000, abandons: true };

/** The host's thread counts (its metrics): started, and ended by reason. */
function counts(host: PoolHost): { started: number; ended: Record<string, number> } {
  let started = 0;
  const ended: Record<string, number> = {};
  for (const x of host.threadSamples()) {
    if (x.name === "wardmail_task_threads_started_total") started += x.value;
    else if (x.name === "wardmail_task_threads_ended_total") ended[x.labels.reason ?? ""] = x.value;
  }
  return { started, ended };
}

/** A host and two links (two session workers) on the shared test pool, with their probes and a run helper; close() ends all. */
function sharedPair(): { host: PoolHost; a: PoolLink; b: PoolLink; pa: ReturnType<typeof probe>; pb: ReturnType<typeof probe>; run: (link: PoolLink, task: Task, signal?: AbortSignal) => Promise<string>; close: () => void } {
  const host = new PoolHost();
  const a = new PoolLink(host.connect());
  const b = new PoolLink(host.connect());
  const pa = probe();
  const pb = probe();
  a.onOther("test", pa.onOther);
  b.onOther("test", pb.onOther);
  const run = (link: PoolLink, task: Task, signal?: AbortSignal): Promise<string> => link.run<Task, string>("test", shared, task, signal);
  const close = (): void => {
    a.close();
    b.close();
    host.close();
  };
  return { host, a, b, pa, pb, run, close };
}

void test("shared pools: a task of one link waiting for an answer that never comes fails at its deadline; the other link's task completes in the same thread, and the host ends nothing", async () => {
  const { host, a, b, pa, run, close } = sharedPair();
  try {
    const warm = where(await run(a, { kind: "sync", ms: 1, name: "warm" }, AbortSignal.timeout(5000)));
    const before = host.received;
    const w = run(a, { kind: "hostile", ms: 1, delay: NEVER, name: "W" }, AbortSignal.timeout(300));
    w.catch(() => undefined);
    const o = run(b, { kind: "hostile", ms: 1, delay: 1500, name: "O" }, AbortSignal.timeout(8000));
    await assert.rejects(w, /stopped at the check deadline/);
    await new Promise((r) => setTimeout(r, 2 * GRACE_MS));
    assert.equal(where(await run(a, { kind: "hostile", ms: 1, delay: 1, name: "probe" }, AbortSignal.timeout(5000))), warm);
    assert.deepEqual(pa.running, [{ count: 2, waits: 2 }], "O and the probe run there; W was released");
    assert.equal(where(await o), warm, "O completed in the thread it was in");
    assert.equal(host.received - before, 0, "no thread was ended (nor started)");
    assert.deepEqual(host.sizes(), { test: 1 });
    assert.deepEqual(counts(host), { started: 1, ended: {} });
  } finally {
    close();
  }
});

void test("shared pools: an abandoned task that goes on computing has its thread ended after the grace; a stuck thread at once; the other link's tasks run again elsewhere", async () => {
  const { host, a, b, run, close } = sharedPair();
  try {
    const warm = where(await run(a, { kind: "sync", ms: 1, name: "warm" }, AbortSignal.timeout(5000)));
    // S (link a) is abandoned at 300 ms and computes for 4 s all the same: its thread is ended after the grace; O (link b) runs again.
    const s = run(a, { kind: "hostile", ms: 4000, delay: NEVER, stubborn: true, name: "S" }, AbortSignal.timeout(300));
    s.catch(() => undefined);
    const o = run(b, { kind: "hostile", ms: 1, delay: 600, name: "O" }, AbortSignal.timeout(8000));
    await assert.rejects(s, /stopped at the check deadline/);
    const second = where(await o);
    assert.notEqual(second, warm, "O ran again in another thread");
    // H (link a) holds that thread for 5 s past its 600 ms deadline: ended at once; P (link b) runs again.
    const p = run(b, { kind: "hostile", ms: 1, delay: 300, name: "P" }, AbortSignal.timeout(8000));
    await new Promise((r) => setTimeout(r, 50));
    const h = run(a, { kind: "sync", ms: 5000, name: "H" }, AbortSignal.timeout(600));
    h.catch(() => undefined);
    await assert.rejects(h, /stopped at the check deadline/);
    const third = where(await p);
    assert.notEqual(third, second, "P ran again in another thread");
    assert.notEqual(third, warm);
    // H's thread: ended at H's deadline (stuck), or, P moved from it first, once P settled elsewhere (shut).
    const { started, ended } = counts(host);
    assert.equal(started, 3);
    assert.equal(ended.grace, 1, JSON.stringify(ended));
    assert.equal((ended.stuck ?? 0) + (ended.shut ?? 0), 1, JSON.stringify(ended));
    assert.equal(Object.keys(ended).length, 2, JSON.stringify(ended));
    await assertQuietNextSecond("the tasks settled");
  } finally {
    close();
  }
});

void test("shared pools: a worker that goes away while its abandoned task goes on computing has that thread ended (its grace timer went with it); the other link's task runs again elsewhere", async () => {
  const { host, a, b, run, close } = sharedPair();
  try {
    const warm = where(await run(a, { kind: "sync", ms: 1, name: "warm" }, AbortSignal.timeout(5000)));
    // S (link a) is abandoned at 300 ms and computes for 4 s all the same; link a closes at once (its worker is gone).
    const s = run(a, { kind: "hostile", ms: 4000, delay: NEVER, stubborn: true, name: "S" }, AbortSignal.timeout(300));
    s.catch(() => undefined);
    const o = run(b, { kind: "hostile", ms: 1, delay: 600, name: "O" }, AbortSignal.timeout(8000));
    await assert.rejects(s, /stopped at the check deadline/);
    // S got its abandon and computes; within its grace, link a closes (its worker is gone).
    await new Promise((r) => setTimeout(r, GRACE_MS / 2));
    a.close();
    const t0 = performance.now();
    const again = where(await o);
    // Ended at once, O runs again elsewhere and gets its answer 600 ms later (left there, O would move only
    // once its thread had been stuck for HOLD_MS, and S would compute on).
    const waited = performance.now() - t0;
    assert.notEqual(again, warm, "O ran again in another thread");
    assert.ok(waited < 600 + HOLD_MS / 2, `O waited ${waited} ms: S's thread was not ended when its worker went away`);
    assert.deepEqual(counts(host).ended, { worker_gone: 1 });
    await assertQuietNextSecond("S's code was stopped");
  } finally {
    close();
  }
});

void test("shared pools: a task abandoned at its deadline stays counted in its thread's BUSY until its code answers: meanwhile a new task goes to a thread that is free, not to that one as if it were", async () => {
  const { host, a, b, run, close } = sharedPair();
  try {
    // Two threads: S (a) holds the first 700 ms, Q (b) is moved to a second one, started for it.
    const first = where(await run(a, { kind: "sync", ms: 1, name: "warm" }, AbortSignal.timeout(5000)));
    const s = run(a, { kind: "sync", ms: 700, name: "S" }, AbortSignal.timeout(5000));
    await new Promise((r) => setTimeout(r, 20));
    const second = where(await run(b, { kind: "sync", ms: 1, name: "Q" }, AbortSignal.timeout(5000)));
    assert.equal(where(await s), first);
    assert.notEqual(second, first);
    // W (a) goes to the first thread (both idle, it comes first) and waits for an answer that never comes; abandoned at its deadline, its code
    // computes 60 ms more before it answers (within the grace, and before a task posted behind it would be moved: STALL_MS).
    const w = run(a, { kind: "hostile", ms: 60, delay: NEVER, stubborn: true, name: "W" }, AbortSignal.timeout(300));
    await assert.rejects(w, /stopped at the check deadline/);
    // Meanwhile N (b): the first thread still runs W's code, so N goes to the second. Were W's count released at its deadline, both threads
    // would count 0 and N would go to the first, to wait behind W's code.
    assert.equal(where(await run(b, { kind: "sync", ms: 1, name: "N" }, AbortSignal.timeout(5000))), second);
    // W answered within its grace: no thread was ended; and once it answered, the first thread is free again.
    await new Promise((r) => setTimeout(r, 2 * GRACE_MS));
    assert.deepEqual(counts(host), { started: 2, ended: {} });
    assert.equal(where(await run(b, { kind: "sync", ms: 1, name: "after" }, AbortSignal.timeout(5000))), first);
  } finally {
    close();
  }
});
