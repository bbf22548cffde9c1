/**
 * `wardmail user ...`: the accounts that may log in (SMTP AUTH), their
 * aliases, extra sender addresses and app passwords, kept in
 * `<dataDir>/accounts.sqlite` (src/accounts). Safe while the server runs:
 * the server reads the file at every lookup, so a change counts at once.
 *
 * Passwords come from the terminal (asked twice, not echoed) or, with
 * --password-stdin, from the first line of stdin; they are never printed
 * and never taken from the command line (it shows in `ps` and shell history).
 * When run as root with server.user set, the database is given to that user
 * afterwards so the unprivileged server can keep writing it.
 */
import { parseArgs } from "node:util";
import { existsSync } from "node:fs";
import type { Config } from "../config/index.ts";
import { AccountError, AccountStore, type AccountInfo } from "../accounts/index.ts";
import { chownTo } from "../server/index.ts";
import type { Io } from "./main.ts";
import { loadCommandConfig } from "./load-config.ts";
import { heldText, holdsOf, releaseAccount, showText } from "./user-hold.ts";
import type { Hold } from "../spam/index.ts";
import { userKeyCommand } from "./user-key.ts";

export const USER_HELP = `Usage: wardmail user <action> [ARGS] [--config FILE]

Accounts that may log in to submit mail. Stored in accounts.sqlite in the
data directory (not in the config file); changes count at once, also for a
running server.

Actions:
  add ADDRESS                       create an account (asks for the password twice)
  passwd ADDRESS                    set a new password; revokes the account's app passwords
  list [--json]                     every account with its aliases, senders and app passwords
  remove ADDRESS                    remove an account with its aliases, senders and app passwords
  show ADDRESS [--json]             one account: aliases, senders, app passwords, and whether it is held
  release ADDRESS                   end the hold of an account held as compromised and release its held messages
  disable ADDRESS                   the account can no longer log in (mail to it still arrives)
  enable ADDRESS                    undo disable
  alias add ALIAS ACCOUNT           ALIAS (in a local domain) is another address of ACCOUNT:
                                    it can log in with it and send as it
  alias remove ALIAS
  senders add ACCOUNT ADDRESS       ACCOUNT may also send as ADDRESS ("@domain": any address there)
  senders remove ACCOUNT ADDRESS
  senders list ACCOUNT [--json]
  app-password add ACCOUNT NAME     generate a password for one device or program (shown once)
  app-password remove ACCOUNT NAME
  app-password list ACCOUNT [--json]
  key import ADDRESS FILE           encrypt mail to the account before it is stored, to this
                                    OpenPGP public key or S/MIME (X.509) certificate
  key list [ADDRESS] [--json]       the keys (fingerprint, type, expiry, addresses)
  key remove ADDRESS [FINGERPRINT]  remove one key, or every key of the account

Options:
  --password-stdin  add, passwd: read the password from the first line of stdin
  --json            list actions: machine-readable output
  --config FILE     config whose data directory and local domains to use (default: embedded defaults)
Exit codes: 0 done, 1 answer is no (unknown account or alias, exists already,
refused address or password), 2 usage error, 3 cannot read the config or the accounts database.
`;

interface Spec {
  readonly args: readonly string[];
  readonly help: string;
  /** Takes a password (--password-stdin allowed). */
  readonly password?: boolean;
  /** Takes --json. */
  readonly json?: boolean;
  /** Only reads. */
  readonly read?: boolean;
}

const CONFIG_OPT = `  --config FILE     config whose data directory and local domains to use
`;
const EXIT_CODES = `Exit codes: 0 done, 1 answer is no, 2 usage error, 3 cannot read the config or the accounts database.
`;
const COMMON = `Options:
${CONFIG_OPT}${EXIT_CODES}`;
const PASSWORD_COMMON = `Options:
  --password-stdin  read the password from the first line of stdin (else it is asked
                    twice on the terminal, not echoed)
${CONFIG_OPT}${EXIT_CODES}`;
const JSON_COMMON = `Options:
  --json            machine-readable output
${CONFIG_OPT}${EXIT_CODES}`;

