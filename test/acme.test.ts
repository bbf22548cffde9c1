/**
 * Certificates by ACME against Let's Encrypt's test server pebble on
 * loopback, with real HTTP-01 validation: pebble-challtestsrv answers
 * pebble's DNS questions (every name is 127.0.0.1) and pebble fetches the
 * challenge from Wardmail's acme.http_listen. Wardmail gets a certificate
 * at its first start and presents it on STARTTLS (openssl s_client shows
 * pebble's issuer); a renewal keeps the key (DANE) and the running server
 * picks the new certificate up without a restart; with keep_key = false the
 * next key is announced with its TLSA record before the switch.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";
import { spawnDaemon, waitReady, type Daemon } from "./peers/daemon.ts";
import { canConnect, freePort, freePorts } from "./peers/ports.ts";
import { exec } from "./peers/exec.ts";
import { AcmeManager, tlsa311 } from "../src/acme/index.ts";
import { loadConfig } from "../src/config/index.ts";

const SKIP = peerSkip(
  binaryMissing("pebble", ["-h"], "pebble"),
  binaryMissing("openssl", ["version"], "openssl", { exitZero: true }),
);

let dir = "";
let pebble: Daemon | undefined;
let challtest: Daemon | undefined;
let directory = "";
let caFile = "";
let httpPort = 0;
let httpsPort = 0;
let w: Wardmail | undefined;

/** A CA and a certificate for 127.0.0.1 signed by it: pebble's own HTTPS (the package ships none). */
async function pebbleTls(): Promise<{ ca: string; cert: string; key: string }> {
  const ca = join(dir, "ca.pem");
  const caKey = join(dir, "ca.key");
  const cert = join(dir, "pebble.pem");
  const key = join(dir, "pebble.key");
  const run = async (args: string[]): Promise<void> => {
    const r = await exec("openssl", args, { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.out);
  };
  await run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", caKey, "-out", ca, "-days", "2", "-subj", "/CN=wardmail test ACME server CA"]);
  await run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", join(dir, "pebble.csr"), "-subj", "/CN=127.0.0.1"]);
  await writeFile(join(dir, "ext.cnf"), "subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n");
  await run(["x509", "-req", "-in", join(dir, "pebble.csr"), "-CA", ca, "-CAkey", caKey, "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", join(dir, "ext.cnf")]);
  return { ca, cert, key };
}

before(async () => {
  if (SKIP !== false) return;
  dir = await mkdtemp(join(tmpdir(), "wardmail-acme-"));
  const tls = await pebbleTls();
  caFile = tls.ca;
  const [acmePort, mgmtPort, dnsPort, chMgmtPort, tlsPort] = (await freePorts(5)) as [number, number, number, number, number];
  httpPort = await freePort();
  httpsPort = await freePort();
  challtest = spawnDaemon(
    "pebble-challtestsrv",
    ["-dns01", `127.0.0.1:${dnsPort}`, "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", `127.0.0.1:${chMgmtPort}`, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
    await mkdtemp(join(tmpdir(), "wardmail-challtest-")),
  );
  assert.ok(await waitReady(challtest, 10_000, () => canConnect(chMgmtPort)), `pebble-challtestsrv did not start:\n${challtest.log()}`);
  const conf = join(dir, "pebble.json");
  await writeFile(
    conf,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: tls.cert,
        privateKey: tls.key,
        httpPort,
        tlsPort,
        ocspResponderURL: "",
        externalAccountBindingRequired: false,
      },
    }),
  );
  // PEBBLE_VA_NOSLEEP: validate at once. Validation itself is real (no PEBBLE_VA_ALWAYS_VALID).
  // PEBBLE_AUTHZREUSE: a renewal by the same account reuses its valid authorizations (the renewal test).
  process.env.PEBBLE_VA_NOSLEEP = "1";
  process.env.PEBBLE_AUTHZREUSE = "100";
  pebble = spawnDaemon("pebble", ["-config", conf, "-dnsserver", `127.0.0.1:${dnsPort}`], await mkdtemp(join(tmpdir(), "wardmail-pebble-")), { stdout: true });
  assert.ok(await waitReady(pebble, 15_000, () => canConnect(acmePort)), `pebble did not start:\n${pebble.log()}`);
  directory = `https://127.0.0.1:${acmePort}/dir`;
  w = await startWardmail({
    workers: 2,
    extra: `[acme]\ndirectory = "${directory}"\nemail = "postmaster@example.test"\nca_file = "${caFile}"\nhttp_listen = ["127.0.0.1:${httpPort}"]\ndomains = ["mx.example.test", "mta-sts.example.test"]\n[https]\nlisten = ["127.0.0.1:${httpsPort}"]\n`,
  });
});

