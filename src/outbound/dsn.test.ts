/**
 * Delivery status notifications: build then parse back (per-message and
 * per-recipient fields, the field set of RFC 3464), RET=FULL vs HDRS and
 * the limits on returning the whole message, ENVID and ORCPT kept, no DSN
 * to <>, hostile values unable to add a header or a MIME part, 7-bit
 * output, and Python's email parser reading the result as a
 * multipart/report with three parts.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MAX_RETURNED_CONTENT, buildDsn, headerSection, type BuiltDsn, type DsnOptions, type DsnRecipient } from "./dsn.ts";
import { DsnParseError, parseDsn } from "./dsn-parse.ts";
import { pythonMissing, runPython } from "../../test/helpers/dkim.ts";
import { peerSkip } from "../../test/helpers/peers.ts";

const ORIGINAL = Buffer.from(
  [
    "Received: from client.example.net by mx.example.com",
    "From: Alice <alice@example.net>",
    "To: bob@example.org, carol@example.org",
    "Subject: Lunch?",
    "Message-ID: <1@example.net>",
    "",
    "Shall we have lunch?",
    "",
  ].join("\r\n"),
);
const ARRIVAL = new Date("2026-11-27T10:00:00Z");
const NOW = new Date("2026-11-27T12:00:00Z");

const FAILED: DsnRecipient = {
  address: "bob@example.org",
  orcpt: "rfc822;Bob@Example.org",
  action: "failed",
  status: "5.1.1",
  remoteMta: "mx.example.org",
  diagnostic: "smtp; 550 5.1.1 <bob@example.org>: No such user",
  lastAttempt: new Date("2026-11-27T11:59:00Z"),
};
const DELAYED: DsnRecipient = {
  address: "carol@example.org",
  action: "delayed",
  status: "4.4.1",
  diagnostic: "connection to mx.example.org timed out",
  lastAttempt: new Date("2026-11-27T11:58:00Z"),
  willRetryUntil: new Date("2026-12-02T10:00:00Z"),
};

function dsn(over: Partial<DsnOptions> = {}): BuiltDsn {
  const d = buildDsn({
    reportingMta: "mx.example.com",
    from: "MAILER-DAEMON@mx.example.com",
    to: "alice@example.net",
    envid: "QQ314159",
    arrivalDate: ARRIVAL,
    recipients: [FAILED],
    original: ORIGINAL,
    ret: undefined,
    now: NOW,
    ...over,
  });
  assert.ok(d);
  return d;
}

/** CRLF only, every line at most 998 bytes, and (unless allowed) 7-bit. */
function assertWellFormed(content: Buffer, allow8bit = false): void {
  const text = content.toString("latin1");
  assert.ok(!/\r(?!\n)|(?<!\r)\n/.test(text), "bare CR or LF");
  assert.ok(!text.includes("\0"), "NUL");
  for (const line of text.split("\r\n")) assert.ok(line.length <= 998, `line of ${line.length}`);
  if (!allow8bit) assert.ok(!content.some((b) => b > 0x7f), "8-bit byte");
}

const RFC3464_MESSAGE_FIELDS = ["original-envelope-id", "reporting-mta", "dsn-gateway", "received-from-mta", "arrival-date"];
const RFC3464_RECIPIENT_FIELDS = ["original-recipient", "final-recipient", "action", "status", "remote-mta", "diagnostic-code", "last-attempt-date", "final-log-id", "will-retry-until"];

