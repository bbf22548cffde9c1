// Integration test of the Postfix peer helper: a real Postfix on loopback.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { postfixMissing, startPostfix, type PostfixInstance } from "./postfix.ts";
import { peerSkip } from "../helpers/peers.ts";
import { canConnect, freePort } from "./ports.ts";
import { isAlive } from "./procs.ts";
import { sendOneMessage } from "./smtp-client.ts";

const SKIP = peerSkip(postfixMissing());

const body = "From: <a@client.test>\r\nTo: <sink@bench.test>\r\nSubject: peer test\r\n\r\nhello\r\n.leading dot\r\n";

void test("discard-mode Postfix accepts one message over raw SMTP and stops cleanly", { skip: SKIP }, async (t) => {
  const pf = await startPostfix({ mode: "discard" });
  t.after(() => pf.stop());

  const replies = await sendOneMessage({ port: pf.port, from: "sender@bench.test", to: ["sink@bench.test"], body });
  assert.deepEqual(
    replies.map((r) => r.code),
    [220, 250, 250, 250, 354, 250, 221],
  );
  assert.match(replies[5]!.lines[0]!, /queued as [0-9A-Z]+/);

  // The message was queued, then discarded by the discard transport.
  await pf.waitForLog(/\/discard\[\d+\]: [0-9A-Z]+: to=<sink@bench\.test>.*status=sent/, 20_000);
  await pf.waitForEmptyQueue(20_000);
  await pf.waitForLog(/\/smtpd\[\d+\]: disconnect from .* ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5/, 10_000);
  const log = await pf.readLog();
  // (startPostfix's readiness probe is one more connection, without a transaction.)
  assert.equal(log.match(/\/smtpd\[\d+\]: disconnect from .* mail=1/g)?.length, 1);
  assert.equal(log.match(/\/cleanup\[\d+\]: [0-9A-Z]+: message-id=/g)?.length, 1);

  const { dir, port, masterPid } = pf;
  await pf.stop();
  assert.equal(existsSync(dir), false, "temp dir removed");
  assert.equal(await canConnect(port), false, "listener closed");
  if (masterPid !== undefined) assert.equal(isAlive(masterPid), false, "master gone");
});

void test("two instances at once: relay-mode Postfix relays to a discard-mode Postfix", { skip: SKIP }, async (t) => {
  const started: PostfixInstance[] = [];
  t.after(async () => {
    for (const p of started) await p.stop();
  });
  // Start both at once (the sink's port is chosen first so the relay can point at it).
  const sinkPort = await freePort();
  const results = await Promise.allSettled([
    startPostfix({ mode: "discard", port: sinkPort }),
    startPostfix({ mode: "relay", relayhost: `[127.0.0.1]:${sinkPort}`, tlsToRelay: "none" }),
  ]);
  for (const r of results) if (r.status === "fulfilled") started.push(r.value);
  for (const r of results) if (r.status === "rejected") throw r.reason;
  const [sink, relay] = started as [PostfixInstance, PostfixInstance];
  assert.notEqual(sink.dir, relay.dir);
  assert.notEqual(sink.syslogName, relay.syslogName);

  await sendOneMessage({ port: relay.port, from: "sender@client.test", to: ["someone@remote.test"], body });
  await relay.waitForLog(/\/smtp\[\d+\]: [0-9A-Z]+: to=<someone@remote\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+.*status=sent/, 30_000);
  await sink.waitForLog(/\/discard\[\d+\]: [0-9A-Z]+: to=<someone@remote\.test>.*status=sent/, 30_000);
});
