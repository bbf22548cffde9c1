// A real Postfix instance on loopback, for integration tests and the benchmark.
//
// Each instance lives in its own fresh temp dir:
//   DIR/etc/main.cf, DIR/etc/master.cf   config_directory (postfix -c DIR/etc)
//   DIR/queue                            queue_directory (Postfix creates the subdirs)
//   DIR/data                             data_directory (owned by mail_owner)
//   DIR/maillog                          maillog_file, written by the postlog service
//   DIR/vmail/DOMAIN/LOCAL/              Maildirs of mode "mailbox" (virtual(8), owned by postfix)
// so several instances can run at once (unique dirs, syslog_name and
// address:port; any 127.0.0.0/8 address can be the listener's).
// Postfix's default durability is kept: each queue file is fsynced before 250.
// The machine's own /etc/postfix instance is never used or started.
import { execFile as execFileCb, execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { freePort, waitForPort } from "./ports.ts";
import { cwdOf, envOf, isAlive, listPids } from "./procs.ts";

const execFile = promisify(execFileCb);

export const POSTFIX_BIN = "/usr/sbin/postfix";
export const POSTCONF_BIN = "/usr/sbin/postconf";
export const SMTP_SOURCE_BIN = "/usr/sbin/smtp-source";
export const SMTP_SINK_BIN = "/usr/sbin/smtp-sink";
export const POSTFIX_SKIP_REASON = "postfix (postfix, postconf, smtp-source, smtp-sink, its master and user) is not installed: install the Debian package postfix (scripts/install-peers.sh installs every test peer)";

/**
 * in_flow_delay for the benches' Postfix: 0, as an operator tuning Postfix for
 * throughput sets it. Postfix's default (1s) makes smtpd sleep up to a second
 * before each message whenever the queue manager lags behind cleanup; in a
 * throughput bench with 10 messages per connection that left Postfix idle
 * about half the time. The benches take `--postfix-in-flow-delay 1s` to
 * measure the default.
 */
export const BENCH_IN_FLOW_DELAY = "0";

/** A value for in_flow_delay: a whole number of seconds, with or without "s" ("0", "1s"); else undefined. */
export function inFlowDelayValue(v: string): string | undefined {
  return /^\d{1,4}s?$/.test(v) ? v : undefined;
}

export interface PostfixInstance {
  /** The temp dir holding everything of this instance (removed by stop()). */
  dir: string;
  /** config_directory: pass to `postfix -c`, `postconf -c`, `postqueue -c`. */
  configDir: string;
  /** smtpd listens on host:port. */
  port: number;
  /** The listener's address (127.0.0.1 unless opts.host said otherwise). */
  host: string;
  logPath: string;
  queueDir: string;
  /** syslog_name of this instance; log lines look like `NAME/smtpd[PID]: ...`. */
  syslogName: string;
  /** PID of the master daemon (from queue/pid/master.pid). */
  masterPid: number | undefined;
  /** Stops Postfix, kills leftovers of this instance, removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** The whole maillog so far ("" if not yet written). */
  readLog(): Promise<string>;
  /** Polls the log until `re` matches; returns the match. Rejects with the log tail on timeout. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Messages in incoming, active, deferred, hold and maildrop. */
  queueCount(): Promise<number>;
  /** Waits until queueCount() is 0. Rejects on timeout. */
  waitForEmptyQueue(timeoutMs?: number): Promise<void>;
  /** Mode "mailbox": the messages stored for address (new/ and cur/ of its Maildir), oldest first; [] otherwise. */
  mailbox(address: string): Promise<Buffer[]>;
  /** Mode "mailbox": waits until address holds at least n messages; returns them (fewer on timeout). */
  waitForMailbox(address: string, n: number, timeoutMs?: number): Promise<Buffer[]>;
}

export interface PostfixOptions {
  /** smtpd on host:port. If omitted, a free port is picked (and retried on a bind race). */
  port?: number;
  /** The listener's loopback address (default 127.0.0.1); e.g. 127.0.0.2 to run a second peer on the same port. */
  host?: string;
  /**
   * discard: every accepted message goes to discard: (bench); relay: everything
   * goes to relayhost; mailbox: a receiving MX that stores mail for `mailboxes`
   * in Maildirs (virtual(8)), refuses other addresses of their domains at RCPT
   * (550 5.1.1) and every other domain (relay denied).
   */
  mode: "discard" | "relay" | "mailbox";
  /** Mode "mailbox": the addresses (local@domain) that have a mailbox. */
  mailboxes?: readonly string[];
  /**
   * smtpd offers STARTTLS with this key and certificate chain (PEM files that
   * root can read): smtpd_tls_security_level = may, smtpd_tls_loglevel = 1 (the
   * log shows "... TLS connection established from ..."). Without it smtpd
   * offers no STARTTLS.
   */
  tls?: { certFile: string; keyFile: string };
  /** e.g. "[127.0.0.1]:2525"; required for relay mode. */
  relayhost?: string;
  /** smtp_tls_security_level for outbound mail in relay mode (default "none"). */
  tlsToRelay?: "none" | "may" | "encrypt";
  /** Extra or overriding main.cf parameters. */
  extraMain?: Record<string, string>;
  /**
   * Extra master.cf service lines, appended to the stock ones (e.g.
   * "tlsproxy unix - - n - 0 tlsproxy" for smtp_tls_connection_reuse).
   */
  extraMaster?: string[];
  /** Milliseconds to wait for `postfix start` plus the listener (default 60000). */
  startTimeoutMs?: number;
  /**
   * A command prefix for `postfix start`, e.g. a mount namespace with its own
   * /etc/resolv.conf (bench/stack.ts): the master and every daemon it starts
   * run inside it. `postfix stop` runs as usual.
   */
  startWrapper?: readonly string[];
}

/** True if the Postfix binaries and its mail_owner account exist on this machine. */
/** undefined when postfixAvailable(), else POSTFIX_SKIP_REASON (for peerSkip in test/helpers/peers.ts). */
export function postfixMissing(): string | undefined {
  return postfixAvailable() ? undefined : POSTFIX_SKIP_REASON;
}

export function postfixAvailable(): boolean {
  if (![POSTFIX_BIN, POSTCONF_BIN, SMTP_SOURCE_BIN].every((p) => existsSync(p))) return false;
  if (!existsSync("/usr/lib/postfix/sbin/master")) return false;
  return lookupUser("postfix") !== undefined;
}

function lookupUser(name: string): { uid: number; gid: number } | undefined {
  try {
    for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
      const f = line.split(":");
      if (f[0] === name && f[2] !== undefined && f[3] !== undefined) return { uid: Number(f[2]), gid: Number(f[3]) };
    }
  } catch {
    return undefined;
  }
  return undefined;
}

