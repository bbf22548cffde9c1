/**
 * encryptForStore: one message encrypted to a mailbox's keys before it is
 * stored, as PGP/MIME (RFC 3156) or S/MIME (RFC 8551).
 *
 * The payload is the original message, byte for byte (what was queued: our
 * Received and Authentication-Results fields on top of what the client
 * sent); the outer header section is mime.ts outerHeader (Subject "[...]",
 * RFC 9788 §4.1). Decrypting gives back exactly the input.
 *
 * - PGP/MIME: multipart/encrypted; protocol="application/pgp-encrypted",
 *   a "Version: 1" part and an application/octet-stream part holding an
 *   ASCII-armored OpenPGP message (OpenPGP.js; binary literal data, no
 *   compression) encrypted to every OpenPGP key of the mailbox.
 * - S/MIME: application/pkcs7-mime; smime-type=enveloped-data, base64 of a
 *   CMS EnvelopedData (RFC 5652 §6): AES-256-CBC content encryption (RFC
 *   3565); per RSA certificate RSAES-PKCS1-v1_5 key transport, per EC
 *   certificate (P-256/384/521) ephemeral-static ECDH with the X9.63 KDF
 *   (SHA-256/384/512) and AES-256 key wrap (RFC 5753); each addressed by
 *   issuer and serial number. This is what `openssl cms -encrypt` makes by
 *   default and what every S/MIME reader (Thunderbird, Outlook, Apple Mail)
 *   decrypts; AES-GCM authEnveloped-data is not yet read by all of them.
 *   The DER is written here (pkijs only for the issuer and serial number):
 *   asn1js took ~40 ms per MB to encode the envelope.
 *
 * Cost: one AES pass over the message plus a public-key operation per key
 * (a few ms, measured in docs/benchmarks.md); the armoring/base64 grows
 * the message by a third. The caller bounds the message size (limits).
 */
import { constants, createCipheriv, createECDH, createHash, publicEncrypt, randomBytes, type KeyObject } from "node:crypto";
import type * as openpgp from "openpgp";
import type * as pkijs from "pkijs";
import { pkiLibrariesLoaded } from "./pki.ts";
import { base64Lines, outerHeader } from "./mime.ts";
import { openpgpLib, type UsableKey } from "./keys.ts";

const OID_DATA = "1.2.840.113549.1.7.1";
const OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3";
const OID_RSA = "1.2.840.113549.1.1.1";
const OID_RSAES_OAEP = "1.2.840.113549.1.1.7";
const OID_MGF1 = "1.2.840.113549.1.1.8";
const OID_SHA256 = "2.16.840.1.101.3.4.2.1";
const OID_AES256_CBC = "2.16.840.1.101.3.4.1.42";
const OID_AES256_WRAP = "2.16.840.1.101.3.4.1.45";
const OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1";
/** dhSinglePass-stdDH-sha{256,384,512}kdf-scheme (RFC 5753 §7.1.4), by curve: the hash that matches its strength. */
const ECDH_SCHEMES: Readonly<Record<string, { readonly oid: string; readonly hash: string }>> = {
  prime256v1: { oid: "1.3.132.1.11.1", hash: "sha256" },
  secp384r1: { oid: "1.3.132.1.11.2", hash: "sha384" },
  secp521r1: { oid: "1.3.132.1.11.3", hash: "sha512" },
};

function boundary(): string {
  return `=_wardmail_${randomBytes(12).toString("hex")}`;
}

/**
 * The message encrypted to these keys (all OpenPGP, or all X.509: when both
 * kinds are given, the OpenPGP ones are used). Throws when `keys` is empty.
 */
export async function encryptForStore(raw: Buffer, keys: readonly UsableKey[]): Promise<Buffer> {
  const pgp = keys.filter((k) => k.kind === "pgp");
  if (pgp.length > 0) return encryptPgpMime(raw, pgp.map((k) => k.key));
  const smime = keys.flatMap((k) => (k.kind === "smime" ? [k] : []));
  if (smime.length > 0) return encryptSmime(raw, smime);
  throw new Error("encryptForStore: no key");
}

