/** Running swaks from a test: its exit code and everything it printed. */
import { spawn } from "node:child_process";

export interface SwaksRun {
  readonly code: number | null;
  /** stdout and stderr together, in the order they came. */
  readonly out: string;
}

/** Runs swaks (10 s protocol timeout, HELO client.test, then `args`); kills it by its own PID if it outlives timeoutMs. */
export function swaks(args: readonly string[], timeoutMs = 15_000): Promise<SwaksRun> {
  return new Promise((resolve, reject) => {
    const c = spawn("swaks", ["--timeout", "10", "--helo", "client.test", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    c.stdout.on("data", (d: Buffer) => (out += d.toString("latin1")));
    c.stderr.on("data", (d: Buffer) => (out += d.toString("latin1")));
    const timer = setTimeout(() => c.kill("SIGKILL"), timeoutMs);
    c.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    c.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}
