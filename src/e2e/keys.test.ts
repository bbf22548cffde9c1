/**
 * Recipient key validation (OpenPGP keys made with OpenPGP.js, X.509
 * certificates made with the openssl command at test time) and the key
 * store in the accounts database: import, list, remove, aliases, a
 * re-created account not inheriting the old owner's keys.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as openpgp from "openpgp";
import { AccountError, AccountStore } from "../accounts/index.ts";
import { KeyError, KeyStore, normalizeFingerprint, parseRecipientKey, unusableAt, MAX_KEYS_PER_ACCOUNT } from "./index.ts";

const ADDR = "user@example.test";
let dir: string;
let n = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wardmail-e2e-keys-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function pgpKey(opts: { email?: string; date?: Date; keyExpirationTime?: number } = {}): Promise<{ publicKey: string; privateKey: string }> {
  return openpgp.generateKey({
    type: "curve25519",
    userIDs: [{ name: "User", email: opts.email ?? ADDR }],
    format: "armored",
    ...(opts.date !== undefined ? { date: opts.date } : {}),
    ...(opts.keyExpirationTime !== undefined ? { keyExpirationTime: opts.keyExpirationTime } : {}),
  });
}

/** A self-signed certificate made by openssl; returns the PEM certificate. */
async function cert(opts: { key?: string; san?: string; ext?: string[]; days?: number; pkeyopt?: string } = {}): Promise<string> {
  const d = join(dir, `c${++n}`);
  execFileSync("mkdir", ["-p", d]);
  const args = ["req", "-x509", "-newkey", opts.key ?? "rsa:2048", "-nodes", "-keyout", join(d, "key.pem"), "-out", join(d, "cert.pem"), "-days", String(opts.days ?? 30), "-subj", "/CN=User"];
  if (opts.pkeyopt !== undefined) args.push("-pkeyopt", opts.pkeyopt);
  if (opts.san !== "") args.push("-addext", `subjectAltName=${opts.san ?? `email:${ADDR}`}`);
  for (const e of opts.ext ?? []) args.push("-addext", e);
  execFileSync("openssl", args, { stdio: "ignore" });
  return readFile(join(d, "cert.pem"), "utf8");
}

