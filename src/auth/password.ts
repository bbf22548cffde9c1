/**
 * Password hashing for accounts: argon2id (RFC 9106) with node:crypto's
 * built-in implementation (no native addon), stored as a PHC string:
 *   $argon2id$v=19$m=19456,t=2,p=1$<salt b64>$<hash b64>
 * (unpadded standard base64, as the reference implementation writes it).
 *
 * Parameters are OWASP's first recommendation for argon2id: 19 MiB of
 * memory, 2 passes, 1 lane, 16-byte salt, 32-byte tag; one check costs about
 * 90 ms of one core here. The hash runs in libuv's thread pool, never on the
 * event loop, and at most MAX_CONCURRENT run at once so a flood of AUTH
 * attempts cannot pin every thread or take 19 MiB each without bound.
 *
 * verifyPassword() reads the parameters from the stored string (so they can
 * be raised later without breaking old hashes) but refuses values outside
 * sane bounds: a damaged or hostile database row must not make one check
 * take gigabytes or minutes.
 */
import { argon2, randomBytes, timingSafeEqual } from "node:crypto";

export const ARGON2_PARAMS = { memory: 19456, passes: 2, parallelism: 1, saltLength: 16, tagLength: 32 } as const;

const MAX_CONCURRENT = 4;
let running = 0;
const queue: (() => void)[] = [];

async function limited<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= MAX_CONCURRENT) await new Promise<void>((r) => queue.push(r));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    queue.shift()?.();
  }
}

function argon2id(password: Buffer, salt: Buffer, memory: number, passes: number, parallelism: number, tagLength: number): Promise<Buffer> {
  return limited(
    () =>
      new Promise<Buffer>((resolve, reject) => {
        argon2("argon2id", { message: password, nonce: salt, memory, passes, parallelism, tagLength }, (err, key) => {
          if (err) reject(err);
          else resolve(key);
        });
      }),
  );
}

const b64 = (b: Buffer): string => b.toString("base64").replace(/=+$/, "");

/** Hashes a password (UTF-8, NFC-normalised) into a PHC argon2id string. */
export async function hashPassword(password: string): Promise<string> {
  const { memory, passes, parallelism, saltLength, tagLength } = ARGON2_PARAMS;
  const salt = randomBytes(saltLength);
  const tag = await argon2id(Buffer.from(password.normalize("NFC"), "utf8"), salt, memory, passes, parallelism, tagLength);
  return `$argon2id$v=19$m=${memory},t=${passes},p=${parallelism}$${b64(salt)}$${b64(tag)}`;
}

const PHC = /^\$argon2id\$v=19\$m=(\d{1,7}),t=(\d{1,3}),p=(\d{1,2})\$([A-Za-z0-9+/]{11,88})\$([A-Za-z0-9+/]{22,88})$/;

/** Parameters of a stored hash, or undefined when it is not an argon2id PHC string within bounds. */
export function parsePhc(phc: string): { memory: number; passes: number; parallelism: number; salt: Buffer; tag: Buffer } | undefined {
  const m = PHC.exec(phc);
  if (!m) return undefined;
  const memory = Number(m[1]);
  const passes = Number(m[2]);
  const parallelism = Number(m[3]);
  if (memory < 8 * parallelism || memory > 262144 || passes < 1 || passes > 10 || parallelism < 1 || parallelism > 8) return undefined;
  const salt = Buffer.from(m[4] ?? "", "base64");
  const tag = Buffer.from(m[5] ?? "", "base64");
  if (salt.length < 8 || tag.length < 16 || tag.length > 64) return undefined;
  return { memory, passes, parallelism, salt, tag };
}

/** True when password matches the stored PHC string. A malformed string never matches. */
export async function verifyPassword(phc: string, password: string): Promise<boolean> {
  const p = parsePhc(phc);
  if (!p) return false;
  const tag = await argon2id(Buffer.from(password.normalize("NFC"), "utf8"), p.salt, p.memory, p.passes, p.parallelism, p.tag.length);
  return timingSafeEqual(tag, p.tag);
}

/** A hash of a random password: verifying against it costs the same as a real check (unknown users). */
let dummy: Promise<string> | undefined;
export function dummyHash(): Promise<string> {
  dummy ??= hashPassword(randomBytes(18).toString("base64"));
  return dummy;
}
