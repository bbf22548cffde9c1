import { mock, test } from "node:test";
import assert from "node:assert/strict";
import fs, { existsSync, realpathSync, statSync } from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { join } from "node:path";
import { Spool } from "./spool.ts";
import { ShardStore } from "./store.ts";
import { QueueAdmin } from "./admin.ts";
import { shardPath } from "./db.ts";
import { isQueueId, newQueueId, shardOfId, timeOfId } from "./ids.ts";
import { canonicalJson, DamagedRecordError, RECORD_VERSION, recordChecksum } from "./record.ts";
import { captureLogger, sampleMessage, tempDir } from "../../test/helpers/queue.ts";
import { rawDb, withSpool } from "../../test/helpers/spool.ts";
import type { IncomingMessage } from "./types.ts";

test("ids are unique, well-formed, carry their shard and sort by time", () => {
  const seen = new Set<string>();
  const now = Date.now();
  for (let i = 0; i < 100_000; i++) seen.add(newQueueId(7, now));
  assert.equal(seen.size, 100_000);
  const id = newQueueId(1023, now);
  assert.ok(isQueueId(id));
  assert.equal(id.length, 18);
  assert.equal(shardOfId(id), 1023);
  assert.equal(timeOfId(id), now);
  assert.ok(newQueueId(0, now) < newQueueId(0, now + 1));
  assert.equal(isQueueId("../../etc/passwd"), false);
  assert.throws(() => newQueueId(1024));
});

test("enqueue, close, reopen: envelope, received info and content come back identical", async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const log = captureLogger();
  const msg = sampleMessage({ to: ["a@example.test", "B@Example.test"], size: 10_000, dsn: { notify: ["FAILURE", "DELAY"], orcpt: "rfc822;a@example.test" } });
  const withExtras: IncomingMessage = { ...msg, envelope: { ...msg.envelope, ret: "HDRS", envid: "env-1", smtputf8: true } };
  let spool = Spool.open({ dataDir: dir, shard: 3, logger: log.logger });
  const id = await spool.enqueue(withExtras);
  assert.equal(shardOfId(id), 3);
  spool.close();
  await assert.rejects(spool.enqueue(msg), /closed/);

  spool = Spool.open({ dataDir: dir, shard: 3, logger: log.logger });
  t.after(() => spool.close());
  const got = spool.admin.get(id);
  assert.ok(got);
  assert.deepEqual(got.envelope, withExtras.envelope);
  assert.deepEqual(got.received, withExtras.received);
  assert.ok(got.content.equals(withExtras.content));
  assert.equal(got.size, withExtras.content.length);
  assert.equal(got.state, "queued");
  assert.equal(got.shard, 3);
  assert.deepEqual(
    got.recipients.map((r) => [r.index, r.address, r.state, r.attempts]),
    [
      [0, "a@example.test", "queued", 0],
      [1, "B@Example.test", "queued", 0],
    ],
  );
  const [claimed, ...more] = spool.claimDue(Date.now(), 10);
  assert.equal(more.length, 0);
  assert.ok(claimed);
  assert.ok(claimed.content.equals(withExtras.content));
  assert.equal(claimed.state, "active");
});

test("the spool directory is 0700 and its database files 0600", async (t) => {
  const { dir, spool } = withSpool(t);
  await spool.enqueue(sampleMessage());
  assert.equal(statSync(join(dir, "spool")).mode & 0o777, 0o700);
  for (const suffix of ["", "-wal", "-shm"]) assert.equal(statSync(shardPath(dir, 0) + suffix).mode & 0o777, 0o600, suffix);
});

