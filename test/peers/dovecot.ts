/**
 * Dovecot for integration tests (needs root: its master runs as root and
 * stores as `nobody`): a private LMTP server on a loopback port with its own
 * config, run and state directories and a passwd-file of users, and
 * Dovecot's imap binary in PREAUTH mode on one Maildir. Started by the test,
 * stopped by its PID.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { chown, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { waitForPort } from "./ports.ts";

export const DOVECOT_IMAP = "/usr/lib/dovecot/imap";
export const DOVECOT_LMTP = "/usr/lib/dovecot/lmtp";
const NOBODY = 65534;

export interface DovecotLmtp {
  readonly port: number;
  /** The Maildir (Dovecot's `~/Maildir`) of a user. */
  maildir(user: string): string;
  log(): string;
  stop(): Promise<void>;
}

/** Starts Dovecot's LMTP on 127.0.0.1:port; `users` are its only users, each with home base/home/<address>. */
export async function startDovecotLmtp(base: string, port: number, users: readonly string[]): Promise<DovecotLmtp> {
  for (const d of ["run", "state", "home"]) await mkdir(join(base, d), { recursive: true });
  for (const u of users) {
    await mkdir(join(base, "home", u), { recursive: true });
    await chown(join(base, "home", u), NOBODY, NOBODY);
  }
  await writeFile(join(base, "users"), users.map((u) => `${u}::${NOBODY}:${NOBODY}::${base}/home/${u}::\n`).join(""));
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
      `service lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.1\n    port = ${port}\n  }\n  unix_listener lmtp {\n    mode = 0600\n  }\n}`,
      "",
    ].join("\n"),
  );
  let out = "";
  const p: ChildProcess = spawn("dovecot", ["-F", "-c", conf], { stdio: ["ignore", "pipe", "pipe"] });
  p.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  p.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  await waitForPort(port, 10_000, { alive: () => (p.exitCode !== null ? `dovecot exited with ${p.exitCode}: ${out}` : undefined) });
  return {
    port,
    maildir: (user) => join(base, "home", user, "Maildir"),
    log: () => out,
    async stop() {
      if (p.exitCode !== null) return;
      const exited = new Promise((res) => p.once("exit", res));
      p.kill("SIGTERM");
      await Promise.race([exited, sleep(5000)]);
      if (p.exitCode === null) p.kill("SIGKILL");
    },
  };
}

/** Runs Dovecot's imap as nobody on the Maildir at `home` (PREAUTH), feeding it the IMAP commands; resolves with what it said (latin1). */
export async function imapPreauth(base: string, home: string, commands: readonly string[]): Promise<string> {
  await mkdir(join(base, "run"), { recursive: true });
  await mkdir(join(base, "state"), { recursive: true });
  const conf = join(base, "imap.conf");
  await writeFile(conf, [`base_dir = ${base}/run`, `state_dir = ${base}/state`, "log_path = /dev/stderr", "mail_location = maildir:~", ""].join("\n"));
  for (const d of [base, join(base, "run"), join(base, "state")]) await chown(d, NOBODY, NOBODY);
  if (!existsSync(DOVECOT_IMAP)) throw new Error(`${DOVECOT_IMAP} is missing`);
  return new Promise((resolve, reject) => {
    const p = spawn("runuser", ["-u", "nobody", "--", "env", "USER=user", `HOME=${home}`, DOVECOT_IMAP, "-c", conf], { stdio: ["pipe", "pipe", "pipe"] });
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
