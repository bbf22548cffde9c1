/**
 * Keys for `wardmail send`: the recipients' public keys from a keyring
 * directory (--keyring DIR: armored or binary OpenPGP keys, PEM
 * certificates), the signer's secret key (--secret-key FILE), and the
 * checks that make a key usable for an address: the address is one of its
 * user ids (OpenPGP) or an email of the certificate (SAN rfc822Name), and
 * it is neither expired nor revoked (OpenPGP self-signatures; certificate
 * validity dates and, when present, the emailProtection extended key usage).
 *
 * Certificates in the keyring are trusted as they are (the operator put
 * them there, as with a GnuPG keyring): no chain is built to a CA.
 * Bounded: at most MAX_FILES files of MAX_FILE_BYTES each, MAX_KEYRING_BYTES in all.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import * as openpgp from "openpgp";

export const MAX_FILES = 2000;
export const MAX_FILE_BYTES = 1024 * 1024;
/** All key files of a keyring together. */
export const MAX_KEYRING_BYTES = 64 * 1024 * 1024;

export interface Keyring {
  readonly pgp: readonly openpgp.PublicKey[];
  readonly certs: readonly X509Certificate[];
  /** Files that could not be read as keys or certificates, with why. */
  readonly skipped: readonly string[];
}

/** A key for an address, or why there is none. */
export type Found<T> = { readonly ok: true; readonly key: T } | { readonly ok: false; readonly reason: string };

export class KeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyError";
  }
}

