/**
 * Encrypt-on-store, proved by independent tools reading what Wardmail wrote.
 *
 * Keys are made at test time: OpenPGP keys with `gpg --quick-gen-key` in a
 * temporary GNUPGHOME, S/MIME certificates (RSA and EC P-256) with `openssl
 * req -x509 -addext subjectAltName=email:...`. They are imported with
 * `wardmail user key import`; one message goes with swaks to Wardmail's MX
 * port for a PGP account, two S/MIME accounts and an account without a key
 * (Maildir), and a PGP account in a local.lmtp domain (a private Dovecot
 * LMTP server).
 *
 * What is inside: the message as Wardmail queued it (our Received field on
 * top of what swaks sent), which is exactly the copy stored for the account
 * without a key minus the Return-Path and Delivered-To lines the Maildir
 * writer puts first. `gpg --decrypt` of the PGP/MIME copies (Maildir and
 * LMTP; Sequoia's `sq decrypt` too for the Maildir one) and `openssl cms
 * -decrypt` of the S/MIME copy must give those bytes.
 * Dovecot's imap lists and fetches the encrypted messages, ours and those
 * Dovecot stored from LMTP (Subject "[...]"); an S/MIME message made by
 * `openssl cms -encrypt` and a PGP/MIME one made by gpg are stored unchanged.
 * A 200 KB message goes through the server's encryption thread.
 *
 * Needs root (Wardmail drops to nobody; Dovecot stores and reads as nobody),
 * gpg, sq, openssl, swaks and Dovecot's imap and lmtp.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { binaryMissing, peerSkip, rootMissing } from "./helpers/peers.ts";
import { freePort } from "./peers/ports.ts";
import { exec } from "./peers/exec.ts";
import { waitForLog } from "./peers/submission.ts";
import { DOVECOT_IMAP, DOVECOT_LMTP, imapPreauth, startDovecotLmtp, type DovecotLmtp } from "./peers/dovecot.ts";

const SKIP = peerSkip(
  rootMissing("Wardmail drops to nobody and Dovecot stores and reads as nobody"),
  binaryMissing("gpg", ["--version"], "gnupg", { exitZero: true }),
  binaryMissing("openssl", ["version"], "openssl", { exitZero: true }),
  binaryMissing("sq", ["--version"], "sq", { exitZero: true }),
  binaryMissing("swaks", ["--version"], "swaks", { exitZero: true }),
  existsSync(DOVECOT_IMAP) ? undefined : `${DOVECOT_IMAP} is missing: install the Debian package dovecot-imapd`,
  existsSync(DOVECOT_LMTP) ? undefined : `${DOVECOT_LMTP} is missing: install the Debian package dovecot-lmtpd`,
);

const PGP = "pgp@example.test";
const SMIME = "smime@example.test";
const EC = "ec@example.test";
const PLAIN = "plain@example.test";
const LMTP_PGP = "pgp@lmtp.test";

let base = "";
let gnupg = "";
let w: Wardmail | undefined;
let dovecot: DovecotLmtp | undefined;

function gpg(args: string[], input?: string | Buffer): ReturnType<typeof exec> {
  return exec("gpg", ["--homedir", gnupg, "--batch", "--quiet", "--no-tty", ...args], input !== undefined ? { input } : {});
}

async function cli(args: string[], input?: string): Promise<string> {
  assert.ok(w);
  const r = await w.cli([...args, "--config", w.configPath], input);
  assert.equal(r.code, 0, `wardmail ${args.join(" ")}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

before(async () => {
  if (SKIP !== false) return;
  base = await mkdtemp(join(tmpdir(), "wardmail-e2e-"));
  await chmod(base, 0o755);
  gnupg = join(base, "gnupg");
  await mkdir(gnupg, { mode: 0o700 });
  const port = await freePort();
  dovecot = await startDovecotLmtp(join(base, "dovecot"), port, [LMTP_PGP]);
  w = await startWardmail({
    dirMode: 0o755,
    serverExtra: 'user = "nobody"',
    workers: 1,
    domains: ["example.test", "lmtp.test", "localhost"],
    mailboxes: ["postmaster@example.test"],
    extra: `[local.lmtp]\n"lmtp.test" = "127.0.0.1:${port}"\n`,
  });
});

after(async () => {
  if (w) {
    await w.stop();
    await w.cleanup();
  }
  await dovecot?.stop();
  if (gnupg !== "") await exec("gpgconf", ["--homedir", gnupg, "--kill", "gpg-agent"]).catch(() => undefined);
  if (base !== "") await rm(base, { recursive: true, force: true });
});

/** Files in a Maildir's new/, waiting up to 10 s for at least n. */
async function files(dir: string, n: number): Promise<string[]> {
  for (let i = 0; i < 200; i++) {
    const list = existsSync(dir) ? (await readdir(dir)).sort() : [];
    if (list.length >= n) return list.map((f) => join(dir, f));
    await sleep(50);
  }
  return [];
}