test("group commit: 100 concurrent enqueues share few commits and resolve only once durable", async (t) => {
  const { dir, spool } = withSpool(t, { maxBatch: 256 });
  const reader = rawDb(dir);
  t.after(() => reader.close());
  const count = reader.prepare("SELECT count(*) AS n FROM messages WHERE id = ?");
  let visibleAtResolve = 0;
  let committedEvents = 0;
  spool.onCommitted(() => committedEvents++);
  const ids = await Promise.all(
    Array.from({ length: 100 }, () =>
      spool.enqueue(sampleMessage({ size: 2000 })).then((id) => {
        // Another connection must already see the row when the promise resolves.
        if (Number(count.get(id)?.n) === 1) visibleAtResolve++;
        return id;
      }),
    ),
  );
  assert.equal(new Set(ids).size, 100);
  assert.equal(visibleAtResolve, 100);
  const s = spool.stats();
  assert.ok(s.commits < 100, `commits ${s.commits}`);
  assert.equal(s.commits, 1);
  assert.equal(s.committedMessages, 100);
  assert.equal(committedEvents, s.commits);
  assert.equal(s.queued, 100);
});

test("durability: no enqueue resolves before an fdatasync of the WAL that began after its commit has returned; a failed one rejects", async (t) => {
  const { dir, spool } = withSpool(t);
  const reader = rawDb(dir);
  t.after(() => reader.close());
  const real = fs.fdatasync;
  // The spool's own fdatasync calls are held here until the test lets them run.
  const calls: { fd: number; done: (err: NodeJS.ErrnoException | null) => void }[] = [];
  mock.method(fs, "fdatasync", (fd: number, done: (err: NodeJS.ErrnoException | null) => void) => void calls.push({ fd, done }));
  syncBuiltinESMExports();
  t.after(() => {
    mock.restoreAll();
    syncBuiltinESMExports();
  });
  const waitFor = async (n: number): Promise<void> => {
    const until = Date.now() + 5000;
    while (calls.length < n && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    assert.equal(calls.length, n, `fdatasync calls: ${calls.length}`);
  };
  const resolved: string[] = [];
  const first = spool.enqueue(sampleMessage()).then((id) => void resolved.push(id));
  await waitFor(1);
  assert.equal(realpathSync(`/proc/self/fd/${calls[0]!.fd}`), realpathSync(`${shardPath(dir, 0)}-wal`), "the WAL file is synced");
  assert.equal(Number(reader.prepare("SELECT count(*) AS n FROM messages").get()?.n), 1, "committed before the sync began");
  // A message committed while that sync runs waits for the next one.
  const second = spool.enqueue(sampleMessage()).then((id) => void resolved.push(id));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(Number(reader.prepare("SELECT count(*) AS n FROM messages").get()?.n), 2);
  assert.deepEqual(resolved, [], "nothing resolves (no 250) while the WAL is not on disk");
  real(calls[0]!.fd, calls[0]!.done);
  await first;
  assert.equal(resolved.length, 1);
  await waitFor(2);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(resolved.length, 1, "the second waits for its own fdatasync");
  real(calls[1]!.fd, calls[1]!.done);
  await second;
  // A failed fdatasync: the message is refused (451), never acknowledged.
  const third = spool.enqueue(sampleMessage());
  await waitFor(3);
  calls[2]!.done(Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" }));
  await assert.rejects(third, /spool fsync failed/);
  assert.equal(spool.stats().committedMessages, 2);
});

test("group commit: a full batch flushes at once (maxBatch)", async (t) => {
  const { spool } = withSpool(t, { maxBatch: 10 });
  await Promise.all(Array.from({ length: 95 }, () => spool.enqueue(sampleMessage())));
  assert.equal(spool.stats().commits, 10); // nine full batches of 10, one of 5
});

test("group commit: a batch whose contents reach maxBatchBytes flushes at once", async (t) => {
  const { spool } = withSpool(t, { maxBatchBytes: 25_000 });
  await Promise.all(Array.from({ length: 10 }, () => spool.enqueue(sampleMessage({ size: 10_000 }))));
  assert.equal(spool.stats().commits, 4); // after the 3rd, 6th and 9th message, then the 10th alone
});

test("a failing commit rejects every promise of its batch and stores none of it", async (t) => {
  // Plaintext records (spool.encrypt = false), so the trigger can see the address.
  const { dir, spool, log } = withSpool(t, { encrypt: false });
  const other = rawDb(dir);
  t.after(() => other.close());
  const okBefore = await spool.enqueue(sampleMessage());
  other.exec("CREATE TRIGGER fail_insert BEFORE INSERT ON recipients WHEN NEW.address = 'boom@example.test' BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
  const batch = Array.from({ length: 20 }, (_, i) => spool.enqueue(sampleMessage({ to: [i === 13 ? "boom@example.test" : `u${i}@example.test`] })));
  const results = await Promise.allSettled(batch);
  assert.equal(results.filter((r) => r.status === "rejected").length, 20);
  const first = results[0];
  assert.ok(first?.status === "rejected" && /spool commit failed/.test(String(first.reason)));
  assert.equal(spool.stats().failedCommits, 1);
  assert.ok(log.has("spool commit failed"));
  assert.equal(Number(other.prepare("SELECT count(*) AS n FROM messages").get()?.n), 1);
  assert.equal(Number(other.prepare("SELECT count(*) AS n FROM recipients").get()?.n), 1);
  other.exec("DROP TRIGGER fail_insert");
  const okAfter = await spool.enqueue(sampleMessage());
  assert.ok(spool.admin.get(okBefore) && spool.admin.get(okAfter));
});

test("failed commits (a full disk, say) do not use up the handoff: the next durable message is still handed over", async (t) => {
  const { dir, spool } = withSpool(t);
  const other = rawDb(dir);
  t.after(() => other.close());
  spool.enableHandoff();
  other.exec("CREATE TRIGGER fail_all BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
  // More failed handoff messages than the handoff holds (1024).
  for (let round = 0; round < 5; round++) {
    const results = await Promise.allSettled(Array.from({ length: 256 }, () => spool.enqueue(sampleMessage({ size: 100 }))));
    assert.ok(results.every((r) => r.status === "rejected"));
  }
  other.exec("DROP TRIGGER fail_all");
  const id = await spool.enqueue(sampleMessage());
  assert.deepEqual(spool.takeFresh(10).map((m) => m.id), [id]);
});

test("a handed-off message keeps only its own bytes in memory, not a view into a larger buffer", async (t) => {
  const { spool } = withSpool(t);
  spool.enableHandoff();
  const msg = sampleMessage({ size: 10_240 });
  // As a message built by Buffer.concat arrives: a view into a 64 KiB slab.
  const slab = Buffer.alloc(65_536);
  msg.content.copy(slab, 1000);
  const view = slab.subarray(1000, 1000 + msg.content.length);
  await spool.enqueue({ ...msg, content: view });
  const [fresh] = spool.takeFresh(10);
  assert.ok(fresh);
  assert.deepEqual(fresh.content, msg.content);
  assert.equal(fresh.content.byteOffset, 0);
  assert.equal(fresh.content.buffer.byteLength, msg.content.length);
});

test("a commit that cannot get the write lock within busy_timeout rejects", async (t) => {
  const { dir, spool } = withSpool(t, { busyTimeoutMs: 50 });
  const other = rawDb(dir);
  t.after(() => other.close());
  other.exec("BEGIN IMMEDIATE");
  await assert.rejects(spool.enqueue(sampleMessage()), /spool commit failed/);
  other.exec("COMMIT");
  assert.ok(isQueueId(await spool.enqueue(sampleMessage())));
});

test("a malformed message is refused without harming its batch", async (t) => {
  const { spool } = withSpool(t);
  const good = sampleMessage();
  const bad = { ...good, content: "not a buffer" } as unknown as IncomingMessage;
  const noRcpt: IncomingMessage = { ...good, envelope: { ...good.envelope, recipients: [] } };
  const r = await Promise.allSettled([spool.enqueue(good), spool.enqueue(bad), spool.enqueue(noRcpt)]);
  assert.deepEqual(r.map((x) => x.status), ["fulfilled", "rejected", "rejected"]);
});

test("a caller-chosen queue id is used; a foreign or malformed one is refused alone", async (t) => {
  const { spool } = withSpool(t);
  const id = newQueueId(0);
  const [ok, foreign, malformed, other] = await Promise.allSettled([
    spool.enqueue(sampleMessage(), id),
    spool.enqueue(sampleMessage(), newQueueId(1)),
    spool.enqueue(sampleMessage(), "x"),
    spool.enqueue(sampleMessage()),
  ]);
  assert.deepEqual(ok, { status: "fulfilled", value: id });
  assert.equal(other?.status, "fulfilled");
  for (const r of [foreign, malformed]) assert.equal(r?.status, "rejected");
  assert.ok(spool.admin.get(id));
});

test("queue ids are unique by construction: 100,000 in the same millisecond", () => {
  const now = Date.now();
  const ids = new Set(Array.from({ length: 100_000 }, () => newQueueId(0, now)));
  assert.equal(ids.size, 100_000);
});

test("handoff: durable messages reach the delivery agent from memory, and after a crash from the database", async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const log = captureLogger();
  let spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger });
  spool.enableHandoff();
  const msg = sampleMessage();
  const id = await spool.enqueue(msg);
  // Not claimable from the database while it is handed off...
  assert.equal(spool.claimDue(Date.now(), 10).length, 0);
  const fresh = spool.takeFresh(10);
  assert.deepEqual(fresh.map((m) => m.id), [id]);
  assert.deepEqual(fresh[0]?.content, msg.content);
  assert.deepEqual(fresh[0]?.envelope, msg.envelope);
  assert.equal(spool.takeFresh(10).length, 0);
  // Past its lease, a handed-off message belongs to the database path only.
  const late = await spool.enqueue(sampleMessage());
  assert.equal(spool.takeFresh(10, Date.now() + 11 * 60_000).length, 0);
  assert.deepEqual(spool.claimDue(Date.now() + 11 * 60_000, 10).map((m) => m.id), [late]);
  // ...and after a crash before its outcome, it is due at once on the next open.
  spool.close();
  spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger });
  t.after(() => spool.close());
  assert.deepEqual(spool.claimDue(Date.now(), 10).map((m) => m.id).sort(), [id, late].sort());
});

