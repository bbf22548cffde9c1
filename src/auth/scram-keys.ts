/**
 * SCRAM-SHA-256 server keys (RFC 5802 §3, RFC 7677): from a password, a salt
 * and an iteration count, the StoredKey and ServerKey the server keeps. The
 * password itself (and the SaltedPassword) are never stored.
 *
 *   SaltedPassword = PBKDF2-HMAC-SHA-256(Normalize(password), salt, i)
 *   ClientKey      = HMAC(SaltedPassword, "Client Key")
 *   StoredKey      = SHA-256(ClientKey)
 *   ServerKey      = HMAC(SaltedPassword, "Server Key")
 *
 * Normalize: RFC 5802 asks for SASLprep (RFC 4013). We apply NFKC, which is
 * SASLprep's normalisation step; the passwords we create are ASCII, and a
 * client that does full SASLprep gives the same bytes for them.
 * Iterations: 10,000 by default (RFC 7677 asks for at least 4096).
 */
import { createHash, createHmac, pbkdf2, randomBytes } from "node:crypto";

export const SCRAM_ITERATIONS = 10_000;
export const SCRAM_SALT_LENGTH = 16;

export interface ScramKeys {
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

export function scramNormalize(password: string): Buffer {
  return Buffer.from(password.normalize("NFKC"), "utf8");
}

export function saltedPassword(password: string, salt: Buffer, iterations: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    pbkdf2(scramNormalize(password), salt, iterations, 32, "sha256", (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export function hmac(key: Buffer, data: string | Buffer): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

export function sha256(data: Buffer): Buffer {
  return createHash("sha256").update(data).digest();
}

/** StoredKey and ServerKey for a password. */
export async function deriveScramKeys(password: string, salt: Buffer, iterations: number = SCRAM_ITERATIONS): Promise<ScramKeys> {
  const salted = await saltedPassword(password, salt, iterations);
  return { storedKey: sha256(hmac(salted, "Client Key")), serverKey: hmac(salted, "Server Key") };
}

export function newScramSalt(): Buffer {
  return randomBytes(SCRAM_SALT_LENGTH);
}