function lookupGroup(name: string): number | undefined {
  try {
    for (const line of readFileSync("/etc/group", "utf8").split("\n")) {
      const f = line.split(":");
      if (f[0] === name && f[2] !== undefined) return Number(f[2]);
    }
  } catch {
    return undefined;
  }
  return undefined;
}

// --- cleanup of instances that were not stopped (crash, Ctrl-C) -----------

interface Live {
  dir: string;
  queueDir: string;
  configDir: string;
}
const live = new Set<Live>();
let hooksInstalled = false;

/** PIDs of this instance's processes: cwd inside its queue dir, or MAIL_CONFIG = its config dir. */
function instancePids(inst: { queueDir: string; configDir: string }): number[] {
  const out: number[] = [];
  for (const pid of listPids()) {
    if (pid === process.pid || !isAlive(pid)) continue;
    const cwd = cwdOf(pid);
    if (cwd !== undefined && (cwd === inst.queueDir || cwd.startsWith(inst.queueDir + "/"))) {
      out.push(pid);
      continue;
    }
    if (envOf(pid, "MAIL_CONFIG") === inst.configDir) out.push(pid);
  }
  return out;
}

function killAllSync(inst: Live): void {
  for (const pid of instancePids(inst)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  try {
    rmSync(inst.dir, { recursive: true, force: true });
  } catch {
    /* best effort at exit */
  }
}

function emergencyCleanup(): void {
  for (const inst of live) killAllSync(inst);
  live.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", emergencyCleanup);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const handler = (): void => {
      emergencyCleanup();
      // If nobody else handles this signal, keep its default meaning: die by it.
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, handler);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, handler);
  }
}

// --- config -----------------------------------------------------------------

let instanceCounter = 0;

