/**
 * The I/O-free SMTP server session (RFC 5321, with RFC 1870 SIZE, RFC 2920
 * PIPELINING, RFC 3030 CHUNKING, RFC 3207 STARTTLS, RFC 3461 DSN, RFC 6152
 * 8BITMIME, RFC 6531 SMTPUTF8, RFC 2034 ENHANCEDSTATUSCODES).
 *
 * Bytes in (feed), actions out: text to send, "start TLS now", "close", or a
 * question the host must answer (is this sender / recipient acceptable? store
 * this message) before the session goes on. It never touches a socket, a file
 * or a clock; the adapter in src/server does that.
 *
 * Trust: everything fed in is hostile. Lines end only on CRLF (policy
 * "normalize" also takes a bare CR or LF, "reject" refuses the line); each
 * line is capped; over-long lines and over-size content are read and discarded
 * before the reply, so the stream never desynchronises. After STARTTLS every
 * byte already received is thrown away (CVE-2011-0411 class). While a question
 * is open no input is processed; input that keeps coming is capped.
 */
import type { BareLineEndingPolicy, EightBitPolicy } from "../config/types.ts";
import type { Limits } from "../limits/index.ts";
import type { Envelope, EnvelopeRecipient, RecipientDsn } from "../queue/types.ts";
import { parsePathAndParams, type ParsedPath } from "./address.ts";
import { mailParams, rcptParams } from "./params.ts";
import { COMMANDS, FOREIGN_VERBS } from "./commands.ts";
import { BdatReceiver, DataReceiver, type ContentResult } from "./data.ts";
import { formatReply, reply, type Reply } from "./reply.ts";

export type TlsMode = "none" | "available" | "active";

export interface SessionOptions {
  /** Our name in the greeting and EHLO reply. */
  readonly hostname: string;
  readonly limits: Pick<Limits, "max_line_length" | "max_message_size" | "max_recipients" | "max_errors" | "max_commands">;
  readonly bareLineEndings: BareLineEndingPolicy;
  readonly eightBitWithout8bitmime: EightBitPolicy;
  /** none: no STARTTLS offered; available: offered; active: implicit TLS. */
  readonly tls: TlsMode;
}

/** What the session asks its host; answer with session.answer(reply). */
export type Question =
  | { readonly type: "mail"; readonly path: ParsedPath; readonly envelope: Envelope }
  | { readonly type: "rcpt"; readonly path: ParsedPath; readonly dsn: RecipientDsn; readonly envelope: Envelope }
  | { readonly type: "message"; readonly envelope: Envelope; readonly content: Buffer; readonly eightBit: boolean };

export type Action =
  | { readonly kind: "send"; readonly data: string }
  | { readonly kind: "starttls" }
  | { readonly kind: "close" }
  | { readonly kind: "ask"; readonly question: Question };

interface Txn {
  mailFrom: string;
  recipients: EnvelopeRecipient[];
  body?: "7BIT" | "8BITMIME";
  smtputf8: boolean;
  ret?: "FULL" | "HDRS";
  envid?: string;
  /** BDAT was used: DATA is no longer allowed in this transaction. */
  bdat?: BdatReceiver;
}

type Mode = "command" | "data" | "bdat" | "waiting" | "tls-pending" | "closed";

const CR = 0x0d;
const LF = 0x0a;
/** Input kept while a question is open, beyond which the client is cut off. */
const MAX_PENDING = 1024 * 1024;

