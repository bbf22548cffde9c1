/**
 * The spool's delivery outcomes (spool.ts, outcome-queue.ts, outcomes.ts):
 * per-recipient results, backoff and expiry, and when the outcomes are
 * written (with a claim, with a commit of messages, after their delay).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { OUTCOME_BATCH, OUTCOME_DELAY_MS, OUTCOME_GROUP, OUTCOME_RECENT_COMMITS } from "./spool.ts";
import { sampleMessage } from "../../test/helpers/queue.ts";
import { withSpool } from "../../test/helpers/spool.ts";

test("per-recipient outcomes: final recipients stay final, deferrals back off exponentially", async (t) => {
  const { spool, log } = withSpool(t, { retryBaseMs: 60_000, retryMaxMs: 3_600_000, retryJitter: 0.1 });
  const id = await spool.enqueue(sampleMessage({ to: ["a@x.test", "b@x.test", "c@x.test"] }));
  const t0 = Date.now();
  assert.equal(spool.claimDue(t0, 10).length, 1);
  spool.recordOutcome(id, [
    { index: 0, result: "delivered" },
    { index: 1, result: "deferred", error: "disk full" },
    { index: 2, result: "failed", error: "no such mailbox" },
  ], t0);
  spool.flush();
  let e = spool.admin.get(id);
  assert.ok(e);
  assert.equal(e.state, "deferred");
  assert.equal(e.attempts, 1);
  assert.equal(e.lastError, "disk full");
  assert.ok(e.nextAttemptAt >= t0 + 54_000 && e.nextAttemptAt <= t0 + 60_000, `next ${e.nextAttemptAt - t0}`);
  assert.deepEqual(e.recipients.map((r) => [r.state, r.attempts, r.lastError]), [
    ["delivered", 1, undefined],
    ["deferred", 1, "disk full"],
    ["failed", 1, "no such mailbox"],
  ]);
  assert.ok(log.has("recipient failed"));
  assert.equal(spool.claimDue(t0 + 1000, 10).length, 0, "not due before its backoff");
  const t1 = t0 + 61_000;
  const [again] = spool.claimDue(t1, 10);
  assert.ok(again);
  assert.deepEqual(again.recipients.map((r) => r.state), ["delivered", "deferred", "failed"]);
  // A buggy second outcome for a final recipient changes nothing.
  spool.recordOutcome(id, [{ index: 0, result: "failed", error: "x" }, { index: 1, result: "deferred", error: "still full" }], t1);
  spool.flush();
  e = spool.admin.get(id);
  assert.ok(e);
  assert.equal(e.recipients[0]?.state, "delivered");
  assert.equal(e.attempts, 2);
  assert.ok(e.nextAttemptAt >= t1 + 108_000 && e.nextAttemptAt <= t1 + 120_000, `next ${e.nextAttemptAt - t1}`);
  const t2 = t1 + 121_000;
  assert.equal(spool.claimDue(t2, 10).length, 1);
  spool.recordOutcome(id, [{ index: 1, result: "delivered" }], t2);
  spool.flush();
  assert.equal(spool.admin.get(id), undefined, "done: row and content deleted");
  assert.equal(spool.stats().done, 1);
  // Backoff doubles up to the cap, never above it.
  for (let n = 1; n <= 12; n++) {
    const d = spool.backoff(n);
    const ideal = Math.min(3_600_000, 60_000 * 2 ** (n - 1));
    assert.ok(d <= ideal && d >= ideal * 0.9, `attempt ${n}: ${d}`);
  }
});

test("outcomes are written with the next claim that finds messages due, or that one of them makes due; a claimed message with no outcomes, or with recipients left open, is claimed again at once", async (t) => {
  const { spool } = withSpool(t, { outcomeDelayMs: 600_000 });
  const a = await spool.enqueue(sampleMessage());
  const b = await spool.enqueue(sampleMessage());
  const now = Date.now();
  assert.equal(spool.claimDue(now, 10).length, 2);
  spool.recordOutcome(a, [{ index: 0, result: "delivered" }], now);
  assert.deepEqual(spool.claimDue(now, 10), [], "nothing due: answered from the index, without a transaction");
  assert.equal(spool.admin.get(a)?.state, "active", "the outcomes wait");
  await new Promise((r) => setTimeout(r, 5)); // c is due after `now`
  const c = await spool.enqueue(sampleMessage());
  assert.equal(spool.admin.get(a)?.state, "active", "claimed from the database, not recent: not taken along by a commit of messages");
  spool.recordOutcome(b, [], now);
  assert.deepEqual(spool.claimDue(now, 10).map((m) => m.id), [b], "b's outcome makes it due now: written, b claimed again (c is not due at `now`)");
  assert.equal(spool.admin.get(a), undefined, "a's outcome went with it");
  const again = spool.claimDue(Date.now(), 10);
  assert.deepEqual(again.map((m) => m.id), [c]);
  // Two recipients, an outcome for one (delivered): the other is open and due at once.
  const d = await spool.enqueue(sampleMessage({ to: ["x@example.test", "y@example.test"] }));
  spool.recordOutcome(b, [{ index: 0, result: "delivered" }]);
  spool.recordOutcome(c, [{ index: 0, result: "delivered" }]);
  assert.deepEqual(spool.claimDue(Date.now(), 10).map((m) => m.id), [d]);
  spool.recordOutcome(d, [{ index: 0, result: "delivered" }]);
  const left = spool.claimDue(Date.now(), 10);
  assert.deepEqual(left.map((m) => m.id), [d], "claimed again at once for its open recipient");
  assert.deepEqual(left[0]!.recipients.map((r) => r.state), ["delivered", "queued"]);
  // Its last recipient deferred: back off, nothing due now, the outcome waits.
  spool.recordOutcome(d, [{ index: 1, result: "deferred", error: "try later" }]);
  assert.deepEqual(spool.claimDue(Date.now(), 10), []);
  assert.equal(spool.admin.get(d)?.state, "active", "a deferral waits like any outcome");
});

test("outcomes of messages handed over within OUTCOME_RECENT_COMMITS group commits go with the next commit of messages; older ones wait", async (t) => {
  const { spool } = withSpool(t, { outcomeDelayMs: 600_000 });
  spool.enableHandoff();
  const a = await spool.enqueue(sampleMessage());
  assert.deepEqual(spool.takeFresh(10).map((m) => m.id), [a]);
  spool.recordOutcome(a, [{ index: 0, result: "delivered" }]);
  assert.deepEqual(spool.claimDue(Date.now(), 10), [], "nothing due");
  assert.equal(spool.admin.get(a)?.state, "queued", "no transaction of its own, none for the claim");
  const b = await spool.enqueue(sampleMessage());
  assert.equal(spool.admin.get(a), undefined, "taken along by the commit of the next message");
  assert.equal(spool.stats().done, 1);
  // Handed over, then more than OUTCOME_RECENT_COMMITS group commits before its outcome: no longer recent.
  assert.deepEqual(spool.takeFresh(10).map((m) => m.id), [b]);
  for (let i = 0; i <= OUTCOME_RECENT_COMMITS; i++) await spool.enqueue(sampleMessage());
  spool.recordOutcome(b, [{ index: 0, result: "delivered" }]);
  await spool.enqueue(sampleMessage());
  assert.equal(spool.admin.get(b)?.state, "queued", "an older message's outcome waits for OUTCOME_GROUP, the delay or a claim");
  // A recent one beside it does not take it along either.
  const [fresh] = spool.takeFresh(1);
  assert.ok(fresh);
  spool.recordOutcome(fresh.id, [{ index: 0, result: "delivered" }]);
  await spool.enqueue(sampleMessage());
  assert.ok(spool.admin.get(b) && spool.admin.get(fresh.id));
  spool.flush();
  assert.equal(spool.admin.get(b), undefined);
  assert.equal(spool.admin.get(fresh.id), undefined);
  assert.equal(spool.stats().done, 3);
});

test("delivery outcomes wait outcomeDelayMs; a message commit takes them along once OUTCOME_GROUP wait; OUTCOME_BATCH of them are written at once", async (t) => {
  const { spool } = withSpool(t, { outcomeDelayMs: 600_000 });
  const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
  const a = await spool.enqueue(sampleMessage());
  assert.equal(spool.claimDue(Date.now(), 10).length, 1);
  spool.recordOutcome(a, [{ index: 0, result: "delivered" }]);
  for (let i = 0; i < 3; i++) await tick();
  assert.equal(spool.admin.get(a)?.state, "active", "not written in a transaction of its own");
  const b = await spool.enqueue(sampleMessage());
  assert.equal(spool.admin.get(a)?.state, "active", "not written with a message commit either");
  assert.equal(spool.admin.get(b)?.state, "queued");
  spool.flush();
  assert.equal(spool.admin.get(a), undefined, "written by an explicit flush");
  assert.equal(spool.stats().done, 1);
  assert.equal(spool.claimDue(Date.now(), 10).length, 1);
  spool.recordOutcome(b, [{ index: 0, result: "delivered" }]);
  assert.deepEqual(spool.claimDue(Date.now(), 10), [], "nothing due: a claim answers from the index...");
  assert.equal(spool.admin.get(b)?.state, "active", "...and leaves the outcomes waiting");
  const due = await spool.enqueue(sampleMessage());
  assert.deepEqual(spool.claimDue(Date.now(), 10).map((m) => m.id), [due], "a claim that finds messages due...");
  assert.equal(spool.admin.get(b), undefined, "...writes the pending outcomes in its transaction");
  assert.equal(spool.stats().done, 2);
  spool.recordOutcome(due, [{ index: 0, result: "delivered" }]);
  spool.flush();
  // OUTCOME_GROUP waiting outcomes go with the next commit of messages.
  const group = await Promise.all(Array.from({ length: OUTCOME_GROUP }, () => spool.enqueue(sampleMessage())));
  assert.equal(spool.claimDue(Date.now(), OUTCOME_GROUP).length, OUTCOME_GROUP);
  for (const id of group.slice(0, -1)) spool.recordOutcome(id, [{ index: 0, result: "delivered" }]);
  await spool.enqueue(sampleMessage());
  assert.equal(spool.stats().done, 3, "fewer than OUTCOME_GROUP stay waiting");
  spool.recordOutcome(group.at(-1)!, [{ index: 0, result: "delivered" }]);
  const c = await spool.enqueue(sampleMessage());
  assert.equal(spool.stats().done, 3 + OUTCOME_GROUP, "taken along by the commit of a message");
  for (const m of spool.claimDue(Date.now(), 10)) spool.recordOutcome(m.id, [{ index: 0, result: "delivered" }]);
  spool.flush();
  assert.equal(spool.admin.get(c), undefined);
  assert.equal(spool.stats().done, 5 + OUTCOME_GROUP);
  // A full batch of outcomes does not wait.
  const ids = await Promise.all(Array.from({ length: OUTCOME_BATCH }, () => spool.enqueue(sampleMessage())));
  const claimed = spool.claimDue(Date.now(), OUTCOME_BATCH + 10);
  assert.equal(claimed.length, OUTCOME_BATCH);
  for (const id of ids.slice(0, -1)) spool.recordOutcome(id, [{ index: 0, result: "delivered" }]);
  for (let i = 0; i < 3; i++) await tick();
  assert.equal(spool.stats().done, 5 + OUTCOME_GROUP, "fewer than OUTCOME_BATCH wait");
  spool.recordOutcome(ids.at(-1)!, [{ index: 0, result: "delivered" }]);
  for (let i = 0; i < 3; i++) await tick();
  assert.equal(spool.stats().done, 5 + OUTCOME_GROUP + OUTCOME_BATCH);
});

test("delivery outcomes are written after OUTCOME_DELAY_MS without any other commit", async (t) => {
  const { spool } = withSpool(t);
  const a = await spool.enqueue(sampleMessage());
  assert.equal(spool.claimDue(Date.now(), 10).length, 1);
  spool.recordOutcome(a, [{ index: 0, result: "delivered" }]);
  const deadline = Date.now() + 5000;
  while (spool.admin.get(a) !== undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, OUTCOME_DELAY_MS));
  assert.equal(spool.admin.get(a), undefined);
});

test("a recipient deferred past expireAfterMs fails", async (t) => {
  const { spool } = withSpool(t, { expireAfterMs: 1000 });
  const id = await spool.enqueue(sampleMessage());
  const created = spool.admin.get(id)!.createdAt;
  spool.claimDue(Date.now(), 1);
  spool.recordOutcome(id, [{ index: 0, result: "deferred", error: "try later" }], created + 2000);
  spool.flush();
  assert.equal(spool.admin.get(id), undefined);
  assert.equal(spool.stats().done, 1);
});
