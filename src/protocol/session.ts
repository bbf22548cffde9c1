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
 * State: one discriminated union (State) that carries what each state needs
 * (the content receiver while reading DATA or a BDAT chunk, the open
 * question while waiting, the mechanism during a SASL exchange); the
 * connection facts (TLS, EHLO name, account) and the open transaction (the
 * envelope being built, one object) live beside it.
 *
 * Trust: everything fed in is hostile. Lines end only on CRLF (policy
 * "normalize" also takes a bare CR or LF, "reject" refuses the line); each
 * line is capped; over-long lines and over-size content are read and discarded
 * before the reply, so the stream never desynchronises. After STARTTLS every
 * byte already received is thrown away (CVE-2011-0411 class). While a question
 * is open no input is processed; input that keeps coming is capped.
 *
 * What a verb's argument means (EHLO capabilities, MAIL and RCPT paths and
 * parameters, BDAT's size, the verdict on finished content) is decided by
 * the pure functions of verbs.ts; this file keeps the state machine.
 */
import type { Envelope, EnvelopeRecipient } from "./envelope.ts";
import { decodeSaslLine, parseAuthCommand } from "./sasl-frame.ts";
import { bdatArgs, contentProblem, ehloReply, heloName, mailCommand, offeredMechanisms, rcptCommand, type ConnectionFacts } from "./verbs.ts";
import { COMMANDS, FOREIGN_VERBS, HELP_VERBS, type Verb } from "./commands.ts";
import { BdatReceiver, DataReceiver, type ContentResult } from "./data.ts";
import { formatReply, type Reply } from "./reply.ts";
import { LineReader } from "./lines.ts";
import { R } from "./replies.ts";

export type { Action, AuthOptions, Question, SessionOptions, TlsFacts, TlsMode } from "./session-types.ts";
import type { Action, Question, SessionOptions, TlsFacts, TlsMode } from "./session-types.ts";
import { CR, LF } from "./bytes.ts";

/** The envelope of the open transaction, built in place (recipients appended as they are accepted). */
type OpenEnvelope = Omit<Envelope, "recipients"> & { recipients: EnvelopeRecipient[] };

interface Txn {
  readonly envelope: OpenEnvelope;
  /** BDAT was used: the content so far; DATA is no longer allowed in this transaction. */
  bdat?: BdatReceiver;
}

type State =
  /** The greeting's first line is out; a byte now is an early talker. */
  | { readonly kind: "pregreet" }
  | { readonly kind: "command" }
  /** A SASL exchange: the next line is the client's response. */
  | { readonly kind: "sasl"; readonly mechanism: string }
  | { readonly kind: "data"; readonly rx: DataReceiver }
  /** Reading a BDAT chunk; `refusal`: the command failed, the chunk is read and dropped, then this is the reply. */
  | { readonly kind: "bdat"; readonly rx: BdatReceiver; readonly last: boolean; readonly refusal?: Reply }
  | { readonly kind: "waiting"; readonly question: Question }
  | { readonly kind: "tls-pending" }
  | { readonly kind: "closed" };

const COMMAND: State = { kind: "command" };
const CLOSED: State = { kind: "closed" };

/** Input kept while a question is open, beyond which the client is cut off. */
const MAX_PENDING = 1024 * 1024;
/** RFC 4954 §4: a SASL response line may be up to 12288 octets. */
const SASL_LINE = 12288;

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });
/** No input left over: one empty Buffer shared by every session (never written to), not one made per command. */
const NOTHING: Buffer = Buffer.alloc(0);

export class SmtpSession {
  private readonly opts: SessionOptions;
  private state: State = COMMAND;
  private tls: TlsMode;
  /** Client's EHLO/HELO name; undefined until given (and again after STARTTLS). */
  private heloName: string | undefined;
  private esmtp = false;
  private txn: Txn | undefined;
  /** Unprocessed input (a partial line, or input that came while waiting). */
  private leftover: Buffer = NOTHING;
  private readonly lines: LineReader;
  private errors = 0;
  private commands = 0;
  private out = "";
  private actions: Action[] = [];
  /** The account a successful AUTH named. */
  private authUser: string | undefined;
  /** tls-exporter channel binding is available (TLS 1.3): -PLUS mechanisms may be offered. */
  private channelBinding = false;
  private talkedEarly = false;
  /** The session ended with QUIT (221): the client has nothing more to say. */
  private quitted = false;

