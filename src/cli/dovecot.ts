/**
 * `wardmail dovecot ...`: Dovecot's IMAP logs its users in with their
 * Wardmail accounts, so an operator keeps one user database.
 *
 * Why checkpassword, not Dovecot's SQL passdb over accounts.sqlite: Dovecot
 * 2.3 could verify our argon2id hashes (ARGON2ID scheme), but an SQL passdb
 * would bypass the brute-force guard and its lockouts (src/submission/
 * guard.ts), ignore app passwords (one passdb row per user) and tie Dovecot
 * to our schema. With checkpassword, Dovecot runs `wardmail dovecot auth` for
 * each login and the very code SMTP AUTH uses decides: the same accounts,
 * aliases, app passwords, disabled flag, client blocks and account locks,
 * counted in the same tables, so failures over IMAP and SMTP add up.
 *
 * The checkpassword protocol (Dovecot's db-checkpassword.c, with its
 * extensions): fd 3 carries "user\0password\0timestamp\0" (at most 512
 * bytes); on success the program writes tab-separated fields to fd 4 and
 * exits 0 (for a userdb lookup, where AUTHORIZED=1 and no password is
 * checked, it exits 2); 1 means the login failed, 3 (lookup) the user is
 * unknown, 111 a temporary failure. Argument 1 (Dovecot appends the path of
 * checkpassword-reply) is ignored: we write fd 4 ourselves.
 * The fields: user=<account> (an alias logs in as its account),
 * userdb_home and userdb_mail = the account's Maildir (local.maildir), and
 * userdb_uid/gid = server.user (else the process's own ids), who owns it.
 */
import { parseArgs } from "node:util";
import { execFileSync } from "node:child_process";
import { createReadStream, writeSync, closeSync, statSync } from "node:fs";
import { userInfo } from "node:os";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { Config } from "../config/index.ts";
import { AccountStore } from "../accounts/index.ts";
import { AuthGuard, clientKey } from "../submission/index.ts";
import { mailboxPath } from "../delivery/index.ts";
// privileges.ts directly, not the server's index: Dovecot starts this command for every login, and
// the server's module graph would cost it about a second of start-up.
import { dropPrivileges, serverIds } from "../server/index.ts";
import { createLogger } from "../log/index.ts";
import type { Io } from "./main.ts";
import { loadCommandConfig } from "./load-config.ts";

export const DOVECOT_HELP = `Usage: wardmail dovecot <action> [--config FILE]

Dovecot's IMAP (and POP3) logs users in with their Wardmail accounts: the
same passwords and app passwords, aliases, disabled accounts, and the same
brute-force guard as SMTP AUTH ([auth] limits, client blocks, account locks).

Actions:
  config [--command CMD]   print the Dovecot configuration (passdb, userdb, mail
                           location, auth service user) for this config's data
                           directory; put it in /etc/dovecot/conf.d/ (see docs/deploy.md)
  auth                     the checkpassword program Dovecot runs for each login
                           (not for interactive use; protocol on fds 3 and 4)

Options:
  --command CMD   config: how Dovecot starts wardmail (default: this installation's
                  bin/wardmail launcher); no spaces inside a path (Dovecot splits on spaces)
  --config FILE   the Wardmail config (its data directory, domains, [auth] limits)
Exit codes (config): 0 printed, 2 usage error, 3 cannot read the config.
Exit codes (auth, as Dovecot expects): 0 login ok, 2 user lookup ok, 1 login
failed, 3 unknown user (lookup), 111 temporary failure.
`;

/** The bin/wardmail launcher of this installation. */
export const LAUNCHER = join(fileURLToPath(new URL("../..", import.meta.url)).replace(/\/dist\/$/, "/"), "bin", "wardmail");

/** Checkpassword exit codes. */
export const CHECKPW = { ok: 0, failed: 1, lookupOk: 2, unknown: 3, tempfail: 111 } as const;

/** Dovecot sends at most 512 bytes on fd 3. */
const MAX_REQUEST = 512;

export async function dovecotCommand(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "-h" || sub === "--help") {
    io.out(DOVECOT_HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub === "config") return printConfig(rest, io);
  if (sub === "auth") return checkpassword(rest, io);
  io.err(`wardmail dovecot: unknown action '${sub}'\n\n${DOVECOT_HELP}`);
  return 2;
}

