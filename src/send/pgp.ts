/**
 * PGP/MIME (RFC 3156) with openpgp.js: signPgpMime (multipart/signed with a
 * detached signature over the part exactly as it is sent, canonical CRLF)
 * and encryptPgpMime (multipart/encrypted; with a signing key, the combined
 * method of RFC 3156 §6.2: one OpenPGP message that is signed and
 * encrypted, which `gpg --decrypt` verifies as it decrypts).
 */
import * as openpgp from "openpgp";
import { CRLF, canonicalCrlf, entityText, multipart, type Entity } from "./compose.ts";

/** openpgp's hash ids (RFC 9580 §9.5) to the micalg names of RFC 3156 §5 / RFC 4880 §9.4. */
const HASH_NAMES: Readonly<Record<number, string>> = { 1: "md5", 2: "sha1", 3: "ripemd160", 8: "sha256", 9: "sha384", 10: "sha512", 11: "sha224", 12: "sha3-256", 14: "sha3-512" };

/** The bytes a signature covers: the entity without the CRLF that belongs to the boundary after it (RFC 2046 §5.1.1). */
export function signedBytes(e: Entity): string {
  const t = entityText(e);
  return t.endsWith(CRLF) ? t.slice(0, -2) : t;
}

/** RFC 3156 §5: multipart/signed over e, with an armored detached signature by key. */
export async function signPgpMime(e: Entity, key: openpgp.PrivateKey): Promise<Entity> {
  const data = Buffer.from(signedBytes(e), "utf8");
  // openpgp's declared return type mentions web-stream types this project does not have: it is a string here.
  const armored = (await openpgp.sign({ message: await openpgp.createMessage({ binary: data }), signingKeys: key, detached: true, format: "armored" })) as unknown as string;
  const sig = await openpgp.readSignature({ armoredSignature: armored });
  const hash = sig.packets[0]?.hashAlgorithm;
  const name = hash === null || hash === undefined ? undefined : HASH_NAMES[hash];
  if (name === undefined) throw new Error("the signature uses a hash algorithm PGP/MIME cannot name");
  const sigPart: Entity = {
    headers: ['Content-Type: application/pgp-signature; name="signature.asc"', "Content-Description: OpenPGP digital signature", 'Content-Disposition: attachment; filename="signature.asc"'],
    body: canonicalCrlf(armored),
  };
  // The signed part goes out exactly as hashed: multipart() puts only the delimiter after it.
  const signedPart: Entity = { headers: e.headers, body: e.body };
  return multipart("multipart/signed", [signedPart, sigPart], ["micalg=pgp-" + name, 'protocol="application/pgp-signature"']);
}

/**
 * RFC 3156 §4 (and §6.2 when signingKey is given): multipart/encrypted
 * holding e encrypted to every key of recipients.
 */
export async function encryptPgpMime(e: Entity, recipients: readonly openpgp.PublicKey[], signingKey?: openpgp.PrivateKey): Promise<Entity> {
  if (recipients.length === 0) throw new Error("no recipient key to encrypt to");
  const message = await openpgp.createMessage({ binary: Buffer.from(entityText(e), "utf8") });
  const armored = (await openpgp.encrypt({
    message,
    encryptionKeys: [...recipients],
    ...(signingKey !== undefined ? { signingKeys: signingKey } : {}),
    format: "armored",
  })) as unknown as string;
  const version: Entity = { headers: ["Content-Type: application/pgp-encrypted", "Content-Description: PGP/MIME version identification"], body: "Version: 1" + CRLF };
  const data: Entity = {
    headers: ['Content-Type: application/octet-stream; name="encrypted.asc"', "Content-Description: OpenPGP encrypted message", 'Content-Disposition: inline; filename="encrypted.asc"'],
    body: canonicalCrlf(armored),
  };
  return multipart("multipart/encrypted", [version, data], ['protocol="application/pgp-encrypted"']);
}
