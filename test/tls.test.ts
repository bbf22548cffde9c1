/**
 * TLS with real peers against a running Wardmail: openssl s_client (STARTTLS
 * and implicit TLS, version floor), the STARTTLS injection class
 * (CVE-2011-0411) over a raw socket, no second STARTTLS, SNI with two
 * operator certificates, reload on SIGHUP with a session open, and the
 * self-signed default surviving a restart.
 *
 * Two servers, started together in before(): `w` with two operator
 * certificates (a.test first, so it is the default; file watching off, so
 * only SIGHUP reloads), and `ss` with no [tls] section (self-signed).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { exec, type Step } from "./peers/exec.ts";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import tls from "node:tls";
import { generateCertificate } from "../src/tls/index.ts";
import { SmtpWire } from "./peers/smtp-client.ts";
import { tlsClient } from "./peers/submission.ts";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";

// ---------------------------------------------------------------- helpers

function requireBinary(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: "ignore", timeout: 10_000 });
  if (r.error !== undefined) {
    throw new Error(`${cmd} is required for this test but cannot be run (${r.error.message}); install it with scripts/install-peers.sh`);
  }
}

/** openssl with stdin input; stdout and stderr as latin1 text. */
async function run(cmd: string, args: string[], input: string | readonly Step[], timeoutMs = 10_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = await exec(cmd, args, typeof input === "string" ? { input, timeoutMs } : { steps: input, timeoutMs });
  return { code: r.code, stdout: r.stdout.toString("latin1"), stderr: r.stderr.toString("latin1") };
}



function connectPlain(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.removeListener("error", reject);
      resolve(s);
    });
    s.once("error", reject);
  });
}


/** Plain connect, greeting, EHLO, STARTTLS, handshake: a SmtpWire on the TLS socket (EHLO not yet sent again). */
async function starttls(port: number, servername?: string): Promise<SmtpWire> {
  const plain = new SmtpWire(await connectPlain(port));
  try {
    assert.equal((await plain.reply()).code, 220);
    const ehlo = await plain.command("EHLO client.test");
    assert.equal(ehlo.code, 250);
    assert.ok(ehlo.lines.includes("STARTTLS"), `STARTTLS not offered: ${ehlo.raw}`);
    const go = await plain.command("STARTTLS");
    assert.match(go.raw, /^220 2\.0\.0 /);
  } catch (err) {
    plain.close();
    throw err;
  }
  const secure = await tlsClient({ socket: plain.detach(), ...(servername !== undefined ? { servername } : {}) });
  return new SmtpWire(secure);
}

/** Implicit TLS: handshake, then the greeting is read. */
async function implicitTls(port: number, servername?: string): Promise<SmtpWire> {
  const s = await tlsClient({ port, ...(servername !== undefined ? { servername } : {}) });
  const wire = new SmtpWire(s);
  const greet = await wire.reply();
  assert.equal(greet.code, 220);
  return wire;
}

function fingerprintOf(wire: SmtpWire): string {
  return (wire.socket as tls.TLSSocket).getPeerCertificate().fingerprint256;
}

/** Fingerprint presented to a new connection (then QUIT). */
async function presented(kind: "starttls" | "implicit", port: number, servername?: string): Promise<string> {
  const wire = kind === "starttls" ? await starttls(port, servername) : await implicitTls(port, servername);
  try {
    return fingerprintOf(wire);
  } finally {
    wire.send("QUIT\r\n");
    wire.close();
  }
}

function count(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1;
}

// ---------------------------------------------------------------- fixtures

let certDir = "";
const paths = {
  aCert: "",
  aKey: "",
  bCert: "",
  bKey: "",
};
let aFingerprint = "";
let bFingerprint = "";
let w: Wardmail | undefined;
let ss: Wardmail | undefined; // self-signed
const WORKERS = 2;

function server(): Wardmail {
  assert.ok(w, "server not started");
  return w;
}

async function writePair(cert: string, key: string, names: string[]): Promise<string> {
  const g = await generateCertificate(names);
  // Replace by rename, as ACME clients do, so a reader never sees half a file.
  await writeFile(`${cert}.new`, g.certPem);
  await writeFile(`${key}.new`, g.keyPem, { mode: 0o600 });
  await rename(`${key}.new`, key);
  await rename(`${cert}.new`, cert);
  return new X509Certificate(g.certPem).fingerprint256;
}

