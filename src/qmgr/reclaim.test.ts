import { test } from "node:test";
import assert from "node:assert/strict";
import { ContentReclaimer, majorCollector } from "./reclaim.ts";

test("a major collection is asked for once per RECLAIM_EVERY_BYTES of released content, run concurrently", () => {
  const calls: unknown[] = [];
  const r = new ContentReclaimer(100, (o) => {
    calls.push(o);
    return Promise.resolve();
  });
  for (let i = 0; i < 9; i++) r.released(10);
  assert.equal(calls.length, 0);
  r.released(10);
  assert.deepEqual(calls, [{ type: "major", execution: "async" }]);
  for (let i = 0; i < 25; i++) r.released(10);
  assert.equal(calls.length, 3);
  assert.equal(r.collections, 3);
});

test("a collector that throws or rejects changes nothing; without one nothing is asked", async () => {
  const throwing = new ContentReclaimer(1, () => {
    throw new Error("no");
  });
  throwing.released(5);
  const rejecting = new ContentReclaimer(1, () => Promise.reject(new Error("no")));
  rejecting.released(5);
  await new Promise((r) => setImmediate(r));
  const none = new ContentReclaimer(1, null);
  none.released(5);
  assert.equal(none.collections, 0);
});

test("in this Node the real collector is there and a requested major collection frees dead contents of the old generation", async () => {
  const gc = majorCollector();
  assert.equal(typeof gc, "function");
  // Contents that outlive young collections (as in the handoff), then die.
  let keep: Buffer[] = [];
  for (let i = 0; i < 400; i++) keep.push(Buffer.allocUnsafeSlow(10_240));
  for (let i = 0; i < 4; i++) {
    let junk: object[] = [];
    for (let j = 0; j < 200_000; j++) junk.push({ j });
    junk = [];
    assert.equal(junk.length, 0);
  }
  const held = keep.reduce((n, b) => n + b.length, 0);
  keep = [];
  assert.equal(keep.length, 0);
  const before = process.memoryUsage().arrayBuffers;
  const done = gc?.({ type: "major", execution: "async" });
  assert.equal(typeof (done as { then?: unknown } | undefined)?.then, "function", "the collection runs concurrently and says when it is done");
  await done;
  await new Promise((res) => setTimeout(res, 50));
  const after = process.memoryUsage().arrayBuffers;
  assert.ok(before - after >= held / 2, `array buffers ${before} -> ${after}, ${held} were dead`);
});