async function encryptPgpMime(raw: Buffer, keys: openpgp.Key[]): Promise<Buffer> {
  const lib = await openpgpLib();
  const message = await lib.createMessage({ binary: new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength) });
  const armored: string = String(await lib.encrypt({ message, encryptionKeys: keys, format: "armored" }));
  const b = boundary();
  const body =
    "MIME-Version: 1.0\r\n" +
    `Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n boundary="${b}"\r\n` +
    "\r\n" +
    "This is an OpenPGP/MIME encrypted message (RFC 3156), encrypted on arrival.\r\n" +
    `--${b}\r\n` +
    "Content-Type: application/pgp-encrypted\r\n" +
    "Content-Description: PGP/MIME version identification\r\n" +
    "\r\n" +
    "Version: 1\r\n" +
    "\r\n" +
    `--${b}\r\n` +
    'Content-Type: application/octet-stream; name="encrypted.asc"\r\n' +
    "Content-Description: OpenPGP encrypted message\r\n" +
    'Content-Disposition: inline; filename="encrypted.asc"\r\n' +
    "\r\n" +
    armored.replace(/\r?\n/g, "\r\n") +
    (armored.endsWith("\n") ? "" : "\r\n") +
    `--${b}--\r\n`;
  return Buffer.concat([outerHeader(raw), Buffer.from(body, "latin1")]);
}

/** A DER TLV with a definite length, as pieces (concatenated once at the end, so the content is copied once). */
function tlv(tag: number, ...parts: (Buffer | Buffer[])[]): Buffer[] {
  const flat = parts.flat();
  const len = flat.reduce((n, p) => n + p.length, 0);
  let head: Buffer;
  if (len < 0x80) head = Buffer.from([tag, len]);
  else {
    const bytes: number[] = [];
    for (let v = len; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    head = Buffer.from([tag, 0x80 | bytes.length, ...bytes]);
  }
  return [head, ...flat];
}

function oid(value: string): Buffer {
  return Buffer.from(new (pkiLibrariesLoaded().asn1js.ObjectIdentifier)({ value }).toBER(false));
}

/**
 * A DER CMS ContentInfo holding the EnvelopedData. The small parts (the
 * recipient infos) are pkijs objects; the envelope around the encrypted
 * content is written here, in one copy (asn1js took ~40 ms per MB for it).
 */
export function envelopedData(raw: Buffer, certs: readonly { readonly cert: pkijs.Certificate; readonly publicKey: KeyObject }[], opts: { readonly rsaOaep?: boolean } = {}): Buffer {
  const cek = randomBytes(32);
  const iv = randomBytes(16);
  const cipher = createCipheriv("aes-256-cbc", cek, iv);
  const encrypted = [cipher.update(raw), cipher.final()];
  const pki = pkiLibrariesLoaded().pkijs;
  const recipientInfos = certs.map(({ cert, publicKey }) => {
    const rid = Buffer.from(new pki.IssuerAndSerialNumber({ issuer: cert.issuer, serialNumber: cert.serialNumber }).toSchema().toBER(false));
    if (publicKey.asymmetricKeyType === "ec") return keyAgreeRecipientInfo(rid, publicKey, cek);
    // KeyTransRecipientInfo (RFC 5652 §6.2.1), version 0: the rid is issuer and serial number.
    // RSAES-OAEP with SHA-256 and MGF1-SHA-256 (RFC 8017, parameters as RFC 4055 §4.1) when asked, else PKCS#1 v1.5.
    const encryptedKey = opts.rsaOaep === true
      ? publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, cek)
      : publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, cek);
    const sha256 = tlv(0x30, oid(OID_SHA256));
    const algorithm = opts.rsaOaep === true
      ? tlv(0x30, oid(OID_RSAES_OAEP), tlv(0x30, tlv(0xa0, sha256), tlv(0xa1, tlv(0x30, oid(OID_MGF1), sha256))))
      : tlv(0x30, oid(OID_RSA), Buffer.from([0x05, 0x00]));
    return Buffer.concat(tlv(0x30, tlv(0x02, Buffer.from([0])), rid, algorithm, tlv(0x04, encryptedKey)));
  });
  const version = certs.some((c) => c.publicKey.asymmetricKeyType === "ec") ? 2 : 0;
  const encryptedContentInfo = tlv(
    0x30,
    oid(OID_DATA),
    tlv(0x30, oid(OID_AES256_CBC), tlv(0x04, iv)),
    tlv(0x80, encrypted), // [0] IMPLICIT OCTET STRING
  );
  const env = tlv(0x30, tlv(0x02, Buffer.from([version])), tlv(0x31, ...recipientInfos), encryptedContentInfo);
  return Buffer.concat(tlv(0x30, oid(OID_ENVELOPED_DATA), tlv(0xa0, env)));
}

