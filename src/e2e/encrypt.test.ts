/**
 * encryptForStore: the MIME structure of PGP/MIME (RFC 3156) and S/MIME
 * (RFC 8551) copies, and that decrypting gives the original back byte for
 * byte: PGP with OpenPGP.js and the private key, S/MIME with `openssl cms
 * -decrypt` (an independent reader). StoreEncryption: no key, already
 * encrypted, unusable keys, both kinds of keys.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as openpgp from "openpgp";
import { encryptForStore, isEncrypted, parseRecipientKey, StoreEncryption, type UsableKey } from "./index.ts";

const ADDR = "user@example.test";
let dir: string;
let pgp: { key: UsableKey; privateKey: openpgp.PrivateKey };
let smime: UsableKey;
let ec: UsableKey;

/** Bytes a mail reader must get back exactly: 8-bit text, a dot line, CRLF, no final newline oddities. */
const RAW = Buffer.concat([
  Buffer.from(
    "Received: from client.test (127.0.0.1)\r\n\tby mx.example.test; Mon, 7 Dec 2026 08:00:00 +0000\r\n" +
      "From: Alice <alice@b.test>\r\nTo: user@example.test\r\nSubject: the secret plans\r\nDate: Mon, 7 Dec 2026 08:00:00 +0000\r\n" +
      "Message-ID: <1@b.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
  ),
  Buffer.from(".a dot line\r\nGrüße ✓\r\n\r\n\r\nend\r\n", "utf8"),
]);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wardmail-e2e-enc-"));
  const gen = await openpgp.generateKey({ type: "curve25519", userIDs: [{ email: ADDR }], format: "object" });
  pgp = { key: await parseRecipientKey(gen.publicKey.armor(), [ADDR]), privateKey: gen.privateKey };
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "30", "-subj", "/CN=User", "-addext", `subjectAltName=email:${ADDR}`], { stdio: "ignore" });
  smime = await parseRecipientKey(await readFile(join(dir, "cert.pem")), [ADDR]);
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1", "-nodes", "-keyout", join(dir, "ec-key.pem"), "-out", join(dir, "ec-cert.pem"), "-days", "30", "-subj", "/CN=User", "-addext", `subjectAltName=email:${ADDR}`], { stdio: "ignore" });
  ec = await parseRecipientKey(await readFile(join(dir, "ec-cert.pem")), [ADDR]);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function splitAt(buf: Buffer): { header: string; body: string } {
  const s = buf.toString("latin1");
  const i = s.indexOf("\r\n\r\n");
  return { header: s.slice(0, i + 2), body: s.slice(i + 4) };
}

test("PGP/MIME: multipart/encrypted with the version part and the armored message; decrypts to the original", async () => {
  const out = await encryptForStore(RAW, [pgp.key]);
  assert.equal(isEncrypted(out), true);
  const { header, body } = splitAt(out);
  assert.match(header, /^Subject: \[\.\.\.\]\r$/m);
  assert.doesNotMatch(out.toString("latin1"), /secret plans/);
  assert.match(header, /^Received: from client\.test \(127\.0\.0\.1\)\r\n\tby mx\.example\.test/m);
  assert.match(header, /^Message-ID: <1@b\.test>\r$/m);
  const ct = /^Content-Type: multipart\/encrypted; protocol="application\/pgp-encrypted";\r\n boundary="([^"]+)"\r$/m.exec(header);
  assert.ok(ct, header);
  const b = ct[1] ?? "";
  const parts = body.split(`--${b}`);
  assert.equal(parts.length, 4, body); // preamble, version, payload, closing "--"
  assert.match(parts[1] ?? "", /^\r\nContent-Type: application\/pgp-encrypted\r\n[\s\S]*\r\n\r\nVersion: 1\r\n/);
  assert.match(parts[2] ?? "", /^\r\nContent-Type: application\/octet-stream[\s\S]*\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n/);
  assert.equal(parts[3], "--\r\n");
  const armored = /-----BEGIN PGP MESSAGE-----[\s\S]*-----END PGP MESSAGE-----/.exec(parts[2] ?? "")?.[0] ?? "";
  const message = await openpgp.readMessage({ armoredMessage: armored });
  const decrypted = await openpgp.decrypt({ message, decryptionKeys: pgp.privateKey, format: "binary" });
  const data = decrypted.data as unknown as Uint8Array;
  assert.ok(Buffer.from(data).equals(RAW), "decrypted bytes differ from the original");
});

test("S/MIME: application/pkcs7-mime enveloped-data; openssl cms -decrypt gives the original byte for byte", async () => {
  const out = await encryptForStore(RAW, [smime]);
  assert.equal(isEncrypted(out), true);
  const { header, body } = splitAt(out);
  assert.match(header, /^Content-Type: application\/pkcs7-mime; smime-type=enveloped-data; name="smime\.p7m"\r$/m);
  assert.match(header, /^Content-Transfer-Encoding: base64\r$/m);
  assert.match(header, /^Subject: \[\.\.\.\]\r$/m);
  assert.ok(body.split("\r\n").every((l) => l.length <= 76), "base64 lines of at most 76 characters");
  await writeFile(join(dir, "smime.eml"), out);
  execFileSync("openssl", ["cms", "-decrypt", "-in", join(dir, "smime.eml"), "-recip", join(dir, "cert.pem"), "-inkey", join(dir, "key.pem"), "-out", join(dir, "plain.eml")], { stdio: "pipe" });
  assert.ok((await readFile(join(dir, "plain.eml"))).equals(RAW), "openssl's decryption differs from the original");
});

test("S/MIME to an EC certificate (ECDH, AES key wrap) and to RSA and EC together: openssl cms -decrypt with either key", async () => {
  await writeFile(join(dir, "ec.eml"), await encryptForStore(RAW, [ec]));
  await writeFile(join(dir, "both.eml"), await encryptForStore(RAW, [smime, ec]));
  const decrypt = (file: string, cert: string, key: string): Buffer =>
    execFileSync("openssl", ["cms", "-decrypt", "-in", join(dir, file), "-recip", join(dir, cert), "-inkey", join(dir, key)], { stdio: ["ignore", "pipe", "pipe"] });
  assert.ok(decrypt("ec.eml", "ec-cert.pem", "ec-key.pem").equals(RAW));
  assert.ok(decrypt("both.eml", "ec-cert.pem", "ec-key.pem").equals(RAW));
  assert.ok(decrypt("both.eml", "cert.pem", "key.pem").equals(RAW));
});

test("StoreEncryption: no key, already encrypted, OpenPGP preferred over S/MIME, unusable keys", async () => {
  let keys: UsableKey[] = [];
  const enc = new StoreEncryption({ keysFor: async () => Promise.resolve(keys) });
  assert.deepEqual(await enc.contentFor(ADDR, RAW), { kind: "plain", content: RAW, why: "no key" });
  keys = [smime, pgp.key];
  const once = await enc.contentFor(ADDR, RAW);
  assert.equal(once.kind, "encrypted");
  assert.ok(once.kind === "encrypted" && once.format === "pgp" && once.fingerprints.length === 1);
  const again = await enc.contentFor(ADDR, once.kind === "encrypted" ? once.content : RAW);
  assert.equal(again.kind, "plain");
  assert.ok(again.kind === "plain" && again.why === "already encrypted");
  keys = [smime];
  const later = await enc.contentFor(ADDR, RAW, undefined, new Date(Date.now() + 40 * 86_400_000));
  assert.equal(later.kind, "unusable");
  assert.match(later.kind === "unusable" ? later.error : "", /no usable encryption key for user@example\.test: certificate [0-9A-F]+ expired/);
});
