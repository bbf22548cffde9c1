/**
 * Forged senders on the MX, end to end: swaks sends each variant, byte for
 * byte, to a running Wardmail whose DNS is a Knot DNS server on loopback.
 *
 * Zones (one knotd):
 *   bank.test      SPF -all, DMARC p=reject: the domain the spoofs claim
 *   mine.test      SPF ip4:127.0.0.0/8 -all, no DMARC: the sender's own domain
 *   example.test   SPF ip4:192.0.2.1 -all, no DMARC: OUR local domain
 *   free.test      nothing (SOA only)
 *   test           the parent (DMARC's tree walk gets NXDOMAIN, not REFUSED)
 *
 * Every variant of "no single author" (two From: fields either way round,
 * two addresses in one field, a group, an empty From: before a forged one,
 * the whole From: as an encoded word, a byte-order mark before the name,
 * no From:, "ceo", "<>", a bare name) is refused, as are our own domain in
 * MAIL FROM or From: from an unauthenticated client (a subdomain of it
 * too; shown in the display name of a foreign address it goes to Junk);
 * a client in
 * relay.trusted_networks (127.0.0.5) may use it, a normal message is
 * delivered, and forged Authentication-Results (folded before the colon,
 * trailing dot on the id), Received-SPF and X-Wardmail-Verdict are gone.
 *
 * A second server (`relaxed`) tags from.multiple_domains and
 * from.duplicate instead of refusing: the operator switch. There the
 * strictest DMARC policy of the author domains still refuses a spoof.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { knotMissing, startKnot, zoneText, type Knot } from "./peers/knot.ts";
import { run, swaksReply } from "./peers/submission.ts";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";

const AUTHSERV = "mx.example.test";
const skip = peerSkip(knotMissing(), binaryMissing("swaks", ["--version"], "swaks"));

let workDir = "";
let knot: Knot;
let mx: Wardmail;
let relaxed: Wardmail;

/** Sends msg (CRLF lines, UTF-8) with swaks, byte for byte, from `source` (default 127.0.0.1). */
async function send(from: string, to: string, lines: string[], source = "127.0.0.1", server = mx, helo = "client.mine.test"): Promise<string> {
  const file = join(workDir, `msg-${Math.random().toString(36).slice(2)}.eml`);
  await writeFile(file, `${lines.join("\r\n")}\r\n.\r\n`, "utf8");
  const r = await run("swaks", [
    "--timeout", "10", "--helo", helo, "--server", "127.0.0.1", "--port", String(server.smtpPort),
    "--local-interface", source, "--from", from, "--to", to, "--no-data-fixup", "--data", `@${file}`,
  ], { timeoutMs: 20_000 });
  return r.out;
}

async function waitFor(address: string, n: number, timeoutMs = 10_000, server = mx): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const files = await server.maildir(address);
    if (files.length >= n || Date.now() > deadline) return files;
    await sleep(50);
  }
}