test("handoff: the memory handoff is capped in bytes; what does not fit is due in the database, never lost", async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const log = captureLogger();
  const spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger, handoffMaxBytes: 10_000 });
  t.after(() => spool.close());
  spool.enableHandoff();
  const ids = await Promise.all([1, 2, 3, 4, 5].map(() => spool.enqueue(sampleMessage({ size: 3000 }))));
  // Three of 3000 bytes fit in 10,000; the other two wait in the database, due now.
  const fresh = spool.takeFresh(10).map((m) => m.id);
  assert.equal(fresh.length, 3);
  const due = spool.claimDue(Date.now(), 10).map((m) => m.id);
  assert.deepEqual([...fresh, ...due].sort(), [...ids].sort());
  // Taken messages no longer count: the next one is handed off again.
  const next = await spool.enqueue(sampleMessage({ size: 3000 }));
  assert.deepEqual(spool.takeFresh(10).map((m) => m.id), [next]);
});

test("handoff: with no bytes allowed (limits.max_handoff_bytes = 0) nothing is handed off; every message is due in the database", async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const log = captureLogger();
  const spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger, handoffMaxBytes: 0 });
  t.after(() => spool.close());
  spool.enableHandoff();
  const ids = await Promise.all([1, 2, 3].map(() => spool.enqueue(sampleMessage())));
  assert.equal(spool.takeFresh(10).length, 0);
  assert.deepEqual(spool.claimDue(Date.now(), 10).map((m) => m.id).sort(), [...ids].sort());
});