/**
 * KeyAgreeRecipientInfo (RFC 5652 §6.2.2, RFC 5753 §3.1.1) for an EC
 * certificate: an ephemeral key on the recipient's curve, ECDH, the ANSI
 * X9.63 KDF over ECC-CMS-SharedInfo, and the content key wrapped with
 * AES-256 key wrap (RFC 3394). Tagged [1] as a RecipientInfo.
 */
function keyAgreeRecipientInfo(rid: Buffer, publicKey: KeyObject, cek: Buffer): Buffer {
  const curve = publicKey.asymmetricKeyDetails?.namedCurve ?? "";
  const scheme = ECDH_SCHEMES[curve];
  if (scheme === undefined) throw new Error(`ECDH on curve ${curve} is not supported`);
  const jwk = publicKey.export({ format: "jwk" });
  const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x ?? "", "base64url"), Buffer.from(jwk.y ?? "", "base64url")]);
  const ecdh = createECDH(curve);
  const ephemeral = ecdh.generateKeys();
  const z = ecdh.computeSecret(point);
  const wrapAlg = tlv(0x30, oid(OID_AES256_WRAP));
  // ECC-CMS-SharedInfo: keyInfo, suppPubInfo [2] = the KEK length in bits (256).
  const sharedInfo = Buffer.concat(tlv(0x30, wrapAlg, tlv(0xa2, tlv(0x04, Buffer.from([0, 0, 1, 0])))));
  const kek = createHash(scheme.hash).update(z).update(Buffer.from([0, 0, 0, 1])).update(sharedInfo).digest().subarray(0, 32);
  const wrap = createCipheriv("id-aes256-wrap", kek, Buffer.from("a6a6a6a6a6a6a6a6", "hex"));
  const wrapped = Buffer.concat([wrap.update(cek), wrap.final()]);
  // originator [0] EXPLICIT, originatorKey [1] IMPLICIT OriginatorPublicKey { id-ecPublicKey, NULL; ECPoint as BIT STRING }.
  const originator = tlv(0xa0, tlv(0xa1, tlv(0x30, oid(OID_EC_PUBLIC_KEY), Buffer.from([0x05, 0x00])), tlv(0x03, Buffer.from([0]), ephemeral)));
  const keyEncryptionAlgorithm = tlv(0x30, oid(scheme.oid), wrapAlg);
  const recipientEncryptedKeys = tlv(0x30, tlv(0x30, rid, tlv(0x04, wrapped)));
  return Buffer.concat(tlv(0xa1, tlv(0x02, Buffer.from([3])), originator, keyEncryptionAlgorithm, recipientEncryptedKeys));
}

function encryptSmime(raw: Buffer, certs: readonly Extract<UsableKey, { kind: "smime" }>[]): Buffer {
  const der = envelopedData(raw, certs);
  const body =
    "MIME-Version: 1.0\r\n" +
    'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"\r\n' +
    "Content-Transfer-Encoding: base64\r\n" +
    'Content-Disposition: attachment; filename="smime.p7m"\r\n' +
    "Content-Description: S/MIME encrypted message\r\n" +
    "\r\n" +
    base64Lines(der);
  return Buffer.concat([outerHeader(raw), Buffer.from(body, "latin1")]);
}
