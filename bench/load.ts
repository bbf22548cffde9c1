// Load generation with Postfix's smtp-source.
//
// smtp-source has no "messages per connection" option. What its flags do
// (checked against its source, smtpstone/smtp-source.c, and by counting
// sessions in Postfix's log; see bench/README.md):
//   -s S -m M      S parallel sessions share one global budget of M messages;
//                  without -d every session QUITs after each message and
//                  reconnects: M messages over exactly M connections.
//   -d             don't disconnect: a session keeps sending over the same
//                  connection until the *global* budget is spent. So
//                  `-d -s 50 -m 500` opens exactly 50 connections for 500
//                  messages, but NOT 10 each: sessions the server serves
//                  sooner take more (Postfix's log showed 1 to 29 per
//                  connection).
// Hence two modes for k > 1 messages per connection:
//   exact (default): `smtp-source -d -s 1 -m k` per connection (one connection,
//       exactly k messages, QUIT, exit), kept S at a time by `xargs -P S`.
//       Costs one process start per connection (~20 ms CPU here).
//   batch: repeated `smtp-source -d -s S -m S*k`; k per connection only on
//       average, with a short drain at the end of each batch.
import { spawn, type ChildProcess } from "node:child_process";
import { SMTP_SOURCE_BIN } from "../test/peers/postfix.ts";

export interface LoadSpec {
  host?: string;
  port: number;
  /** Concurrent SMTP sessions. */
  sessions: number;
  /** Total messages. For perConnection > 1 it must be a multiple of perConnection. */
  messages: number;
  /** Messages per connection (1 = connect, HELO, MAIL, RCPT, DATA, QUIT every time). */
  perConnection: number;
  /**
   * How to get perConnection > 1 messages per connection:
   * "exact" (default): `smtp-source -d -s 1 -m k` per connection, S at a time
   *   via xargs -P S: exactly k each, but one process start per connection;
   * "batch": repeated `smtp-source -d -s S -m S*k`: S connections per batch
   *   carrying S*k messages, k per connection only on average.
   */
  perConnectionMode?: "batch" | "exact";
  /** Body bytes per message (smtp-source -l; headers come on top). */
  size: number;
  /**
   * Send this ready-made message instead (smtp-source -F FILE, replacing -l):
   * LF line ends in the file; smtp-source sends each line with CRLF,
   * dot-stuffed, plus one empty line before the final dot.
   */
  messageFile?: string;
  from: string;
  to: string;
  helo: string;
  /** Hard limit for the whole load; children are SIGKILLed when it passes. */
  timeoutMs: number;
}

export interface LoadResult {
  ok: boolean;
  wallMs: number;
  /** Messages the generator was asked to send (all were answered 2xx if ok). */
  messages: number;
  /** Connections the generator opened by construction. */
  connections: number;
  /** smtp-source processes run. */
  processes: number;
  timedOut: boolean;
  errors: string[];
  /** The exact command lines used (one example for the worker mode). */
  commands: string[];
}

/** Argument vector for one smtp-source process. */
export function smtpSourceArgs(spec: LoadSpec, sessions: number, messages: number, keepConnection: boolean): string[] {
  const args = [
    "-s", String(sessions),
    "-m", String(messages),
    ...(spec.messageFile !== undefined ? ["-F", spec.messageFile] : ["-l", String(spec.size)]),
    "-f", spec.from,
    "-t", spec.to,
    "-M", spec.helo,
  ];
  if (keepConnection) args.unshift("-d");
  args.push(`${spec.host ?? "127.0.0.1"}:${spec.port}`);
  return args;
}

/** Children of every running load, so an emergency exit can kill them by PID. */
export const liveLoadChildren = new Set<ChildProcess>();

interface ProcOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** SIGKILL a child's whole process group (each child is its own group leader). */
function killGroup(c: ChildProcess): void {
  if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) return;
  try {
    process.kill(-c.pid, "SIGKILL");
  } catch {
    try {
      c.kill("SIGKILL");
    } catch {
      /* gone */
    }
  }
}

