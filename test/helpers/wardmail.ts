/**
 * Starts a real Wardmail (`node bin/wardmail.ts serve --config FILE`) for an
 * integration test: fresh data directory, free loopback ports, waits for
 * "ready", and stops it (SIGTERM, or SIGKILL for crash tests). Also reads the
 * Maildir a test delivered to.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePorts } from "../peers/ports.ts";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const BIN = join(ROOT, "bin", "wardmail.ts");
/** The built server (`npm run build`), as `npm start` runs it. */
export const DIST_BIN = join(ROOT, "dist", "bin", "wardmail.js");

export interface Wardmail {
  readonly dir: string;
  readonly dataDir: string;
  readonly configPath: string;
  readonly smtpPort: number;
  readonly submissionPort: number;
  readonly submissionsPort: number;
  readonly process: ChildProcess;
  /** Everything the process printed (stdout JSON logs and stderr banner). */
  output(): string;
  /** Graceful stop (SIGTERM); resolves with the exit code. */
  stop(): Promise<number | null>;
  /** kill -9 the whole process group (primary and workers). */
  kill9(): Promise<void>;
  /** Starts the server again on the same config and data (after stop or kill9). */
  restart(): Promise<Wardmail>;
  /** Removes the temp directory (after stop). */
  cleanup(): Promise<void>;
  /** Files in the Maildir `new/` of address (local@domain). */
  maildir(address: string, folder?: string): Promise<string[]>;
  /** Waits until the Maildir of address holds at least n messages. */
  waitForMail(address: string, n: number, timeoutMs?: number): Promise<string[]>;
  /** Runs `wardmail <args>` with this config; resolves with exit code and output. */
  cli(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

export interface StartOptions {
  /** Extra TOML appended to the generated config. */
  readonly extra?: string;
  readonly workers?: number;
  readonly mailboxes?: string[];
  readonly domains?: string[];
  readonly logLevel?: string;
  /**
   * TOML for the [checks] and [dns] tables. Default: "[checks] enabled =
   * false" (tests may not ask real DNS servers).
   */
  readonly checks?: string;
  /** Run the built dist/ server instead of the TypeScript sources. */
  readonly dist?: boolean;
  /** Extra TOML lines inside the generated `[server]` table (e.g. `user = "nobody"`). */
  readonly serverExtra?: string;
  /**
   * Mode for the temp directory (mkdtemp makes it 0700), e.g. 0o755 so that
   * an unprivileged `server.user` can reach the data directory inside it.
   */
  readonly dirMode?: number;
  /**
   * Extra environment variables for the server process (on top of this
   * process's environment), e.g. NODE_EXTRA_CA_CERTS for a test CA.
   */
  readonly env?: Readonly<Record<string, string>>;
  /** Data directory instead of DIR/data, e.g. a small file system the test mounted (the test removes it). */
  readonly dataDir?: string;
}

/**
 * Limits for tests unless the test sets them: a short pregreet pause (every
 * MX test still goes through the split greeting), no tarpit, and per-client
 * rates out of the way (the tests connect from one address, many times).
 * test/dos.test.ts sets its own.
 */
export const TEST_LIMITS: Readonly<Record<string, number>> = {
  pregreet_delay: 100,
  error_delay: 0,
  connections_per_client_per_minute: 1_000_000,
  messages_per_client_per_minute: 1_000_000,
  recipients_per_client_per_minute: 1_000_000,
};

/** extra with TEST_LIMITS added to its [limits] table (or a new one), for the keys it does not set. */
export function withTestLimits(extra: string): string {
  const lines = Object.entries(TEST_LIMITS)
    .filter(([k]) => !new RegExp(`^\\s*${k}\\s*=`, "m").test(extra))
    .map(([k, v]) => `${k} = ${v}`);
  if (lines.length === 0) return extra;
  const header = /^\[limits\][ \t]*$/m.exec(extra);
  if (!header) return `${extra}\n[limits]\n${lines.join("\n")}\n`;
  const at = header.index + header[0].length;
  return `${extra.slice(0, at)}\n${lines.join("\n")}${extra.slice(at)}`;
}

export async function startWardmail(opts: StartOptions = {}): Promise<Wardmail> {
  const dir = await mkdtemp(join(tmpdir(), "wardmail-test-"));
  if (opts.dirMode !== undefined) await chmod(dir, opts.dirMode);
  const dataDir = opts.dataDir ?? join(dir, "data");
  // A port that was free when picked can be taken before the server binds it (test/peers/ports.ts): then it exits
  // before ready with "address already in use", and starts again on other ports (at most three times).
  for (let attempt = 1; ; attempt++) {
    const [smtpPort, submissionPort, submissionsPort] = (await freePorts(3)) as [number, number, number];
    const domains = opts.domains ?? ["example.test", "localhost"];
    const mailboxes = opts.mailboxes ?? ["user@example.test", "other@example.test", "postmaster@example.test"];
    const config = [
      "[server]",
      `data_dir = ${JSON.stringify(dataDir)}`,
      `hostname = "mx.example.test"`,
      `workers = ${opts.workers ?? 2}`,
      ...(opts.serverExtra !== undefined ? [opts.serverExtra] : []),
      "[smtp]",
      `listen = ["127.0.0.1:${smtpPort}"]`,
      "[submission]",
      `listen = ["127.0.0.1:${submissionPort}"]`,
      "[submissions]",
      `listen = ["127.0.0.1:${submissionsPort}"]`,
      "[log]",
      `level = "${opts.logLevel ?? "info"}"`,
      "[local]",
      `domains = ${JSON.stringify(domains)}`,
      `mailboxes = ${JSON.stringify(mailboxes)}`,
      // Tests talk only to loopback: sender authentication (which asks DNS) is
      // off unless the test brings its own [checks] and [dns] (a local DNS server).
      // Outbound delivery asks DNS too: without a test DNS server, a closed
      // loopback port answers every question at once with a temporary error.
      ...(opts.checks === undefined ? ["[checks]", "enabled = false", "[dns]", 'servers = ["127.0.0.1:9"]', "timeout = 200", "attempts = 1"] : [opts.checks]),
      withTestLimits(opts.extra ?? ""),
    ].join("\n");
    const configPath = join(dir, "wardmail.toml");
    await writeFile(configPath, config + "\n");
    try {
      return await launch({ dir, dataDir, configPath, smtpPort, submissionPort, submissionsPort, bin: opts.dist ? DIST_BIN : BIN, ...(opts.env !== undefined ? { env: opts.env } : {}) });
    } catch (err) {
      if (attempt >= 3 || !(err instanceof Error) || !/before ready:[\s\S]*address already in use/.test(err.message)) throw err;
    }
  }
}

interface Layout {
  dir: string;
  dataDir: string;
  configPath: string;
  smtpPort: number;
  submissionPort: number;
  submissionsPort: number;
  bin: string;
  env?: Readonly<Record<string, string>>;
}

async function launch(l: Layout): Promise<Wardmail> {
  const child = spawn(process.execPath, [l.bin, "serve", "--config", l.configPath], {
    cwd: l.dir,
    ...(l.env !== undefined ? { env: { ...process.env, ...l.env } } : {}),
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group, so kill9 reaches the workers too
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`wardmail did not become ready in 20 s:\n${out}`)), 20_000);
    const check = (): void => {
      if (out.includes("wardmail: ready")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stderr.on("data", check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`wardmail exited with ${code} before ready:\n${out}`));
    });
  });
  const maildirOf = (address: string, folder = ""): string => {
    const [local, domain] = address.split("@") as [string, string];
    return join(l.dataDir, "mail", domain, local, folder, "new");
  };
  const w: Wardmail = {
    ...l,
    process: child,
    output: () => out,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill("SIGTERM");
      return exited;
    },
    async kill9() {
      if (child.exitCode !== null || child.pid === undefined) return;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        /* already gone */
      }
      await exited;
      // Workers are in the same group; give the kernel a moment to reap them and free the ports.
      await new Promise((r) => setTimeout(r, 200));
    },
    restart: () => launch(l),
    cleanup: () => rm(l.dir, { recursive: true, force: true }),
    async maildir(address, folder) {
      try {
        return (await readdir(maildirOf(address, folder))).map((f) => join(maildirOf(address, folder), f));
      } catch {
        return [];
      }
    },
    async waitForMail(address, n, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const files = await w.maildir(address);
        if (files.length >= n || Date.now() > deadline) return files;
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    cli(args, input) {
      return new Promise((resolve) => {
        const c = spawn(process.execPath, [l.bin, ...args], { cwd: l.dir, stdio: ["pipe", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        c.stdin.end(input ?? "");
        c.on("exit", (code) => resolve({ code, stdout, stderr }));
      });
    },
  };
  return w;
}

/** Reads a delivered message file. */
export function readMail(file: string): Promise<Buffer> {
  return readFile(file);
}
