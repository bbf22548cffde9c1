/**
 * A real SMTP client (swaks) against a running Wardmail: plain SMTP on the
 * MX port, STARTTLS on the MX and submission ports, implicit TLS on the
 * submissions port, recipient refusals, the size limit and the 8-bit policy.
 * Each accepted message is read back from the recipient's Maildir.
 *
 * Two servers, started together in before(): `w` (max_message_size = 10000,
 * default 8-bit policy "accept") and `strict` (eight_bit_without_8bitmime =
 * "reject"). Every test writes to its own mailbox so the tests do not see
 * each other's mail.
 *
 * The submission ports need AUTH: those cases log in as the account
 * sender@example.test (AUTH PLAIN) and send as it; the Received header then
 * says ESMTPSA (RFC 3848). AUTH itself is tested in submission.test.ts.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { swaks, type SwaksRun } from "./helpers/swaks.ts";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AccountStore } from "../src/accounts/index.ts";
import { setTimeout as sleep } from "node:timers/promises";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";

// ---------------------------------------------------------------- helpers

function requireBinary(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: "ignore", timeout: 10_000 });
  if (r.error !== undefined) {
    throw new Error(`${cmd} is required for this test but cannot be run (${r.error.message}); install it with scripts/install-peers.sh`);
  }
}



interface Mail {
  raw: Buffer;
  /** Header block with folded lines joined (CRLF + WSP → one space). */
  headers: string;
  body: Buffer;
}

function parseMail(raw: Buffer): Mail {
  const end = raw.indexOf("\r\n\r\n");
  assert.ok(end > 0, `no header/body separator in ${JSON.stringify(raw.toString("latin1").slice(0, 500))}`);
  const headers = raw.subarray(0, end + 2).toString("latin1").replace(/\r\n[ \t]+/g, " ");
  return { raw, headers, body: raw.subarray(end + 4) };
}

/** Waits for exactly one message in address's Maildir new/ and parses it. */
async function onlyMail(w: Wardmail, address: string): Promise<Mail> {
  const files = await w.waitForMail(address, 1);
  assert.equal(files.length, 1, `expected one message for ${address}, found ${files.length}\n${w.output().slice(-3000)}`);
  return parseMail(await readFile(files[0] as string));
}

/** The Received: header Wardmail added (unfolded). */
function wardmailReceived(mail: Mail): string {
  const line = mail.headers.split("\r\n").find((l) => l.startsWith("Received: ") && l.includes("(Wardmail)"));
  assert.ok(line !== undefined, `no Wardmail Received: header in\n${mail.headers}`);
  return line;
}

/** "TLSv1.3" and "TLS_AES_256_GCM_SHA384" from swaks' "=== TLS started with cipher TLSv1.3:TLS_AES_256_GCM_SHA384:256". */
function swaksCipher(out: string): { version: string; cipher: string } {
  const m = /=== TLS started with cipher ([^:\s]+):([^:\s]+)/.exec(out);
  assert.ok(m, `swaks did not report a TLS cipher:\n${out}`);
  return { version: m[1] as string, cipher: m[2] as string };
}

const MAILBOXES = [
  "user@example.test",
  "other@example.test",
  "postmaster@example.test",
  "mx-tls@example.test",
  "submission@example.test",
  "submissions@example.test",
  "big@example.test",
  "small@example.test",
  "eight@example.test",
];

let w: Wardmail | undefined;
let strict: Wardmail | undefined;
let dir = "";

function server(): Wardmail {
  assert.ok(w, "server not started");
  return w;
}

before(async () => {
  requireBinary("swaks", ["--version"]);
  dir = await mkdtemp(join(tmpdir(), "wardmail-swaks-"));
  const [a, b] = await Promise.allSettled([
    startWardmail({ mailboxes: MAILBOXES, extra: "[limits]\nmax_message_size = 10000\n" }),
    startWardmail({ mailboxes: MAILBOXES, extra: '[protocol]\neight_bit_without_8bitmime = "reject"\n' }),
  ]);
  if (a.status === "fulfilled") w = a.value;
  if (b.status === "fulfilled") strict = b.value;
  if (a.status === "rejected") throw a.reason;
  if (b.status === "rejected") throw b.reason;
  const store = AccountStore.open(server().dataDir, { create: true, localDomains: ["example.test", "localhost"] });
  await store.addAccount(ACCOUNT, PASSWORD);
  store.close();
});

