// Integration test of the Postfix stack peer (test/peers/milters.ts, run by
// bench/stack.ts): a real Postfix with Debian's opendkim and opendmarc as
// milters and policyd-spf as its policy service, resolving against a Knot
// on loopback, delivers a dkimsign-signed message into its virtual Maildir
// with spf=pass, dkim=pass and dmarc=pass; the same message with its body
// changed gets dkim=fail, so the milters really verify.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { peerSkip, rootMissing } from "../helpers/peers.ts";
import { knotMissing, startKnot } from "./knot.ts";
import { port53Address, stackMissing, startPostfixStack, writeResolvConf } from "./milters.ts";
import { postfixMissing } from "./postfix.ts";
import { isAlive } from "./procs.ts";
import { DKIMSIGN, makeSignedMessage } from "./signed-message.ts";
import { sendOneMessage } from "./smtp-client.ts";

const SKIP = peerSkip(
  rootMissing("Postfix and mount namespaces"),
  postfixMissing(),
  knotMissing(),
  stackMissing(),
  existsSync(DKIMSIGN) ? undefined : `${DKIMSIGN} missing: install the Debian package python3-dkim (scripts/install-peers.sh installs every test peer)`,
);
const TO = "sink@bench.test";
const AUTHSERV = "mx.stack.test";

/** The Authentication-Results fields (unfolded) of a stored message. */
function authResults(raw: Buffer): string[] {
  const text = raw.toString("latin1").replace(/\r\n/g, "\n");
  const head = text.slice(0, text.indexOf("\n\n"));
  return head
    .replace(/\n[ \t]+/g, " ")
    .split("\n")
    .filter((h) => /^authentication-results:/i.test(h));
}

void test("Postfix with opendkim, opendmarc and policyd-spf against Knot: spf, dkim and dmarc pass; a changed body fails DKIM", { skip: SKIP, timeout: 120_000 }, async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "wm-milters-test-"));
  await chmod(dir, 0o755); // policyd-spf reads its config here as its own user
  t.after(() => rm(dir, { recursive: true, force: true }));
  const message = await makeSignedMessage(dir, { size: 2000, to: TO, subject: "stack peer test", messageId: "milters-test", domain: "sender.example" });
  const dnsAddr = port53Address();
  const knot = await startKnot({ zones: message.zones, extraListen: [`${dnsAddr}@53`] });
  t.after(() => knot.stop());
  const stack = await startPostfixStack({ knotPort: knot.port, resolvConf: await writeResolvConf(dir, dnsAddr), authservId: AUTHSERV, dir, mailboxes: [TO] });
  t.after(() => stack.stop());
  const pf = stack.postfix;

  const signed = await readFile(message.file, "latin1");
  const send = (body: string) => sendOneMessage({ port: pf.port, helo: message.helo, from: message.from, to: [TO], body });
  const good = await send(signed);
  assert.equal(good.at(-2)?.code, 250);
  const changed = signed.replace("lorem ipsum", "LOREM IPSUM CHANGED");
  assert.notEqual(changed, signed);
  await send(changed);

  const stored = await pf.waitForMailbox(TO, 2, 60_000);
  assert.equal(stored.length, 2, "both messages delivered into the Maildir");
  const changedOne = (m: Buffer): boolean => m.toString("latin1").includes("LOREM IPSUM CHANGED");
  const ours = (fields: string[]): string => fields.filter((f) => f.includes(`: ${AUTHSERV};`)).join("\n");

  const passed = ours(authResults(stored.find((m) => !changedOne(m))!));
  assert.match(passed, /\bspf=pass\b.*smtp\.mailfrom=sender\.example/, "policyd-spf's result");
  assert.match(passed, /\bdkim=pass\b.*header\.d=sender\.example/, "opendkim's result");
  assert.match(passed, /\bdmarc=pass\b.*header\.from=sender\.example/, "opendmarc's result");

  const failed = ours(authResults(stored.find(changedOne)!));
  assert.match(failed, /\bdkim=fail\b/, "opendkim verified the changed body and failed it");
  assert.match(failed, /\bspf=pass\b/);

  // Stopping takes every daemon down.
  const pids = [pf.masterPid, ...stack.milters.map((m) => m.pid)].filter((p): p is number => p !== undefined);
  await stack.stop();
  for (const pid of pids) assert.equal(isAlive(pid), false, `pid ${pid} gone`);
});
