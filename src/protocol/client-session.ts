/**
 * The I/O-free SMTP client core Wardmail delivers with: it drives ONE
 * connection through greeting, EHLO (HELO when EHLO gets 5xx), STARTTLS
 * (RFC 3207), AUTH PLAIN to a relay (RFC 4954, 4616), one transaction per
 * message and QUIT. With `lmtp` it speaks LMTP (RFC 2033) instead. Bytes in (feed), actions
 * out: bytes to send, "start TLS now", "close", and "done" with the results.
 * No sockets, files or clocks: src/outbound/connect.ts does that (for LMTP
 * too). The server codec beside it is session.ts; the types are in
 * client-types.ts. With `keepOpen` (connection reuse) a finished batch is
 * reported without QUIT and the session waits idle for reuse() (RSET, then
 * the next batch) or quit(); a reused connection that fails before its
 * first MAIL is answered reports `stale`: nothing was accepted, the host
 * sends the batch again on a new connection.
 *
 * RFCs: 5321 (SMTP), 2920 (PIPELINING: MAIL, every RCPT and DATA in one
 * write, replies read in order), 3207 (STARTTLS: buffered plaintext dropped,
 * everything learnt before forgotten, EHLO again), 1870 (SIZE), 6152
 * (8BITMIME), 6531 (SMTPUTF8), 3461 (DSN: NOTIFY, ORCPT, RET, ENVID), 8689
 * (REQUIRETLS), 2034/3463 (enhanced status codes).
 *
 * Trust: every reply is hostile (see client-wire.ts for the parser's limits); a
 * protocol error ends the connection, never the process. The messages come
 * from our own spool; still, each command refuses CR, LF and NUL in its
 * values, and content is re-encoded so no bare CR or LF and no early
 * "CRLF.CRLF" can reach the wire (SMTP smuggling, RFC 5321 §4.5.2).
 *
 * Results, per recipient: 2xx to RCPT then the reply after the content
 * decides; RCPT 4xx temporary, 5xx permanent. code 0 marks a verdict of this
 * client, not a server reply. Decisions:
 * - Failures before any transaction (greeting other than 220, EHLO and HELO
 *   refused, 421, protocol errors, lost connection, timeouts, TLS problems)
 *   are temporary for every recipient: the scheduler tries the next MX or
 *   later (as Postfix does with smtp_skip_5xx_greeting). The server's reply
 *   is kept in code/status/text when there was one.
 * - What the message needs and this server lacks is refused here, nothing is
 *   sent for it, permanent with code 0: 8-bit content without 8BITMIME
 *   (5.6.3; no conversion to 7 bit is done here), SMTPUTF8 (5.6.7), SIZE
 *   (5.3.4), NUL in content or BINARYMIME (5.6.0 / 5.6.3), REQUIRETLS without
 *   TLS (5.7.10) or without the REQUIRETLS extension (5.7.30). These describe
 *   this server: the caller may try another MX before bouncing.
 * - A message whose sender cannot be put in a command is permanent 5.1.7;
 *   such a recipient is permanent 5.1.3 and the others go on.
 * - A 354 with no accepted recipient (pipelining) gets a lone "." (RFC 2920
 *   §3.1); a DATA refused after MAIL was accepted is followed by RSET.
 *
 * AUTH (options.auth, for a relay host): after the EHLO that follows
 * STARTTLS, "AUTH PLAIN <base64(NUL user NUL password)>" when the server
 * offers PLAIN; 235 goes on to the mail. Never over plaintext: without TLS
 * the connection ends before any AUTH, every recipient temporary 4.7.11
 * ("AUTH needs TLS"). Never over TLS whose certificate was not verified
 * (TlsInfo.verified, set by the host after the chain and the name check):
 * an active man in the middle would get the password; temporary 4.7.11
 * ("AUTH needs a verified certificate"), credentials not sent. PLAIN not offered: temporary 4.7.0. 535 (and any
 * other 5xx): temporary 4.7.8, "relay refused our credentials": wrong
 * credentials are the operator's configuration mistake, and a permanent
 * verdict would bounce every queued message for it; temporary keeps the
 * mail queued (the logs and delay notices show why) until it is fixed, and
 * queue.lifetime still bounces it in the end. 4xx: temporary. The password
 * never appears in results, errors or anything this class returns except
 * the bytes to send.
 *
 * LMTP (options.lmtp, RFC 2033): LHLO instead of EHLO (no HELO fall-back,
 * no STARTTLS: the server is local), and after the content one reply per
 * accepted recipient, in RCPT order (§4.2), each deciding its recipient.
 */