after(async () => {
  if (w) {
    await w.stop();
    await w.cleanup();
  }
  await pebble?.stop();
  await challtest?.stop();
});

/** The certificate openssl s_client sees on STARTTLS (its text form). */
async function starttlsCertificate(port: number): Promise<string> {
  const r = await exec("openssl", ["s_client", "-starttls", "smtp", "-connect", `127.0.0.1:${port}`, "-servername", "mx.example.test", "-showcerts"], { input: "QUIT\r\n", timeoutMs: 20_000 });
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.out)?.[0];
  assert.ok(pem, r.out);
  const text = await exec("openssl", ["x509", "-noout", "-issuer", "-subject", "-ext", "subjectAltName", "-serial"], { input: pem, timeoutMs: 10_000 });
  return text.out;
}

test("at its first start Wardmail gets a certificate from pebble (HTTP-01) and presents it on STARTTLS", { skip: SKIP }, async () => {
  assert.ok(w);
  assert.match(w.output(), /"msg":"acme certificate issued"/);
  assert.match(w.output(), /"msg":"acme challenge answered"/);
  const seen = await starttlsCertificate(w.smtpPort);
  assert.match(seen, /issuer=.*Pebble Intermediate CA/);
  assert.match(seen, /DNS:mx\.example\.test/);
  assert.match(seen, /DNS:mta-sts\.example\.test/);
  const key = await readFile(join(w.dataDir, "tls", "acme", "privkey.pem"));
  assert.match(w.output(), new RegExp(`"tlsa":"3 1 1 ${tlsa311(key)}"`));
});

test("the HTTPS listener presents the ACME certificate and serves the MTA-STS policy with it", { skip: SKIP }, async () => {
  assert.ok(w);
  const request = "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.test\r\nConnection: close\r\n\r\n";
  const r = await exec("openssl", ["s_client", "-connect", `127.0.0.1:${httpsPort}`, "-servername", "mta-sts.example.test", "-ign_eof"], { input: request, timeoutMs: 20_000 });
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.out)?.[0];
  assert.ok(pem, r.out);
  const text = await exec("openssl", ["x509", "-noout", "-issuer", "-ext", "subjectAltName"], { input: pem, timeoutMs: 10_000 });
  assert.match(text.out, /issuer=.*Pebble Intermediate CA/);
  assert.match(text.out, /DNS:mta-sts\.example\.test/);
  assert.match(r.out, /HTTP\/1\.1 200 OK[\s\S]*\r\n\r\nversion: STSv1\r\nmode: enforce\r\nmx: mx\.example\.test\r\nmax_age: 604800\r\n/);
});

