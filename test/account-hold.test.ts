/**
 * A compromised-account burst over submission: alice has a usual level
 * (hourly counts written into the accounts database as weeks of past
 * sending would leave them: one message an hour), then sends a burst with
 * swaks. The message that crosses hold_factor x usual (and the floor) puts
 * the account on hold: it and the rest of the burst are accepted (250) but
 * held in the queue (`wardmail queue list` shows them held), the server logs
 * "account held" with the reason, `wardmail user list` and `user show` say
 * why; `wardmail user release` ends the hold and the held messages are
 * delivered. bob, with no history but under the floor, is never held;
 * carol, whose recipients are mostly refused (unknown local users, a
 * harvesting pattern), is held for that.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { AccountStore } from "../src/accounts/index.ts";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";
import { queueList, swaks, waitForLog } from "./peers/submission.ts";

const skip = peerSkip(binaryMissing("swaks", ["--version"], "swaks"));
const PW = "burst-password-1";
const HOUR = 3_600_000;
let w: Wardmail | undefined;
const need = (): Wardmail => w ?? assert.fail("set up in before()");
const QUEUED = /^<[-~] {2}250 2\.0\.0 Ok: queued as (\S+)/m;

function submit(user: string, subject: string) {
  return swaks(["--server", `127.0.0.1:${need().submissionPort}`, "--tls", "--auth", "PLAIN", "--auth-user", user, "--auth-password", PW,
    "--from", user, "--to", "user@example.test", "--header", `Subject: ${subject}`]);
}

describe("compromised-account hold", { skip }, () => {
  before(async () => {
    w = await startWardmail({ workers: 1, extra: "[accounts]\nhold_factor = 5\nhold_min_messages = 5\nhold_history = 7\nhold_refused_min = 3\n" });
    const st = AccountStore.open(w.dataDir, { create: true, localDomains: ["example.test", "localhost"] });
    try {
      await st.addAccount("alice@example.test", PW);
      await st.addAccount("bob@example.test", PW);
      await st.addAccount("carol@example.test", PW);
    } finally {
      st.close();
    }
    // A week of one message an hour for alice (the server made account_usage at start).
    const db = new DatabaseSync(join(w.dataDir, "accounts.sqlite"));
    try {
      const hour = Math.floor(Date.now() / HOUR);
      const put = db.prepare("INSERT INTO account_usage (account, hour, messages, recipients) VALUES (?, ?, 1, 1)");
      for (let h = 2; h <= 7 * 24 + 1; h++) put.run("alice@example.test", hour - h);
    } finally {
      db.close();
    }
  });
  after(async () => {
    await w?.stop().then(() => w?.cleanup());
  });

  test("a burst is accepted but held from the message over 5 x usual; logged; user list/show say why; release delivers", async () => {
    const s = need();
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await submit("alice@example.test", `burst-${i}`);
      const m = QUEUED.exec(r.out);
      assert.ok(m?.[1], r.out);
      ids.push(m[1]);
    }
    // 1 an hour usual, factor 5, floor 5: the 6th message (6 > 5) starts the hold.
    const line = await waitForLog(() => s.output(), "account held: its messages are queued on hold until `wardmail user release`", (l) => l.user === "alice@example.test", 10_000);
    assert.ok(line, s.output().slice(-3000));
    assert.equal(line.queueId, ids[5]);
    assert.match(String(line.reason), /^6 messages in the last hour, over 5 x its usual 1 per hour$/);
    const queue = await queueList(s);
    const held = queue.filter((q) => q.state === "held").map((q) => q.id).sort();
    assert.deepEqual(held, ids.slice(5).sort(), JSON.stringify(queue));
    assert.equal((await s.waitForMail("user@example.test", 5)).length, 5);

    const list = await s.cli(["user", "list", "--config", s.configPath]);
    assert.match(list.stdout, /^alice@example\.test {2}\(held since \d{4}-\d\d-\d\dT[\d:.]+Z because 6 messages in the last hour, over 5 x its usual 1 per hour\)$/m, list.stdout + list.stderr);
    assert.match(list.stdout, /^bob@example\.test$/m);
    const show = await s.cli(["user", "show", "alice@example.test", "--config", s.configPath]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /^sending: held since .* because 6 messages in the last hour/m);
    const json = JSON.parse((await s.cli(["user", "show", "alice@example.test", "--json", "--config", s.configPath])).stdout) as { held: { reason: string } | null };
    assert.match(json.held?.reason ?? "", /^6 messages/);

    // Still held: the next message is held too.
    const more = QUEUED.exec((await submit("alice@example.test", "burst-8")).out)?.[1];
    assert.ok(more);
    assert.equal((await queueList(s)).find((q) => q.id === more)?.state, "held");

    const rel = await s.cli(["user", "release", "alice@example.test", "--config", s.configPath]);
    assert.equal(rel.code, 0, rel.stderr);
    assert.match(rel.stdout, /^released alice@example\.test \(held since .*\); 4 held messages released: /);
    assert.equal((await s.waitForMail("user@example.test", 9, 15_000)).length, 9);
    assert.match((await s.cli(["user", "show", "alice@example.test", "--config", s.configPath])).stdout, /^sending: not held$/m);
  });

  test("an account without history under the floor is not held", async () => {
    const s = need();
    for (let i = 0; i < 3; i++) assert.match((await submit("bob@example.test", `bob-${i}`)).out, QUEUED);
    assert.equal((await queueList(s)).filter((q) => q.state === "held").length, 0);
    assert.doesNotMatch((await s.cli(["user", "show", "bob@example.test", "--config", s.configPath])).stdout, /held since/);
  });

  test("an account whose recipients are mostly refused is held", async () => {
    const s = need();
    const r = await swaks(["--server", `127.0.0.1:${s.submissionPort}`, "--tls", "--auth", "PLAIN", "--auth-user", "carol@example.test", "--auth-password", PW,
      "--from", "carol@example.test", "--to", "nobody1@example.test,nobody2@example.test,nobody3@example.test,user@example.test", "--header", "Subject: harvest"]);
    assert.match(r.out, /<[*~]\* 550 5\.1\.1/, r.out);
    const id = QUEUED.exec(r.out)?.[1];
    assert.ok(id, r.out);
    assert.equal((await queueList(s)).find((q) => q.id === id)?.state, "held");
    const line = await waitForLog(() => s.output(), "account held: its messages are queued on hold until `wardmail user release`", (l) => l.user === "carol@example.test", 10_000);
    assert.match(String(line?.reason), /^3 of 3 recipients refused in the last hour \(at least 50 %\)$/);
  });
});
