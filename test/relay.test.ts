/**
 * The open-relay battery: address tricks sent to the MX port without AUTH,
 * none of which may be accepted. Each RCPT reply must be 4xx/5xx, with the
 * code the relay policy documents (docs/configuration.md, [relay]):
 * - %, ! and quoted local parts, address literals: 550 5.7.1 (refused, not interpreted);
 * - source routes: 501 5.1.3; several @, trailing dots, bad characters: 501 5.1.7;
 * - a domain that is not local (however close to one): 554 5.7.1;
 * - a local domain but no such user: 550 5.1.1.
 * Most are sent with swaks, as a whole message (so an accepted recipient
 * would end up queued; swaks sends DATA only when a recipient was accepted),
 * and the RCPT reply is read from its transcript; those swaks cannot send as
 * they are (commas split its --to, raw CR/LF, UTF-8 with SMTPUTF8) go over
 * a raw socket. Positive controls show
 * the local domain is matched case-insensitively and delivered locally, and
 * at the end the queue holds nothing for a remote recipient and no Maildir
 * but the controls' exists.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { domainToASCII } from "node:url";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { RawSmtpClient } from "./peers/smtp-client.ts";
import { mailWith, queueList, requireBinary, swaks, swaksReply } from "./peers/submission.ts";

const LOCAL_DOMAINS = ["example.test", "localhost"];

let w: Wardmail | undefined;

function server(): Wardmail {
  assert.ok(w, "server not started");
  return w;
}

before(async () => {
  requireBinary("swaks", ["--version"]);
  w = await startWardmail();
});

after(async () => {
  if (w === undefined) return;
  await w.stop();
  await w.cleanup();
});

interface Trick {
  /** What the trick tries. */
  readonly what: string;
  readonly to: string;
  /** "550 5.7.1": code and enhanced code expected at RCPT. */
  readonly expect: string;
}

const ROUTING = "550 5.7.1"; // % ! quoted local part, address literal
const RELAY = "554 5.7.1";
const NO_USER = "550 5.1.1";
const SYNTAX = "501 5.1.7";
const ROUTE = "501 5.1.3";

const cyrillicA = "\u0430";
const TRICKS: readonly Trick[] = [
  { what: "% hack into a local domain", to: "user%remote.test@example.test", expect: ROUTING },
  { what: "% hack, no domain", to: "user%remote.test", expect: SYNTAX },
  { what: "% hack, quoted", to: '"user%remote.test"@example.test', expect: ROUTING },
  { what: "% hack to postmaster", to: "postmaster%remote.test@example.test", expect: ROUTING },
  { what: "percent-encoded @ in the local part", to: "user%40remote.test@example.test", expect: ROUTING },
  { what: "bang path into a local domain", to: "remote.test!user@example.test", expect: ROUTING },
  { what: "bang path, no domain", to: "remote.test!user", expect: SYNTAX },
  { what: "source route through a local domain", to: "@example.test:user@remote.test", expect: ROUTE },
  { what: "empty local part", to: "@example.test", expect: ROUTE },
  { what: "two @, remote first", to: "user@remote.test@example.test", expect: SYNTAX },
  { what: "two @, local first", to: "user@example.test@remote.test", expect: SYNTAX },
  { what: "quoted local part hiding an @", to: '"user@remote.test"@example.test', expect: ROUTING },
  { what: "quoted local part to a remote domain", to: '"user"@remote.test', expect: ROUTING },
  { what: "whole address quoted", to: '"user@example.test"', expect: SYNTAX },
  { what: "backslash-escaped @", to: "user\\@remote.test@example.test", expect: SYNTAX },
  { what: "IPv4 address literal", to: "user@[127.0.0.1]", expect: ROUTING },
  { what: "IPv6 address literal", to: "user@[IPv6:::1]", expect: ROUTING },
  { what: "domain in brackets", to: "user@[remote.test]", expect: SYNTAX },
  { what: "bare IPv4 as a domain", to: "user@127.0.0.1", expect: RELAY },
  { what: "trailing dot on the local domain", to: "user@example.test.", expect: SYNTAX },
  { what: "trailing dot on a remote domain", to: "user@remote.test.", expect: SYNTAX },
  { what: "mixed-case local domain with a trailing dot", to: "USER@Example.Test.", expect: SYNTAX },
  { what: "local domain as a prefix of a remote one", to: "user@EXAMPLE.TEST.remote.test", expect: RELAY },
  { what: "a remote domain sharing the local domain's suffix", to: "user@notexample.test", expect: RELAY },
  { what: "subdomain of a local domain", to: "user@sub.example.test", expect: RELAY },
  { what: "localhost as a label of a remote domain", to: "user@localhost.remote.test", expect: RELAY },
  { what: "percent-encoded @ in the domain", to: "user@example%40remote.test", expect: SYNTAX },
  { what: "% in the domain", to: "user@remote.test%example.test", expect: SYNTAX },
  { what: "=40 (quoted-printable @) in the local part", to: "user=40remote.test@example.test", expect: NO_USER },
  { what: "postmaster of a remote domain", to: "postmaster@remote.test", expect: RELAY },
  { what: "mixed-case remote domain", to: "User@Remote.Test", expect: RELAY },
  { what: "IDN A-label of a remote domain", to: `user@${domainToASCII("m\u00fcnchen.test")}`, expect: RELAY },
  { what: "A-label of a look-alike of the local domain", to: `user@${domainToASCII(`ex${cyrillicA}mple.test`)}`, expect: RELAY },
  { what: "the plain relay attempt", to: "user@remote.test", expect: RELAY },
  { what: "a local domain, unknown user", to: "user@localhost", expect: NO_USER },
  { what: "a long remote address (under 256)", to: `${"a".repeat(64)}@${"b".repeat(60)}.${"c".repeat(60)}.${"d".repeat(50)}.remote.test`, expect: RELAY },
  { what: "an address over 256 octets", to: `${"a".repeat(64)}@${`${"b".repeat(60)}.`.repeat(4)}remote.test`, expect: "501 5.1.7" },
];

