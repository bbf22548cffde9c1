/**
 * A PKCS#10 certificate signing request (RFC 2986) for an ACME order,
 * built with pkijs and signed with node's WebCrypto: subject CN = the first
 * name, subjectAltName = every name. (acme-client's own CSR and CSR parsing
 * go through @peculiar/x509, which fails with the duplicated
 * @peculiar/asn1-schema versions in our dependency tree.)
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, webcrypto } from "node:crypto";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";

const engine = new pkijs.CryptoEngine({ name: "node", crypto: webcrypto });
const RSA = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as const;

/** A new RSA-2048 private key, PKCS#8 PEM (the most widely accepted by SMTP clients). */
export function newCertificateKey(): Buffer {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return Buffer.from(privateKey.export({ type: "pkcs8", format: "pem" }));
}

/** A new ECDSA P-256 private key, PKCS#8 PEM (the ACME account key). */
export function newAccountKey(): Buffer {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return Buffer.from(privateKey.export({ type: "pkcs8", format: "pem" }));
}

function pem(label: string, der: ArrayBuffer): Buffer {
  const b64 = Buffer.from(der).toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n$/, "");
  return Buffer.from(`-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`);
}

/** The CSR (PEM) for names, signed by the RSA key keyPem. */
export async function createCsr(names: readonly string[], keyPem: Buffer): Promise<Buffer> {
  const first = names[0];
  if (first === undefined) throw new Error("a CSR needs at least one name");
  const pkcs8 = createPrivateKey(keyPem).export({ type: "pkcs8", format: "der" });
  const spki = createPublicKey(keyPem).export({ type: "spki", format: "der" });
  const privateKey = await webcrypto.subtle.importKey("pkcs8", pkcs8, RSA, false, ["sign"]);
  const publicKey = await webcrypto.subtle.importKey("spki", spki, RSA, true, ["verify"]);
  const csr = new pkijs.CertificationRequest();
  csr.version = 0;
  csr.subject.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: "2.5.4.3", value: new asn1js.Utf8String({ value: first }) }));
  const altNames = new pkijs.GeneralNames({ names: names.map((n) => new pkijs.GeneralName({ type: 2, value: n })) });
  const extensions = new pkijs.Extensions({ extensions: [new pkijs.Extension({ extnID: "2.5.29.17", critical: false, extnValue: altNames.toSchema().toBER(false) })] });
  csr.attributes = [new pkijs.Attribute({ type: "1.2.840.113549.1.9.14", values: [extensions.toSchema()] })];
  await csr.subjectPublicKeyInfo.importKey(publicKey, engine);
  await csr.sign(privateKey, "SHA-256", engine);
  return pem("CERTIFICATE REQUEST", csr.toSchema().toBER(false));
}
