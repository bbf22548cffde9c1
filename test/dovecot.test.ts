/**
 * Dovecot reads what Wardmail delivers: the Maildir is Dovecot-compatible.
 * Wardmail runs as root and drops to `nobody` (the usual "vmail" setup);
 * Dovecot's own imap binary, run as `nobody` in PREAUTH mode on that
 * Maildir, must list the messages and return their headers and bodies
 * byte for byte. Needs root (to run Dovecot as another user); CI is root.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chown, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { sendOneMessage } from "./peers/smtp-client.ts";
import { peerSkip, rootMissing } from "./helpers/peers.ts";

const IMAP = "/usr/lib/dovecot/imap";
/** Root (Wardmail drops to nobody and Dovecot runs as nobody), and Dovecot's imap. */
const SKIP = peerSkip(
  rootMissing("Wardmail drops to nobody and Dovecot runs as nobody"),
  existsSync(IMAP) ? undefined : `${IMAP} is missing: install the Debian package dovecot-imapd`,
);
let w: Wardmail | undefined;

before(async () => {
  if (SKIP !== false) return;
  w = await startWardmail({ dirMode: 0o755, serverExtra: 'user = "nobody"', workers: 1 });
});

after(async () => {
  if (!w) return;
  await w.stop();
  await w.cleanup();
});

/** Runs Dovecot's imap as nobody on the Maildir at home, feeding it the given IMAP commands. */
async function imap(home: string, commands: string[]): Promise<string> {
  const base = join(w?.dir ?? "", "dovecot");
  await mkdir(join(base, "run"), { recursive: true });
  await mkdir(join(base, "state"), { recursive: true });
  const conf = join(base, "dovecot.conf");
  await writeFile(conf, [`base_dir = ${base}/run`, `state_dir = ${base}/state`, "log_path = /dev/stderr", "mail_location = maildir:~", ""].join("\n"));
  const nobody = 65534;
  for (const d of [base, join(base, "run"), join(base, "state")]) await chown(d, nobody, nobody);
  return new Promise((resolve, reject) => {
    const p = spawn("runuser", ["-u", "nobody", "--", "env", "USER=user", `HOME=${home}`, IMAP, "-c", conf], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString("latin1")));
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => p.kill("SIGKILL"), 10_000);
    p.on("error", reject);
    p.on("exit", (code) => {
      clearTimeout(timer);
      if (!out.includes("* PREAUTH")) reject(new Error(`dovecot imap failed (exit ${code}): ${err}`));
      else resolve(out);
    });
    p.stdin.end(commands.map((c, i) => `t${i} ${c}\r\n`).join(""));
  });
}

test("Dovecot's imap lists and returns the messages Wardmail delivered, byte for byte", { skip: SKIP }, async () => {
  assert.ok(w, "wardmail not started");
  const bodies = [
    "First line\r\n.leading dot kept\r\n\r\nlast line\r\n",
    "Zweite Nachricht: Grüße, 8-bit UTF-8 ✓\r\n  indented\r\n",
  ];
  for (const [i, body] of bodies.entries()) {
    await sendOneMessage({
      port: w.smtpPort,
      from: "sender@remote.test",
      to: ["user@example.test"],
      // sendOneMessage dot-stuffs for DATA and writes latin1 (one char per
      // byte): hand it the UTF-8 bytes. The stored body is the text above.
      body: Buffer.from(
        `Subject: dovecot ${i + 1}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${body}`,
        "utf8",
      ).toString("latin1"),
    });
  }
  const files = await w.waitForMail("user@example.test", 2);
  assert.equal(files.length, 2);
  const home = join(w.dataDir, "mail", "example.test", "user");
  const out = await imap(home, ["SELECT INBOX", "FETCH 1:* (BODY.PEEK[HEADER.FIELDS (RETURN-PATH DELIVERED-TO SUBJECT)] BODY.PEEK[TEXT])", "LOGOUT"]);
  assert.match(out, /\* 2 EXISTS/);
  assert.match(out, /t1 OK .*Fetch completed/);
  for (const [i, body] of bodies.entries()) {
    assert.ok(out.includes(`Subject: dovecot ${i + 1}\r\n`), out);
    const utf8 = Buffer.from(body, "utf8").toString("latin1"); // out is read as latin1 bytes
    assert.ok(out.includes(`BODY[TEXT] {${Buffer.byteLength(body)}}\r\n${utf8}`), `body ${i + 1} not byte-identical:\n${out}`);
  }
  assert.equal(out.split("Return-Path: <sender@remote.test>\r\n").length - 1, 2);
  assert.equal(out.split("Delivered-To: user@example.test\r\n").length - 1, 2);
});
