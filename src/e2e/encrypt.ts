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
 *   3565) and RSAES-PKCS1-v1_5 key transport per certificate, addressed by
 *   issuer and serial number. This is what `openssl cms -encrypt` makes by
 *   default and what every S/MIME reader (Thunderbird, Outlook, Apple Mail)
 *   decrypts; AES-GCM authEnveloped-data is not yet read by all of them.
 *
 * Cost: one AES pass over the message plus a public-key operation per key
 * (a few ms, measured in docs/benchmarks.md); the armoring/base64 grows
 * the message by a third. The caller bounds the message size (limits).
 */
import { constants, createCipheriv, publicEncrypt, randomBytes } from "node:crypto";
import type * as openpgp from "openpgp";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { base64Lines, outerHeader } from "./mime.ts";
import { openpgpLib, type UsableKey } from "./keys.ts";

const OID_DATA = "1.2.840.113549.1.7.1";
const OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3";
const OID_RSA = "1.2.840.113549.1.1.1";
const OID_AES256_CBC = "2.16.840.1.101.3.4.1.42";

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
  return Buffer.from(new asn1js.ObjectIdentifier({ value }).toBER(false));
}

/**
 * A DER CMS ContentInfo holding the EnvelopedData. The small parts (the
 * recipient infos) are pkijs objects; the envelope around the encrypted
 * content is written here, in one copy (asn1js took ~40 ms per MB for it).
 */
export function envelopedData(raw: Buffer, certs: readonly { readonly cert: pkijs.Certificate; readonly publicKey: import("node:crypto").KeyObject }[]): Buffer {
  const cek = randomBytes(32);
  const iv = randomBytes(16);
  const cipher = createCipheriv("aes-256-cbc", cek, iv);
  const encrypted = [cipher.update(raw), cipher.final()];
  const recipientInfos = certs.map(({ cert, publicKey }) => {
    const encryptedKey = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, cek);
    const ri = new pkijs.KeyTransRecipientInfo({
      version: 0,
      rid: new pkijs.IssuerAndSerialNumber({ issuer: cert.issuer, serialNumber: cert.serialNumber }),
      keyEncryptionAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: OID_RSA, algorithmParams: new asn1js.Null() }),
      encryptedKey: new asn1js.OctetString({ valueHex: encryptedKey }),
    });
    return Buffer.from(ri.toSchema().toBER(false));
  });
  const encryptedContentInfo = tlv(
    0x30,
    oid(OID_DATA),
    tlv(0x30, oid(OID_AES256_CBC), tlv(0x04, iv)),
    tlv(0x80, encrypted), // [0] IMPLICIT OCTET STRING
  );
  const env = tlv(0x30, tlv(0x02, Buffer.from([0])), tlv(0x31, ...recipientInfos), encryptedContentInfo);
  return Buffer.concat(tlv(0x30, oid(OID_ENVELOPED_DATA), tlv(0xa0, env)));
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
