// A peer daemon (knotd, unbound) run in the foreground as a child of this
// process, in its own temp dir: its log collected, stopped with SIGTERM
// (SIGKILL after 5 s) and its dir removed; at process exit every daemon still
// running is killed and its dir removed. Shared by test/peers/knot.ts and
// test/peers/unbound.ts.
import { spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";

export interface Daemon {
  readonly pid: number;
  /** What the daemon wrote so far (capped at 1 MB). */
  readonly log: () => string;
  /** True once it exited. */
  readonly dead: () => boolean;
  /** SIGTERM, then SIGKILL after 5 s; removes the temp dir. Idempotent. */
  readonly stop: () => Promise<void>;
}

/** Running daemons -> their temp dirs, for the exit hook. */
const live = new Map<ChildProcess, string>();
let hookInstalled = false;

function installExitHook(): void {
  if (hookInstalled) return;
  hookInstalled = true;
  process.on("exit", () => {
    for (const [child, dir] of live) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        /* best effort at exit */
      }
    }
    live.clear();
  });
}

/** Starts `bin args` in `dir` (which it then owns), collecting stderr, and stdout when `stdout` is true. */
export function spawnDaemon(bin: string, args: readonly string[], dir: string, opts: { stdout?: boolean } = {}): Daemon {
  const child = spawn(bin, [...args], { cwd: dir, stdio: ["ignore", opts.stdout === true ? "pipe" : "ignore", "pipe"] });
  live.set(child, dir);
  installExitHook();
  let log = "";
  const collect = (d: Buffer): void => {
    if (log.length < 1_000_000) log += d.toString();
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.once("error", (e) => {
    log += `spawn error: ${e.message}\n`;
  });
  const dead = (): boolean => child.exitCode !== null || child.signalCode !== null;
  let stopped = false;
  return {
    pid: child.pid ?? 0,
    log: () => log,
    dead,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      if (!dead()) {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(t);
      }
      live.delete(child);
      await rm(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 });
    },
  };
}

/** Polls `ready` every 100 ms until it says yes (true), the daemon exits or `timeoutMs` passes (false). */
export async function waitReady(daemon: Daemon, timeoutMs: number, ready: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !daemon.dead()) {
    if (await ready()) return true;
    await sleep(100);
  }
  return false;
}

/**
 * Runs `attempt` up to 3 times while it asks for a retry (the free port it
 * picked was taken before the daemon bound it).
 */
export async function withPortRetries<T>(name: string, attempt: () => Promise<T | { retry: string }>): Promise<T> {
  let last = "";
  for (let i = 0; i < 3; i++) {
    const r = await attempt();
    if (typeof r !== "object" || r === null || !("retry" in r)) return r;
    last = r.retry;
  }
  throw new Error(`${name}: could not bind a port in 3 attempts\n${last.split("\n").slice(-10).join("\n")}`);
}