describe("relay battery with swaks (MX port, no AUTH)", () => {
  test("the battery has at least 30 tricks, no two alike", () => {
    assert.ok(TRICKS.length >= 30, String(TRICKS.length));
    assert.equal(new Set(TRICKS.map((t) => t.to)).size, TRICKS.length);
  });

  for (const t of TRICKS) {
    test(`${t.what}: RCPT TO:<${t.to.length > 60 ? `${t.to.slice(0, 57)}...` : t.to}> → ${t.expect}`, async () => {
      const s = server();
      const r = await swaks(["--server", `127.0.0.1:${s.smtpPort}`, "--from", "x@sender.test", "--to", t.to]);
      // swaks sent the address exactly as given (one recipient, not split or rewritten).
      assert.ok(r.out.includes(` -> RCPT TO:<${t.to}>\n`), r.out);
      assert.equal(r.out.match(/ -> RCPT TO:/g)?.length, 1, r.out);
      const reply = swaksReply(r.out, "RCPT TO:");
      assert.ok(reply, `no RCPT reply in\n${r.out}`);
      assert.ok(reply.code >= 400 && reply.code < 600, `accepted: ${reply.line}`);
      assert.equal(`${reply.code} ${reply.enhanced}`, t.expect, reply.line);
      // swaks exits 24 when no recipient was accepted, and sends no DATA.
      assert.equal(r.code, 24, r.out);
      assert.doesNotMatch(r.out, / -> DATA/);
    });
  }
});

