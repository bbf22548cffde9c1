// The outcomes waiting for a spool transaction (outcome-queue.ts): due after
// delayMs or at once at `batch`, taken along by a commit of messages once
// `group` wait, kept and retried after a failed transaction.
import assert from "node:assert/strict";
import { test } from "node:test";
import { OutcomeQueue } from "./outcome-queue.ts";

const outcome = (id: string): { id: string; outcomes: []; at: number } => ({ id, outcomes: [], at: Date.now() });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

void test("outcomes become due delayMs after the first, or at once when `batch` wait; take empties and clears the due state", async () => {
  let due = 0;
  const q = new OutcomeQueue({ delayMs: 30, batch: 4, group: 2, onDue: () => due++, onRetry: () => assert.fail("no retry") });
  q.add(outcome("a"));
  q.add(outcome("b"));
  assert.equal(q.isDue, false);
  assert.equal(q.ridesWith(0), false, "no messages: nothing to ride with");
  assert.equal(q.ridesWith(1), true, "`group` wait: a commit of messages takes them");
  const until = Date.now() + 2000;
  while (due === 0 && Date.now() < until) await sleep(10);
  assert.equal(due, 1, "one timer for the group");
  assert.equal(q.isDue, true);
  assert.deepEqual(q.take().map((o) => o.id), ["a", "b"]);
  assert.equal(q.isDue, false);
  assert.equal(q.length, 0);
  // `batch` of them: due at once, without waiting for the timer.
  for (const id of ["c", "d", "e", "f"]) q.add(outcome(id));
  assert.equal(due, 2);
  assert.equal(q.isDue, true);
  assert.equal(q.take().length, 4);
  // Taken before the delay: the timer is cleared and fires nothing.
  q.add(outcome("g"));
  q.take();
  await sleep(60);
  assert.equal(due, 2);
  q.stop();
});

void test("outcomes of a failed transaction go back first and are retried once by onRetry; stop cancels the timers", async () => {
  let retries = 0;
  const q = new OutcomeQueue({ delayMs: 10_000, batch: 100, group: 10, onDue: () => assert.fail("not due"), onRetry: () => retries++ });
  q.add(outcome("later"));
  q.requeue([outcome("x"), outcome("y")]);
  q.requeue([outcome("z")]);
  assert.deepEqual(
    q.take().map((o) => o.id),
    ["z", "x", "y", "later"],
  );
  const until = Date.now() + 2000;
  while (retries === 0 && Date.now() < until) await sleep(20);
  assert.equal(retries, 1, "one retry for both failures");
  q.requeue([outcome("w")]);
  q.stop();
  await sleep(300);
  assert.equal(retries, 1, "stopped: no retry");
  assert.equal(q.length, 1);
  q.requeue([]);
  assert.equal(q.length, 1, "nothing to requeue: no change");
});

void test("recent outcomes ride with any commit of messages; one that is not recent makes them wait for `group`", () => {
  const q = new OutcomeQueue({ delayMs: 10_000, batch: 100, group: 3, onDue: () => assert.fail("not due"), onRetry: () => undefined });
  assert.equal(q.ridesWith(1), false, "nothing waits");
  q.add(outcome("a"), true);
  q.add(outcome("b"), true);
  assert.equal(q.ridesWith(0), false, "no messages: nothing to ride with");
  assert.equal(q.ridesWith(1), true, "every one recent");
  q.add(outcome("c"));
  assert.equal(q.ridesWith(1), true, "`group` wait");
  q.take();
  q.add(outcome("d"));
  q.add(outcome("e"), true);
  assert.equal(q.ridesWith(5), false, "one not recent, fewer than `group`");
  q.take();
  q.add(outcome("f"), true);
  assert.equal(q.ridesWith(1), true, "take forgets the older ones");
  q.requeue(q.take());
  assert.equal(q.ridesWith(1), false, "a requeued outcome is no longer known to be recent");
  q.stop();
});