test("recovery: messages active when the process died are queued again on open", async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const log = captureLogger();
  let spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger });
  const ids = await Promise.all([spool.enqueue(sampleMessage()), spool.enqueue(sampleMessage())]);
  const claimed = spool.claimDue(Date.now(), 10);
  assert.equal(claimed.length, 2);
  assert.equal(spool.claimDue(Date.now(), 10).length, 0);
  assert.equal(spool.stats().active, 2);
  spool.close(); // "crash": no outcome recorded
  spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger });
  t.after(() => spool.close());
  const s = spool.stats();
  assert.equal(s.active, 0);
  assert.equal(s.queued, 2);
  assert.deepEqual(spool.claimDue(Date.now(), 10).map((m) => m.id).sort(), [...ids].sort());
  assert.ok(log.lines.some((l) => l.msg === "spool opened" && l.recovered === 2));
});

test("damaged records are moved aside with their reason, reported, and never claimed", async (t) => {
  // The checks of the plaintext format (version 1: spool.encrypt = false, or an older Wardmail); sealed ones: encryption.test.ts.
  const { dir, spool, log } = withSpool(t, { encrypt: false });
  const msgs = Array.from({ length: 6 }, () => sampleMessage());
  const [good, badContent, badVersion, badEnvelope, badRecipients, noContent] = await Promise.all(msgs.map((m) => spool.enqueue(m)));
  const raw = rawDb(dir);
  t.after(() => raw.close());
  // Flip one byte of the content.
  const content = Buffer.from(raw.prepare("SELECT content FROM contents WHERE message_id = ?").get(badContent!)?.content as Uint8Array);
  content[100] = content[100]! ^ 1;
  raw.prepare("UPDATE contents SET content = ? WHERE message_id = ?").run(content, badContent!);
  raw.prepare("UPDATE messages SET version = 99 WHERE id = ?").run(badVersion!);
  // A well-sealed record whose envelope does not have the contract's shape.
  const env = canonicalJson({ mailFrom: 42, recipients: [] });
  const row = raw.prepare("SELECT received, content FROM messages JOIN contents ON message_id = id WHERE id = ?").get(badEnvelope!);
  const sum = recordChecksum(RECORD_VERSION, badEnvelope!, env, String(row?.received), row?.content as Uint8Array);
  raw.prepare("UPDATE messages SET envelope = ?, checksum = ? WHERE id = ?").run(env, sum, badEnvelope!);
  raw.prepare("DELETE FROM recipients WHERE message_id = ?").run(badRecipients!);
  raw.prepare("DELETE FROM contents WHERE message_id = ?").run(noContent!);

  const claimed = spool.claimDue(Date.now(), 10);
  assert.deepEqual(claimed.map((m) => m.id), [good]);
  const damaged = new Map(spool.admin.damaged().map((d) => [d.id, d.reason]));
  assert.equal(damaged.size, 5);
  assert.equal(damaged.get(badContent!), "checksum mismatch");
  assert.equal(damaged.get(badVersion!), "unknown record format version 99");
  assert.match(damaged.get(badEnvelope!) ?? "", /envelope\.mailFrom is not a string/);
  assert.match(damaged.get(badRecipients!) ?? "", /recipient rows \(0\) do not match/);
  assert.equal(damaged.get(noContent!), "content is missing");
  assert.equal(log.lines.filter((l) => l.msg === "damaged spool record moved aside").length, 5);
  // The damaged content is kept aside for the operator; the queue no longer has them.
  const aside = raw.prepare("SELECT content FROM damaged WHERE id = ?").get(badContent!);
  assert.ok(Buffer.from(aside?.content as Uint8Array).equals(content));
  assert.equal(Number(raw.prepare("SELECT count(*) AS n FROM messages").get()?.n), 1);
  assert.equal(Number(raw.prepare("SELECT count(*) AS n FROM contents").get()?.n), 1);
  assert.equal(Number(raw.prepare("SELECT count(*) AS n FROM recipients").get()?.n), 1);
  assert.equal(spool.stats().damaged, 5);
});

