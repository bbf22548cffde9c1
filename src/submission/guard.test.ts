/**
 * Unit tests of the brute-force guard (AuthGuard) on a real SQLite database
 * with an injected clock: reserve-then-verify (admit counts an attempt
 * before its secret is checked, success gives it back), client blocks,
 * account locks that known client networks pass and that refused attempts
 * cannot extend, and reply delays. Two guards on one database file stand for
 * two worker threads. The server-level behaviour, with real clients, is in
 * test/auth-guard.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { AuthGuard, MAX_KNOWN_NETWORKS, type Attempt, type Refusal } from "./guard.ts";

const AUTH = {
  mechanisms: ["PLAIN"],
  onMx: false,
  failureDelay: 100,
  maxFailureDelay: 1000,
  ipMaxFailures: 5,
  ipWindow: 60,
  ipBlock: 120,
  accountMaxFailures: 3,
  accountWindow: 60,
  accountLock: 300,
  knownNetworkWindow: 86400,
};
const ACCOUNTS = { maxMessagesPerHour: 3, maxRecipientsPerHour: 10 };

function guard(auth: Partial<typeof AUTH> = {}, db = new DatabaseSync(":memory:")): { g: AuthGuard; clock: { t: number } } {
  const clock = { t: 1_000_000_000_000 };
  const g = new AuthGuard(db, { auth: { ...AUTH, ...auth }, accounts: ACCOUNTS }, () => clock.t);
  return { g, clock };
}

function admitted(v: Attempt | Refusal): Attempt {
  assert.equal(typeof v, "object", `refused: ${JSON.stringify(v)}`);
  return v as Attempt;
}

test("admit counts an attempt before it is checked: at most ip_max_failures are admitted, whatever their outcome is not yet known", () => {
  const { g } = guard({ accountMaxFailures: 1000 });
  // 60 attempts in flight at once (none settled): 5 admitted, the 5th starts the block, the rest refused.
  const verdicts = Array.from({ length: 60 }, (_, i) => g.admit("ip:192.0.2.1", `user${i}@x.test`));
  assert.equal(verdicts.filter((v) => typeof v === "object").length, 5);
  assert.deepEqual(verdicts.slice(0, 5).map((v) => admitted(v).started), [undefined, undefined, undefined, undefined, "client"]);
  assert.ok(verdicts.slice(5).every((v) => v === "client"));
  assert.equal(g.blocked("ip:192.0.2.1"), "client");
  assert.equal(g.blocked("ip:192.0.2.2"), undefined);
});

test("two guards on one database file (two worker threads) share the reservations", async () => {
  const dir = await mkdtemp(join(tmpdir(), "wardmail-guard-"));
  try {
    const file = join(dir, "accounts.sqlite");
    const a = guard({}, new DatabaseSync(file));
    const b = guard({}, new DatabaseSync(file));
    const verdicts = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a.g : b.g).admit("ip:192.0.2.1", undefined));
    assert.equal(verdicts.filter((v) => typeof v === "object").length, 5);
    assert.equal(b.g.blocked("ip:192.0.2.1"), "client");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a success gives its reservation back (and ends a block it alone completed); failures are never given back", () => {
  const { g } = guard({ accountMaxFailures: 1000 });
  const first = Array.from({ length: 4 }, () => admitted(g.admit("ip:192.0.2.1", "bob@x.test")));
  assert.equal(first.at(-1)?.clientCount, 4);
  const fifth = admitted(g.admit("ip:192.0.2.1", "alice@x.test"));
  assert.equal(fifth.started, "client");
  assert.equal(g.admit("ip:192.0.2.1", "bob@x.test"), "client");
  // The 5th was alice's right password: it was no failure, so the client is not blocked after all.
  g.success(fifth, "alice@x.test");
  assert.equal(g.blocked("ip:192.0.2.1"), undefined);
  assert.equal(admitted(g.admit("ip:192.0.2.1", "bob@x.test")).started, "client");
  assert.equal(g.admit("ip:192.0.2.1", "bob@x.test"), "client");
});

test("a client block lasts ip_block seconds, then the count starts again from zero", () => {
  const { g, clock } = guard({ accountMaxFailures: 1000 });
  for (let i = 0; i < 5; i++) admitted(g.admit("ip:192.0.2.1", undefined));
  clock.t += 119_000;
  assert.equal(g.admit("ip:192.0.2.1", undefined), "client");
  clock.t += 2_000;
  assert.equal(g.blocked("ip:192.0.2.1"), undefined);
  assert.equal(admitted(g.admit("ip:192.0.2.1", undefined)).clientCount, 1);
});

test("attempts outside the window do not add up", () => {
  const { g, clock } = guard();
  for (let i = 0; i < 4; i++) admitted(g.admit("ip:192.0.2.1", undefined));
  clock.t += 61_000;
  for (let i = 0; i < 4; i++) assert.equal(admitted(g.admit("ip:192.0.2.1", undefined)).started, undefined);
  assert.equal(g.blocked("ip:192.0.2.1"), undefined);
});

test("failure delays double per attempt of the client or of the name, capped", () => {
  const { g } = guard({ ipMaxFailures: 100, accountMaxFailures: 100 });
  const delays = [1, 2, 3, 4, 5].map((i) => g.delay(admitted(g.admit("ip:192.0.2.1", `u${i}@x.test`))));
  assert.deepEqual(delays, [100, 200, 400, 800, 1000]);
  // Another client naming another user starts again at the base delay...
  assert.equal(g.delay(admitted(g.admit("ip:192.0.2.2", "v@x.test"))), 100);
  // ...but guesses at one name from many clients are slowed down too.
  const spread = [3, 4, 5, 6].map((i) => g.delay(admitted(g.admit(`ip:192.0.2.${i}`, "target@x.test"))));
  assert.deepEqual(spread, [100, 200, 400, 800]);
  // A failure that checked no secret counts for the client only.
  assert.deepEqual(g.failure("ip:192.0.2.9"), { delayMs: 100, blocked: undefined });
  assert.equal(admitted(g.admit("ip:192.0.2.9", "target@x.test")).clientCount, 2);
});

test("a name is locked after account_max_failures from any clients, unknown names too; success clears the name's count only", () => {
  const { g, clock } = guard();
  admitted(g.admit("ip:192.0.2.1", "Bob@Example.test"));
  admitted(g.admit("ip:192.0.2.2", "bob@example.test"));
  assert.equal(admitted(g.admit("ip:192.0.2.3", "bob@example.test")).started, "user");
  assert.equal(g.admit("ip:192.0.2.4", "BOB@example.test"), "user");
  assert.equal(admitted(g.admit("ip:192.0.2.4", "alice@example.test")).started, undefined);
  clock.t += 301_000;
  assert.equal(admitted(g.admit("ip:192.0.2.4", "bob@example.test")).nameCount, 1);
  // Success forgets the name's failures, never the client's.
  admitted(g.admit("ip:192.0.2.7", "carol@example.test"));
  admitted(g.admit("ip:192.0.2.7", "carol@example.test"));
  g.success(admitted(g.admit("ip:192.0.2.7", "carol@example.test")), "carol@example.test");
  // The success gave its own reservation back: the client counts 2, the name starts again.
  assert.deepEqual([1, 2, 3].map(() => admitted(g.admit("ip:192.0.2.7", "carol@example.test"))).map((a) => [a.clientCount, a.nameCount]), [[3, 1], [4, 2], [5, 3]]);
  assert.equal(g.admit("ip:192.0.2.7", "dave@example.test"), "client");
});

test("a locked account: its known client networks are still admitted (own client limit), strangers are refused", () => {
  const { g, clock } = guard();
  g.success(admitted(g.admit("ip:198.51.100.7", "bob@example.test")), "bob@example.test");
  g.success(admitted(g.admit("net:2001:db8:1:2::/64", "bob@example.test")), "bob@example.test");
  clock.t += 3_600_000;
  for (const c of ["ip:192.0.2.1", "ip:192.0.2.2", "ip:192.0.2.3"]) admitted(g.admit(c, "bob@example.test"));
  assert.equal(g.admit("ip:192.0.2.99", "bob@example.test"), "user");
  const home = admitted(g.admit("ip:198.51.100.7", "bob@example.test"));
  assert.equal(home.nameCounted, false);
  g.success(home, "bob@example.test");
  // Logging in did not lift the lock for anyone else.
  assert.equal(g.admit("ip:192.0.2.99", "bob@example.test"), "user");
  assert.equal(typeof g.admit("net:2001:db8:1:2::/64", "bob@example.test"), "object");
  // The known network still has its own limit.
  // (Its two successes gave their reservations back.)
  for (let i = 0; i < 4; i++) admitted(g.admit("ip:198.51.100.7", "bob@example.test"));
  assert.equal(admitted(g.admit("ip:198.51.100.7", "bob@example.test")).started, "client");
  assert.equal(g.admit("ip:198.51.100.7", "bob@example.test"), "client");
  // A network is known for known_network_window after its last success only.
  clock.t += 86_400_000;
  for (const c of ["ip:192.0.2.4", "ip:192.0.2.5", "ip:192.0.2.6"]) admitted(g.admit(c, "bob@example.test"));
  assert.equal(g.admit("net:2001:db8:1:2::/64", "bob@example.test"), "user");
});

test("known_network_window = 0: the lock holds for every client", () => {
  const { g } = guard({ knownNetworkWindow: 0 });
  g.success(admitted(g.admit("ip:198.51.100.7", "bob@example.test")), "bob@example.test");
  for (const c of ["ip:192.0.2.1", "ip:192.0.2.2", "ip:192.0.2.3"]) admitted(g.admit(c, "bob@example.test"));
  assert.equal(g.admit("ip:198.51.100.7", "bob@example.test"), "user");
});

test("attempts refused during a lock are not counted: the lock ends on time however many there are", () => {
  const { g, clock } = guard({ ipMaxFailures: 1000 });
  for (let i = 1; i <= 3; i++) admitted(g.admit(`ip:192.0.2.${i}`, "bob@example.test"));
  for (let s = 0; s < 299; s++) {
    clock.t += 1_000;
    for (let i = 10; i < 20; i++) assert.equal(g.admit(`ip:192.0.2.${i}`, "bob@example.test"), "user");
  }
  clock.t += 2_000;
  const after = admitted(g.admit("ip:192.0.2.200", "bob@example.test"));
  assert.equal(after.nameCount, 1);
  assert.equal(after.started, undefined);
});

test(`at most ${MAX_KNOWN_NETWORKS} known networks are kept per account, the most recent`, () => {
  const { g, clock } = guard({ ipMaxFailures: 1000, accountMaxFailures: 3 });
  for (let i = 0; i <= MAX_KNOWN_NETWORKS; i++) {
    clock.t += 1000;
    g.success(admitted(g.admit(`ip:10.0.${i >> 8}.${i & 255}`, "bob@example.test")), "bob@example.test");
  }
  for (let i = 1; i <= 3; i++) admitted(g.admit(`ip:192.0.2.${i}`, "bob@example.test"));
  assert.equal(g.admit("ip:10.0.0.0", "bob@example.test"), "user");
  assert.equal(typeof g.admit("ip:10.0.0.1", "bob@example.test"), "object");
  assert.equal(typeof g.admit(`ip:10.0.0.${MAX_KNOWN_NETWORKS}`, "bob@example.test"), "object");
});
