// The content rate's budget (content-rate.ts): spent by time, refilled by
// bytes up to the cap; expiry only while content is still coming; stop()
// leaves no timer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { ContentRate } from "./content-rate.ts";

void test("content rate: a silent client's budget runs out; bytes refill it; stop() and the end of content end it", async () => {
  let expired = 0;
  let running = true;
  const rate = new ContentRate(1000, () => running, () => expired++);
  const t0 = Date.now();
  rate.start(60, t0);
  await sleep(120);
  assert.equal(expired, 1, "60 ms of budget and no bytes: expired");

  // 1000 bytes at 1000 B/s refill 1 s, but no more than the cap (250 ms).
  rate.start(40, Date.now());
  await sleep(20);
  rate.spend(Date.now(), 1000, 250);
  await sleep(100);
  assert.equal(expired, 1, "refilled: not expired after the first budget");
  await sleep(400);
  assert.equal(expired, 2, "the cap bounds the refill");

  rate.start(30, Date.now());
  rate.stop();
  await sleep(60);
  assert.equal(expired, 2, "stopped: no expiry");

  running = false;
  rate.start(20, Date.now());
  await sleep(50);
  assert.equal(expired, 2, "content over: the timer's firing is ignored");
  rate.stop();
});
