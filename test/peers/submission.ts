/**
 * Shared by test/submission.test.ts, test/submission-policy.test.ts,
 * test/relay.test.ts and others: running swaks and reading the reply to one
 * command out of its transcript, raw SMTP sessions from a chosen loopback
 * source address (plain, STARTTLS or implicit TLS), AUTH PLAIN and a
 * SCRAM-SHA-256 attempt with a wrong proof,
 * and the queue as `wardmail queue list --json` shows it.
 */
import { spawnSync } from "node:child_process";
import { exec, type Step } from "./exec.ts";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import net from "node:net";
import tls from "node:tls";
import { SmtpWire, type SmtpReply } from "./smtp-client.ts";

// ---------------------------------------------------------------- binaries

/** Throws (failing the suite) when cmd cannot be run at all. */
export function requireBinary(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: "ignore", timeout: 10_000 });
  if (r.error !== undefined) {
    throw new Error(`${cmd} is required for this test but cannot be run (${r.error.message}); install it with scripts/install-peers.sh`);
  }
}


export interface Run {
  code: number | null;
  /** stdout and stderr, interleaved as they came. */
  out: string;
}

/** Runs a command with stdin input (or /dev/null); kills it (by its own PID) after timeoutMs. */
export async function run(cmd: string, args: string[], opts: { input?: string; steps?: readonly Step[]; timeoutMs?: number } = {}): Promise<Run> {
  const r = await exec(cmd, args, opts);
  return { code: r.code, out: r.out };
}


/** Runs swaks (EHLO name client.test, 10 s timeout); its transcript is in `out`. */
export function swaks(args: string[], timeoutMs = 20_000): Promise<Run> {
  return run("swaks", ["--timeout", "10", "--helo", "client.test", ...args], { timeoutMs });
}

export interface TranscriptReply {
  code: number;
  /** "5.7.1", or "" when the reply has none. */
  enhanced: string;
  /** The last line of the reply, code included. */
  line: string;
}

/**
 * The reply swaks got to the first command starting with `command` (e.g.
 * "RCPT TO:", "AUTH"), from its transcript: " -> CMD" / " ~> CMD" (plain /
 * TLS), then reply lines "<-  ", "<~  ", "<** " or "<~* " (an error).
 * Undefined when swaks never sent the command.
 */
export function swaksReply(out: string, command: string): TranscriptReply | undefined {
  const lines = out.split(/\r?\n/);
  const i = lines.findIndex((l) => / [-~]> /.test(l.slice(0, 4)) && l.slice(4).toUpperCase().startsWith(command.toUpperCase()));
  if (i < 0) return undefined;
  for (let j = i + 1; j < lines.length && j < i + 50; j++) {
    const m = /^<[-~*]{1,2} +(\d{3})([ -])(?:(\d\.\d{1,3}\.\d{1,3}) )?/.exec(lines[j] ?? "");
    if (!m) continue;
    if (m[2] === "-") continue; // a continuation line: the last one has the final code
    return { code: Number(m[1]), enhanced: m[3] ?? "", line: (lines[j] ?? "").replace(/^<[-~*]{1,2} +/, "") };
  }
  return undefined;
}

// ---------------------------------------------------------------- raw sessions

export type TlsStart = "none" | "starttls" | "implicit";

export interface SessionOptions {
  /** Local (source) address, e.g. "127.0.0.2": any 127.0.0.0/8 address reaches the server over loopback. */
  readonly localAddress?: string;
  readonly tls: TlsStart;
  readonly helo?: string;
  /** CA certificate (PEM) and name to verify the server with; without it, the certificate is not checked. */
  readonly ca?: string | Buffer;
  readonly servername?: string;
}

export interface Session {
  readonly wire: SmtpWire;
  /** The EHLO reply (after TLS when TLS was asked for). */
  readonly ehlo: SmtpReply;
  /** The TLS socket, when TLS is on. */
  readonly tlsSocket: tls.TLSSocket | undefined;
}

