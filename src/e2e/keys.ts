/**
 * Recipient keys for encrypt-on-store: an armored OpenPGP public key
 * (RFC 9580 / RFC 4880, read with OpenPGP.js) or a PEM X.509 certificate
 * (RFC 5280, read with pkijs) that a mailbox's mail is encrypted to.
 *
 * Trusts nothing: the file is the operator's, but it came from a user.
 * Input is bounded (MAX_KEY_BYTES) and never a secret key: a file holding
 * an OpenPGP private key or a PEM private key is refused, so no secret ever
 * lands in the accounts database.
 *
 * What a key must be (checked at import; at every delivery the
 * time-dependent part again, see unusableAt: expiry, revocation):
 * - OpenPGP: a public key whose primary key is valid (self-signed, not
 *   revoked, not expired) with a subkey (or primary) able to encrypt now,
 *   and a valid (self-certified, not revoked) user ID whose e-mail address
 *   is one the caller allows (the account or one of its aliases). We are
 *   strict about the user ID because a key for another address is almost
 *   always the wrong file, and a mail reader would show its owner.
 * - X.509: an RSA public key of at least 2048 bits (key transport with
 *   RSAES-PKCS1-v1_5, what every S/MIME reader decrypts) or an EC key on
 *   P-256, P-384 or P-521 (ephemeral-static ECDH key agreement, RFC 5753),
 *   within its validity period, keyUsage (when present) with
 *   keyEncipherment (RSA) or keyAgreement (EC), extendedKeyUsage
 *   (when present) with emailProtection or anyExtendedKeyUsage, and an
 *   rfc822Name subjectAltName (RFC 8550 §3) that the caller allows. The
 *   chain is not checked: the operator imports the user's own certificate.
 */
import { createHash, X509Certificate, type KeyObject } from "node:crypto";
import type * as openpgp from "openpgp";
import type * as asn1js from "asn1js";
import type * as pkijs from "pkijs";
import { pkiLibraries } from "./pki.ts";

let openpgpModule: Promise<typeof openpgp> | undefined;

/**
 * OpenPGP.js, loaded on first use: it adds ~20 MB to each thread that loads
 * it, which a server without OpenPGP keys need not pay.
 */
export function openpgpLib(): Promise<typeof openpgp> {
  openpgpModule ??= import("openpgp");
  return openpgpModule;
}

/** A key file larger than this is not a key (an OpenPGP key with many signatures is a few 100 KiB at most). */
export const MAX_KEY_BYTES = 1024 * 1024;
/** RSA keys below this are refused (RFC 8551 §4: 2048 bits or more). */
export const MIN_RSA_BITS = 2048;

export type KeyKind = "pgp" | "smime";

/** What is stored and listed about a key. */
export interface KeyInfo {
  readonly kind: KeyKind;
  /** OpenPGP: the primary key's fingerprint; X.509: SHA-256 of the DER certificate. Uppercase hex. */
  readonly fingerprint: string;
  /** E-mail addresses in the key (valid user IDs, or rfc822Name SANs), lowercase. */
  readonly addresses: readonly string[];
  /** Creation (OpenPGP) or notBefore (X.509), ms since the epoch. */
  readonly created: number;
  /** Expiry in ms since the epoch; null: never. */
  readonly expires: number | null;
  /** E.g. "OpenPGP eddsaLegacy/ed25519" or "X.509 RSA 3072". */
  readonly algorithm: string;
  /** The key as stored: armored public key or PEM certificate. */
  readonly data: string;
}

/** A key parsed for encryption. */
export type UsableKey =
  | { readonly kind: "pgp"; readonly info: KeyInfo; readonly key: openpgp.Key }
  | { readonly kind: "smime"; readonly info: KeyInfo; readonly cert: pkijs.Certificate; readonly publicKey: KeyObject };

/** A refusal to show the operator as is. */
export class KeyError extends Error {
  override name = "KeyError";
}

const OID_RSA = "1.2.840.113549.1.1.1";
const OID_EC = "1.2.840.10045.2.1";
/** Curves we do ECDH on (node:crypto names). */
const EC_CURVES: Readonly<Record<string, string>> = { prime256v1: "P-256", secp384r1: "P-384", secp521r1: "P-521" };
const OID_KEY_USAGE = "2.5.29.15";
const OID_EXT_KEY_USAGE = "2.5.29.37";
const OID_SAN = "2.5.29.17";
const OID_EMAIL_PROTECTION = "1.3.6.1.5.5.7.3.4";
const OID_ANY_EKU = "2.5.29.37.0";

