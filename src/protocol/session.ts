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
import type { Envelope, EnvelopeRecipient } from "../queue/types.ts";
import { parsePathAndParams } from "./address.ts";
import { decodeSaslLine, parseAuthCommand } from "./sasl-frame.ts";
import { mailParams, rcptParams } from "./params.ts";
import { COMMANDS, FOREIGN_VERBS } from "./commands.ts";
import { BdatReceiver, DataReceiver, type ContentResult } from "./data.ts";
import { formatReply, reply, type Reply } from "./reply.ts";
import { LineReader } from "./lines.ts";
import { R } from "./replies.ts";

export type { Action, AuthOptions, Question, SessionOptions, TlsFacts, TlsMode } from "./session-types.ts";
import type { Action, Question, SessionOptions, TlsFacts, TlsMode } from "./session-types.ts";

interface Txn {
  mailFrom: string;
  recipients: EnvelopeRecipient[];
  body?: "7BIT" | "8BITMIME";
  smtputf8: boolean;
  ret?: "FULL" | "HDRS";
  envid?: string;
  requireTls?: boolean;
  /** BDAT was used: DATA is no longer allowed in this transaction. */
  bdat?: BdatReceiver;
}

type Mode = "pregreet" | "command" | "data" | "bdat" | "sasl" | "waiting" | "tls-pending" | "closed";

