/**
 * Postfix as a real sending MTA in front of Wardmail: a message injected into
 * a Postfix instance (relay mode, relayhost = Wardmail's MX port,
 * smtp_tls_security_level = may) is relayed over STARTTLS and must land in
 * the recipient's Maildir with the body byte for byte as it was injected
 * (long lines, leading dots, a lone "..", 8-bit UTF-8 with BODY=8BITMIME,
 * trailing white space, control characters and high octets, an empty last
 * line). A recipient Wardmail does not know is refused at RCPT (550 5.1.1),
 * so Postfix bounces it; the bounce goes back to the sender's mailbox, which
 * is itself on Wardmail.
 *
 * Wardmail runs the pregreet test (split greeting, 1 s pause) on every
 * connection: Postfix is never taken for an early talker.
 *
 * One Wardmail and one Postfix, started in before() (Postfix needs
 * Wardmail's port first) and stopped in after().
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { postfixMissing, startPostfix, type PostfixInstance } from "./peers/postfix.ts";
import { peerSkip } from "./helpers/peers.ts";
import { RawSmtpClient } from "./peers/smtp-client.ts";

const SKIP = peerSkip(postfixMissing());

const MAILBOXES = ["relay@example.test", "bounces@example.test", "postmaster@example.test"];

let w: Wardmail | undefined;
let pf: PostfixInstance | undefined;

function servers(): { w: Wardmail; pf: PostfixInstance } {
  assert.ok(w && pf, "servers not started");
  return { w, pf };
}

before(async () => {
  if (SKIP !== false) return;
  // One worker: the relay test does not need more, and it starts faster.
  // The pregreet test at its default pause, on every connection (no memory
  // of passes): Postfix, a real MTA, waits for the whole greeting.
  w = await startWardmail({ mailboxes: MAILBOXES, workers: 1, extra: "[limits]\npregreet_delay = 1000\npregreet_pass_time = 0" });
  pf = await startPostfix({ mode: "relay", relayhost: `[127.0.0.1]:${w.smtpPort}`, tlsToRelay: "may" });
});

after(async () => {
  if (w) assert.ok(!w.output().includes('"msg":"pregreet"'), "Postfix was taken for an early talker");
  await pf?.stop();
  if (w) {
    await w.stop();
    await w.cleanup();
  }
});

// ---------------------------------------------------------------- helpers

function re(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Byte range of everything after the first empty line (CRLF CRLF). */
function bodyOf(raw: Buffer): Buffer {
  const end = raw.indexOf("\r\n\r\n");
  assert.ok(end > 0, `no header/body separator in ${JSON.stringify(raw.toString("latin1").slice(0, 500))}`);
  return raw.subarray(end + 4);
}

/** Header block, folded lines joined (CRLF + WSP → one space). */
function headersOf(raw: Buffer): string {
  const end = raw.indexOf("\r\n\r\n");
  return raw.subarray(0, end + 2).toString("latin1").replace(/\r\n[ \t]+/g, " ");
}

/** Injects one message into Postfix over SMTP; returns Postfix's queue id. */
async function inject(port: number, from: string, to: string, content: Buffer, eightBit: boolean): Promise<string> {
  const c = await RawSmtpClient.connect(port);
  try {
    assert.equal((await c.readReply()).code, 220);
    const ehlo = await c.command("EHLO injector.sender.test");
    assert.equal(ehlo.code, 250, ehlo.raw);
    if (eightBit) assert.ok(ehlo.lines.includes("8BITMIME"), `Postfix did not offer 8BITMIME: ${ehlo.raw}`);
    const mail = await c.command(`MAIL FROM:<${from}>${eightBit ? " BODY=8BITMIME" : ""}`);
    assert.equal(mail.code, 250, mail.raw);
    const rcpt = await c.command(`RCPT TO:<${to}>`);
    assert.equal(rcpt.code, 250, rcpt.raw);
    assert.equal((await c.command("DATA")).code, 354);
    // sendData dot-stuffs (".hidden" goes out as "..hidden") and appends ".\r\n";
    // the content already has CRLF everywhere, so nothing else changes.
    const done = await c.sendData(content.toString("latin1"));
    assert.equal(done.code, 250, done.raw);
    const id = /queued as ([0-9A-Za-z]+)/.exec(done.raw)?.[1];
    assert.ok(id !== undefined, done.raw);
    await c.quit();
    return id;
  } finally {
    c.close();
  }
}

