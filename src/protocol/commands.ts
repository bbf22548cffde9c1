/**
 * The command table (design §2.3): each SMTP verb Wardmail knows, explicitly.
 * No dispatch is ever built from network input; an unknown verb is simply not
 * in this map. The flags say where a verb may appear:
 * - needsHelo: only after EHLO/HELO (503 otherwise);
 * - esmtpOnly: only after EHLO (an extension verb).
 * Pipelining (RFC 2920) needs no flag: commands are processed strictly in
 * order, each answered before the next is read, and STARTTLS throws away
 * whatever followed it.
 */

export type Verb =
  | "EHLO"
  | "HELO"
  | "MAIL"
  | "RCPT"
  | "DATA"
  | "BDAT"
  | "RSET"
  | "NOOP"
  | "QUIT"
  | "HELP"
  | "VRFY"
  | "EXPN"
  | "STARTTLS"
  | "AUTH";

export interface CommandSpec {
  readonly needsHelo: boolean;
  readonly esmtpOnly: boolean;
}

export const COMMANDS: ReadonlyMap<string, CommandSpec & { verb: Verb }> = new Map(
  (
    [
      ["EHLO", { needsHelo: false, esmtpOnly: false }],
      ["HELO", { needsHelo: false, esmtpOnly: false }],
      ["MAIL", { needsHelo: true, esmtpOnly: false }],
      ["RCPT", { needsHelo: true, esmtpOnly: false }],
      ["DATA", { needsHelo: true, esmtpOnly: false }],
      ["BDAT", { needsHelo: true, esmtpOnly: true }],
      ["RSET", { needsHelo: false, esmtpOnly: false }],
      ["NOOP", { needsHelo: false, esmtpOnly: false }],
      ["QUIT", { needsHelo: false, esmtpOnly: false }],
      ["HELP", { needsHelo: false, esmtpOnly: false }],
      ["VRFY", { needsHelo: false, esmtpOnly: false }],
      ["EXPN", { needsHelo: false, esmtpOnly: false }],
      ["STARTTLS", { needsHelo: true, esmtpOnly: true }],
      ["AUTH", { needsHelo: true, esmtpOnly: true }],
    ] as const
  ).map(([verb, spec]) => [verb, { verb, ...spec }]),
);

/** Verbs of other protocols: a client sending these is not an SMTP client (cross-protocol attacks). */
export const FOREIGN_VERBS: ReadonlySet<string> = new Set(["GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS", "DELETE", "PATCH"]);
