// The runner's handling of what a check may add to its verdicts: a reply for
// a tempfail (only a 4xx one), a reply for a reject (only a 5xx one), and
// actions for this message instead of the operator's table.
import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import { reply } from "../protocol/index.ts";
import { CheckRunner, TransactionState, type Check, type CheckOutcome } from "./index.ts";

const log = pino({ level: "silent" });
const input = { clientIp: "127.0.0.1", helo: "h", mailFrom: "", recipients: ["u@example.org"], content: Buffer.from("x"), state: new TransactionState() };
const checkOf = (out: CheckOutcome): Check => ({ name: "t", data: () => Promise.resolve(out) });

void test("a check's 4xx reply is used for a tempfail, its 5xx reply for a reject, never the other way round", async () => {
  const down = reply(451, "4.7.1", "Virus scanner unavailable; try again later");
  const found = reply(554, "5.7.1", "Message refused: virus found (X)");
  const runner = new CheckRunner([checkOf({ verdicts: ["virus.error"], replies: { "virus.error": down } })], { "virus.error": "tempfail" }, 1000);
  assert.deepEqual((await runner.run("data", input, log)).reply, down);
  // The operator made the 451 verdict a reject: the generic 550, not a 451 with a reject.
  const rejecting = new CheckRunner([checkOf({ verdicts: ["virus.error"], replies: { "virus.error": down } })], { "virus.error": "reject" }, 1000);
  assert.equal((await rejecting.run("data", input, log)).reply?.code, 550);
  const virus = new CheckRunner([checkOf({ verdicts: ["virus.found"], replies: { "virus.found": found } })], { "virus.found": "reject" }, 1000);
  assert.deepEqual((await virus.run("data", input, log)).reply, found);
  // A 5xx reply for a verdict the operator made a tempfail: the generic 451.
  const deferred = new CheckRunner([checkOf({ verdicts: ["virus.found"], replies: { "virus.found": found } })], { "virus.found": "tempfail" }, 1000);
  assert.equal((await deferred.run("data", input, log)).reply?.code, 451);
});

void test("actions a check gives for its verdicts win over the table, for this message only", async () => {
  const table = { "attachment.executable": "reject" } as const;
  const quarantined = new CheckRunner([checkOf({ verdicts: ["attachment.executable"], actions: { "attachment.executable": "quarantine" } })], table, 1000);
  const d = await quarantined.run("data", input, log);
  assert.equal(d.action, "quarantine");
  assert.equal(d.reply, undefined);
  const plain = new CheckRunner([checkOf({ verdicts: ["attachment.executable"] })], table, 1000);
  assert.equal((await plain.run("data", input, log)).action, "reject");
});

void test("every verdict is counted once per message in wardmail_check_verdicts_total, bound counters or not", async () => {
  const { metrics } = await import("../metrics/index.ts");
  const count = (check: string, verdict: string): number =>
    metrics.snapshot().find((s) => s.name === "wardmail_check_verdicts_total" && s.labels.check === check && s.labels.verdict === verdict)?.value ?? 0;
  const long = `count.${"x".repeat(300)}`;
  const runner = new CheckRunner([{ name: "count", data: () => Promise.resolve({ verdicts: ["count.a", "count.b", long] }) }], {}, 1000);
  const before = [count("count", "count.a"), count("count", "count.b"), count("count", long.slice(0, 100))];
  for (let i = 0; i < 3; i++) await runner.run("data", input, log);
  // A label longer than the registry keeps is cut to 100 characters, as metrics.inc cuts it.
  assert.deepEqual([count("count", "count.a"), count("count", "count.b"), count("count", long.slice(0, 100))], before.map((n) => n + 3));
  const failing = new CheckRunner([{ name: "countfail", data: () => Promise.reject(new Error("down")) }], {}, 1000);
  await failing.run("data", input, log);
  await failing.run("data", input, log);
  assert.equal(count("countfail", "countfail.error"), 2);
});

void test("hooks that answer at once (no promise) and hooks that throw at once: the same decisions as async ones, a throw fails closed", async () => {
  const sync: Check = { name: "s", data: () => ({ verdicts: ["s.found"], headers: ["X-S: 1"] }) };
  const later: Check = { name: "l", data: () => Promise.resolve({ verdicts: ["l.found"], headers: ["X-L: 1"] }) };
  const table = { "s.found": "tag", "l.found": "quarantine" } as const;
  const alone = await new CheckRunner([sync], table, 1000).run("data", input, log);
  assert.equal(alone.action, "tag");
  assert.deepEqual(alone.headers, ["X-S: 1"]);
  const mixed = await new CheckRunner([sync, later], table, 1000).run("data", input, log);
  assert.equal(mixed.action, "quarantine");
  assert.deepEqual(mixed.verdicts, ["s.found", "l.found"]);
  assert.deepEqual(mixed.headers, ["X-S: 1", "X-L: 1"]);
  const throwing: Check = { name: "t", data: () => { throw new Error("broken"); } };
  const failed = await new CheckRunner([sync, throwing], table, 1000).run("data", input, log);
  assert.equal(failed.failed, true);
  assert.equal(failed.reply?.code, 451);
  // A slow hook beside a sync one still meets the deadline (fail closed).
  const slow: Check = { name: "w", data: (i) => new Promise((resolve) => { const t = setTimeout(() => resolve({ verdicts: [] }), 5000); i.signal.addEventListener("abort", () => clearTimeout(t)); }) };
  const late = await new CheckRunner([sync, slow], table, 50).run("data", input, log);
  assert.equal(late.failed, true);
  assert.deepEqual(late.triggered, ["w.error"]);
});

void test("a hook answering with a thenable that is not a native promise is awaited under the deadline, not read as an outcome", async () => {
  const table = { "p.found": "tag" } as const;
  // A PromiseLike (as a promise of another realm would be): not `instanceof Promise`.
  const later = (out: CheckOutcome, ms: number): PromiseLike<CheckOutcome> => ({
    then: (ok, ko) => new Promise<CheckOutcome>((resolve) => setTimeout(() => resolve(out), ms).unref()).then(ok, ko),
  });
  const thenable: Check = { name: "p", data: () => later({ verdicts: ["p.found"], headers: ["X-P: 1"] }, 5) as unknown as Promise<CheckOutcome> };
  const d = await new CheckRunner([thenable], table, 1000).run("data", input, log);
  assert.equal(d.failed, undefined);
  assert.deepEqual(d.verdicts, ["p.found"]);
  assert.deepEqual(d.headers, ["X-P: 1"]);
  assert.equal(d.action, "tag");
  // One that answers after the deadline fails closed, as a promise would.
  const slow: Check = { name: "q", data: () => later({ verdicts: [] }, 5000) as unknown as Promise<CheckOutcome> };
  const t0 = performance.now();
  const late = await new CheckRunner([slow], table, 50).run("data", input, log);
  assert.ok(performance.now() - t0 < 2000);
  assert.equal(late.failed, true);
  assert.deepEqual(late.triggered, ["q.error"]);
});
