#!/usr/bin/env node
/**
 * The `wardmail` command line entry point (see src/cli/main.ts); the
 * launcher bin/wardmail runs it with the project's own Node.js 24.
 *
 * Only a version check comes before the program is imported: started by an
 * older Node.js (e.g. Debian's /usr/bin/node), a static import would fail
 * on `node:sqlite` with a stack trace before any of our code ran. So this
 * file imports nothing statically and keeps to syntax Node.js 18 parses.
 */
const NEEDED = 24;
const major = Number(process.versions.node.split(".")[0]);

if (!(major >= NEEDED)) {
  process.stderr.write(
    `wardmail: needs Node.js ${NEEDED} or newer, but ${process.execPath} is Node.js ${process.versions.node}.\n` +
      `Start it with the launcher bin/wardmail in the Wardmail directory: it runs the project's own Node.js ${NEEDED}\n` +
      `(node_modules/node/bin/node, installed by "npm ci").\n`,
  );
  process.exitCode = 3;
} else {
  // All worker threads share libuv's thread pool for file I/O: the spool's
  // fdatasync must not queue behind Maildir writes. Read when the pool starts,
  // i.e. at the first asynchronous file operation, which comes after this line.
  process.env.UV_THREADPOOL_SIZE ??= "16";

  // `dovecot auth` runs once per IMAP login: load only its own modules, not the whole server.
  const args = process.argv.slice(2);
  const fast = args[0] === "dovecot" && args[1] === "auth";
  const run: (argv: string[], io: { out: (s: string) => void; err: (s: string) => void }) => Promise<number> = fast
    ? (await import("../src/cli/dovecot.ts")).dovecotCommand
    : (await import("../src/cli/main.ts")).main;
  run(fast ? args.slice(1) : args, { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`wardmail: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 70;
    },
  );
}
