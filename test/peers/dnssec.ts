// DNSSEC-signed zone files for the DANE tests, made by an independent signer:
// ldns-keygen and ldns-signzone (Debian ldnsutils). The signed text is then
// served as it is by knotd (test/peers/knot.ts: Knot serves pre-signed zones
// without touching them), and the key is handed to a validating resolver
// (test/peers/unbound.ts) as the zone's trust anchor.
//
// One key per zone: an ECDSA P-256 (algorithm 13) key with the SEP flag
// (DNSKEY flags 257) that signs everything (ldns-signzone uses a lone KSK as
// the ZSK too); NSEC for denial. Each signZone() call makes a fresh key in its
// own temp dir, which is removed before it returns.
import { spawn } from "node:child_process";
import { binaryMissing } from "../helpers/peers.ts";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

export const LDNS_KEYGEN_BIN = "/usr/bin/ldns-keygen";
export const LDNS_SIGNZONE_BIN = "/usr/bin/ldns-signzone";

/** undefined when ldns-keygen and ldns-signzone run, else why not, naming the package (for peerSkip in test/helpers/peers.ts). */
export function ldnsMissing(): string | undefined {
  // -v prints the version and exits 0.
  return binaryMissing(LDNS_KEYGEN_BIN, ["-v"], "ldnsutils", { exitZero: true }) ?? binaryMissing(LDNS_SIGNZONE_BIN, ["-v"], "ldnsutils", { exitZero: true });
}

export interface SignedZone {
  readonly origin: string;
  /** The signed zone file (DNSKEY, RRSIG and NSEC records added). */
  readonly text: string;
  /** The zone's DNSKEY as one zone-file line ("origin. IN DNSKEY 257 3 13 ..."): a trust anchor. */
  readonly dnskey: string;
  /** The DS of that key (SHA-256 digest) as one zone-file line. */
  readonly ds: string;
  readonly keyTag: number;
}

export interface SignOptions {
  /** Signature inception; default one hour ago (resolvers allow little clock skew). */
  readonly inception?: Date;
  /** Signature expiration; default in 30 days. A date in the past makes every signature expired. */
  readonly expiration?: Date;
}

function runTool(bin: string, args: string[], cwd: string, timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(bin, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => c.kill("SIGKILL"), timeoutMs);
    c.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    c.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** One record line without its trailing ldns comment (";{id = ...}"), fields separated by single spaces. */
function cleanLine(line: string): string {
  return line.replace(/;.*$/, "").trim().split(/\s+/).join(" ");
}

const seconds = (d: Date): string => String(Math.floor(d.getTime() / 1000));

/**
 * Signs zone-file text for origin with a new key. The zone text needs its
 * SOA (knot.ts zoneText() writes one) and must not hold DNSKEY records.
 */
export async function signZone(origin: string, zoneText: string, opts: SignOptions = {}): Promise<SignedZone> {
  const o = origin.replace(/\.$/, "").toLowerCase();
  const dir = await mkdtemp(path.join(os.tmpdir(), "ldns-"));
  try {
    const gen = await runTool(LDNS_KEYGEN_BIN, ["-r", "/dev/urandom", "-a", "ECDSAP256SHA256", "-k", o], dir);
    const base = gen.stdout.trim();
    if (gen.code !== 0 || !/^K[\w.-]+\+013\+\d+$/.test(base)) throw new Error(`ldns-keygen for ${o} failed (exit ${gen.code}): ${gen.stdout}${gen.stderr}`);
    const keyTag = Number(base.split("+")[2]);
    const unsigned = path.join(dir, "zone");
    const signed = path.join(dir, "zone.signed");
    await writeFile(unsigned, zoneText);
    const now = Date.now();
    const inception = opts.inception ?? new Date(now - 3600_000);
    const expiration = opts.expiration ?? new Date(now + 30 * 86400_000);
    const sign = await runTool(LDNS_SIGNZONE_BIN, ["-o", `${o}.`, "-i", seconds(inception), "-e", seconds(expiration), "-f", signed, unsigned, base], dir);
    if (sign.code !== 0) throw new Error(`ldns-signzone for ${o} failed (exit ${sign.code}): ${sign.stdout}${sign.stderr}`);
    const [text, key, ds] = await Promise.all([readFile(signed, "utf8"), readFile(path.join(dir, `${base}.key`), "utf8"), readFile(path.join(dir, `${base}.ds`), "utf8")]);
    const dnskey = cleanLine(key);
    if (!new RegExp(`^${o.replace(/\./g, "\\.")}\\. (\\d+ )?IN DNSKEY 257 3 13 `).test(dnskey)) throw new Error(`unexpected ldns-keygen key file: ${key}`);
    if (!/\bRRSIG\b/.test(text)) throw new Error(`ldns-signzone wrote no signatures for ${o}:\n${text}`);
    return { origin: o, text, dnskey, ds: cleanLine(ds), keyTag };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The signed text with the rdata of one record replaced and its RRSIG kept:
 * what an attacker on the path (or a broken signer) would serve. The record
 * is found by owner name and type; there must be exactly one.
 */
export function replaceRdata(signedText: string, owner: string, type: string, rdata: string): string {
  const name = `${owner.replace(/\.$/, "").toLowerCase()}.`;
  const lines = signedText.split("\n");
  const hits: number[] = [];
  lines.forEach((l, i) => {
    const f = l.split(/\s+/);
    // ldns-signzone writes "owner TTL IN TYPE rdata..." on one line each.
    if (f[0]?.toLowerCase() === name && f[2] === "IN" && f[3] === type) hits.push(i);
  });
  const at = hits[0];
  if (hits.length !== 1 || at === undefined) throw new Error(`replaceRdata: ${hits.length} ${type} records at ${name}`);
  const f = (lines[at] ?? "").split(/\s+/);
  lines[at] = [...f.slice(0, 4), rdata].join("\t");
  return lines.join("\n");
}