const SPECS: Readonly<Record<string, Spec>> = {
  add: {
    args: ["ADDRESS"],
    password: true,
    help: `Usage: wardmail user add ADDRESS [--password-stdin] [--config FILE]

Creates an account. ADDRESS must be in a local domain ([local] domains) and
not be an account or alias already; its local part may hold letters, digits
and . _ + - only. The password needs at least 8 characters. It is stored as
an argon2id hash and SCRAM-SHA-256 keys, never as itself.

${PASSWORD_COMMON}`,
  },
  passwd: {
    args: ["ADDRESS"],
    password: true,
    help: `Usage: wardmail user passwd ADDRESS [--password-stdin] [--config FILE]

Sets a new password for an account. Its app passwords are revoked: their
SCRAM keys depend on the old password's salt and cannot be re-derived.

${PASSWORD_COMMON}`,
  },
  list: {
    args: [],
    json: true,
    read: true,
    help: `Usage: wardmail user list [--json] [--config FILE]

Prints every account, one a line, with its aliases, senders and app password
names. --json prints an array of { address, created, disabled, aliases,
senders, appPasswords: [{ name, created }] } (created: ms since the epoch).

${JSON_COMMON}`,
  },
  show: {
    args: ["ADDRESS"],
    json: true,
    read: true,
    help: `Usage: wardmail user show ADDRESS [--json] [--config FILE]

Prints one account: created, login enabled or disabled, sending ("held since
... because ..." when the account was held as compromised, see
accounts.hold_factor), aliases, senders and app password names. --json prints
{ address, created, disabled, aliases, senders, appPasswords, held } with held
{ since, reason } or null.

${JSON_COMMON}`,
  },
  release: {
    args: ["ADDRESS"],
    help: `Usage: wardmail user release ADDRESS [--config FILE]

Ends the hold of an account that was held as compromised (its sending jumped
far above its usual level, or many of its recipients were refused) and
releases its held messages for delivery. Change its password first if it was
stolen; delete spam from the queue (wardmail queue list, queue delete) before
releasing.

${COMMON}`,
  },
  remove: {
    args: ["ADDRESS"],
    help: `Usage: wardmail user remove ADDRESS [--config FILE]

Removes an account with its aliases, senders and app passwords. Its mail
(Maildir) is left alone.

${COMMON}`,
  },
  disable: {
    args: ["ADDRESS"],
    help: `Usage: wardmail user disable ADDRESS [--config FILE]

The account can no longer log in (by password, app password or SCRAM);
everything else stays. Undo with enable.

${COMMON}`,
  },
  enable: {
    args: ["ADDRESS"],
    help: `Usage: wardmail user enable ADDRESS [--config FILE]

Lets a disabled account log in again.

${COMMON}`,
  },
  "alias add": { args: ["ALIAS", "ACCOUNT"], help: "" },
  "alias remove": { args: ["ALIAS"], help: "" },
  "senders add": { args: ["ACCOUNT", "ADDRESS"], help: "" },
  "senders remove": { args: ["ACCOUNT", "ADDRESS"], help: "" },
  "senders list": { args: ["ACCOUNT"], json: true, read: true, help: "" },
  "app-password add": { args: ["ACCOUNT", "NAME"], help: "" },
  "app-password remove": { args: ["ACCOUNT", "NAME"], help: "" },
  "app-password list": { args: ["ACCOUNT"], json: true, read: true, help: "" },
};

const GROUP_HELP: Readonly<Record<string, string>> = {
  alias: `Usage: wardmail user alias add ALIAS ACCOUNT [--config FILE]
       wardmail user alias remove ALIAS [--config FILE]

An alias is another address of one account: mail to it is the account's, the
account may log in with it and send as it. ALIAS must be in a local domain and
must not be an account or another alias.

${COMMON}`,
  senders: `Usage: wardmail user senders add ACCOUNT ADDRESS [--config FILE]
       wardmail user senders remove ACCOUNT ADDRESS [--config FILE]
       wardmail user senders list ACCOUNT [--json] [--config FILE]

Addresses ACCOUNT may use as sender besides its own and its aliases': an exact
address (any domain) or "@domain" for every address in that domain.

${JSON_COMMON}`,
  "app-password": `Usage: wardmail user app-password add ACCOUNT NAME [--config FILE]
       wardmail user app-password remove ACCOUNT NAME [--config FILE]
       wardmail user app-password list ACCOUNT [--json] [--config FILE]

An app password is a random password for one device or program, so the
account password need not be stored there and one device can be cut off
alone. add prints it once (on stdout, alone on its line): it cannot be shown
again. It works like the account password (PLAIN, LOGIN, SCRAM-SHA-256) and is
revoked when the account password changes. NAME: 1 to 64 letters, digits,
spaces and . _ + : @ ( ) -.

${JSON_COMMON}`,
};

