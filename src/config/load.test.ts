// loadConfig and checkConfigFile: reading files, unreadable files,
// certificate files that must exist, and collecting every issue at once.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { checkConfigFile, ConfigError, defaultConfig, loadConfig } from "./index.ts";

let dir = "";
const ENV = { WARDMAIL_HOME: "/var/lib/wardmail-test" };

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "wardmail-config-"));
  await mkdir(path.join(dir, "tls"));
  await writeFile(path.join(dir, "tls", "cert.pem"), "-----BEGIN CERTIFICATE-----\n");
  await writeFile(path.join(dir, "tls", "key.pem"), "-----BEGIN PRIVATE KEY-----\n");
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(name: string, content: string | Buffer): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, content);
  return file;
}

async function rejection(p: Promise<unknown>): Promise<ConfigError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail("expected a ConfigError");
}

void test("loadConfig(undefined) gives the defaults, honouring WARDMAIL_HOME", async () => {
  const c = await loadConfig(undefined, ENV);
  assert.deepEqual(c, defaultConfig(ENV));
  assert.equal(c.server.dataDir, "/var/lib/wardmail-test");
  assert.ok(Object.isFrozen(c));
});

void test("loadConfig reads a file; certificate paths resolve against its directory and must exist", async () => {
  const file = await write("good.toml", '[server]\nhostname = "mx.example.org"\n[tls]\ncertificates = [{ cert = "tls/cert.pem", key = "tls/key.pem" }]\n');
  const c = await loadConfig(file, ENV);
  assert.equal(c.server.hostname, "mx.example.org");
  assert.equal(c.server.dataDir, "/var/lib/wardmail-test");
  assert.deepEqual(c.tls.certificates, [{ cert: path.join(dir, "tls/cert.pem"), key: path.join(dir, "tls/key.pem") }]);
  assert.deepEqual(await checkConfigFile(file), { ok: true, issues: [], warnings: [], readable: true });
});

void test("a missing certificate file is an error with its key and line", async () => {
  const file = await write("nocert.toml", '[tls]\ncertificates = [\n  { cert = "tls/cert.pem", key = "tls/missing.pem" },\n  { cert = "tls", key = "tls/key.pem" },\n]\n');
  const err = await rejection(loadConfig(file, ENV));
  assert.deepEqual(err.issues.map((i) => [i.key, i.line]), [["tls.certificates[0].key", 3], ["tls.certificates[1].cert", 4]]);
  assert.match(err.issues[0]?.message ?? "", /missing\.pem does not exist/);
  assert.match(err.issues[1]?.message ?? "", /is not a regular file/);
});

void test("an unreadable file is a ConfigError with key \"\" and line 0", async () => {
  const missing = path.join(dir, "nope.toml");
  const err = await rejection(loadConfig(missing, ENV));
  assert.equal(err.file, missing);
  assert.deepEqual(err.issues, [{ key: "", line: 0, message: "cannot read the config file: the file does not exist" }]);
  assert.equal(err.message, `${missing}:0: cannot read the config file: the file does not exist`);
  const r = await checkConfigFile(missing);
  assert.equal(r.ok, false);
  assert.equal(r.readable, false);
  assert.equal(r.issues[0]?.line, 0);
  assert.equal((await checkConfigFile(dir)).readable, false);
});

void test("a file that is not UTF-8 is refused", async () => {
  const file = await write("latin1.toml", Buffer.from([0x61, 0x20, 0x3d, 0x20, 0x22, 0xe9, 0x22, 0x0a]));
  const r = await checkConfigFile(file);
  assert.equal(r.readable, false);
  assert.match(r.issues[0]?.message ?? "", /not valid UTF-8/);
});

void test("loadConfig throws every problem of an invalid file", async () => {
  const file = await write("bad.toml", '[limits]\nmax_recipients = 0\n[log]\nlevel = "loud"\n');
  const err = await rejection(loadConfig(file, ENV));
  assert.equal(err.message, `${file}:2: limits.max_recipients: expected an integer from 1 to 10000, got 0\n${file}:4: log.level: expected one of "trace", "debug", "info", "warn", "error", "fatal", "silent", got "loud"`);
});

void test("checkConfigFile collects all issues at once, certificate files included", async () => {
  const file = await write("many.toml", [
    "[server]",                                                   // 1
    'hostname = "-bad-"',                                         // 2
    "color = true",                                               // 3
    "[smtp]",                                                     // 4
    'listen = ["127.0.0.1:25", "127.0.0.1:25"]',                  // 5
    "[tls]",                                                      // 6
    'certificates = [{ cert = "absent.pem", key = "tls/key.pem" }]', // 7
    "[local]",                                                    // 8
    'domains = ["example.org"]',                                  // 9
    'mailboxes = ["a@example.org"]',                              // 10
    "[local.aliases]",                                            // 11
    '"x@example.org" = ["y@example.org"]',                        // 12
    '"y@example.org" = ["x@example.org"]',                        // 13
  ].join("\n"));
  const r = await checkConfigFile(file);
  assert.equal(r.ok, false);
  assert.equal(r.readable, true);
  assert.deepEqual(r.issues.map((i) => [i.line, i.key]), [
    [2, "server.hostname"],
    [3, "server.color"],
    [5, "smtp.listen[1]"],
    [7, "tls.certificates[0].cert"],
    [12, 'local.aliases."x@example.org"'],
  ]);
});

void test("checkConfigFile reports a syntax error with its line", async () => {
  const file = await write("syntax.toml", '[server]\nhostname = "a"\n[limits\n');
  const r = await checkConfigFile(file);
  assert.equal(r.ok, false);
  assert.equal(r.readable, true);
  assert.equal(r.issues.length, 1);
  assert.equal(r.issues[0]?.line, 3);
  assert.equal(r.issues[0]?.key, "");
});
