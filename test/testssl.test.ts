/**
 * testssl.sh (Debian's `testssl.sh`, binary /usr/bin/testssl) against a
 * running Wardmail on its default TLS settings: the STARTTLS MX listener and
 * the implicit-TLS submissions listener (465 role). Each scan is testssl's
 * full default run (protocols, cipher categories, forward secrecy, server
 * preferences, server defaults and certificate, every vulnerability check,
 * the cipher list and client simulations), about 75 s per port here; the two
 * ports are scanned at the same time.
 *
 * The scans run with the certificate's name as the target (`--ip 127.0.0.1`
 * connects to loopback, no DNS is asked) and with the self-signed default
 * certificate added as a trusted CA (`--add-ca`), so that the name and the
 * chain of trust are checked for real instead of being waived. A finding at
 * MEDIUM or above fails the test unless it is in ALLOWED, each with its
 * reason; a FATAL one (testssl could not scan) fails it too, and so does a
 * WARN (a check that could not run) unless in ALLOWED_WARN. The JSON keeps
 * every severity (no --severity filter) so the test can also check that the
 * scan did run its checks.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exec } from "./peers/exec.ts";
import { requireBinary } from "./peers/submission.ts";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";

/** The name in the self-signed default certificate (startWardmail's server.hostname). */
const HOSTNAME = "mx.example.test";
/** A whole scan may take this long before testssl is killed (it took ~75 s on a busy 2-core machine). */
const SCAN_TIMEOUT_MS = 6 * 60_000;

/**
 * Findings at MEDIUM or above that do not count, and why. Only what follows
 * from the self-signed default certificate belongs here.
 */
const ALLOWED: Readonly<Record<string, string>> = {
  cert_revocation:
    "the self-signed default certificate names no CRL or OCSP responder: nobody could revoke it, and an operator's CA-issued certificate brings its own",
};

/**
 * WARN means testssl could not run a check, so its verdict is unknown: it
 * fails the test too, except these, and why.
 */
const ALLOWED_WARN: Readonly<Record<string, string>> = {
  engine_problem: "Debian's /usr/bin/openssl has no GOST engine; that is about the scanner, not the server",
  sessionresumption_ticket:
    "testssl's s_client sometimes quits before TLS 1.3 sends its tickets (seen once on 465 on a busy machine: 'check failed because of connect problem'); test/tls-tickets.test.ts checks resumption on every listener with s_client itself",
};

const BLOCKING = new Set(["MEDIUM", "HIGH", "CRITICAL", "FATAL"]);

interface Finding {
  readonly id: string;
  readonly severity: string;
  readonly finding: string;
}

let w: Wardmail | undefined;
let dir = "";
const scans = new Map<string, Promise<{ findings: Finding[]; seconds: number; output: string }>>();

async function scan(name: string, args: string[]): Promise<{ findings: Finding[]; seconds: number; output: string }> {
  const json = join(dir, `${name}.json`);
  const started = Date.now();
  const r = await exec(
    "testssl",
    [
      "--quiet",
      "--color", "0",
      "--warnings", "batch", // never stop for a question
      "--nodns", "none",
      "--ip", "127.0.0.1",
      "--connect-timeout", "10",
      "--openssl-timeout", "10",
      "--add-ca", join(server().dataDir, "tls", "selfsigned.crt"),
      "--jsonfile", json,
      ...args,
    ],
    { timeoutMs: SCAN_TIMEOUT_MS },
  );
  const seconds = Math.round((Date.now() - started) / 1000);
  let findings: Finding[];
  try {
    findings = JSON.parse(await readFile(json, "utf8")) as Finding[];
  } catch (err) {
    throw new Error(`testssl wrote no readable JSON (exit ${r.code}, signal ${r.signal}): ${String(err)}\n${r.out}`);
  }
  return { findings, seconds, output: r.out };
}

function server(): Wardmail {
  assert.ok(w, "server not started");
  return w;
}

before(async () => {
  requireBinary("testssl", ["--version"]);
  requireBinary("openssl", ["version"]);
  dir = await mkdtemp(join(tmpdir(), "wardmail-testssl-"));
  w = await startWardmail({ workers: 2 });
  // Both scans at once: each mostly waits on its own handshakes.
  scans.set("mx", scan("mx", ["-t", "smtp", `${HOSTNAME}:${w.smtpPort}`]));
  scans.set("submissions", scan("submissions", [`${HOSTNAME}:${w.submissionsPort}`]));
  // Settle both before any test reads one, so a failure never leaves a scan running.
  await Promise.allSettled(scans.values());
});

after(async () => {
  if (w !== undefined) {
    await w.stop();
    await w.cleanup();
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

function byId(findings: Finding[], id: string): Finding {
  const f = findings.find((x) => x.id === id);
  assert.ok(f, `testssl reported no "${id}": did the scan run?`);
  return f;
}

describe("testssl", { timeout: SCAN_TIMEOUT_MS + 60_000 }, () => {
  for (const name of ["mx", "submissions"]) {
    test(`${name}: nothing at MEDIUM or above but the listed self-signed exceptions`, async (t) => {
      const result = scans.get(name);
      assert.ok(result, "scan not started");
      const { findings, seconds } = await result;
      t.diagnostic(`testssl ran ${seconds} s, ${findings.length} findings`);
      // The scan really ran: protocols, the certificate and a vulnerability check are there.
      assert.match(byId(findings, "TLS1_3").finding, /^offered/);
      assert.match(byId(findings, "TLS1_2").finding, /^offered/);
      assert.equal(byId(findings, "TLS1_1").finding, "not offered");
      assert.equal(byId(findings, "cert_chain_of_trust").severity, "OK");
      assert.match(byId(findings, "heartbleed").finding, /not vulnerable/);
      const bad = findings.filter(
        (f) => (BLOCKING.has(f.severity) && !Object.hasOwn(ALLOWED, f.id)) || (f.severity === "WARN" && !Object.hasOwn(ALLOWED_WARN, f.id)),
      );
      assert.deepEqual(
        bad.map((f) => `${f.severity} ${f.id}: ${f.finding}`),
        [],
        "testssl findings at MEDIUM or above, or checks that could not run",
      );
    });
  }

  test("mx: no session resumption with tickets (testssl's own check)", async () => {
    const mx = scans.get("mx");
    assert.ok(mx, "scan not started");
    // On 465 testssl's check races TLS 1.3's tickets (see ALLOWED_WARN); on the MX there is no ticket to race.
    assert.equal(byId((await mx).findings, "sessionresumption_ticket").finding, "not supported");
  });
});
