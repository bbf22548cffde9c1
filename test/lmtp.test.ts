/**
 * LMTP delivery (local.lmtp, RFC 2033) to a real Dovecot: a private Dovecot
 * instance (its own config, run and state directories, `protocols = lmtp`)
 * listens on a loopback TCP port and on a unix socket; its users come from a
 * passwd-file that lists only some of Wardmail's mailboxes. A message sent
 * with swaks to Wardmail's MX port for three mailboxes is handed to Dovecot:
 * the two Dovecot knows are stored in their Maildirs by Dovecot (body
 * compared), the third is refused by Dovecot (550 5.1.1), so Wardmail fails
 * that recipient and bounces it to the (local, Maildir) sender.
 *
 * Needs root (Dovecot's master runs as root and stores mail as `nobody`)
 * and the packages dovecot-lmtpd and swaks (scripts/install-peers.sh).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { swaks } from "./helpers/swaks.ts";
import { existsSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { freePort, waitForPort } from "./peers/ports.ts";
import { peerSkip, rootMissing } from "./helpers/peers.ts";

const LMTP = "/usr/lib/dovecot/lmtp";
/** Root (Dovecot's master runs as root and stores as nobody), and Dovecot's LMTP server. */
const SKIP = peerSkip(
  rootMissing("Dovecot's master runs as root and stores as nobody"),
  existsSync(LMTP) ? undefined : `${LMTP} is missing: install the Debian package dovecot-lmtpd`,
);
const NOBODY = 65534;

let base = "";
let dovecot: ChildProcess | undefined;
let dovecotOut = "";
let w: Wardmail | undefined;

/** Starts a private Dovecot with LMTP on 127.0.0.1:port and on base/run/lmtp. */
async function startDovecot(port: number): Promise<void> {
  for (const d of ["run", "state", "home/user", "home/sock"]) await mkdir(join(base, d), { recursive: true });
  for (const d of ["home/user", "home/sock"]) await chown(join(base, d), NOBODY, NOBODY);
  // Only these two exist for Dovecot; ghost@example.test is a Wardmail mailbox Dovecot does not know.
  await writeFile(
    join(base, "users"),
    [`user@example.test::${NOBODY}:${NOBODY}::${base}/home/user::`, `sock@unix.test::${NOBODY}:${NOBODY}::${base}/home/sock::`, ""].join("\n"),
  );
  const conf = join(base, "dovecot.conf");
  await writeFile(
    conf,
    [
      `base_dir = ${base}/run`,
      `state_dir = ${base}/state`,
      `log_path = ${base}/dovecot.log`,
      "protocols = lmtp",
      "listen = 127.0.0.1",
      "ssl = no",
      `passdb {\n  driver = passwd-file\n  args = ${base}/users\n}`,
      `userdb {\n  driver = passwd-file\n  args = ${base}/users\n}`,
      "mail_location = maildir:~/Maildir",
      "lmtp_save_to_detail_mailbox = no",
      `service lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.1\n    port = ${port}\n  }\n  unix_listener lmtp {\n    mode = 0600\n  }\n}`,
      "",
    ].join("\n"),
  );
  const p = spawn("dovecot", ["-F", "-c", conf], { stdio: ["ignore", "pipe", "pipe"] });
  dovecot = p;
  p.stdout?.on("data", (d: Buffer) => (dovecotOut += d.toString()));
  p.stderr?.on("data", (d: Buffer) => (dovecotOut += d.toString()));
  await waitForPort(port, 10_000, { alive: () => (p.exitCode !== null ? `dovecot exited with ${p.exitCode}: ${dovecotOut}` : undefined) });
  for (let i = 0; i < 100 && !existsSync(join(base, "run", "lmtp")); i++) await sleep(50);
}

before(async () => {
  if (SKIP !== false) return;
  base = await mkdtemp(join(tmpdir(), "wardmail-lmtp-"));
  await chmod(base, 0o755); // Dovecot stores as nobody under it
  const port = await freePort();
  await startDovecot(port);
  w = await startWardmail({
    workers: 1,
    domains: ["example.test", "unix.test", "localhost"],
    mailboxes: ["user@example.test", "ghost@example.test", "sock@unix.test", "sender@localhost", "postmaster@localhost"],
    extra: `[local.lmtp]\n"example.test" = "127.0.0.1:${port}"\n"unix.test" = "unix:${base}/run/lmtp"\n`,
  });
});