describe("buildDsn", () => {
  test("a bounce: headers, the three parts, and every field read back", () => {
    const d = dsn();
    assert.equal(d.mailFrom, "");
    assert.equal(d.rcptTo, "alice@example.net");
    assert.equal(d.body, "7BIT");
    assert.equal(d.smtputf8, false);
    assertWellFormed(d.content);
    const p = parseDsn(d.content);
    assert.deepEqual(Object.keys(p.headers), ["from", "to", "subject", "date", "message-id", "auto-submitted", "mime-version", "content-type"]);
    assert.equal(p.headers.from, "Mail Delivery System <MAILER-DAEMON@mx.example.com>");
    assert.equal(p.headers.to, "<alice@example.net>");
    assert.equal(p.headers.subject, "Undelivered Mail Returned to Sender");
    assert.equal(p.headers.date, "Fri, 27 Nov 2026 12:00:00 +0000");
    assert.match(p.headers["message-id"] ?? "", /^<[a-z0-9]+\.[0-9a-f]{16}@mx\.example\.com>$/);
    assert.equal(p.headers["auto-submitted"], "auto-replied");
    assert.equal(p.reportType, "delivery-status");
    assert.deepEqual(p.parts.map((x) => x.type), ["text/plain", "message/delivery-status", "text/rfc822-headers"]);
    assert.deepEqual(p.message, { "reporting-mta": "dns; mx.example.com", "original-envelope-id": "QQ314159", "arrival-date": "Fri, 27 Nov 2026 10:00:00 +0000" });
    assert.deepEqual(p.recipients, [
      {
        "original-recipient": "rfc822;Bob@Example.org",
        "final-recipient": "rfc822; bob@example.org",
        action: "failed",
        status: "5.1.1",
        "remote-mta": "dns; mx.example.org",
        "diagnostic-code": "smtp; 550 5.1.1 <bob@example.org>: No such user",
        "last-attempt-date": "Fri, 27 Nov 2026 11:59:00 +0000",
      },
    ]);
    assert.equal(p.returned?.type, "text/rfc822-headers");
    assert.equal(p.returned?.content.toString("latin1"), ORIGINAL.toString("latin1").split("\r\n\r\n")[0] + "\r\n");
    assert.match(p.text, /could not be delivered/);
    assert.match(p.text, /<bob@example\.org>\r\n {4}mx\.example\.org said: 550 5\.1\.1 <bob@example\.org>: No such user/);
  });

  test("the field set is RFC 3464's: required fields present, nothing outside §2.2 and §2.3", () => {
    const p = parseDsn(dsn({ recipients: [FAILED, DELAYED, { address: "dan@example.org", action: "delivered", status: "2.0.0" }] }).content);
    for (const k of Object.keys(p.message)) assert.ok(RFC3464_MESSAGE_FIELDS.includes(k), k);
    assert.ok("reporting-mta" in p.message);
    assert.equal(p.recipients.length, 3);
    for (const r of p.recipients) {
      for (const k of Object.keys(r)) assert.ok(RFC3464_RECIPIENT_FIELDS.includes(k), k);
      for (const k of ["final-recipient", "action", "status"]) assert.ok(k in r, k);
      assert.match(r.status ?? "", /^[245]\.\d{1,3}\.\d{1,3}$/);
    }
    assert.equal(p.recipients[1]?.["will-retry-until"], "Wed, 02 Dec 2026 10:00:00 +0000");
    assert.equal(p.recipients[0]?.["will-retry-until"], undefined, "only for delayed");
  });

  test("subjects: failure, delay only, success only", () => {
    assert.equal(parseDsn(dsn({ recipients: [DELAYED, FAILED] }).content).headers.subject, "Undelivered Mail Returned to Sender");
    const delay = parseDsn(dsn({ recipients: [DELAYED] }).content);
    assert.equal(delay.headers.subject, "Delayed Mail (still being retried)");
    assert.match(delay.text, /keeps trying[\s\S]*<carol@example\.org>[\s\S]*trying until Wed, 02 Dec 2026/);
    const ok = parseDsn(dsn({ recipients: [{ address: "dan@example.org", action: "relayed", status: "2.0.0", remoteMta: "old.example.org" }] }).content);
    assert.equal(ok.headers.subject, "Successful Mail Delivery Report");
    assert.match(ok.text, /passed on/);
  });

  test("an invalid status falls back to the action's generic code", () => {
    const p = parseDsn(dsn({ recipients: [{ ...FAILED, status: "550" }, { ...DELAYED, status: "x" }] }).content);
    assert.deepEqual(p.recipients.map((r) => r.status), ["5.0.0", "4.0.0"]);
  });

  test("never to the null sender", () => {
    assert.equal(buildDsn({ reportingMta: "mx.example.com", from: "MAILER-DAEMON@mx.example.com", to: "", arrivalDate: ARRIVAL, recipients: [FAILED], original: ORIGINAL, ret: "FULL" }), undefined);
    assert.throws(() => dsn({ recipients: [] }), /no recipients/);
  });
});