import type { Reply } from "./reply.ts";
import {
  NO_EXTENSIONS,
  authPlainCommand,
  ProtocolError,
  ReplyParser,
  checkValue,
  command,
  encodeData,
  mailCommand,
  needsSmtputf8,
  parseExtensions,
  rcptCommand,
  replyStatus,
  replyText,
  scanContent,
  type Extensions,
} from "./client-wire.ts";
import type { OutboundMessage, ClientOptions, Final, RecipientResult, TlsInfo, ConnectionFacts, SessionResult, ClientAction, Waiting } from "./client-types.ts";

export type { Extensions } from "./client-wire.ts";
export { encodeData, command } from "./client-wire.ts";
export { encodeXtext } from "./address.ts";

export type { OutboundMessage, TlsPolicy, ClientOptions, Final, RecipientResult, MessageResult, TlsInfo, ConnectionFacts, SessionResult, ClientAction, Waiting } from "./client-types.ts";

type Expect =
  | { readonly kind: "greeting" | "ehlo" | "helo" | "starttls" | "auth" | "auth-cancel" | "mail" | "data" | "dot" | "lone-dot" | "rset" | "probe" | "quit" }
  | { readonly kind: "rcpt" | "lmtp-dot"; readonly index: number };

interface Txn {
  readonly msg: number;
  readonly pipelined: boolean;
  /** Recipient indices to send RCPT for, in order. */
  readonly rcpts: readonly number[];
  readonly rcptLines: readonly Buffer[];
  next: number;
  mail?: Reply;
  readonly accepted: number[];
}

type Verdict = Omit<RecipientResult, "address">;

const local = (status: string, text: string, final: Final): Verdict => ({ code: 0, status, text, final });

function fromReply(r: Reply, final?: Final): Verdict {
  const f: Final = final ?? (r.code < 400 ? "delivered" : r.code < 500 ? "temporary" : "permanent");
  return { code: r.code, status: replyStatus(r), text: replyText(r), final: f };
}

const mailAccepted = (t: Txn): boolean => t.mail !== undefined && t.mail.code < 300;

const TLS_REQUIRED = "TLS required but not available";
export const AUTH_NEEDS_TLS = "AUTH needs TLS";
export const AUTH_REFUSED = "relay refused our credentials";
export const AUTH_NEEDS_VERIFIED_TLS = "AUTH needs a verified certificate";

export class ClientSession {
  private readonly opts: ClientOptions;
  private readonly parser: ReplyParser;
  private results: (Verdict | undefined)[][];
  /** The current batch: the constructor's messages, then each reuse()'s. */
  private messages: readonly OutboundMessage[];
  private readonly expects: Expect[] = [{ kind: "greeting" }];
  private state: "open" | "tls" | "idle" | "closed" = "open";
  /** Reused and no MAIL of the batch answered yet: a failure now is "stale" (see ConnectionFacts). */
  private probing = false;
  private stale = false;
  private greeting: Reply | undefined;
  private ext: Extensions = NO_EXTENSIONS;
  private esmtp = false;
  private tlsInfo: TlsInfo | undefined;
  private error: string | undefined;
  private txn: Txn | undefined;
  /** Index of the next message to start. */
  private nextMsg = 0;
  private replyCount = 0;
  /** The AUTH PLAIN command line, built once (it holds the secret: never logged, never in a result). */
  private readonly authLine: Buffer | undefined;
  private authed = false;

