/**
 * DKIM signing keys on disk: one RSA-2048 and one Ed25519 key per selector
 * (RFC 8463 §3: "signers SHOULD sign with both"), kept as PKCS#8 PEM in
 *
 *   <dataDir>/dkim/<domain>/<selector>.rsa.pem      (file 0600, directories 0700)
 *   <dataDir>/dkim/<domain>/<selector>.ed25519.pem
 *
 * Selector naming. The two algorithms need two key records, so two DNS
 * selectors (a key record has one k=). From one base selector S the RSA key
 * is published as `S-rsa._domainkey.<domain>` and the Ed25519 key as
 * `S-ed25519._domainkey.<domain>`. The default S is "wm" + the UTC year and
 * month of creation ("wm202611"), so a rotation next month gets a new name
 * without thinking; --selector chooses another. S is lowercase letters,
 * digits and hyphens, at most 55 characters (so "S-ed25519" is one DNS label).
 *
 * Every complete key set (both files) in a domain's directory signs. A
 * rotation is: generate a new set, publish its two records, then remove the
 * old set's files once the new records are visible; in between messages
 * carry both sets' signatures, and the old ones keep verifying. A set with
 * a missing, unreadable or wrong-type file is reported as a problem and not
 * used; the other sets of the domain still sign.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from "node:crypto";
import { chmod, link, mkdir, open, readdir, readFile, rename, stat, unlink } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { domainToASCII } from "node:url";

export const RSA_BITS = 2048;
/** RFC 8301 §3.2: verifiers must not accept RSA keys under 1024 bits. */
const MIN_RSA_BITS = 1024;

export type DkimKeyType = "rsa" | "ed25519";

/** One selector's key pair, ready to sign. */
export interface DomainKeySet {
  readonly domain: string;
  /** Base selector S (the file name stem). */
  readonly selector: string;
  /** `S-rsa`, the DNS selector of the RSA key. */
  readonly selectorRsa: string;
  readonly rsaKey: KeyObject;
  readonly rsaBits: number;
  /** `S-ed25519`, the DNS selector of the Ed25519 key. */
  readonly selectorEd: string;
  readonly edKey: KeyObject;
  /** When the key files were written (the older file's mtime). */
  readonly created: Date;
}

/** Key sets by domain (lowercase A-label), newest set first. */
export type SigningKeys = ReadonlyMap<string, readonly DomainKeySet[]>;

/** A DKIM key record to publish. */
export interface DkimRecord {
  readonly type: DkimKeyType;
  /** DNS selector (`S-rsa` or `S-ed25519`). */
  readonly selector: string;
  /** Owner name without the trailing dot: `S-rsa._domainkey.example.com`. */
  readonly name: string;
  /** TXT value, unsplit. */
  readonly value: string;
}

export class DkimKeyError extends Error {
  readonly code: "EXISTS" | "INVALID";
  constructor(code: "EXISTS" | "INVALID", message: string) {
    super(message);
    this.name = "DkimKeyError";
    this.code = code;
  }
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const SELECTOR = /^[a-z0-9](?:[a-z0-9-]{0,53}[a-z0-9])?$/;
const KEY_FILE = /^([a-z0-9](?:[a-z0-9-]{0,53}[a-z0-9])?)\.(rsa|ed25519)\.pem$/;

/**
 * A domain name we can sign for, as a lowercase A-label without trailing dot,
 * or undefined: at least two labels of letters, digits and inner hyphens, at
 * most 253 characters, not an IP address. U-labels are converted (IDNA).
 */
export function normalizeDomain(input: string): string | undefined {
  let d = input.trim().replace(/\.$/, "");
  if (d === "" || /[\s/\\@]/.test(d)) return undefined;
  if (/[^\x00-\x7f]/.test(d)) d = domainToASCII(d);
  d = d.toLowerCase();
  if (d === "" || d.length > 253) return undefined;
  const labels = d.split(".");
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l))) return undefined;
  if (/^\d+$/.test(labels[labels.length - 1] ?? "")) return undefined; // 192.0.2.1 is not a domain
  return d;
}

/** A base selector, lowercased, or undefined when it is not one (see the header comment). */
export function normalizeSelector(input: string): string | undefined {
  const s = input.trim().toLowerCase();
  return SELECTOR.test(s) ? s : undefined;
}

/** The default base selector for keys made at `now`: "wm" + YYYYMM (UTC). */
export function defaultSelector(now = new Date()): string {
  return `wm${now.getUTCFullYear()}${String(now.getUTCMonth() + 1).padStart(2, "0")}`;
}

export const rsaSelector = (selector: string): string => `${selector}-rsa`;
export const edSelector = (selector: string): string => `${selector}-ed25519`;