describe("what comes back (RET)", () => {
  test("RET=FULL on a failure: the whole message as message/rfc822; HDRS or none: its header", () => {
    const full = parseDsn(dsn({ ret: "FULL" }).content);
    assert.deepEqual(full.parts.map((x) => x.type), ["text/plain", "message/delivery-status", "message/rfc822"]);
    assert.ok(full.returned?.content.equals(ORIGINAL));
    assert.equal(full.parts[2]?.headers["content-transfer-encoding"], undefined, "7-bit original: no CTE");
    for (const ret of ["HDRS", undefined] as const) {
      const h = parseDsn(dsn({ ret }).content);
      assert.equal(h.returned?.type, "text/rfc822-headers");
      assert.ok(h.returned?.content.equals(headerSection(ORIGINAL)));
    }
  });

  test("RET=FULL with only a delay to report: the header only", () => {
    assert.equal(parseDsn(dsn({ ret: "FULL", recipients: [DELAYED] }).content).returned?.type, "text/rfc822-headers");
  });

  test("an 8-bit original comes back whole with Content-Transfer-Encoding: 8bit and BODY=8BITMIME", () => {
    const original = Buffer.from("From: a@example.net\r\nSubject: Grüße\r\n\r\nÄpfel und Birnen\r\n", "utf8");
    const d = dsn({ ret: "FULL", original });
    assert.equal(d.body, "8BITMIME");
    assertWellFormed(d.content, true);
    const p = parseDsn(d.content);
    assert.equal(p.headers["content-transfer-encoding"], "8bit");
    assert.equal(p.parts[2]?.headers["content-transfer-encoding"], "8bit");
    assert.ok(p.returned?.content.equals(original));
    // The header of an 8-bit message, returned alone, is quoted-printable: the DSN stays 7-bit.
    const h = dsn({ ret: "HDRS", original });
    assert.equal(h.body, "7BIT");
    assertWellFormed(h.content);
    const ph = parseDsn(h.content);
    assert.equal(ph.parts[2]?.headers["content-transfer-encoding"], "quoted-printable");
    assert.equal(ph.returned?.content.toString("utf8"), "From: a@example.net\r\nSubject: Grüße\r\n");
  });

  test("too large, or unsafe to carry: the header only, and the text says why", () => {
    const big = Buffer.concat([ORIGINAL, Buffer.alloc(MAX_RETURNED_CONTENT, "x\r\n".repeat(1))]);
    const pb = parseDsn(dsn({ ret: "FULL", original: big }).content);
    assert.equal(pb.returned?.type, "text/rfc822-headers");
    assert.match(pb.text, /larger than 1048576 bytes/);
    for (const bad of ["From: a@example.net\r\n\r\nbare\nLF\r\n", "From: a@example.net\r\n\r\nNUL\0\r\n", `From: a@example.net\r\n\r\n${"y".repeat(1200)}\r\n`]) {
      const d = dsn({ ret: "FULL", original: Buffer.from(bad, "latin1") });
      assertWellFormed(d.content);
      const p = parseDsn(d.content);
      assert.equal(p.returned?.type, "text/rfc822-headers", JSON.stringify(bad.slice(20, 40)));
      assert.match(p.text, /cannot be returned as they are/);
    }
  });

  test("headerSection: up to the empty line, line ends made CRLF", () => {
    assert.equal(headerSection(Buffer.from("A: 1\r\nB: 2\r\n\r\nbody\r\n")).toString(), "A: 1\r\nB: 2\r\n");
    assert.equal(headerSection(Buffer.from("A: 1\nB: 2\n\nbody\n")).toString(), "A: 1\r\nB: 2\r\n");
    assert.equal(headerSection(Buffer.from("A: 1\r\nB: 2")).toString(), "A: 1\r\nB: 2\r\n");
    assert.equal(headerSection(Buffer.from("\r\nbody only\r\n")).toString(), "");
  });
});