function specHelp(key: string): string {
  const spec = SPECS[key];
  if (spec && spec.help !== "") return spec.help;
  return GROUP_HELP[key.split(" ")[0] ?? ""] ?? USER_HELP;
}

export async function userCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: "string", short: "c" },
      "password-stdin": { type: "boolean" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [action, ...rest] = positionals;
  if (action === "key") return userKeyCommand(rest, values, io);
  if (action === undefined) {
    if (values.help) {
      io.out(USER_HELP);
      return 0;
    }
    io.err(`wardmail user: missing action\n\n${USER_HELP}`);
    return 2;
  }
  let key = action;
  let params = rest;
  if (action in GROUP_HELP) {
    const [sub, ...more] = rest;
    if (sub === undefined || !(`${action} ${sub}` in SPECS)) {
      if (values.help && sub === undefined) {
        io.out(specHelp(action));
        return 0;
      }
      io.err(`wardmail user ${action}: ${sub === undefined ? "missing action" : `unknown action '${sub}'`}\n\n${specHelp(action)}`);
      return 2;
    }
    key = `${action} ${sub}`;
    params = more;
  }
  const spec = SPECS[key];
  if (spec === undefined) {
    io.err(`wardmail user: unknown action '${action}'\n\n${USER_HELP}`);
    return 2;
  }
  if (values.help) {
    io.out(specHelp(key));
    return 0;
  }
  if (params.length !== spec.args.length) {
    io.err(`wardmail user ${key}: expected ${spec.args.length === 0 ? "no arguments" : spec.args.join(" ")}\n\n${specHelp(key)}`);
    return 2;
  }
  if (values["password-stdin"] && !spec.password) {
    io.err(`wardmail user ${key}: --password-stdin is for add and passwd only\n`);
    return 2;
  }
  if (values.json && !spec.json) {
    io.err(`wardmail user ${key}: --json is for the list actions only\n`);
    return 2;
  }
  const stdin = io.stdin ?? process.stdin;
  if (spec.password && !values["password-stdin"] && !isTty(stdin)) {
    io.err(`wardmail user ${key}: stdin is not a terminal to ask the password on; use --password-stdin\n`);
    return 2;
  }

  const config = await loadCommandConfig(values.config, io);
  if (config === undefined) return 3;
  const dataDir = config.server.dataDir;
  const p = params as unknown as [string, string]; // length checked against spec.args above

  if (!AccountStore.exists(dataDir) && key !== "add") {
    // No database yet: no accounts.
    if (key === "list") {
      io.out(values.json ? "[]\n" : "no accounts\n");
      return 0;
    }
    const what = key === "alias remove" ? "alias" : "account";
    io.err(`wardmail user: no such ${what}: ${p[0].toLowerCase()}\n`);
    return 1;
  }

  const dirExisted = existsSync(dataDir);
  let store: AccountStore;
  try {
    store = AccountStore.open(dataDir, { create: key === "add", localDomains: config.local.domains });
  } catch (err) {
    io.err(`wardmail user: cannot open the accounts database: ${err instanceof Error ? err.message : String(err)}\n`);
    return 3;
  }
  let code: number;
  try {
    code = await run(key, p, store, io, stdin, values.json === true, values["password-stdin"] === true, config);
  } catch (err) {
    if (err instanceof AccountError) {
      io.err(`wardmail user: ${err.message}\n`);
      code = 1;
    } else if (isSqliteError(err)) {
      io.err(`wardmail user: cannot ${spec.read ? "read" : "write"} the accounts database: ${err.message}\n`);
      code = 3;
    } else {
      throw err;
    }
  } finally {
    store.close();
  }
  if (!spec.read) {
    try {
      await giveToServer(config, dataDir, !dirExisted);
    } catch (err) {
      io.err(`wardmail user: cannot give the accounts database to user ${config.server.user}: ${err instanceof Error ? err.message : String(err)}\n`);
      return 3;
    }
  }
  return code;
}

function isSqliteError(err: unknown): err is Error {
  return err instanceof Error && "code" in err && err.code === "ERR_SQLITE_ERROR";
}