function mainCf(o: PostfixOptions, p: { dir: string; queueDir: string; dataDir: string; logPath: string; syslogName: string; port: number; vmailDir: string; owner: { uid: number; gid: number } }): string {
  const params = new Map<string, string>([
    ["compatibility_level", "3.6"],
    ["queue_directory", p.queueDir],
    ["data_directory", p.dataDir],
    ["syslog_name", p.syslogName],
    ["maillog_file", p.logPath],
    ["maillog_file_prefixes", p.dir],
    ["myhostname", `${p.syslogName}.wardmail.test`],
    ["mydomain", "wardmail.test"],
    ["myorigin", "$myhostname"],
    ["inet_interfaces", "loopback-only"],
    ["inet_protocols", "ipv4"],
    ["mydestination", ""],
    ["local_recipient_maps", ""],
    ["relay_domains", ""],
    ["alias_maps", ""],
    ["alias_database", ""],
    ["mynetworks", "127.0.0.0/8"],
    ["smtpd_relay_restrictions", "permit_mynetworks, reject"],
    ["default_process_limit", "100"],
    ["biff", "no"],
    ["append_dot_mydomain", "no"],
    ["readme_directory", "no"],
    ["smtputf8_enable", "yes"],
  ]);
  if (o.mode === "discard") {
    params.set("default_transport", "discard:wardmail bench");
    params.set("relay_transport", "discard:wardmail bench");
    params.set("local_transport", "discard:wardmail bench");
  } else if (o.mode === "mailbox") {
    const boxes = (o.mailboxes ?? []).map((a) => a.toLowerCase());
    if (boxes.length === 0) throw new Error("startPostfix: mailbox mode needs opts.mailboxes");
    const domains = [...new Set(boxes.map((a) => a.slice(a.lastIndexOf("@") + 1)))];
    params.set("virtual_mailbox_domains", domains.join(", "));
    params.set("virtual_mailbox_base", p.vmailDir);
    // "domain/local/": a Maildir (the trailing slash), under virtual_mailbox_base.
    params.set("virtual_mailbox_maps", `inline:{ ${boxes.map((a) => `${a}=${a.slice(a.lastIndexOf("@") + 1)}/${a.slice(0, a.lastIndexOf("@"))}/`).join(", ")} }`);
    params.set("virtual_uid_maps", `static:${p.owner.uid}`);
    params.set("virtual_gid_maps", `static:${p.owner.gid}`);
    params.set("virtual_minimum_uid", String(Math.min(100, p.owner.uid)));
    params.set("virtual_transport", "virtual");
    // Nothing else is ever delivered anywhere (bounces included).
    params.set("default_transport", "discard:wardmail test peer");
    params.set("relay_transport", "discard:wardmail test peer");
    params.set("local_transport", "discard:wardmail test peer");
    // A peer MX: mail from the test's loopback clients is not "ours to relay".
    params.set("mynetworks", "");
    params.set("smtpd_relay_restrictions", "reject_unauth_destination");
  } else {
    if (!o.relayhost) throw new Error("startPostfix: relay mode needs opts.relayhost, e.g. \"[127.0.0.1]:2525\"");
    params.set("relayhost", o.relayhost);
    params.set("default_transport", "smtp");
    params.set("relay_transport", "smtp");
    params.set("smtp_tls_security_level", o.tlsToRelay ?? "none");
    params.set("smtp_tls_loglevel", "1");
    // Tests want failed deliveries retried within seconds, not minutes.
    params.set("queue_run_delay", "1s");
    params.set("minimal_backoff_time", "1s");
    params.set("maximal_backoff_time", "5s");
    params.set("smtp_connect_timeout", "5s");
  }
  if (o.tls !== undefined) {
    params.set("smtpd_tls_chain_files", `${o.tls.keyFile}, ${o.tls.certFile}`);
    params.set("smtpd_tls_security_level", "may");
    params.set("smtpd_tls_loglevel", "1");
    params.set("smtpd_tls_received_header", "yes");
  } else if (o.mode === "mailbox") {
    params.set("smtpd_tls_security_level", "none");
  }
  for (const [k, v] of Object.entries(o.extraMain ?? {})) params.set(k, v);
  let out = `# Generated by test/peers/postfix.ts for a throwaway loopback instance.\n`;
  for (const [k, v] of params) out += `${k} = ${v}\n`;
  return out;
}

function masterCf(host: string, port: number, extra: readonly string[] = []): string {
  // Postfix's stock services, chroot off everywhere, smtpd only on host:port.
  return `# Generated by test/peers/postfix.ts
# service type  private unpriv  chroot  wakeup  maxproc command
${host}:${port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
${extra.map((l) => `${l}\n`).join("")}`;
}

// --- start / stop -----------------------------------------------------------

function errText(e: unknown): string {
  if (e && typeof e === "object") {
    const o = e as { message?: unknown; stdout?: unknown; stderr?: unknown };
    const parts = [typeof o.message === "string" ? o.message : "error"];
    if (typeof o.stdout === "string" && o.stdout.trim()) parts.push(`stdout: ${o.stdout.trim()}`);
    if (typeof o.stderr === "string" && o.stderr.trim()) parts.push(`stderr: ${o.stderr.trim()}`);
    return parts.join("\n");
  }
  return String(e);
}