test("get() of a damaged record moves it aside and throws a clear error", async (t) => {
  const { dir, spool } = withSpool(t, { encrypt: false });
  const id = await spool.enqueue(sampleMessage());
  const raw = rawDb(dir);
  t.after(() => raw.close());
  raw.prepare("UPDATE messages SET checksum = x'00' WHERE id = ?").run(id);
  assert.throws(() => spool.admin.get(id), (err: unknown) => err instanceof DamagedRecordError && /damaged \(checksum mismatch\); moved aside/.test(err.message));
  assert.equal(spool.admin.get(id), undefined);
  assert.equal(spool.admin.damaged().length, 1);
});

test("admin on the same file while the server's Spool has it open: hold, release, retry, delete", async (t) => {
  const { dir, spool } = withSpool(t);
  const admin = ShardStore.openFile(shardPath(dir, 0), { busyTimeoutMs: 2000 });
  t.after(() => admin.close());
  const [a, b, c] = await Promise.all([spool.enqueue(sampleMessage()), spool.enqueue(sampleMessage()), spool.enqueue(sampleMessage())]);
  assert.ok(a && b && c);
  assert.equal(admin.list().length, 3);
  assert.equal(admin.hold(a.toUpperCase()), true);
  assert.equal(admin.hold("0000000000000000zz"), false);
  let claimed = spool.claimDue(Date.now(), 10).map((m) => m.id);
  assert.deepEqual(claimed.sort(), [b, c].sort(), "held message is not claimed");
  assert.equal(admin.get(a)?.state, "held");
  // Hold an in-flight message: its deferred outcome keeps it held.
  assert.equal(admin.hold(b), true);
  spool.recordOutcome(b, [{ index: 0, result: "deferred", error: "later" }]);
  spool.recordOutcome(c, [{ index: 0, result: "deferred", error: "later" }]);
  spool.flush();
  assert.equal(admin.get(b)?.state, "held");
  assert.equal(admin.get(c)?.state, "deferred");
  assert.equal(spool.claimDue(Date.now(), 10).length, 0);
  // retry: deferred → due now.
  assert.equal(admin.retry(c), true);
  assert.deepEqual(spool.claimDue(Date.now(), 10).map((m) => m.id), [c]);
  // release: held → queued, due now.
  assert.equal(admin.release(a), true);
  assert.equal(admin.release(b), true);
  claimed = spool.claimDue(Date.now(), 10).map((m) => m.id);
  assert.deepEqual(claimed.sort(), [a, b].sort());
  // delete an in-flight message; its late outcome is ignored.
  assert.equal(admin.delete(a), true);
  assert.equal(admin.delete(a), false);
  spool.recordOutcome(a, [{ index: 0, result: "deferred", error: "later" }]);
  spool.flush();
  assert.equal(spool.admin.get(a), undefined);
  // hold + release of an in-flight message does not let it be claimed twice.
  const d = await spool.enqueue(sampleMessage());
  assert.deepEqual(spool.claimDue(Date.now(), 10).map((m) => m.id), [d]);
  admin.hold(d);
  admin.release(d);
  assert.equal(admin.get(d)?.state, "queued");
  assert.equal(spool.claimDue(Date.now(), 10).length, 0, "still in flight");
  spool.recordOutcome(d, [{ index: 0, result: "deferred", error: "later" }]);
  spool.flush();
  assert.equal(admin.retry(d), true);
  assert.deepEqual(spool.claimDue(Date.now(), 10).map((m) => m.id), [d]);
  assert.equal(admin.retry("0000000000000000zz"), false);
  assert.equal(admin.release("0000000000000000zz"), false);
  assert.equal(admin.get("0000000000000000zz"), undefined);
});

