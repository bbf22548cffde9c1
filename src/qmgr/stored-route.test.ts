// The route stored with each recipient when the message was queued is what
// delivery uses: a config change afterwards (an alias removed, a new Maildir
// template) does not re-route a queued message; records of an older Wardmail
// (no routes, schema 2) are routed once when the server starts and then
// delivered; the queue manager and the transports never resolve aliases.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Spool } from "../queue/index.ts";
import { captureLogger, sampleMessage, tempDir } from "../../test/helpers/queue.ts";
import { MessageSink, REMOTE_NOT_IMPLEMENTED, type LocalConfig } from "../sink/index.ts";
import { NOT_ROUTED, QueueManager } from "./index.ts";

const BEFORE: LocalConfig = {
  domains: ["example.test"],
  mailboxes: ["alice@example.test", "bob@example.test"],
  aliases: { "team@example.test": ["alice@example.test", "bob@example.test"], "fwd@example.test": ["far@remote.test"] },
  discard: [],
  maildir: "mail/%d/%n/Maildir",
  lmtp: {},
};
/** The config after the operator's change: no aliases, another Maildir template. */
const AFTER: LocalConfig = { ...BEFORE, aliases: {}, maildir: "moved/%d/%n" };

async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function files(dir: string, rel: string): string[] {
  const md = join(dir, rel, "new");
  return existsSync(md) ? readdirSync(md).map((n) => join(md, n)) : [];
}

function sinkFor(spool: Spool, local: LocalConfig): MessageSink {
  return new MessageSink({ spool, shard: 0, hostname: "mx.test", authservId: "mx.test", local });
}

test("a queued message whose alias is removed from the config before delivery still goes to its stored mailboxes; new mail follows the new config", async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const log = captureLogger();
  let spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger });
  const txn = sinkFor(spool, BEFORE).begin({ mailFrom: "a@b.test", smtputf8: false }, { kind: "local", source: "dsn", ref: "t" });
  txn.add({ address: "team@example.test", dsn: {} });
  const { id } = await txn.commit(Buffer.from("From: a@b.test\r\nSubject: queued before\r\n\r\nhi\r\n"));
  spool.close();

  // Restart with the alias gone and the Maildir template changed: as the server starts (src/server/worker.ts).
  spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger });
  const sink = sinkFor(spool, AFTER);
  assert.deepEqual(spool.routeOldRecords((a) => sink.router.routeInPlace(a)), { routed: 0, damaged: 0 }, "a routed record is never routed again");
  const agent = new QueueManager({ spool, dataDir: dir, logger: log.logger, pollMs: 20, hostname: "mx.test" });
  t.after(async () => {
    await agent.stop();
    spool.close();
  });
  agent.start();
  await waitFor(() => spool.admin.get(id) === undefined, "the queued message delivered");
  for (const mb of ["alice", "bob"]) {
    const f = files(dir, `mail/example.test/${mb}/Maildir`);
    assert.equal(f.length, 1, `${mb}: stored where the route said when it was queued`);
    assert.match(readFileSync(f[0]!, "latin1"), /Subject: queued before/);
  }
  assert.equal(existsSync(join(dir, "moved")), false, "the new template is not used for a queued message");

  // New mail to the removed alias fails now; new mail to alice goes to the new template.
  const t2 = sink.begin({ mailFrom: "a@b.test", smtputf8: false }, { kind: "local", source: "dsn", ref: "t2" });
  t2.add({ address: "team@example.test", dsn: {} });
  t2.add({ address: "alice@example.test", dsn: {} });
  const second = await t2.commit(Buffer.from("From: a@b.test\r\nSubject: queued after\r\n\r\nhi\r\n"));
  await waitFor(() => spool.admin.get(second.id) === undefined || spool.admin.get(second.id)?.state === "failed", "the second message done");
  assert.equal(files(dir, "moved/example.test/alice").length, 1);
  assert.ok(log.lines.some((l) => l.msg === "delivery failed" && l.rcpt === "team@example.test" && l.error === "no such mailbox"));
});