async function printConfig(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { config: { type: "string", short: "c" }, command: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    io.out(DOVECOT_HELP);
    return 0;
  }
  if (positionals.length > 0) {
    io.err(`wardmail dovecot config: unexpected argument '${positionals[0]}'\n`);
    return 2;
  }
  const config = await loadCommandConfig(values.config, io);
  if (!config) return 3;
  const command = values.command ?? LAUNCHER;
  const configPath = values.config;
  if (configPath !== undefined && /\s/.test(configPath)) {
    io.err(`wardmail dovecot config: the config path ${JSON.stringify(configPath)} holds white space; Dovecot splits its checkpassword arguments on spaces\n`);
    return 2;
  }
  io.out(dovecotSnippet(config, command, configPath));
  return 0;
}

/** The Dovecot configuration pairing it with `config` (its text, for conf.d/). */
export function dovecotSnippet(config: Config, command: string, configPath: string | undefined): string {
  const program = `${command} dovecot auth${configPath !== undefined ? ` --config ${configPath}` : ""}`;
  const user = config.server.user !== "" ? config.server.user : dataDirOwner(config.server.dataDir);
  const example = mailboxPath(config.server.dataDir, config.local.maildir, `user@${config.local.domains[0] ?? "example.org"}`);
  return `# Dovecot logins on Wardmail's accounts (generated by \`wardmail dovecot config\`).
# Each login runs \`wardmail dovecot auth\`, which checks the password like SMTP AUTH
# (accounts, app passwords, aliases, disabled accounts, the [auth] brute-force guard)
# and answers with the account's Maildir (e.g. ${example}).
# Put this file in /etc/dovecot/conf.d/ (e.g. 90-wardmail.conf) and disable the other
# passdb/userdb includes in 10-auth.conf (!include auth-system.conf.ext).

passdb {
  driver = checkpassword
  args = ${program}
}
# The login's own answer carries the user's home, mail location, uid and gid ...
userdb {
  driver = prefetch
}
# ... and lookups without a login (LMTP, doveadm) ask the same program.
userdb {
  driver = checkpassword
  args = ${program}
}
mail_location = maildir:~

# The checkpassword program runs as the auth service's user; it reads and updates
# Wardmail's accounts database (the guard's counters), so it runs as Wardmail's user.
# Node.js reserves gigabytes of address space (not memory) at start: Dovecot's default
# vsz_limit (256 MB) would kill it, so the auth service (and its children) have none.
${user === "root" ? "# Running as root: set server.user (e.g. wardmail) in Wardmail's config and print this again.\n" : ""}service auth {
  user = ${user}
  vsz_limit = 0
}
# Wardmail's lockouts and delays apply too; Dovecot adds its own delay per failure.
auth_failure_delay = 2 secs
`;
}

/** The user owning the data directory (server.user unset), else the user running this command. */
function dataDirOwner(dir: string): string {
  try {
    const uid = statSync(dir).uid;
    const entry = execFileSync("getent", ["passwd", String(uid)], { encoding: "utf8", timeout: 5000 }).split(":")[0];
    if (entry !== undefined && entry !== "") return entry;
  } catch {
    /* no data directory yet, or no name for its owner */
  }
  return userInfo().username;
}

/** Reads fd 3 to its end (at most MAX_REQUEST bytes, within 10 s). */
async function readRequest(fd: number): Promise<Buffer | undefined> {
  const stream = createReadStream("", { fd, autoClose: true, highWaterMark: MAX_REQUEST + 1 });
  const chunks: Buffer[] = [];
  let size = 0;
  const timer = setTimeout(() => stream.destroy(new Error("timeout")), 10_000);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_REQUEST) return undefined;
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
    stream.destroy();
  }
}

/** A field value for the reply: tabs, newlines and NULs would break its framing. */
function field(v: string): string {
  if (/[\t\n\r\0]/.test(v)) throw new Error("reply field with a control character");
  return v;
}

/** What checkpassword answers: the exit code and, on success, the fields for fd 4. */
export interface CheckpasswordAnswer {
  readonly code: number;
  readonly fields?: string;
  /** A line for Dovecot's log (stderr), never with the password. */
  readonly log?: string;
}