  constructor(opts: ClientOptions) {
    checkValue(opts.helo, "helo");
    if (!/^[\x21-\x7e]+$/.test(opts.helo)) throw new Error("helo name must be printable ASCII without spaces");
    if (opts.lmtp === true && opts.tls !== "none") throw new Error("LMTP runs without STARTTLS: tls must be \"none\"");
    this.authLine = opts.auth === undefined ? undefined : authPlainCommand(opts.auth.user, opts.auth.password);
    this.opts = opts;
    this.parser = new ReplyParser(opts.maxLineLength);
    this.messages = opts.messages;
    this.results = opts.messages.map((m) => m.envelope.recipients.map(() => undefined));
  }

  /** Parked after a batch (keepOpen), ready for reuse() or quit(). */
  get idle(): boolean {
    return this.state === "idle";
  }

  /**
   * The next batch over this idle connection: RSET first (the server's
   * state is unknown after the idle time), then the messages as usual. A
   * refusal or loss before the first MAIL is answered ends the connection
   * with `stale` set and every recipient temporary.
   */
  reuse(messages: readonly OutboundMessage[]): ClientAction[] {
    if (this.state !== "idle") throw new Error("reuse() needs an idle session");
    this.state = "open";
    this.messages = messages;
    this.results = messages.map((m) => m.envelope.recipients.map(() => undefined));
    this.nextMsg = 0;
    this.error = undefined;
    this.probing = true;
    this.stale = false;
    const out: ClientAction[] = [];
    this.send(out, command("RSET"), { kind: "probe" });
    return out;
  }

  /** Ends an idle connection politely: QUIT, then close. */
  quit(): ClientAction[] {
    if (this.state !== "idle") return [];
    this.state = "open";
    const out: ClientAction[] = [];
    this.send(out, command("QUIT"), { kind: "quit" });
    return out;
  }

  /** Waiting for the RSET that opens a reused connection (reuse()): the host may wait less than for a command. */
  get probe(): boolean {
    return this.expects[0]?.kind === "probe";
  }

  /** Replies consumed so far: the host restarts its timer when this moves. */
  get replies(): number {
    return this.replyCount;
  }

  /** What the session waits for now. */
  waitingFor(): Waiting {
    if (this.state === "closed") return "none";
    if (this.state === "tls") return "tls";
    const e = this.expects[0];
    if (e === undefined) return "none";
    return e.kind === "greeting" ? "greeting" : e.kind === "dot" || e.kind === "lmtp-dot" ? "data" : "reply";
  }

  feed(chunk: Buffer): ClientAction[] {
    if (this.state === "idle") {
      // Nothing is asked while idle: whatever comes (a 421 before a timeout close) ends the connection.
      this.state = "closed";
      return [{ kind: "close" }];
    }
    if (this.state !== "open") return []; // closed, or plaintext after 220 to STARTTLS: dropped
    const out: ClientAction[] = [];
    try {
      this.parser.append(chunk);
      while (this.state === "open") {
        const r = this.parser.next();
        if (r === undefined) break;
        this.replyCount++;
        this.onReply(r, out);
      }
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      this.fail(local("4.5.0", `protocol error: ${e.message}`, "temporary"), false, out);
    }
    return out;
  }

  /** The TLS handshake after STARTTLS succeeded: start over with EHLO (RFC 3207 §4.2). */
  tlsStarted(facts: TlsInfo): ClientAction[] {
    if (this.state !== "tls") return [];
    this.state = "open";
    this.tlsInfo = facts;
    this.ext = NO_EXTENSIONS;
    this.esmtp = false;
    this.authed = false;
    this.parser.discard();
    const out: ClientAction[] = [];
    this.send(out, command("EHLO", this.opts.helo), { kind: "ehlo" });
    return out;
  }

  /** The TLS handshake failed: the connection is unusable. */
  tlsFailed(reason: string): ClientAction[] {
    if (this.state === "closed") return [];
    const out: ClientAction[] = [];
    this.fail(local("4.7.0", `TLS handshake failed: ${reason}`, "temporary"), false, out);
    return out;
  }