const R = {
  ok: reply(250, "2.0.0", "Ok"),
  bye: reply(221, "2.0.0", "Bye"),
  lineTooLong: reply(500, "5.5.2", "Line too long"),
  bareEol: reply(500, "5.5.2", "Bare CR or LF in command line not allowed; use CRLF"),
  badBytes: reply(500, "5.5.2", "Invalid characters in command line"),
  unknown: reply(500, "5.5.2", "Command unrecognized"),
  heloFirst: reply(503, "5.5.1", "Send EHLO or HELO first"),
  ehloFirst: reply(503, "5.5.1", "Send EHLO first"),
  nested: reply(503, "5.5.1", "Nested MAIL command"),
  mailFirst: reply(503, "5.5.1", "Send MAIL first"),
  noRcpt: reply(554, "5.5.1", "No valid recipients"),
  dataAfterBdat: reply(503, "5.5.1", "DATA not allowed after BDAT"),
  noArgs: (verb: string) => reply(501, "5.5.4", `${verb} takes no arguments`),
  tooManyErrors: reply(421, "4.7.0", "Too many errors, closing connection"),
  tooManyCommands: reply(421, "4.7.0", "Too many commands, closing connection"),
  foreign: reply(421, "4.7.0", "This is an SMTP server, closing connection"),
  tooBig: reply(552, "5.3.4", "Message size exceeds fixed maximum message size"),
  bareContent: reply(550, "5.6.0", "Message contains bare CR or LF; lines must end with CRLF; closing connection"),
  nulContent: reply(550, "5.6.0", "Message contains NUL characters; closing connection"),
  eightBit: reply(550, "5.6.1", "8-bit content requires BODY=8BITMIME"),
  utf8Needed: reply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8"),
  tooManyRcpts: reply(452, "4.5.3", "Too many recipients"),
  timeout: reply(421, "4.4.2", "Timeout, closing connection"),
  shutdown: reply(421, "4.3.2", "Server shutting down, try again later"),
  overflow: reply(421, "4.7.0", "Too much pipelined input, closing connection"),
} as const;

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });

export class SmtpSession {
  private readonly opts: SessionOptions;
  private mode: Mode = "command";
  private tls: TlsMode;
  /** Client's EHLO/HELO name; undefined until given (and again after STARTTLS). */
  private heloName: string | undefined;
  private esmtp = false;
  private txn: Txn | undefined;
  private data: DataReceiver | undefined;
  /** Unprocessed input (a partial line, or input that came while waiting). */
  private leftover: Buffer = Buffer.alloc(0);
  /** Discarding the rest of an over-long command line. */
  private discardingLine = false;
  private discardSawCr = false;
  private errors = 0;
  private commands = 0;
  private out = "";
  private actions: Action[] = [];
  private pendingQuestion: Question | undefined;

  constructor(opts: SessionOptions) {
    this.opts = opts;
    this.tls = opts.tls;
  }

  /** The greeting; call once when the connection (or the implicit TLS handshake) is up. */
  greeting(): Action[] {
    this.emit(reply(220, "", `${this.opts.hostname} ESMTP`));
    return this.flush();
  }

  /** Client name from EHLO/HELO (undefined before). */
  get helo(): string | undefined {
    return this.heloName;
  }

  /** "SMTP", "ESMTP" or "ESMTPS" (RFC 3848), for Received headers. */
  get protocol(): string {
    if (!this.esmtp) return "SMTP";
    return this.tls === "active" ? "ESMTPS" : "ESMTP";
  }

  get closed(): boolean {
    return this.mode === "closed";
  }

  /** True while the session waits for an answer: the adapter should stop reading. */
  get waiting(): boolean {
    return this.mode === "waiting";
  }

  /** True while content (DATA or BDAT) is being received: the data timeout applies. */
  get receivingContent(): boolean {
    return this.mode === "data" || this.mode === "bdat";
  }

  /** Feeds bytes from the client. */
  feed(chunk: Buffer): Action[] {
    switch (this.mode) {
      case "closed":
      case "tls-pending":
        return [];
      case "waiting":
        if (this.leftover.length + chunk.length > MAX_PENDING) {
          this.leftover = Buffer.alloc(0);
          this.closeWith(R.overflow);
          return this.flush();
        }
        this.leftover = this.leftover.length === 0 ? chunk : Buffer.concat([this.leftover, chunk]);
        return [];
      default: {
        const buf = this.leftover.length === 0 ? chunk : Buffer.concat([this.leftover, chunk]);
        this.leftover = Buffer.alloc(0);
        this.run(buf, 0);
        return this.flush();
      }
    }
  }

