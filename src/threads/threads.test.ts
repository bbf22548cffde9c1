// The task pool (src/threads) with a test thread (test/helpers/task-thread-entry.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { TaskPool } from "./index.ts";

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
    const c0 = process.cpuUsage();
    await new Promise((r) => setTimeout(r, 1000));
    const c = process.cpuUsage(c0);
    const ms = (c.user + c.system) / 1000;
    assert.ok(ms < 300, `${ms} ms of CPU in the second after the tasks settled`);
  } finally {
    p.close();
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