test("a data directory moved with mail in its queue: the stored Maildir paths are under the new one", async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const log = captureLogger();
  const first = join(dir, "first");
  let spool = Spool.open({ dataDir: first, shard: 0, logger: log.logger });
  const txn = sinkFor(spool, BEFORE).begin({ mailFrom: "a@b.test", smtputf8: false }, { kind: "local", source: "dsn", ref: "m" });
  txn.add({ address: "team@example.test", dsn: {} });
  const { id } = await txn.commit(Buffer.from("From: a@b.test\r\n\r\nhi\r\n"));
  spool.close();
  const moved = join(dir, "moved");
  renameSync(first, moved);
  spool = Spool.open({ dataDir: moved, shard: 0, logger: log.logger });
  const agent = new QueueManager({ spool, dataDir: moved, logger: log.logger, pollMs: 20, hostname: "mx.test" });
  t.after(async () => {
    await agent.stop();
    spool.close();
  });
  agent.start();
  await waitFor(() => spool.admin.get(id) === undefined, "delivered");
  assert.equal(files(moved, "mail/example.test/alice/Maildir").length, 1);
  assert.equal(files(moved, "mail/example.test/bob/Maildir").length, 1);
  assert.equal(existsSync(first), false, "nothing written where the data directory was");
});

for (const encrypt of [true, false]) {
  test(`records of an older Wardmail (no routes, spool schema 2, ${encrypt ? "sealed" : "plaintext"}) are routed once at start and delivered`, async (t) => {
    const { dir, cleanup } = tempDir();
    t.after(cleanup);
    const log = captureLogger();
    // What an older Wardmail left: recipients without routes (enqueued straight, as its sink did), schema 2.
    let spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger, encrypt });
    const old = await spool.enqueue(sampleMessage({ to: ["team@example.test", "fwd@example.test", "nobody@example.test"] }));
    spool.close();
    const db = new DatabaseSync(join(dir, "spool", "shard-0.db"));
    db.exec("DROP TABLE unrouted; PRAGMA user_version = 2;");
    db.close();

    spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger, encrypt });
    assert.equal(spool.admin.get(old)?.recipients[0]?.route, undefined, "unrouted until the server routes it");
    const sink = sinkFor(spool, BEFORE);
    assert.deepEqual(spool.routeOldRecords((a) => sink.router.routeInPlace(a)), { routed: 1, damaged: 0 });
    assert.ok(log.has("older spool records routed"));
    assert.deepEqual(spool.admin.get(old)?.recipients.map((r) => r.route?.kind), ["local", "deferred", "failed"], "stored, checksummed or sealed again");
    spool.close();
    spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger, encrypt });
    assert.deepEqual(spool.routeOldRecords((a) => sink.router.routeInPlace(a)), { routed: 0, damaged: 0 }, "once");
    assert.equal(spool.admin.damagedCount(), 0);

    const agent = new QueueManager({ spool, dataDir: dir, logger: log.logger, pollMs: 20, hostname: "mx.test" });
    t.after(async () => {
      await agent.stop();
      spool.close();
    });
    agent.start();
    await waitFor(() => spool.admin.get(old)?.state === "deferred", "delivery attempted");
    assert.deepEqual(
      spool.admin.get(old)?.recipients.map((r) => [r.state, r.lastError]),
      [
        ["delivered", undefined],
        ["deferred", REMOTE_NOT_IMPLEMENTED],
        ["failed", "no such mailbox"],
      ],
      "as an older Wardmail delivered them",
    );
    assert.equal(files(dir, "mail/example.test/alice/Maildir").length, 1);
    assert.equal(files(dir, "mail/example.test/bob/Maildir").length, 1);
  });
}

test("a recipient without a stored route is deferred, never routed by the queue manager", async (t) => {
  const { dir, cleanup } = tempDir();
  const log = captureLogger();
  const spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger });
  const agent = new QueueManager({ spool, dataDir: dir, logger: log.logger, pollMs: 20, hostname: "mx.test" });
  t.after(async () => {
    await agent.stop();
    spool.close();
    cleanup();
  });
  agent.start();
  const id = await spool.enqueue(sampleMessage({ to: ["alice@example.test"] }));
  await waitFor(() => spool.admin.get(id)?.state === "deferred", "deferral");
  assert.equal(spool.admin.get(id)?.recipients[0]?.lastError, NOT_ROUTED);
  assert.equal(files(dir, "mail/example.test/alice/Maildir").length, 0);
});

test("the queue manager and the transports never consult the alias resolver or [local]", () => {
  const root = join(import.meta.dirname, "..");
  for (const folder of ["qmgr", "delivery"]) {
    for (const name of readdirSync(join(root, folder))) {
      if (!name.endsWith(".ts") || name.endsWith(".test.ts")) continue;
      const text = readFileSync(join(root, folder, name), "utf8");
      assert.doesNotMatch(text, /resolveRecipient|routeInPlace|\bRouter\b|\.aliases\b|local\.lmtp\[|local\.maildir,/, `${folder}/${name}`);
    }
  }
});