describe("ENVID, ORCPT and hostile values", () => {
  test("ENVID and ORCPT are kept as given; non-ASCII addresses use the RFC 6533 utf-8 form", () => {
    const p = parseDsn(
      dsn({
        envid: "id+with spaces=and/more",
        recipients: [
          { ...FAILED, orcpt: "rfc822;Bob+tag@Example.org" },
          { ...FAILED, address: "jöe@example.org", orcpt: "utf-8;jöe@example.org" },
        ],
      }).content,
    );
    assert.equal(p.message["original-envelope-id"], "id+with spaces=and/more");
    assert.equal(p.recipients[0]?.["original-recipient"], "rfc822;Bob+tag@Example.org");
    assert.equal(p.recipients[1]?.["original-recipient"], "utf-8;j\\x{F6}e@example.org");
    assert.equal(p.recipients[1]?.["final-recipient"], "utf-8; j\\x{F6}e@example.org");
    const noEnvid = parseDsn(dsn({ envid: undefined }).content);
    assert.equal(noEnvid.message["original-envelope-id"], undefined);
  });

  test("CR, LF and NUL in any value cannot start a header line or a MIME part", () => {
    const evil = "\r\nBcc: victim@example.com\r\n\r\n--x\r\nContent-Type: text/html\r\n\r\n<b>";
    const d = dsn({
      envid: `E${evil}`,
      reportingMta: `mx.example.com${evil}`,
      from: `MAILER-DAEMON@mx.example.com${evil}`,
      recipients: [{ ...FAILED, address: `bob@example.org${evil}`, orcpt: `rfc822;bob@example.org${evil}`, remoteMta: `mx.example.org\0${evil}`, diagnostic: `smtp; 550 no${evil}` }],
      boundary: "b0undary",
    });
    assertWellFormed(d.content);
    const text = d.content.toString("latin1");
    assert.ok(!/^Bcc:/im.test(text), "no Bcc line");
    assert.ok(!/^Content-Type: text\/html/im.test(text), "no injected part header");
    assert.equal(text.split("\r\n").filter((l) => l.startsWith("--b0undary")).length, 4, "three parts and the end");
    const p = parseDsn(d.content);
    assert.equal(p.parts.length, 3);
    assert.ok(!("bcc" in p.headers));
    assert.equal(Object.keys(p.recipients[0] ?? {}).length, 7);
    assert.equal(p.recipients[0]?.["diagnostic-code"], "smtp; 550 no Bcc: victim@example.com --x Content-Type: text/html <b>");
    assert.equal(p.recipients[0]?.["remote-mta"], "dns; mx.example.org Bcc: victim@example.com --x Content-Type: text/html <b>");
    assert.equal(d.rcptTo, "alice@example.net");
  });

  test("non-ASCII texts from the network are escaped: the DSN stays 7-bit", () => {
    const d = dsn({ recipients: [{ ...FAILED, remoteMta: "mx.bücher.example", diagnostic: "smtp; 550 Benutzer unbekannt – “bob”" }] });
    assertWellFormed(d.content);
    const p = parseDsn(d.content);
    assert.equal(p.recipients[0]?.["diagnostic-code"], "smtp; 550 Benutzer unbekannt \\x{2013} \\x{201C}bob\\x{201D}");
    assert.equal(p.recipients[0]?.["remote-mta"], "dns; mx.b\\x{FC}cher.example");
    assert.match(p.text, /mx\.b\\x\{FC\}cher\.example said: 550 Benutzer unbekannt \\x\{2013\}/);
  });

  test("the envelope sender must be an address: it goes into RCPT TO too", () => {
    for (const to of ["alice@example.net\r\nBcc: x@example.com", "alice@example.net NOTIFY=NEVER", "\r\n", "<alice@example.net>", "alice", "a\0@example.net"]) {
      assert.throws(() => dsn({ to }), /not an address/, JSON.stringify(to));
    }
    const quoted = dsn({ to: '"alice smith"@example.net' });
    assert.equal(quoted.rcptTo, '"alice smith"@example.net');
    assert.equal(parseDsn(quoted.content).headers.to, '<"alice smith"@example.net>');
    const utf8 = dsn({ to: "jöe@bücher.example" });
    assert.equal(utf8.smtputf8, true);
    assert.equal(parseDsn(utf8.content).headers.to, "<jöe@bücher.example>");
  });

  test("a very long diagnostic is folded and capped; a given boundary that occurs in the content is refused", () => {
    const d = dsn({ recipients: [{ ...FAILED, diagnostic: `smtp; 550 ${"word ".repeat(1000)}` }, { ...FAILED, diagnostic: `smtp; 550 ${"z".repeat(5000)}` }] });
    assertWellFormed(d.content);
    const p = parseDsn(d.content);
    assert.ok((p.recipients[0]?.["diagnostic-code"] ?? "").endsWith("..."));
    assert.ok((p.recipients[1]?.["diagnostic-code"]?.length ?? 0) <= 900);
    assert.throws(() => dsn({ boundary: "Lunch", ret: "FULL", original: Buffer.from("Subject: x\r\n\r\n--Lunch\r\n") }), /boundary occurs/);
  });
});