function runOne(command: string, args: string[], children: Set<ChildProcess>, stdin?: string): Promise<ProcOutcome> {
  return new Promise((resolve) => {
    // detached: own process group, so a timeout can kill xargs and its smtp-sources together.
    const child = spawn(command, args, { stdio: [stdin === undefined ? "ignore" : "pipe", "ignore", "pipe"], detached: true });
    if (stdin !== undefined && child.stdin) {
      child.stdin.on("error", () => undefined); // EPIPE if it exits early: reported via its exit code
      child.stdin.end(stdin);
    }
    children.add(child);
    liveLoadChildren.add(child);
    let stderr = "";
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (d: string) => {
      if (stderr.length < 4000) stderr += d;
    });
    child.once("error", (e) => {
      children.delete(child);
      liveLoadChildren.delete(child);
      resolve({ code: -1, signal: null, stderr: String(e) });
    });
    child.once("close", (code, signal) => {
      children.delete(child);
      liveLoadChildren.delete(child);
      resolve({ code, signal, stderr });
    });
  });
}


export function killLoadChildren(): void {
  for (const c of liveLoadChildren) killGroup(c);
}

/** Runs one load against host:port and measures its wall-clock time. */
export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  if (!(spec.perConnection >= 1) || !Number.isInteger(spec.perConnection)) throw new Error("perConnection must be a positive integer");
  if (spec.messages % spec.perConnection !== 0) {
    throw new Error(`messages (${spec.messages}) must be a multiple of perConnection (${spec.perConnection})`);
  }
  const children = new Set<ChildProcess>();
  const errors: string[] = [];
  let timedOut = false;
  let processes = 0;
  const connections = spec.messages / spec.perConnection;
  const commands: string[] = [];
  const mode = spec.perConnectionMode ?? "exact";

  const timer = setTimeout(() => {
    timedOut = true;
    for (const c of children) killGroup(c);
  }, spec.timeoutMs);

  const note = (o: ProcOutcome, what: string): void => {
    if (o.code !== 0) {
      const why = o.signal ? `signal ${o.signal}` : `exit ${o.code}`;
      if (errors.length < 10) errors.push(`${what} ${why}: ${o.stderr.trim().split("\n").slice(-3).join(" | ")}`);
    }
  };

  const t0 = process.hrtime.bigint();
  if (spec.perConnection === 1) {
    // One process, S sessions, each message on its own connection.
    const args = smtpSourceArgs(spec, spec.sessions, spec.messages, false);
    commands.push(`smtp-source ${args.join(" ")}`);
    processes = 1;
    note(await runOne(SMTP_SOURCE_BIN, args, children), "smtp-source");
  } else if (mode === "exact") {
    // Every connection is its own `smtp-source -d -s 1 -m k`; xargs keeps S of
    // them running. Exactly k per connection, but one process per connection.
    const args = smtpSourceArgs(spec, 1, spec.perConnection, true);
    const xargs = ["-P", String(spec.sessions), "-I{}", SMTP_SOURCE_BIN, ...args];
    commands.push(`seq ${connections} | xargs ${xargs.join(" ")}`);
    processes = connections;
    let input = "";
    for (let i = 1; i <= connections; i++) input += `${i}\n`;
    note(await runOne("xargs", xargs, children, input), "xargs smtp-source");
  } else {
    // Batches of `smtp-source -d -s S -m S*k`: exactly S connections per batch
    // and S*k messages over them (k per connection on average).
    let left = spec.messages;
    while (left > 0 && !timedOut && errors.length === 0) {
      const sessions = Math.min(spec.sessions, left / spec.perConnection);
      const args = smtpSourceArgs(spec, sessions, sessions * spec.perConnection, true);
      if (commands.length === 0 || left < spec.sessions * spec.perConnection) commands.push(`smtp-source ${args.join(" ")}`);
      processes++;
      note(await runOne(SMTP_SOURCE_BIN, args, children), "smtp-source");
      left -= sessions * spec.perConnection;
    }
    if (commands.length > 0) commands[0] = `${processes} x (sequential) ${commands[0]}`;
  }
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  clearTimeout(timer);
  if (timedOut) errors.push(`load timed out after ${spec.timeoutMs} ms`);
  return {
    ok: errors.length === 0,
    wallMs,
    messages: spec.messages,
    connections,
    processes,
    timedOut,
    errors,
    commands,
  };
}