function shown(list: readonly string[]): string {
  return list.length === 0 ? "none" : list.slice(0, 10).join(", ") + (list.length > 10 ? ", …" : "");
}

/** Parses, validates and returns a key file's key. `allowed`: addresses the key may be for (lowercase); empty: any. */
export async function parseRecipientKey(input: string | Buffer, allowed: readonly string[], now: Date = new Date()): Promise<UsableKey> {
  const key = await readKey(input, true, now);
  if (allowed.length > 0 && !key.info.addresses.some((a) => allowed.includes(a))) {
    throw new KeyError(`the key is for ${shown(key.info.addresses)}, not for ${shown(allowed)}`);
  }
  return key;
}

/** A key as stored (checked at import), parsed for encryption without checking it again: see unusableAt. */
export async function loadStoredKey(data: string): Promise<UsableKey> {
  return readKey(data, false, new Date());
}

async function readKey(input: string | Buffer, validate: boolean, now: Date): Promise<UsableKey> {
  const size = typeof input === "string" ? Buffer.byteLength(input) : input.length;
  if (size > MAX_KEY_BYTES) throw new KeyError(`the key file is larger than ${MAX_KEY_BYTES} bytes`);
  const text = typeof input === "string" ? input : input.toString("latin1");
  if (/-----BEGIN PGP PRIVATE KEY BLOCK-----/.test(text)) throw new KeyError("this is an OpenPGP private key: import the public key only (gpg --armor --export ADDRESS)");
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) throw new KeyError("the file holds a private key: import the certificate only");
  if (/-----BEGIN PGP PUBLIC KEY BLOCK-----/.test(text)) return parsePgp(text, validate, now);
  if (/-----BEGIN CERTIFICATE-----/.test(text)) return parseCertificate((await pkiLibraries()).pkijs, text, validate, now);
  throw new KeyError("not an armored OpenPGP public key (-----BEGIN PGP PUBLIC KEY BLOCK-----) or a PEM certificate (-----BEGIN CERTIFICATE-----)");
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function parsePgp(armored: string, validate: boolean, now: Date): Promise<UsableKey> {
  let keys: openpgp.Key[];
  try {
    keys = await (await openpgpLib()).readKeys({ armoredKeys: armored });
  } catch (err) {
    throw new KeyError(`cannot read the OpenPGP key: ${errText(err)}`);
  }
  if (keys.length !== 1) throw new KeyError(`the file holds ${keys.length} OpenPGP keys; import one at a time`);
  const key = keys[0]!;
  if (key.isPrivate()) throw new KeyError("this is an OpenPGP private key: import the public key only (gpg --armor --export ADDRESS)");
  if (validate) {
    try {
      await key.verifyPrimaryKey(now);
    } catch (err) {
      throw new KeyError(`the OpenPGP key is not valid now (revoked, expired or badly self-signed): ${errText(err)}`);
    }
    try {
      await key.getEncryptionKey(undefined, now);
    } catch (err) {
      throw new KeyError(`the OpenPGP key has no valid encryption subkey: ${errText(err)}`);
    }
  }
  const addresses: string[] = [];
  for (const user of key.users) {
    const email = user.userID?.email?.toLowerCase();
    if (!email || addresses.includes(email)) continue;
    try {
      if (validate) await user.verify(now);
      addresses.push(email);
    } catch {
      // a revoked or badly certified user ID does not count
    }
  }
  const exp = await key.getExpirationTime();
  const expires = exp instanceof Date ? exp.getTime() : null;
  const algo = key.getAlgorithmInfo();
  const info: KeyInfo = {
    kind: "pgp",
    fingerprint: key.getFingerprint().toUpperCase(),
    addresses,
    created: key.getCreationTime().getTime(),
    expires,
    algorithm: `OpenPGP ${algo.algorithm}${algo.curve !== undefined ? `/${algo.curve}` : algo.bits !== undefined ? ` ${algo.bits}` : ""}`,
    data: key.armor(),
  };
  return { kind: "pgp", info, key };
}