/** Decides one checkpassword request (testable without fds). */
export async function answerCheckpassword(config: Config, request: Buffer, env: NodeJS.ProcessEnv): Promise<CheckpasswordAnswer> {
  const parts = request.toString("utf8").split("\0");
  const user = parts[0] ?? "";
  const password = parts[1] ?? "";
  const lookup = env.AUTHORIZED === "1";
  if (user === "" || parts.length < 3) return { code: lookup ? CHECKPW.unknown : CHECKPW.failed, log: "malformed checkpassword request" };
  if (lookup && env.CREDENTIALS_LOOKUP === "1") return { code: CHECKPW.failed, log: "credentials lookups are not supported (hashes stay in Wardmail)" };
  if (!AccountStore.exists(config.server.dataDir)) return { code: lookup ? CHECKPW.unknown : CHECKPW.failed, log: "no accounts database" };
  const store = AccountStore.open(config.server.dataDir, { create: false, localDomains: config.local.domains });
  try {
    const shownUser = JSON.stringify(user.slice(0, 80));
    if (lookup) {
      // A userdb lookup (LMTP, doveadm): the account exists, enabled or not (its mail still arrives).
      const account = store.resolve(user.slice(0, 320));
      if (account === undefined) return { code: CHECKPW.unknown };
      return { code: CHECKPW.lookupOk, fields: replyFields(config, account) };
    }
    const ip = env.TCPREMOTEIP ?? env.REMOTE_IP ?? "";
    const client = ip !== "" ? clientKey(ip) : "dovecot:local";
    const guard = new AuthGuard(store.db, config);
    const typed = user.slice(0, 320);
    const verdict = guard.admit(client, store.resolve(typed) ?? typed);
    if (typeof verdict === "string") return { code: CHECKPW.failed, log: `wardmail: auth blocked ip=${ip || "-"} scope=${verdict} user=${shownUser}` };
    const account = await store.checkPassword(typed, password);
    if (account === undefined) {
      const blocked = verdict.started !== undefined ? ` (now blocked: ${verdict.started})` : "";
      return { code: CHECKPW.failed, log: `wardmail: auth failed ip=${ip || "-"} user=${shownUser} service=${env.SERVICE ?? "-"}${blocked}` };
    }
    guard.success(verdict, account);
    return { code: CHECKPW.ok, fields: replyFields(config, account) };
  } finally {
    store.close();
  }
}

function replyFields(config: Config, account: string): string {
  const home = mailboxPath(config.server.dataDir, config.local.maildir, account);
  const { uid, gid } = config.server.user !== "" ? serverIds(config) : { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  return [`user=${field(account)}`, `userdb_home=${field(home)}`, `userdb_mail=maildir:${field(home)}`, `userdb_uid=${uid}`, `userdb_gid=${gid}`].join("\t");
}

async function checkpassword(args: string[], io: Io): Promise<number> {
  let values;
  try {
    // Dovecot appends the checkpassword-reply path as a positional argument: ignored.
    ({ values } = parseArgs({ args, allowPositionals: true, options: { config: { type: "string", short: "c" } } }));
  } catch (err) {
    io.err(`wardmail dovecot auth: ${err instanceof Error ? err.message : String(err)}\n`);
    return CHECKPW.tempfail;
  }
  const config = await loadCommandConfig(values.config, io);
  if (!config) return CHECKPW.tempfail;
  try {
    // Run as root (Dovecot's auth service left as root): work as server.user, who owns the accounts database.
    dropPrivileges(config, createLogger({ level: "silent" }));
  } catch (err) {
    io.err(`wardmail dovecot auth: cannot drop privileges: ${err instanceof Error ? err.message : String(err)}\n`);
    return CHECKPW.tempfail;
  }
  const request = await readRequest(3);
  if (request === undefined) {
    io.err("wardmail dovecot auth: no readable request on fd 3 (Dovecot's checkpassword protocol)\n");
    return CHECKPW.tempfail;
  }
  let answer: CheckpasswordAnswer;
  try {
    answer = await answerCheckpassword(config, request, process.env);
  } catch (err) {
    io.err(`wardmail dovecot auth: ${err instanceof Error ? err.message : String(err)}\n`);
    return CHECKPW.tempfail;
  } finally {
    request.fill(0);
  }
  if (answer.log !== undefined) io.err(`${answer.log}\n`);
  if (answer.fields !== undefined) {
    try {
      writeSync(4, answer.fields);
      closeSync(4);
    } catch (err) {
      io.err(`wardmail dovecot auth: cannot write the reply to fd 4: ${err instanceof Error ? err.message : String(err)}\n`);
      return CHECKPW.tempfail;
    }
  }
  return answer.code;
}
