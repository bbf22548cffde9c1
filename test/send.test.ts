/**
 * `wardmail send` against a running Wardmail, checked by independent tools:
 * keys made at test time with gpg (ed25519/cv25519, the signer's protected
 * by a passphrase) and openssl (a test CA and S/MIME certificates with email
 * SANs); the message read back from the recipient's Maildir; `gpg --decrypt`
 * reports a good signature (GOODSIG/VALIDSIG) and the body; `gpg --verify`
 * checks a PGP/MIME multipart/signed; Sequoia (`sq decrypt`, `sq verify`)
 * agrees as a second OpenPGP implementation; `openssl cms -decrypt` then
 * `openssl cms -verify` checks S/MIME; the server log shows the mechanism
 * (SCRAM-SHA-256-PLUS). A missing recipient key with --encrypt refuses to
 * send. WKD: a loopback HTTPS server and a test DNS server, the hash path
 * compared with gpg's own --with-wkd-hash.
 */
import { after, before, describe, test } from "node:test";
import { spawn } from "node:child_process";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:https";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AccountStore } from "../src/accounts/index.ts";
import { generateCertificate } from "../src/tls/index.ts";
import { startTestDnsServer, type TestDnsServer } from "./helpers/dns.ts";
import { BIN, startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";
import { exec } from "./peers/exec.ts";
import { certFor, pemCertificates } from "../src/send/index.ts";
import { waitForLog } from "./peers/submission.ts";
import { freePort } from "./peers/ports.ts";

const missing = peerSkip(binaryMissing("sq", ["--version"], "sq"), binaryMissing("script", ["--version"], "util-linux"), binaryMissing("gpgconf", ["--version"], "gnupg"), binaryMissing("gpg", ["--version"], "gnupg"), binaryMissing("openssl", ["version"], "openssl"));
const PW = "alice-password-1";
const PASSPHRASE = "alice key passphrase";
const BODY = "Hello Bob,\nthe plan is in the attachment.\nGr\u00fc\u00dfe, Alice\n";

let s: Wardmail | undefined;
let dir = "";
let home = "";
let dns: TestDnsServer | undefined;
let wkd: Server | undefined;
let wkdPort = 0;
const wkdRequests: string[] = [];
let wkdKey: Buffer = Buffer.alloc(0);
let frankKey: Buffer = Buffer.alloc(0);

function need(): Wardmail {
  assert.ok(s, "server not started");
  return s;
}

async function sh(cmd: string, args: string[], input?: string | Buffer): Promise<{ code: number | null; stdout: Buffer; out: string }> {
  const r = await exec(cmd, args, { ...(input !== undefined ? { input } : {}), timeoutMs: 60_000 });
  return { code: r.code, stdout: r.stdout, out: r.out };
}

async function ok(cmd: string, args: string[], input?: string): Promise<Buffer> {
  const r = await sh(cmd, args, input);
  assert.equal(r.code, 0, `${cmd} ${args.join(" ")}: ${r.out}`);
  return r.stdout;
}

const gpg = (...args: string[]): string[] => ["--homedir", home, "--batch", "--no-tty", "--pinentry-mode", "loopback", ...args];

before(async () => {
  if (missing !== false) return;
  dir = await mkdtemp(join(tmpdir(), "wardmail-send-"));
  home = join(dir, "gnupg");
  await mkdir(home, { mode: 0o700 });
  await mkdir(join(dir, "keyring"));
  await mkdir(join(dir, "smime-keyring"));
  // OpenPGP keys: alice signs (passphrase), bob and dave receive.
  await ok("gpg", gpg("--passphrase", PASSPHRASE, "--quick-gen-key", "Alice <alice@example.test>", "future-default", "default", "1d"));
  await ok("gpg", gpg("--passphrase", "", "--quick-gen-key", "Bob <bob@example.test>", "future-default", "default", "1d"));
  await ok("gpg", gpg("--passphrase", "", "--quick-gen-key", "Dave <dave@example.test>", "future-default", "default", "1d"));
  // erin's key expires a second after it is made: expired by the time the tests run.
  await ok("gpg", gpg("--passphrase", "", "--quick-gen-key", "Erin <erin@example.test>", "future-default", "default", "seconds=1"));
  await writeFile(join(dir, "keyring", "erin.asc"), await ok("gpg", gpg("--armor", "--export", "erin@example.test")));
  // grace's key is revoked with the revocation certificate gpg made with it (openpgp-revocs.d).
  await ok("gpg", gpg("--passphrase", "", "--quick-gen-key", "Grace <grace@example.test>", "future-default", "default", "1d"));
  const graceFpr = /^fpr:+([0-9A-F]{40}):/m.exec((await ok("gpg", gpg("--with-colons", "--fingerprint", "grace@example.test"))).toString())?.[1] ?? "";
  const rev = (await readFile(join(home, "openpgp-revocs.d", `${graceFpr}.rev`), "utf8")).replace(/^:-----BEGIN/m, "-----BEGIN");
  await ok("gpg", gpg("--import"), rev);
  await writeFile(join(dir, "keyring", "grace.asc"), await ok("gpg", gpg("--armor", "--export", "grace@example.test")));
  await writeFile(join(dir, "alice-secret.asc"), await ok("gpg", gpg("--passphrase", PASSPHRASE, "--armor", "--export-secret-keys", "alice@example.test")));
  await writeFile(join(dir, "keyring", "bob.asc"), await ok("gpg", gpg("--armor", "--export", "bob@example.test")));
  // For Sequoia (sq), a second OpenPGP implementation: bob's secret key, alice's certificate.
  await writeFile(join(dir, "bob-secret.asc"), await ok("gpg", gpg("--passphrase", "", "--armor", "--export-secret-keys", "bob@example.test")));
  await writeFile(join(dir, "alice.asc"), await ok("gpg", gpg("--armor", "--export", "alice@example.test")));
  wkdKey = await ok("gpg", gpg("--export", "dave@example.test"));
  await ok("gpg", gpg("--passphrase", "", "--quick-gen-key", "Frank <frank@direct.test>", "future-default", "default", "1d"));
  frankKey = await ok("gpg", gpg("--export", "frank@direct.test"));
  await writeFile(join(dir, "passphrase"), PASSPHRASE + "\n", { mode: 0o600 });
  await writeFile(join(dir, "password"), PW + "\n", { mode: 0o600 });
  // S/MIME: a test CA, certificates for alice and bob (email SAN, emailProtection).
  const o = (...a: string[]): Promise<Buffer> => ok("openssl", a);
  const ca = join(dir, "ca.pem");
  await o("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "ca.key"), "-out", ca, "-subj", "/CN=Wardmail Test CA", "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  for (const u of ["alice", "bob"]) {
    const ext = join(dir, `${u}.ext`);
    await writeFile(ext, `subjectAltName=email:${u}@example.test\nextendedKeyUsage=emailProtection\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n`);
    await o("req", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, `${u}.key`), "-out", join(dir, `${u}.csr`), "-subj", `/CN=${u}`);
    await o("x509", "-req", "-in", join(dir, `${u}.csr`), "-CA", ca, "-CAkey", join(dir, "ca.key"), "-CAcreateserial", "-days", "2", "-out", join(dir, `${u}.crt`), "-extfile", ext);
  }
  await writeFile(join(dir, "alice-smime.pem"), Buffer.concat([await readFile(join(dir, "alice.key")), await readFile(join(dir, "alice.crt"))]));
  await writeFile(join(dir, "smime-keyring", "bob.pem"), await readFile(join(dir, "bob.crt")));
  // carol's certificate is for TLS servers only (extended key usage serverAuth): not usable for mail.
  await writeFile(join(dir, "carol.ext"), "subjectAltName=email:carol@example.test\nextendedKeyUsage=serverAuth\n");
  await o("req", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "carol.key"), "-out", join(dir, "carol.csr"), "-subj", "/CN=carol");
  await o("x509", "-req", "-in", join(dir, "carol.csr"), "-CA", ca, "-CAkey", join(dir, "ca.key"), "-CAcreateserial", "-days", "2", "-out", join(dir, "smime-keyring", "carol.crt"), "-extfile", join(dir, "carol.ext"));
  await writeFile(join(dir, "plan.pdf"), Buffer.from("%PDF-1.4 not really a pdf\n\u0000\u0001binary"));

  // The server certificate (mx.example.test, 127.0.0.1) and the WKD one (openpgpkey.example.test); --ca-file trusts both.
  const serverCert = await generateCertificate(["mx.example.test", "127.0.0.1"]);
  const wkdCert = await generateCertificate(["openpgpkey.example.test", "direct.test"]);
  await writeFile(join(dir, "server.crt"), serverCert.certPem);
  await writeFile(join(dir, "server.key"), serverCert.keyPem, { mode: 0o600 });
  await writeFile(join(dir, "trust.pem"), serverCert.certPem + wkdCert.certPem);
  await writeFile(join(dir, "server-only.pem"), serverCert.certPem);
  s = await startWardmail({
    mailboxes: ["alice@example.test", "bob@example.test", "carol@example.test", "dave@example.test"],
    extra: `[auth]\nfailure_delay = 10\n[tls]\ncertificates = [ { cert = ${JSON.stringify(join(dir, "server.crt"))}, key = ${JSON.stringify(join(dir, "server.key"))} } ]\nwatch = false\n`,
  });
  const st = AccountStore.open(s.dataDir, { create: true, localDomains: ["example.test", "localhost"] });
  try {
    await st.addAccount("alice@example.test", PW);
  } finally {
    st.close();
  }
  // WKD for example.test: DNS answers openpgpkey.example.test = 127.0.0.1; HTTPS serves dave's key only.
  dns = await startTestDnsServer({ "openpgpkey.example.test": { A: ["127.0.0.1"] }, "mx.example.test": { A: ["127.0.0.1"] }, "direct.test": { A: ["127.0.0.1"] } });
  wkdPort = await freePort();
  wkd = createServer({ cert: wkdCert.certPem, key: wkdCert.keyPem }, (req, res) => {
    wkdRequests.push(req.url ?? "");
    const url = req.url ?? "";
    // dave: his key; mallory: dave's key (not carrying mallory's address); big: more than 256 KiB.
    if (url.endsWith("?l=dave") || url.endsWith("?l=mallory")) {
      res.writeHead(200, { "content-type": "application/octet-stream" }).end(wkdKey);
    } else if (url.startsWith("/.well-known/openpgpkey/hu/") && url.endsWith("?l=frank")) {
      res.writeHead(200, { "content-type": "application/octet-stream" }).end(frankKey);
    } else if (url.endsWith("?l=big")) {
      res.writeHead(200, { "content-type": "application/octet-stream" }).end(Buffer.alloc(300 * 1024, 0x99));
    } else res.writeHead(404).end();
  });
  await new Promise<void>((r) => wkd?.listen(wkdPort, "127.0.0.1", r));
});