  /** TLS is up but the host's policy (MTA-STS, DANE) refuses this peer: QUIT, send nothing. */
  tlsRejected(facts: TlsInfo, reason: string): ClientAction[] {
    if (this.state !== "tls") return [];
    this.state = "open";
    this.tlsInfo = facts;
    this.parser.discard();
    const out: ClientAction[] = [];
    this.fail(local("4.7.5", `TLS peer refused: ${reason}`, "temporary"), true, out);
    return out;
  }

  connectionLost(reason: string, status = "4.4.2"): ClientAction[] {
    if (this.state === "closed") return [];
    if (this.state === "idle") {
      this.state = "closed";
      return [{ kind: "close" }];
    }
    const out: ClientAction[] = [];
    if (this.expects[0]?.kind === "quit") this.finish(out);
    else this.fail(local(status, reason, "temporary"), false, out);
    return out;
  }

  timeout(): ClientAction[] {
    if (this.state === "closed") return [];
    const out: ClientAction[] = [];
    const w = this.waitingFor();
    const what = w === "greeting" ? "the greeting" : w === "data" ? "the reply to the message content" : w === "tls" ? "the TLS handshake" : "a reply";
    if (this.expects[0]?.kind === "quit") this.finish(out);
    else this.fail(local("4.4.2", `timeout waiting for ${what}`, "temporary"), false, out);
    return out;
  }

  /** The results so far (final once "done" was returned). */
  result(): SessionResult {
    const messages = this.messages.map((m, i) => ({
      recipients: m.envelope.recipients.map((r, j) => ({
        address: r.address,
        ...(this.results[i]?.[j] ?? local("4.4.2", "not attempted", "temporary")),
      })),
    }));
    const connection: ConnectionFacts = {
      ...(this.greeting ? { greeting: this.greeting } : {}),
      esmtp: this.esmtp,
      extensions: this.ext,
      ...(this.tlsInfo ? { tls: this.tlsInfo } : {}),
      ...(this.error !== undefined ? { error: this.error } : {}),
      ...(this.stale ? { stale: true } : {}),
    };
    return { messages, connection };
  }

  private send(out: ClientAction[], data: Buffer, ...expect: Expect[]): void {
    out.push({ kind: "send", data });
    this.expects.push(...expect);
  }

  private onReply(r: Reply, out: ClientAction[]): void {
    const e = this.expects.shift();
    if (e === undefined) throw new ProtocolError(`unexpected reply ${r.code}`);
    if (r.code === 421 && e.kind !== "quit") {
      // Service closing (RFC 5321 §3.8): whatever we wait for is lost.
      this.fail(fromReply(r, "temporary"), false, out);
      return;
    }
    switch (e.kind) {
      case "greeting":
        if (r.code !== 220) return this.fail(fromReply(r, "temporary"), true, out);
        this.greeting = r;
        return this.send(out, command(this.opts.lmtp === true ? "LHLO" : "EHLO", this.opts.helo), { kind: "ehlo" });
      case "ehlo":
        if (r.code >= 500 && this.opts.lmtp !== true) return this.send(out, command("HELO", this.opts.helo), { kind: "helo" });
        if (r.code >= 300) return this.fail(fromReply(r, "temporary"), true, out);
        this.esmtp = true;
        this.ext = parseExtensions(r);
        return this.afterHello(out);
      case "helo":
        if (r.code >= 300) return this.fail(fromReply(r, "temporary"), true, out);
        this.ext = NO_EXTENSIONS;
        return this.afterHello(out);
      case "starttls":
        if (r.code === 220) {
          // RFC 3207 §4.2 / CVE-2011-0411 class: anything after the 220 is dropped.
          this.parser.discard();
          this.state = "tls";
          out.push({ kind: "starttls" });
          return;
        }
        if (this.opts.tls === "required") return this.fail(local("4.7.10", `${TLS_REQUIRED}: STARTTLS refused (${r.code} ${replyText(r)})`, "temporary"), true, out);
        this.ext = { ...this.ext, starttls: false };
        return this.ready(out);
      case "auth":
        return this.onAuth(r, out);
      case "auth-cancel":
        return this.fail(local("4.7.0", "AUTH PLAIN: the server asked for more than the initial response", "temporary"), true, out);
      case "mail":
        return this.onMail(r, out);
      case "rcpt":
        return this.onRcpt(e.index, r, out);
      case "data":
        return this.onData(r, out);
      case "dot": {
        const t = this.txn;
        if (t === undefined || (r.code >= 300 && r.code < 400)) throw new ProtocolError(`unexpected reply ${r.code} after the content`);
        for (const j of t.accepted) this.set(t.msg, j, fromReply(r));
        this.txn = undefined;
        return this.nextMessage(out);
      }
      case "lmtp-dot": {
        // RFC 2033 §4.2: one reply per accepted recipient, in RCPT order.
        const t = this.txn;
        if (t === undefined || (r.code >= 300 && r.code < 400)) throw new ProtocolError(`unexpected reply ${r.code} after the content`);
        this.set(t.msg, e.index, fromReply(r));
        if (this.expects[0]?.kind === "lmtp-dot") return;
        this.txn = undefined;
        return this.nextMessage(out);
      }
      case "lone-dot":
        this.txn = undefined;
        return this.nextMessage(out);
      case "rset":
        if (r.code >= 300) return this.fail(local("4.5.0", `RSET refused: ${r.code} ${replyText(r)}`, "temporary"), true, out);
        return this.nextMessage(out);
      case "probe":
        if (r.code >= 300) return this.fail(local("4.4.2", `cached connection refused RSET: ${r.code} ${replyText(r)}`, "temporary"), true, out);
        return this.nextMessage(out);
      case "quit":
        return this.finish(out);
    }
  }

