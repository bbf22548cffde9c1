import { test } from "node:test";
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { chmodSync, readdirSync, readFileSync, statSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Spool } from "./spool.ts";
import type { SpoolOptions } from "./spool.ts";
import { QueueAdmin } from "./admin.ts";
import { shardPath } from "./db.ts";
import { keyFilePath, SpoolKeyring } from "./keyring.ts";
import { DamagedRecordError, RECORD_VERSION, SEALED_RECORD_VERSION } from "./record.ts";
import { captureLogger, sampleMessage, tempDir } from "../../test/helpers/queue.ts";
import type { IncomingMessage } from "./types.ts";

function setup(t: { after: (fn: () => void) => void }, extra: Partial<SpoolOptions> = {}) {
  const { dir, cleanup } = tempDir();
  const log = captureLogger();
  const state = { spool: Spool.open({ dataDir: dir, shard: 0, logger: log.logger, ...extra }) };
  t.after(() => {
    state.spool.close();
    cleanup();
  });
  return { dir, log, state };
}

function rawDb(dir: string): DatabaseSync {
  return new DatabaseSync(shardPath(dir, 0), { timeout: 5000 });
}

/** A message whose body, subject, sender and recipient carry the canary. */
function canaryMessage(canary: string): IncomingMessage {
  const base = sampleMessage({ from: `from-${canary}@example.org`, to: [`to-${canary}@example.test`], size: 4000 });
  const content = Buffer.concat([
    Buffer.from(`Subject: ${canary}\r\nX-Note: ${canary}\r\n`, "utf8"),
    base.content,
    Buffer.from(`\r\nbody ${canary}\r\n`, "utf8"),
  ]);
  return {
    envelope: { ...base.envelope, recipients: [{ address: `to-${canary}@example.test`, dsn: { notify: ["FAILURE"], orcpt: `rfc822;orcpt-${canary}@example.test` } }] },
    received: { ...base.received, clientIp: "192.0.2.77", helo: `helo-${canary}.example`, auth: `auth-${canary}@example.test` },
    content,
  };
}

/** Every file of the spool directory, as bytes, looked through for the canary. */
function spoolFilesWith(dir: string, needle: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(join(dir, "spool"))) {
    const bytes = readFileSync(join(dir, "spool", name));
    if (bytes.includes(Buffer.from(needle, "utf8"))) found.push(name);
  }
  return found;
}

test("sealed records: round trip, and no plaintext in the database, WAL or any spool file", async (t) => {
  const { dir, state } = setup(t);
  const canary = randomBytes(12).toString("hex");
  const msg = canaryMessage(canary);
  const id = await state.spool.enqueue(msg);
  const raw = rawDb(dir);
  t.after(() => raw.close());
  const row = raw.prepare("SELECT version, typeof(envelope) AS t, received, length(checksum) AS c FROM messages WHERE id = ?").get(id);
  assert.equal(row?.version, SEALED_RECORD_VERSION);
  assert.equal(row?.t, "blob");
  assert.equal(row?.received, "");
  assert.equal(row?.c, 0);
  assert.deepEqual(raw.prepare("SELECT address, dsn FROM recipients WHERE message_id = ?").all(id).map((r) => [r.address, r.dsn]), [["", ""]]);
  // The records are in the WAL right now (no checkpoint yet): nothing of the message is readable there.
  assert.deepEqual(spoolFilesWith(dir, canary), []);
  assert.deepEqual(spoolFilesWith(dir, "192.0.2.77"), []);
  const [claimed] = state.spool.claimDue(Date.now(), 10);
  assert.equal(claimed?.id, id);
  assert.ok(claimed.content.equals(msg.content));
  assert.deepEqual(claimed.envelope, msg.envelope);
  assert.deepEqual(claimed.received, msg.received);
  assert.equal(claimed.recipients[0]?.address, `to-${canary}@example.test`);
  // A delivery error quoting the address is sealed too.
  state.spool.recordOutcome(id, [{ index: 0, result: "deferred", error: `450 4.2.0 <to-${canary}@example.test> mailbox busy` }]);
  state.spool.flush();
  assert.equal(raw.prepare("SELECT typeof(last_error) AS t FROM messages WHERE id = ?").get(id)?.t, "blob");
  assert.equal(raw.prepare("SELECT typeof(last_error) AS t FROM recipients WHERE message_id = ?").get(id)?.t, "blob");
  const shown = state.spool.admin.get(id);
  assert.match(shown?.lastError ?? "", new RegExp(`to-${canary}@`));
  assert.match(shown?.recipients[0]?.lastError ?? "", /mailbox busy/);
  raw.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  assert.deepEqual(spoolFilesWith(dir, canary), []);
  // The key file: outside the spool directory, 0600, the only secret.
  assert.equal(statSync(keyFilePath(dir)).mode & 0o777, 0o600);
});

