// The pool of open connections a full listener evicts from: its choice is
// the one a scan of every connection makes (the rule in listeners.ts,
// evictIdle), on random pools with waiting, trusted and idle sessions, after
// adds, touches and deletes; and its counts per client follow opens and closes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConnectionPool, type EvictionRule, type PoolMember } from "./pool.ts";

const RULE: EvictionRule = { idleMs: 1000, fairIdleMs: 250, noVictimMs: 50 };

/** A session: idle since progressAt unless waiting. */
class Session implements PoolMember {
  readonly name: string;
  readonly key: string;
  progressAt: number;
  waiting: boolean;
  readonly trusted: boolean;
  constructor(name: string, key: string, progressAt: number, waiting: boolean, trusted: boolean) {
    this.name = name;
    this.key = key;
    this.progressAt = progressAt;
    this.waiting = waiting;
    this.trusted = trusted;
  }
  idleFor(now: number): number {
    return this.waiting ? -1 : now - this.progressAt;
  }
}

/** The rule by a scan of every session (as evictIdle did before the pool kept its order). */
function scan(all: Session[], key: string, trusted: boolean, now: number): { victim: Session | undefined; fair: boolean } {
  const counts = new Map<string, number>();
  for (const s of all) counts.set(s.key, (counts.get(s.key) ?? 0) + 1);
  const mine = counts.get(key) ?? 0;
  const floor = mine + 2;
  const most = Math.max(0, ...counts.values());
  const wantFair = most >= floor;
  const wantOldest = mine === 0 || trusted;
  let fair: Session | undefined;
  let fairCount = 0;
  let fairIdle = 0;
  let oldest: Session | undefined;
  let longest = RULE.idleMs;
  let maxIdle = -1;
  for (const s of all) {
    const idle = s.idleFor(now);
    if (idle < 0) continue;
    if (idle > maxIdle) maxIdle = idle;
    if (idle >= longest) {
      longest = idle;
      oldest = s;
    }
    if (!wantFair || idle < RULE.fairIdleMs || s.trusted) continue;
    const n = counts.get(s.key) ?? 0;
    if (n >= floor && (n > fairCount || (n === fairCount && idle > fairIdle))) {
      fair = s;
      fairCount = n;
      fairIdle = idle;
    }
  }
  if (maxIdle < RULE.fairIdleMs || (!wantFair && !wantOldest)) return { victim: undefined, fair: false };
  return { victim: fair ?? (wantOldest ? oldest : undefined), fair: fair !== undefined };
}

/** A small deterministic generator (the same cases every run). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

test("the pool picks the session a scan of every connection picks", () => {
  const r = rng(11);
  let checked = 0;
  let victims = 0;
  let fairVictims = 0;
  for (let round = 0; round < 300; round++) {
    const pool = new ConnectionPool<Session>(RULE);
    const live: Session[] = [];
    let now = 1_000_000;
    const keys = 1 + Math.floor(r() * 12);
    const steps = 20 + Math.floor(r() * 200);
    for (let i = 0; i < steps; i++) {
      now += Math.floor(r() * 40);
      const op = r();
      if (op < 0.5 || live.length === 0) {
        const k = `k${Math.floor(r() * keys)}`;
        const s = new Session(`s${round}.${i}`, k, now - Math.floor(r() * 3000), r() < 0.15, k === "k0" && r() < 0.9);
        // The pool's order is the order of progress: a session joins as it last made progress.
        live.push(s);
        pool.add(s, k);
        pool.touch(s);
        s.progressAt = now;
      } else if (op < 0.8) {
        const s = live[Math.floor(r() * live.length)] as Session;
        s.progressAt = now;
        s.waiting = r() < 0.1;
        pool.touch(s);
      } else {
        const at = Math.floor(r() * live.length);
        const s = live[at] as Session;
        live.splice(at, 1);
        assert.equal(pool.delete(s), true);
        assert.equal(pool.delete(s), false);
      }
      assert.equal(pool.size, live.length);
      // Ask as a newcomer of some key (trusted or not), at a later time.
      const ask = now + Math.floor(r() * 1500);
      const k = `k${Math.floor(r() * (keys + 1))}`;
      const trusted = r() < 0.2;
      // Against a fresh copy (the answer "none idle enough" is cached for a while in the pool under test).
      const fresh = new ConnectionPool<Session>(RULE);
      for (const s of pool) fresh.add(s, s.key);
      const expected = scan(live, k, trusted, ask);
      const got = fresh.victim(k, trusted, ask);
      if (expected.victim === undefined) assert.equal(got, undefined, `round ${round} step ${i}`);
      else {
        // Ties (the same idle time) may be broken either way: the idle time (and for fairness the client's count) must match.
        assert.notEqual(got, undefined, `round ${round} step ${i}: expected ${expected.victim.name}`);
        const g = got as Session;
        assert.equal(g.idleFor(ask), expected.victim.idleFor(ask), `round ${round} step ${i}`);
        if (expected.fair) {
          assert.equal(fresh.count(g.key), fresh.count(expected.victim.key), `round ${round} step ${i}`);
          assert.equal(g.trusted, false);
          fairVictims++;
        }
        victims++;
      }
      checked++;
      for (const key of new Set(live.map((s) => s.key))) assert.equal(pool.count(key), live.filter((s) => s.key === key).length);
    }
  }
  assert.ok(checked > 10_000, `${checked} checks`);
  assert.ok(victims > 1000 && fairVictims > 300, `${victims} victims, ${fairVictims} for fairness`);
});

test("a look that found no session idle enough is trusted for a short while only", () => {
  const pool = new ConnectionPool<Session>(RULE);
  const a = new Session("a", "k1", 0, false, false);
  pool.add(a, "k1");
  assert.equal(pool.victim("k2", false, 100), undefined); // idle 100 ms: none before 150 ms more, trusted for 50
  a.progressAt = -5000; // (a session leaving a wait may jump)
  assert.equal(pool.victim("k2", false, 140), undefined);
  assert.equal(pool.victim("k2", false, 151), a);
});

test("the order follows progress: the least recent that is not waiting is the oldest", () => {
  const pool = new ConnectionPool<Session>(RULE);
  const s = [0, 1, 2].map((i) => new Session(`s${i}`, `k${i}`, 0, false, false));
  for (const x of s) pool.add(x, x.key);
  (s[0] as Session).progressAt = 500;
  pool.touch(s[0] as Session);
  (s[1] as Session).waiting = true;
  assert.equal(pool.victim("new", false, 2000), s[2]);
  assert.deepEqual([...pool].map((x) => x.name), ["s1", "s2", "s0"]);
});