  /**
   * Answers the open question; the session then goes on with buffered input.
   * For an accepted RCPT, `address` replaces the recipient as given (e.g. the
   * host's normalised form of <postmaster>).
   */
  answer(r: Reply, address?: string): Action[] {
    if (this.mode === "closed") return [];
    const q = this.pendingQuestion;
    if (this.mode !== "waiting" || q === undefined) throw new Error("no question is open");
    this.pendingQuestion = undefined;
    this.mode = "command";
    switch (q.type) {
      case "mail":
        if (r.code < 300) this.txn = { mailFrom: q.envelope.mailFrom, recipients: [], body: q.envelope.body as Txn["body"], smtputf8: q.envelope.smtputf8, ret: q.envelope.ret, envid: q.envelope.envid };
        break;
      case "rcpt":
        if (r.code < 300 && this.txn) this.txn.recipients.push({ address: address ?? q.path.address, dsn: q.dsn });
        break;
      case "message":
        this.txn = undefined;
        break;
    }
    this.say(r);
    if (this.mode === "command" && this.leftover.length > 0) {
      const buf = this.leftover;
      this.leftover = Buffer.alloc(0);
      this.run(buf, 0);
    }
    return this.flush();
  }

  /** The TLS handshake after STARTTLS finished: state is reset (RFC 3207 §4.2). */
  tlsStarted(): Action[] {
    if (this.mode !== "tls-pending") throw new Error("STARTTLS was not requested");
    this.tls = "active";
    this.mode = "command";
    this.heloName = undefined;
    this.esmtp = false;
    this.txn = undefined;
    this.leftover = Buffer.alloc(0);
    return [];
  }

  /** The adapter's idle or data timer fired. */
  timeout(): Action[] {
    if (this.mode === "closed") return [];
    this.closeWith(R.timeout);
    return this.flush();
  }

  /** The server is stopping. */
  shutdown(): Action[] {
    if (this.mode === "closed") return [];
    this.closeWith(R.shutdown);
    return this.flush();
  }

  // ---- processing ----

  private run(buf: Buffer, pos: number): void {
    while (pos < buf.length) {
      switch (this.mode) {
        case "command":
          pos = this.readCommand(buf, pos);
          if (pos < 0) return; // need more input; leftover saved
          break;
        case "data": {
          const rx = this.data as DataReceiver;
          pos = rx.push(buf, pos);
          if (rx.done) this.finishData(rx.result());
          break;
        }
        case "bdat":
          pos = this.readBdat(buf, pos);
          break;
        case "waiting":
          this.leftover = Buffer.from(buf.subarray(pos));
          return;
        case "tls-pending":
        case "closed":
          // Everything after STARTTLS (or after close) is discarded.
          return;
      }
    }
  }

  /** Reads one command line from buf at pos; returns the new position, or -1 when more input is needed. */
  private readCommand(buf: Buffer, pos: number): number {
    const max = this.opts.limits.max_line_length;
    if (this.discardingLine) return this.skipLongLine(buf, pos);
    const normalize = this.opts.bareLineEndings === "normalize";
    let end = -1; // index of first byte of the line ending
    let next = -1; // index after the line ending
    if (normalize) {
      for (let i = pos; i < buf.length; i++) {
        const b = buf[i];
        if (b === LF) {
          end = i;
          next = i + 1;
          break;
        }
        if (b === CR) {
          if (i + 1 >= buf.length) break; // need to see what follows the CR
          end = i;
          next = buf[i + 1] === LF ? i + 2 : i + 1;
          break;
        }
      }
    } else {
      const i = buf.indexOf("\r\n", pos, "latin1");
      if (i >= 0) {
        end = i;
        next = i + 2;
      }
    }
    if (end < 0) {
      if (buf.length - pos >= max) {
        // Over-long: drop what we have, discard up to the next line end, then reply.
        this.discardingLine = true;
        this.discardSawCr = buf[buf.length - 1] === CR;
        return buf.length;
      }
      this.leftover = Buffer.from(buf.subarray(pos));
      return -1;
    }
    if (end - pos + 2 > max) {
      this.say(R.lineTooLong);
      return next;
    }
    this.command(buf.subarray(pos, end));
    return next;
  }