test("QueueAdmin sees every shard and routes by id", async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const log = captureLogger();
  const s0 = Spool.open({ dataDir: dir, shard: 0, logger: log.logger });
  const s1 = Spool.open({ dataDir: dir, shard: 1, logger: log.logger });
  t.after(() => {
    s0.close();
    s1.close();
  });
  const ids0: string[] = await Promise.all([s0.enqueue(sampleMessage()), s0.enqueue(sampleMessage())]);
  const id1 = await s1.enqueue(sampleMessage({ to: ["z@example.test"] }));
  const qa = QueueAdmin.open(dir);
  t.after(() => qa.close());
  assert.deepEqual(qa.shards, [0, 1]);
  const all = qa.list();
  assert.deepEqual(all.map((e) => e.id).sort(), [...ids0, id1].sort());
  assert.equal(all.find((e) => e.id === id1)?.shard, 1);
  assert.equal(qa.get(id1)?.envelope.recipients[0]?.address, "z@example.test");
  assert.equal(qa.hold(id1), true);
  assert.equal(qa.counts().held, 1);
  assert.equal(s1.claimDue(Date.now(), 10).length, 0);
  assert.equal(qa.release(` ${id1.toUpperCase()} `), true);
  assert.equal(s1.claimDue(Date.now(), 10).length, 1);
  assert.equal(qa.delete(ids0[0]!), true);
  assert.equal(qa.get(ids0[0]!), undefined);
  assert.equal(qa.hold("0000000000001zzzzz"), false);
  assert.throws(() => qa.hold("not-an-id"), /not a queue id/);
  assert.throws(() => qa.get("../x"), /not a queue id/);
});

