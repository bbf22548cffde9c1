#!/usr/bin/env node
/** The `wardmail` command line entry point (see src/cli/main.ts). */
import { main } from "../src/cli/main.ts";

// All worker threads share libuv's thread pool for file I/O: the spool's
// fdatasync must not queue behind Maildir writes. Read when the pool starts,
// i.e. at the first asynchronous file operation, which comes after this line.
process.env.UV_THREADPOOL_SIZE ??= "16";

main(process.argv.slice(2), { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`wardmail: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 70;
  },
);
