/**
 * The TLS findings of `wardmail audit server` agree with independent tools
 * on the same ports: two Postfix 3.7 instances with STARTTLS (a throwaway
 * self-signed RSA-2048 certificate), one with Postfix's TLS defaults on
 * Debian (TLS 1.0 and 1.1 accepted, anonymous and RSA key exchange suites
 * allowed) and one hardened (smtpd_tls_protocols = >=TLSv1.2,
 * smtpd_tls_exclude_ciphers = aNULL, kRSA). For each:
 *
 * - testssl (`-p -s`: protocols and cipher categories, JSON output): TLS 1.0,
 *   1.1, 1.3 offered or not, and anonymous suites, must match the audit's
 *   tls.version.tls10 / tls11 / tls13 and tls.cipher.anonymous;
 * - `openssl s_client -tls1_2 -cipher kRSA` must connect exactly when the
 *   audit reports tls.cipher.no-forward-secrecy;
 * - testssl's `-R` client-initiated renegotiation verdict must match
 *   tls.renegotiation.client (both Postfix set-ups refuse it: Postfix sets
 *   SSL_OP_NO_RENEGOTIATION; no peer here accepts it, so only the refusal is
 *   proven).
 * And the certificate findings are what the certificate is: self-signed,
 * RSA 2048 (no key-size finding), a name that is not the server's.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN } from "./helpers/wardmail.ts";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";
import { exec } from "./peers/exec.ts";
import { postfixMissing, startPostfix, type PostfixInstance } from "./peers/postfix.ts";

const SKIP = peerSkip(postfixMissing(), binaryMissing("testssl", ["--version"], "testssl.sh"), binaryMissing("openssl", ["version"], "openssl"));

interface Finding {
  id: string;
  severity: string;
  evidence: string;
}

function auditJson(port: number): Promise<{ code: number | null; findings: Finding[] }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [BIN, "audit", "server", `127.0.0.1:${port}`, "--json", "--timeout", "5"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    c.stdout.on("data", (d: Buffer) => (out += d.toString()));
    c.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => c.kill("SIGKILL"), 120_000);
    c.on("exit", (code) => {
      clearTimeout(timer);
      try {
        resolve({ code, findings: (JSON.parse(out) as { findings: Finding[] }).findings });
      } catch {
        reject(new Error(`audit printed no JSON (exit ${code}): ${out}\n${err}`));
      }
    });
  });
}

/** testssl -p -s: { id: finding } for the protocol and cipher-category ids. */
async function testssl(dir: string, name: string, port: number): Promise<Map<string, string>> {
  const json = join(dir, `${name}.json`);
  const r = await exec(
    "testssl",
    ["--quiet", "--color", "0", "--warnings", "batch", "--nodns", "none", "--connect-timeout", "10", "--openssl-timeout", "10", "--jsonfile", json, "-p", "-s", "-R", "-t", "smtp", `127.0.0.1:${port}`],
    { timeoutMs: 240_000 },
  );
  let rows: { id: string; finding: string }[];
  try {
    rows = JSON.parse(await readFile(json, "utf8")) as { id: string; finding: string }[];
  } catch (e) {
    throw new Error(`testssl wrote no JSON (exit ${r.code}): ${String(e)}\n${r.out}`);
  }
  return new Map(rows.map((x) => [x.id, x.finding]));
}

function offered(m: Map<string, string>, id: string): boolean {
  const f = m.get(id);
  assert.ok(f !== undefined, `testssl reported no ${id}`);
  return !/not offered/i.test(f) && /offered/i.test(f);
}

async function kRsaConnects(port: number): Promise<boolean> {
  const r = await exec("openssl", ["s_client", "-starttls", "smtp", "-connect", `127.0.0.1:${port}`, "-tls1_2", "-cipher", "kRSA:@SECLEVEL=0"], { input: "QUIT\r\n", timeoutMs: 20_000 });
  return /Cipher is (?!\(NONE\))\S+/.test(r.out) && !/handshake failure|no cipher/i.test(r.out);
}

const CONFIGS: Record<string, Record<string, string>> = {
  defaults: {},
  hardened: { smtpd_tls_protocols: ">=TLSv1.2", smtpd_tls_exclude_ciphers: "aNULL, kRSA" },
};

describe("audit TLS findings agree with testssl and openssl", { skip: SKIP, timeout: 600_000 }, () => {
  let dir = "";
  const servers = new Map<string, PostfixInstance>();
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "wardmail-audit-tls-"));
    await chmod(dir, 0o755);
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    const r = await exec("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=mx.audit.test", "-addext", "subjectAltName=DNS:mx.audit.test"]);
    assert.equal(r.code, 0, r.out);
    await chmod(key, 0o644); // Postfix's smtpd (an unprivileged user) reads it; a throwaway key
    for (const [name, extraMain] of Object.entries(CONFIGS)) {
      servers.set(name, await startPostfix({ mode: "mailbox", mailboxes: ["a@example.test"], tls: { certFile: cert, keyFile: key }, extraMain }));
    }
  });
  after(async () => {
    for (const s of servers.values()) await s.stop();
    if (dir !== "") await rm(dir, { recursive: true, force: true });
  });

  for (const name of Object.keys(CONFIGS)) {
    test(`Postfix TLS ${name}`, async () => {
      const pf = servers.get(name);
      assert.ok(pf);
      const audit = await auditJson(pf.port);
      const has = (id: string): boolean => audit.findings.some((f) => f.id === id);
      const ts = await testssl(dir, name, pf.port);
      assert.equal(has("tls.version.tls10"), offered(ts, "TLS1"), "TLS 1.0");
      assert.equal(has("tls.version.tls11"), offered(ts, "TLS1_1"), "TLS 1.1");
      assert.equal(!has("tls.version.tls13"), offered(ts, "TLS1_3"), "TLS 1.3");
      assert.equal(has("tls.cipher.anonymous"), offered(ts, "cipherlist_aNULL"), "aNULL");
      assert.equal(has("tls.cipher.no-forward-secrecy"), await kRsaConnects(pf.port), "kRSA");
      // Client-initiated renegotiation: testssl says "not vulnerable" exactly when the audit saw it refused.
      const reneg = ts.get("secure_client_renego");
      assert.ok(reneg !== undefined, "testssl reported no secure_client_renego");
      const summary = audit.findings.find((f) => f.id === "tls.summary")?.evidence ?? "";
      assert.match(summary, /client renegotiation (accepted|refused);/);
      assert.equal(has("tls.renegotiation.client"), !/not vulnerable/i.test(reneg), `testssl: ${reneg}; audit: ${summary}`);
      assert.equal(/client renegotiation accepted/.test(summary), has("tls.renegotiation.client"));
      // The configurations really differ, so the agreement is not vacuous.
      assert.equal(has("tls.version.tls10"), name === "defaults");
      assert.equal(has("tls.cipher.no-forward-secrecy"), name === "defaults");
      // The certificate: self-signed, a name that is not the server's, RSA 2048 is enough.
      assert.ok(has("tls.cert.self-signed"));
      assert.ok(has("tls.cert.name"));
      assert.ok(!has("tls.cert.key-size"));
      assert.ok(!has("tls.starttls.missing"));
      assert.ok(!has("tls.starttls.injection"), "Postfix discards plaintext buffered before TLS");
    });
  }
});