test("QueueAdmin on a data directory without a spool is empty and creates nothing", () => {
  const { dir, cleanup } = tempDir();
  try {
    const qa = QueueAdmin.open(dir);
    assert.deepEqual(qa.list(), []);
    qa.close();
    assert.equal(existsSync(shardPath(dir, 0)), false);
    assert.throws(() => ShardStore.openFile(shardPath(dir, 0)), /no spool database|ENOENT/);
  } finally {
    cleanup();
  }
});

test("views: the writer and the scheduler cannot delete, hold or release; the admin view can, over the same file", async (t) => {
  const { spool } = withSpool(t);
  const admin = ["list", "get", "hold", "release", "retry", "delete", "damaged"];
  for (const view of [spool.writer, spool.scheduler]) {
    for (const op of admin) assert.equal(op in view, false, op);
    assert.ok(Object.isFrozen(view));
  }
  for (const op of admin) assert.equal(op in spool, false, op);
  assert.deepEqual(Object.keys(spool.writer).sort(), ["enqueue", "flush", "isClosed", "recordOutcome", "shard"]);
  const id = await spool.writer.enqueue(sampleMessage());
  const [claimed] = spool.scheduler.claimDue(Date.now(), 1);
  assert.equal(claimed?.id, id);
  assert.equal(spool.admin.get(id)?.state, "active");
  spool.writer.recordOutcome(id, [{ index: 0, result: "deferred", error: "later" }]);
  spool.writer.flush();
  assert.equal(spool.admin.get(id)?.state, "deferred");
  assert.equal(spool.admin.delete(id), true);
  assert.equal(spool.admin.get(id), undefined);
  // Closing the Spool's admin view leaves the Spool open; closing the Spool closes the views.
  spool.admin.close();
  assert.equal(spool.isClosed, false);
  assert.equal(spool.writer.isClosed, false);
  await spool.writer.enqueue(sampleMessage());
  spool.close();
  assert.equal(spool.writer.isClosed, true);
  assert.equal(spool.scheduler.isClosed, true);
  await assert.rejects(spool.writer.enqueue(sampleMessage()), /spool is closed/);
});
