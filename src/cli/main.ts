/**
 * The `wardmail` command. Subcommands: serve, config check, queue, user, dkim, domain, backup, audit, dovecot.
 * Exit codes (documented in docs/cli.md and in --help):
 *   0  success
 *   1  the command ran and the answer is no (invalid config, unknown queue id or account)
 *   2  usage error (unknown command or option, missing argument)
 *   3  could not start or could not read what it needs (config error, port in use, unreadable file)
 */
import { parseArgs } from "node:util";
import { checkConfigFile, ConfigError, formatIssues, loadConfigWithWarnings } from "../config/index.ts";
import { createLogger } from "../log/index.ts";

/** A subcommand: its module is imported only when it runs (`serve` must not carry the CLI's libraries). */
type Command = (args: string[], io: Io) => Promise<number>;
const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  queue: async () => (await import("./queue.ts")).queueCommand,
  user: async () => (await import("./user.ts")).userCommand,
  dkim: async () => (await import("./dkim.ts")).dkimCommand,
  domain: async () => (await import("./domain.ts")).domainCommand,
  backup: async () => (await import("./backup.ts")).backupCommand,
  restore: async () => (await import("./restore.ts")).restoreCommand,
  audit: async () => (await import("./audit.ts")).auditCommand,
  send: async () => (await import("../send/index.ts")).sendCommand,
  spool: async () => (await import("./spool.ts")).spoolCommand,
  dovecot: async () => (await import("./dovecot.ts")).dovecotCommand,
};

export const EXIT = { ok: 0, no: 1, usage: 2, cannot: 3 } as const;

export interface Io {
  out(s: string): void;
  err(s: string): void;
  /** Where passwords are read from (`user add/passwd`); process.stdin when absent. */
  stdin?: NodeJS.ReadableStream;
}

const MAIN_HELP = `Usage: wardmail <command> [options]

Commands:
  serve [--config FILE]        start the mail server (embedded defaults without --config)
  config check FILE [--strict] validate a config file; every error and warning names key and line
  queue <action> [ID] [--json] [--config FILE]
                               list|show|hold|release|retry|delete messages in the queue
  user <action> [ARGS] [--config FILE]
                               add|passwd|list|remove|disable|enable accounts, and their
                               alias, senders and app-password entries
  dkim keygen --domain D [--selector S] [--force] [--config FILE]
                               create DKIM keys (RSA-2048 + Ed25519) for D; prints the DNS records
  dkim list [--json] [--config FILE]
                               the DKIM key sets on disk
  domain dns D [--mx HOST] [--ip ADDR] [--config FILE]
                               every DNS record to publish for D (MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT)
  backup DIR [--config FILE]   copy the queue, accounts, DKIM keys and Maildirs into DIR, while serving
  restore DIR [--force]        put a backup back into the data directory (server stopped; checked first)
  spool rotate-key [--prune] | keys [--json] [--config FILE]
                               add a new key for the encrypted spool; list the keys
  audit server HOST[:PORT] [--submission] [--send-to ADDR] [--json] [--html FILE]
                               grade any SMTP server: TLS, injection, open relay, AUTH, smuggling
  send --server HOST:PORT --from A --to B --subject S [--sign] [--encrypt] [--smime] ... < body
                               compose, sign and encrypt (PGP/MIME or S/MIME) and submit a message
  audit domain DOMAIN [--dns HOST:PORT] [--dkim-selector S] [--json] [--html FILE]
                               grade a mail domain's DNS (SPF, DKIM, DMARC, MTA-STS, DANE...) and each MX
  dovecot config [--config FILE]
                               the Dovecot passdb/userdb pairing: IMAP logins on Wardmail accounts

Options:
  -h, --help                   help for any command (e.g. wardmail queue --help)
  --version                    print the version

Exit codes: 0 success, 1 answer is no (invalid config, unknown id or account; audit: a high or
critical finding), 2 usage error, 3 cannot start/read (audit: target unreachable; also: started
by a Node.js older than 24; run the launcher bin/wardmail).
Environment: WARDMAIL_HOME sets the default data directory (else ./var).
`;

const SERVE_HELP = `Usage: wardmail serve [--config FILE]

Starts Wardmail. Without --config it runs on the embedded defaults: data under
./var (or $WARDMAIL_HOME), loopback only, MX on 127.0.0.1:2525, submission with
STARTTLS on 127.0.0.1:2587, implicit-TLS submission on 127.0.0.1:2465, a
self-signed certificate generated once, local domains localhost and
example.test with the mailbox postmaster. A config file holds only what differs
from those defaults (see docs/configuration.md).

It prints what it listens on (stderr) and logs JSON lines (stdout), first a
"config warning" line for each warning that config check would print.
Signals: SIGTERM/SIGINT stop gracefully, SIGHUP reloads certificates.
Exit codes: 0 stopped cleanly, 2 usage error, 3 could not start.
`;

