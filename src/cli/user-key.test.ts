/**
 * `wardmail user key ...` run in-process through main() against a temporary
 * data directory: import (OpenPGP.js key, openssl certificate), list (text
 * and JSON), remove, and every refusal with its exit code (1 no, 2 usage,
 * 3 cannot read).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import * as openpgp from "openpgp";
import { main } from "./main.ts";

let dir: string;
let configFile: string;

async function run(args: string[], input = ""): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(["user", ...args, "--config", configFile], {
    out: (t) => (stdout += t),
    err: (t) => (stderr += t),
    stdin: Readable.from(input === "" ? [] : [input]),
  });
  return { code, stdout, stderr };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wardmail-user-key-cli-"));
  configFile = join(dir, "wardmail.toml");
  await writeFile(configFile, `[server]\ndata_dir = ${JSON.stringify(join(dir, "data"))}\n[local]\ndomains = ["example.test"]\nmailboxes = ["postmaster@example.test"]\n`);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("wardmail user key: import, list, remove, refusals and exit codes", async () => {
  // Usage errors.
  assert.equal((await run(["key"])).code, 2);
  assert.equal((await run(["key", "frob"])).code, 2);
  assert.equal((await run(["key", "import", "a@example.test"])).code, 2);
  assert.equal((await run(["key", "remove", "a@example.test", "--json"])).code, 2);
  assert.match((await run(["key", "--help"])).stdout, /^Usage: wardmail user key import ADDRESS FILE/);
  // No database yet.
  assert.deepEqual(await run(["key", "list"]), { code: 0, stdout: "no keys\n", stderr: "" });
  const pgp = await openpgp.generateKey({ type: "curve25519", userIDs: [{ email: "alice@example.test" }], format: "armored" });
  await writeFile(join(dir, "alice.asc"), pgp.publicKey);
  await writeFile(join(dir, "alice-secret.asc"), pgp.privateKey);
  assert.equal((await run(["key", "import", "alice@example.test", join(dir, "alice.asc")])).code, 1);

  assert.equal((await run(["add", "alice@example.test", "--password-stdin"], "correct horse battery\n")).code, 0);
  assert.equal((await run(["alias", "add", "al@example.test", "alice@example.test"])).code, 0);
  assert.equal((await run(["key", "import", "alice@example.test", join(dir, "missing.asc")])).code, 3);
  const secret = await run(["key", "import", "alice@example.test", join(dir, "alice-secret.asc")]);
  assert.equal(secret.code, 1);
  assert.match(secret.stderr, /private key: import the public key only/);

  const imported = await run(["key", "import", "al@example.test", join(dir, "alice.asc")]);
  assert.equal(imported.code, 0, imported.stderr);
  const fp = /OpenPGP key ([0-9A-F]{40}) for alice@example\.test \(expires never; alice@example\.test\)/.exec(imported.stdout)?.[1];
  assert.ok(fp, imported.stdout);
  assert.match((await run(["key", "import", "alice@example.test", join(dir, "alice.asc")])).stdout, /^updated OpenPGP key/);

  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.pem"), "-days", "30", "-subj", "/CN=Al", "-addext", "subjectAltName=email:al@example.test"], { stdio: "ignore" });
  assert.match((await run(["key", "import", "alice@example.test", join(dir, "c.pem")])).stdout, /^imported S\/MIME certificate [0-9A-F]{64} for alice@example\.test \(expires \d{4}-\d\d-\d\d; al@example\.test\)/);
  const keyFile = await run(["key", "import", "alice@example.test", join(dir, "k.pem")]);
  assert.equal(keyFile.code, 1);

  const list = await run(["key", "list"]);
  assert.equal(list.code, 0);
  assert.match(list.stdout, new RegExp(`^alice@example\\.test  pgp  ${fp}  OpenPGP [^\\n]*expires never  alice@example\\.test\\nalice@example\\.test  smime  [0-9A-F]{64}  X\\.509 RSA 2048  expires `));
  const json = JSON.parse((await run(["key", "list", "al@example.test", "--json"])).stdout) as { type: string; fingerprint: string; expires: number | null }[];
  assert.deepEqual(json.map((k) => k.type), ["pgp", "smime"]);
  assert.equal(json[0]?.expires, null);

  assert.equal((await run(["key", "remove", "alice@example.test", "0000000000000000"])).code, 1);
  assert.equal((await run(["key", "remove", "alice@example.test", "not-hex"])).code, 1);
  assert.match((await run(["key", "remove", "alice@example.test", fp])).stdout, /^removed OpenPGP key/);
  assert.match((await run(["key", "remove", "al@example.test"])).stdout, /^removed S\/MIME certificate/);
  assert.equal((await run(["key", "remove", "alice@example.test"])).code, 1);
  assert.equal((await run(["key", "list", "nobody@example.test"])).code, 1);
});