describe("OpenPGP keys", () => {
  test("a valid public key: fingerprint, addresses, no expiry; its data is the armored public key", async () => {
    const { publicKey } = await pgpKey();
    const k = await parseRecipientKey(publicKey, [ADDR]);
    assert.equal(k.kind, "pgp");
    assert.match(k.info.fingerprint, /^[0-9A-F]{40}$/);
    assert.deepEqual(k.info.addresses, [ADDR]);
    assert.equal(k.info.expires, null);
    assert.match(k.info.data, /^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
    assert.equal(await unusableAt(k, new Date()), undefined);
  });

  test("refused: a private key, another address, expired, revoked, garbage, too large", async () => {
    const { publicKey, privateKey } = await pgpKey();
    await assert.rejects(parseRecipientKey(privateKey, [ADDR]), (e: Error) => e instanceof KeyError && /private key/.test(e.message));
    await assert.rejects(parseRecipientKey(publicKey, ["other@example.test"]), /the key is for user@example\.test, not for other@example\.test/);
    const old = await pgpKey({ date: new Date(Date.now() - 10 * 86_400_000), keyExpirationTime: 86_400 });
    await assert.rejects(parseRecipientKey(old.publicKey, [ADDR]), /not valid now|no valid encryption subkey/);
    const priv = await openpgp.readPrivateKey({ armoredKey: privateKey });
    const revoked = await openpgp.revokeKey({ key: priv, format: "armored" });
    await assert.rejects(parseRecipientKey(revoked.publicKey, [ADDR]), /not valid now/);
    await assert.rejects(parseRecipientKey("hello", [ADDR]), /not an armored OpenPGP public key/);
    await assert.rejects(parseRecipientKey("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxx\n-----END PGP PUBLIC KEY BLOCK-----\n", [ADDR]), /cannot read the OpenPGP key/);
    await assert.rejects(parseRecipientKey("x".repeat(2 * 1024 * 1024), [ADDR]), /larger than/);
  });

  test("a key that expires later is usable now and not after its expiry", async () => {
    const { publicKey } = await pgpKey({ keyExpirationTime: 7 * 86_400 });
    const k = await parseRecipientKey(publicKey, [ADDR]);
    assert.ok(k.info.expires !== null && k.info.expires > Date.now());
    assert.equal(await unusableAt(k, new Date()), undefined);
    assert.match((await unusableAt(k, new Date(Date.now() + 8 * 86_400_000))) ?? "", /cannot encrypt now/);
  });
});

describe("X.509 certificates", () => {
  test("an RSA certificate with the address in subjectAltName", async () => {
    const pem = await cert({ ext: ["keyUsage=digitalSignature,keyEncipherment", "extendedKeyUsage=emailProtection"] });
    const k = await parseRecipientKey(pem, [ADDR]);
    assert.equal(k.kind, "smime");
    assert.match(k.info.fingerprint, /^[0-9A-F]{64}$/);
    assert.deepEqual(k.info.addresses, [ADDR]);
    assert.equal(k.info.algorithm, "X.509 RSA 2048");
    assert.ok(k.info.expires !== null && k.info.expires > Date.now());
    assert.match((await unusableAt(k, new Date(Date.now() + 40 * 86_400_000))) ?? "", /expired/);
    await assert.rejects(parseRecipientKey(pem, [ADDR], new Date(Date.now() + 40 * 86_400_000)), /expired on/);
  });

  test("EC certificates on P-256, P-384 and P-521 (ECDH key agreement)", async () => {
    for (const [curve, name] of [["prime256v1", "P-256"], ["secp384r1", "P-384"], ["secp521r1", "P-521"]] as const) {
      const k = await parseRecipientKey(await cert({ key: "ec", pkeyopt: `ec_paramgen_curve:${curve}`, ext: ["keyUsage=digitalSignature,keyAgreement"] }), [ADDR]);
      assert.equal(k.info.algorithm, `X.509 EC ${name}`);
    }
  });

  test("refused: another curve, EC without keyAgreement, Ed25519, short RSA, no e-mail SAN, keyUsage without keyEncipherment, EKU without emailProtection, a private key, two certificates", async () => {
    await assert.rejects(parseRecipientKey(await cert({ key: "ec", pkeyopt: "ec_paramgen_curve:secp256k1" }), [ADDR]), /curve secp256k1; P-256, P-384 and P-521 are supported/);
    await assert.rejects(parseRecipientKey(await cert({ key: "ec", pkeyopt: "ec_paramgen_curve:prime256v1", ext: ["keyUsage=digitalSignature,keyEncipherment"] }), [ADDR]), /keyAgreement/);
    await assert.rejects(parseRecipientKey(await cert({ key: "ed25519" }), [ADDR]), /neither RSA nor EC/);
    await assert.rejects(parseRecipientKey(await cert({ key: "rsa:1024" }), [ADDR]), /1024 bits; at least 2048/);
    await assert.rejects(parseRecipientKey(await cert({ san: "DNS:example.test" }), [ADDR]), /no e-mail address/);
    await assert.rejects(parseRecipientKey(await cert({ ext: ["keyUsage=digitalSignature"] }), [ADDR]), /keyEncipherment/);
    await assert.rejects(parseRecipientKey(await cert({ ext: ["extendedKeyUsage=serverAuth"] }), [ADDR]), /emailProtection/);
    await assert.rejects(parseRecipientKey(await cert({ san: "email:other@example.test" }), [ADDR]), /not for user@example\.test/);
    const pem = await cert();
    await assert.rejects(parseRecipientKey(pem + "-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----\n", [ADDR]), /private key/);
    await assert.rejects(parseRecipientKey(pem + pem, [ADDR]), /2 certificates/);
  });
});

describe("the key store", () => {
  function fresh(): AccountStore {
    return AccountStore.open(join(dir, `d${++n}`), { create: true, localDomains: ["example.test"] });
  }

  test("import, update, list, remove; aliases stand for the account; limits", async () => {
    const accounts = fresh();
    await accounts.addAccount(ADDR, "correct horse battery");
    accounts.addAlias("alias@example.test", ADDR);
    const keys = new KeyStore(accounts);
    await assert.rejects(keys.import("nobody@example.test", (await pgpKey()).publicKey), (e: Error) => e instanceof AccountError && /no such account/.test(e.message));
    // A key for the alias's address is a key of the account.
    const pgp = await pgpKey({ email: "alias@example.test" });
    const first = await keys.import("alias@example.test", pgp.publicKey);
    assert.equal(first.key.account, ADDR);
    assert.equal(first.replaced, false);
    assert.equal((await keys.import(ADDR, pgp.publicKey)).replaced, true);
    const pem = await cert();
    await keys.import(ADDR, pem);
    const list = keys.list("ALIAS@example.test");
    assert.deepEqual(list.map((k) => k.kind), ["pgp", "smime"]);
    assert.deepEqual(keys.list().map((k) => k.account), [ADDR, ADDR]);
    assert.equal((await keys.keysFor(ADDR)).length, 2);
    assert.equal((await keys.keysFor("alias@example.test")).length, 2);
    assert.deepEqual(await keys.keysFor("other@example.test"), []);
    // Remove by the last 16 hex digits, spaced and in lower case.
    const fp = list[1]?.fingerprint ?? "";
    const tail = fp.slice(-16).toLowerCase().replace(/(.{4})/g, "$1 ");
    assert.equal(keys.remove(ADDR, tail).length, 1);
    assert.equal(keys.remove(ADDR, tail).length, 0);
    assert.throws(() => normalizeFingerprint("xyz"), KeyError);
    assert.equal(keys.remove(ADDR).length, 1);
    assert.deepEqual(keys.list(ADDR), []);
    // A revoked version of a stored key is refused, and the refusal says the stored one is still used.
    const gen = await pgpKey();
    const stored = await keys.import(ADDR, gen.publicKey);
    const revoked = await openpgp.revokeKey({ key: await openpgp.readPrivateKey({ armoredKey: gen.privateKey }), format: "armored" });
    await assert.rejects(keys.import(ADDR, revoked.publicKey), new RegExp(`not valid now.*the stored key ${stored.key.fingerprint} stays in use until you remove it`));
    accounts.close();
  });

  test("at most MAX_KEYS_PER_ACCOUNT keys; a re-created account does not get the old owner's keys", async () => {
    const accounts = fresh();
    await accounts.addAccount(ADDR, "correct horse battery");
    const keys = new KeyStore(accounts);
    for (let i = 0; i < MAX_KEYS_PER_ACCOUNT; i++) await keys.import(ADDR, (await pgpKey()).publicKey);
    await assert.rejects(keys.import(ADDR, (await pgpKey()).publicKey), /has 10 keys already/);
    accounts.removeAccount(ADDR);
    await new Promise((r) => setTimeout(r, 5)); // a new creation time
    await accounts.addAccount(ADDR, "correct horse battery");
    assert.deepEqual(keys.list(ADDR), []);
    assert.deepEqual(await keys.keysFor(ADDR), []);
    await keys.import(ADDR, (await pgpKey()).publicKey);
    assert.equal(keys.list(ADDR).length, 1);
    accounts.close();
  });
});
