/**
 * Test helpers for DKIM (and the DSN tests' Python check): an in-memory DNS
 * for mailauth's verifier, the TXT value read back from a zone-file line,
 * and Python run as a child process: Debian's dkimpy (python3-dkim) as an
 * independent verifier, fed the key records by a dnsfunc instead of DNS.
 */
import { spawn } from "node:child_process";
import type { DNSResolver } from "mailauth";
import { binaryMissing } from "./peers.ts";

/** Debian's python3, where python3-dkim lives (not a pyenv shim earlier in PATH). */
export const PYTHON = "/usr/bin/python3";

/** undefined when `import <modules>` works in PYTHON, else why not, naming the Debian package `pkg` (for peerSkip in test/helpers/peers.ts). */
export function pythonMissing(modules: string, pkg: string): string | undefined {
  return binaryMissing(PYTHON, ["-c", `import ${modules}`], pkg, { exitZero: true });
}

/** Runs PYTHON -c code with args, input on stdin; resolves with stdout (throws on a non-zero exit). */
export function runPython(code: string, args: readonly string[], input: Buffer | string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(PYTHON, ["-c", code, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    c.stdout.on("data", (d: Buffer) => (out += d.toString("utf8")));
    c.stderr.on("data", (d: Buffer) => (err += d.toString("utf8")));
    c.stdin.on("error", () => undefined);
    c.stdin.end(input);
    const timer = setTimeout(() => c.kill("SIGKILL"), 30_000);
    c.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    c.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`python exited ${code}: ${err}`));
    });
  });
}

const DKIMPY_VERIFY = `
import sys, json, dkim
records = json.loads(sys.argv[1])
msg = sys.stdin.buffer.read()
def dnsfunc(name, timeout=5):
    n = (name.decode() if isinstance(name, bytes) else name).rstrip('.').lower()
    v = records.get(n)
    return v.encode() if v is not None else None
count = sum(1 for k, v in dkim.DKIM(msg).headers if k.lower() == b'dkim-signature')
out = []
for i in range(count):
    try:
        out.append(bool(dkim.DKIM(msg).verify(idx=i, dnsfunc=dnsfunc)))
    except Exception as e:
        out.append('error: %s' % e)
print(json.dumps(out))
`;

/**
 * dkimpy's verdict on every DKIM-Signature of msg, in header order (true,
 * false, or "error: ..."), with the key records `name -> TXT value`.
 */
export async function dkimpyVerify(msg: Buffer, records: Readonly<Record<string, string>>): Promise<(boolean | string)[]> {
  return JSON.parse(await runPython(DKIMPY_VERIFY, [JSON.stringify(records)], msg)) as (boolean | string)[];
}

/** An error shaped like node's resolver errors (what mailauth expects). */
function dnsError(code: string, name: string): Error {
  return Object.assign(new Error(`query ${code} ${name}`), { code, hostname: name });
}

/** A mailauth resolver answering TXT queries from `records` (name -> value or its strings); anything else NXDOMAIN. */
export function txtResolver(records: Readonly<Record<string, string | readonly string[]>>): DNSResolver {
  const byName = new Map(Object.entries(records).map(([k, v]) => [k.toLowerCase().replace(/\.$/, ""), typeof v === "string" ? [v] : [...v]]));
  return (name: string, type: string) => {
    const v = byName.get(name.toLowerCase().replace(/\.$/, ""));
    if (v === undefined) return Promise.reject(dnsError("ENOTFOUND", name));
    if (type !== "TXT") return Promise.reject(dnsError("ENODATA", name));
    return Promise.resolve([v]);
  };
}

/** The character-strings of the TXT rdata in a zone-file line (quoted strings, \\X and \\DDD unescaped). */
export function txtStrings(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"((?:[^"\\]|\\.)*)"/g)) {
    out.push((m[1] as string).replace(/\\(\d{3}|.)/g, (_, e: string) => (e.length === 3 ? String.fromCharCode(Number(e)) : e)));
  }
  return out;
}
