import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Spool } from "../queue/index.ts";
import { ALIAS_LOCAL as LOCAL, captureLogger, routed, sampleMessage, tempDir } from "../../test/helpers/queue.ts";
import { QueueManager, REMOTE_NOT_IMPLEMENTED } from "./index.ts";
import { mailboxPath } from "../delivery/index.ts";
import { Router, type LocalConfig } from "../sink/index.ts";
import type { IncomingMessage } from "../queue/index.ts";


async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function setup(t: { after: (fn: () => Promise<void> | void) => void }, local: LocalConfig = LOCAL) {
  const { dir, cleanup } = tempDir();
  const log = captureLogger();
  const spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger });
  const agent = new QueueManager({ spool, dataDir: dir, logger: log.logger, pollMs: 20, hostname: "mx.test" });
  // As the sink stores them (here in place, without its split of aliases reaching other domains).
  const router = new Router({ local });
  const route = (m: IncomingMessage): IncomingMessage => routed(m, (a) => router.routeInPlace(a));
  t.after(async () => {
    await agent.stop();
    spool.close();
    cleanup();
  });
  const files = (mailbox: string): string[] => {
    const md = mailboxPath(dir, local.maildir, mailbox);
    return existsSync(join(md, "new")) ? readdirSync(join(md, "new")).map((n) => join(md, "new", n)) : [];
  };
  return { dir, log, spool, agent, files, route };
}

test("end to end: enqueue → Maildir files, aliases expanded, each mailbox stored once", async (t) => {
  const { spool, agent, files, log, route } = setup(t);
  agent.start();
  const msg = sampleMessage({ from: "sender@remote.test", to: ["team@example.test", "Alice@Example.test", "all@example.test"], size: 3000 });
  const id = await spool.enqueue(route(msg));
  await waitFor(() => spool.admin.get(id) === undefined, "message done");
  for (const mb of ["alice@example.test", "bob@example.test", "carol@other.test"]) {
    const f = files(mb);
    assert.equal(f.length, 1, mb);
    const stored = readFileSync(f[0]!);
    const head = `Return-Path: <sender@remote.test>\r\nDelivered-To: ${mb}\r\n`;
    assert.equal(stored.subarray(0, head.length).toString("latin1"), head);
    assert.ok(stored.subarray(head.length).equals(msg.content));
  }
  assert.equal(agent.stats().stored, 3);
  assert.equal(agent.stats().delivered, 3);
  assert.equal(log.lines.filter((l) => l.msg === "delivered locally").length, 3);
  assert.ok(!log.lines.some((l) => JSON.stringify(l).includes("message 0")), "no content in logs");
});

test("remote recipients and aliases with remote targets are deferred; unknown mailboxes fail", async (t) => {
  const { spool, agent, files, log, route } = setup(t);
  agent.start();
  const id = await spool.enqueue(route(sampleMessage({ to: ["x@remote.test", "ext@example.test", "nobody@example.test", "carol@other.test"] })));
  await waitFor(() => spool.admin.get(id)?.state === "deferred", "deferral");
  const e = spool.admin.get(id)!;
  assert.deepEqual(
    e.recipients.map((r) => [r.state, r.lastError]),
    [
      ["deferred", REMOTE_NOT_IMPLEMENTED],
      ["deferred", REMOTE_NOT_IMPLEMENTED],
      ["failed", "no such mailbox"],
      ["delivered", undefined],
    ],
  );
  assert.equal(e.lastError, REMOTE_NOT_IMPLEMENTED);
  assert.equal(files("carol@other.test").length, 1);
  assert.equal(files("bob@example.test").length, 0, "the local part of a deferred alias waits with it");
  assert.ok(log.lines.some((l) => l.msg === "delivery failed" && l.rcpt === "nobody@example.test"));
});

