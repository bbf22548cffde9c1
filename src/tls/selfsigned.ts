/**
 * Self-signed certificate, generated once and reused.
 *
 * Contract:
 * - `generateCertificate(names)` makes a fresh ECDSA P-256 key and an X.509 v3
 *   certificate (CN = first name, SAN = all names, CA:false, keyUsage
 *   digitalSignature, extKeyUsage serverAuth, random positive 16-byte serial,
 *   SHA-256 signature) and returns both as PEM. Nothing touches the disk.
 * - `ensureSelfSigned(dir, hostname, logger)` returns the paths of
 *   `<dir>/selfsigned.crt` and `<dir>/selfsigned.key`. It reuses them when they
 *   parse, belong together, cover `hostname` and are not about to expire;
 *   otherwise it generates a new pair. `dir` is created with mode 0700, the key
 *   is written with mode 0600, each file is written to a temporary name and
 *   renamed into place, and generation is serialised across processes by an
 *   exclusive lock file, so concurrent callers never leave a mismatched or torn
 *   pair behind. The pair is made in a thread of its own
 *   (`generateInThread`), so the caller never loads asn1js and pkijs.
 */
import { X509Certificate, createPrivateKey, randomBytes, webcrypto } from "node:crypto";
import { isIP } from "node:net";
import { mkdir, open, readFile, rename, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import type * as Asn1 from "asn1js";
import type * as Pki from "pkijs";
import type { Logger } from "pino";

export const SELF_SIGNED_CERT = "selfsigned.crt";
export const SELF_SIGNED_KEY = "selfsigned.key";
const LOCK_FILE = "selfsigned.lock";

const VALIDITY_DAYS = 730;
/** A certificate this close to its end is replaced instead of reused. */
const RENEW_BEFORE_MS = 7 * 24 * 3600 * 1000;
/** A lock older than this is considered left behind by a crashed process. */
const STALE_LOCK_MS = 60_000;
const LOCK_WAIT_MS = 30_000;

const OID_CN = "2.5.4.3";
const OID_BASIC_CONSTRAINTS = "2.5.29.19";
const OID_KEY_USAGE = "2.5.29.15";
const OID_EXT_KEY_USAGE = "2.5.29.37";
const OID_SUBJECT_ALT_NAME = "2.5.29.17";
const OID_SUBJECT_KEY_ID = "2.5.29.14";
const OID_SERVER_AUTH = "1.3.6.1.5.5.7.3.1";

/** asn1js and pkijs, imported on the first certificate made (a running server with its pair never needs them). */
let libraries: Promise<{ asn1js: typeof Asn1; pkijs: typeof Pki; engine: Pki.CryptoEngine }> | undefined;
function loadLibraries(): Promise<{ asn1js: typeof Asn1; pkijs: typeof Pki; engine: Pki.CryptoEngine }> {
  libraries ??= Promise.all([import("asn1js"), import("pkijs")]).then(
    ([asn1js, pkijs]) => ({ asn1js, pkijs, engine: new pkijs.CryptoEngine({ name: "node", crypto: webcrypto }) }),
    (err: unknown) => {
      // Tried again next time, not kept.
      libraries = undefined;
      throw err;
    },
  );
  return libraries;
}

export interface GeneratedCertificate {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface GenerateOptions {
  /** Validity in days from now (default 730). */
  readonly days?: number;
  /** Start of validity (default: one hour ago, to tolerate clock skew). */
  readonly notBefore?: Date;
}

/** The names a self-signed certificate for `hostname` carries: DNS names and IP literals. */
export function selfSignedNames(hostname: string): string[] {
  const host = hostname.toLowerCase().replace(/\.$/, "");
  if (host === "localhost") return ["localhost", "127.0.0.1", "::1"];
  return [host];
}

function toPem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString("base64");
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

function ipBytes(ip: string): Uint8Array {
  if (isIP(ip) === 4) return Uint8Array.from(ip.split(".").map(Number));
  // IPv6: expand "::" then 8 groups of 16 bits.
  const [head = "", tail] = ip.split("::") as [string, string | undefined];
  const h = head === "" ? [] : head.split(":");
  const t = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

function extension(pkijs: typeof Pki, extnID: string, critical: boolean, value: { toSchema(): Asn1.BaseBlock }): Pki.Extension {
  return new pkijs.Extension({ extnID, critical, extnValue: value.toSchema().toBER(false) });
}

/** Generate a key and a self-signed server certificate for `names` (first one is the CN). */
export async function generateCertificate(names: readonly string[], opts: GenerateOptions = {}): Promise<GeneratedCertificate> {
  const cn = names[0];
  if (cn === undefined) throw new Error("generateCertificate: at least one name is required");
  for (const n of names) {
    if (isIP(n) === 6 && n.includes(".")) throw new Error(`generateCertificate: IPv4-mapped IPv6 literal not supported: ${n}`);
  }
  const { asn1js, pkijs, engine } = await loadLibraries();
  const keys = await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);

  const cert = new pkijs.Certificate();
  cert.version = 2; // v3
  const serial = new Uint8Array(randomBytes(16));
  // Positive, and the first byte is never 0, so the DER INTEGER is minimal and 16 bytes long.
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x40;
  cert.serialNumber = new asn1js.Integer({ valueHex: serial });
  const rdn = new pkijs.RelativeDistinguishedNames({
    typesAndValues: [new pkijs.AttributeTypeAndValue({ type: OID_CN, value: new asn1js.Utf8String({ value: cn }) })],
  });
  cert.issuer = rdn;
  cert.subject = new pkijs.RelativeDistinguishedNames({ typesAndValues: rdn.typesAndValues });
  const notBefore = opts.notBefore ?? new Date(Date.now() - 3600 * 1000);
  const notAfter = new Date(notBefore.getTime() + (opts.days ?? VALIDITY_DAYS) * 24 * 3600 * 1000);
  // UTCTime covers years up to 2049; GeneralizedTime after that (RFC 5280 §4.1.2.5).
  cert.notBefore = new pkijs.Time({ type: notBefore.getUTCFullYear() < 2050 ? 0 : 1, value: notBefore });
  cert.notAfter = new pkijs.Time({ type: notAfter.getUTCFullYear() < 2050 ? 0 : 1, value: notAfter });

  await cert.subjectPublicKeyInfo.importKey(keys.publicKey, engine);
  const spki = new Uint8Array(await webcrypto.subtle.exportKey("raw", keys.publicKey));
  const keyId = new Uint8Array(await webcrypto.subtle.digest("SHA-1", spki));

  const altNames = names.map((n) =>
    isIP(n) !== 0
      ? new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: ipBytes(n) }) })
      : new pkijs.GeneralName({ type: 2, value: n }),
  );
  const keyUsage = new asn1js.BitString({ valueHex: new Uint8Array([0x80]), unusedBits: 7 }); // digitalSignature
  cert.extensions = [
    extension(pkijs, OID_BASIC_CONSTRAINTS, true, new pkijs.BasicConstraints({ cA: false })),
    new pkijs.Extension({ extnID: OID_KEY_USAGE, critical: true, extnValue: keyUsage.toBER(false) }),
    extension(pkijs, OID_EXT_KEY_USAGE, false, new pkijs.ExtKeyUsage({ keyPurposes: [OID_SERVER_AUTH] })),
    extension(pkijs, OID_SUBJECT_ALT_NAME, false, new pkijs.AltName({ altNames })),
    new pkijs.Extension({ extnID: OID_SUBJECT_KEY_ID, critical: false, extnValue: new asn1js.OctetString({ valueHex: keyId }).toBER(false) }),
  ];
  await cert.sign(keys.privateKey, "SHA-256", engine);

  const certPem = toPem("CERTIFICATE", cert.toSchema(true).toBER(false));
  const keyPem = toPem("PRIVATE KEY", await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  return { certPem, keyPem };
}

