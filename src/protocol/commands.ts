/**
 * The command table (design §2.3): each SMTP verb Wardmail knows, one row
 * each, binding the verb to where it may come and to its handler. No
 * dispatch is ever built from network input; an unknown verb is simply not
 * in the table. The row says:
 * - needs: "nothing", "helo" (after EHLO or HELO, 503 otherwise) or "ehlo"
 *   (an extension verb: after EHLO only);
 * - inHelp: listed in the HELP reply (the reply is built from the table);
 * - syncs: the verb carries data that must be read even when it is refused
 *   (BDAT's chunk), so the handler gets the refusal instead of the session
 *   answering it;
 * - waits: the client must wait for this command's reply before it sends
 *   more (RFC 2920 §3.1: EHLO, HELO and DATA end a group); input already
 *   there is improper pipelining (SessionOptions.strictPipelining).
 * Commands are only read in the command state; pipelining (RFC 2920) needs
 * no flag: commands are processed strictly in order, each answered before
 * the next is read, and STARTTLS throws away whatever followed it.
 * The handler of each verb is a method of the session (session.ts,
 * HANDLERS), typed by this table: a verb without a handler does not compile.
 */

export type Verb = "EHLO" | "HELO" | "MAIL" | "RCPT" | "DATA" | "BDAT" | "RSET" | "NOOP" | "QUIT" | "HELP" | "VRFY" | "EXPN" | "STARTTLS" | "AUTH";

export interface CommandSpec {
  readonly verb: Verb;
  readonly needs: "nothing" | "helo" | "ehlo";
  readonly inHelp: boolean;
  readonly syncs: boolean;
  readonly waits: boolean;
}

const row = (verb: Verb, needs: CommandSpec["needs"], opts: { inHelp?: boolean; syncs?: boolean; waits?: boolean } = {}): [string, CommandSpec] => [
  verb,
  { verb, needs, inHelp: opts.inHelp ?? true, syncs: opts.syncs ?? false, waits: opts.waits ?? false },
];

export const COMMANDS: ReadonlyMap<string, CommandSpec> = new Map([
  row("EHLO", "nothing", { waits: true }),
  row("HELO", "nothing", { waits: true }),
  row("MAIL", "helo"),
  row("RCPT", "helo"),
  row("DATA", "helo", { waits: true }),
  row("BDAT", "ehlo", { syncs: true }),
  row("RSET", "nothing"),
  row("NOOP", "nothing"),
  row("QUIT", "nothing"),
  row("HELP", "nothing"),
  row("VRFY", "nothing"),
  row("EXPN", "nothing", { inHelp: false }),
  row("STARTTLS", "ehlo"),
  row("AUTH", "ehlo"),
]);

/** The verbs the HELP reply lists, in table order. */
export const HELP_VERBS: readonly string[] = [...COMMANDS.values()].filter((c) => c.inHelp).map((c) => c.verb);

/** Verbs of other protocols: a client sending these is not an SMTP client (cross-protocol attacks). */
export const FOREIGN_VERBS: ReadonlySet<string> = new Set(["GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS", "DELETE", "PATCH"]);
