/**
 * Sender authentication end to end with real, independent parts: a Knot DNS
 * server on loopback publishes SPF, DKIM and DMARC records for made-up
 * domains; Python's dkimpy (`dkimsign`) signs the messages; swaks sends them
 * to Wardmail's MX port from 127.0.0.1; dkimpy (`dkimverify`, pointed at the
 * same Knot) verifies what Wardmail stored.
 *
 * Zones (all served by one knotd):
 *   good.test      SPF ip4:127.0.0.0/8 -all, DKIM key sel._domainkey, DMARC p=reject
 *   quar.test      SPF -all, DMARC p=quarantine
 *   softfail.test  SPF ~all, no DMARC
 *   strict.test    SPF ip4:192.0.2.1 -all (127.0.0.1 fails), no DMARC
 *   noauth.test    nothing (only SOA/NS: Knot answers REFUSED outside its zones,
 *                  which would be a temperror, not "no record")
 *   test           nothing: the parent of them all, so that DMARC's tree walk
 *                  (RFC 9989 §4.10, mailauth asks _dmarc.test after
 *                  _dmarc.softfail.test) gets NXDOMAIN as it would from the
 *                  root, instead of REFUSED (dmarc=temperror)
 *
 * Three servers, started together in before():
 *   `main`   default actions (dmarc.reject → 550, dmarc.quarantine → Junk, rest tag);
 *   `strict` "spf.fail" = "reject" and DMARC override good.test = none;
 *   `down`   [dns] pointing at a loopback UDP port that never answers
 *            (timeout 200 ms, 1 attempt).
 * Every test writes to its own mailbox so the tests do not see each other's mail.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { exec } from "./peers/exec.ts";
import { generateKeyPairSync } from "node:crypto";
import dgram from "node:dgram";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { dkimTxt, knotMissing, startKnot, txtRdata, zoneText, type Knot } from "./peers/knot.ts";
import { logLines, waitForLog } from "./peers/submission.ts";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";
import { pythonMissing } from "./helpers/dkim.ts";

const PYTHON = "/usr/bin/python3"; // Debian's, where python3-dkim lives (not a pyenv shim)
const DKIMSIGN = "/usr/bin/dkimsign";
const AUTHSERV = "mx.example.test";
const HELO = "mta.good.test";

const skip = peerSkip(
  knotMissing(),
  binaryMissing("swaks", ["--version"], "swaks"),
  binaryMissing(DKIMSIGN, ["--help"], "python3-dkim"),
  pythonMissing("dkim, dns.resolver", "python3-dkim"),
);

// ---------------------------------------------------------------- helpers

/** A tool with stdin input: stdout as bytes, stderr as text. */
async function pipe(cmd: string, args: string[], input: string | Buffer, timeoutMs = 20_000): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  const r = await exec(cmd, args, { input, timeoutMs });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr.toString("latin1") };
}

/** Runs cmd with input on stdin; stdout as bytes; killed (by its PID) after timeoutMs. */

/** A message with CRLF line ends. */
function message(headers: string[], body: string[]): string {
  return [...headers, "", ...body].join("\r\n") + "\r\n";
}

let workDir = "";
let keyPath = "";
let knot: Knot;

/** Signs with dkimpy's dkimsign (selector sel, d=domain); returns the signed message. */
async function dkimsign(msg: string, domain = "good.test"): Promise<string> {
  const r = await pipe(DKIMSIGN, ["sel", domain, keyPath], msg);
  assert.equal(r.code, 0, `dkimsign failed: ${r.stderr}`);
  const signed = r.stdout.toString("latin1");
  assert.match(signed, /^DKIM-Signature: v=1; a=rsa-sha256;/, "dkimsign output has no signature on top");
  return signed;
}

/** dkimpy's own verifier (the dkimverify program), with DNS asked of our Knot. */
async function dkimverify(msg: Buffer): Promise<{ ok: boolean; out: string }> {
  const code = [
    "import sys, dns.resolver",
    "r = dns.resolver.Resolver(configure=False)",
    "r.nameservers = ['127.0.0.1']",
    "r.port = int(sys.argv[1])",
    "dns.resolver.default_resolver = r",
    "sys.argv = ['dkimverify']",
    "from dkim.dkimverify import main",
    "main()",
  ].join("\n");
  const r = await pipe(PYTHON, ["-c", code, String(knot.port)], msg);
  const out = r.stdout.toString("latin1") + r.stderr;
  return { ok: r.code === 0 && out.includes("signature ok"), out };
}