function connectTcp(port: number, localAddress: string | undefined): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port, ...(localAddress !== undefined ? { localAddress } : {}) });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`connect 127.0.0.1:${port}: timeout`));
    }, 5000);
    s.once("connect", () => {
      clearTimeout(timer);
      s.removeListener("error", reject);
      resolve(s);
    });
    s.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/**
 * A TLS client over an existing socket (STARTTLS) or a new connection to
 * 127.0.0.1:port (implicit TLS), 5 s for the handshake. The certificate is
 * checked only when `ca` is given.
 */
export function tlsClient(opts: { socket?: net.Socket; port?: number; servername?: string; ca?: string | Buffer }): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      ...(opts.socket ? { socket: opts.socket } : { host: "127.0.0.1", port: opts.port }),
      ...(opts.ca !== undefined ? { ca: opts.ca, rejectUnauthorized: true } : { rejectUnauthorized: false }),
      ...(opts.servername !== undefined ? { servername: opts.servername } : {}),
    });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error("TLS handshake timeout"));
    }, 5000);
    const onError = (e: Error): void => {
      clearTimeout(timer);
      reject(e);
    };
    s.once("secureConnect", () => {
      clearTimeout(timer);
      s.removeListener("error", onError);
      resolve(s);
    });
    s.once("error", onError);
  });
}

/** tlsClient over `socket` with the session's CA and name. */
function handshake(socket: net.Socket, opts: SessionOptions): Promise<tls.TLSSocket> {
  return tlsClient({ socket, ...(opts.ca !== undefined ? { ca: opts.ca } : {}), ...(opts.servername !== undefined ? { servername: opts.servername } : {}) });
}

async function expectCode(wire: SmtpWire, r: Promise<SmtpReply>, code: number, what: string): Promise<SmtpReply> {
  const reply = await r;
  if (reply.code !== code) {
    wire.close();
    throw new Error(`${what}: expected ${code}, got ${reply.raw.trim()}`);
  }
  return reply;
}

/** Connects (from opts.localAddress), greets, starts TLS as asked and sends EHLO: ready for AUTH or MAIL. */
export async function openSession(port: number, opts: SessionOptions): Promise<Session> {
  const helo = opts.helo ?? "client.test";
  const tcp = await connectTcp(port, opts.localAddress);
  if (opts.tls === "implicit") {
    let secure: tls.TLSSocket;
    try {
      secure = await handshake(tcp, opts);
    } catch (err) {
      tcp.destroy();
      throw err;
    }
    const wire = new SmtpWire(secure);
    await expectCode(wire, wire.reply(), 220, "greeting");
    const ehlo = await expectCode(wire, wire.command(`EHLO ${helo}`), 250, "EHLO");
    return { wire, ehlo, tlsSocket: secure };
  }
  const plain = new SmtpWire(tcp);
  await expectCode(plain, plain.reply(), 220, "greeting");
  const first = await expectCode(plain, plain.command(`EHLO ${helo}`), 250, "EHLO");
  if (opts.tls === "none") return { wire: plain, ehlo: first, tlsSocket: undefined };
  await expectCode(plain, plain.command("STARTTLS"), 220, "STARTTLS");
  let secure: tls.TLSSocket;
  try {
    secure = await handshake(plain.detach(), opts);
  } catch (err) {
    tcp.destroy();
    throw err;
  }
  const wire = new SmtpWire(secure);
  const ehlo = await expectCode(wire, wire.command(`EHLO ${helo}`), 250, "EHLO after STARTTLS");
  return { wire, ehlo, tlsSocket: secure };
}

/** The mechanisms of the EHLO reply's AUTH line ([] when there is none). */
export function authMechanisms(ehlo: SmtpReply): string[] {
  const line = ehlo.lines.find((l) => /^AUTH /i.test(l));
  return line === undefined ? [] : line.slice(5).trim().split(/ +/);
}

/** AUTH PLAIN with the initial response (no authorization identity). */
export function authPlain(wire: SmtpWire, user: string, password: string): Promise<SmtpReply> {
  return wire.command(`AUTH PLAIN ${Buffer.from(`\0${user}\0${password}`, "utf8").toString("base64")}`);
}