describe("relay tricks over a raw socket", () => {
  const RAW: readonly { what: string; line: string; smtputf8?: boolean; expect: string }[] = [
    { what: "source route list (a comma would split swaks' --to)", line: "RCPT TO:<@a.test,@b.test:u@remote.test>", expect: ROUTE },
    { what: "Cyrillic look-alike of the local domain (SMTPUTF8)", line: `RCPT TO:<user@ex${cyrillicA}mple.test>`, smtputf8: true, expect: RELAY },
    { what: "Cyrillic look-alike without SMTPUTF8", line: `RCPT TO:<user@ex${cyrillicA}mple.test>`, expect: "553 5.6.7" },
    { what: "fullwidth @ in the local part (SMTPUTF8)", line: "RCPT TO:<user\uff20remote.test@example.test>", smtputf8: true, expect: NO_USER },
    { what: "bare LF splitting the address", line: "RCPT TO:<victim@remote.test\n@example.test>", expect: "500 5.5.2" },
    { what: "bare CR splitting the address", line: "RCPT TO:<victim@remote.test\r@example.test>", expect: "500 5.5.2" },
    { what: "bare LF smuggling a second RCPT", line: "RCPT TO:<user@example.test>\nRCPT TO:<victim@remote.test>", expect: "500 5.5.2" },
    { what: "NUL inside the address", line: "RCPT TO:<victim@remote.test\0@example.test>", expect: "500 5.5.2" },
    { what: "no angle brackets", line: "RCPT TO:victim@remote.test", expect: SYNTAX },
    { what: "a second path as a parameter", line: "RCPT TO:<user@example.test> <victim@remote.test>", expect: "501 5.5.4" },
    { what: "TAB before a parameter", line: "RCPT TO:<victim@remote.test>\tNOTIFY=NEVER", expect: SYNTAX },
  ];

  for (const t of RAW) {
    test(`${t.what} → ${t.expect}`, async () => {
      const s = server();
      const c = await RawSmtpClient.connect(s.smtpPort);
      try {
        assert.equal((await c.readReply()).code, 220);
        assert.equal((await c.command("EHLO client.test")).code, 250);
        assert.equal((await c.command(`MAIL FROM:<x@sender.test>${t.smtputf8 ? " SMTPUTF8" : ""}`)).code, 250);
        c.write(Buffer.from(`${t.line}\r\n`, "utf8"));
        const r = await c.readReply();
        assert.ok(r.code >= 400, `accepted: ${r.raw}`);
        assert.equal(r.raw.slice(0, 9), t.expect, r.raw);
        // Whatever came of it, no recipient was accepted: DATA is refused (no 354), or the session is over.
        const data = await c.command("DATA").catch(() => undefined);
        if (data !== undefined) assert.ok(data.code >= 500, `DATA after the trick: ${data.raw}`);
      } finally {
        c.close();
      }
    });
  }
});

describe("positive controls and the aftermath", () => {
  const sends = [
    { to: "user@example.test", mailbox: "user@example.test" },
    { to: "USER@Example.Test", mailbox: "user@example.test" },
    { to: "postmaster", mailbox: "postmaster@example.test" },
  ];
  for (const c of sends) {
    test(`RCPT TO:<${c.to}> → 250, delivered to ${c.mailbox}'s Maildir (local, not relayed)`, async () => {
      const s = server();
      const token = `control-${c.to.replace(/\W/g, "_")}-${Math.random().toString(36).slice(2, 8)}`;
      const r = await swaks(["--server", `127.0.0.1:${s.smtpPort}`, "--from", "x@sender.test", "--to", c.to, "--header", `Subject: ${token}`]);
      assert.equal(r.code, 0, r.out);
      assert.match(swaksReply(r.out, "RCPT TO:")?.line ?? "", /^250 2\.1\.5 /);
      const text = await mailWith(s, c.mailbox, token);
      assert.match(text, new RegExp(`^Delivered-To: ${c.mailbox.replace(/\./g, "\\.")}\r$`, "mi"));
    });
  }

  test("afterwards: no queued message for a remote recipient, no Maildir but the controls'", async () => {
    const s = server();
    const isLocal = (a: string): boolean => a.toLowerCase() === "postmaster" || LOCAL_DOMAINS.includes(a.slice(a.lastIndexOf("@") + 1).toLowerCase());
    const queue = await queueList(s);
    const remote = queue.filter((e) => e.to.some((a) => !isLocal(a)));
    assert.deepEqual(remote, []);
    const mailRoot = join(s.dataDir, "mail");
    const boxes: string[] = [];
    for (const domain of await readdir(mailRoot)) for (const local of await readdir(join(mailRoot, domain))) boxes.push(`${local}@${domain}`);
    assert.deepEqual(boxes.sort(), ["postmaster@example.test", "user@example.test"]);
    assert.equal((await s.maildir("user@example.test")).length, 2);
  });
});