interface Sent {
  code: number | null;
  out: string;
}

/**
 * Sends a ready message with swaks, byte for byte (--no-data-fixup: we
 * dot-stuff and end it ourselves), EHLO mta.good.test, from 127.0.0.1.
 */
async function send(port: number, from: string, to: string, msg: string): Promise<Sent> {
  const file = join(workDir, `msg-${Math.random().toString(36).slice(2)}.eml`);
  const stuffed = msg.replace(/^\./gm, "..");
  await writeFile(file, `${stuffed}${stuffed.endsWith("\r\n") ? "" : "\r\n"}.\r\n`, "latin1");
  const r = await pipe(
    "swaks",
    ["--timeout", "10", "--helo", HELO, "--server", "127.0.0.1", "--port", String(port), "--from", from, "--to", to, "--no-data-fixup", "--data", `@${file}`],
    "",
  );
  return { code: r.code, out: r.stdout.toString("latin1") + r.stderr };
}

/** The reply (code, enhanced code, text) to `command` ("MAIL FROM:", "RCPT TO:", "." for end of data), from swaks' transcript. */
function replyTo(out: string, command: string): { code: number; enhanced: string; line: string } | undefined {
  const lines = out.split(/\r?\n/);
  const i = command === "." ? lines.findIndex((l) => l === " -> .") : lines.findIndex((l) => l.startsWith(` -> ${command}`));
  if (i < 0) return undefined;
  for (let j = i + 1; j < lines.length; j++) {
    const m = /^<[-*]{1,2} +(\d{3})([ -])(?:(\d\.\d{1,3}\.\d{1,3}) )?/.exec(lines[j] ?? "");
    if (!m || m[2] === "-") continue;
    return { code: Number(m[1]), enhanced: m[3] ?? "", line: (lines[j] ?? "").replace(/^<[-*]{1,2} +/, "") };
  }
  return undefined;
}

interface Stored {
  raw: Buffer;
  /** Header fields, unfolded (CRLF + WSP → one space), in order. */
  fields: string[];
}

function parseStored(raw: Buffer): Stored {
  const end = raw.indexOf("\r\n\r\n");
  assert.ok(end > 0, `no header/body separator in ${JSON.stringify(raw.toString("latin1").slice(0, 500))}`);
  const head = raw.subarray(0, end).toString("latin1");
  return { raw, fields: head.split(/\r\n(?![ \t])/).map((f) => f.replace(/\r\n[ \t]+/g, " ")) };
}

const named = (s: Stored, name: string): string[] =>
  s.fields.filter((f) => f.toLowerCase().startsWith(`${name.toLowerCase()}:`)).map((f) => f.slice(name.length + 1).trim());

/** Files in a Maildir folder's new/ (folder: "" for INBOX, ".Junk" for Junk) after waiting for n of them. */
async function waitFolder(w: Wardmail, address: string, folder: string, n: number, timeoutMs = 10_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const files = await w.maildir(address, folder);
    if (files.length >= n || Date.now() > deadline) return files;
    await sleep(50);
  }
}

/** The one message delivered to address's folder. */
async function onlyMessage(w: Wardmail, address: string, folder = ""): Promise<Stored> {
  const files = await waitFolder(w, address, folder, 1);
  assert.equal(files.length, 1, `expected one message for ${address} in "${folder || "INBOX"}", found ${files.length}\n${w.output().slice(-3000)}`);
  return parseStored(await readFile(files[0] as string));
}

/**
 * The verdicts of the X-Wardmail-Verdict header ("a, b (tag)") and its
 * action, or undefined without one.
 */
function verdictHeader(s: Stored): { verdicts: string[]; action: string } | undefined {
  const values = named(s, "X-Wardmail-Verdict");
  assert.ok(values.length <= 1, values.join("\n"));
  const m = /^(.*) \((\w+)\)$/.exec(values[0] ?? "");
  if (!m) {
    assert.equal(values.length, 0, `unreadable X-Wardmail-Verdict: ${values[0]}`);
    return undefined;
  }
  const verdicts = (m[1] ?? "").split(", ");
  return verdicts.length === 0 ? undefined : { verdicts, action: m[2] ?? "" };
}

