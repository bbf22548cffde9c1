/**
 * Dovecot logins on Wardmail's accounts: a real Dovecot (master, auth,
 * imap-login, imap) on a loopback high port, configured with what
 * `wardmail dovecot config` prints, authenticates through
 * `wardmail dovecot auth` (checkpassword). `doveadm auth test` and an IMAP
 * LOGIN succeed with the password `wardmail user add` set and fail with a
 * wrong one; the logged-in user reads the message Wardmail delivered; a
 * disabled account and an account locked by the brute-force guard cannot
 * log in. Needs root (Wardmail and Dovecot's auth service run as nobody).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { BIN, startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { sendOneMessage } from "./peers/smtp-client.ts";
import { peerSkip, rootMissing } from "./helpers/peers.ts";
import { spawnDaemon, waitReady, type Daemon } from "./peers/daemon.ts";
import { canConnect, freePort } from "./peers/ports.ts";
import { exec } from "./peers/exec.ts";

const DOVECOT = "/usr/sbin/dovecot";
const DOVEADM = "/usr/bin/doveadm";
const IMAP = "/usr/lib/dovecot/imap";
const SKIP = peerSkip(
  rootMissing("Wardmail and Dovecot's auth service run as nobody"),
  existsSync(DOVECOT) && existsSync(DOVEADM) ? undefined : "dovecot is missing: install the Debian package dovecot-core",
  existsSync(IMAP) ? undefined : `${IMAP} is missing: install the Debian package dovecot-imapd`,
);

const PASSWORD = "correct horse battery staple";
let w: Wardmail | undefined;
let dovecot: Daemon | undefined;
let conf = "";
let imapPort = 0;

before(async () => {
  if (SKIP !== false) return;
  w = await startWardmail({
    dirMode: 0o755,
    serverExtra: 'user = "nobody"',
    workers: 1,
    mailboxes: [],
    extra: "[auth]\nfailure_delay = 0\naccount_max_failures = 3\nip_max_failures = 1000\n",
  });
  for (const u of ["alice", "bob", "carol"]) {
    const r = await w.cli(["user", "add", `${u}@example.test`, "--password-stdin", "--config", w.configPath], `${PASSWORD}\n`);
    assert.equal(r.code, 0, r.stderr);
  }
  assert.equal((await w.cli(["user", "alias", "add", "a.l@example.test", "alice@example.test", "--config", w.configPath])).code, 0);
  const snippet = await w.cli(["dovecot", "config", "--config", w.configPath, "--command", `${process.execPath} ${BIN}`]);
  assert.equal(snippet.code, 0, snippet.stderr);
  assert.match(snippet.stdout, /driver = checkpassword/);
  assert.match(snippet.stdout, /user = nobody/);

  const base = await mkdtemp(join(tmpdir(), "wardmail-dovecot-"));
  await mkdir(join(base, "run"));
  await mkdir(join(base, "state"));
  imapPort = await freePort();
  conf = join(base, "dovecot.conf");
  await writeFile(
    conf,
    [
      `base_dir = ${base}/run`,
      `state_dir = ${base}/state`,
      "log_path = /dev/stderr",
      "protocols = imap",
      "listen = 127.0.0.1",
      "ssl = no",
      "disable_plaintext_auth = no",
      "auth_mechanisms = plain login",
      "service imap-login {",
      `  inet_listener imap {\n    address = 127.0.0.1\n    port = ${imapPort}\n  }`,
      "  inet_listener imaps {\n    port = 0\n  }",
      "}",
      snippet.stdout,
      // After the snippet: the test's failures need no wait.
      "auth_failure_delay = 0",
      "",
    ].join("\n"),
  );
  dovecot = spawnDaemon(DOVECOT, ["-F", "-c", conf], base);
  const up = await waitReady(dovecot, 15_000, () => canConnect(imapPort));
  assert.ok(up, `dovecot did not start:\n${dovecot.log()}`);
});

after(async () => {
  await dovecot?.stop();
  if (!w) return;
  await w.stop();
  await w.cleanup();
});

function authTest(user: string, password: string, ip: string): Promise<{ code: number | null; out: string }> {
  return exec(DOVEADM, ["-c", conf, "auth", "test", "-x", "service=imap", "-x", `rip=${ip}`, user, password], { timeoutMs: 20_000 }).then((r) => ({
    code: r.code,
    out: r.out,
  }));
}

/** One IMAP session: each command waits for its tagged answer (bounded: 20 s in all). */
async function imapSession(commands: string[], ip = "127.0.0.1"): Promise<string[]> {
  const sock = connect({ port: imapPort, host: "127.0.0.1", localAddress: ip });
  let buf = "";
  sock.setEncoding("latin1");
  sock.on("data", (d: string) => (buf += d));
  const deadline = Date.now() + 20_000;
  const waitFor = async (re: RegExp): Promise<string> => {
    while (!re.test(buf)) {
      if (Date.now() > deadline || sock.destroyed) throw new Error(`IMAP: no ${re} in:\n${buf}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const out = buf;
    buf = "";
    return out;
  };
  try {
    await waitFor(/^\* OK .*\r\n/m);
    const answers: string[] = [];
    for (const [i, c] of commands.entries()) {
      sock.write(`t${i} ${c}\r\n`);
      answers.push(await waitFor(new RegExp(`^t${i} (OK|NO|BAD).*\\r\\n`, "m")));
    }
    return answers;
  } finally {
    sock.destroy();
  }
}

test("an IMAP LOGIN with the Wardmail password reads the message Wardmail delivered", { skip: SKIP }, async () => {
  assert.ok(w);
  await sendOneMessage({ port: w.smtpPort, from: "sender@remote.test", to: ["alice@example.test"], body: "From: <sender@remote.test>\r\nSubject: for dovecot login\r\n\r\nhello alice\r\n" });
  assert.equal((await w.waitForMail("alice@example.test", 1)).length, 1);
  const [login, select, fetch] = await imapSession([`LOGIN alice@example.test "${PASSWORD}"`, "SELECT INBOX", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT])", "LOGOUT"]);
  assert.match(login ?? "", /^t0 OK/m);
  assert.match(select ?? "", /\* 1 EXISTS/);
  assert.match(fetch ?? "", /Subject: for dovecot login/);
  assert.match(fetch ?? "", /hello alice/);
  // An alias logs in as its account (same mailbox).
  const [l2, s2] = await imapSession([`LOGIN a.l@example.test "${PASSWORD}"`, "SELECT INBOX", "LOGOUT"]);
  assert.match(l2 ?? "", /^t0 OK/m);
  assert.match(s2 ?? "", /\* 1 EXISTS/);
});

test("a wrong password fails over IMAP and doveadm auth test; the right one passes doveadm", { skip: SKIP }, async () => {
  const [bad] = await imapSession([`LOGIN alice@example.test "not the password"`, "LOGOUT"], "127.0.0.2");
  assert.match(bad ?? "", /^t0 NO \[AUTHENTICATIONFAILED\]/m);
  const ok = await authTest("alice@example.test", PASSWORD, "127.0.0.3");
  assert.equal(ok.code, 0, ok.out);
  assert.match(ok.out, /auth succeeded/);
  assert.match(ok.out, /user=alice@example\.test/);
  // A userdb lookup without a password (as LMTP and doveadm make) gives the Maildir Wardmail writes and its owner.
  const lookup = await exec(DOVEADM, ["-c", conf, "user", "a.l@example.test"], { timeoutMs: 20_000 });
  assert.equal(lookup.code, 0, lookup.out);
  assert.match(lookup.out, /home\s+\S+\/mail\/example\.test\/alice\n/);
  assert.match(lookup.out, /uid\s+65534\n/);
  assert.equal((await exec(DOVEADM, ["-c", conf, "user", "nobody-here@example.test"], { timeoutMs: 20_000 })).code, 67); // EX_NOUSER
  const wrong = await authTest("alice@example.test", "wrong password", "127.0.0.3");
  assert.notEqual(wrong.code, 0, wrong.out);
  assert.match(wrong.out, /auth failed/);
  const unknown = await authTest("nobody-here@example.test", PASSWORD, "127.0.0.3");
  assert.notEqual(unknown.code, 0, unknown.out);
});

test("a disabled account cannot log in; enabled again, it can", { skip: SKIP }, async () => {
  assert.ok(w);
  assert.equal((await w.cli(["user", "disable", "carol@example.test", "--config", w.configPath])).code, 0);
  const [no] = await imapSession([`LOGIN carol@example.test "${PASSWORD}"`, "LOGOUT"], "127.0.0.4");
  assert.match(no ?? "", /^t0 NO/m);
  assert.notEqual((await authTest("carol@example.test", PASSWORD, "127.0.0.4")).code, 0);
  assert.equal((await w.cli(["user", "enable", "carol@example.test", "--config", w.configPath])).code, 0);
  const [yes] = await imapSession([`LOGIN carol@example.test "${PASSWORD}"`, "LOGOUT"], "127.0.0.4");
  assert.match(yes ?? "", /^t0 OK/m);
});

test("an account the guard locked (failures over IMAP count as over SMTP) refuses even the right password", { skip: SKIP }, async () => {
  assert.ok(w);
  for (let i = 0; i < 3; i++) {
    const [bad] = await imapSession([`LOGIN bob@example.test "guess ${i}"`, "LOGOUT"], "127.0.0.5");
    assert.match(bad ?? "", /^t0 NO/m);
  }
  const [locked] = await imapSession([`LOGIN bob@example.test "${PASSWORD}"`, "LOGOUT"], "127.0.0.6");
  assert.match(locked ?? "", /^t0 NO/m);
  const viaDoveadm = await authTest("bob@example.test", PASSWORD, "127.0.0.6");
  assert.notEqual(viaDoveadm.code, 0, viaDoveadm.out);
  assert.match(dovecot?.log() ?? "", /wardmail: auth blocked ip=127\.0\.0\.6 scope=user user="bob@example\.test"/);
  // The same lock holds for SMTP AUTH (one guard, one database).
  const r = await exec("swaks", ["--server", `127.0.0.1:${w.submissionPort}`, "-tls", "--auth", "PLAIN", "--auth-user", "bob@example.test", "--auth-password", PASSWORD, "--quit-after", "AUTH"], { timeoutMs: 20_000 });
  assert.match(r.out, /454 4\.7\.0/);
});
