import { test } from "node:test";
import assert from "node:assert/strict";
import { overMemoryBudget, residentSet } from "./memory.ts";

test("residentSet: one kernel reading is reused for ttlMs, then read again", () => {
  let reads = 0;
  const read = (): number => ++reads * 1000;
  const t0 = 1e9; // after any reading made elsewhere in this process
  assert.equal(residentSet(50, t0, read), 1000);
  assert.equal(residentSet(50, t0 + 49, read), 1000);
  assert.equal(reads, 1);
  assert.equal(residentSet(50, t0 + 50, read), 2000);
  assert.equal(reads, 2);
  // A clock that went back (another caller's `now`) reads again rather than trusting an old value.
  assert.equal(residentSet(50, t0, read), 3000);
});

test("overMemoryBudget: at or above the budget", () => {
  assert.equal(overMemoryBudget(100, () => 99), false);
  assert.equal(overMemoryBudget(100, () => 100), true);
  // The real reading: this process uses more than 1 MiB and less than 1 TiB.
  residentSet(0);
  assert.equal(overMemoryBudget(1024 * 1024), true);
  assert.equal(overMemoryBudget(2 ** 40), false);
});