  private afterHello(out: ClientAction[]): void {
    if (this.tlsInfo === undefined && this.opts.tls !== "none") {
      if (this.ext.starttls) return this.send(out, command("STARTTLS"), { kind: "starttls" });
      if (this.opts.tls === "required") return this.fail(local("4.7.10", `${TLS_REQUIRED}: STARTTLS not offered`, "temporary"), true, out);
    }
    this.ready(out);
  }

  /** Greeted and TLS settled: AUTH when asked for, then the mail. */
  private ready(out: ClientAction[]): void {
    if (this.authLine === undefined || this.authed) return this.nextMessage(out);
    // Never a password over plaintext, whatever the TLS policy said.
    if (this.tlsInfo === undefined) return this.fail(local("4.7.11", `${AUTH_NEEDS_TLS}: TLS is not active, credentials not sent`, "temporary"), true, out);
    if (this.tlsInfo.verified !== true) {
      const why = this.tlsInfo.error !== undefined ? ` (${this.tlsInfo.error})` : "";
      return this.fail(local("4.7.11", `${AUTH_NEEDS_VERIFIED_TLS}: the relay's certificate was not verified${why}, credentials not sent`, "temporary"), true, out);
    }
    if (!this.ext.auth.includes("PLAIN")) {
      const offered = this.ext.auth.length > 0 ? `offers ${this.ext.auth.join(" ")}` : "offers no AUTH";
      return this.fail(local("4.7.0", `relay does not offer AUTH PLAIN (${offered})`, "temporary"), true, out);
    }
    this.send(out, this.authLine, { kind: "auth" });
  }

  private onAuth(r: Reply, out: ClientAction[]): void {
    if (r.code === 235) {
      this.authed = true;
      return this.nextMessage(out);
    }
    // A challenge after an initial response: cancel (RFC 4954 §4), then QUIT.
    if (r.code === 334) return this.send(out, command("*"), { kind: "auth-cancel" });
    if (r.code < 400) throw new ProtocolError(`unexpected reply ${r.code} to AUTH`);
    const said = `${r.code} ${replyStatus(r)} ${replyText(r)}`;
    // 5xx: temporary all the same (see the header): a configuration mistake must not bounce mail.
    if (r.code >= 500) return this.fail({ code: r.code, status: r.code === 535 ? "4.7.8" : "4.7.0", text: `${r.code === 535 ? AUTH_REFUSED : "relay refused AUTH PLAIN"}: ${said}`, final: "temporary" }, true, out);
    this.fail({ code: r.code, status: replyStatus(r), text: `AUTH PLAIN failed: ${said}`, final: "temporary" }, true, out);
  }

