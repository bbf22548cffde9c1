/**
 * The connection cache's bounds (pool.ts): idle time, per destination and
 * in all, messages per connection and age; a connection that is not idle
 * any more is never handed out.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { ConnectionCache, MAX_CACHED, type Reusable } from "./pool.ts";

class Conn implements Reusable {
  idle = true;
  quits = 0;
  sent: number;
  openedAt: number;
  constructor(sent = 1, openedAt = Date.now()) {
    this.sent = sent;
    this.openedAt = openedAt;
  }
  quit(): void {
    this.quits++;
    this.idle = false;
  }
}

const LIMITS = { idleMs: 5000, perDestination: 2, maxMessages: 10, maxAgeMs: 60_000 };

test("take() gives back what put() kept, for the same key only", () => {
  const c = new ConnectionCache<Conn>(LIMITS);
  const a = new Conn();
  c.put("k1", a);
  assert.equal(c.size, 1);
  assert.equal(c.take("k2", 1), undefined);
  assert.equal(c.take("k1", 1), a);
  assert.equal(c.size, 0);
  assert.equal(c.take("k1", 1), undefined);
  c.closeAll();
});

test("per destination and total bounds: a connection that does not fit is QUIT", () => {
  const c = new ConnectionCache<Conn>({ ...LIMITS, perDestination: 2 });
  const [a, b, x] = [new Conn(), new Conn(), new Conn()];
  c.put("k", a);
  c.put("k", b);
  c.put("k", x);
  assert.equal(c.size, 2);
  assert.equal(x.quits, 1);
  c.closeAll();
  assert.equal(c.size, 0);
  assert.equal(a.quits + b.quits, 2);

  const all = new ConnectionCache<Conn>({ ...LIMITS, perDestination: 100 });
  const conns = Array.from({ length: MAX_CACHED + 3 }, () => new Conn());
  conns.forEach((k, i) => all.put(`d${i % 50}`, k));
  assert.equal(all.size, MAX_CACHED);
  assert.equal(conns.filter((k) => k.quits === 1).length, 3);
  all.closeAll();
});

test("messages per connection and age: a spent connection is neither kept nor handed out", () => {
  const c = new ConnectionCache<Conn>(LIMITS);
  const spent = new Conn(10);
  c.put("k", spent);
  assert.equal(spent.quits, 1);
  const old = new Conn(1, Date.now() - 61_000);
  c.put("k", old);
  assert.equal(old.quits, 1);
  const nine = new Conn(9);
  c.put("k", nine);
  assert.equal(c.take("k", 2), undefined, "9 + 2 messages would pass 10");
  assert.equal(nine.quits, 1);
  const ok = new Conn(9);
  c.put("k", ok);
  assert.equal(c.take("k", 1), ok);
});

test("a connection that went away while cached is not handed out; forget() drops it", () => {
  const c = new ConnectionCache<Conn>(LIMITS);
  const a = new Conn();
  const b = new Conn();
  c.put("k", a);
  c.put("k", b);
  b.idle = false; // the peer closed it
  c.forget(b);
  assert.equal(c.size, 1);
  a.idle = false; // closed without forget(): take() still refuses it
  assert.equal(c.take("k", 1), undefined);
  assert.equal(c.size, 0);
});

test("idle time: QUIT after idleMs; 0 keeps nothing", async () => {
  const c = new ConnectionCache<Conn>({ ...LIMITS, idleMs: 50 });
  const a = new Conn();
  c.put("k", a);
  const deadline = Date.now() + 2000;
  while (a.quits === 0 && Date.now() < deadline) await sleep(20);
  assert.equal(a.quits, 1);
  assert.equal(c.size, 0);
  const off = new ConnectionCache<Conn>({ ...LIMITS, idleMs: 0 });
  assert.equal(off.enabled, false);
  const b = new Conn();
  off.put("k", b);
  assert.equal(b.quits, 1);
  assert.equal(off.size, 0);
});