after(async () => {
  await s?.stop().then(() => s?.cleanup());
  await dns?.close();
  await new Promise<void>((r) => (wkd ? wkd.close(() => r()) : r()));
  if (home) await sh("gpgconf", ["--homedir", home, "--kill", "all"]).catch(() => undefined);
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** `wardmail send` with the options every test needs; extra options after. */
function send(args: string[], body = BODY): ReturnType<Wardmail["cli"]> {
  return need().cli(["send", "--from", "alice@example.test", "--password-file", join(dir, "password"), "--ca-file", join(dir, "trust.pem"), "--tls-name", "mx.example.test", ...args], body);
}

const submission = (): string => `127.0.0.1:${need().submissionPort}`;
const submissions = (): string => `127.0.0.1:${need().submissionsPort}`;

const seenFiles = new Set<string>();

/** The one message that arrived in the Maildir of address since the last call (waits up to 15 s). */
async function delivered(address: string): Promise<string> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const fresh = (await need().maildir(address)).filter((f) => !seenFiles.has(f));
    if (fresh.length > 0) {
      assert.equal(fresh.length, 1, `${address}: expected one new message, got ${fresh.length}`);
      const file = fresh[0] as string;
      seenFiles.add(file);
      return readFile(file, "latin1");
    }
    assert.ok(Date.now() < deadline, `no new message for ${address}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function subjectHeader(msg: string): string | undefined {
  const head = msg.split(/\r?\n\r?\n/, 1)[0] ?? "";
  return /^Subject: (.*)$/im.exec(head)?.[1];
}

describe("wardmail send", { skip: missing }, () => {
  test("PGP/MIME --sign --encrypt over STARTTLS with SCRAM-SHA-256-PLUS: gpg decrypts, reports a good signature and the body", async () => {
    const r = await send(["--server", submission(), "--to", "bob@example.test", "--subject", "Secret plan", "--attach", join(dir, "plan.pdf"), "--sign", "--encrypt", "--keyring", join(dir, "keyring"), "--secret-key", join(dir, "alice-secret.asc"), "--passphrase-file", join(dir, "passphrase"), "--no-wkd"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /over TLSv1\.3 with SCRAM-SHA-256-PLUS: 250/);
    assert.ok(await waitForLog(() => need().output(), "auth ok", (l) => l.mechanism === "SCRAM-SHA-256-PLUS" && l.user === "alice@example.test"), need().output().slice(-2000));
    assert.doesNotMatch(r.stdout + r.stderr + need().output(), /alice-password-1|alice key passphrase/);
    const msg = await delivered("bob@example.test");
    assert.match(msg, /Content-Type: multipart\/encrypted;[\s\S]*protocol="application\/pgp-encrypted"/);
    assert.equal(subjectHeader(msg), "[...]", "header protection: the outer Subject is hidden");
    assert.doesNotMatch(msg, /Secret plan|the plan is in/);
    const file = join(dir, "pgp-encrypted.eml");
    await writeFile(file, msg, "latin1");
    const d = await sh("gpg", gpg("--status-fd", "2", "--decrypt", file));
    assert.equal(d.code, 0, d.out);
    assert.match(d.out, /\[GNUPG:\] DECRYPTION_OKAY/);
    assert.match(d.out, /\[GNUPG:\] GOODSIG [0-9A-F]+ Alice <alice@example\.test>/);
    assert.match(d.out, /\[GNUPG:\] VALIDSIG /);
    const inner = d.stdout.toString("utf8");
    assert.match(inner, /hp="cipher"/);
    assert.match(inner, /^Subject: Secret plan\r?$/m);
    assert.match(inner, /the plan is in the attachment\./);
    assert.match(inner, /Gr=C3=BC=C3=9Fe, Alice/);
    // Sequoia agrees: decrypts with bob's key and verifies alice's signature.
    const armored = /-----BEGIN PGP MESSAGE-----[\s\S]*?-----END PGP MESSAGE-----/.exec(msg)?.[0];
    assert.ok(armored, "armored OpenPGP message in the MIME structure");
    await writeFile(join(dir, "pgp-encrypted.asc"), armored.replace(/\r\n/g, "\n") + "\n");
    const sq = await sh("sq", ["decrypt", "--recipient-key", join(dir, "bob-secret.asc"), "--signer-cert", join(dir, "alice.asc"), join(dir, "pgp-encrypted.asc")]);
    assert.equal(sq.code, 0, sq.out);
    assert.match(sq.out, /Good signature/);
    assert.match(sq.stdout.toString(), /the plan is in the attachment\./);
    assert.match(inner, /Content-Type: application\/pdf\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="plan\.pdf"/);
  });

  test("PGP/MIME --sign only over implicit TLS: multipart/signed that gpg --verify accepts", async () => {
    const r = await send(["--server", submissions(), "--implicit-tls", "--to", "bob@example.test", "--subject", "Signed note", "--sign", "--secret-key", join(dir, "alice-secret.asc"), "--passphrase-file", join(dir, "passphrase")]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const msg = await delivered("bob@example.test");
    assert.equal(subjectHeader(msg), "Signed note");
    const boundary = /boundary="([^"]+)"/.exec(msg)?.[1];
    assert.ok(boundary, msg);
    assert.match(msg, /micalg=pgp-sha(256|384|512)/);
    const parts = msg.split(new RegExp(`\\r?\\n?--${boundary.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?:--)?\\r?\\n`));
    const signed = (parts[1] ?? "").replace(/\r?\n/g, "\r\n");
    const sig = (parts[2] ?? "").split(/\r?\n\r?\n/).slice(1).join("\n\n");
    await writeFile(join(dir, "signed.part"), signed, "latin1");
    await writeFile(join(dir, "signed.asc"), sig, "latin1");
    const v = await sh("gpg", gpg("--status-fd", "2", "--verify", join(dir, "signed.asc"), join(dir, "signed.part")));
    assert.equal(v.code, 0, v.out);
    assert.match(v.out, /\[GNUPG:\] GOODSIG [0-9A-F]+ Alice <alice@example\.test>/);
    // micalg names the hash gpg found in the signature (VALIDSIG field 9: 8 SHA-256, 9 SHA-384, 10 SHA-512).
    const hashAlgo = /\[GNUPG:\] VALIDSIG (?:\S+ ){7}(\d+)/.exec(v.out)?.[1];
    assert.equal(/micalg=(pgp-sha\d+)/.exec(msg)?.[1], { "8": "pgp-sha256", "9": "pgp-sha384", "10": "pgp-sha512" }[hashAlgo ?? ""], v.out);
    const sq = await sh("sq", ["verify", "--signer-cert", join(dir, "alice.asc"), "--detached", join(dir, "signed.asc"), join(dir, "signed.part")]);
    assert.equal(sq.code, 0, sq.out);
    assert.match(sq.out, /Good signature/);
  });

  test("S/MIME --sign --encrypt: openssl cms -decrypt then -verify succeed; the body is inside", async () => {
    const r = await send(["--server", submission(), "--to", "bob@example.test", "--subject", "S/MIME plan", "--sign", "--encrypt", "--smime", "--keyring", join(dir, "smime-keyring"), "--secret-key", join(dir, "alice-smime.pem")]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const msg = await delivered("bob@example.test");
    assert.match(msg, /Content-Type: application\/pkcs7-mime; smime-type=enveloped-data/);
    assert.equal(subjectHeader(msg), "[...]");
    const file = join(dir, "smime.eml");
    await writeFile(file, msg, "latin1");
    const dec = join(dir, "smime-decrypted.eml");
    await ok("openssl", ["cms", "-decrypt", "-in", file, "-recip", join(dir, "bob.crt"), "-inkey", join(dir, "bob.key"), "-out", dec]);
    const v = await sh("openssl", ["cms", "-verify", "-in", dec, "-CAfile", join(dir, "ca.pem"), "-purpose", "smimesign"]);
    assert.equal(v.code, 0, v.out);
    assert.match(v.out, /Verification successful/);
    assert.match(v.out, /the plan is in the attachment\./);
    assert.match(v.out, /^Subject: S\/MIME plan\r?$/m);
  });

  test("S/MIME --sign only (multipart/signed, openssl cms -verify) and --encrypt only (openssl cms -decrypt)", async () => {
    const signed = await send(["--server", submission(), "--to", "bob@example.test", "--subject", "S/MIME signed", "--sign", "--smime", "--secret-key", join(dir, "alice-smime.pem")]);
    assert.equal(signed.code, 0, signed.stdout + signed.stderr);
    const msg = await delivered("bob@example.test");
    assert.match(msg, /Content-Type: multipart\/signed;[\s\S]*protocol="application\/pkcs7-signature"/);
    assert.equal(subjectHeader(msg), "S/MIME signed");
    await writeFile(join(dir, "smime-signed.eml"), msg, "latin1");
    const v = await sh("openssl", ["cms", "-verify", "-in", join(dir, "smime-signed.eml"), "-CAfile", join(dir, "ca.pem"), "-purpose", "smimesign"]);
    assert.equal(v.code, 0, v.out);
    assert.match(v.out, /Verification successful/);
    // Tampering with one byte of the signed part breaks it.
    await writeFile(join(dir, "smime-tampered.eml"), msg.replace("the plan is in", "the plan is at"), "latin1");
    const t = await sh("openssl", ["cms", "-verify", "-in", join(dir, "smime-tampered.eml"), "-CAfile", join(dir, "ca.pem"), "-purpose", "smimesign"]);
    assert.notEqual(t.code, 0, t.out);
    const enc = await send(["--server", submission(), "--to", "bob@example.test", "--subject", "S/MIME encrypted", "--encrypt", "--smime", "--keyring", join(dir, "smime-keyring")]);
    assert.equal(enc.code, 0, enc.stdout + enc.stderr);
    const emsg = await delivered("bob@example.test");
    await writeFile(join(dir, "smime-enc.eml"), emsg, "latin1");
    const d = await sh("openssl", ["cms", "-decrypt", "-in", join(dir, "smime-enc.eml"), "-recip", join(dir, "bob.crt"), "-inkey", join(dir, "bob.key")]);
    assert.equal(d.code, 0, d.out);
    assert.match(d.out, /^Subject: S\/MIME encrypted\r?$/m);
    assert.match(d.out, /the plan is in the attachment\./);
  });

  test("--encrypt with a recipient whose key is missing, expired, revoked or not for email: exit 1, names the recipient, nothing sent", async () => {
    const before = (await need().maildir("carol@example.test")).length + (await need().maildir("bob@example.test")).length;
    for (const smime of [false, true]) {
      const r = await send(["--server", submission(), "--to", "bob@example.test", "--to", "carol@example.test", "--subject", "Not for Carol", "--encrypt", "--no-wkd", "--keyring", join(dir, smime ? "smime-keyring" : "keyring"), ...(smime ? ["--smime"] : [])]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, smime ? /carol@example\.test: certificate [0-9A-F]+: not for email protection/ : /carol@example\.test: no OpenPGP key for carol@example\.test/);
      assert.match(r.stderr, /nothing was sent/);
      assert.doesNotMatch(r.stderr, /bob@example\.test:/);
    }
    const expired = await send(["--server", submission(), "--to", "erin@example.test", "--subject", "Expired", "--encrypt", "--no-wkd", "--keyring", join(dir, "keyring")]);
    assert.equal(expired.code, 1, expired.stdout + expired.stderr);
    assert.match(expired.stderr, /erin@example\.test: OpenPGP key [0-9A-F]{40}: expired/);
    const revoked = await send(["--server", submission(), "--to", "grace@example.test", "--subject", "Revoked", "--encrypt", "--no-wkd", "--keyring", join(dir, "keyring")]);
    assert.equal(revoked.code, 1, revoked.stdout + revoked.stderr);
    assert.match(revoked.stderr, /grace@example\.test: OpenPGP key [0-9A-F]{40}: revoked/);
    // Certificates are checked against their dates: bob's (2 days) is expired three days from now.
    const [bobCert] = pemCertificates(await readFile(join(dir, "bob.crt"), "utf8"));
    assert.ok(bobCert);
    assert.equal(certFor([bobCert], "bob@example.test").ok, true);
    const later = certFor([bobCert], "bob@example.test", new Date(Date.now() + 3 * 86_400_000));
    assert.ok(!later.ok && /expired/.test(later.reason), JSON.stringify(later));
    assert.ok(!certFor([bobCert], "alice@example.test").ok);
    await new Promise((res) => setTimeout(res, 500));
    assert.equal((await need().maildir("carol@example.test")).length + (await need().maildir("bob@example.test")).length, before);
  });

  test("WKD: advanced method (openpgpkey.example.test) and direct method (direct.test), names through --dns; gpg decrypts; 404, a key without the address and an oversized answer refused", async () => {
    const hash = /^\s+([a-z0-9]{32})@example\.test$/m.exec((await ok("gpg", gpg("--with-wkd-hash", "--list-keys", "dave@example.test"))).toString())?.[1];
    assert.ok(hash, "gpg --with-wkd-hash");
    const d = need();
    // The server by name too: mx.example.test resolved through --dns.
    const r = await send(["--server", `mx.example.test:${d.submissionPort}`, "--to", "dave@example.test", "--subject", "Via WKD", "--encrypt", "--dns", `127.0.0.1:${dns?.port ?? 0}`, "--wkd-port", String(wkdPort)]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stderr, /key for dave@example\.test from its Web Key Directory/);
    assert.ok(wkdRequests.includes(`/.well-known/openpgpkey/example.test/hu/${hash}?l=dave`), JSON.stringify(wkdRequests));
    const files = await d.waitForMail("dave@example.test", 1, 15_000);
    const file = files[0] as string;
    const dec = await sh("gpg", gpg("--status-fd", "2", "--decrypt", file));
    assert.equal(dec.code, 0, dec.out);
    assert.match(dec.stdout.toString(), /the plan is in the attachment\./);
    // carol has no key in WKD (404): refused, nothing sent.
    const no = await send(["--server", submission(), "--to", "carol@example.test", "--subject", "No key", "--encrypt", "--dns", `127.0.0.1:${dns?.port ?? 0}`, "--wkd-port", String(wkdPort)]);
    assert.equal(no.code, 1, no.stdout + no.stderr);
    assert.match(no.stderr, /carol@example\.test: .*WKD: .*HTTP 404/);
    const wrongKey = await send(["--server", submission(), "--to", "mallory@example.test", "--subject", "No key", "--encrypt", "--dns", `127.0.0.1:${dns?.port ?? 0}`, "--wkd-port", String(wkdPort)]);
    assert.equal(wrongKey.code, 1, wrongKey.stdout + wrongKey.stderr);
    assert.match(wrongKey.stderr, /mallory@example\.test: .*WKD: the key from https:\/\/openpgpkey\.example\.test does not carry mallory@example\.test/);
    // direct.test has no openpgpkey. name: the direct method on direct.test itself.
    const direct = await send(["--server", submission(), "--to", "frank@direct.test", "--subject", "Direct", "--encrypt", "--dns", `127.0.0.1:${dns?.port ?? 0}`, "--wkd-port", String(wkdPort)]);
    assert.equal(direct.code, 0, direct.stdout + direct.stderr);
    const frankHash = /^\s+([a-z0-9]{32})@direct\.test$/m.exec((await ok("gpg", gpg("--with-wkd-hash", "--list-keys", "frank@direct.test"))).toString())?.[1];
    assert.ok(wkdRequests.includes(`/.well-known/openpgpkey/hu/${frankHash ?? "?"}?l=frank`), JSON.stringify(wkdRequests));
    const big = await send(["--server", submission(), "--to", "big@example.test", "--subject", "No key", "--encrypt", "--dns", `127.0.0.1:${dns?.port ?? 0}`, "--wkd-port", String(wkdPort)]);
    assert.equal(big.code, 1, big.stdout + big.stderr);
    assert.match(big.stderr, /big@example\.test: .*WKD: .*larger than 262144 bytes/);
  });

  test("certificate checks: an untrusted server certificate fails (exit 3); --insecure-tls sends; a wrong password is refused (exit 1)", async () => {
    const untrusted = await need().cli(["send", "--server", submissions(), "--implicit-tls", "--from", "alice@example.test", "--to", "bob@example.test", "--subject", "x", "--password-file", join(dir, "password")], "hi\n");
    assert.equal(untrusted.code, 3, untrusted.stdout + untrusted.stderr);
    assert.match(untrusted.stderr, /certificate/);
    const wrongName = await send(["--server", submissions(), "--implicit-tls", "--tls-name", "other.example.test", "--to", "bob@example.test", "--subject", "x"]);
    assert.equal(wrongName.code, 3, wrongName.stdout + wrongName.stderr);
    const insecure = await need().cli(["send", "--server", submission(), "--insecure-tls", "--from", "alice@example.test", "--to", "carol@example.test", "--subject", "Plain", "--password-file", join(dir, "password")], "plain text\n");
    assert.equal(insecure.code, 0, insecure.stdout + insecure.stderr);
    await writeFile(join(dir, "wrong"), "not-the-password\n");
    const wrong = await send(["--server", submission(), "--to", "bob@example.test", "--subject", "x", "--password-file", join(dir, "wrong")]);
    assert.equal(wrong.code, 1, wrong.stdout + wrong.stderr);
    assert.match(wrong.stderr, /535/);
    assert.doesNotMatch(wrong.stderr + wrong.stdout, /not-the-password/);
  });

  test("passphrase and password asked on the terminal (a pty from script(1)), not echoed; the body still from stdin", async () => {
    const body = join(dir, "body.txt");
    await writeFile(body, BODY);
    const q = (a: string): string => `'${a.replace(/'/g, "'\\''")}'`;
    const cmd = [process.execPath, BIN, "send", "--server", submission(), "--from", "alice@example.test", "--to", "bob@example.test", "--subject", "Typed", "--ca-file", join(dir, "trust.pem"), "--tls-name", "mx.example.test", "--sign", "--secret-key", join(dir, "alice-secret.asc")].map(q).join(" ") + ` < ${q(body)}`;
    const child = spawn("script", ["-q", "-e", "-c", cmd, "/dev/null"], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
    const until = async (re: RegExp): Promise<void> => {
      const deadline = Date.now() + 20_000;
      while (!re.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.match(out, re);
    };
    try {
      await until(/Passphrase for the secret key: /);
      child.stdin.write(PASSPHRASE + "\r");
      await until(/Password for alice@example\.test: /);
      child.stdin.write(PW + "\r");
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      const code = await exited;
      clearTimeout(timer);
      assert.equal(code, 0, out);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
    assert.match(out, /sent \(signed, PGP\/MIME\) to bob@example\.test/);
    assert.doesNotMatch(out, /alice-password-1|alice key passphrase/);
    const msg = await delivered("bob@example.test");
    assert.equal(subjectHeader(msg), "Typed");
  });
});