/** The stored file without the first two lines (Return-Path and Delivered-To, put there by the Maildir writer). */
function withoutDeliveryLines(stored: Buffer): Buffer {
  const s = stored.toString("latin1");
  assert.match(s, /^Return-Path: <[^\r\n]*>\r\nDelivered-To: [^\r\n]+\r\n/);
  const second = s.indexOf("\r\n", s.indexOf("\r\n") + 2) + 2;
  return stored.subarray(second);
}

function armoredMessage(stored: Buffer): string {
  const m = /-----BEGIN PGP MESSAGE-----[\s\S]*?-----END PGP MESSAGE-----/.exec(stored.toString("latin1"));
  assert.ok(m, "no armored OpenPGP message in the stored file");
  return m[0] + "\n";
}

async function swaks(to: string, data: Buffer): Promise<void> {
  assert.ok(w);
  const file = join(base, `msg-${Date.now()}.eml`);
  // -ndf: swaks sends the file as it is (no line starts with a dot here) and then CRLF: the file ends with the final dot.
  await writeFile(file, Buffer.concat([data, Buffer.from(".")]));
  const r = await exec("swaks", ["--timeout", "10", "--helo", "client.test", "--server", `127.0.0.1:${w.smtpPort}`, "--from", "alice@remote.test", "--to", to, "-ndf", "--data", `@${file}`]);
  assert.equal(r.code, 0, r.out);
}