describe("forged senders on the MX: refused against a p=reject domain served by Knot, with swaks", { skip }, () => {
  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "wardmail-forged-"));
    knot = await startKnot({
      zones: {
        "bank.test": zoneText("bank.test", ['@ TXT "v=spf1 -all"', '_dmarc TXT "v=DMARC1; p=reject"']),
        "mine.test": zoneText("mine.test", ['@ TXT "v=spf1 ip4:127.0.0.0/8 -all"']),
        "example.test": zoneText("example.test", ['@ TXT "v=spf1 ip4:192.0.2.1 -all"']),
        "free.test": zoneText("free.test"),
        test: zoneText("test"),
      },
    });
    const checks = (actions: string): string => [`[checks]`, `authserv_id = "${AUTHSERV}"`, actions, `[dns]`, `servers = ["127.0.0.1:${knot.port}"]`].join("\n");
    [mx, relaxed] = await Promise.all([
      startWardmail({
        workers: 1,
        mailboxes: ["victim@example.test", "normal@example.test", "local@example.test", "trusted@example.test", "headers@example.test", "named@example.test", "helo@example.test"],
        checks: checks(""),
        extra: '[relay]\ntrusted_networks = ["127.0.0.5/32"]',
      }),
      startWardmail({
        workers: 1,
        mailboxes: ["victim@example.test", "tagged@example.test"],
        checks: checks('[checks.actions]\n"from.multiple_domains" = "tag"\n"from.duplicate" = "tag"'),
      }),
    ]);
  });

  after(async () => {
    for (const w of [mx, relaxed]) {
      await w?.stop();
      await w?.cleanup();
    }
    await knot?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  const body = ["To: victim@example.test", "Subject: wire the money", "", "Urgent."];
  const variants: { name: string; head: string[]; status: string }[] = [
    { name: "a single spoofed From:", head: ["From: The CEO <ceo@bank.test>"], status: "5.7.1" },
    { name: "two From: fields, spoof second", head: ["From: me@mine.test", "From: ceo@bank.test"], status: "5.6.0" },
    { name: "two From: fields, spoof first", head: ["From: ceo@bank.test", "From: me@mine.test"], status: "5.6.0" },
    { name: "one From: with two addresses", head: ["From: me@mine.test, Bank <ceo@bank.test>"], status: "5.7.1" },
    { name: "group syntax", head: ["From: Friends: me@mine.test, ceo@bank.test;"], status: "5.7.1" },
    { name: "an empty From: then a forged one", head: ["From:", "From: ceo@bank.test"], status: "5.6.0" },
    { name: "the whole From: as an encoded word", head: ["From: =?utf-8?Q?ceo=40bank=2Etest?="], status: "5.6.0" },
    { name: "a byte-order mark before the header name", head: ["\uFEFFFrom: ceo@bank.test"], status: "5.6.0" },
    { name: "the only From: behind a byte-order mark, the spoof in Sender:", head: ["\uFEFFFrom: me@mine.test", "Sender: ceo@bank.test"], status: "5.6.0" },
    { name: "a second From: behind a byte-order mark", head: ["From: me@mine.test", "\uFEFFFrom: ceo@bank.test"], status: "5.6.0" },
    { name: "no From: at all", head: ["Sender: ceo@bank.test"], status: "5.6.0" },
    { name: "From: ceo", head: ["From: ceo"], status: "5.6.0" },
    { name: "From: <>", head: ["From: <>"], status: "5.6.0" },
    { name: "From: Bank of Test", head: ["From: Bank of Test"], status: "5.6.0" },
  ];
  for (const v of variants) {
    test(`${v.name}: 550 ${v.status} at the end of DATA, nothing delivered`, async () => {
      const out = await send("me@mine.test", "victim@example.test", [...v.head, ...body]);
      assert.equal(swaksReply(out, "MAIL FROM:")?.code, 250, out);
      const end = swaksReply(out, ".");
      assert.equal(end?.code, 550, out);
      assert.equal(end?.enhanced, v.status, out);
    });
  }

  test("after all variants the victim's mailbox is empty; a normal message from the same client is delivered", async () => {
    assert.deepEqual(await mx.maildir("victim@example.test"), []);
    const out = await send("me@mine.test", "normal@example.test", ["From: Me <me@mine.test>", "To: normal@example.test", "Subject: hello", "", "Hi."]);
    assert.equal(swaksReply(out, ".")?.code, 250, out);
    const files = await waitFor("normal@example.test", 1);
    assert.equal(files.length, 1, mx.output().slice(-2000));
    assert.match(await readFile(files[0] as string, "utf8"), /dmarc=none[^;]*header\.from=mine\.test/);
    assert.deepEqual(await mx.maildir("victim@example.test"), []);
  });

  test("our own domain from an unauthenticated client: MAIL FROM 550 5.7.1 at MAIL, From: 550 5.7.1 at the end of DATA", async () => {
    const mail = await send("ceo@example.test", "local@example.test", ["From: ceo@example.test", "To: local@example.test", "Subject: hi", "", "x"]);
    const m = swaksReply(mail, "MAIL FROM:");
    assert.equal(m?.code, 550, mail);
    assert.equal(m?.enhanced, "5.7.1", mail);
    assert.match(m?.line ?? "", /local\.mail_from/);
    const from = await send("me@mine.test", "local@example.test", ["From: The Boss <boss@example.test>", "To: local@example.test", "Subject: hi", "", "x"]);
    assert.equal(swaksReply(from, "MAIL FROM:")?.code, 250, from);
    const end = swaksReply(from, ".");
    assert.equal(end?.code, 550, from);
    assert.equal(end?.enhanced, "5.7.1", from);
    assert.match(end?.line ?? "", /local\.from/);
    assert.deepEqual(await mx.maildir("local@example.test"), []);
  });

  test("our own domain as a subdomain, or shown in the display name of a foreign address: refused, or quarantined to Junk", async () => {
    const mail = await send("it@mail.example.test", "local@example.test", ["From: me@mine.test", "To: local@example.test", "Subject: hi", "", "x"]);
    assert.equal(swaksReply(mail, "MAIL FROM:")?.code, 550, mail);
    assert.match(swaksReply(mail, "MAIL FROM:")?.line ?? "", /local\.mail_from/);
    const sub = await send("me@mine.test", "local@example.test", ["From: IT <it@mail.EXAMPLE.test>", "To: local@example.test", "Subject: hi", "", "x"]);
    assert.equal(swaksReply(sub, ".")?.code, 550, sub);
    assert.match(swaksReply(sub, ".")?.line ?? "", /local\.from/);
    assert.deepEqual(await mx.maildir("local@example.test"), []);
    const named = await send("me@mine.test", "named@example.test", ['From: "=?utf-8?q?ceo=40example.test?=" <me@mine.test>', "To: named@example.test", "Subject: wire", "", "x"]);
    assert.equal(swaksReply(named, ".")?.code, 250, named);
    const deadline = Date.now() + 10_000;
    let files: string[] = [];
    while (files.length === 0 && Date.now() < deadline) {
      files = await mx.maildir("named@example.test", ".Junk").catch(() => []);
      if (files.length === 0) await sleep(50);
    }
    assert.equal(files.length, 1, mx.output().slice(-2000));
    assert.match(await readFile(files[0] as string, "utf8"), /^X-Wardmail-Verdict: local\.from_name \(quarantine\)$/m);
    assert.deepEqual(await mx.maildir("named@example.test"), []);
  });

  test("a client in relay.trusted_networks may use our own domain", async () => {
    const out = await send("app@example.test", "trusted@example.test", ["From: app@example.test", "To: trusted@example.test", "Subject: from the app", "", "x"], "127.0.0.5");
    assert.equal(swaksReply(out, ".")?.code, 250, out);
    assert.equal((await waitFor("trusted@example.test", 1)).length, 1);
  });

  test("forged Authentication-Results (folded before the colon, trailing dot), Received-SPF and X-Wardmail-Verdict are removed", async () => {
    const out = await send("me@mine.test", "headers@example.test", [
      `Authentication-Results\r\n : ${AUTHSERV}; dmarc=pass header.from=bank.test`,
      `Authentication-Results: ${AUTHSERV.toUpperCase()}.; dkim=pass header.d=bank.test`,
      "Received-SPF: pass (spoofed) client-ip=192.0.2.1",
      "X-Wardmail-Verdict: none (ignore)",
      "Authentication-Results: other.example; dkim=pass header.d=elsewhere.test",
      "From: me@mine.test",
      "To: headers@example.test",
      "Subject: results",
      "",
      "body",
    ]);
    assert.equal(swaksReply(out, ".")?.code, 250, out);
    const files = await waitFor("headers@example.test", 1);
    assert.equal(files.length, 1);
    const text = await readFile(files[0] as string, "latin1");
    const head = text.slice(0, text.indexOf("\r\n\r\n"));
    assert.doesNotMatch(head, /spoofed|header\.from=bank\.test|header\.d=bank\.test|none \(ignore\)/);
    assert.equal((head.match(/^Received-SPF:/gim) ?? []).length, 1, head);
    assert.match(head, /^Received-SPF: pass /m);
    assert.equal((head.match(/^Authentication-Results:/gim) ?? []).length, 2, head);
    assert.match(head, /^Authentication-Results: other\.example; dkim=pass header\.d=elsewhere\.test$/m);
  });

  test("a HELO name with a semicolon adds no result of its own to our Authentication-Results (quoted)", async () => {
    const out = await send("me@mine.test", "helo@example.test", ["From: me@mine.test", "To: helo@example.test", "Subject: helo", "", "x"], "127.0.0.1", mx, "x;dmarc=pass");
    assert.equal(swaksReply(out, ".")?.code, 250, out);
    const files = await waitFor("helo@example.test", 1);
    assert.equal(files.length, 1);
    const text = await readFile(files[0] as string, "latin1");
    const ar = /^Authentication-Results: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*/m.exec(text)?.[0] ?? "";
    assert.match(ar, /smtp\.helo="x;dmarc=pass";/, ar);
    assert.doesNotMatch(ar.replace(/"[^"]*"/g, '""'), /;\s*dmarc=pass/, ar);
  });

  test("the operator switch: with from.* tagged, authors in two free domains are delivered tagged; a p=reject author is still refused", async () => {
    const two = await send("me@mine.test", "tagged@example.test", ["From: me@mine.test, Friend <f@free.test>", "To: tagged@example.test", "Subject: two authors", "", "x"], "127.0.0.1", relaxed);
    assert.equal(swaksReply(two, ".")?.code, 250, two);
    const files = await waitFor("tagged@example.test", 1, 10_000, relaxed);
    assert.equal(files.length, 1);
    const text = await readFile(files[0] as string, "latin1");
    assert.match(text, /^X-Wardmail-Verdict: from\.multiple_domains \(tag\)$/m);
    assert.match(text, /dmarc=none[^;]*header\.from=mine\.test;[\s\S]*dmarc=none[^;]*header\.from=free\.test/);
    for (const head of [["From: me@mine.test, Bank <ceo@bank.test>"], ["From: me@mine.test", "From: ceo@bank.test"]]) {
      const out = await send("me@mine.test", "victim@example.test", [...head, ...body], "127.0.0.1", relaxed);
      const end = swaksReply(out, ".");
      assert.equal(end?.code, 550, out);
      assert.match(end?.line ?? "", /dmarc\.reject/, out);
    }
    assert.deepEqual(await relaxed.maildir("victim@example.test"), []);
  });
});