/** Why an existing pair cannot be reused, or null when it can. */
async function unusableReason(certPath: string, keyPath: string, hostname: string): Promise<string | null> {
  let certPem: Buffer;
  let keyPem: Buffer;
  try {
    [certPem, keyPem] = await Promise.all([readFile(certPath), readFile(keyPath)]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "missing";
    return `unreadable (${(err as Error).message})`;
  }
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(certPem);
  } catch {
    return "certificate does not parse";
  }
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    return "key does not parse";
  }
  if (!x509.checkPrivateKey(key)) return "key does not match certificate";
  const now = Date.now();
  if (x509.validFromDate.getTime() > now + 3600 * 1000) return "certificate not yet valid";
  if (x509.validToDate.getTime() < now + RENEW_BEFORE_MS) return "certificate expired or about to expire";
  const host = hostname.toLowerCase().replace(/\.$/, "");
  const covered = isIP(host) !== 0 ? x509.checkIP(host) !== undefined : x509.checkHost(host, { wildcards: false }) !== undefined;
  if (!covered) return `certificate does not cover ${host}`;
  return null;
}

/** Write `data` to `path` atomically: temporary file in the same directory, fsync, rename. */
async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`;
  const fh = await open(tmp, "wx", mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode); // umask may have narrowed or the platform ignored the mode
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // Not every platform can fsync a directory; the rename is still atomic.
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Take the cross-process generation lock; returns its release function. */
async function acquireLock(dir: string, logger: Logger): Promise<() => Promise<void>> {
  const lockPath = join(dir, LOCK_FILE);
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const fh = await open(lockPath, "wx", 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return async () => {
        await unlink(lockPath).catch(() => undefined);
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const st = await stat(lockPath).catch(() => null);
    if (st !== null && Date.now() - st.mtimeMs > STALE_LOCK_MS) {
      logger.warn({ lock: lockPath }, "removing stale self-signed certificate lock");
      await unlink(lockPath).catch(() => undefined);
      continue;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for lock ${lockPath}`);
    await sleep(25 + Math.floor(Math.random() * 50));
  }
}