test("a filesystem error defers the recipient; after the fix only it is stored", async (t) => {
  const { dir, spool, agent, files, route } = setup(t);
  const bobDir = mailboxPath(dir, LOCAL.maildir, "bob@example.test");
  mkdirSync(join(bobDir, ".."), { recursive: true });
  writeFileSync(bobDir, "a file where the Maildir should be");
  agent.start();
  const id = await spool.enqueue(route(sampleMessage({ to: ["alice@example.test", "bob@example.test"] })));
  await waitFor(() => spool.admin.get(id)?.state === "deferred", "deferral");
  const e = spool.admin.get(id)!;
  assert.equal(e.recipients[0]?.state, "delivered");
  assert.equal(e.recipients[1]?.state, "deferred");
  assert.match(e.recipients[1]?.lastError ?? "", /^ENOTDIR/);
  assert.ok(e.nextAttemptAt - Date.now() > 50_000, "backoff of about a minute");
  rmSync(bobDir);
  assert.equal(spool.admin.retry(id), true);
  await waitFor(() => spool.admin.get(id) === undefined, "message done");
  assert.equal(files("alice@example.test").length, 1, "alice not stored twice");
  assert.equal(files("bob@example.test").length, 1);
});

test("a retried recipient whose alias reaches an already-stored mailbox does not store it again", async (t) => {
  const { dir, spool, agent, files, route } = setup(t);
  const carolDir = mailboxPath(dir, LOCAL.maildir, "carol@other.test");
  mkdirSync(join(carolDir, ".."), { recursive: true });
  writeFileSync(carolDir, "blocked");
  agent.start();
  // Recipient 0 (alice) is delivered; recipient 1 (all → alice, carol) is deferred by carol.
  const id = await spool.enqueue(route(sampleMessage({ to: ["alice@example.test", "all@example.test"] })));
  await waitFor(() => spool.admin.get(id)?.state === "deferred", "deferral");
  rmSync(carolDir);
  spool.admin.retry(id);
  await waitFor(() => spool.admin.get(id) === undefined, "message done");
  assert.equal(files("alice@example.test").length, 1);
  assert.equal(files("carol@other.test").length, 1);
});

test("many messages: all delivered with bounded concurrency; stop() waits and leaves nothing active", async (t) => {
  const { spool, agent, files, route } = setup(t);
  agent.start();
  let maxInFlight = 0;
  const sampler = setInterval(() => (maxInFlight = Math.max(maxInFlight, agent.stats().inFlight)), 1);
  const ids = await Promise.all(Array.from({ length: 300 }, (_, i) => spool.enqueue(route(sampleMessage({ to: [i % 2 ? "alice@example.test" : "team@example.test"] })))));
  await waitFor(() => spool.admin.counts().queued + spool.admin.counts().active === 0 && agent.stats().inFlight === 0, "drain", 20_000);
  clearInterval(sampler);
  assert.ok(maxInFlight <= 16, `in flight ${maxInFlight}`);
  assert.equal(files("alice@example.test").length, 300);
  assert.equal(files("bob@example.test").length, 150);
  assert.equal(ids.filter((id) => spool.admin.get(id) !== undefined).length, 0);

  // Stop in the middle of a burst: whatever was claimed finishes and is recorded.
  await agent.stop();
  const more = await Promise.all(Array.from({ length: 100 }, () => spool.enqueue(route(sampleMessage({ to: ["bob@example.test"] })))));
  agent.start(); // schedules its first claim on setImmediate...
  await new Promise((r) => setImmediate(r)); // ...which has run by now
  assert.equal(agent.stats().inFlight, 16);
  await agent.stop();
  assert.equal(agent.stats().inFlight, 0);
  assert.equal(spool.admin.counts().active, 0);
  const left = more.filter((id) => spool.admin.get(id) !== undefined).length;
  assert.equal(left, 100 - 16, "nothing claimed after stop()");
  assert.equal(files("bob@example.test").length, 150 + (100 - left));
});