  private set(msg: number, rcpt: number, v: Verdict): void {
    const row = this.results[msg];
    if (row !== undefined && row[rcpt] === undefined) row[rcpt] = v;
  }

  private setAll(msg: number, v: Verdict): void {
    const n = this.results[msg]?.length ?? 0;
    for (let j = 0; j < n; j++) this.set(msg, j, v);
  }

  /** Starts the next message that can be sent here, or QUIT when there is none. */
  private nextMessage(out: ClientAction[]): void {
    while (this.nextMsg < this.messages.length) {
      const i = this.nextMsg++;
      const m = this.messages[i] as OutboundMessage;
      const refusal = this.check(m);
      if (refusal !== undefined) {
        this.setAll(i, refusal);
        continue;
      }
      let mailLine: Buffer;
      try {
        mailLine = mailCommand(m.envelope, m.content, m.requireTls === true, this.ext);
      } catch (e) {
        this.setAll(i, local("5.1.7", `cannot send sender address: ${(e as Error).message}`, "permanent"));
        continue;
      }
      const rcpts: number[] = [];
      const rcptLines: Buffer[] = [];
      m.envelope.recipients.forEach((r, j) => {
        try {
          rcptLines.push(rcptCommand(r, this.ext));
          rcpts.push(j);
        } catch (e) {
          this.set(i, j, local("5.1.3", `cannot send recipient address: ${(e as Error).message}`, "permanent"));
        }
      });
      if (rcpts.length === 0) continue;
      const t: Txn = { msg: i, pipelined: this.ext.pipelining, rcpts, rcptLines, next: 0, accepted: [] };
      this.txn = t;
      if (!t.pipelined) return this.send(out, mailLine, { kind: "mail" });
      // RFC 2920: MAIL, every RCPT and DATA in one write; replies come in order.
      t.next = rcpts.length;
      const expects: Expect[] = [{ kind: "mail" }, ...rcpts.map((index) => ({ kind: "rcpt" as const, index })), { kind: "data" }];
      return this.send(out, Buffer.concat([mailLine, ...rcptLines, command("DATA")]), ...expects);
    }
    this.probing = false;
    // Parked only in step: bytes after the batch's last reply (nothing was asked) would be read as the
    // next command's reply; such a connection QUITs instead.
    if (this.opts.keepOpen === true && this.parser.empty) {
      // Parked: the results go out now, the connection stays for reuse() or quit().
      this.state = "idle";
      out.push({ kind: "done", result: this.result() });
      return;
    }
    this.send(out, command("QUIT"), { kind: "quit" });
  }

  /** What the message needs that this connection lacks; undefined when it can go. */
  private check(m: OutboundMessage): Verdict | undefined {
    const env = m.envelope;
    if (m.requireTls === true) {
      if (this.tlsInfo === undefined) return local("5.7.10", "REQUIRETLS: TLS is not active on this connection", "permanent");
      if (!this.ext.requireTls) return local("5.7.30", "REQUIRETLS support required: remote server does not offer REQUIRETLS", "permanent");
    }
    if (env.body === "BINARYMIME") return local("5.6.3", "BINARYMIME content cannot be sent by this client", "permanent");
    const { eightBit, nul } = scanContent(m.content);
    if (nul) return local("5.6.0", "Message contains NUL characters", "permanent");
    if (eightBit && !this.ext.eightBitMime) return local("5.6.3", "Remote server does not support 8BITMIME", "permanent");
    if (needsSmtputf8(m.envelope) && !this.ext.smtputf8) return local("5.6.7", "Remote server does not support SMTPUTF8", "permanent");
    const max = this.ext.size;
    if (max !== undefined && max > 0 && m.content.length > max) {
      return local("5.3.4", `Message too big for remote server (${m.content.length} > ${max} bytes)`, "permanent");
    }
    return undefined;
  }