test("a record whose sealed content or meta was swapped with another's, or changed, is set aside and reported", async (t) => {
  const { dir, state, log } = setup(t);
  const ids = await Promise.all(Array.from({ length: 5 }, () => state.spool.enqueue(sampleMessage({ size: 2000 }))));
  const [good, swapContent, swapMeta, flipped, badKey] = ids as [string, string, string, string, string];
  const raw = rawDb(dir);
  t.after(() => raw.close());
  const contentOf = (id: string): Buffer => Buffer.from(raw.prepare("SELECT content FROM contents WHERE message_id = ?").get(id)?.content as Uint8Array);
  const metaOf = (id: string): Buffer => Buffer.from(raw.prepare("SELECT envelope FROM messages WHERE id = ?").get(id)?.envelope as Uint8Array);
  // Another record's ciphertext, intact: the record id in the associated data gives it away.
  raw.prepare("UPDATE contents SET content = ? WHERE message_id = ?").run(contentOf(good), swapContent);
  raw.prepare("UPDATE messages SET envelope = ? WHERE id = ?").run(metaOf(good), swapMeta);
  const c = contentOf(flipped);
  c[200] = c[200]! ^ 1;
  raw.prepare("UPDATE contents SET content = ? WHERE message_id = ?").run(c, flipped);
  const k = contentOf(badKey);
  k.writeUInt32BE(99, 1);
  raw.prepare("UPDATE contents SET content = ? WHERE message_id = ?").run(k, badKey);

  const claimed = state.spool.claimDue(Date.now(), 10);
  assert.deepEqual(claimed.map((m) => m.id), [good]);
  const damaged = new Map(state.spool.admin.damaged().map((d) => [d.id, d.reason]));
  assert.equal(damaged.size, 4);
  assert.match(damaged.get(swapContent) ?? "", /^content fails authentication/);
  assert.match(damaged.get(swapMeta) ?? "", /^meta fails authentication/);
  assert.match(damaged.get(flipped) ?? "", /^content fails authentication/);
  assert.equal(damaged.get(badKey), "content is sealed with unknown spool key 99");
  assert.equal(log.lines.filter((l) => l.msg === "damaged spool record moved aside").length, 4);
  // Kept aside as found (still sealed), never handed on.
  assert.ok(Buffer.from(raw.prepare("SELECT content FROM damaged WHERE id = ?").get(flipped)?.content as Uint8Array).equals(c));
  assert.equal(Number(raw.prepare("SELECT count(*) AS n FROM messages").get()?.n), 1);
  // get() and the admin list report it the same way.
  const other = await state.spool.enqueue(sampleMessage());
  raw.prepare("UPDATE messages SET envelope = ? WHERE id = ?").run(metaOf(good), other);
  assert.throws(() => state.spool.admin.get(other), (err: unknown) => err instanceof DamagedRecordError && /meta fails authentication.*moved aside/.test(err.message));
});

test("a tampered delivery error makes the record damaged in the admin list", async (t) => {
  const { dir, state } = setup(t);
  const id = await state.spool.enqueue(sampleMessage());
  state.spool.claimDue(Date.now(), 10);
  state.spool.recordOutcome(id, [{ index: 0, result: "deferred", error: "451 try later" }]);
  state.spool.flush();
  const raw = rawDb(dir);
  t.after(() => raw.close());
  // The recipient's sealed error copied onto the message: another place, so it does not open.
  raw.exec(`UPDATE messages SET last_error = (SELECT last_error FROM recipients WHERE message_id = '${id}') WHERE id = '${id}'`);
  const admin = QueueAdmin.open(dir);
  t.after(() => admin.close());
  assert.deepEqual(admin.list(), []);
  assert.match(admin.damaged()[0]?.reason ?? "", /^error fails authentication/);
});

