/**
 * S/MIME 4.0 (RFC 8551) with pkijs: signSmime (multipart/signed with a
 * detached CMS SignedData, application/pkcs7-signature, RFC 5652 signed
 * attributes contentType, signingTime and messageDigest, SHA-256) and
 * encryptSmime (application/pkcs7-mime; smime-type=enveloped-data, AES-256-CBC
 * content encryption; RSA recipients by RSAES-OAEP with SHA-256, EC
 * recipients by ECDH key agreement: the one EnvelopedData writer of
 * src/e2e, as encryption on store uses). Sign then encrypt: the multipart/signed
 * entity is what gets encrypted, so `openssl cms -decrypt` then
 * `openssl cms -verify` (or any S/MIME mail client) checks both.
 */
import { createHash, webcrypto, type KeyObject, type X509Certificate } from "node:crypto";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { base64Lines, entityText, multipart, type Entity } from "./compose.ts";
import { signedBytes } from "./pgp.ts";
import { envelopedData, pkiLibraries } from "../e2e/index.ts";

const OID_DATA = "1.2.840.113549.1.7.1";
const OID_CONTENT_TYPE = "1.2.840.113549.1.9.3";
const OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4";
const OID_SIGNING_TIME = "1.2.840.113549.1.9.5";

let engine: pkijs.CryptoEngine | undefined;

/** pkijs on node's WebCrypto (set once, used explicitly so no global engine is needed). */
function crypto(): pkijs.CryptoEngine {
  engine ??= new pkijs.CryptoEngine({ name: "node", crypto: webcrypto } as unknown as pkijs.CryptoEngineParameters);
  return engine;
}

function toArrayBuffer(b: Buffer | Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return copy.buffer;
}

function pkijsCert(c: X509Certificate): pkijs.Certificate {
  return pkijs.Certificate.fromBER(toArrayBuffer(c.raw));
}

async function signingKey(key: KeyObject): Promise<webcrypto.CryptoKey> {
  const der = key.export({ format: "der", type: "pkcs8" });
  if (key.asymmetricKeyType === "rsa") {
    return webcrypto.subtle.importKey("pkcs8", der, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["sign"]);
  }
  if (key.asymmetricKeyType === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const named = curve === "prime256v1" ? "P-256" : curve === "secp384r1" ? "P-384" : curve === "secp521r1" ? "P-521" : undefined;
    if (named === undefined) throw new Error(`EC curve ${String(curve)} is not supported for S/MIME signing`);
    return webcrypto.subtle.importKey("pkcs8", der, { name: "ECDSA", namedCurve: named }, false, ["sign"]);
  }
  throw new Error(`key type ${String(key.asymmetricKeyType)} is not supported for S/MIME signing`);
}

/** A detached CMS SignedData (DER) over data, signed by key/cert, carrying cert and chain. */
export async function cmsSignDetached(data: Buffer, key: KeyObject, cert: X509Certificate, chain: readonly X509Certificate[] = []): Promise<Buffer> {
  const signer = pkijsCert(cert);
  const digest = createHash("sha256").update(data).digest();
  const signerInfo = new pkijs.SignerInfo({
    version: 1,
    sid: new pkijs.IssuerAndSerialNumber({ issuer: signer.issuer, serialNumber: signer.serialNumber }),
    signedAttrs: new pkijs.SignedAndUnsignedAttributes({
      type: 0,
      attributes: [
        new pkijs.Attribute({ type: OID_CONTENT_TYPE, values: [new asn1js.ObjectIdentifier({ value: OID_DATA })] }),
        new pkijs.Attribute({ type: OID_SIGNING_TIME, values: [new asn1js.UTCTime({ valueDate: new Date() })] }),
        new pkijs.Attribute({ type: OID_MESSAGE_DIGEST, values: [new asn1js.OctetString({ valueHex: toArrayBuffer(digest) })] }),
      ],
    }),
  });
  const signed = new pkijs.SignedData({
    version: 1,
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: OID_DATA }),
    signerInfos: [signerInfo],
    certificates: [signer, ...chain.map(pkijsCert)],
  });
  await signed.sign(await signingKey(key), 0, "SHA-256", toArrayBuffer(data), crypto());
  const info = new pkijs.ContentInfo({ contentType: pkijs.ContentInfo.SIGNED_DATA, content: signed.toSchema(true) });
  return Buffer.from(info.toSchema().toBER(false));
}

/** CMS EnvelopedData (DER) of data for every certificate, written by src/e2e (as for encryption on store). */
export async function cmsEncrypt(data: Buffer, recipients: readonly X509Certificate[]): Promise<Buffer> {
  if (recipients.length === 0) throw new Error("no recipient certificate to encrypt to");
  await pkiLibraries();
  return envelopedData(data, recipients.map((r) => ({ cert: pkijsCert(r), publicKey: r.publicKey })), { rsaOaep: true });
}

export interface SmimeSigner {
  readonly key: KeyObject;
  readonly cert: X509Certificate;
  readonly chain: readonly X509Certificate[];
}

/** RFC 8551 §3.5.3: multipart/signed over e with an application/pkcs7-signature part. */
export async function signSmime(e: Entity, signer: SmimeSigner): Promise<Entity> {
  const der = await cmsSignDetached(Buffer.from(signedBytes(e), "utf8"), signer.key, signer.cert, signer.chain);
  const sigPart: Entity = {
    headers: ['Content-Type: application/pkcs7-signature; name="smime.p7s"', "Content-Transfer-Encoding: base64", 'Content-Disposition: attachment; filename="smime.p7s"', "Content-Description: S/MIME Cryptographic Signature"],
    body: base64Lines(der),
  };
  return multipart("multipart/signed", [e, sigPart], ['protocol="application/pkcs7-signature"', "micalg=sha-256"]);
}

/** RFC 8551 §3.3: application/pkcs7-mime enveloped-data holding e, for every certificate. */
export async function encryptSmime(e: Entity, recipients: readonly X509Certificate[]): Promise<Entity> {
  const der = await cmsEncrypt(Buffer.from(entityText(e), "utf8"), recipients);
  return {
    headers: ['Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"', "Content-Transfer-Encoding: base64", 'Content-Disposition: attachment; filename="smime.p7m"', "Content-Description: S/MIME Encrypted Message"],
    body: base64Lines(der),
  };
}