function parseCertificate(pki: typeof pkijs, pem: string, validate: boolean, now: Date): UsableKey {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length !== 1) throw new KeyError(`the file holds ${blocks.length} certificates; import the user's certificate alone`);
  const block = blocks[0];
  const der = Buffer.from(block.replace(/-----(BEGIN|END) CERTIFICATE-----|\s+/g, ""), "base64");
  let cert: pkijs.Certificate;
  let x509: X509Certificate;
  try {
    cert = pki.Certificate.fromBER(der);
    x509 = new X509Certificate(der);
  } catch (err) {
    throw new KeyError(`cannot read the certificate: ${errText(err)}`);
  }
  const algo = cert.subjectPublicKeyInfo.algorithm.algorithmId;
  if (algo !== OID_RSA && algo !== OID_EC) throw new KeyError(`the certificate's key is neither RSA nor EC (algorithm ${algo})`);
  const publicKey = x509.publicKey;
  let keyName: string;
  if (algo === OID_RSA) {
    const bits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) throw new KeyError(`the certificate's RSA key has ${bits} bits; at least ${MIN_RSA_BITS} are needed`);
    keyName = `RSA ${bits}`;
  } else {
    const curve = publicKey.asymmetricKeyDetails?.namedCurve ?? "";
    const name = EC_CURVES[curve];
    if (name === undefined) throw new KeyError(`the certificate's EC key is on curve ${curve || "unknown"}; P-256, P-384 and P-521 are supported`);
    keyName = `EC ${name}`;
  }
  const notBefore = cert.notBefore.value.getTime();
  const notAfter = cert.notAfter.value.getTime();
  if (validate && now.getTime() < notBefore) throw new KeyError(`the certificate is not valid before ${new Date(notBefore).toISOString()}`);
  if (validate && now.getTime() > notAfter) throw new KeyError(`the certificate expired on ${new Date(notAfter).toISOString()}`);
  for (const ext of cert.extensions ?? []) {
    if (ext.extnID === OID_KEY_USAGE) {
      const bitString = ext.parsedValue as asn1js.BitString | undefined;
      const bytes = bitString ? new Uint8Array(bitString.valueBlock.valueHexView) : new Uint8Array();
      // keyEncipherment is bit 2 (0x20 of the first byte), keyAgreement bit 4 (0x08).
      if (algo === OID_RSA && ((bytes[0] ?? 0) & 0x20) === 0) throw new KeyError("the certificate's keyUsage does not allow keyEncipherment");
      if (algo === OID_EC && ((bytes[0] ?? 0) & 0x08) === 0) throw new KeyError("the certificate's keyUsage does not allow keyAgreement");
    } else if (ext.extnID === OID_EXT_KEY_USAGE) {
      const eku = ext.parsedValue as pkijs.ExtKeyUsage | undefined;
      const purposes = eku?.keyPurposes ?? [];
      if (!purposes.includes(OID_EMAIL_PROTECTION) && !purposes.includes(OID_ANY_EKU)) throw new KeyError("the certificate's extendedKeyUsage does not allow emailProtection");
    }
  }
  const addresses: string[] = [];
  const san = (cert.extensions ?? []).find((e) => e.extnID === OID_SAN)?.parsedValue as pkijs.AltName | undefined;
  for (const name of san?.altNames ?? []) {
    // rfc822Name is GeneralName type 1.
    if (name.type === 1 && typeof name.value === "string") {
      const a = name.value.toLowerCase();
      if (!addresses.includes(a)) addresses.push(a);
    }
  }
  if (addresses.length === 0) throw new KeyError("the certificate has no e-mail address (rfc822Name) in its subjectAltName");
  const info: KeyInfo = {
    kind: "smime",
    fingerprint: createHash("sha256").update(der).digest("hex").toUpperCase(),
    addresses,
    created: notBefore,
    expires: notAfter,
    algorithm: `X.509 ${keyName}`,
    data: x509.toString(),
  };
  return { kind: "smime", info, cert, publicKey };
}

/** Why a stored key cannot be used at `now` (expired, revoked, no longer valid), or undefined. */
export async function unusableAt(key: UsableKey, now: Date): Promise<string | undefined> {
  if (key.kind === "smime") {
    if (now.getTime() > key.cert.notAfter.value.getTime()) return `certificate ${key.info.fingerprint.slice(0, 16)} expired`;
    if (now.getTime() < key.cert.notBefore.value.getTime()) return `certificate ${key.info.fingerprint.slice(0, 16)} not yet valid`;
    return undefined;
  }
  try {
    await key.key.getEncryptionKey(undefined, now);
    return undefined;
  } catch (err) {
    return `OpenPGP key ${key.info.fingerprint} cannot encrypt now: ${errText(err)}`;
  }
}