test("key rotation: new records use the new key, old ones stay readable; prune removes only keys no record needs", async (t) => {
  const { dir, state } = setup(t, { retryBaseMs: 1 });
  const old = await state.spool.enqueue(sampleMessage());
  const cli = SpoolKeyring.open(dir, { create: false });
  assert.ok(cli);
  assert.equal(cli.currentKeyId, 1);
  assert.equal(cli.rotate(), 2);
  assert.equal(statSync(keyFilePath(dir)).mode & 0o777, 0o600);
  // The running spool looks at the key file at most once a second.
  await new Promise((r) => setTimeout(r, 1100));
  const fresh = await state.spool.enqueue(sampleMessage());
  const admin = QueueAdmin.open(dir);
  t.after(() => admin.close());
  assert.deepEqual([...admin.keysInUse()].sort(), [1, 2]);
  assert.ok(admin.get(old) && admin.get(fresh));
  // Key 1 is still needed: not pruned.
  assert.deepEqual(cli.prune(() => admin.keysInUse(), { graceMs: 0 }), []);
  // Deliver the old message: then nothing needs key 1.
  const claimed = state.spool.claimDue(Date.now(), 10);
  assert.deepEqual(claimed.map((m) => m.id).sort(), [old, fresh].sort());
  state.spool.recordOutcome(old, [{ index: 0, result: "delivered" }]);
  state.spool.recordOutcome(fresh, [{ index: 0, result: "deferred", error: "451 later" }]);
  state.spool.flush();
  assert.deepEqual([...admin.keysInUse()], [2]);
  // Within the grace period a retired key is kept even when unused.
  assert.deepEqual(cli.prune(() => admin.keysInUse()), []);
  assert.deepEqual(cli.prune(() => admin.keysInUse(), { graceMs: 0 }), [1]);
  assert.deepEqual(cli.list().map((k) => [k.id, k.current]), [[2, true]]);
  // The current key is never pruned, even unused.
  state.spool.recordOutcome(fresh, [{ index: 0, result: "delivered" }]);
  state.spool.flush();
  assert.equal(cli.rotate(), 3);
  assert.deepEqual(cli.prune(() => admin.keysInUse(), { graceMs: 0 }), [2]);
  assert.deepEqual(cli.list().map((k) => k.id), [3]);
});

test("a record naming a key the running spool has not read yet is opened after re-reading the key file", async (t) => {
  const { dir, state } = setup(t);
  const other = Spool.open({ dataDir: dir, shard: 1, logger: captureLogger().logger });
  t.after(() => other.close());
  const cli = SpoolKeyring.open(dir, { create: false });
  cli?.rotate();
  // Within the second, only a forced look (SIGHUP) sees the new key.
  other.refreshKeys();
  const id = await other.enqueue(sampleMessage());
  other.close();
  // Copy shard 1's record into shard 0's reader: state.spool still holds only key 1 in memory.
  const admin = QueueAdmin.open(dir, { keyring: (state.spool as unknown as { keyring: SpoolKeyring }).keyring });
  t.after(() => admin.close());
  assert.equal(admin.get(id)?.id, id);
});