  /** The handler of each verb of the command table (commands.ts); `refusal` only for verbs that sync (BDAT). */
  private static readonly HANDLERS: Readonly<Record<Verb, (s: SmtpSession, arg: string, refusal?: Reply) => void>> = {
    EHLO: (s, arg) => s.ehlo(arg, true),
    HELO: (s, arg) => s.ehlo(arg, false),
    MAIL: (s, arg) => s.mail(arg),
    RCPT: (s, arg) => s.rcpt(arg),
    DATA: (s, arg) => s.dataCmd(arg),
    BDAT: (s, arg, refusal) => s.bdat(arg, refusal),
    RSET: (s, arg) => s.rset(arg),
    NOOP: (s) => s.say(R.ok),
    QUIT: (s) => {
      s.emit(R.bye);
      s.quitted = true;
      s.close();
    },
    HELP: (s) => s.say(R.help(HELP_VERBS)),
    VRFY: (s, arg) => s.say(arg.trim() === "" ? R.vrfySyntax : R.vrfy),
    EXPN: (s) => s.say(R.expn),
    STARTTLS: (s, arg) => s.starttls(arg),
    AUTH: (s, arg) => s.auth(arg),
  };

  constructor(opts: SessionOptions) {
    this.opts = opts;
    this.tls = opts.tls;
    this.lines = new LineReader(opts.bareLineEndings === "normalize");
  }

  /** The greeting; call once when the connection (or the implicit TLS handshake) is up. */
  greeting(tls?: TlsFacts): Action[] {
    if (tls) this.channelBinding = tls.channelBinding;
    this.emit(R.greeting(this.opts.hostname));
    return this.flush();
  }

  /**
   * The pregreet test (Postfix postscreen): the first line of a multi-line
   * greeting (`220-`); the adapter waits, then calls greetingDone(). A byte
   * that comes before is an early talker: `554 5.5.1` and close.
   */
  greetingStart(): Action[] {
    this.out += `220-${this.opts.hostname} ESMTP\r\n`;
    this.state = { kind: "pregreet" };
    return this.flush();
  }

