import { test } from "node:test";
import assert from "node:assert/strict";
import { concatOwned, ownedContent } from "./handoff.ts";

const ownsItsMemory = (b: Buffer): boolean => b.byteOffset === 0 && b.buffer.byteLength === b.byteLength;

test("concatOwned: the bytes of every part, in a buffer exactly as large, never a view into the shared pool", () => {
  const a = Buffer.from("Received: from x\r\n", "latin1");
  const b = Buffer.alloc(10_240, 0x61);
  const pooled = Buffer.concat([a, b]);
  // What this guards against: Node puts a buffer this small into a pool slab larger than itself.
  assert.ok(pooled.buffer.byteLength >= pooled.byteLength);
  const out = concatOwned([a, b]);
  assert.ok(ownsItsMemory(out));
  assert.deepEqual(out, pooled);
  assert.equal(concatOwned([]).byteLength, 0);
  // A total shorter than the parts truncates, a longer one is zero-filled (as Buffer.concat).
  assert.deepEqual(concatOwned([a, b], 5), pooled.subarray(0, 5));
  assert.deepEqual(concatOwned([a], a.length + 3), Buffer.concat([a], a.length + 3));
});

test("ownedContent: keeps a buffer that owns its memory, copies a view", () => {
  const own = Buffer.allocUnsafeSlow(100).fill(1);
  assert.equal(ownedContent(own), own);
  const big = Buffer.allocUnsafeSlow(65_536).fill(2);
  const view = big.subarray(100, 10_340);
  const copy = ownedContent(view);
  assert.notEqual(copy, view);
  assert.ok(ownsItsMemory(copy));
  assert.deepEqual(copy, view);
  const pooled = Buffer.from("short message content");
  assert.ok(ownsItsMemory(ownedContent(pooled)));
});
