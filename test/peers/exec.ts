// Runs a peer's command-line tool (swaks, openssl, dkimsign, python3 -c ...)
// with its stdin fed from `input` (or closed at once, like </dev/null) and
// collects what it prints; the child is killed (by its own PID) after
// timeoutMs. Shared by the integration tests and the benches.
import { spawn } from "node:child_process";

export interface ExecResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  /** stdout and stderr as latin1 text, interleaved as they came. */
  readonly out: string;
}

/**
 * A dialogue on stdin: each step's text is written once the output so far
 * matches the step before it's `waitFor` (a client that waits for the
 * server's reply, as RFC 2920 wants after EHLO); stdin is closed after the
 * last step. The whole run is still bounded by timeoutMs.
 */
export interface Step {
  readonly send: string;
  readonly waitFor?: RegExp;
}

export function exec(cmd: string, args: readonly string[], opts: { input?: string | Buffer; steps?: readonly Step[]; timeoutMs?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, [...args], { stdio: ["pipe", "pipe", "pipe"] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let out = "";
    c.stdout.on("data", (d: Buffer) => {
      stdout.push(d);
      out += d.toString("latin1");
    });
    c.stderr.on("data", (d: Buffer) => {
      stderr.push(d);
      out += d.toString("latin1");
    });
    c.stdin.on("error", () => undefined); // the tool may exit before reading everything
    const steps = opts.steps ?? [];
    let next = 0;
    const feed = (): void => {
      while (next < steps.length) {
        const step = steps[next] as Step;
        const prev = next > 0 ? steps[next - 1]?.waitFor : undefined;
        if (prev !== undefined && !prev.test(out)) return;
        c.stdin.write(step.send);
        next++;
      }
      c.stdin.end();
    };
    if (steps.length > 0) {
      c.stdout.on("data", () => next < steps.length && feed());
      c.stderr.on("data", () => next < steps.length && feed());
      feed();
    } else {
      c.stdin.end(opts.input ?? "");
    }
    const timer = setTimeout(() => c.kill("SIGKILL"), opts.timeoutMs ?? 20_000);
    c.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    c.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr), out });
    });
  });
}
