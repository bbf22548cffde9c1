/**
 * EncryptionThread: a message above the in-line limit is encrypted in the
 * thread and decrypts (openssl cms -decrypt, OpenPGP.js) to the original;
 * small ones are encrypted in place; a failing task rejects and the thread
 * keeps serving; close() fails what is in flight.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import * as openpgp from "openpgp";
import { EncryptionThread, isEncrypted, parseRecipientKey, type UsableKey } from "./index.ts";

const ADDR = "user@example.test";
let dir: string;
let smime: UsableKey;
let pgp: { key: UsableKey; privateKey: openpgp.PrivateKey };
const thread = new EncryptionThread({ inlineMax: 1024 });

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wardmail-e2e-thread-"));
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "2", "-subj", "/CN=u", "-addext", `subjectAltName=email:${ADDR}`], { stdio: "ignore" });
  smime = await parseRecipientKey(await readFile(join(dir, "cert.pem")), [ADDR]);
  const gen = await openpgp.generateKey({ type: "curve25519", userIDs: [{ email: ADDR }], format: "object" });
  pgp = { key: await parseRecipientKey(gen.publicKey.armor(), [ADDR]), privateKey: gen.privateKey };
});
after(async () => {
  thread.close();
  await rm(dir, { recursive: true, force: true });
});

function message(bodyBytes: number): Buffer {
  const body = randomBytes(bodyBytes / 2).toString("hex").replace(/(.{76})/g, "$1\r\n");
  return Buffer.from(`From: a@b.test\r\nTo: ${ADDR}\r\nSubject: big\r\n\r\n${body}\r\n`, "latin1");
}

test("a large message is encrypted in the thread: S/MIME (openssl cms -decrypt) and PGP/MIME (OpenPGP.js) give the original", async () => {
  const raw = message(300_000);
  const [a, b] = await Promise.all([thread.encrypt(raw, [smime]), thread.encrypt(raw, [pgp.key])]);
  assert.ok(isEncrypted(a) && isEncrypted(b));
  await writeFile(join(dir, "a.eml"), a);
  execFileSync("openssl", ["cms", "-decrypt", "-in", join(dir, "a.eml"), "-recip", join(dir, "cert.pem"), "-inkey", join(dir, "key.pem"), "-out", join(dir, "a.out")], { stdio: "pipe" });
  assert.ok((await readFile(join(dir, "a.out"))).equals(raw));
  const armored = /-----BEGIN PGP MESSAGE-----[\s\S]*-----END PGP MESSAGE-----/.exec(b.toString("latin1"))?.[0] ?? "";
  const dec = await openpgp.decrypt({ message: await openpgp.readMessage({ armoredMessage: armored }), decryptionKeys: pgp.privateKey, format: "binary" });
  assert.ok(Buffer.from(dec.data as unknown as Uint8Array).equals(raw));
});

test("a small message is encrypted in place; a failing task rejects and the thread keeps working; tasks queue; close fails what is in flight and waiting", async () => {
  assert.ok(isEncrypted(await thread.encrypt(message(200), [smime])));
  const broken = { ...smime, info: { ...smime.info, data: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" } } as UsableKey;
  await assert.rejects(thread.encrypt(message(10_000), [broken]), /cannot read the certificate/);
  assert.ok(isEncrypted(await thread.encrypt(message(10_000), [smime])));
  // More tasks than the thread takes at once wait their turn.
  const many = await Promise.all(Array.from({ length: 5 }, () => thread.encrypt(message(20_000), [smime])));
  assert.ok(many.every(isEncrypted));
  const other = new EncryptionThread({ inlineMax: 0 });
  const inFlight = [0, 1, 2].map(() => other.encrypt(message(2_000_000), [smime]));
  other.close();
  for (const p of inFlight) await assert.rejects(p, /encryption thread closed/);
});