// Compiled to dist/*.js for production, run from src/*.ts in development.
const GENERATE_ENTRY = new URL(`./generate-thread.${import.meta.url.endsWith(".ts") ? "ts" : "js"}`, import.meta.url);

/**
 * generateCertificate in a thread of its own that ends with it
 * (generate-thread.ts): the libraries and what they build are freed with
 * the thread instead of staying in the caller's heap (the server's main
 * thread makes the pair once, at its first start, then runs for months).
 */
export function generateInThread(names: readonly string[]): Promise<GeneratedCertificate> {
  return new Promise((resolve, reject) => {
    // execArgv: none of the caller's Node options (e.g. --input-type, refused in a thread).
    const w = new Worker(GENERATE_ENTRY, { workerData: { names: [...names] }, execArgv: [], resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 } });
    let answer: { ok: true; certPem: string; keyPem: string } | { ok: false; message: string } | undefined;
    let failure: Error | undefined;
    w.once("message", (m: typeof answer) => {
      answer = m;
    });
    w.once("error", (err) => {
      failure = err;
    });
    w.once("exit", (code) => {
      if (answer?.ok === true) resolve({ certPem: answer.certPem, keyPem: answer.keyPem });
      else reject(new Error(`cannot generate a self-signed certificate: ${answer?.message ?? failure?.message ?? `its thread exited with code ${code}`}`));
    });
  });
}

/**
 * Make sure `<dir>/selfsigned.crt` and `<dir>/selfsigned.key` exist and are
 * usable for `hostname`; generate them if not. Returns their paths.
 */
export async function ensureSelfSigned(dir: string, hostname: string, logger: Logger): Promise<{ cert: string; key: string }> {
  const cert = join(dir, SELF_SIGNED_CERT);
  const key = join(dir, SELF_SIGNED_KEY);
  await mkdir(dir, { recursive: true, mode: 0o700 });

  const first = await unusableReason(cert, key, hostname);
  if (first === null) {
    logger.debug({ cert, key }, "reusing self-signed certificate");
    return { cert, key };
  }

  const release = await acquireLock(dir, logger);
  try {
    // Another process may have generated the pair while we waited for the lock.
    const reason = await unusableReason(cert, key, hostname);
    if (reason === null) {
      logger.debug({ cert, key }, "reusing self-signed certificate generated by another process");
      return { cert, key };
    }
    const names = selfSignedNames(hostname);
    logger.info({ cert, reason, names }, "generating self-signed certificate");
    const generated = await generateInThread(names);
    // Key first, then certificate: a reader in between sees a mismatch and waits for the lock.
    await writeAtomic(key, generated.keyPem, 0o600);
    await writeAtomic(cert, generated.certPem, 0o644);
    await syncDir(dir);
    return { cert, key };
  } finally {
    await release();
  }
}