test("plaintext records of an older spool are sealed in place when encryption is on: nothing of them is left in the files", async (t) => {
  const { dir, log, state } = setup(t, { encrypt: false });
  const canary = randomBytes(12).toString("hex");
  const plain = await state.spool.enqueue(canaryMessage(canary));
  const deferred = await state.spool.enqueue(canaryMessage(canary));
  const broken = await state.spool.enqueue(sampleMessage());
  state.spool.claimDue(Date.now(), 10);
  state.spool.recordOutcome(deferred, [{ index: 0, result: "deferred", error: `451 <to-${canary}@example.test> later` }]);
  state.spool.recordOutcome(plain, []);
  state.spool.recordOutcome(broken, []);
  state.spool.close();
  const raw = rawDb(dir);
  raw.prepare("UPDATE messages SET checksum = x'00' WHERE id = ?").run(broken);
  raw.close();
  assert.notDeepEqual(spoolFilesWith(dir, canary), [], "the plaintext format does hold the canary");
  state.spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger });
  assert.ok(log.lines.some((l) => l.msg === "plaintext spool records sealed" && l.sealed === 2 && l.damaged === 1));
  const db = rawDb(dir);
  t.after(() => db.close());
  const versions = Object.fromEntries(db.prepare("SELECT id, version FROM messages").all().map((r) => [String(r.id), Number(r.version)]));
  assert.deepEqual(versions, { [plain]: SEALED_RECORD_VERSION, [deferred]: SEALED_RECORD_VERSION });
  assert.deepEqual(spoolFilesWith(dir, canary), []);
  const got = new Map(state.spool.claimDue(Date.now() + 86_400_000, 10).map((m) => [m.id, m]));
  assert.deepEqual([...got.keys()].sort(), [plain, deferred].sort());
  assert.equal(got.get(deferred)?.recipients[0]?.lastError, `451 <to-${canary}@example.test> later`);
  assert.ok(got.get(plain)?.content.includes(Buffer.from(`body ${canary}`)));
  assert.equal(state.spool.admin.damaged()[0]?.id, broken);
  assert.equal(Number(db.prepare("SELECT count(*) AS n FROM messages WHERE version = ?").get(RECORD_VERSION)?.n), 0);
  // A plaintext record that turns up after that (here: one turned back into format 1 by hand) was not written by the server: set aside.
  const forged = await state.spool.enqueue(sampleMessage());
  db.exec(`UPDATE messages SET version = ${RECORD_VERSION}, envelope = '{}' WHERE id = '${forged}'`);
  assert.deepEqual(state.spool.claimDue(Date.now(), 10), []);
  assert.match(state.spool.admin.damaged().find((d) => d.id === forged)?.reason ?? "", /^plaintext record in an encrypted spool/);
});

test("the key file: created once, reused, refused when others may read it; sealed records without it are not set aside", async (t) => {
  const { dir, state, log } = setup(t);
  const id = await state.spool.enqueue(sampleMessage());
  const key = readFileSync(keyFilePath(dir), "utf8");
  state.spool.close();
  state.spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger });
  assert.equal(readFileSync(keyFilePath(dir), "utf8"), key);
  state.spool.close();
  chmodSync(keyFilePath(dir), 0o644);
  assert.throws(() => Spool.open({ dataDir: dir, shard: 0, logger: log.logger }), /may be read by others \(mode 644\)/);
  chmodSync(keyFilePath(dir), 0o600);
  const saved = readFileSync(keyFilePath(dir));
  unlinkSync(keyFilePath(dir));
  const admin = QueueAdmin.open(dir);
  assert.throws(() => admin.list(), /key file .*spool\.keys is missing/);
  assert.deepEqual(admin.damaged(), []);
  admin.close();
  const raw = rawDb(dir);
  assert.equal(Number(raw.prepare("SELECT count(*) AS n FROM messages WHERE id = ?").get(id)?.n), 1);
  raw.close();
  // The server refuses to make a new key that could not open them.
  assert.throws(() => Spool.open({ dataDir: dir, shard: 0, logger: log.logger }), /spool\.keys is missing but the spool holds encrypted records/);
  // Put back: readable again.
  const { writeFileSync } = await import("node:fs");
  writeFileSync(keyFilePath(dir), saved, { mode: 0o600 });
  state.spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger });
  assert.equal(state.spool.admin.get(id)?.id, id);
});

test("refreshKeys (SIGHUP): an invalid key file is reported and the keys in memory stay in use", async (t) => {
  const { dir, state, log } = setup(t);
  const { writeFileSync } = await import("node:fs");
  writeFileSync(keyFilePath(dir), "not json", { mode: 0o600 });
  state.spool.refreshKeys();
  assert.ok(log.lines.some((l) => l.msg === "spool key file not reloaded; the keys already read stay in use"));
  const id = await state.spool.enqueue(sampleMessage());
  assert.equal(state.spool.admin.get(id)?.id, id);
});