export function dkimDir(dataDir: string): string {
  return join(dataDir, "dkim");
}

export function keyFile(dataDir: string, domain: string, selector: string, type: DkimKeyType): string {
  return join(dkimDir(dataDir), domain, `${selector}.${type}.pem`);
}

/** The TXT value of a key record (RFC 6376 §3.6.1; Ed25519: RFC 8463 §4.2, the raw 32-byte key). */
export function keyRecordValue(type: DkimKeyType, key: KeyObject): string {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  if (type === "rsa") return `v=DKIM1; k=rsa; p=${pub.export({ type: "spki", format: "der" }).toString("base64")}`;
  const jwk = pub.export({ format: "jwk" });
  if (jwk.x === undefined) throw new Error("not an Ed25519 key");
  return `v=DKIM1; k=ed25519; p=${Buffer.from(jwk.x, "base64url").toString("base64")}`;
}

/** The two key records of a set, RSA first. */
export function dkimRecords(set: DomainKeySet): DkimRecord[] {
  return [
    { type: "rsa", selector: set.selectorRsa, name: `${set.selectorRsa}._domainkey.${set.domain}`, value: keyRecordValue("rsa", set.rsaKey) },
    { type: "ed25519", selector: set.selectorEd, name: `${set.selectorEd}._domainkey.${set.domain}`, value: keyRecordValue("ed25519", set.edKey) },
  ];
}

export interface GeneratedKeys {
  readonly domain: string;
  readonly selector: string;
  readonly files: { readonly rsa: string; readonly ed25519: string };
  readonly records: readonly DkimRecord[];
  /** Directories this call created (dkim/, dkim/<domain>/, maybe dataDir), outermost first. */
  readonly createdDirs: readonly string[];
}

/**
 * Creates an RSA-2048 and an Ed25519 key for `domain` under the base
 * selector, and returns the records to publish. Existing files for that
 * selector are an error (code EXISTS) unless `force`, which replaces them.
 */
export async function generateDomainKeys(
  dataDir: string,
  domainInput: string,
  opts: { selector?: string; force?: boolean; now?: Date } = {},
): Promise<GeneratedKeys> {
  const domain = normalizeDomain(domainInput);
  if (domain === undefined) throw new DkimKeyError("INVALID", `not a domain name: ${JSON.stringify(domainInput.slice(0, 100))}`);
  const selector = opts.selector === undefined ? defaultSelector(opts.now) : normalizeSelector(opts.selector);
  if (selector === undefined) {
    throw new DkimKeyError("INVALID", `not a selector: ${JSON.stringify((opts.selector ?? "").slice(0, 100))} (letters, digits and inner hyphens, at most 55)`);
  }
  const files = { rsa: keyFile(dataDir, domain, selector, "rsa"), ed25519: keyFile(dataDir, domain, selector, "ed25519") };
  if (!opts.force && (existsSync(files.rsa) || existsSync(files.ed25519))) {
    throw new DkimKeyError("EXISTS", `keys for selector ${selector} of ${domain} exist already`);
  }

  const createdDirs: string[] = [];
  for (const dir of [dataDir, dkimDir(dataDir), join(dkimDir(dataDir), domain)]) {
    if (existsSync(dir)) continue;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    createdDirs.push(dir);
  }

  const rsa = generateKeyPairSync("rsa", { modulusLength: RSA_BITS });
  const ed = generateKeyPairSync("ed25519");
  const pem = (k: KeyObject): string => k.export({ type: "pkcs8", format: "pem" }).toString();
  await writeKeyFile(files.rsa, pem(rsa.privateKey), opts.force === true);
  try {
    await writeKeyFile(files.ed25519, pem(ed.privateKey), opts.force === true);
  } catch (err) {
    if (!opts.force) await unlink(files.rsa).catch(() => undefined);
    throw err;
  }
  await syncDir(join(dkimDir(dataDir), domain));
  return {
    domain,
    selector,
    files,
    records: [
      { type: "rsa", selector: rsaSelector(selector), name: `${rsaSelector(selector)}._domainkey.${domain}`, value: keyRecordValue("rsa", rsa.publicKey) },
      { type: "ed25519", selector: edSelector(selector), name: `${edSelector(selector)}._domainkey.${domain}`, value: keyRecordValue("ed25519", ed.publicKey) },
    ],
    createdDirs,
  };
}