before(async () => {
  requireBinary("openssl", ["version"]);
  certDir = await mkdtemp(join(tmpdir(), "wardmail-tlscerts-"));
  paths.aCert = join(certDir, "a.crt");
  paths.aKey = join(certDir, "a.key");
  paths.bCert = join(certDir, "b.crt");
  paths.bKey = join(certDir, "b.key");
  aFingerprint = await writePair(paths.aCert, paths.aKey, ["a.test"]);
  bFingerprint = await writePair(paths.bCert, paths.bKey, ["b.test"]);
  const extra = [
    "[tls]",
    `certificates = [ { cert = ${JSON.stringify(paths.aCert)}, key = ${JSON.stringify(paths.aKey)} }, ` +
      `{ cert = ${JSON.stringify(paths.bCert)}, key = ${JSON.stringify(paths.bKey)} } ]`,
    "watch = false",
  ].join("\n");
  const [a, b] = await Promise.allSettled([startWardmail({ extra, workers: WORKERS }), startWardmail({ workers: 1 })]);
  if (a.status === "fulfilled") w = a.value;
  if (b.status === "fulfilled") ss = b.value;
  if (a.status === "rejected") throw a.reason;
  if (b.status === "rejected") throw b.reason;
});

after(async () => {
  for (const s of [w, ss]) {
    if (s === undefined) continue;
    await s.stop();
    await s.cleanup();
  }
  if (certDir) await rm(certDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- openssl s_client

describe("openssl s_client", () => {
  // QUIT only once the EHLO reply is in: a client that pipelines past EHLO is refused (protocol.strict_pipelining).
  const input: readonly Step[] = [{ send: "EHLO x\n", waitFor: /greets x\r?\n(250-[^\n]*\n)*250 / }, { send: "QUIT\n" }];

  for (const version of ["-tls1_2", "-tls1_3"] as const) {
    const name = version === "-tls1_2" ? "TLSv1.2" : "TLSv1.3";
    test(`STARTTLS on the MX port with ${name}: handshake, then EHLO answered inside TLS`, async () => {
      const r = await run("openssl", ["s_client", "-starttls", "smtp", "-connect", `127.0.0.1:${server().smtpPort}`, version, "-ign_eof", "-crlf"], input);
      assert.equal(r.code, 0, `s_client failed:\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, new RegExp(`New, ${name.replace(".", "\\.")}, Cipher is \\S+`));
      // s_client itself says "EHLO mail.example.com" in plaintext; "greets x" is our EHLO, sent over TLS.
      assert.match(r.stdout, /^250-mx\.example\.test greets x\r?$/m);
      assert.doesNotMatch(r.stdout, /^250-STARTTLS/m);
      assert.match(r.stdout, /^221 2\.0\.0 /m);
    });

    test(`implicit TLS on the submissions port with ${name}`, async () => {
      const r = await run("openssl", ["s_client", "-connect", `127.0.0.1:${server().submissionsPort}`, version, "-ign_eof", "-crlf"], input);
      assert.equal(r.code, 0, `s_client failed:\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, new RegExp(`New, ${name.replace(".", "\\.")}, Cipher is \\S+`));
      assert.match(r.stdout, /^220 mx\.example\.test /m);
      assert.match(r.stdout, /^250-mx\.example\.test greets x\r?$/m);
      assert.doesNotMatch(r.stdout, /STARTTLS/);
      assert.match(r.stdout, /^221 2\.0\.0 /m);
    });
  }

  // The client is allowed to offer TLS 1.1 (security level 0), so a failure is the server's refusal.
  const tls11 = ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", "-ign_eof", "-crlf"];

  test("TLSv1.1 is refused on the MX port (STARTTLS)", async () => {
    const r = await run("openssl", ["s_client", "-starttls", "smtp", "-connect", `127.0.0.1:${server().smtpPort}`, ...tls11], input);
    assert.notEqual(r.code, 0, `TLS 1.1 handshake succeeded:\n${r.stdout}`);
    assert.match(r.stderr, /alert protocol version|unsupported protocol|no protocols available/i);
    assert.doesNotMatch(r.stdout, /greets x/);
    assert.match(r.stdout, /Cipher is \(NONE\)/);
  });

  test("TLSv1.1 is refused on the submissions port (implicit TLS)", async () => {
    const r = await run("openssl", ["s_client", "-connect", `127.0.0.1:${server().submissionsPort}`, ...tls11], input);
    assert.notEqual(r.code, 0, `TLS 1.1 handshake succeeded:\n${r.stdout}`);
    assert.match(r.stderr, /alert protocol version|unsupported protocol|no protocols available/i);
    assert.doesNotMatch(r.stdout, /220 mx\.example\.test/);
    assert.match(r.stdout, /Cipher is \(NONE\)/);
  });

  test("the server still serves after refused handshakes", async () => {
    const wire = await implicitTls(server().submissionsPort);
    try {
      assert.equal((await wire.command("NOOP")).code, 250);
    } finally {
      wire.close();
    }
  });
});

// ---------------------------------------------------------------- STARTTLS injection

describe("STARTTLS command injection (CVE-2011-0411 class)", () => {
  /** Greeting, EHLO, then `STARTTLS\r\n` + injected bytes in ONE write; returns the TLS wire after the handshake. */
  async function inject(port: number, injected: string): Promise<SmtpWire> {
    const sock = await connectPlain(port);
    const plain = new SmtpWire(sock);
    try {
      assert.equal((await plain.reply()).code, 220);
      assert.equal((await plain.command("EHLO x")).code, 250);
      plain.send(`STARTTLS\r\n${injected}`);
      const r = await plain.reply();
      assert.match(r.raw, /^220 2\.0\.0 /);
      // Nothing but the 220 in plaintext (no answer to the injected commands).
      await sleep(100);
      assert.equal(plain.pending, "", "plaintext answer after the 220");
    } catch (err) {
      plain.close();
      throw err;
    }
    return new SmtpWire(await tlsClient({ socket: plain.detach() }));
  }

  test("pipelined RSET after STARTTLS is never answered; EHLO after TLS works, without STARTTLS", async () => {
    const wire = await inject(server().smtpPort, "RSET\r\n");
    try {
      await sleep(500);
      assert.equal(wire.pending, "", "the injected RSET was answered inside TLS");
      const ehlo = await wire.command("EHLO y");
      assert.equal(ehlo.code, 250);
      assert.equal(ehlo.lines[0], "mx.example.test greets y");
      assert.ok(!ehlo.lines.includes("STARTTLS"), `STARTTLS offered again: ${ehlo.raw}`);
      assert.equal((await wire.command("QUIT")).code, 221);
    } finally {
      wire.close();
    }
  });

  test("an injected EHLO/MAIL is discarded: after TLS, MAIL without EHLO gets 503", async () => {
    const wire = await inject(server().smtpPort, "EHLO evil.test\r\nMAIL FROM:<x@evil.test>\r\n");
    try {
      await sleep(500);
      assert.equal(wire.pending, "", "an injected command was answered inside TLS");
      const mail = await wire.command("MAIL FROM:<a@sender.test>");
      assert.equal(mail.code, 503, mail.raw);
      assert.match(mail.raw, /^503 5\.5\.1 /);
      // The session is usable once the client says EHLO again.
      assert.equal((await wire.command("EHLO y")).code, 250);
      assert.equal((await wire.command("MAIL FROM:<a@sender.test>")).code, 250);
      assert.equal((await wire.command("RSET")).code, 250);
    } finally {
      wire.close();
    }
  });

  test("the same injection on the submission port", async () => {
    const wire = await inject(server().submissionPort, "RSET\r\nNOOP\r\n");
    try {
      await sleep(500);
      assert.equal(wire.pending, "");
      assert.equal((await wire.command("MAIL FROM:<a@sender.test>")).code, 503);
    } finally {
      wire.close();
    }
  });
});

// ---------------------------------------------------------------- no second STARTTLS

describe("after TLS", () => {
  test("MX port: EHLO no longer offers STARTTLS, a second STARTTLS gets 503 5.5.1", async () => {
    const wire = await starttls(server().smtpPort);
    try {
      const ehlo = await wire.command("EHLO again.test");
      assert.equal(ehlo.code, 250);
      assert.ok(!ehlo.lines.includes("STARTTLS"), ehlo.raw);
      const again = await wire.command("STARTTLS");
      assert.match(again.raw, /^503 5\.5\.1 /);
      // Still in the TLS session and in step.
      assert.equal((await wire.command("NOOP")).code, 250);
    } finally {
      wire.close();
    }
  });

  test("submissions port (implicit TLS): no STARTTLS offered, STARTTLS gets 503 5.5.1", async () => {
    const wire = await implicitTls(server().submissionsPort);
    try {
      const ehlo = await wire.command("EHLO again.test");
      assert.equal(ehlo.code, 250);
      assert.ok(!ehlo.lines.includes("STARTTLS"), ehlo.raw);
      assert.match((await wire.command("STARTTLS")).raw, /^503 5\.5\.1 /);
      assert.equal((await wire.command("NOOP")).code, 250);
    } finally {
      wire.close();
    }
  });
});

// ---------------------------------------------------------------- SNI and reload

describe("SNI with two certificates, and reload on SIGHUP", () => {
  test("SNI picks the certificate on the submissions port and on STARTTLS; no SNI gets the first", async () => {
    const s = server();
    assert.equal(await presented("implicit", s.submissionsPort, "b.test"), bFingerprint);
    assert.equal(await presented("implicit", s.submissionsPort, "a.test"), aFingerprint);
    assert.equal(await presented("implicit", s.submissionsPort, "B.TEST"), bFingerprint);
    assert.equal(await presented("implicit", s.submissionsPort), aFingerprint);
    assert.equal(await presented("implicit", s.submissionsPort, "unknown.test"), aFingerprint);
    assert.equal(await presented("starttls", s.smtpPort, "b.test"), bFingerprint);
    assert.equal(await presented("starttls", s.smtpPort, "a.test"), aFingerprint);
    assert.equal(await presented("starttls", s.smtpPort), aFingerprint);
    const wire = await implicitTls(s.submissionsPort, "b.test");
    try {
      const cert = (wire.socket as tls.TLSSocket).getPeerCertificate();
      assert.equal(cert.subject.CN, "b.test");
      assert.match(cert.subjectaltname ?? "", /DNS:b\.test/);
    } finally {
      wire.close();
    }
  });

  test("SIGHUP: an open session keeps working, new connections see the new certificate", async () => {
    const s = server();
    const old = await starttls(s.smtpPort, "a.test");
    try {
      assert.equal((await old.command("EHLO old.test")).code, 250);
      assert.equal(fingerprintOf(old), aFingerprint);

      const newFingerprint = await writePair(paths.aCert, paths.aKey, ["a.test"]);
      assert.notEqual(newFingerprint, aFingerprint);
      // File watching is off: until SIGHUP, the loaded certificate stays.
      assert.equal(await presented("implicit", s.submissionsPort, "a.test"), aFingerprint);

      const reloadsBefore = count(s.output(), "TLS certificate reloaded");
      assert.ok(s.process.kill("SIGHUP"), "SIGHUP could not be sent");
      // Each worker logs one line per certificate it loaded.
      const deadline = Date.now() + 5000;
      while (count(s.output(), "TLS certificate reloaded") < reloadsBefore + 2 * WORKERS && Date.now() < deadline) await sleep(50);
      assert.ok(
        count(s.output(), "TLS certificate reloaded") >= reloadsBefore + 2 * WORKERS,
        `not every worker reloaded:\n${s.output().slice(-3000)}`,
      );

      // The session opened before the reload is untouched.
      const noop = await old.command("NOOP");
      assert.equal(noop.code, 250);
      assert.equal(fingerprintOf(old), aFingerprint);
      assert.equal((await old.command("MAIL FROM:<a@sender.test>")).code, 250);
      assert.equal((await old.command("RSET")).code, 250);

      // New handshakes, several times so both workers are asked: new a, unchanged b.
      for (let i = 0; i < 4; i++) {
        assert.equal(await presented("implicit", s.submissionsPort, "a.test"), newFingerprint, "submissions, SNI a.test");
        assert.equal(await presented("implicit", s.submissionsPort), newFingerprint, "submissions, no SNI");
        assert.equal(await presented("starttls", s.smtpPort, "a.test"), newFingerprint, "MX STARTTLS, SNI a.test");
        assert.equal(await presented("starttls", s.smtpPort), newFingerprint, "MX STARTTLS, no SNI");
      }
      assert.equal(await presented("implicit", s.submissionsPort, "b.test"), bFingerprint);
      assert.equal(await presented("starttls", s.smtpPort, "b.test"), bFingerprint);
      aFingerprint = newFingerprint;

      assert.equal((await old.command("QUIT")).code, 221);
    } finally {
      old.close();
    }
  });
});

// ---------------------------------------------------------------- self-signed default

describe("self-signed default certificate", () => {
  test("generated once in data/tls, presented, and reused (same bytes) after a restart", async () => {
    assert.ok(ss, "server not started");
    const certFile = join(ss.dataDir, "tls", "selfsigned.crt");
    const keyFile = join(ss.dataDir, "tls", "selfsigned.key");
    const cert1 = await readFile(certFile);
    const key1 = await readFile(keyFile);
    const x509 = new X509Certificate(cert1);
    assert.equal(x509.checkHost("mx.example.test"), "mx.example.test");
    assert.equal(await presented("implicit", ss.submissionsPort), x509.fingerprint256);
    assert.equal(await presented("starttls", ss.smtpPort), x509.fingerprint256);

    assert.equal(await ss.stop(), 0);
    ss = await ss.restart();
    assert.ok((await readFile(certFile)).equals(cert1), "selfsigned.crt changed after the restart");
    assert.ok((await readFile(keyFile)).equals(key1), "selfsigned.key changed after the restart");
    assert.equal(await presented("implicit", ss.submissionsPort), x509.fingerprint256);
    assert.equal(await presented("starttls", ss.smtpPort), x509.fingerprint256);
  });
});