/** A session logged in with AUTH PLAIN; throws unless the server said 235. */
export async function loggedIn(port: number, user: string, password: string, opts: SessionOptions): Promise<Session> {
  const s = await openSession(port, opts);
  const r = await authPlain(s.wire, user, password);
  if (r.code !== 235) {
    s.wire.close();
    throw new Error(`AUTH PLAIN as ${user}: expected 235, got ${r.raw.trim()}`);
  }
  return s;
}

/**
 * SCRAM-SHA-256 (no channel binding) with a random, hence wrong, proof.
 * The server checks the proof against the stored key without hashing a
 * password (unlike PLAIN's argon2id), so the time to the final reply is
 * mostly the failure delay. Returns the final reply: the 334 server-first
 * step is checked here (and the reply returned if it is not a 334).
 */
export async function scramWrongProof(wire: SmtpWire, user: string): Promise<SmtpReply> {
  const nonce = randomBytes(18).toString("base64");
  const gs2 = "n,,";
  const clientFirst = `${gs2}n=${user.replace(/=/g, "=3D").replace(/,/g, "=2C")},r=${nonce}`;
  const first = await wire.command(`AUTH SCRAM-SHA-256 ${Buffer.from(clientFirst).toString("base64")}`);
  if (first.code !== 334) return first;
  const serverFirst = Buffer.from(first.lines[0] ?? "", "base64").toString("utf8");
  const serverNonce = /(?:^|,)r=([^,]+)/.exec(serverFirst)?.[1];
  if (serverNonce === undefined || !serverNonce.startsWith(nonce)) throw new Error(`bad SCRAM server-first: ${serverFirst}`);
  const final = `c=${Buffer.from(gs2).toString("base64")},r=${serverNonce},p=${randomBytes(32).toString("base64")}`;
  return wire.command(Buffer.from(final).toString("base64"));
}

// ---------------------------------------------------------------- queue

export interface QueueSummary {
  id: string;
  state: string;
  from: string;
  to: string[];
}

/** `wardmail queue list --json` for the server's config. */
export async function queueList(server: {
  configPath: string;
  cli(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }>;
}): Promise<QueueSummary[]> {
  const r = await server.cli(["queue", "list", "--json", "--config", server.configPath]);
  if (r.code !== 0) throw new Error(`wardmail queue list exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as QueueSummary[];
}

// ---------------------------------------------------------------- Maildir

/** Waits (at most timeoutMs) for a message holding token in address's Maildir new/; returns its text (latin1). */
export async function mailWith(
  server: { maildir(address: string): Promise<string[]>; output(): string },
  address: string,
  token: string,
  timeoutMs = 10_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const f of await server.maildir(address)) {
      const text = (await readFile(f)).toString("latin1");
      if (text.includes(token)) return text;
    }
    if (Date.now() > deadline) throw new Error(`no message with ${token} for ${address} within ${timeoutMs} ms\n${server.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The (unfolded) Received: header Wardmail added to a delivered message. */
export function wardmailReceived(text: string): string {
  const headers = text.slice(0, text.indexOf("\r\n\r\n") + 2).replace(/\r\n[ \t]+/g, " ");
  const line = headers.split("\r\n").find((l) => l.startsWith("Received: ") && l.includes("(Wardmail)"));
  if (line === undefined) throw new Error(`no Wardmail Received: header in\n${headers}`);
  return line;
}

// ---------------------------------------------------------------- logs

/** The server's JSON log lines (from Wardmail.output()) whose "msg" is msg. */
export function logLines(output: string, msg: string): Record<string, unknown>[] {
  return output
    .split("\n")
    .filter((l) => l.startsWith("{") && l.includes(`"msg":"${msg}"`))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/**
 * The first log line `msg` matching `pred`, once it is in the output, or
 * undefined after `timeoutMs`: the server writes a line when the event is
 * handled, which can be after the client has seen its reply.
 */
export async function waitForLog(output: () => string, msg: string, pred: (l: Record<string, unknown>) => boolean, timeoutMs = 5000): Promise<Record<string, unknown> | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = logLines(output(), msg).find(pred);
    if (line !== undefined || Date.now() >= deadline) return line;
    await new Promise((r) => setTimeout(r, 50));
  }
}
