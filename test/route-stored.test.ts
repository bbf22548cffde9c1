/**
 * Routing decided once, at queueing, and stored with each recipient
 * (docs/architecture.md, "Routing is decided once"), against a running
 * Wardmail and a real SMTP client (swaks): a message to an alias is accepted
 * and one of the alias's Maildirs cannot be written, so it stays queued; the
 * operator then removes the alias from the config and restarts the server.
 * The queued message still reaches the mailboxes the alias named when it was
 * queued (the stored decision wins), while new mail to the removed alias is
 * refused at RCPT as the new config says.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFile, rm, writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { readMail, startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { requireBinary, swaks, swaksReply, waitForLog } from "./peers/submission.ts";

const ALIAS = '[local.aliases]\n"team@example.test" = ["user@example.test", "other@example.test"]\n';
let w: Wardmail | undefined;

before(() => requireBinary("swaks", ["--version"]));
after(async () => {
  if (w) {
    await w.stop();
    await w.cleanup();
  }
});

test("a queued message to an alias removed from the config before delivery still reaches the alias's stored mailboxes", { timeout: 90_000 }, async () => {
  w = await startWardmail({ workers: 1, extra: `${ALIAS}[queue]\nretry_min = 1\nretry_max = 2\n` });
  // other@'s Maildir cannot be made: a file where its directory should be.
  const blocker = join(w.dataDir, "mail", "example.test", "other");
  await mkdir(join(blocker, ".."), { recursive: true });
  await writeFile(blocker, "not a directory");

  const token = `stored-route-${Date.now()}`;
  const sent = await swaks(["--server", `127.0.0.1:${w.smtpPort}`, "--from", "sender@remote.test", "--to", "team@example.test", "--header", `Subject: ${token}`]);
  assert.equal(swaksReply(sent.out, ".")?.code, 250, sent.out);
  const output = w.output.bind(w);
  assert.ok(await waitForLog(output, "delivery deferred", (l) => l.rcpt === "team@example.test", 20_000), `deferred:\n${w.output().slice(-3000)}`);
  await w.waitForMail("user@example.test", 1);
  // The operator sees the stored route (wardmail queue show --json).
  const list = await w.cli(["queue", "list", "--json", "--config", w.configPath]);
  const [entry] = JSON.parse(list.stdout) as { id: string }[];
  assert.ok(entry, list.stdout + list.stderr);
  const shown = await w.cli(["queue", "show", entry.id, "--json", "--config", w.configPath]);
  const rcpts = (JSON.parse(shown.stdout) as { recipients: { address: string; route?: { kind: string; mailboxes?: { mailbox: string; maildir?: string }[] } }[] }).recipients;
  assert.deepEqual(rcpts.map((r) => [r.address, r.route?.kind, r.route?.mailboxes?.map((m) => `${m.mailbox} ${m.maildir}`)]), [
    ["team@example.test", "local", ["user@example.test mail/example.test/user", "other@example.test mail/example.test/other"]],
  ]);

  // The operator removes the alias and restarts; the Maildir problem is fixed.
  assert.equal(await w.stop(), 0);
  const config = await readFile(w.configPath, "utf8");
  assert.ok(config.includes(ALIAS));
  await writeFile(w.configPath, config.replace(ALIAS, ""));
  await rm(blocker);
  w = await w.restart();

  const got = await w.waitForMail("other@example.test", 1, 20_000);
  assert.match((await readMail(got[0]!)).toString("latin1"), new RegExp(`Subject: ${token}`), "delivered to the target stored when it was queued");
  assert.match((await readMail(got[0]!)).toString("latin1"), /^Return-Path: <sender@remote\.test>\r\nDelivered-To: other@example\.test\r\n/);

  // New mail follows the new config: the alias is gone.
  const late = await swaks(["--server", `127.0.0.1:${w.smtpPort}`, "--from", "sender@remote.test", "--to", "team@example.test", "--quit-after", "RCPT"]);
  assert.equal(swaksReply(late.out, "RCPT TO:")?.code, 550, late.out);
});