const ACCOUNT = "sender@example.test";
const PASSWORD = "swaks-password-1";

after(async () => {
  for (const s of [w, strict]) {
    if (s === undefined) continue;
    await s.stop();
    await s.cleanup();
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

const FROM = ["--from", "a@sender.test"];

// ---------------------------------------------------------------- delivery

describe("swaks delivers", () => {
  test("plain SMTP to the MX port lands in the Maildir with Return-Path, Received and the body", async () => {
    const s = server();
    const token = "plain-body-7f3a2c";
    const r = await swaks(["--server", `127.0.0.1:${s.smtpPort}`, "--to", "user@example.test", ...FROM, "--body", `Hello from swaks ${token}`]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /<- {2}250 2\.0\.0 Ok: queued as \S+/);
    const mail = await onlyMail(s, "user@example.test");
    assert.ok(mail.raw.subarray(0, 30).toString("latin1").startsWith("Return-Path: <a@sender.test>\r\n"), mail.headers);
    const received = wardmailReceived(mail);
    assert.match(received, /^Received: from client\.test \(\[127\.0\.0\.1\]\) by mx\.example\.test \(Wardmail\) with ESMTP id \S+ for <user@example\.test>; \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d \+0000$/);
    assert.doesNotMatch(received, /using TLS/);
    // The queue id in the header is the one swaks was given.
    const queued = /queued as (\S+)/.exec(r.out)?.[1];
    assert.ok(queued !== undefined && received.includes(` id ${queued} `), `${received} vs ${queued}`);
    // swaks' own headers and body arrived untouched.
    assert.match(mail.headers, /^To: user@example\.test$/m);
    assert.match(mail.headers, /^From: a@sender\.test$/m);
    assert.match(mail.headers, /^X-Mailer: swaks /m);
    assert.match(mail.body.toString("latin1"), new RegExp(`^Hello from swaks ${token}\r\n`));
  });

  const tlsCases = [
    { name: "STARTTLS on the MX port", port: (s: Wardmail) => s.smtpPort, flag: "--tls", to: "mx-tls@example.test", auth: false },
    { name: "STARTTLS on the submission port", port: (s: Wardmail) => s.submissionPort, flag: "--tls", to: "submission@example.test", auth: true },
    { name: "implicit TLS on the submissions port", port: (s: Wardmail) => s.submissionsPort, flag: "--tlsc", to: "submissions@example.test", auth: true },
  ];
  for (const c of tlsCases) {
    test(`${c.name}: ${c.auth ? "ESMTPSA" : "ESMTPS"}, TLS version and cipher in Received`, async () => {
      const s = server();
      const token = `tls-body-${c.to.split("@")[0] ?? ""}`;
      const from = c.auth ? ["--from", ACCOUNT, "-a", "PLAIN", "-au", ACCOUNT, "-ap", PASSWORD] : FROM;
      const r = await swaks(["--server", `127.0.0.1:${c.port(s)}`, c.flag, "--to", c.to, ...from, "--body", token]);
      assert.equal(r.code, 0, r.out);
      const { version, cipher } = swaksCipher(r.out);
      assert.equal(version, "TLSv1.3");
      if (c.flag === "--tls") {
        assert.match(r.out, /-> STARTTLS/);
        assert.match(r.out, /<- {2}220 2\.0\.0 /);
      } else {
        assert.doesNotMatch(r.out, /-> STARTTLS/);
      }
      // After TLS, the EHLO reply does not offer STARTTLS again.
      assert.doesNotMatch(r.out, /<~ {2}250[- ]STARTTLS/);
      const mail = await onlyMail(s, c.to);
      assert.ok(mail.raw.toString("latin1").startsWith(`Return-Path: <${c.auth ? ACCOUNT : "a@sender.test"}>\r\n`), mail.headers);
      const received = wardmailReceived(mail);
      const proto = c.auth ? "ESMTPSA" : "ESMTPS";
      assert.match(received, new RegExp(`by mx\\.example\\.test \\(Wardmail\\) with ${proto} id \\S+ \\(using TLSv1\\.3 with cipher TLS_[A-Z0-9_]+\\) for <`));
      assert.ok(received.includes(`(using ${version} with cipher ${cipher})`), `${received}\nswaks saw ${version} ${cipher}`);
      assert.match(mail.body.toString("latin1"), new RegExp(`^${token}\r\n`));
    });
  }
});

// ---------------------------------------------------------------- refusals

describe("swaks is refused", () => {
  test("unknown local recipient: 550 5.1.1 at RCPT, swaks exits 24", async () => {
    const s = server();
    const r = await swaks(["--server", `127.0.0.1:${s.smtpPort}`, "--to", "nobody@example.test", ...FROM]);
    assert.equal(r.code, 24, r.out);
    assert.match(r.out, /-> RCPT TO:<nobody@example\.test>\r?\n<\*\* 550 5\.1\.1 /);
    assert.doesNotMatch(r.out, /-> DATA/);
  });

  test("non-local domain: 554 5.7.1 at RCPT (no relay), swaks exits 24", async () => {
    const s = server();
    const r = await swaks(["--server", `127.0.0.1:${s.smtpPort}`, "--to", "someone@elsewhere.test", ...FROM]);
    assert.equal(r.code, 24, r.out);
    assert.match(r.out, /-> RCPT TO:<someone@elsewhere\.test>\r?\n<\*\* 554 5\.7\.1 /);
    assert.doesNotMatch(r.out, /-> DATA/);
  });

  test("oversize message: 552 5.3.4 after DATA, the connection still answers QUIT, the next message goes through", async () => {
    const s = server();
    const bodyFile = join(dir, "big-body.txt");
    const line = "0123456789".repeat(9) + "\r\n"; // 92 bytes
    await writeFile(bodyFile, line.repeat(Math.ceil(20_000 / line.length)));
    // -n: swaks prints "N lines sent" instead of the 20 KB it sends.
    const r = await swaks(["-n", "--server", `127.0.0.1:${s.smtpPort}`, "--to", "big@example.test", ...FROM, "--body", `@${bodyFile}`]);
    assert.equal(r.code, 26, r.out);
    assert.match(r.out, /-> DATA\n<- {2}354 .*\n -> \d+ lines sent\n<\*\* 552 5\.3\.4 .*\n/);
    // Same connection, after the refusal: QUIT is answered.
    assert.match(r.out, /<\*\* 552 5\.3\.4 .*\n -> QUIT\n<- {2}221 2\.0\.0 /);

    const ok = await swaks(["--server", `127.0.0.1:${s.smtpPort}`, "--to", "small@example.test", ...FROM, "--body", "small one"]);
    assert.equal(ok.code, 0, ok.out);
    await onlyMail(s, "small@example.test");
    // Nothing of the refused message was delivered.
    await sleep(300);
    assert.deepEqual(await s.maildir("big@example.test"), []);
  });
});

// ---------------------------------------------------------------- 8-bit policy

describe("8-bit content without BODY=8BITMIME", () => {
  const token = "eight-bit-9c1d";
  const content = Buffer.concat([
    Buffer.from(`From: a@sender.test\r\nTo: eight@example.test\r\nSubject: 8bit ${token}\r\n\r\n`, "latin1"),
    Buffer.from("Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e\r\n", "utf8"),
    // swaks sends the file and then CRLF itself, so the file ends with the bare "." of the terminator.
    Buffer.from(".", "latin1"),
  ]);

  async function send(s: Wardmail): Promise<SwaksRun> {
    const file = join(dir, "eight-bit.eml");
    await writeFile(file, content);
    return swaks(["--server", `127.0.0.1:${s.smtpPort}`, "--to", "eight@example.test", ...FROM, "-ndf", "--data", `@${file}`]);
  }

  test("default policy: accepted, the 8-bit bytes are delivered unchanged", async () => {
    const s = server();
    const r = await send(s);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /-> MAIL FROM:<a@sender\.test>\r?\n/);
    assert.doesNotMatch(r.out, /BODY=8BITMIME/i);
    const mail = await onlyMail(s, "eight@example.test");
    assert.ok(mail.body.equals(Buffer.from("Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e\r\n", "utf8")), JSON.stringify(mail.body.toString("latin1")));
    assert.match(mail.headers, new RegExp(`^Subject: 8bit ${token}$`, "m"));
  });

  test('eight_bit_without_8bitmime = "reject": 550 5.6.1 after DATA, nothing delivered', async () => {
    assert.ok(strict, "server not started");
    const r = await send(strict);
    assert.equal(r.code, 26, r.out);
    assert.match(r.out, /<\*\* 550 5\.6\.1 /);
    assert.match(r.out, /-> QUIT\r?\n<- {2}221 /);
    await sleep(300);
    assert.deepEqual(await strict.maildir("eight@example.test"), []);
  });
});