const CR = 0x0d;
const LF = 0x0a;
/** Input kept while a question is open, beyond which the client is cut off. */
const MAX_PENDING = 1024 * 1024;
/** RFC 4954 §4: a SASL response line may be up to 12288 octets. */
const SASL_LINE = 12288;


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
  private readonly lines: LineReader;
  private errors = 0;
  private commands = 0;
  private out = "";
  private actions: Action[] = [];
  private pendingQuestion: Question | undefined;
  /** The account a successful AUTH named. */
  private authUser: string | undefined;
  /** The mechanism of the SASL exchange in progress. */
  private saslMechanism = "";
  /** tls-exporter channel binding is available (TLS 1.3): -PLUS mechanisms may be offered. */
  private channelBinding = false;
  private talkedEarly = false;

  constructor(opts: SessionOptions) {
    this.opts = opts;
    this.tls = opts.tls;
    this.lines = new LineReader(opts.bareLineEndings === "normalize");
  }

  /** The greeting; call once when the connection (or the implicit TLS handshake) is up. */
  greeting(tls?: TlsFacts): Action[] {
    if (tls) this.channelBinding = tls.channelBinding;
    this.emit(reply(220, "", `${this.opts.hostname} ESMTP`));
    return this.flush();
  }

  /**
   * The pregreet test (Postfix postscreen): the first line of a multi-line
   * greeting (`220-`); the adapter waits, then calls greetingDone(). A byte
   * that comes before is an early talker: `554 5.5.1` and close.
   */
  greetingStart(): Action[] {
    this.out += `220-${this.opts.hostname} ESMTP\r\n`;
    this.mode = "pregreet";
    return this.flush();
  }

  /** The last line of the greeting begun with greetingStart(); input is read from now on. */
  greetingDone(): Action[] {
    if (this.mode !== "pregreet") return [];
    this.mode = "command";
    this.emit(reply(220, "", `${this.opts.hostname} ESMTP`));
    return this.flush();
  }

  /** The client sent before the greeting ended (see greetingStart). */
  get earlyTalker(): boolean {
    return this.talkedEarly;
  }

  /** Error replies so far (the adapter's tarpit grows with it). */
  get errorCount(): number {
    return this.errors;
  }

  /** A limit of the adapter (rate, session time): the reply (a 421) and close. */
  abort(r: Reply): Action[] {
    if (this.mode === "closed") return [];
    this.closeWith(r);
    return this.flush();
  }

  /** Client name from EHLO/HELO (undefined before). */
  get helo(): string | undefined {
    return this.heloName;
  }

  /** "SMTP", "ESMTP", "ESMTPS", "ESMTPA" or "ESMTPSA" (RFC 3848), for Received headers. */
  get protocol(): string {
    if (!this.esmtp) return "SMTP";
    return `ESMTP${this.tls === "active" ? "S" : ""}${this.authUser !== undefined ? "A" : ""}`;
  }

  /** The account of a successful AUTH, undefined before (and after STARTTLS resets it). */
  get authenticated(): string | undefined {
    return this.authUser;
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
      case "pregreet":
        this.talkedEarly = true;
        this.closeWith(R.earlyTalker);
        return this.flush();
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
        if (r.code < 300) this.txn = { mailFrom: q.envelope.mailFrom, recipients: [], body: q.envelope.body as Txn["body"], smtputf8: q.envelope.smtputf8, ret: q.envelope.ret, envid: q.envelope.envid, ...(q.envelope.requireTls ? { requireTls: true } : {}) };
        break;
      case "rcpt":
        if (r.code < 300 && this.txn) this.txn.recipients.push({ address: address ?? q.path.address, dsn: q.dsn });
        break;
      case "message":
        this.txn = undefined;
        break;
      case "auth":
        if (r.code === 334) {
          // A challenge: the next line is the client's response.
          this.emit(r);
          this.mode = "sasl";
          this.resumeInput();
          return this.flush();
        }
        if (r.code === 235) this.authUser = address ?? "";
        break;
    }
    this.say(r);
    this.resumeInput();
    return this.flush();
  }

  /** Goes on with input that came while a question was open. */
  private resumeInput(): void {
    if ((this.mode === "command" || this.mode === "sasl") && this.leftover.length > 0) {
      const buf = this.leftover;
      this.leftover = Buffer.alloc(0);
      this.run(buf, 0);
    }
  }

  /** The TLS handshake after STARTTLS finished: state is reset (RFC 3207 §4.2). */
  tlsStarted(tls?: TlsFacts): Action[] {
    if (this.mode !== "tls-pending") throw new Error("STARTTLS was not requested");
    this.tls = "active";
    this.channelBinding = tls?.channelBinding ?? false;
    this.authUser = undefined;
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
        case "sasl":
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
        case "pregreet":
        case "closed":
          // Everything after STARTTLS (or after close) is discarded.
          return;
      }
    }
  }

  /** Reads one command (or SASL response) line from buf at pos; returns the new position, or -1 when more input is needed. */
  private readCommand(buf: Buffer, pos: number): number {
    const max = this.mode === "sasl" ? Math.max(SASL_LINE, this.opts.limits.max_line_length) : this.opts.limits.max_line_length;
    const ev = this.lines.read(buf, pos, max);
    switch (ev.kind) {
      case "more":
        if (ev.keep) this.leftover = Buffer.from(buf.subarray(pos));
        return ev.keep ? -1 : buf.length;
      case "too-long":
        if (this.mode === "sasl") this.mode = "command"; // the exchange is over
        this.say(R.lineTooLong);
        return ev.next;
      case "line":
        if (this.mode === "sasl") this.saslLine(ev.line);
        else this.command(ev.line);
        return ev.next;
    }
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
        return this.say(reply(214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY STARTTLS AUTH"));
      case "VRFY":
        if (arg.trim() === "") return this.say(reply(501, "5.5.4", "Syntax: VRFY address"));
        return this.say(reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"));
      case "EXPN":
        return this.say(reply(502, "5.5.1", "EXPN not available"));
      case "STARTTLS":
        return this.starttls(arg);
      case "AUTH":
        return this.auth(arg);
    }
  }

  // ---- AUTH (RFC 4954) ----

  /** Mechanisms to offer now: none before TLS; -PLUS only with channel binding. */
  private offeredMechanisms(): readonly string[] {
    const auth = this.opts.auth;
    if (!auth || this.tls !== "active") return [];
    return auth.mechanisms.filter((m) => this.channelBinding || !m.toUpperCase().endsWith("-PLUS"));
  }

  private auth(arg: string): void {
    const auth = this.opts.auth;
    if (!auth || auth.mechanisms.length === 0) return this.say(R.authUnavailable);
    if (this.tls !== "active") return this.say(R.authNeedsTls);
    if (this.authUser !== undefined) return this.say(R.authTwice);
    if (this.txn) return this.say(R.authInTxn);
    const cmd = parseAuthCommand(arg, this.offeredMechanisms());
    if ("code" in cmd) return this.say(cmd);
    this.saslMechanism = cmd.mechanism;
    this.ask({ type: "auth", mechanism: cmd.mechanism, response: cmd.response, first: true });
  }

  /** A client line during a SASL exchange: "*" cancels, else base64. Never logged, never parsed as a command. */
  private saslLine(raw: Buffer): void {
    this.mode = "command";
    this.commands++;
    const response = decodeSaslLine(raw);
    if ("code" in response) return this.say(response);
    this.ask({ type: "auth", mechanism: this.saslMechanism, response, first: false });
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
    // STARTTLS and AUTH early, as Postfix lists them: some clients (GNU
    // gsasl) only recognise "250-STARTTLS", never the last line "250 STARTTLS".
    const lines = [`${this.opts.hostname} greets ${name}`, "PIPELINING", `SIZE ${this.opts.limits.max_message_size}`];
    if (this.tls === "available") lines.push("STARTTLS");
    const mechs = this.offeredMechanisms();
    if (mechs.length > 0) lines.push(`AUTH ${mechs.join(" ")}`);
    lines.push("8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "DSN");
    if (this.tls === "active") lines.push("REQUIRETLS");
    this.say(reply(250, "", ...lines));
  }

  private mail(arg: string): void {
    if (this.txn) return this.say(R.nested);
    if (!/^FROM:/i.test(arg)) return this.say(reply(501, "5.5.4", "Syntax: MAIL FROM:<address>"));
    const parsed = parsePathAndParams(arg.slice(5), true, false);
    if ("code" in parsed) return this.say(parsed);
    const { path, params } = parsed;
    if (params.size > 0 && !this.esmtp) return this.say(reply(555, "5.5.4", "Parameters need EHLO"));
    if (this.opts.auth?.required && this.authUser === undefined) return this.say(this.tls === "active" ? R.authRequired : R.tlsFirst);
    const mp = mailParams(params, this.opts.limits.max_message_size, this.offeredMechanisms().length > 0, this.tls === "active");
    if ("code" in mp) return this.say(mp);
    const { body, smtputf8, ret, envid, requireTls } = mp;
    if (path.utf8 && !smtputf8) return this.say(R.utf8Needed);
    const envelope: Envelope = { mailFrom: path.address, recipients: [], body, smtputf8, ret, envid, ...(requireTls ? { requireTls } : {}) };
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
    this.data = new DataReceiver(this.opts.limits.max_message_size, this.opts.bareLineEndings, this.opts.limits.max_header_size);
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
      case "header":
        return R.headerTooBig;
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
      this.bdatDiscard = new BdatReceiver(0, "normalize", 0);
      this.bdatDiscard.startChunk(size);
    } else {
      txn.bdat ??= new BdatReceiver(this.opts.limits.max_message_size, this.opts.bareLineEndings, this.opts.limits.max_header_size);
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
      ...(txn.requireTls ? { requireTls: true } : {}),
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
    this.saslMechanism = "";
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