export async function readBounded(file: string, what: string, max = MAX_FILE_BYTES): Promise<Buffer> {
  let st;
  try {
    st = await stat(file);
  } catch (err) {
    throw new KeyError(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  if (!st.isFile()) throw new KeyError(`${what} ${file} is not a file`);
  if (st.size > max) throw new KeyError(`${what} ${file} is larger than ${max} bytes`);
  return readFile(file);
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** Every certificate in a PEM text. */
export function pemCertificates(text: string): X509Certificate[] {
  return (text.match(PEM_CERT) ?? []).map((pem) => new X509Certificate(pem));
}

/** OpenPGP keys in bytes, armored or binary; secret keys give their public part. */
export async function readPgpKeys(data: Buffer): Promise<openpgp.PublicKey[]> {
  const text = data.toString("latin1");
  const keys = text.includes("-----BEGIN PGP ") ? await openpgp.readKeys({ armoredKeys: text }) : await openpgp.readKeys({ binaryKeys: data });
  return keys.map((k) => (k.isPrivate() ? k.toPublic() : (k as openpgp.PublicKey)));
}

export async function loadKeyring(dir: string): Promise<Keyring> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (err) {
    throw new KeyError(`cannot read keyring ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  if (names.length > MAX_FILES) throw new KeyError(`keyring ${dir} has more than ${MAX_FILES} files`);
  const pgp: openpgp.PublicKey[] = [];
  const certs: X509Certificate[] = [];
  const skipped: string[] = [];
  let total = 0;
  for (const name of names) {
    if (!/\.(asc|gpg|pgp|key|pem|crt|cer)$/i.test(name)) continue;
    const file = join(dir, name);
    try {
      const st = await stat(file);
      if (!st.isFile()) continue;
      const data = await readBounded(file, "key file");
      total += data.length;
      if (total > MAX_KEYRING_BYTES) throw new KeyError(`keyring ${dir} holds more than ${MAX_KEYRING_BYTES} bytes of keys`);
      const text = data.toString("latin1");
      if (text.includes("-----BEGIN CERTIFICATE-----")) certs.push(...pemCertificates(text));
      else pgp.push(...(await readPgpKeys(data)));
    } catch (err) {
      if (err instanceof KeyError && total > MAX_KEYRING_BYTES) throw err;
      skipped.push(`${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return { pgp, certs, skipped };
}

/** Does the key carry this address in one of its user ids? */
export function pgpHasAddress(key: openpgp.PublicKey, address: string): boolean {
  const a = address.toLowerCase();
  return key.users.some((u) => u.userID?.email.toLowerCase() === a);
}

/** The first key that has address as a valid user id and a valid encryption (sub)key. */
export async function pgpKeyFor(keys: readonly openpgp.PublicKey[], address: string, now = new Date()): Promise<Found<openpgp.PublicKey>> {
  const reasons: string[] = [];
  const a = address.toLowerCase();
  for (const key of keys) {
    const users = key.users.filter((u) => u.userID?.email.toLowerCase() === a);
    if (users.length === 0) continue;
    const id = key.getFingerprint().toUpperCase();
    try {
      let userOk = false;
      for (const u of users) {
        try {
          await u.verify(now);
          userOk = true;
        } catch {
          // a revoked or unsigned user id: try the next
        }
      }
      if (!userOk) throw new Error(`its user id for ${address} is revoked or not self-signed`);
      await key.getEncryptionKey(undefined, now);
      return { ok: true, key };
    } catch (err) {
      reasons.push(`OpenPGP key ${id}: ${describePgpError(err)}`);
    }
  }
  return { ok: false, reason: reasons.length > 0 ? reasons.join("; ") : `no OpenPGP key for ${address}` };
}

function describePgpError(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  if (/revoked/i.test(m)) return "revoked";
  if (/expired/i.test(m)) return "expired";
  return m.replace(/^Error: /, "");
}

const EMAIL_PROTECTION = "1.3.6.1.5.5.7.3.4";
const ANY_EKU = "2.5.29.37.0";

/** Why a certificate cannot be used for address now, or undefined when it can. */
export function certProblem(cert: X509Certificate, address: string, now = new Date()): string | undefined {
  if (cert.checkEmail(address, { subject: "default" }) === undefined) return `it does not name ${address}`;
  if (now < cert.validFromDate) return `not valid before ${cert.validFrom}`;
  if (now > cert.validToDate) return `expired ${cert.validTo}`;
  const eku = cert.keyUsage;
  if (eku !== undefined && eku.length > 0 && !eku.includes(EMAIL_PROTECTION) && !eku.includes(ANY_EKU)) return "not for email protection (extended key usage)";
  const type = cert.publicKey.asymmetricKeyType;
  if (type !== "rsa" && type !== "ec") return `key type ${String(type)} is not supported for S/MIME`;
  return undefined;
}

export function certFor(certs: readonly X509Certificate[], address: string, now = new Date()): Found<X509Certificate> {
  const reasons: string[] = [];
  for (const cert of certs) {
    if (cert.checkEmail(address, { subject: "default" }) === undefined) continue;
    const p = certProblem(cert, address, now);
    if (p === undefined) return { ok: true, key: cert };
    reasons.push(`certificate ${cert.serialNumber}: ${p}`);
  }
  return { ok: false, reason: reasons.length > 0 ? reasons.join("; ") : `no S/MIME certificate for ${address}` };
}

/** The signer's OpenPGP secret key, decrypted with the passphrase when it is protected. */
export async function readPgpSecretKey(file: string, passphrase: () => Promise<string>): Promise<openpgp.PrivateKey> {
  const data = await readBounded(file, "secret key");
  const text = data.toString("latin1");
  let key: openpgp.PrivateKey;
  try {
    key = text.includes("-----BEGIN PGP ") ? await openpgp.readPrivateKey({ armoredKey: text }) : await openpgp.readPrivateKey({ binaryKey: data });
  } catch (err) {
    throw new KeyError(`${file} is not an OpenPGP secret key: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!key.isDecrypted()) {
    try {
      key = await openpgp.decryptKey({ privateKey: key, passphrase: await passphrase() });
    } catch (err) {
      if (err instanceof KeyError) throw err;
      throw new KeyError(`cannot unlock the secret key in ${file}: wrong passphrase?`);
    }
  }
  try {
    await key.getSigningKey();
  } catch (err) {
    throw new KeyError(`the secret key in ${file} cannot sign: ${describePgpError(err)}`);
  }
  return key;
}

export interface SmimeIdentity {
  readonly key: KeyObject;
  readonly cert: X509Certificate;
  /** Further certificates in the file (the chain), sent along in the signature. */
  readonly chain: readonly X509Certificate[];
}

/** The signer's S/MIME key and certificate: one PEM file with the private key and the certificate (then its chain). */
export async function readSmimeIdentity(file: string, passphrase: () => Promise<string>): Promise<SmimeIdentity> {
  const text = (await readBounded(file, "secret key")).toString("latin1");
  const keyPem = /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----[\s\S]*?-----END (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.exec(text)?.[0];
  if (keyPem === undefined) throw new KeyError(`${file} holds no PEM private key`);
  let certs: X509Certificate[];
  try {
    certs = pemCertificates(text);
  } catch {
    throw new KeyError(`${file} holds a certificate that cannot be read`);
  }
  if (certs.length === 0) throw new KeyError(`${file} holds no PEM certificate`);
  const encrypted = /ENCRYPTED|Proc-Type: 4,ENCRYPTED/.test(keyPem);
  let key: KeyObject;
  try {
    key = createPrivateKey(encrypted ? { key: keyPem, format: "pem", passphrase: await passphrase() } : { key: keyPem, format: "pem" });
  } catch (err) {
    if (err instanceof KeyError) throw err;
    throw new KeyError(`cannot read the private key in ${file}${encrypted ? ": wrong passphrase?" : ""}`);
  }
  const cert = certs.find((c) => c.checkPrivateKey(key));
  if (cert === undefined) throw new KeyError(`no certificate in ${file} matches its private key`);
  return { key, cert, chain: certs.filter((c) => c !== cert) };
}