describe("parseDsn", () => {
  test("reads a Postfix-style bounce with LF line ends and an unquoted boundary", () => {
    const postfix = [
      "From: MAILER-DAEMON@mail.example.org (Mail Delivery System)",
      "Subject: Undelivered Mail Returned to Sender",
      "MIME-Version: 1.0",
      "Content-Type: multipart/report; report-type=delivery-status;",
      "\tboundary=ABC123.1700000000/mail.example.org",
      "",
      "This is a MIME-encapsulated message.",
      "",
      "--ABC123.1700000000/mail.example.org",
      "Content-Description: Notification",
      "Content-Type: text/plain; charset=us-ascii",
      "",
      "I'm sorry to have to inform you...",
      "",
      "--ABC123.1700000000/mail.example.org",
      "Content-Description: Delivery report",
      "Content-Type: message/delivery-status",
      "",
      "Reporting-MTA: dns; mail.example.org",
      "X-Postfix-Queue-ID: ABC123",
      "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0100 (CET)",
      "",
      "Final-Recipient: rfc822; nobody@example.com",
      "Original-Recipient: rfc822;nobody@example.com",
      "Action: failed",
      "Status: 5.1.1",
      "Remote-MTA: dns; mx.example.com",
      "Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.com>: Recipient address",
      "    rejected: User unknown",
      "",
      "--ABC123.1700000000/mail.example.org",
      "Content-Description: Undelivered Message Headers",
      "Content-Type: text/rfc822-headers",
      "",
      "Subject: hi",
      "",
      "--ABC123.1700000000/mail.example.org--",
      "",
    ].join("\n");
    const p = parseDsn(Buffer.from(postfix));
    assert.equal(p.reportType, "delivery-status");
    assert.equal(p.message["x-postfix-queue-id"], "ABC123");
    assert.equal(p.recipients[0]?.["diagnostic-code"], "smtp; 550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown");
    assert.equal(p.returned?.content.toString(), "Subject: hi\n");
  });

  test("refuses what is not a DSN", () => {
    assert.throws(() => parseDsn(Buffer.from("Subject: x\r\n\r\nhello\r\n")), DsnParseError);
    assert.throws(() => parseDsn(Buffer.from('Content-Type: multipart/report; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n')), /no message\/delivery-status/);
    assert.throws(() => parseDsn(Buffer.from('Content-Type: multipart/report; boundary="b"\r\n\r\n--b\r\n\r\nx\r\n')), /no closing delimiter/);
  });
});

const noPython = peerSkip(pythonMissing("email", "python3"));
const PY_PARSE = `
import sys, json, email, email.policy
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)
parts = m.get_payload()
status = parts[1].get_payload()
print(json.dumps({
  "type": m.get_content_type(),
  "report_type": m.get_param("report-type"),
  "defects": [str(d) for d in m.defects] + [str(d) for p in parts for d in p.defects],
  "parts": [p.get_content_type() for p in parts],
  "status_blocks": [dict((k.lower(), str(v)) for k, v in b.items()) for b in status],
  "returned_subject": (parts[2].get_payload()[0]["subject"] if parts[2].get_content_type() == "message/rfc822" else None),
}))
`;

describe("Python's email parser", { skip: noPython }, () => {
  test("reads a multipart/report of three parts, the delivery-status blocks and the returned message", async () => {
    for (const ret of ["FULL", "HDRS"] as const) {
      const d = dsn({ ret, recipients: [FAILED, DELAYED] });
      const r = JSON.parse(await runPython(PY_PARSE, [], d.content)) as {
        type: string;
        report_type: string;
        defects: string[];
        parts: string[];
        status_blocks: Record<string, string>[];
        returned_subject: string | null;
      };
      assert.equal(r.type, "multipart/report");
      assert.equal(r.report_type, "delivery-status");
      assert.deepEqual(r.defects, []);
      assert.deepEqual(r.parts, ["text/plain", "message/delivery-status", ret === "FULL" ? "message/rfc822" : "text/rfc822-headers"]);
      assert.equal(r.status_blocks.length, 3);
      assert.equal(r.status_blocks[0]?.["reporting-mta"], "dns; mx.example.com");
      assert.equal(r.status_blocks[1]?.["final-recipient"], "rfc822; bob@example.org");
      assert.equal(r.status_blocks[2]?.action, "delayed");
      assert.equal(r.returned_subject, ret === "FULL" ? "Lunch?" : null);
    }
  });
});
