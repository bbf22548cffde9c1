// A real ClamAV daemon (clamd, Debian package clamav-daemon) on loopback for
// the antivirus tests and benchmark. There is no signature database offline:
// each instance gets a one-line local .ndb database, written at start, that
// matches the body of the EICAR test string (test-peers.md "ClamAV offline").
//
// Each instance lives in its own fresh temp dir:
//   DIR/clamd.conf   the config (clamd -c; Foreground, loopback TCP + a unix socket)
//   DIR/db/local.ndb the signature
//   DIR/clamd.sock   the unix socket (LocalSocket)
// clamd runs in the foreground as a child of this process; startup takes ~3 s.
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { binaryMissing } from "../helpers/peers.ts";
import { ping } from "../../src/antivirus/index.ts";
import { spawnDaemon, waitReady, withPortRetries, type Daemon } from "./daemon.ts";
import { freePort } from "./ports.ts";

export const CLAMD_BIN = "/usr/sbin/clamd";

/** The signature's name in the database; clamd reports it with ".UNOFFICIAL" appended. */
export const EICAR_SIGNATURE = "Local.EICAR.Ndb";

/** The 68-byte EICAR anti-virus test file, built at run time (never committed). */
export function eicar(): Buffer {
  const parts = ["X5O!P%@AP[4\\PZX54(P^)7CC)7}$", "EICAR-STANDARD-ANTIVIRUS-TEST-FILE", "!$H+H*"];
  return Buffer.from(parts.join(""), "latin1");
}

/** undefined when clamd runs, else why not (for peerSkip). */
export function clamdMissing(): string | undefined {
  return binaryMissing(CLAMD_BIN, ["--version"], "clamav-daemon", { exitZero: true });
}

export interface Clamd {
  readonly port: number;
  /** The unix socket it also listens on. */
  readonly socket: string;
  readonly dir: string;
  readonly pid: number;
  log(): string;
  /** SIGTERM, then SIGKILL after 5 s; removes the temp dir. */
  stop(): Promise<void>;
}

export interface ClamdOptions {
  /** clamd's StreamMaxLength (e.g. "1M"); default 25M as on Debian. */
  readonly streamMaxLength?: string;
}

export async function startClamd(opts: ClamdOptions = {}): Promise<Clamd> {
  return withPortRetries<Clamd>("clamd", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "wardmail-clamd-"));
    await mkdir(path.join(dir, "db"));
    const sig = Buffer.from("EICAR-STANDARD-ANTIVIRUS-TEST-FILE", "latin1").toString("hex");
    await writeFile(path.join(dir, "db", "local.ndb"), `${EICAR_SIGNATURE}:0:*:${sig}\n`);
    const port = await freePort();
    const socket = path.join(dir, "clamd.sock");
    const conf = [
      "Foreground yes",
      `DatabaseDirectory ${path.join(dir, "db")}`,
      `TCPSocket ${port}`,
      "TCPAddr 127.0.0.1",
      `LocalSocket ${socket}`,
      `StreamMaxLength ${opts.streamMaxLength ?? "25M"}`,
      "LogTime no",
      `LogFile ${path.join(dir, "clamd.log")}`,
      "MaxThreads 4",
      "",
    ].join("\n");
    await writeFile(path.join(dir, "clamd.conf"), conf);
    const daemon: Daemon = spawnDaemon(CLAMD_BIN, ["-c", path.join(dir, "clamd.conf")], dir, { stdout: true });
    const ready = await waitReady(daemon, 30_000, () => ping({ target: { host: "127.0.0.1", port }, timeoutMs: 1000 }));
    if (!ready) {
      const log = daemon.log();
      await daemon.stop();
      if (/in use|bind/i.test(log)) return { retry: log };
      throw new Error(`clamd did not start:\n${log.split("\n").slice(-15).join("\n")}`);
    }
    return { port, socket, dir, pid: daemon.pid, log: daemon.log, stop: daemon.stop };
  });
}
