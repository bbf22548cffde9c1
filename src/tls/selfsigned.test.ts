// Tests for the self-signed certificate generator: contents checked with the
// openssl CLI, reuse, regeneration of bad pairs, file modes, concurrent callers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import * as tls from "node:tls";
import { promisify } from "node:util";
import pino from "pino";
import { ensureSelfSigned, generateCertificate } from "./selfsigned.ts";

const run = promisify(execFile);
const logger = pino({ level: "silent" });

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "wardmail-tls-"));
  t.after(() => rm(d, { recursive: true, force: true }));
  return d;
}

async function opensslText(certPath: string): Promise<string> {
  const { stdout } = await run("openssl", ["x509", "-noout", "-text", "-in", certPath]);
  return stdout;
}

void test("generates once with the expected contents and safe file modes", async (t) => {
  const dir = join(await tempDir(t), "tls");
  const paths = await ensureSelfSigned(dir, "Mail.Example.Test", logger);
  assert.equal(paths.cert, join(dir, "selfsigned.crt"));
  assert.equal(paths.key, join(dir, "selfsigned.key"));

  assert.equal((await stat(dir)).mode & 0o777, 0o700);
  assert.equal((await stat(paths.key)).mode & 0o777, 0o600);

  const text = await opensslText(paths.cert);
  assert.match(text, /Version: 3 \(0x2\)/);
  assert.match(text, /Subject: CN\s*=\s*mail\.example\.test/);
  assert.match(text, /Issuer: CN\s*=\s*mail\.example\.test/);
  assert.match(text, /X509v3 Subject Alternative Name:\s*\n\s*DNS:mail\.example\.test\s*\n/);
  assert.match(text, /X509v3 Basic Constraints: critical\s*\n\s*CA:FALSE/);
  assert.match(text, /X509v3 Key Usage: critical\s*\n\s*Digital Signature\s*\n/);
  assert.match(text, /X509v3 Extended Key Usage:\s*\n\s*TLS Web Server Authentication\s*\n/);
  assert.match(text, /ASN1 OID: prime256v1/);
  assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);

  const x509 = new X509Certificate(await readFile(paths.cert));
  assert.equal(x509.serialNumber.length, 32, "16-byte serial");
  assert.ok(x509.checkPrivateKey(createPrivateKey(await readFile(paths.key))));
  const days = (x509.validToDate.getTime() - x509.validFromDate.getTime()) / 86_400_000;
  assert.ok(days >= 729 && days <= 731, `validity ${days} days`);
  assert.ok(x509.validFromDate.getTime() <= Date.now());

  // openssl accepts it as a self-signed server certificate.
  const { stdout } = await run("openssl", ["verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", paths.cert, paths.cert]);
  assert.match(stdout, /: OK/);

  // Nothing but the pair is left behind (no temporary or lock files).
  assert.deepEqual((await readdir(dir)).sort(), ["selfsigned.crt", "selfsigned.key"]);
});

void test("second call reuses the same files byte for byte", async (t) => {
  const dir = await tempDir(t);
  const a = await ensureSelfSigned(dir, "mx.example.test", logger);
  const cert1 = await readFile(a.cert);
  const key1 = await readFile(a.key);
  const b = await ensureSelfSigned(dir, "mx.example.test", logger);
  assert.deepEqual(b, a);
  assert.ok(cert1.equals(await readFile(b.cert)));
  assert.ok(key1.equals(await readFile(b.key)));
});

void test("localhost gets DNS localhost and the loopback IPs", async (t) => {
  const dir = await tempDir(t);
  const p = await ensureSelfSigned(dir, "localhost", logger);
  const text = await opensslText(p.cert);
  assert.match(text, /DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1\s*\n/);
  const x509 = new X509Certificate(await readFile(p.cert));
  assert.equal(x509.checkIP("127.0.0.1"), "127.0.0.1");
  assert.equal(x509.checkIP("::1"), "::1");
});