// ---------------------------------------------------------------- the message

const LONG_LINE = Array.from({ length: 998 }, (_, i) => String.fromCharCode(0x21 + (i % 94))).join(""); // 998 printable octets
/** Every octet but NUL, CR and LF: "binary-ish" but legal in an 8BITMIME line. */
const ALL_OCTETS = Buffer.from(Array.from({ length: 255 }, (_, i) => i + 1).filter((b) => b !== 0x0a && b !== 0x0d));

const HEADER = Buffer.from(
  [
    "From: Sender <a@sender.test>",
    "To: <relay@example.test>",
    "Subject: relayed through Postfix",
    "Message-ID: <postfix-relay-1@sender.test>",
    "Date: Mon, 01 Jun 2026 10:00:00 +0000",
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 8bit",
    "",
    "",
  ].join("\r\n"),
  "latin1",
);

const BODY = Buffer.concat([
  Buffer.from("First line of the body.\r\n", "latin1"),
  Buffer.from(`${LONG_LINE}\r\n`, "latin1"),
  Buffer.from(".hidden line that starts with a dot\r\n", "latin1"),
  Buffer.from("..\r\n", "latin1"),
  Buffer.from(".\r\n", "latin1"),
  Buffer.from("Grüße aus Köln, café crème, 日本語のテキスト, emoji 📨✉️\r\n", "utf8"),
  Buffer.from(`${"é".repeat(300)}\r\n`, "utf8"), // a long 8-bit line: 600 octets
  Buffer.from("trailing spaces   \r\n", "latin1"),
  Buffer.from("trailing tab\t\r\n", "latin1"),
  Buffer.from("   leading spaces and a \t tab inside\r\n", "latin1"),
  Buffer.concat([Buffer.from("octets: ", "latin1"), ALL_OCTETS, Buffer.from("\r\n", "latin1")]),
  Buffer.from("From the start of a line (mbox would quote this)\r\n", "latin1"),
  Buffer.from("last text line\r\n", "latin1"),
  Buffer.from("\r\n", "latin1"), // an empty last line
]);

// ---------------------------------------------------------------- tests

