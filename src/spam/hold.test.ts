// The compromised-account hold: the usual level from the hourly counts, the
// volume and refusal rules with their floors, the first reason kept, release.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DatabaseSync } from "node:sqlite";
import { AccountHold } from "./index.ts";

const HOUR = 3_600_000;
const POLICY = { holdFactor: 10, holdMinMessages: 20, holdMinRecipients: 100, holdHistory: 7, holdRefusedPercent: 50, holdRefusedMin: 10 };
/** Half past some hour: last hour counts half. */
const T0 = 1_000_000 * HOUR + HOUR / 2;

function setup(policy = POLICY) {
  const db = new DatabaseSync(":memory:");
  let t = T0;
  const hold = new AccountHold(db, policy, () => t);
  const usage = db.prepare("INSERT INTO account_usage (account, hour, messages, recipients) VALUES (?, ?, ?, ?) ON CONFLICT(account, hour) DO UPDATE SET messages = messages + excluded.messages, recipients = recipients + excluded.recipients");
  const hour = Math.floor(T0 / HOUR);
  return { db, hold, usage, hour, at: (ms: number) => (t = ms) };
}

test("usual level: the mean per hour over hold_history days, the last two hours left out", () => {
  const { hold, usage, hour } = setup();
  for (let h = 2; h <= 7 * 24; h++) usage.run("a@x.test", hour - h, 2, 3);
  usage.run("a@x.test", hour, 50, 50);
  usage.run("a@x.test", hour - 1, 50, 50);
  usage.run("a@x.test", hour - 7 * 24 - 5, 1000, 1000); // too old
  const u = hold.usual("a@x.test");
  assert.equal(Math.round(u.messages * 7 * 24), 2 * (7 * 24 - 1));
  assert.equal(Math.round(u.recipients * 7 * 24), 3 * (7 * 24 - 1));
  assert.deepEqual(hold.lastHour("a@x.test"), { messages: 75, recipients: 75, refused: 0 });
});

test("volume: held above factor x usual and the floor; not below either", () => {
  const { hold, usage, hour } = setup();
  for (let h = 2; h <= 7 * 24; h++) usage.run("busy@x.test", hour - h, 5, 5);
  // 10 x ~5 per hour = ~50: 40 messages this hour is usual enough for a busy account.
  usage.run("busy@x.test", hour, 40, 40);
  assert.equal(hold.judge("busy@x.test", 1), undefined);
  usage.run("busy@x.test", hour, 20, 20);
  assert.match(hold.judge("busy@x.test", 1) ?? "", /^61 messages in the last hour, over 10 x its usual 4\.97 per hour$/);
  // A quiet account: under the floor of 20 messages is never held.
  usage.run("quiet@x.test", hour, 18, 18);
  assert.equal(hold.judge("quiet@x.test", 1), undefined);
  usage.run("quiet@x.test", hour, 1, 1);
  assert.match(hold.judge("quiet@x.test", 1) ?? "", /^20 messages in the last hour, over 10 x its usual 0 per hour$/);
  // Recipients: few messages to many.
  usage.run("list@x.test", hour, 2, 99);
  assert.match(hold.judge("list@x.test", 5) ?? "", /^104 recipients in the last hour/);
  // factor 0: no volume rule.
  const off = setup({ ...POLICY, holdFactor: 0 });
  off.usage.run("quiet@x.test", off.hour, 500, 500);
  assert.equal(off.hold.judge("quiet@x.test", 1), undefined);
});

test("refusals: held at the share and the minimum count", () => {
  const { hold, usage, hour } = setup();
  usage.run("r@x.test", hour, 5, 10);
  hold.recordRefused("R@x.test", 9);
  assert.equal(hold.judge("r@x.test", 1), undefined, "9 refused: under the minimum of 10");
  hold.recordRefused("r@x.test");
  assert.match(hold.judge("r@x.test", 1) ?? "", /^10 of 20 recipients refused in the last hour \(at least 50 %\)$/);
  usage.run("r@x.test", hour, 1, 1);
  assert.equal(hold.judge("r@x.test", 1), undefined, "10 of 21: under half");
});

test("check holds once with the first reason; release ends it; list shows it", () => {
  const { hold, usage, hour, at } = setup();
  usage.run("a@x.test", hour, 30, 30);
  const first = hold.check("a@x.test", 1);
  assert.equal(first?.started, true);
  assert.match(first?.hold.reason ?? "", /^31 messages/);
  at(T0 + 1000);
  usage.run("a@x.test", hour, 100, 100);
  const again = hold.check("a@x.test", 1);
  assert.equal(again?.started, false);
  assert.equal(again?.hold.since, T0);
  assert.equal(again?.hold.reason, first?.hold.reason);
  assert.deepEqual(hold.list().map((h) => h.account), ["a@x.test"]);
  assert.equal(hold.release("A@x.test"), true);
  assert.equal(hold.release("a@x.test"), false);
  assert.equal(hold.held("a@x.test"), undefined);
  assert.equal(hold.check("b@x.test", 1), undefined);
});
