// The hold's two ends in the queue: a message enqueued with `hold` waits in
// state "held" (the delivery agent does not take it) until released; the
// delivery agent tells the hold how many of a submitting account's
// recipients failed permanently.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Spool, QueueAdmin } from "../queue/index.ts";
import { QueueManager } from "../qmgr/index.ts";
import { captureLogger, routed, sampleMessage, tempDir } from "../../test/helpers/queue.ts";
import { Router } from "../sink/index.ts";

const LOCAL = { domains: ["example.test"], mailboxes: ["alice@example.test"], aliases: {}, discard: [], maildir: "mail/%d/%n/Maildir", lmtp: {} };

async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("enqueue with hold: held, not delivered, until released; permanent failures of an account are reported", async (t) => {
  const { dir, cleanup } = tempDir();
  const log = captureLogger();
  const spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger });
  const failures: [string, number][] = [];
  const router = new Router({ local: LOCAL });
  const agent = new QueueManager({ spool, dataDir: dir, logger: log.logger, pollMs: 20, hostname: "mx.test", onPermanentFailures: (a, n) => failures.push([a, n]) });
  t.after(async () => {
    await agent.stop();
    spool.close();
    cleanup();
  });
  agent.start();
  const base = routed(sampleMessage({ to: ["alice@example.test"] }), (a) => router.routeInPlace(a));
  const held = await spool.enqueue({ ...base, received: { ...base.received, auth: "bob@example.test" }, hold: true });
  const plain = routed(sampleMessage({ to: ["alice@example.test", "nobody@example.test", "ghost@example.test"] }), (a) => router.routeInPlace(a));
  const sent = await spool.enqueue({ ...plain, received: { ...plain.received, auth: "bob@example.test" } });
  await waitFor(() => spool.admin.get(sent) === undefined || spool.admin.get(sent)?.state === "failed", "the plain message done");
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(spool.admin.get(held)?.state, "held");
  assert.deepEqual(failures, [["bob@example.test", 2]]);
  const admin = QueueAdmin.open(dir);
  try {
    assert.equal(admin.release(held), true);
  } finally {
    admin.close();
  }
  await waitFor(() => spool.admin.get(held) === undefined, "the released message delivered");
  assert.deepEqual(failures, [["bob@example.test", 2]], "a delivered message reports nothing");
});