/** An open STARTTLS session (openssl s_client): send a line, read what comes back. */
function openSession(port: number): { send: (line: string) => Promise<string>; close: () => void } {
  const c = spawn("openssl", ["s_client", "-starttls", "smtp", "-connect", `127.0.0.1:${port}`, "-quiet"], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  c.stdout.on("data", (d: Buffer) => (out += d.toString()));
  const killer = setTimeout(() => c.kill("SIGKILL"), 60_000);
  return {
    async send(line) {
      const start = out.length;
      c.stdin.write(`${line}\r\n`);
      for (let i = 0; i < 100 && !/\r?\n/.test(out.slice(start)); i++) await new Promise((r) => setTimeout(r, 50));
      return out.slice(start);
    },
    close() {
      clearTimeout(killer);
      c.kill("SIGTERM");
    },
  };
}

test("a renewal near expiry keeps the key (TLSA unchanged); the running server takes the new certificate on reload, its open session goes on", { skip: SKIP }, async () => {
  assert.ok(w);
  const acmeDir = join(w.dataDir, "tls", "acme");
  const oldCert = new X509Certificate(await readFile(join(acmeDir, "fullchain.pem")));
  const oldKey = await readFile(join(acmeDir, "privkey.pem"));
  const session = openSession(w.smtpPort);
  try {
    assert.match(await session.send("EHLO client.example"), /250/);
    // The check the server runs every 12 hours, with a clock 5 days before notAfter (inside renew_before = 30):
    // same data directory and ACME account (pebble reuses the account's valid authorizations: PEBBLE_AUTHZREUSE),
    // and the reload the primary sends its workers (SIGHUP does the same).
    const config = await loadConfig(w.configPath);
    const server = w;
    const m = new AcmeManager({
      config: { ...config, acme: { ...config.acme, httpListen: [{ host: "127.0.0.1", port: await freePort() }] } },
      logger: pino({ level: "silent" }),
      reload: () => process.kill(server.process.pid ?? 0, "SIGHUP"),
      now: () => Date.parse(oldCert.validTo) - 5 * 86_400_000,
    });
    try {
      await m.start();
    } finally {
      await m.stop();
    }
    const newCert = new X509Certificate(await readFile(join(acmeDir, "fullchain.pem")));
    assert.notEqual(newCert.serialNumber, oldCert.serialNumber);
    assert.deepEqual(await readFile(join(acmeDir, "privkey.pem")), oldKey);
    // The session opened before the reload still works; a new one sees the new certificate.
    assert.match(await session.send("NOOP"), /250/);
    let seen = "";
    for (let i = 0; i < 50; i++) {
      seen = await starttlsCertificate(w.smtpPort);
      if (seen.toLowerCase().includes(`serial=${newCert.serialNumber.toLowerCase()}`)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(seen.toLowerCase().includes(`serial=${newCert.serialNumber.toLowerCase()}`), `${seen} vs ${newCert.serialNumber}`);
    assert.equal(tlsa311(await readFile(join(acmeDir, "privkey.pem"))), tlsa311(oldKey));
  } finally {
    session.close();
  }
});

test("keep_key = false: the next key is announced with its TLSA record before the renewal switches to it", { skip: SKIP }, async () => {
  assert.ok(w);
  const acmeDir = join(w.dataDir, "tls", "acme");
  const oldCert = new X509Certificate(await readFile(join(acmeDir, "fullchain.pem")));
  const config = await loadConfig(w.configPath);
  const lines: string[] = [];
  const logger = pino({ level: "info" }, { write: (l: string) => lines.push(l) });
  const opts = { config: { ...config, acme: { ...config.acme, keepKey: false, httpListen: [{ host: "127.0.0.1", port: await freePort() }] } }, logger, reload: () => undefined };
  // Not due yet: only the announcement of the next key.
  const calm = new AcmeManager(opts);
  assert.equal(await calm.check(), "valid");
  const announced = lines.map((l) => JSON.parse(l) as { msg: string; tlsa?: string }).find((l) => l.msg.startsWith("acme next key"));
  assert.ok(announced?.tlsa, lines.join(""));
  // Due: the renewal uses exactly the announced key.
  const due = new AcmeManager({ ...opts, now: () => Date.parse(oldCert.validTo) - 86_400_000 });
  assert.equal(await due.check(), "issued");
  assert.equal(`3 1 1 ${tlsa311(await readFile(join(acmeDir, "privkey.pem")))}`, announced.tlsa);
  assert.ok(lines.some((l) => l.includes('"msg":"acme: the certificate key changed')));
  await calm.stop();
  await due.stop();
});