async function run(key: string, p: [string, string], store: AccountStore, io: Io, stdin: NodeJS.ReadableStream, json: boolean, fromStdin: boolean, config: Config): Promise<number> {
  switch (key) {
    case "add": {
      const address = store.checkNewAccount(p[0]); // before asking for a password
      const password = await readPassword(io, stdin, fromStdin, `Password for ${address}: `);
      if (password === undefined) return aborted(io);
      await store.addAccount(address, password);
      io.out(`added ${address}\n`);
      return 0;
    }
    case "passwd": {
      const address = store.requireAccount(p[0]);
      const password = await readPassword(io, stdin, fromStdin, `New password for ${address}: `);
      if (password === undefined) return aborted(io);
      const revoked = await store.setPassword(address, password);
      io.out(`password changed for ${address}\n`);
      if (revoked.length > 0) {
        io.out(`revoked ${revoked.length} app password${revoked.length === 1 ? "" : "s"} (they depend on the old password): ${revoked.join(", ")}\n`);
      }
      return 0;
    }
    case "list": {
      const holds = new Map(holdsOf(store, config).list().map((h) => [h.account, h]));
      const accounts = store.list().map((a) => ({ ...a, held: holds.get(a.address) ?? null }));
      if (json) io.out(JSON.stringify(accounts) + "\n");
      else io.out(accounts.length === 0 ? "no accounts\n" : accounts.map(line).join("") + `${accounts.length} account${accounts.length === 1 ? "" : "s"}\n`);
      return 0;
    }
    case "show": {
      const info = account(store, p[0]);
      const held = holdsOf(store, config).held(info.address);
      io.out(json ? JSON.stringify({ ...info, held: held ? { since: held.since, reason: held.reason } : null }) + "\n" : showText(info, held));
      return 0;
    }
    case "release": {
      const address = store.requireAccount(p[0]);
      const { hold, released } = releaseAccount(holdsOf(store, config), config.server.dataDir, address);
      io.out(`${hold ? `released ${address} (${heldText(hold)})` : `${address} was not held`}; ${released.length} held message${released.length === 1 ? "" : "s"} released${released.length > 0 ? `: ${released.join(", ")}` : ""}\n`);
      return 0;
    }
    case "remove":
      if (!store.removeAccount(p[0])) return no(io, `no such account: ${p[0].toLowerCase()}`);
      io.out(`removed ${p[0].toLowerCase()} with its aliases, senders and app passwords\n`);
      return 0;
    case "disable":
    case "enable":
      if (!store.setDisabled(p[0], key === "disable")) return no(io, `no such account: ${p[0].toLowerCase()}`);
      io.out(`${key}d ${p[0].toLowerCase()}\n`);
      return 0;
    case "alias add":
      store.addAlias(p[0], p[1]);
      io.out(`alias ${p[0].toLowerCase()} -> ${store.resolve(p[0]) ?? p[1].toLowerCase()}\n`);
      return 0;
    case "alias remove":
      if (!store.removeAlias(p[0])) return no(io, `no such alias: ${p[0].toLowerCase()}`);
      io.out(`removed alias ${p[0].toLowerCase()}\n`);
      return 0;
    case "senders add":
      store.addSender(p[0], p[1]);
      io.out(`${p[0].toLowerCase()} may send as ${p[1].toLowerCase()}\n`);
      return 0;
    case "senders remove":
      if (!store.removeSender(p[0], p[1])) return no(io, `${p[0].toLowerCase()} has no sender entry ${p[1].toLowerCase()}`);
      io.out(`${p[0].toLowerCase()} may no longer send as ${p[1].toLowerCase()}\n`);
      return 0;
    case "senders list": {
      const info = account(store, p[0]);
      if (json) io.out(JSON.stringify(info.senders) + "\n");
      else io.out(info.senders.map((s) => `${s}\n`).join(""));
      return 0;
    }
    case "app-password add": {
      const secret = await store.addAppPassword(p[0], p[1]);
      io.err(`app password ${JSON.stringify(p[1])} for ${p[0].toLowerCase()} (it cannot be shown again; use it instead of the account password):\n`);
      io.out(`${secret}\n`);
      return 0;
    }
    case "app-password remove":
      if (!store.removeAppPassword(p[0], p[1])) return no(io, `${p[0].toLowerCase()} has no app password named ${JSON.stringify(p[1])}`);
      io.out(`revoked app password ${JSON.stringify(p[1])} of ${p[0].toLowerCase()}\n`);
      return 0;
    case "app-password list": {
      const info = account(store, p[0]);
      if (json) io.out(JSON.stringify(info.appPasswords) + "\n");
      else io.out(info.appPasswords.map((a) => `${a.name}  (created ${new Date(a.created).toISOString()})\n`).join(""));
      return 0;
    }
    default:
      throw new Error(`unhandled action ${key}`);
  }
}