async function runPostfix(configDir: string, cmd: string, timeoutMs: number, wrapper: readonly string[] = []): Promise<{ ok: boolean; out: string }> {
  try {
    const argv = [...wrapper, POSTFIX_BIN, "-c", configDir, cmd];
    const r = await execFile(argv[0]!, argv.slice(1), {
      timeout: timeoutMs,
      killSignal: "SIGKILL",
      env: { ...process.env, PATH: `/usr/sbin:/usr/bin:/sbin:/bin:${process.env.PATH ?? ""}` },
    });
    return { ok: true, out: `${r.stdout}${r.stderr}` };
  } catch (e) {
    return { ok: false, out: errText(e) };
  }
}

/**
 * Creates the queue directory tree as /etc/postfix/postfix-files wants it, so
 * that `postfix start` finds nothing to create (saves ~2 s per fresh instance).
 * Anything wrong or missing here is still fixed by Postfix's own check.
 */
async function makeQueueDirs(queueDir: string, owner: { uid: number; gid: number }): Promise<void> {
  await mkdir(queueDir, { mode: 0o755 });
  const postdrop = lookupGroup("postdrop");
  const dirs: Array<[string, number, boolean]> = [
    ["active", 0o700, false],
    ["bounce", 0o700, false],
    ["corrupt", 0o700, false],
    ["defer", 0o700, false],
    ["deferred", 0o700, false],
    ["flush", 0o700, false],
    ["hold", 0o700, false],
    ["incoming", 0o700, false],
    ["private", 0o700, false],
    ["maildrop", 0o730, true],
    ["public", 0o710, true],
    ["saved", 0o700, false],
    ["trace", 0o700, false],
  ];
  for (const [name, mode, setgid] of dirs) {
    const d = path.join(queueDir, name);
    await mkdir(d);
    await chown(d, owner.uid, setgid && postdrop !== undefined ? postdrop : 0);
    await chmod(d, mode);
  }
  await mkdir(path.join(queueDir, "pid"), { mode: 0o755 });
}