describe("Postfix relays to Wardmail", { skip: SKIP }, () => {
  test("over STARTTLS: delivered to the Maildir, body byte-identical, ESMTPS with TLS in Received, Postfix logs status=sent", async () => {
    const { w, pf } = servers();
    const relay = `127.0.0.1[127.0.0.1]:${w.smtpPort}`;
    // The content is what we claim it is: no NUL, no bare CR or LF, no line over 998 octets.
    const lines = BODY.toString("latin1").split("\r\n");
    assert.ok(!BODY.includes(0), "NUL in the body");
    assert.ok(lines.every((l) => !l.includes("\r") && !l.includes("\n") && l.length <= 998));
    assert.ok(lines.some((l) => l.length === 998));

    const pfId = await inject(pf.port, "a@sender.test", "relay@example.test", Buffer.concat([HEADER, BODY]), true);

    const sent = await pf.waitForLog(
      new RegExp(`/smtp\\[\\d+\\]: ${pfId}: to=<relay@example\\.test>, relay=${re(relay)}, .*dsn=2\\.0\\.0, status=sent \\(250 2\\.0\\.0 Ok: queued as (\\S+)\\)`),
      20_000,
    );
    const wardmailId = sent[1] as string;
    const log = await pf.readLog();
    const tlsLine = new RegExp(`/smtp\\[\\d+\\]: (Trusted|Anonymous|Untrusted|Verified) TLS connection established to ${re(relay)}: (TLSv[\\d.]+) with cipher (\\S+)`).exec(log);
    assert.ok(tlsLine, `no TLS line in Postfix's log:\n${log}`);
    const [, , pfVersion, pfCipher] = tlsLine as unknown as [string, string, string, string];

    const files = await w.waitForMail("relay@example.test", 1);
    assert.equal(files.length, 1, `expected one message\n${w.output().slice(-3000)}`);
    const raw = await readFile(files[0] as string);

    // The body, byte for byte.
    const body = bodyOf(raw);
    if (!body.equals(BODY)) {
      assert.equal(body.toString("latin1"), BODY.toString("latin1"), "body differs");
      assert.fail("body differs in bytes");
    }

    // Wardmail's trace header: ESMTPS, the TLS version and cipher Postfix negotiated, the queue id Postfix was told.
    const headers = headersOf(raw);
    assert.ok(headers.startsWith("Return-Path: <a@sender.test>\r\nDelivered-To: relay@example.test\r\nReceived: "), headers);
    const received = headers.split("\r\n").find((l) => l.startsWith("Received: ") && l.includes("(Wardmail)"));
    assert.ok(received !== undefined, headers);
    assert.match(
      received,
      new RegExp(`^Received: from \\S+\\.wardmail\\.test \\(\\[127\\.0\\.0\\.1\\]\\) by mx\\.example\\.test \\(Wardmail\\) with ESMTPS id ${re(wardmailId)} \\(using TLSv1\\.[23] with cipher [A-Z0-9_-]+\\) for <relay@example\\.test>; `),
    );
    assert.ok(received.includes(`(using ${pfVersion} with cipher ${pfCipher})`), `${received}\nPostfix logged ${pfVersion} ${pfCipher}`);
    // Postfix's own Received header sits below ours; the injected headers are all there.
    assert.match(headers, /^Received: from injector\.sender\.test /m);
    assert.match(headers, /^Subject: relayed through Postfix$/m);
    assert.match(headers, /^Message-ID: <postfix-relay-1@sender\.test>$/m);

    await pf.waitForEmptyQueue(10_000);
  });

  test("unknown recipient: 550 5.1.1 at RCPT, Postfix logs status=bounced, and its bounce reaches the sender on Wardmail", async () => {
    const { w, pf } = servers();
    const relay = `127.0.0.1[127.0.0.1]:${w.smtpPort}`;
    const content = Buffer.from("From: <bounces@example.test>\r\nTo: <nobody@example.test>\r\nSubject: to nobody\r\n\r\nno one is here\r\n", "latin1");
    const pfId = await inject(pf.port, "bounces@example.test", "nobody@example.test", content, false);

    await pf.waitForLog(
      new RegExp(
        `/smtp\\[\\d+\\]: ${pfId}: to=<nobody@example\\.test>, relay=${re(relay)}, .*dsn=5\\.1\\.1, status=bounced ` +
          `\\(host ${re(relay.replace(/:\d+$/, ""))} said: 550 5\\.1\\.1 No such user here \\(in reply to RCPT TO command\\)\\)`,
      ),
      20_000,
    );
    // Postfix's non-delivery report goes to the sender, a Wardmail mailbox (Wardmail itself never bounces).
    const files = await w.waitForMail("bounces@example.test", 1, 15_000);
    assert.equal(files.length, 1, `no bounce delivered\n${(await pf.readLog()).split("\n").slice(-20).join("\n")}`);
    const dsn = (await readFile(files[0] as string)).toString("latin1");
    assert.match(dsn, /^Return-Path: <>\r\n/);
    assert.match(dsn, /^Content-Type: multipart\/report; report-type=delivery-status;/m);
    assert.match(dsn, /^Final-Recipient: rfc822; nobody@example\.test\r$/m);
    assert.match(dsn, /^Status: 5\.1\.1\r$/m);
    assert.match(dsn, /^Diagnostic-Code: smtp; 550 5\.1\.1 No such user here\r$/m);
    assert.deepEqual(await w.maildir("nobody@example.test"), []);
    await pf.waitForEmptyQueue(10_000);
  });
});