const CONFIG_HELP = `Usage: wardmail config check FILE [--strict]

Validates FILE against the schema (unknown keys are errors) and prints every
problem as FILE:LINE: KEY: what was expected (stderr).

A valid config may still get warnings, FILE:LINE: KEY: warning: ... (stderr):
things a public server should not keep, such as a listener off loopback with
the host name localhost, the self-signed certificate or the demo domains,
trusted networks with public addresses, DANE off for want of a validating
resolver on loopback, AUTH on the MX listener. LINE is 0 for a default value.

Options:
  --strict    warnings make the config invalid (exit 1)

Exit codes: 0 valid (with or without warnings), 1 invalid (or warnings with
--strict), 2 usage error or unreadable file.
`;

export async function main(argv: string[], io: Io): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === "-h" || cmd === "--help" || cmd === "help") {
    io.out(MAIN_HELP);
    return cmd === undefined ? EXIT.usage : EXIT.ok;
  }
  if (cmd === "--version") {
    io.out("wardmail 0.1.0\n");
    return EXIT.ok;
  }
  try {
    switch (cmd) {
      case "serve":
        return await serve(rest, io);
      case "config":
        return await config(rest, io);
      default: {
        const load = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
        if (load !== undefined) return await (await load())(rest, io);
        io.err(`wardmail: unknown command '${cmd}'\n\n${MAIN_HELP}`);
        return EXIT.usage;
      }
    }
  } catch (err) {
    if (isUsageError(err)) {
      io.err(`wardmail: ${err.message}\n`);
      return EXIT.usage;
    }
    throw err;
  }
}

function isUsageError(err: unknown): err is Error {
  return err instanceof Error && "code" in err && typeof err.code === "string" && err.code.startsWith("ERR_PARSE_ARGS");
}

async function serve(args: string[], io: Io): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: "string", short: "c" }, help: { type: "boolean", short: "h" } } });
  if (values.help) {
    io.out(SERVE_HELP);
    return EXIT.ok;
  }
  let cfg;
  let warnings;
  try {
    ({ config: cfg, warnings } = await loadConfigWithWarnings(values.config, process.env, { asRoot: process.getuid?.() === 0 }));
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(`${err.message}\n`);
      return EXIT.cannot;
    }
    throw err;
  }
  const logger = createLogger({ level: cfg.log.level, base: { role: "primary" } });
  const file = values.config ?? "<defaults>";
  for (const w of warnings) logger.warn({ file, line: w.line, configKey: w.key, warning: w.message }, `config warning: ${formatIssues(file, [w])}`);
  try {
    const { runPrimary } = await import("../server/index.ts");
    await runPrimary({ config: cfg, configPath: values.config, logger, print: (l) => io.err(`${l}\n`) });
  } catch (err) {
    io.err(`wardmail: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.cannot;
  }
  // Keep running until a signal stops the process (the primary exits then).
  return new Promise<number>(() => undefined);
}

async function config(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "-h" || sub === "--help") {
    io.out(CONFIG_HELP);
    return sub === undefined ? EXIT.usage : EXIT.ok;
  }
  if (sub !== "check") {
    io.err(`wardmail config: unknown action '${sub}'\n\n${CONFIG_HELP}`);
    return EXIT.usage;
  }
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { help: { type: "boolean", short: "h" }, strict: { type: "boolean" } },
  });
  if (values.help) {
    io.out(CONFIG_HELP);
    return EXIT.ok;
  }
  const file = positionals[0];
  if (file === undefined || positionals.length > 1) {
    io.err(`wardmail config check: expected exactly one FILE\n\n${CONFIG_HELP}`);
    return EXIT.usage;
  }
  const result = await checkConfigFile(file);
  if (result.ok) {
    const n = result.warnings.length;
    if (n > 0) io.err(formatIssues(file, result.warnings, "warning: ") + "\n");
    if (n > 0 && values.strict === true) {
      io.out(`${file}: invalid under --strict: ${n} warning${n === 1 ? "" : "s"}\n`);
      return EXIT.no;
    }
    io.out(`${file}: valid${n > 0 ? ` with ${n} warning${n === 1 ? "" : "s"}` : ""}\n`);
    return EXIT.ok;
  }
  io.err(formatIssues(file, result.issues) + "\n");
  return result.readable ? EXIT.no : EXIT.usage;
}