function account(store: AccountStore, address: string): AccountInfo {
  const info = store.get(store.requireAccount(address));
  if (!info) throw new AccountError(`no such account: ${address.toLowerCase()}`);
  return info;
}

function line(a: AccountInfo & { held?: Hold | null }): string {
  let s = a.address;
  if (a.disabled) s += "  (disabled)";
  if (a.held) s += `  (${heldText(a.held)})`;
  if (a.aliases.length > 0) s += `  aliases: ${a.aliases.join(", ")}`;
  if (a.senders.length > 0) s += `  senders: ${a.senders.join(", ")}`;
  if (a.appPasswords.length > 0) s += `  app passwords: ${a.appPasswords.map((x) => x.name).join(", ")}`;
  return s + "\n";
}

function no(io: Io, message: string): number {
  io.err(`wardmail user: ${message}\n`);
  return 1;
}

function aborted(io: Io): number {
  io.err("wardmail user: aborted, nothing changed\n");
  return 1;
}

// ------------------------------------------------------------ passwords

interface TtyIn extends NodeJS.ReadableStream {
  isTTY: true;
  setRawMode(mode: boolean): unknown;
}

function isTty(s: NodeJS.ReadableStream): s is TtyIn {
  return (s as { isTTY?: boolean }).isTTY === true && typeof (s as { setRawMode?: unknown }).setRawMode === "function";
}

/** Longest first line --password-stdin reads; the store refuses more than 1024 bytes anyway. */
const MAX_LINE = 64 * 1024;

/** The password, or undefined when the operator aborted (Ctrl-C, Ctrl-D) or the two entries differ. */
async function readPassword(io: Io, stdin: NodeJS.ReadableStream, fromStdin: boolean, prompt: string): Promise<string | undefined> {
  if (fromStdin) return readFirstLine(stdin);
  if (!isTty(stdin)) throw new AccountError("stdin is not a terminal; use --password-stdin");
  const first = await askHidden(io, stdin, prompt);
  if (first === undefined) return undefined;
  const second = await askHidden(io, stdin, "Again: ");
  if (second === undefined) return undefined;
  if (first !== second) throw new AccountError("the two passwords differ; nothing changed");
  return first;
}

/** The first line of the stream without its line ending ("" when empty). */
export async function readFirstLine(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const b = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
    const nl = b.indexOf(0x0a);
    if (nl >= 0) {
      chunks.push(b.subarray(0, nl));
      break;
    }
    chunks.push(b);
    size += b.length;
    if (size > MAX_LINE) break;
  }
  return Buffer.concat(chunks).toString("utf8").replace(/\r$/, "");
}

/** Reads one line from a terminal in raw mode, echoing nothing. */
async function askHidden(io: Io, stdin: TtyIn, prompt: string): Promise<string | undefined> {
  io.err(prompt);
  stdin.setRawMode(true);
  stdin.setEncoding("utf8");
  stdin.resume();
  try {
    return await new Promise<string | undefined>((resolve) => {
      let typed = "";
      const finish = (v: string | undefined): void => {
        stdin.removeListener("data", onData);
        resolve(v);
      };
      const onData = (data: string | Buffer): void => {
        for (const ch of typeof data === "string" ? data : data.toString("utf8")) {
          if (ch === "\r" || ch === "\n") return finish(typed);
          if (ch === "\u0003" || (ch === "\u0004" && typed === "")) return finish(undefined); // Ctrl-C, Ctrl-D
          if (ch === "\u007f" || ch === "\b") typed = [...typed].slice(0, -1).join("");
          else if (ch === "\u0015") typed = ""; // Ctrl-U
          else if (ch >= " ") typed += ch;
        }
      };
      stdin.on("data", onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    io.err("\n");
  }
}

// ------------------------------------------------------------ ownership

/**
 * As root with server.user set: give the database (and the data directory,
 * when this command created it) to the server's user. chownTo does nothing
 * otherwise. SQLite, as root, gives new -wal/-shm files the owner of the
 * database file; they are handled here too in case they stay behind.
 */
export async function giveToServer(config: Config, dataDir: string, createdDir: boolean): Promise<void> {
  if (createdDir && existsSync(dataDir)) {
    await chownTo(config, dataDir);
    return;
  }
  const db = AccountStore.path(dataDir);
  for (const p of [db, `${db}-wal`, `${db}-shm`]) {
    try {
      await chownTo(config, p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
}