test("gpg and openssl cms decrypt the stored copies to the original byte for byte; Dovecot's imap lists them; encrypted mail is stored unchanged", { skip: SKIP, timeout: 120_000 }, async () => {
  assert.ok(w && dovecot);
  // Keys made now, by the independent tools.
  // gpg's default (RSA 3072) for one, its ECC default (ed25519/cv25519) for the other.
  for (const [a, algo] of [[PGP, "default"], [LMTP_PGP, "future-default"]] as const) {
    const r = await gpg(["--passphrase", "", "--quick-gen-key", `Test User <${a}>`, algo, "default", "never"]);
    assert.equal(r.code, 0, r.out);
  }
  for (const a of [PGP, LMTP_PGP]) await writeFile(join(base, `${a}.asc`), (await gpg(["--armor", "--export", a])).stdout);
  const smimeDir = join(base, "smime");
  await mkdir(smimeDir);
  const req = await exec("openssl", ["req", "-x509", "-newkey", "rsa:3072", "-nodes", "-keyout", join(smimeDir, "key.pem"), "-out", join(smimeDir, "cert.pem"), "-days", "30", "-subj", "/CN=S MIME User", "-addext", `subjectAltName=email:${SMIME}`, "-addext", "keyUsage=digitalSignature,keyEncipherment", "-addext", "extendedKeyUsage=emailProtection"]);
  assert.equal(req.code, 0, req.out);
  const ecReq = await exec("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", join(smimeDir, "ec-key.pem"), "-out", join(smimeDir, "ec-cert.pem"), "-days", "30", "-subj", "/CN=EC User", "-addext", `subjectAltName=email:${EC}`, "-addext", "keyUsage=digitalSignature,keyAgreement"]);
  assert.equal(ecReq.code, 0, ecReq.out);

  for (const a of [PGP, SMIME, EC, PLAIN, LMTP_PGP]) await cli(["user", "add", a, "--password-stdin"], "correct horse battery\n");
  assert.match(await cli(["user", "key", "import", PGP, join(base, `${PGP}.asc`)]), /^imported OpenPGP key [0-9A-F]{40} for pgp@example\.test/);
  assert.match(await cli(["user", "key", "import", LMTP_PGP, join(base, `${LMTP_PGP}.asc`)]), /^imported OpenPGP key/);
  assert.match(await cli(["user", "key", "import", SMIME, join(smimeDir, "cert.pem")]), /^imported S\/MIME certificate [0-9A-F]{64} for smime@example\.test/);
  assert.match(await cli(["user", "key", "import", EC, join(smimeDir, "ec-cert.pem")]), /^imported S\/MIME certificate [0-9A-F]{64} for ec@example\.test/);
  // A refusal is a clear error with exit code 1.
  const refused = await w.cli(["user", "key", "import", PLAIN, join(base, `${PGP}.asc`), "--config", w.configPath]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /the key is for pgp@example\.test, not for plain@example\.test/);
  const listed = await cli(["user", "key", "list"]);
  assert.equal(listed.trim().split("\n").length, 4, listed);

  const token = "e2e-4f1c";
  const sent = Buffer.from(
    `From: Alice <alice@remote.test>\r\nTo: ${PGP}, ${SMIME}\r\nSubject: secret subject ${token}\r\nDate: Mon, 7 Dec 2026 08:00:00 +0000\r\n` +
      `Message-ID: <${token}@remote.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n` +
      "Gr\u00fc\u00dfe, 8-bit \u2713\r\n  indented line\r\n\r\nlast line\r\n",
    "utf8",
  );
  await swaks([PGP, SMIME, EC, PLAIN, LMTP_PGP].join(","), sent);

  const [plainFile] = await w.waitForMail(PLAIN, 1);
  const [pgpFile] = await w.waitForMail(PGP, 1);
  const [smimeFile] = await w.waitForMail(SMIME, 1);
  const [lmtpFile] = await files(join(dovecot.maildir(LMTP_PGP), "new"), 1);
  assert.ok(plainFile && pgpFile && smimeFile && lmtpFile, w.output().slice(-3000) + dovecot.log());
  // The queued message: our Received on top of what was sent.
  const original = withoutDeliveryLines(await readFile(plainFile));
  assert.ok(original.subarray(original.length - sent.length).equals(sent), "the copy without a key is the message as sent, with trace fields on top");
  assert.match(original.toString("latin1"), /^Received: from client\.test/);

  // PGP/MIME in the Maildir: no plaintext, Subject hidden; gpg decrypts it to the original.
  const pgpStored = await readFile(pgpFile);
  const pgpText = pgpStored.toString("latin1");
  assert.doesNotMatch(pgpText, new RegExp(`secret subject|indented line`));
  assert.match(pgpText, /^Subject: \[\.\.\.\]\r$/m);
  assert.match(pgpText, new RegExp(`^Message-ID: <${token}@remote\\.test>\\r$`, "m"));
  assert.match(pgpText, /^Content-Type: multipart\/encrypted; protocol="application\/pgp-encrypted";/m);
  const dec = await gpg(["--decrypt"], armoredMessage(pgpStored));
  assert.equal(dec.code, 0, dec.stderr.toString());
  assert.ok(dec.stdout.equals(original), `gpg's plaintext differs from the original:\n${dec.stdout.toString("latin1").slice(0, 500)}`);

  // A second OpenPGP implementation, Sequoia's sq, agrees.
  const secret = await gpg(["--pinentry-mode", "loopback", "--passphrase", "", "--armor", "--export-secret-keys", PGP]);
  assert.equal(secret.code, 0, secret.out);
  await writeFile(join(gnupg, "secret.asc"), secret.stdout);
  const sq = await exec("sq", ["decrypt", "--recipient-key", join(gnupg, "secret.asc")], { input: armoredMessage(pgpStored) });
  assert.equal(sq.code, 0, sq.out);
  assert.ok(sq.stdout.equals(original), "sq's plaintext differs from the original");

  // S/MIME: openssl cms -decrypt reads the Maildir file as it is.
  const smimeText = (await readFile(smimeFile)).toString("latin1");
  assert.match(smimeText, /^Content-Type: application\/pkcs7-mime; smime-type=enveloped-data/m);
  assert.match(smimeText, /^Subject: \[\.\.\.\]\r$/m);
  const out = join(smimeDir, "plain.eml");
  const cms = await exec("openssl", ["cms", "-decrypt", "-in", smimeFile, "-recip", join(smimeDir, "cert.pem"), "-inkey", join(smimeDir, "key.pem"), "-out", out]);
  assert.equal(cms.code, 0, cms.out);
  assert.ok((await readFile(out)).equals(original), "openssl's plaintext differs from the original");

  // S/MIME to an EC certificate (ECDH key agreement).
  const [ecFile] = await w.waitForMail(EC, 1);
  assert.ok(ecFile, w.output().slice(-3000));
  const ecOut = join(smimeDir, "ec-plain.eml");
  const ecCms = await exec("openssl", ["cms", "-decrypt", "-in", ecFile, "-recip", join(smimeDir, "ec-cert.pem"), "-inkey", join(smimeDir, "ec-key.pem"), "-out", ecOut]);
  assert.equal(ecCms.code, 0, ecCms.out);
  assert.ok((await readFile(ecOut)).equals(original), "openssl's plaintext (EC) differs from the original");

  // LMTP: Dovecot stored the encrypted copy (in its own line-ending form); gpg decrypts it to the original.
  const lmtpStored = await readFile(lmtpFile);
  assert.match(lmtpStored.toString("latin1"), /^Subject: \[\.\.\.\]\r?$/m);
  assert.match(lmtpStored.toString("latin1"), /with LMTP/);
  const dec2 = await gpg(["--decrypt"], armoredMessage(lmtpStored));
  assert.equal(dec2.code, 0, dec2.stderr.toString());
  assert.ok(dec2.stdout.equals(original), "gpg's plaintext of the LMTP copy differs from the original");

  for (const mailbox of [PGP, SMIME, EC, LMTP_PGP]) {
    const line = await waitForLog(() => w?.output() ?? "", "encrypted for storage", (l) => l.mailbox === mailbox);
    assert.ok(line, `no "encrypted for storage" log line for ${mailbox}`);
    assert.equal(line.format, mailbox === SMIME || mailbox === EC ? "smime" : "pgp");
  }

  // Already encrypted (PGP/MIME made by gpg): stored as it came, no second layer.
  const inner = (await gpg(["--armor", "--trust-model", "always", "--encrypt", "-r", PGP], "already secret\r\n")).stdout.toString("latin1").replace(/\r?\n/g, "\r\n");
  const pre = Buffer.from(
    `From: Alice <alice@remote.test>\r\nTo: ${PGP}\r\nSubject: visible ${token}\r\nMessage-ID: <pre-${token}@remote.test>\r\nMIME-Version: 1.0\r\n` +
      'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b1"\r\n\r\n' +
      "--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--b1\r\nContent-Type: application/octet-stream\r\n\r\n" +
      inner +
      "--b1--\r\n",
    "latin1",
  );
  await swaks(PGP, pre);
  const both = await w.waitForMail(PGP, 2);
  assert.equal(both.length, 2, w.output().slice(-4000));
  const unchangedLine = await waitForLog(() => w?.output() ?? "", "already encrypted; stored as it is", (l) => l.mailbox === PGP);
  assert.ok(unchangedLine, w.output().slice(-3000));
  let found = false;
  for (const f of both) {
    const body = withoutDeliveryLines(await readFile(f));
    if (body.subarray(body.length - pre.length).equals(pre)) found = true;
  }
  assert.ok(found, "the already encrypted message was not stored as it came");

  // A large message (over the in-line limit) is encrypted in the server's encryption thread.
  const lines = Array.from({ length: 3000 }, (_, i) => `line ${i} ${"x".repeat(60)}\r\n`).join("");
  const big = Buffer.from(`From: Alice <alice@remote.test>\r\nTo: ${SMIME}\r\nSubject: big ${token}\r\nMessage-ID: <big-${token}@remote.test>\r\n\r\n${lines}`, "latin1");
  await swaks(SMIME, big);
  const smimeBoth = await w.waitForMail(SMIME, 2);
  assert.equal(smimeBoth.length, 2, w.output().slice(-3000));
  const bigFile = smimeBoth.find((f) => f !== smimeFile) ?? "";
  assert.doesNotMatch((await readFile(bigFile)).toString("latin1"), /line 2999/);
  const bigOut = join(smimeDir, "big.eml");
  const cms2 = await exec("openssl", ["cms", "-decrypt", "-in", bigFile, "-recip", join(smimeDir, "cert.pem"), "-inkey", join(smimeDir, "key.pem"), "-out", bigOut]);
  assert.equal(cms2.code, 0, cms2.out);
  const bigPlain = await readFile(bigOut);
  assert.ok(bigPlain.subarray(bigPlain.length - big.length).equals(big), "the large message decrypts to what was sent");
  assert.match(bigPlain.toString("latin1"), /^Received: from client\.test/);

  // Dovecot's imap lists and fetches the encrypted messages.
  for (const [who, home] of [[PGP, join(w.dataDir, "mail", "example.test", "pgp")], [SMIME, join(w.dataDir, "mail", "example.test", "smime")], [LMTP_PGP, dovecot.maildir(LMTP_PGP)]] as const) {
    const imap = await imapPreauth(join(base, `imap-${who}`), home, ["SELECT INBOX", "FETCH 1 (BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (SUBJECT MESSAGE-ID)] RFC822.SIZE)", "LOGOUT"]);
    assert.match(imap, who === LMTP_PGP ? /\* 1 EXISTS/ : /\* 2 EXISTS/, imap);
    assert.match(imap, /t1 OK .*Fetch completed/, imap);
    assert.ok(imap.includes("Subject: [...]\r\n"), imap);
    assert.ok(imap.includes(`Message-ID: <${token}@remote.test>\r\n`), imap);
    if (who !== SMIME) assert.match(imap, /BODYSTRUCTURE \(\("application" "pgp-encrypted"[\s\S]*"encrypted"/i, imap);
    else assert.match(imap, /BODYSTRUCTURE \("application" "pkcs7-mime" \("smime-type" "enveloped-data"/i, imap);
  }

  // Already encrypted by openssl cms -encrypt (S/MIME): stored unchanged too. (Dovecot moved the others to cur/.)
  const plainPart = join(smimeDir, "part.txt");
  await writeFile(plainPart, "Content-Type: text/plain\r\n\r\nencrypted by the sender\r\n");
  const enc = await exec("openssl", ["cms", "-encrypt", "-in", plainPart, "-aes256", join(smimeDir, "cert.pem")]);
  assert.equal(enc.code, 0, enc.out);
  const smimePre = Buffer.from(`From: Alice <alice@remote.test>\r\nTo: ${SMIME}\r\nSubject: visible too ${token}\r\n` + enc.stdout.toString("latin1").replace(/\r?\n/g, "\r\n"), "latin1");
  await swaks(SMIME, smimePre);
  const [smimePreFile] = await w.waitForMail(SMIME, 1);
  assert.ok(smimePreFile, w.output().slice(-3000));
  const storedPre = withoutDeliveryLines(await readFile(smimePreFile));
  assert.ok(storedPre.subarray(storedPre.length - smimePre.length).equals(smimePre), "the S/MIME message made by openssl was not stored as it came");
});