/** Writes a 0600 file atomically; without `replace`, an existing file is an EXISTS error (link() does not clobber). */
async function writeKeyFile(path: string, content: string, replace: boolean): Promise<void> {
  const tmp = join(path, "..", `.${randomBytes(8).toString("hex")}.tmp`);
  const fh = await open(tmp, "wx", 0o600);
  try {
    await fh.chmod(0o600);
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
  if (replace) {
    await rename(tmp, path);
    return;
  }
  try {
    await link(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") throw new DkimKeyError("EXISTS", `${path} exists already`);
    throw err;
  } finally {
    await unlink(tmp);
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface KeyInventory {
  /** Usable sets: by domain (ascending), newest first within a domain. */
  readonly sets: readonly DomainKeySet[];
  /** What was found but cannot be used, one sentence each (naming the file). */
  readonly problems: readonly string[];
}

/**
 * Reads every key set under <dataDir>/dkim. A missing directory is an empty
 * inventory; an unreadable one throws (the caller cannot tell what it holds).
 */
export async function inspectKeys(dataDir: string): Promise<KeyInventory> {
  const root = dkimDir(dataDir);
  const sets: DomainKeySet[] = [];
  const problems: string[] = [];
  let domains;
  try {
    domains = await readdir(root, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { sets, problems };
    throw err;
  }
  for (const entry of domains.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (entry.name.startsWith(".")) continue;
    const dir = join(root, entry.name);
    if (!entry.isDirectory()) {
      problems.push(`${dir}: not a directory; ignored`);
      continue;
    }
    if (normalizeDomain(entry.name) !== entry.name) {
      problems.push(`${dir}: not a lowercase domain name; ignored`);
      continue;
    }
    const bySelector = new Map<string, Set<DkimKeyType>>();
    for (const name of await readdir(dir)) {
      if (name.startsWith(".") || !name.endsWith(".pem")) continue;
      const m = KEY_FILE.exec(name);
      if (!m) {
        problems.push(`${join(dir, name)}: not named <selector>.rsa.pem or <selector>.ed25519.pem; ignored`);
        continue;
      }
      const types = bySelector.get(m[1] as string) ?? new Set<DkimKeyType>();
      types.add(m[2] as DkimKeyType);
      bySelector.set(m[1] as string, types);
    }
    const found: DomainKeySet[] = [];
    for (const [selector, types] of bySelector) {
      const missing = (["rsa", "ed25519"] as const).filter((t) => !types.has(t));
      if (missing.length > 0) {
        problems.push(`${join(dir, `${selector}.${missing[0] as string}.pem`)} is missing: selector ${selector} of ${entry.name} does not sign`);
        continue;
      }
      const set = await readSet(dataDir, entry.name, selector, problems);
      if (set) found.push(set);
    }
    found.sort((a, b) => b.created.getTime() - a.created.getTime() || (a.selector < b.selector ? 1 : -1));
    sets.push(...found);
  }
  return { sets, problems };
}

async function readSet(dataDir: string, domain: string, selector: string, problems: string[]): Promise<DomainKeySet | undefined> {
  const keys: Partial<Record<DkimKeyType, KeyObject>> = {};
  let created = Infinity;
  for (const type of ["rsa", "ed25519"] as const) {
    const file = keyFile(dataDir, domain, selector, type);
    let key: KeyObject;
    try {
      key = createPrivateKey(await readFile(file));
      created = Math.min(created, (await stat(file)).mtimeMs);
    } catch (err) {
      problems.push(`${file}: cannot read the key (${err instanceof Error ? err.message : String(err)}): selector ${selector} of ${domain} does not sign`);
      return undefined;
    }
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (key.asymmetricKeyType !== type || (type === "rsa" && bits < MIN_RSA_BITS)) {
      const what = type === "rsa" ? `an RSA key of at least ${MIN_RSA_BITS} bits` : "an Ed25519 key";
      problems.push(`${file}: not ${what} (found ${key.asymmetricKeyType ?? "?"}${bits ? ` ${bits}` : ""}): selector ${selector} of ${domain} does not sign`);
      return undefined;
    }
    keys[type] = key;
  }
  const rsaKey = keys.rsa as KeyObject;
  return {
    domain,
    selector,
    selectorRsa: rsaSelector(selector),
    rsaKey,
    rsaBits: rsaKey.asymmetricKeyDetails?.modulusLength ?? 0,
    selectorEd: edSelector(selector),
    edKey: keys.ed25519 as KeyObject,
    created: new Date(created),
  };
}

/**
 * The keys to sign with, by domain, every usable set (newest first). What
 * cannot be used goes to `onProblem` and is left out.
 */
export async function loadSigningKeys(dataDir: string, onProblem?: (problem: string) => void): Promise<SigningKeys> {
  const { sets, problems } = await inspectKeys(dataDir);
  for (const p of problems) onProblem?.(p);
  const map = new Map<string, DomainKeySet[]>();
  for (const s of sets) map.set(s.domain, [...(map.get(s.domain) ?? []), s]);
  return map;
}