  /** Discards input until the end of an over-long line, then replies. */
  private skipLongLine(buf: Buffer, pos: number): number {
    const normalize = this.opts.bareLineEndings === "normalize";
    for (let i = pos; i < buf.length; i++) {
      const b = buf[i];
      if (this.discardSawCr) {
        this.discardSawCr = false;
        if (b === LF) return this.endLongLine(i + 1);
        if (normalize) return this.endLongLine(i); // a bare CR ended it
      }
      if (b === CR) this.discardSawCr = true;
      else if (b === LF && normalize) return this.endLongLine(i + 1);
    }
    return buf.length;
  }

  private endLongLine(next: number): number {
    this.discardingLine = false;
    this.discardSawCr = false;
    this.say(R.lineTooLong);
    return next;
  }

  private command(raw: Buffer): void {
    this.commands++;
    if (this.commands > this.opts.limits.max_commands) {
      this.closeWith(R.tooManyCommands);
      return;
    }
    if (raw.includes(CR) || raw.includes(LF)) {
      this.say(R.bareEol);
      return;
    }
    if (raw.includes(0)) {
      this.say(R.badBytes);
      return;
    }
    let line: string;
    try {
      line = STRICT_UTF8.decode(raw);
    } catch {
      this.say(R.badBytes);
      return;
    }
    const sp = line.indexOf(" ");
    const verb = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
    const arg = sp < 0 ? "" : line.slice(sp + 1);
    const spec = COMMANDS.get(verb);
    if (spec === undefined) {
      if (FOREIGN_VERBS.has(verb)) this.closeWith(R.foreign);
      else this.say(R.unknown);
      return;
    }
    if (spec.needsHelo && this.heloName === undefined) {
      // BDAT must still consume its chunk to stay in sync.
      if (verb === "BDAT") return this.bdat(arg, R.heloFirst);
      this.say(R.heloFirst);
      return;
    }
    if (spec.esmtpOnly && !this.esmtp) {
      if (verb === "BDAT") return this.bdat(arg, R.ehloFirst);
      this.say(R.ehloFirst);
      return;
    }
    switch (spec.verb) {
      case "EHLO":
      case "HELO":
        return this.ehlo(arg, spec.verb === "EHLO");
      case "MAIL":
        return this.mail(arg);
      case "RCPT":
        return this.rcpt(arg);
      case "DATA":
        return this.dataCmd(arg);
      case "BDAT":
        return this.bdat(arg, undefined);
      case "RSET":
        if (arg.trim() !== "") return this.say(R.noArgs("RSET"));
        this.txn = undefined;
        return this.say(R.ok);
      case "NOOP":
        return this.say(R.ok);
      case "QUIT":
        this.emit(R.bye);
        this.close();
        return;
      case "HELP":
        return this.say(reply(214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY STARTTLS"));
      case "VRFY":
        if (arg.trim() === "") return this.say(reply(501, "5.5.4", "Syntax: VRFY address"));
        return this.say(reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"));
      case "EXPN":
        return this.say(reply(502, "5.5.1", "EXPN not available"));
      case "STARTTLS":
        return this.starttls(arg);
      case "AUTH":
        return this.say(reply(502, "5.5.1", "AUTH not available on this service"));
    }
  }

  private ehlo(arg: string, extended: boolean): void {
    const name = arg.trim();
    if (name === "" || name.length > 255 || /[\s\x00-\x1f\x7f]/.test(name)) {
      this.say(reply(501, "5.5.4", `Syntax: ${extended ? "EHLO" : "HELO"} hostname`));
      return;
    }
    this.heloName = name;
    this.esmtp = extended;
    this.txn = undefined;
    if (!extended) {
      this.say(reply(250, "", this.opts.hostname));
      return;
    }
    const lines = [
      `${this.opts.hostname} greets ${name}`,
      "PIPELINING",
      `SIZE ${this.opts.limits.max_message_size}`,
      "8BITMIME",
      "SMTPUTF8",
      "ENHANCEDSTATUSCODES",
      "CHUNKING",
      "DSN",
    ];
    if (this.tls === "available") lines.push("STARTTLS");
    this.say(reply(250, "", ...lines));
  }

  private mail(arg: string): void {
    if (this.txn) return this.say(R.nested);
    if (!/^FROM:/i.test(arg)) return this.say(reply(501, "5.5.4", "Syntax: MAIL FROM:<address>"));
    const parsed = parsePathAndParams(arg.slice(5), true, false);
    if ("code" in parsed) return this.say(parsed);
    const { path, params } = parsed;
    if (params.size > 0 && !this.esmtp) return this.say(reply(555, "5.5.4", "Parameters need EHLO"));
    const mp = mailParams(params, this.opts.limits.max_message_size);
    if ("code" in mp) return this.say(mp);
    const { body, smtputf8, ret, envid } = mp;
    if (path.utf8 && !smtputf8) return this.say(R.utf8Needed);
    const envelope: Envelope = { mailFrom: path.address, recipients: [], body, smtputf8, ret, envid };
    this.ask({ type: "mail", path, envelope });
  }

  private rcpt(arg: string): void {
    const txn = this.txn;
    if (!txn) return this.say(R.mailFirst);
    if (!/^TO:/i.test(arg)) return this.say(reply(501, "5.5.4", "Syntax: RCPT TO:<address>"));
    const parsed = parsePathAndParams(arg.slice(3), false, true);
    if ("code" in parsed) return this.say(parsed);
    const { path, params } = parsed;
    if (params.size > 0 && !this.esmtp) return this.say(reply(555, "5.5.4", "Parameters need EHLO"));
    const dsn = rcptParams(params);
    if ("code" in dsn) return this.say(dsn);
    if (path.utf8 && !txn.smtputf8) return this.say(R.utf8Needed);
    if (txn.recipients.length >= this.opts.limits.max_recipients) return this.say(R.tooManyRcpts);
    this.ask({ type: "rcpt", path, dsn, envelope: this.envelope(txn) });
  }

  private dataCmd(arg: string): void {
    if (arg.trim() !== "") return this.say(R.noArgs("DATA"));
    const txn = this.txn;
    if (!txn) return this.say(R.mailFirst);
    if (txn.bdat) return this.say(R.dataAfterBdat);
    if (txn.recipients.length === 0) return this.say(R.noRcpt);
    this.emit(reply(354, "", "End data with <CR><LF>.<CR><LF>"));
    this.data = new DataReceiver(this.opts.limits.max_message_size, this.opts.bareLineEndings);
    this.mode = "data";
  }

  private finishData(result: ContentResult): void {
    this.data = undefined;
    this.mode = "command";
    this.finishContent(result);
  }

  /** Checks finished content and asks the host to store it. */
  private finishContent(result: ContentResult): void {
    const txn = this.txn;
    if (!txn) return;
    const problem = this.contentProblem(result, txn);
    if (problem) {
      this.txn = undefined;
      this.say(problem);
      // A client that sends bare line endings or NUL in content is either
      // broken or probing for smuggling: whatever it sends next is not trusted.
      if (result.problem === "bare-line-ending" || result.problem === "nul") this.close();
      return;
    }
    this.ask({ type: "message", envelope: this.envelope(txn), content: result.content, eightBit: result.eightBit });
  }

  private contentProblem(result: ContentResult, txn: Txn): Reply | undefined {
    switch (result.problem) {
      case "size":
        return R.tooBig;
      case "bare-line-ending":
        return R.bareContent;
      case "nul":
        return R.nulContent;
      case undefined:
        break;
    }
    if (result.eightBit && this.opts.eightBitWithout8bitmime === "reject" && txn.body !== "8BITMIME" && !txn.smtputf8) {
      return R.eightBit;
    }
    return undefined;
  }

  // ---- BDAT (RFC 3030) ----

  private bdatLast = false;
  /** The reply to give after the chunk when the command itself failed. */
  private bdatError: Reply | undefined;
  private bdatDiscard: BdatReceiver | undefined;

  /**
   * BDAT: the chunk is always read to its end before the reply, even when the
   * command fails, so the stream stays in sync. A size that cannot be parsed
   * leaves no way to find the chunk's end: the connection is closed.
   */
  private bdat(arg: string, error: Reply | undefined): void {
    const m = /^(\d{1,15})( +LAST)? *$/i.exec(arg);
    if (!m) {
      this.closeWith(reply(501, "5.5.4", "Syntax: BDAT size [LAST]; closing connection"));
      return;
    }
    const size = Number(m[1]);
    this.bdatLast = m[2] !== undefined;
    let err = error;
    const txn = this.txn;
    if (!err && !txn) err = R.mailFirst;
    if (!err && txn && txn.recipients.length === 0) err = R.noRcpt;
    this.bdatError = err;
    if (err || !txn) {
      this.bdatDiscard = new BdatReceiver(0, "normalize");
      this.bdatDiscard.startChunk(size);
    } else {
      txn.bdat ??= new BdatReceiver(this.opts.limits.max_message_size, this.opts.bareLineEndings);
      txn.bdat.startChunk(size);
    }
    this.mode = "bdat";
    if (size === 0) this.bdatChunkDone();
  }

  private readBdat(buf: Buffer, pos: number): number {
    const rx = this.bdatDiscard ?? this.txn?.bdat;
    if (!rx) {
      this.mode = "command";
      return pos;
    }
    const next = rx.push(buf, pos);
    if (rx.remaining === 0) this.bdatChunkDone();
    return next;
  }

  private bdatChunkDone(): void {
    this.mode = "command";
    if (this.bdatError || this.bdatDiscard) {
      const err = this.bdatError ?? R.mailFirst;
      this.bdatDiscard = undefined;
      this.bdatError = undefined;
      this.txn = undefined;
      this.say(err);
      return;
    }
    const txn = this.txn as Txn;
    const rx = txn.bdat as BdatReceiver;
    if (this.bdatLast) {
      this.finishContent(rx.result());
      return;
    }
    // Fail early on a problem so the client stops sending chunks.
    const problem = rx.problem;
    if (problem) {
      this.finishContent(rx.result());
      return;
    }
    this.say(reply(250, "2.0.0", "Chunk received"));
  }

  private starttls(arg: string): void {
    if (arg.trim() !== "") return this.say(R.noArgs("STARTTLS"));
    if (this.tls === "active") return this.say(reply(503, "5.5.1", "TLS already active"));
    if (this.tls === "none") return this.say(reply(454, "4.7.0", "TLS not available"));
    this.emit(reply(220, "2.0.0", "Ready to start TLS"));
    this.mode = "tls-pending";
    this.txn = undefined;
    // Whatever the client sent after STARTTLS in plaintext is thrown away.
    this.leftover = Buffer.alloc(0);
    this.actions.push({ kind: "send", data: this.out }, { kind: "starttls" });
    this.out = "";
  }

  // ---- helpers ----

  private envelope(txn: Txn): Envelope {
    return {
      mailFrom: txn.mailFrom,
      recipients: txn.recipients.slice(),
      ...(txn.body ? { body: txn.body } : {}),
      smtputf8: txn.smtputf8,
      ...(txn.ret ? { ret: txn.ret } : {}),
      ...(txn.envid !== undefined ? { envid: txn.envid } : {}),
    };
  }

  private ask(q: Question): void {
    this.pendingQuestion = q;
    this.mode = "waiting";
    if (this.out) this.actions.push({ kind: "send", data: this.out });
    this.out = "";
    this.actions.push({ kind: "ask", question: q });
  }

  /** Sends a reply to a command, counting errors. */
  private say(r: Reply): void {
    this.emit(r);
    if (r.code >= 400 && r.code !== 421) {
      this.errors++;
      if (this.errors >= this.opts.limits.max_errors) this.closeWith(R.tooManyErrors);
    } else if (r.code === 421) {
      this.close();
    }
  }

  private emit(r: Reply): void {
    if (this.mode === "closed") return;
    this.out += formatReply(r);
  }

  private closeWith(r: Reply): void {
    this.emit(r);
    this.close();
  }

  private close(): void {
    if (this.mode === "closed") return;
    this.mode = "closed";
    this.leftover = Buffer.alloc(0);
    this.data = undefined;
    this.txn = undefined;
    this.pendingQuestion = undefined;
  }

  private flush(): Action[] {
    if (this.out) this.actions.push({ kind: "send", data: this.out });
    this.out = "";
    if (this.mode === "closed" && !this.actions.some((a) => a.kind === "close")) this.actions.push({ kind: "close" });
    const a = this.actions;
    this.actions = [];
    return a;
  }
}