  /** The last line of the greeting begun with greetingStart(); input is read from now on. */
  greetingDone(): Action[] {
    if (this.state.kind !== "pregreet") return [];
    this.state = COMMAND;
    this.emit(R.greeting(this.opts.hostname));
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
    if (this.state.kind === "closed") return [];
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

  /** The session was closed by the client's QUIT (answered 221). */
  get quit(): boolean {
    return this.quitted;
  }

  get closed(): boolean {
    return this.state.kind === "closed";
  }

  /** True while the session waits for an answer: the adapter should stop reading. */
  get waiting(): boolean {
    return this.state.kind === "waiting";
  }

  /**
   * True while content is being received: during DATA, and from the first
   * BDAT chunk of a transaction to its last (the command lines between
   * chunks included, so tiny chunks cannot restart the data rate), not
   * while the finished content waits for its answer. The data timeout and
   * the content rate apply.
   */
  get receivingContent(): boolean {
    const k = this.state.kind;
    return k === "data" || k === "bdat" || (this.txn?.bdat !== undefined && k !== "waiting" && k !== "closed" && k !== "tls-pending");
  }

  /** True from an accepted MAIL until the transaction ends (the message's answer, RSET, EHLO, STARTTLS, close). */
  get inTransaction(): boolean {
    return this.txn !== undefined;
  }

  /** Feeds bytes from the client; `following`: bytes of the same read still to come after chunk (a hint for sizing message buffers). */
  feed(chunk: Buffer, following = 0): Action[] {
    switch (this.state.kind) {
      case "closed":
      case "tls-pending":
        return [];
      case "pregreet":
        this.talkedEarly = true;
        this.closeWith(R.earlyTalker);
        return this.flush();
      case "waiting":
        if (this.leftover.length + chunk.length > MAX_PENDING) {
          this.leftover = NOTHING;
          this.closeWith(R.overflow);
          return this.flush();
        }
        this.leftover = this.leftover.length === 0 ? chunk : Buffer.concat([this.leftover, chunk]);
        return [];
      default: {
        const buf = this.leftover.length === 0 ? chunk : Buffer.concat([this.leftover, chunk]);
        this.leftover = NOTHING;
        this.run(buf, 0, following);
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
    if (this.state.kind === "closed") return [];
    if (this.state.kind !== "waiting") throw new Error("no question is open");
    const q = this.state.question;
    this.state = COMMAND;
    switch (q.type) {
      case "mail":
        if (r.code < 300) this.txn = { envelope: { ...q.envelope, recipients: [] } };
        break;
      case "rcpt":
        if (r.code < 300 && this.txn) this.txn.envelope.recipients.push({ address: address ?? q.path.address, dsn: q.dsn });
        break;
      case "message":
        this.txn = undefined;
        break;
      case "auth":
        if (r.code === 334) {
          // A challenge: the next line is the client's response.
          this.emit(r);
          this.state = { kind: "sasl", mechanism: q.mechanism };
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
    if ((this.state.kind === "command" || this.state.kind === "sasl") && this.leftover.length > 0) {
      const buf = this.leftover;
      this.leftover = NOTHING;
      this.run(buf, 0);
    }
  }

  /** The TLS handshake after STARTTLS finished: state is reset (RFC 3207 §4.2). */
  tlsStarted(tls?: TlsFacts): Action[] {
    if (this.state.kind !== "tls-pending") throw new Error("STARTTLS was not requested");
    this.tls = "active";
    this.channelBinding = tls?.channelBinding ?? false;
    this.authUser = undefined;
    this.state = COMMAND;
    this.heloName = undefined;
    this.esmtp = false;
    this.txn = undefined;
    this.leftover = NOTHING;
    return [];
  }

  /** The adapter's idle or data timer fired. */
  timeout(): Action[] {
    if (this.state.kind === "closed") return [];
    this.closeWith(R.timeout);
    return this.flush();
  }

  /** The server is stopping. */
  shutdown(): Action[] {
    if (this.state.kind === "closed") return [];
    this.closeWith(R.shutdown);
    return this.flush();
  }

  // ---- processing ----

  private run(buf: Buffer, pos: number, following = 0): void {
    while (pos < buf.length) {
      const state = this.state;
      switch (state.kind) {
        case "command":
        case "sasl":
          pos = this.readCommand(buf, pos, state.kind === "sasl" ? state.mechanism : undefined);
          if (pos < 0) return; // need more input; leftover saved
          break;
        case "data":
          pos = state.rx.push(buf, pos, following);
          if (state.rx.done) {
            this.state = COMMAND;
            this.finishContent(state.rx.result());
          }
          break;
        case "bdat":
          pos = state.rx.push(buf, pos, following);
          if (state.rx.remaining === 0) this.bdatChunkDone(state);
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

  /**
   * Reads one command (or, with `sasl` the mechanism in progress, one SASL
   * response) line from buf at pos; returns the new position, or -1 when
   * more input is needed.
   */
  private readCommand(buf: Buffer, pos: number, sasl: string | undefined): number {
    const max = sasl !== undefined ? Math.max(SASL_LINE, this.opts.limits.max_line_length) : this.opts.limits.max_line_length;
    const ev = this.lines.read(buf, pos, max);
    switch (ev.kind) {
      case "more":
        if (ev.keep) this.leftover = Buffer.from(buf.subarray(pos));
        return ev.keep ? -1 : buf.length;
      case "too-long":
        if (sasl !== undefined) this.state = COMMAND; // the exchange is over
        this.say(R.lineTooLong);
        return ev.next;
      case "line":
        if (sasl !== undefined) this.saslLine(ev.line, sasl);
        else this.command(ev.line, ev.next < buf.length);
        return ev.next;
    }
  }

  /** One command line; `more`: input after it was already there when it came. */
  private command(raw: Buffer, more = false): void {
    this.commands++;
    if (this.commands > this.opts.limits.max_commands) {
      this.closeWith(R.tooManyCommands);
      return;
    }
    if (raw.includes(CR) || raw.includes(LF)) return this.say(R.bareEol);
    if (raw.includes(0)) return this.say(R.badBytes);
    let line: string;
    try {
      line = STRICT_UTF8.decode(raw);
    } catch {
      return this.say(R.badBytes);
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
    // A command whose reply the client must wait for, with more input already behind it.
    if (spec.waits && more && this.opts.strictPipelining === true && this.authUser === undefined) return this.closeWith(R.improperPipelining);
    const refusal = spec.needs !== "nothing" && this.heloName === undefined ? R.heloFirst : spec.needs === "ehlo" && !this.esmtp ? R.ehloFirst : undefined;
    const handler = SmtpSession.HANDLERS[spec.verb];
    // A verb that carries data (BDAT) must still read it to stay in sync: its handler gets the refusal.
    if (refusal !== undefined && !spec.syncs) return this.say(refusal);
    handler(this, arg, refusal);
  }

  // ---- AUTH (RFC 4954) ----

  /** Mechanisms to offer now: none before TLS; -PLUS only with channel binding. */
  private offeredMechanisms(): readonly string[] {
    return offeredMechanisms(this.opts.auth, this.tls, this.channelBinding);
  }

  /** What the verbs (verbs.ts) need to know of the connection now. */
  private facts(): ConnectionFacts {
    return { tls: this.tls, esmtp: this.esmtp, authenticated: this.authUser !== undefined, mechanisms: this.offeredMechanisms() };
  }

  private auth(arg: string): void {
    const auth = this.opts.auth;
    if (!auth || auth.mechanisms.length === 0) return this.say(R.authUnavailable);
    if (this.tls !== "active") return this.say(R.authNeedsTls);
    if (this.authUser !== undefined) return this.say(R.authTwice);
    if (this.txn) return this.say(R.authInTxn);
    const cmd = parseAuthCommand(arg, this.offeredMechanisms());
    if ("code" in cmd) return this.say(cmd);
    this.ask({ type: "auth", mechanism: cmd.mechanism, response: cmd.response, first: true });
  }

  /** A client line during a SASL exchange: "*" cancels, else base64. Never logged, never parsed as a command. */
  private saslLine(raw: Buffer, mechanism: string): void {
    this.state = COMMAND;
    this.commands++;
    const response = decodeSaslLine(raw);
    if ("code" in response) return this.say(response);
    this.ask({ type: "auth", mechanism, response, first: false });
  }

  // ---- the other verbs ----

  private ehlo(arg: string, extended: boolean): void {
    const name = heloName(arg);
    if (name === undefined) return this.say(R.heloSyntax(extended ? "EHLO" : "HELO"));
    this.heloName = name;
    this.esmtp = extended;
    this.txn = undefined;
    this.say(extended ? ehloReply(name, this.facts(), this.opts) : R.helo(this.opts.hostname));
  }

  private rset(arg: string): void {
    if (arg.trim() !== "") return this.say(R.noArgs("RSET"));
    this.txn = undefined;
    this.say(R.ok);
  }

  private mail(arg: string): void {
    if (this.txn) return this.say(R.nested);
    const q = mailCommand(arg, this.facts(), this.opts);
    if ("code" in q) return this.say(q);
    this.ask(q);
  }

  private rcpt(arg: string): void {
    const txn = this.txn;
    if (!txn) return this.say(R.mailFirst);
    const q = rcptCommand(arg, txn.envelope, this.facts(), this.opts);
    if ("code" in q) return this.say(q);
    this.ask(q);
  }

  private dataCmd(arg: string): void {
    if (arg.trim() !== "") return this.say(R.noArgs("DATA"));
    const txn = this.txn;
    if (!txn) return this.say(R.mailFirst);
    if (txn.bdat) return this.say(R.dataAfterBdat);
    if (txn.envelope.recipients.length === 0) return this.say(R.noRcpt);
    this.emit(R.startData);
    this.state = { kind: "data", rx: new DataReceiver(this.opts.limits.max_message_size, this.opts.bareLineEndings, this.opts.limits.max_header_size) };
  }

  /** Checks finished content and asks the host to store it. */
  private finishContent(result: ContentResult): void {
    const txn = this.txn;
    if (!txn) return;
    const problem = contentProblem(result, txn.envelope, this.opts);
    if (problem) {
      this.txn = undefined;
      this.say(problem);
      // A client that sends bare line endings or NUL in content is either
      // broken or probing for smuggling: whatever it sends next is not trusted.
      if (result.problem === "bare-line-ending" || result.problem === "nul") this.close();
      return;
    }
    // The transaction ends with this question: its envelope is handed over as it is.
    this.ask({ type: "message", envelope: txn.envelope, content: result.content, eightBit: result.eightBit });
  }

  // ---- BDAT (RFC 3030) ----

  /**
   * BDAT: the chunk is always read to its end before the reply, even when the
   * command fails (`refusal` from the command table, or no transaction), so
   * the stream stays in sync. A size that cannot be parsed leaves no way to
   * find the chunk's end: the connection is closed.
   */
  private bdat(arg: string, refusal: Reply | undefined): void {
    const args = bdatArgs(arg);
    if (!args) return this.closeWith(R.bdatSyntax);
    const { size, last } = args;
    const txn = this.txn;
    const err = refusal ?? (!txn ? R.mailFirst : txn.envelope.recipients.length === 0 ? R.noRcpt : undefined);
    let state: State & { kind: "bdat" };
    if (err !== undefined || !txn) {
      const discard = new BdatReceiver(0, "normalize", 0);
      discard.startChunk(size);
      state = { kind: "bdat", rx: discard, last, refusal: err ?? R.mailFirst };
    } else {
      txn.bdat ??= new BdatReceiver(this.opts.limits.max_message_size, this.opts.bareLineEndings, this.opts.limits.max_header_size);
      txn.bdat.startChunk(size);
      state = { kind: "bdat", rx: txn.bdat, last };
    }
    this.state = state;
    if (size === 0) this.bdatChunkDone(state);
  }

  private bdatChunkDone(state: State & { kind: "bdat" }): void {
    this.state = COMMAND;
    if (state.refusal !== undefined) {
      this.txn = undefined;
      return this.say(state.refusal);
    }
    // Fail early on a problem so the client stops sending chunks.
    if (state.last || state.rx.problem) return this.finishContent(state.rx.result());
    this.say(R.chunkReceived);
  }

  private starttls(arg: string): void {
    if (arg.trim() !== "") return this.say(R.noArgs("STARTTLS"));
    if (this.tls === "active") return this.say(R.tlsActive);
    if (this.tls === "none") return this.say(R.tlsUnavailable);
    this.emit(R.startTls);
    this.state = { kind: "tls-pending" };
    this.txn = undefined;
    // Whatever the client sent after STARTTLS in plaintext is thrown away.
    this.leftover = NOTHING;
    this.actions.push({ kind: "send", data: this.out }, { kind: "starttls" });
    this.out = "";
  }

  // ---- helpers ----

  private ask(q: Question): void {
    this.state = { kind: "waiting", question: q };
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
    if (this.state.kind === "closed") return;
    this.out += formatReply(r);
  }

  private closeWith(r: Reply): void {
    this.emit(r);
    this.close();
  }

  private close(): void {
    if (this.state.kind === "closed") return;
    this.state = CLOSED;
    this.leftover = NOTHING;
    this.txn = undefined;
  }

  private flush(): Action[] {
    if (this.out) this.actions.push({ kind: "send", data: this.out });
    this.out = "";
    if (this.state.kind === "closed" && !this.actions.some((a) => a.kind === "close")) this.actions.push({ kind: "close" });
    const a = this.actions;
    this.actions = [];
    return a;
  }
}
