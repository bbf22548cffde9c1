import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../config/index.ts";
import { Spool } from "../queue/index.ts";
import { captureLogger, tempDir } from "../../test/helpers/queue.ts";
import { MessageSink } from "./index.ts";

function setup() {
  const { dir, cleanup } = tempDir();
  const config = parseConfig(
    `[server]\ndata_dir = "${dir}"\nhostname = "mx.wardmail.test"\n[local]\ndomains = ["example.test"]\nmailboxes = ["user@example.test"]\n[local.aliases]\n"fwd@example.test" = ["user@example.test", "far@elsewhere.test"]\n"team@example.test" = ["user@example.test"]\n`,
    { file: `${dir}/w.toml`, env: {}, cwd: dir },
  );
  const spool = Spool.open({ dataDir: dir, shard: 0, logger: captureLogger().logger });
  const sink = new MessageSink({ spool, shard: 0, hostname: "mx.wardmail.test", authservId: "mx.wardmail.test", local: config.local, now: () => Date.UTC(2026, 11, 7) });
  return { sink, spool, done: () => (spool.close(), cleanup()) };
}

const session = { sessionId: "s1", clientIp: "192.0.2.7", clientPort: 4000, helo: "client.test", protocol: "ESMTPS", listener: "smtp" };
const content = Buffer.from("Authentication-Results: mx.wardmail.test; dkim=pass\r\nFrom: a@b.test\r\nSubject: hi\r\n\r\nbody\r\n");

test("SMTP origin: aliases to other domains expanded once (ORCPT kept), our Received on top, forged Authentication-Results removed", async () => {
  const { sink, spool, done } = setup();
  try {
    const t = sink.begin({ mailFrom: "a@b.test", smtputf8: false }, { kind: "smtp", session });
    t.add({ address: "fwd@example.test", dsn: {} });
    t.add({ address: "team@example.test", dsn: {} });
    t.add({ address: "USER@example.test", dsn: {} });
    assert.equal(t.forwards, true);
    const { id, envelope } = await t.commit(content, { head: "X-Check: 1\r\n" });
    // fwd → user + far (ORCPT the alias); team stays (purely local: expands at delivery); USER@ is user@ again.
    assert.deepEqual(envelope.recipients.map((r) => [r.address, r.dsn.orcpt]), [["user@example.test", "rfc822;fwd@example.test"], ["far@elsewhere.test", "rfc822;fwd@example.test"], ["team@example.test", undefined]]);
    const stored = spool.admin.get(id);
    const text = stored?.content.toString("latin1") ?? "";
    assert.match(text, new RegExp(`^Received: from client\\.test \\(\\[192\\.0\\.2\\.7\\]\\)\\r\\n\\tby mx\\.wardmail\\.test \\(Wardmail\\) with ESMTPS id ${id};`));
    assert.match(text, /\r\nX-Check: 1\r\nFrom: a@b\.test\r\n/);
    assert.doesNotMatch(text, /Authentication-Results/);
    assert.equal(stored?.received.clientIp, "192.0.2.7");
  } finally {
    done();
  }
});

test("local origin (DSN): queued as built, no client address made up, no Received added", async () => {
  const { sink, spool, done } = setup();
  try {
    const t = sink.begin({ mailFrom: "", smtputf8: false }, { kind: "local", source: "dsn", ref: "q1" });
    t.add({ address: "user@example.test", dsn: { notify: ["NEVER"] } });
    assert.equal(t.forwards, false);
    const { id } = await t.commit(content);
    const stored = spool.admin.get(id);
    assert.deepEqual(stored?.content, content);
    assert.equal(stored?.received.clientIp, "");
    assert.equal(stored?.received.listener, "dsn");
    assert.equal(stored?.received.sessionId, "dsn-q1");
  } finally {
    done();
  }
});

test("a transaction commits once; an aborted one or one without recipients never reaches the queue", async () => {
  const { sink, spool, done } = setup();
  try {
    const a = sink.begin({ mailFrom: "a@b.test", smtputf8: false }, { kind: "smtp", session });
    a.add({ address: "user@example.test", dsn: {} });
    a.abort();
    await assert.rejects(a.commit(content), /already aborted/);
    assert.throws(() => a.add({ address: "user@example.test", dsn: {} }), /already aborted/);
    const empty = sink.begin({ mailFrom: "a@b.test", smtputf8: false }, { kind: "smtp", session });
    await assert.rejects(empty.commit(content), /without recipients/);
    const b = sink.begin({ mailFrom: "a@b.test", smtputf8: false }, { kind: "smtp", session });
    b.add({ address: "user@example.test", dsn: {} });
    await b.commit(content);
    await assert.rejects(b.commit(content), /already committed/);
    assert.equal(spool.admin.counts().queued ?? 0, 1);
  } finally {
    done();
  }
});