/** The server's last "checks" log line for a message with MAIL FROM `from`. */
/** The checks line of the transaction from `from` (each test's sender is its own on that server); waited for: it may come after the reply. */
function checksLine(w: Wardmail, from: string): Promise<Record<string, unknown> | undefined> {
  return waitForLog(() => w.output(), "checks", (l) => l.from === from);
}

// ---------------------------------------------------------------- the servers

const MAILBOXES = ["good", "spoof", "quar", "forged", "soft", "strict", "override", "unsigned", "down", "down2"].map((l) => `${l}@example.test`);

let main: Wardmail;
let strict: Wardmail;
let down: Wardmail;
let silent: dgram.Socket | undefined;

function checksToml(dnsPort: number, extra = "", dnsExtra = ""): string {
  return [`[checks]`, `authserv_id = "${AUTHSERV}"`, extra, `[dns]`, `servers = ["127.0.0.1:${dnsPort}"]`, dnsExtra].join("\n");
}

describe("sender authentication: SPF, DKIM, DMARC against Knot DNS, dkimpy and swaks", { skip }, () => {
  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "wardmail-senderauth-"));
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    keyPath = join(workDir, "sel.good.test.pem");
    // PKCS#1 PEM ("BEGIN RSA PRIVATE KEY"), which dkimpy reads.
    await writeFile(keyPath, privateKey.export({ type: "pkcs1", format: "pem" }));
    const pub = publicKey.export({ type: "spki", format: "der" });
    knot = await startKnot({
      zones: {
        "good.test": zoneText("good.test", [
          '@ TXT "v=spf1 ip4:127.0.0.0/8 -all"',
          // ~410 characters: two character-strings, which the resolver must join.
          `sel._domainkey TXT ${txtRdata(dkimTxt(pub))}`,
          '_dmarc TXT "v=DMARC1; p=reject"',
        ]),
        "quar.test": zoneText("quar.test", ['@ TXT "v=spf1 -all"', '_dmarc TXT "v=DMARC1; p=quarantine"']),
        "softfail.test": zoneText("softfail.test", ['@ TXT "v=spf1 ~all"']),
        "strict.test": zoneText("strict.test", ['@ TXT "v=spf1 ip4:192.0.2.1 -all"']),
        "noauth.test": zoneText("noauth.test"),
        test: zoneText("test"),
      },
    });
    // A DNS "server" that reads every question and never answers.
    const s = dgram.createSocket("udp4");
    s.on("message", () => undefined);
    await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", resolve));
    silent = s;
    const silentPort = s.address().port;
    const common = { workers: 1, mailboxes: MAILBOXES };
    [main, strict, down] = await Promise.all([
      startWardmail({ ...common, checks: checksToml(knot.port) }),
      startWardmail({
        ...common,
        checks: checksToml(knot.port, '[checks.actions]\n"spf.fail" = "reject"\n[checks.dmarc_overrides]\n"good.test" = "none"'),
      }),
      startWardmail({ ...common, checks: checksToml(silentPort, "", "timeout = 200\nattempts = 1") }),
    ]);
  });

  after(async () => {
    for (const w of [main, strict, down]) {
      if (w === undefined) continue;
      await w.stop();
      await w.cleanup();
    }
    silent?.close();
    await knot?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test("the zones answer through Knot (sanity: DKIM key in two strings, SPF, DMARC)", async () => {
    const r = await pipe("kdig", ["@127.0.0.1", "-p", String(knot.port), "+short", "sel._domainkey.good.test", "TXT"], "");
    const txt = r.stdout.toString();
    assert.match(txt, /^"v=DKIM1; k=rsa; p=MII[^"]+" "[^"]+"\n$/, txt);
  });

  test("a message signed by dkimsign passes DKIM, SPF and DMARC, and dkimverify still verifies the stored copy", async () => {
    const msg = message(
      ["From: Someone <someone@good.test>", "To: good@example.test", "Subject: signed", "Date: Fri, 27 Nov 2026 10:00:00 +0000", "Message-ID: <signed@good.test>"],
      ["Hello.", ".a line that starts with a dot (dot-stuffed on the wire)", "", "Bye."],
    );
    const signed = await dkimsign(msg);
    const r = await send(main.smtpPort, "someone@good.test", "good@example.test", signed);
    assert.equal(replyTo(r.out, "MAIL FROM:")?.code, 250, r.out);
    assert.equal(replyTo(r.out, ".")?.code, 250, r.out);

    const s = await onlyMessage(main, "good@example.test");
    const ar = named(s, "Authentication-Results");
    assert.equal(ar.length, 1, s.fields.join("\n"));
    const ours = ar[0] ?? "";
    assert.match(ours, new RegExp(`^${AUTHSERV.replaceAll(".", "\\.")};`));
    assert.match(ours, /\bdkim=pass header\.d=good\.test\b/);
    assert.match(ours, /\bheader\.s=sel\b/);
    assert.match(ours, /\bspf=pass .*smtp\.mailfrom=good\.test\b/);
    assert.match(ours, /\bspf=none smtp\.helo=mta\.good\.test\b/);
    assert.match(ours, /\barc=none\b/);
    assert.match(ours, /\bdmarc=pass\b.*header\.from=good\.test\b/);
    assert.match(named(s, "Received-SPF")[0] ?? "", /^pass \(/);
    assert.deepEqual(named(s, "X-Wardmail-Verdict"), []);
    // Order: our Received on top of Authentication-Results, Received-SPF, then the message as sent.
    const idx = (p: RegExp): number => s.fields.findIndex((f) => p.test(f));
    const received = idx(/^Received: .*\(Wardmail\)/);
    assert.ok(received >= 0 && received < idx(/^Authentication-Results:/), s.fields.join("\n"));
    assert.ok(idx(/^Authentication-Results:/) < idx(/^Received-SPF:/));
    assert.ok(idx(/^Received-SPF:/) < idx(/^DKIM-Signature:/));
    // The signed part is byte for byte what dkimsign produced (dot-unstuffed).
    assert.ok(s.raw.toString("latin1").endsWith(signed), "stored message does not end with the signed message as sent");

    const line = await checksLine(main, "someone@good.test");
    assert.deepEqual(line?.verdicts, ["spf.pass", "dkim.pass", "arc.none", "dmarc.pass"]);
    assert.equal(line?.action, "ignore");

    // The independent verifier: passes on the stored copy (our fields on top are not signed) ...
    const v = await dkimverify(s.raw);
    assert.ok(v.ok, `dkimverify on the stored message: ${v.out}`);
    // ... and fails when one signed byte changes (so the check above can fail).
    const tampered = Buffer.from(s.raw.toString("latin1").replace("Subject: signed", "Subject: signet"), "latin1");
    const t = await dkimverify(tampered);
    assert.ok(!t.ok, `dkimverify accepted a tampered message: ${t.out}`);
  });

  test("a spoofed From: of a p=reject domain gets 550 5.7.1 at the end of DATA and is not delivered", async () => {
    const spoof = message(["From: The CEO <ceo@good.test>", "To: spoof@example.test", "Subject: wire the money", "Message-ID: <spoof@noauth.test>"], ["Urgent."]);
    const r = await send(main.smtpPort, "someone@noauth.test", "spoof@example.test", spoof);
    assert.equal(replyTo(r.out, "MAIL FROM:")?.code, 250, r.out);
    const end = replyTo(r.out, ".");
    assert.equal(end?.code, 550, r.out);
    assert.equal(end?.enhanced, "5.7.1", r.out);
    assert.match(end?.line ?? "", /dmarc\.reject/);
    const line = await checksLine(main, "someone@noauth.test");
    assert.equal(line?.action, "reject");
    assert.deepEqual(line?.triggered, ["dmarc.reject"]);
    // A good message to the same mailbox afterwards: it arrives, and it is the only one.
    const ok = message(["From: someone@good.test", "To: spoof@example.test", "Subject: after the spoof"], ["fine"]);
    const r2 = await send(main.smtpPort, "someone@good.test", "spoof@example.test", ok);
    assert.equal(replyTo(r2.out, ".")?.code, 250, r2.out);
    const s = await onlyMessage(main, "spoof@example.test");
    assert.deepEqual(named(s, "Subject"), ["after the spoof"]);
    assert.deepEqual(await main.maildir("spoof@example.test", ".Junk"), []);
  });

  test("a p=quarantine failure is accepted into the Junk folder with an X-Wardmail-Verdict header", async () => {
    const msg = message(["From: ceo@quar.test", "To: quar@example.test", "Subject: quarantined"], ["maybe spam"]);
    const r = await send(main.smtpPort, "bounce@quar.test", "quar@example.test", msg);
    assert.equal(replyTo(r.out, ".")?.code, 250, r.out);
    const s = await onlyMessage(main, "quar@example.test", ".Junk");
    assert.deepEqual(named(s, "X-Wardmail-Verdict"), ["dmarc.quarantine (quarantine)"]);
    const ar = named(s, "Authentication-Results")[0] ?? "";
    assert.match(ar, /\bspf=fail\b.*smtp\.mailfrom=quar\.test/);
    assert.match(ar, /\bdmarc=fail\b.*header\.from=quar\.test/);
    assert.match(named(s, "Received-SPF")[0] ?? "", /^fail\b/);
    // A Maildir++ folder: .Junk with its maildirfolder marker; nothing in the inbox.
    const md = join(main.dataDir, "mail", "example.test", "quar");
    assert.ok((await readdir(join(md, ".Junk"))).includes("maildirfolder"));
    assert.deepEqual(await main.maildir("quar@example.test"), []);
  });

  test("incoming Authentication-Results claiming our authserv-id are removed; others are kept", async () => {
    const msg = message(
      [
        `Authentication-Results: ${AUTHSERV}; dkim=pass header.d=good.test; dmarc=pass header.from=good.test`,
        "Authentication-Results: MX.Example.TEST (case differs);",
        "  spf=pass smtp.mailfrom=good.test",
        "Authentication-Results: other.example; dkim=pass header.d=elsewhere.test",
        "From: someone@good.test",
        "To: forged@example.test",
        "Subject: forged results",
      ],
      ["body"],
    );
    const r = await send(main.smtpPort, "someone@good.test", "forged@example.test", msg);
    assert.equal(replyTo(r.out, ".")?.code, 250, r.out);
    const s = await onlyMessage(main, "forged@example.test");
    const ar = named(s, "Authentication-Results");
    assert.equal(ar.length, 2, ar.join("\n"));
    // Ours, fresh: no signature on this message, so dkim=none (the forged one said pass).
    assert.match(ar[0] ?? "", new RegExp(`^${AUTHSERV.replaceAll(".", "\\.")};`));
    assert.match(ar[0] ?? "", /\bdkim=none\b/);
    assert.doesNotMatch(ar[0] ?? "", /dkim=pass/);
    assert.equal(ar[1], "other.example; dkim=pass header.d=elsewhere.test");
    assert.ok(!s.raw.toString("latin1").includes("case differs"), "the forged field with our id in other case survived");
  });

  test("SPF softfail is tagged and delivered", async () => {
    const msg = message(["From: someone@softfail.test", "To: soft@example.test", "Subject: soft"], ["x"]);
    const r = await send(main.smtpPort, "someone@softfail.test", "soft@example.test", msg);
    assert.equal(replyTo(r.out, "MAIL FROM:")?.code, 250, r.out);
    assert.equal(replyTo(r.out, ".")?.code, 250, r.out);
    const s = await onlyMessage(main, "soft@example.test");
    assert.deepEqual(verdictHeader(s), { verdicts: ["spf.softfail"], action: "tag" });
    // No DMARC record anywhere up the tree: none, which is no verdict to act on.
    assert.match(named(s, "Authentication-Results")[0] ?? "", /\bdmarc=none\b/);
    assert.match(named(s, "Authentication-Results")[0] ?? "", /\bspf=softfail\b/);
    assert.match(named(s, "Received-SPF")[0] ?? "", /^softfail\b/);
  });

  test('"spf.fail" = "reject": MAIL FROM of a domain whose SPF excludes 127.0.0.1 gets 550 5.7.23', async () => {
    const msg = message(["From: x@strict.test", "To: strict@example.test", "Subject: strict"], ["x"]);
    const r = await send(strict.smtpPort, "x@strict.test", "strict@example.test", msg);
    const mail = replyTo(r.out, "MAIL FROM:");
    assert.equal(mail?.code, 550, r.out);
    assert.equal(mail?.enhanced, "5.7.23", r.out);
    assert.equal(replyTo(r.out, "RCPT TO:"), undefined, "swaks went on after the refused MAIL");
    const refused = await waitForLog(() => strict.output(), "sender refused by policy", (l) => l.from === "x@strict.test");
    assert.deepEqual(refused?.verdicts, ["spf.fail"]);
    // The same message on the default server is only tagged.
    const r2 = await send(main.smtpPort, "x@strict.test", "strict@example.test", msg);
    assert.equal(replyTo(r2.out, "MAIL FROM:")?.code, 250, r2.out);
    assert.equal(replyTo(r2.out, ".")?.code, 250, r2.out);
    const s = await onlyMessage(main, "strict@example.test");
    assert.deepEqual(verdictHeader(s), { verdicts: ["spf.fail"], action: "tag" });
    assert.deepEqual(await strict.maildir("strict@example.test"), []);
  });

  test('[checks.dmarc_overrides] "good.test" = "none": the spoof is delivered untagged, the header says so', async () => {
    const spoof = message(["From: The CEO <ceo@good.test>", "To: override@example.test", "Subject: overridden"], ["Urgent."]);
    const r = await send(strict.smtpPort, "someone@noauth.test", "override@example.test", spoof);
    assert.equal(replyTo(r.out, ".")?.code, 250, r.out);
    const s = await onlyMessage(strict, "override@example.test");
    const ar = named(s, "Authentication-Results")[0] ?? "";
    assert.match(ar, /\bdmarc=fail\b/);
    assert.match(ar, /\(policy override none\)/);
    assert.match(ar, /\bspf=none\b.*smtp\.mailfrom=noauth\.test/);
    assert.equal(verdictHeader(s), undefined);
    const line = await checksLine(strict, "someone@noauth.test");
    assert.ok((line?.verdicts as string[] | undefined)?.includes("dmarc.none"), JSON.stringify(line));
    assert.equal(line?.action, "ignore", JSON.stringify(line));
  });

  test(
    "an unsigned message is dkim=none: no dkim.fail verdict, no tag",
    async () => {
      const msg = message(["From: someone@good.test", "To: unsigned@example.test", "Subject: unsigned"], ["x"]);
      const r = await send(main.smtpPort, "unsigned@good.test", "unsigned@example.test", msg);
      assert.equal(replyTo(r.out, ".")?.code, 250, r.out);
      const s = await onlyMessage(main, "unsigned@example.test");
      assert.match(named(s, "Authentication-Results")[0] ?? "", /\bdkim=none\b/);
      assert.match(named(s, "Authentication-Results")[0] ?? "", /\bdmarc=pass\b/);
      const line = await checksLine(main, "unsigned@good.test");
      assert.deepEqual(line?.verdicts, ["spf.pass", "dkim.none", "arc.none", "dmarc.pass"]);
      assert.equal(line?.action, "ignore");
      assert.deepEqual(named(s, "X-Wardmail-Verdict"), []);
    },
  );

  test("DNS down (nothing answers): temperrors are tagged, the mail is delivered, the server stays up", async () => {
    const signed = await dkimsign(message(["From: someone@good.test", "To: down@example.test", "Subject: dns down"], ["x"]));
    const t0 = Date.now();
    const r = await send(down.smtpPort, "someone@good.test", "down@example.test", signed);
    const took = Date.now() - t0;
    assert.equal(replyTo(r.out, "MAIL FROM:")?.code, 250, r.out);
    assert.equal(replyTo(r.out, ".")?.code, 250, r.out);
    const s = await onlyMessage(down, "down@example.test");
    const ar = named(s, "Authentication-Results")[0] ?? "";
    assert.match(ar, /\bdkim=temperror\b/);
    assert.match(ar, /\bspf=temperror\b.*smtp\.mailfrom=good\.test/);
    assert.match(ar, /\bdmarc=temperror\b/);
    assert.match(named(s, "Received-SPF")[0] ?? "", /^temperror\b/);
    assert.deepEqual(named(s, "X-Wardmail-Verdict"), ["spf.temperror, dkim.temperror, dmarc.temperror (tag)"]);
    // Each question waits 200 ms once; far below the 20 s check deadline.
    assert.ok(took < 10_000, `took ${took} ms`);
    // Still up: another session is served, and the process has not exited.
    const r2 = await send(down.smtpPort, "someone@noauth.test", "down2@example.test", message(["From: a@noauth.test", "Subject: again"], ["y"]));
    assert.equal(replyTo(r2.out, ".")?.code, 250, r2.out);
    await onlyMessage(down, "down2@example.test");
    assert.equal(down.process.exitCode, null);
    assert.equal(logLines(down.output(), "check failed; answered 451 (fail closed)").length, 0);
  });
});