after(async () => {
  if (w) {
    await w.stop();
    await w.cleanup();
  }
  const p = dovecot;
  if (p !== undefined && p.exitCode === null) {
    const exited = new Promise((res) => p.once("exit", res));
    p.kill("SIGTERM");
    await Promise.race([exited, sleep(5000)]);
    if (p.exitCode === null) p.kill("SIGKILL");
  }
  if (base !== "") await rm(base, { recursive: true, force: true });
});


/** Files in a Maildir's new/, waiting up to 10 s for at least one. */
async function waitForFiles(dir: string): Promise<string[]> {
  for (let i = 0; i < 200; i++) {
    const files = existsSync(dir) ? await readdir(dir) : [];
    if (files.length > 0) return files.map((f) => join(dir, f));
    await sleep(50);
  }
  return [];
}

async function waitForLog(pattern: RegExp): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if (pattern.test(w?.output() ?? "")) return true;
    await sleep(50);
  }
  return false;
}

/** Splits a stored message at its first empty line; Dovecot may store LF or CRLF line endings. */
function split(raw: Buffer): { headers: string; body: string } {
  const text = raw.toString("utf8").replace(/\r\n/g, "\n");
  const end = text.indexOf("\n\n");
  return { headers: text.slice(0, end + 1), body: text.slice(end + 2) };
}

test("Wardmail hands mail for LMTP domains to Dovecot; Dovecot's unknown user fails and is bounced", { skip: SKIP }, async () => {
  assert.ok(w, "wardmail not started");
  const token = "lmtp-7e31";
  const body = `Hello over LMTP ${token}\r\n.a line that starts with a dot\r\nGr\u00fc\u00dfe, 8-bit \u2713\r\n`;
  const file = join(base, "message.eml");
  // -ndf: swaks sends the file as it is (so the dot is stuffed here) and then CRLF itself.
  const wire = body.replace(/^\./gm, "..");
  await writeFile(file, Buffer.from(`From: sender@localhost\r\nTo: user@example.test\r\nSubject: ${token}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${wire}.`, "utf8"));
  const r = await swaks(["--server", `127.0.0.1:${w.smtpPort}`, "--from", "sender@localhost", "--to", "user@example.test,ghost@example.test,sock@unix.test", "-ndf", "--data", `@${file}`]);
  assert.equal(r.code, 0, r.out);

  // Dovecot stored it for the two users it knows, over TCP and over the unix socket.
  for (const [who, home] of [["user@example.test", "user"], ["sock@unix.test", "sock"]] as const) {
    const files = await waitForFiles(join(base, "home", home, "Maildir", "new"));
    assert.equal(files.length, 1, `${who}: ${w.output().slice(-3000)}\n${await readFile(join(base, "dovecot.log"), "utf8").catch(() => "")}`);
    const stored = split(await readFile(files[0] as string));
    assert.equal(stored.body, body.replace(/\r\n/g, "\n"), `${who}: body differs`);
    assert.match(stored.headers, /^Return-Path: <sender@localhost>$/m);
    assert.match(stored.headers, new RegExp(`^Delivered-To: ${who.replace(".", "\\.")}$`, "m"));
    assert.match(stored.headers, /with LMTP/);
    assert.match(stored.headers, new RegExp(`^Subject: ${token}$`, "m"));
  }
  // Nothing went to Wardmail's own Maildirs for LMTP domains.
  assert.deepEqual(await w.maildir("user@example.test"), []);
  assert.ok(await waitForLog(/"rcpt":"user@example\.test","mailboxes":\["user@example\.test"\],"msg":"delivered locally"/), w.output().slice(-3000));
  assert.ok(await waitForLog(/"rcpt":"sock@unix\.test","mailboxes":\["sock@unix\.test"\],"msg":"delivered locally"/), w.output().slice(-3000));

  // ghost@example.test: Dovecot says 550 5.1.1 → failed → a DSN to the local sender.
  assert.ok(await waitForLog(/"rcpt":"ghost@example\.test","error":"LMTP 127\.0\.0\.1:\d+ said: 550 5\.1\.1 [^"]*","msg":"delivery failed"/), w.output().slice(-3000));
  const dsn = await w.waitForMail("sender@localhost", 1);
  assert.equal(dsn.length, 1, w.output().slice(-3000));
  const text = (await readFile(dsn[0] as string)).toString("utf8");
  assert.match(text, /Final-Recipient: rfc822; ?ghost@example\.test/i);
  assert.match(text, /Action: failed/);
  assert.match(text, /Status: 5\.1\.1/);
  assert.match(text, /Diagnostic-Code: smtp; ?550 5\.1\.1/);
  assert.doesNotMatch(text, /Final-Recipient: rfc822; ?(user@example|sock@unix)/i);
});
