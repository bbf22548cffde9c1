/**
 * What an authenticated client may send through a running Wardmail, with
 * real clients (swaks and a raw SMTP client): sender ownership (MAIL FROM
 * and the From: header), hourly account limits, and relay without AUTH from
 * trusted networks. Logging in itself is in submission.test.ts.
 *
 * Two servers (test/helpers/submission-servers.ts: main, limits), started
 * together in before().
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Wardmail } from "./helpers/wardmail.ts";
import { PW, submissionServers, token, type SubmissionServerName } from "./helpers/submission-servers.ts";
import { loggedIn, mailWith, openSession, queueList, swaks, swaksReply } from "./peers/submission.ts";

const servers = submissionServers(["main", "limits"]);
const need = (name: SubmissionServerName): Wardmail => servers.get(name);

// ---------------------------------------------------------------- sender ownership

describe("sender ownership (alice: alias ali@, sender alice.news@other.test and @alice-domain.test)", () => {
  test("MAIL FROM: own address, alias, listed senders and <> 250; anyone else 553 5.7.1", async () => {
    const s = need("main");
    const { wire } = await loggedIn(s.submissionsPort, "alice@example.test", PW.alice, { tls: "implicit" });
    try {
      const verdicts: Record<string, string> = {};
      for (const from of ["alice@example.test", "ALICE@Example.Test", "ali@example.test", "alice.news@other.test", "anyone@alice-domain.test", "", "inbox@example.test", "alice@other.test", "x@sub.alice-domain.test", "ceo@remote.test"]) {
        verdicts[from] = (await wire.command(`MAIL FROM:<${from}>`)).raw.slice(0, 9);
        await wire.command("RSET");
      }
      assert.deepEqual(verdicts, {
        "alice@example.test": "250 2.1.0",
        "ALICE@Example.Test": "250 2.1.0",
        "ali@example.test": "250 2.1.0",
        "alice.news@other.test": "250 2.1.0",
        "anyone@alice-domain.test": "250 2.1.0",
        "": "250 2.1.0",
        "inbox@example.test": "553 5.7.1",
        "alice@other.test": "553 5.7.1",
        "x@sub.alice-domain.test": "553 5.7.1",
        "ceo@remote.test": "553 5.7.1",
      });
    } finally {
      wire.close();
    }
  });

  const headerCases = [
    { from: ["From: evil@bad.test"], reply: "550 5.7.1" },
    { from: ['From: "alice@example.test" <evil@bad.test>'], reply: "550 5.7.1" },
    { from: ["From: Alice <alice@example.test>, Eve <eve@bad.test>"], reply: "550 5.7.1" },
    { from: ["From: alice@example.test", "From: alice@example.test"], reply: "550 5.6.0" },
    { from: [], reply: "550 5.6.0" },
    { from: ["From: Alice <alice@example.test>"], reply: "250 2.0.0" },
    { from: ["From: =?UTF-8?Q?Al=C3=AFce?= <ali@example.test>"], reply: "250 2.0.0" },
    { from: ["from:\r\n alice.news@other.test"], reply: "250 2.0.0" },
  ];
  for (const [i, c] of headerCases.entries()) {
    test(`From: header ${JSON.stringify(c.from)} → ${c.reply} at the end of DATA`, async () => {
      const s = need("main");
      const t = token(`from-${i}`);
      const { wire } = await loggedIn(s.submissionsPort, "alice@example.test", PW.alice, { tls: "implicit" });
      try {
        // MAIL FROM:<> too: the null sender is allowed, the From: header is still checked.
        assert.equal((await wire.command(i % 2 === 0 ? "MAIL FROM:<alice@example.test>" : "MAIL FROM:<>")).code, 250);
        assert.equal((await wire.command("RCPT TO:<inbox@example.test>")).code, 250);
        assert.equal((await wire.command("DATA")).code, 354);
        const r = await wire.command([...c.from, "To: inbox@example.test", `Subject: ${t}`, "", "body", "."].join("\r\n"));
        assert.equal(r.raw.slice(0, 9), c.reply, r.raw);
      } finally {
        wire.close();
      }
      if (c.reply.startsWith("250")) await mailWith(s, "inbox@example.test", t);
    });
  }

  // Names a reader sees as another address, and originators hidden from a naive check: swaks sends
  // the message byte for byte (a UTF-8 file, --no-data-fixup) after AUTH PLAIN over implicit TLS.
  const forgedCases = [
    { what: "a B-encoded name that decodes to an address", head: ["From: =?utf-8?B?Y2VvQGJhbmsudGVzdA==?= <alice@example.test>"], reply: "550 5.7.1" },
    { what: "a Q-encoded name that decodes to an address", head: ["From: =?utf-8?Q?ceo=40bank=2Etest?= <alice@example.test>"], reply: "550 5.7.1" },
    { what: "an encoded word in a quoted name", head: ['From: "=?utf-8?Q?ceo=40bank=2Etest?=" <alice@example.test>'], reply: "550 5.7.1" },
    { what: "an encoded word in a comment", head: ["From: alice@example.test (=?utf-8?B?Y2VvQGJhbmsudGVzdA==?=)"], reply: "550 5.7.1" },
    { what: "a fullwidth at sign", head: ['From: "ceo\uFF20bank.test" <alice@example.test>'], reply: "550 5.7.1" },
    { what: "spaces around the at sign", head: ['From: "ceo @ bank.test" <alice@example.test>'], reply: "550 5.7.1" },
    { what: "a second From: behind a byte-order mark", head: ["From: alice@example.test", "\uFEFFFrom: ceo@bank.test"], reply: "550 5.6.0" },
    { what: "the only From: behind a byte-order mark (a spelling the signer and readers may not take for From)", head: ["\uFEFFFrom: alice@example.test"], reply: "550 5.6.0" },
    { what: "a foreign 11th Resent-From: (only 10 are parsed)", head: ["From: alice@example.test", ...Array<string>(10).fill("Resent-From: alice@example.test"), "Resent-From: ceo@bank.test"], reply: "550 5.6.0" },
    { what: "a foreign Sender:", head: ["From: alice@example.test", "Sender: ceo@bank.test"], reply: "550 5.7.1" },
    { what: "a foreign Resent-From:", head: ["From: alice@example.test", "Resent-From: ceo@bank.test"], reply: "550 5.7.1" },
    { what: "an unquoted encoded word with a literal dot (split by the address parser)", head: ["From: =?utf-8?q?ceo=40bank.test?= <alice@example.test>"], reply: "550 5.7.1" },
    { what: "an address spread over two encoded words", head: ["From: =?utf-8?q?ceo?= =?utf-8?q?=40bank=2Etest?= <alice@example.test>"], reply: "550 5.7.1" },
    { what: "a quoted local part in the name", head: ['From: "\\"ceo\\"@bank.test" <alice@example.test>'], reply: "550 5.7.1" },
    { what: "a UTF-8 name and an owned Sender: (delivered)", head: ["From: =?utf-8?Q?Alice_M=C3=BCller?= <alice@example.test>", "Sender: ali@example.test"], reply: "250 2.0.0" },
  ];
  for (const [i, c] of forgedCases.entries()) {
    test(`swaks: ${c.what} → ${c.reply} at the end of DATA`, async () => {
      const s = need("main");
      const t = token(`forged-${i}`);
      const file = join(servers.dir, `${t}.eml`);
      await writeFile(file, [...c.head, "To: inbox@example.test", `Subject: ${t}`, "", "body", "."].join("\r\n") + "\r\n", "utf8");
      const r = await swaks([
        "--server", `127.0.0.1:${s.submissionsPort}`, "--tlsc", "--auth", "PLAIN", "--auth-user", "alice@example.test", "--auth-password", PW.alice,
        "--from", "alice@example.test", "--to", "inbox@example.test", "--no-data-fixup", "--data", `@${file}`,
      ]);
      assert.match(r.out, /<~ {2}235 2\.7\.0 /, r.out);
      assert.equal(swaksReply(r.out, ".")?.line.slice(0, 9), c.reply, r.out);
      if (c.reply.startsWith("250")) await mailWith(s, "inbox@example.test", t);
    });
  }

  test("an authenticated client is still refused relay tricks: % hack and address literal 550 5.7.1", async () => {
    const s = need("main");
    const { wire } = await loggedIn(s.submissionsPort, "alice@example.test", PW.alice, { tls: "implicit" });
    try {
      assert.equal((await wire.command("MAIL FROM:<alice@example.test>")).code, 250);
      assert.match((await wire.command("RCPT TO:<user%remote.test@example.test>")).raw, /^550 5\.7\.1 /);
      assert.match((await wire.command("RCPT TO:<user@[127.0.0.1]>")).raw, /^550 5\.7\.1 /);
      assert.match((await wire.command("RCPT TO:<someone@remote.test>")).raw, /^250 /);
    } finally {
      wire.close();
    }
  });
});

// ---------------------------------------------------------------- hourly limits

describe("hourly account limits (3 messages, 5 recipients)", () => {
  async function message(wire: Awaited<ReturnType<typeof loggedIn>>["wire"], from: string, to: string[]): Promise<string> {
    assert.equal((await wire.command(`MAIL FROM:<${from}>`)).code, 250);
    for (const r of to) assert.equal((await wire.command(`RCPT TO:<${r}>`)).code, 250);
    assert.equal((await wire.command("DATA")).code, 354);
    return (await wire.command(`From: ${from}\r\nSubject: limit\r\n\r\nx\r\n.`)).raw;
  }

  test("carol: 3 messages go through, the 4th MAIL gets 451 4.7.1 (also on a new connection)", async () => {
    const s = need("limits");
    const { wire } = await loggedIn(s.submissionsPort, "carol@example.test", PW.carol, { tls: "implicit" });
    try {
      for (let i = 0; i < 3; i++) assert.match(await message(wire, "carol@example.test", ["user@example.test"]), /^250 2\.0\.0 /);
      assert.match((await wire.command("MAIL FROM:<carol@example.test>")).raw, /^451 4\.7\.1 /);
    } finally {
      wire.close();
    }
    const again = await loggedIn(s.submissionPort, "carol@example.test", PW.carol, { tls: "starttls" });
    try {
      assert.match((await again.wire.command("MAIL FROM:<carol@example.test>")).raw, /^451 4\.7\.1 /);
    } finally {
      again.wire.close();
    }
  });

  test("dave: the 6th RCPT gets 452 4.7.1; once 5 are sent, the next transaction's first RCPT too", async () => {
    const s = need("limits");
    const { wire } = await loggedIn(s.submissionsPort, "dave@example.test", PW.dave, { tls: "implicit" });
    try {
      assert.equal((await wire.command("MAIL FROM:<dave@example.test>")).code, 250);
      for (let i = 1; i <= 5; i++) assert.equal((await wire.command(`RCPT TO:<r${i}@remote.test>`)).code, 250, `RCPT ${i}`);
      assert.match((await wire.command("RCPT TO:<r6@remote.test>")).raw, /^452 4\.7\.1 /);
      assert.equal((await wire.command("DATA")).code, 354);
      assert.match((await wire.command("From: dave@example.test\r\n\r\nx\r\n.")).raw, /^250 2\.0\.0 /);
      assert.equal((await wire.command("MAIL FROM:<dave@example.test>")).code, 250);
      assert.match((await wire.command("RCPT TO:<user@example.test>")).raw, /^452 4\.7\.1 /);
    } finally {
      wire.close();
    }
  });
});

// ---------------------------------------------------------------- trusted networks

describe("relay.trusted_networks = 127.0.0.3/32", () => {
  test("MX port: 127.0.0.3 relays to a remote domain without AUTH (queued); 127.0.0.1 gets 554 5.7.1", async () => {
    const s = need("main");
    const t = token("trusted");
    const ok = await swaks(["--server", `127.0.0.1:${s.smtpPort}`, "--local-interface", "127.0.0.3", "--from", "app@example.test", "--to", "far-trusted@remote.test", "--header", `Subject: ${t}`]);
    assert.equal(ok.code, 0, ok.out);
    const id = /250 2\.0\.0 Ok: queued as (\S+)/.exec(ok.out)?.[1];
    assert.ok((await queueList(s)).some((e) => e.id === id && e.to.includes("far-trusted@remote.test")), `${id} not queued`);

    const denied = await swaks(["--server", `127.0.0.1:${s.smtpPort}`, "--from", "app@example.test", "--to", "far-untrusted@remote.test", "--quit-after", "RCPT"]);
    assert.equal(swaksReply(denied.out, "RCPT TO:")?.line.slice(0, 9), "554 5.7.1", denied.out);
  });

  test("submission port: 127.0.0.3 sends after STARTTLS without AUTH; 127.0.0.1 gets 530", async () => {
    const s = need("main");
    const trusted = await openSession(s.submissionPort, { tls: "starttls", localAddress: "127.0.0.3" });
    try {
      assert.equal((await trusted.wire.command("MAIL FROM:<app@example.test>")).raw.slice(0, 3), "250");
      assert.equal((await trusted.wire.command("RCPT TO:<far@remote.test>")).raw.slice(0, 3), "250");
    } finally {
      trusted.wire.close();
    }
    const untrusted = await openSession(s.submissionPort, { tls: "starttls" });
    try {
      assert.match((await untrusted.wire.command("MAIL FROM:<app@example.test>")).raw, /^530 5\.7\.0 /);
    } finally {
      untrusted.wire.close();
    }
  });
});