  private onMail(r: Reply, out: ClientAction[]): void {
    const t = this.txnOrThrow();
    if (r.code >= 300 && r.code < 400) throw new ProtocolError(`unexpected reply ${r.code} to MAIL`);
    if (this.probing && r.code >= 400) {
      // The first MAIL over a reused connection refused: the connection, not the message, is suspect.
      return this.fail(local("4.4.2", `cached connection refused MAIL: ${r.code} ${replyText(r)}`, "temporary"), false, out);
    }
    this.probing = false;
    t.mail = r;
    if (r.code < 300) {
      if (!t.pipelined) this.sendNextRcpt(t, out);
      return;
    }
    this.setAll(t.msg, fromReply(r));
    if (!t.pipelined) {
      // No transaction was opened: go on with the next message.
      this.txn = undefined;
      this.nextMessage(out);
    }
    // Pipelined: the RCPT and DATA replies still come; they are read and ignored.
  }

  private onRcpt(j: number, r: Reply, out: ClientAction[]): void {
    const t = this.txnOrThrow();
    if (r.code >= 300 && r.code < 400) throw new ProtocolError(`unexpected reply ${r.code} to RCPT`);
    if (mailAccepted(t)) {
      if (r.code < 300) t.accepted.push(j);
      else this.set(t.msg, j, fromReply(r));
    }
    if (!t.pipelined) this.sendNextRcpt(t, out);
  }

  private sendNextRcpt(t: Txn, out: ClientAction[]): void {
    const line = t.rcptLines[t.next];
    const index = t.rcpts[t.next];
    if (line !== undefined && index !== undefined) {
      t.next++;
      return this.send(out, line, { kind: "rcpt", index });
    }
    if (t.accepted.length > 0) return this.send(out, command("DATA"), { kind: "data" });
    // No recipient accepted: end the transaction without content.
    this.send(out, command("RSET"), { kind: "rset" });
    this.txn = undefined;
  }

  private onData(r: Reply, out: ClientAction[]): void {
    const t = this.txnOrThrow();
    if (r.code === 354) {
      if (t.accepted.length === 0) return this.send(out, Buffer.from(".\r\n"), { kind: "lone-dot" });
      const m = this.messages[t.msg] as OutboundMessage;
      if (this.opts.lmtp === true) return this.send(out, encodeData(m.content), ...t.accepted.map((index) => ({ kind: "lmtp-dot" as const, index })));
      return this.send(out, encodeData(m.content), { kind: "dot" });
    }
    if (r.code < 400) throw new ProtocolError(`unexpected reply ${r.code} to DATA`);
    for (const j of t.accepted) this.set(t.msg, j, fromReply(r));
    this.txn = undefined;
    if (mailAccepted(t)) return this.send(out, command("RSET"), { kind: "rset" });
    this.nextMessage(out);
  }

  private txnOrThrow(): Txn {
    if (this.txn === undefined) throw new ProtocolError("reply outside a transaction");
    return this.txn;
  }

  /**
   * Ends the connection: every recipient not yet decided gets `v`. polite:
   * the stream is still in step, so QUIT is sent and its reply awaited.
   */
  private fail(v: Verdict, polite: boolean, out: ClientAction[]): void {
    this.error ??= `${v.code === 0 ? "" : `${v.code} `}${v.status} ${v.text}`;
    if (this.probing) this.stale = true;
    this.probing = false;
    for (let i = 0; i < this.results.length; i++) this.setAll(i, v);
    this.txn = undefined;
    this.nextMsg = this.messages.length;
    this.expects.length = 0;
    if (polite && this.state === "open") return this.send(out, command("QUIT"), { kind: "quit" });
    this.finish(out);
  }

  private finish(out: ClientAction[]): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.expects.length = 0;
    this.parser.discard();
    out.push({ kind: "done", result: this.result() }, { kind: "close" });
  }
}
