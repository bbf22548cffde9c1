/**
 * `wardmail dovecot`: the checkpassword decision (answerCheckpassword) on
 * hostile or odd requests, and the printed Dovecot configuration. The real
 * Dovecot logins are in test/dovecot-auth.test.ts.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AccountStore } from "../accounts/index.ts";
import { loadConfig, type Config } from "../config/index.ts";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { answerCheckpassword, CHECKPW, dovecotSnippet, LAUNCHER } from "./dovecot.ts";
import { main } from "./main.ts";

let dir: string;
let config: Config;
let configFile: string;
const PASSWORD = "a long enough password";

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wardmail-dovecot-unit-"));
  configFile = join(dir, "wardmail.toml");
  await writeFile(configFile, `[server]\ndata_dir = ${JSON.stringify(join(dir, "data"))}\n[local]\ndomains = ["example.test"]\nmailboxes = []\n[auth]\naccount_max_failures = 2\nip_max_failures = 100\n`);
  config = await loadConfig(configFile);
  const store = AccountStore.open(config.server.dataDir, { create: true, localDomains: ["example.test"] });
  await store.addAccount("alice@example.test", PASSWORD);
  store.close();
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const req = (user: string, password: string): Buffer => Buffer.from(`${user}\0${password}\0\0`);
const env = (ip: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({ TCPREMOTEIP: ip, SERVICE: "imap", ...extra });

test("the right password logs in and answers the Maildir; a wrong one fails, with a log line naming neither password", async () => {
  const ok = await answerCheckpassword(config, req("Alice@Example.test", PASSWORD), env("192.0.2.1"));
  assert.equal(ok.code, CHECKPW.ok);
  const fields = (ok.fields ?? "").split("\t");
  assert.ok(fields.includes("user=alice@example.test"), ok.fields);
  assert.ok(fields.includes(`userdb_home=${join(dir, "data", "mail", "example.test", "alice")}`), ok.fields);
  assert.ok(fields.some((f) => /^userdb_uid=\d+$/.test(f)));
  const bad = await answerCheckpassword(config, req("alice@example.test", "wrong"), env("192.0.2.1"));
  assert.equal(bad.code, CHECKPW.failed);
  assert.equal(bad.fields, undefined);
  assert.match(bad.log ?? "", /auth failed ip=192\.0\.2\.1 user="alice@example\.test"/);
  assert.ok(!(bad.log ?? "").includes("wrong"));
});

test("malformed requests and credentials lookups fail without a crash", async () => {
  assert.equal((await answerCheckpassword(config, Buffer.alloc(0), env("192.0.2.2"))).code, CHECKPW.failed);
  assert.equal((await answerCheckpassword(config, Buffer.from("alice@example.test"), env("192.0.2.2"))).code, CHECKPW.failed);
  assert.equal((await answerCheckpassword(config, Buffer.from("\0\0\0"), env("192.0.2.2", { AUTHORIZED: "1" }))).code, CHECKPW.unknown);
  const creds = await answerCheckpassword(config, req("alice@example.test", ""), env("192.0.2.2", { AUTHORIZED: "1", CREDENTIALS_LOOKUP: "1", SCHEME: "CRAM-MD5" }));
  assert.equal(creds.code, CHECKPW.failed);
  assert.equal(creds.fields, undefined);
  const tab = await answerCheckpassword(config, req("al\tice@example.test", PASSWORD), env("192.0.2.2"));
  assert.equal(tab.code, CHECKPW.failed);
});

test("a userdb lookup (AUTHORIZED=1) needs no password: known user 2 with fields, unknown 3", async () => {
  const found = await answerCheckpassword(config, req("alice@example.test", ""), env("", { AUTHORIZED: "1" }));
  assert.equal(found.code, CHECKPW.lookupOk);
  assert.match(found.fields ?? "", /userdb_mail=maildir:\S+\/alice/);
  assert.equal((await answerCheckpassword(config, req("bob@example.test", ""), env("", { AUTHORIZED: "1" }))).code, CHECKPW.unknown);
});

test("the guard locks the account after account_max_failures; then the right password fails too", async () => {
  for (let i = 0; i < 2; i++) assert.equal((await answerCheckpassword(config, req("alice@example.test", `guess${i}`), env("198.51.100.1"))).code, CHECKPW.failed);
  const locked = await answerCheckpassword(config, req("alice@example.test", PASSWORD), env("198.51.100.2"));
  assert.equal(locked.code, CHECKPW.failed);
  assert.match(locked.log ?? "", /auth blocked ip=198\.51\.100\.2 scope=user/);
  // From the network it logged in from before (the first test), the owner still gets in.
  assert.equal((await answerCheckpassword(config, req("alice@example.test", PASSWORD), env("192.0.2.1"))).code, CHECKPW.ok);
});

test("`dovecot config` prints passdb and userdb running `dovecot auth` with the config", async () => {
  let out = "";
  const code = await main(["dovecot", "config", "--config", configFile, "--command", "/opt/wardmail/bin/wardmail"], { out: (s) => (out += s), err: () => undefined });
  assert.equal(code, 0);
  assert.match(out, new RegExp(`args = /opt/wardmail/bin/wardmail dovecot auth --config ${configFile}\\n`));
  assert.match(out, /driver = prefetch/);
  assert.match(out, /mail_location = maildir:~/);
  assert.equal(dovecotSnippet(config, "x", undefined).includes("--config"), false);
  assert.equal(await main(["dovecot", "nope"], { out: () => undefined, err: () => undefined }), 2);
});

test("the default command is this installation's bin/wardmail launcher", () => {
  assert.equal(LAUNCHER, fileURLToPath(new URL("../../bin/wardmail", import.meta.url)));
  assert.ok(existsSync(LAUNCHER));
  assert.match(dovecotSnippet(config, LAUNCHER, "/etc/wardmail/wardmail.toml"), new RegExp(`args = ${LAUNCHER} dovecot auth --config /etc/wardmail/wardmail.toml\n`));
});
