/**
 * DKIM for outgoing mail: keys on disk (keys.ts), signing (sign.ts), and
 * zone-file output for the records to publish (zone.ts).
 */
export {
  DkimKeyError,
  RSA_BITS,
  defaultSelector,
  dkimDir,
  dkimRecords,
  edSelector,
  generateDomainKeys,
  inspectKeys,
  keyFile,
  keyRecordValue,
  loadSigningKeys,
  normalizeDomain,
  normalizeSelector,
  rsaSelector,
  type DkimKeyType,
  type DkimRecord,
  type DomainKeySet,
  type GeneratedKeys,
  type KeyInventory,
  type SigningKeys,
} from "./keys.ts";
export { DkimSignError, OVERSIGNED_FIELDS, SIGNED_FIELDS, fromDomain, relaxedBodyHash, signMessage, signWith, signingDomain } from "./sign.ts";
export { MAX_TXT_STRING, absolute, quoteTxtString, splitTxt, txtLine, txtRdata, zoneLine } from "./zone.ts";