async function countFiles(dir: string): Promise<number> {
  let n = 0;
  let entries;
  try {
    entries = await readdir(dir, { recursive: true, withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) if (e.isFile()) n++;
  return n;
}

async function startOnce(opts: PostfixOptions, port: number): Promise<PostfixInstance> {
  const owner = lookupUser("postfix");
  const host = opts.host ?? "127.0.0.1";
  if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)) throw new Error(`startPostfix: host ${host} is not a 127.0.0.0/8 address`);
  if (!postfixAvailable() || owner === undefined) throw new Error(POSTFIX_SKIP_REASON);
  const startTimeoutMs = opts.startTimeoutMs ?? 60_000;

  const dir = await mkdtemp(path.join(os.tmpdir(), "wm-postfix-"));
  await chmod(dir, 0o755); // the unprivileged daemons must reach queue/ and data/
  const configDir = path.join(dir, "etc");
  const queueDir = path.join(dir, "queue");
  const dataDir = path.join(dir, "data");
  const logPath = path.join(dir, "maillog");
  const vmailDir = path.join(dir, "vmail");
  const syslogName = `wmpf${process.pid}x${++instanceCounter}p${port}`;
  const rec: Live = { dir, queueDir, configDir };
  live.add(rec);
  installHooks();

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (existsSync(path.join(configDir, "main.cf"))) await runPostfix(configDir, "stop", 30_000);
    // `postfix stop` waits for master; give stragglers a moment, then SIGKILL by PID.
    const deadline = Date.now() + 5000;
    while (instancePids(rec).length > 0 && Date.now() < deadline) await sleep(100);
    for (const pid of instancePids(rec)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    live.delete(rec);
    await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  };

  try {
    await mkdir(configDir, { mode: 0o755 });
    await mkdir(dataDir, { mode: 0o700 });
    await chown(dataDir, owner.uid, owner.gid);
    await makeQueueDirs(queueDir, owner);
    if (opts.mode === "mailbox") {
      await mkdir(vmailDir, { mode: 0o755 });
      await chown(vmailDir, owner.uid, owner.gid);
    }
    await writeFile(path.join(configDir, "main.cf"), mainCf(opts, { dir, queueDir, dataDir, logPath, syslogName, port, vmailDir, owner }));
    await writeFile(path.join(configDir, "master.cf"), masterCf(host, port, opts.extraMaster));

    const started = await runPostfix(configDir, "start", startTimeoutMs, opts.startWrapper);
    if (!started.ok) {
      const check = await runPostfix(configDir, "check", 30_000);
      const log = await readFile(logPath, "utf8").catch(() => "");
      const bindRace = /address already in use/i.test(log);
      const err = new Error(
        `startPostfix: \`postfix -c ${configDir} start\` failed:\n${started.out}\n` +
          `--- postfix check:\n${check.out || "(no output)"}\n--- maillog tail:\n${log.split("\n").slice(-30).join("\n")}`,
      );
      (err as Error & { bindRace?: boolean }).bindRace = bindRace;
      throw err;
    }
    let masterPid: number | undefined;
    try {
      masterPid = Number((await readFile(path.join(queueDir, "pid", "master.pid"), "utf8")).trim()) || undefined;
    } catch {
      masterPid = undefined;
    }
    try {
      await waitForPort(port, startTimeoutMs, {
        host,
        alive: () => (masterPid !== undefined && !isAlive(masterPid) ? "postfix master exited" : undefined),
      });
    } catch (e) {
      const log = await readFile(logPath, "utf8").catch(() => "");
      const err = new Error(`startPostfix: ${errText(e)}\n--- maillog tail:\n${log.split("\n").slice(-30).join("\n")}`);
      (err as Error & { bindRace?: boolean }).bindRace = /address already in use/i.test(log);
      throw err;
    }

    const readLog = async (): Promise<string> => readFile(logPath, "utf8").catch(() => "");
    const queueCount = async (): Promise<number> => {
      let n = 0;
      for (const q of ["incoming", "active", "deferred", "hold", "maildrop"]) n += await countFiles(path.join(queueDir, q));
      return n;
    };
    const mailbox = async (address: string): Promise<Buffer[]> => {
      if (opts.mode !== "mailbox") return [];
      const a = address.toLowerCase();
      const box = path.join(vmailDir, a.slice(a.lastIndexOf("@") + 1), a.slice(0, a.lastIndexOf("@")));
      const files: { file: string; mtime: number }[] = [];
      for (const sub of ["new", "cur"]) {
        let names: string[];
        try {
          names = await readdir(path.join(box, sub));
        } catch {
          continue;
        }
        for (const n of names) files.push({ file: path.join(box, sub, n), mtime: Number(n.split(".")[0]) || 0 });
      }
      files.sort((x, y) => x.mtime - y.mtime || x.file.localeCompare(y.file));
      return Promise.all(files.map((f) => readFile(f.file)));
    };
    return {
      dir,
      configDir,
      port,
      host,
      logPath,
      queueDir,
      syslogName,
      masterPid,
      stop,
      readLog,
      queueCount,
      async waitForLog(re: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
        const deadline = Date.now() + timeoutMs;
        while (true) {
          const log = await readLog();
          const m = log.match(re);
          if (m) return m;
          if (Date.now() >= deadline) {
            throw new Error(`waitForLog ${re}: no match within ${timeoutMs} ms; log tail:\n${log.split("\n").slice(-20).join("\n")}`);
          }
          await sleep(100);
        }
      },
      async waitForEmptyQueue(timeoutMs = 60_000): Promise<void> {
        const deadline = Date.now() + timeoutMs;
        while (true) {
          const n = await queueCount();
          if (n === 0) return;
          if (Date.now() >= deadline) throw new Error(`waitForEmptyQueue: ${n} message(s) still queued after ${timeoutMs} ms`);
          await sleep(100);
        }
      },
      mailbox,
      async waitForMailbox(address: string, n: number, timeoutMs = 10_000): Promise<Buffer[]> {
        const deadline = Date.now() + timeoutMs;
        while (true) {
          const got = await mailbox(address);
          if (got.length >= n || Date.now() >= deadline) return got;
          await sleep(100);
        }
      },
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * Starts a Postfix instance on 127.0.0.1 in a fresh temp dir and waits until
 * its smtpd accepts connections. Always call stop() (e.g. in t.after()).
 * Throws with `postfix check` output and the log tail if it cannot start.
 */
export async function startPostfix(opts: PostfixOptions): Promise<PostfixInstance> {
  if (opts.port !== undefined) return startOnce(opts, opts.port);
  // No port given: pick one, and retry if someone else grabbed it meanwhile.
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(opts, await freePort(opts.host ?? "127.0.0.1"));
    } catch (e) {
      lastErr = e;
      if (!(e instanceof Error && (e as Error & { bindRace?: boolean }).bindRace)) throw e;
    }
  }
  throw lastErr;
}

/** `postconf -c DIR -h NAME` of a running or configured instance. */
export function postconfValue(configDir: string, name: string): string {
  return execFileSync(POSTCONF_BIN, ["-c", configDir, "-h", name], { encoding: "utf8" }).trim();
}
