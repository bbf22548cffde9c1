/**
 * Config warnings through the real command (the launcher bin/wardmail, i.e.
 * dist/ on the project's Node.js 24): the config from issue 16 (listening on
 * 0.0.0.0:25, trusting 0.0.0.0/0, calling itself localhost) is refused;
 * without the open relay it is valid with warnings, each "FILE:LINE: KEY:
 * warning: ..." on stderr, exit 0, or 1 with --strict; and `serve` logs each
 * warning as a JSON line at start and serves. Nothing here binds anything
 * but loopback: `config check` does not bind, and the served config's
 * warnings are ones a loopback listener gets too (AUTH on the MX, a public
 * trusted network). `npm test` builds dist/ before the tests.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { DIST_BIN, ROOT } from "./helpers/wardmail.ts";
import { freePort } from "./peers/ports.ts";
import { RawSmtpClient } from "./peers/smtp-client.ts";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";

const LAUNCHER = join(ROOT, "bin", "wardmail");
let dir = "";

before(async () => {
  assert.ok(existsSync(DIST_BIN), `${DIST_BIN} is missing: run "npm run build" (npm test does)`);
  dir = await mkdtemp(join(tmpdir(), "wardmail-warn-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function check(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(LAUNCHER, ["config", "check", ...args], { cwd: dir, encoding: "utf8", timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const ISSUE_CONFIG = [
  "[smtp]", //                                         1
  'listen = ["0.0.0.0:25"]', //                        2
  "[relay]", //                                        3
  'trusted_networks = ["0.0.0.0/0"]', //               4
  "[dns]", //                                          5
  'servers = ["192.0.2.53"]', //                       6
  "",
].join("\n");

test("the issue's config: 0.0.0.0/0 as trusted network is refused (exit 1) with key and line", async () => {
  const f = join(dir, "issue.toml");
  await writeFile(f, ISSUE_CONFIG);
  const r = check([f]);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.equal(r.stdout, "");
  assert.equal(r.stderr, `${f}:4: relay.trusted_networks[0]: 0.0.0.0/0 is every IPv4 address: the whole Internet could relay through this server without AUTH (an open relay); expected only networks you control\n`);
});

test("without the open relay: valid with 5 warnings, each FILE:LINE: KEY: warning: ...; --strict makes it exit 1", async () => {
  const f = join(dir, "public.toml");
  await writeFile(f, ISSUE_CONFIG.replace('"0.0.0.0/0"', '"127.0.0.1"'));
  const r = check([f]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.equal(r.stdout, `${f}: valid with 5 warnings\n`);
  const which = "smtp.listen[0] (line 2) listens on 0.0.0.0:25";
  assert.deepEqual(r.stderr.trimEnd().split("\n"), [
    `${f}:0: server.hostname: warning: "localhost" is not this host's public name, but ${which}; expected the fully qualified name that the host's address resolves to and back (its A/AAAA and PTR records), which other servers see in the greeting and check (a default value)`,
    `${f}:0: server.data_dir: warning: not set: $WARDMAIL_HOME or ./var in the directory serve starts in (${dir}/var here), but ${which}; expected an absolute path such as /var/lib/wardmail (a default value)`,
    `${f}:0: tls.certificates: warning: no certificate: the self-signed one in ${dir}/var/tls is used, but ${which}; mail clients refuse it on submission, and senders that enforce MTA-STS or DANE do not deliver to it; expected a certificate for localhost from a CA (e.g. Let's Encrypt) (a default value)`,
    `${f}:0: local.domains: warning: localhost, example.test are the demo domains, but ${which}; expected the domains this server receives mail for (a default value)`,
    `${f}:6: dns.servers: warning: not every DNS server is on loopback (192.0.2.53), so their AD bit is not believed and DANE is off for outbound mail; expected a validating resolver on this host (e.g. Unbound on 127.0.0.1), with dns.servers = ["127.0.0.1"]`,
  ]);
  const strict = check(["--strict", f]);
  assert.equal(strict.status, 1);
  assert.equal(strict.stdout, `${f}: invalid under --strict: 5 warnings\n`);
  assert.equal(strict.stderr, r.stderr);
  // A config without warnings passes --strict.
  const quiet = join(dir, "quiet.toml");
  await writeFile(quiet, '[smtp]\nlisten = ["127.0.0.1:2525"]\n');
  const q = check(["--strict", quiet]);
  assert.deepEqual([q.status, q.stdout, q.stderr], [0, `${quiet}: valid\n`, ""]);
});

test("serve logs each warning as a JSON line with key and line at start, then serves", async () => {
  const port = await freePort();
  const f = join(dir, "serve.toml");
  await writeFile(
    f,
    [
      `server.data_dir = ${JSON.stringify(join(dir, "data"))}`, //   1
      "server.workers = 1", //                                        2
      `smtp.listen = ["127.0.0.1:${port}"]`, //                       3
      "submission.listen = []", //                                    4
      "submissions.listen = []", //                                   5
      "auth.on_mx = true", //                                         6
      'relay.trusted_networks = ["127.0.0.1", "203.0.112.0/23"]', //  7
      "",
    ].join("\n"),
  );
  const child = spawn(LAUNCHER, ["serve", "--config", f], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  try {
    const deadline = Date.now() + 20_000;
    while (!stderr.includes("wardmail: ready") && child.exitCode === null && Date.now() < deadline) await sleep(25);
    assert.match(stderr, /wardmail: ready/, stdout + stderr);
    const warnings = stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { level: number; msg: string; configKey?: string; line?: number; file?: string; warning?: string })
      .filter((j) => j.msg.startsWith("config warning"));
    assert.deepEqual(
      warnings.map((j) => [j.level, j.file, j.line, j.configKey]),
      [
        // Run as root (as CI is), with server.user empty: it stays root, and says so.
        ...(process.getuid?.() === 0 ? [[40, f, 1, "server.user"]] : []),
        [40, f, 6, "auth.on_mx"],
        [40, f, 7, "relay.trusted_networks[1]"],
      ],
    );
    if (process.getuid?.() === 0) warnings.shift();
    assert.equal(warnings[0]?.msg, `config warning: ${f}:6: auth.on_mx: AUTH is offered on the MX listener, where the whole Internet connects and guesses passwords; expected false: clients log in on submission (465/587)`);
    assert.match(warnings[1]?.warning ?? "", /^203\.0\.112\.0\/23 includes public addresses: /);
    // And it serves: AUTH is offered after STARTTLS only, so EHLO in plain text does not show it.
    const c = await RawSmtpClient.connect(port);
    try {
      assert.equal((await c.readReply()).code, 220);
      const ehlo = await c.command("EHLO client.test");
      assert.equal(ehlo.code, 250);
      assert.ok(ehlo.lines.includes("STARTTLS"), ehlo.raw);
    } finally {
      await c.quit();
    }
  } finally {
    if (child.exitCode === null) child.kill("SIGTERM");
    assert.equal(await exited, 0);
  }
});

test("docs/deploy.md's config, with a CA-issued certificate for its host name, passes --strict; self-signed, it does not", { skip: peerSkip(binaryMissing("openssl", ["version"], "openssl", { exitZero: true })) }, async () => {
  const doc = await readFile(join(ROOT, "docs", "deploy.md"), "utf8");
  const toml = /```toml\n([\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(toml !== undefined && toml.includes('hostname = "mx.example.org"'), "the config block of docs/deploy.md");
  const etc = join(dir, "etc");
  await mkdir(join(etc, "tls"), { recursive: true });
  const f = join(etc, "wardmail.toml");
  await writeFile(f, toml);
  const openssl = (args: string[]): void => {
    const r = spawnSync("openssl", args, { cwd: etc, encoding: "utf8", timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
  };
  // A CA, and a certificate it issued for mx.example.org (what certbot's files would be).
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", "/CN=Test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"]);
  openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "tls/privkey.pem", "-out", "leaf.csr", "-subj", "/CN=mx.example.org"]);
  await writeFile(join(etc, "leaf.ext"), "subjectAltName=DNS:mx.example.org\nextendedKeyUsage=serverAuth\n");
  openssl(["x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "30", "-extfile", "leaf.ext", "-out", "tls/fullchain.pem"]);
  const r = check(["--strict", f]);
  assert.deepEqual([r.status, r.stdout, r.stderr], [0, `${f}: valid\n`, ""]);
  // The same config with a self-signed certificate: one warning, and --strict refuses it.
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "tls/privkey.pem", "-out", "tls/fullchain.pem", "-days", "30", "-subj", "/CN=mx.example.org", "-addext", "subjectAltName=DNS:mx.example.org"]);
  const self = check(["--strict", f]);
  assert.equal(self.status, 1);
  const line = toml.split("\n").findIndex((l) => l.startsWith("certificates")) + 1;
  assert.equal(self.stderr, `${f}:${line}: tls.certificates[0].cert: warning: ${join(etc, "tls", "fullchain.pem")} is self-signed; mail clients refuse it, and senders that enforce MTA-STS or DANE (unless its TLSA record names it) do not deliver; expected a certificate from a CA\n`);
});