void test("a corrupt certificate file is regenerated", async (t) => {
  const dir = await tempDir(t);
  const p = await ensureSelfSigned(dir, "mx.example.test", logger);
  const oldKey = await readFile(p.key);
  await writeFile(p.cert, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
  await ensureSelfSigned(dir, "mx.example.test", logger);
  const x509 = new X509Certificate(await readFile(p.cert));
  const newKey = await readFile(p.key);
  assert.ok(!newKey.equals(oldKey), "a new key is generated with the new certificate");
  assert.ok(x509.checkPrivateKey(createPrivateKey(newKey)));
  assert.equal((await stat(p.key)).mode & 0o777, 0o600);
});

void test("a missing key, a mismatched key, another hostname or an expired certificate cause regeneration", async (t) => {
  const dir = await tempDir(t);
  const p = await ensureSelfSigned(dir, "mx.example.test", logger);
  const fp = async (): Promise<string> => new X509Certificate(await readFile(p.cert)).fingerprint256;

  let before = await fp();
  await rm(p.key);
  await ensureSelfSigned(dir, "mx.example.test", logger);
  assert.notEqual(await fp(), before);

  before = await fp();
  await writeFile(p.key, (await generateCertificate(["other.test"])).keyPem);
  await ensureSelfSigned(dir, "mx.example.test", logger);
  assert.notEqual(await fp(), before);
  assert.ok(new X509Certificate(await readFile(p.cert)).checkPrivateKey(createPrivateKey(await readFile(p.key))));

  before = await fp();
  await ensureSelfSigned(dir, "mx2.example.test", logger);
  assert.notEqual(await fp(), before);
  assert.equal(new X509Certificate(await readFile(p.cert)).checkHost("mx2.example.test"), "mx2.example.test");

  const expired = await generateCertificate(["mx2.example.test"], { notBefore: new Date(Date.now() - 10 * 86_400_000), days: 5 });
  await writeFile(p.cert, expired.certPem);
  await writeFile(p.key, expired.keyPem);
  await ensureSelfSigned(dir, "mx2.example.test", logger);
  assert.ok(new X509Certificate(await readFile(p.cert)).validToDate.getTime() > Date.now() + 700 * 86_400_000);
});

void test("a TLS client that trusts the certificate verifies the hostname", async (t) => {
  const dir = await tempDir(t);
  const p = await ensureSelfSigned(dir, "mx.example.test", logger);
  const [cert, key] = await Promise.all([readFile(p.cert), readFile(p.key)]);
  const server = tls.createServer({ cert, key }, (s) => s.end("hi"));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => server.close());
  const { port } = server.address() as { port: number };
  const check = (servername: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const c = tls.connect({ host: "127.0.0.1", port, servername, ca: cert }, () => {
        c.destroy();
        resolve();
      });
      c.on("error", reject);
    });
  await check("mx.example.test");
  await assert.rejects(check("wrong.example.test"), /does not match|altnames/i);
});

void test("concurrent callers in several processes end with one consistent pair", async (t) => {
  const dir = join(await tempDir(t), "shared");
  // All processes start generating at the same instant, to collide for real.
  const startAt = Date.now() + 1500;
  const script = `
    import { ensureSelfSigned } from ${JSON.stringify(new URL("./selfsigned.ts", import.meta.url).href)};
    import { X509Certificate } from "node:crypto";
    import { readFileSync } from "node:fs";
    import pino from "pino";
    await new Promise((r) => setTimeout(r, ${startAt} - Date.now()));
    const p = await ensureSelfSigned(${JSON.stringify(dir)}, "mx.example.test", pino({ level: "silent" }));
    process.stdout.write(new X509Certificate(readFileSync(p.cert)).fingerprint256);
  `;
  const children = Array.from({ length: 6 }, () =>
    run(process.execPath, ["--input-type=module", "-e", script], { cwd: new URL("../..", import.meta.url).pathname }),
  );
  // And a few callers in this process at the same time.
  await new Promise((r) => setTimeout(r, startAt - Date.now()));
  const local = Array.from({ length: 3 }, () => ensureSelfSigned(dir, "mx.example.test", logger));
  const outs = await Promise.all(children);
  await Promise.all(local);
  const fps = new Set(outs.map((o) => o.stdout));
  const final = new X509Certificate(await readFile(join(dir, "selfsigned.crt")));
  assert.deepEqual([...fps], [final.fingerprint256], "every process ended up with the same certificate");
  assert.ok(final.checkPrivateKey(createPrivateKey(await readFile(join(dir, "selfsigned.key")))));
  assert.deepEqual((await readdir(dir)).sort(), ["selfsigned.crt", "selfsigned.key"]);
});

void test("ensureSelfSigned makes the pair in a thread of its own: the calling thread never loads asn1js or pkijs", async (t) => {
  const dir = join(await tempDir(t), "tls");
  // A fresh process records every module its main thread loads (module.registerHooks is per thread).
  const script = `
    import module from "node:module";
    const loaded = [];
    module.registerHooks({ load(url, context, next) { loaded.push(url); return next(url, context); } });
    const { ensureSelfSigned } = await import(${JSON.stringify(new URL("./selfsigned.ts", import.meta.url).href)});
    const { default: pino } = await import("pino");
    const p = await ensureSelfSigned(${JSON.stringify(dir)}, "mx.example.test", pino({ level: "silent" }));
    process.stdout.write(JSON.stringify({ cert: p.cert, libraries: loaded.filter((u) => /\\/node_modules\\/(pkijs|asn1js)\\//.test(u)) }));
  `;
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], { timeout: 30_000 });
  const out = JSON.parse(stdout) as { cert: string; libraries: string[] };
  assert.deepEqual(out.libraries, [], "asn1js/pkijs loaded in the calling thread");
  const cert = new X509Certificate(await readFile(out.cert));
  assert.match(cert.subjectAltName ?? "", /DNS:mx\.example\.test/);
  // The control: generateCertificate itself, called in this thread, does load them (what the thread spares the caller).
  const control = `
    import module from "node:module";
    const loaded = [];
    module.registerHooks({ load(url, context, next) { loaded.push(url); return next(url, context); } });
    const { generateCertificate } = await import(${JSON.stringify(new URL("./selfsigned.ts", import.meta.url).href)});
    await generateCertificate(["mx.example.test"]);
    process.stdout.write(String(loaded.some((u) => /\\/node_modules\\/pkijs\\//.test(u))));
  `;
  const { stdout: direct } = await run(process.execPath, ["--input-type=module", "-e", control], { timeout: 30_000 });
  assert.equal(direct, "true");
});
