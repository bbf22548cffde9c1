/**
 * The command table (design §2.3): each SMTP verb Wardmail knows, explicitly.
 * No dispatch is ever built from network input; an unknown verb is simply not
 * in this map. The flags say where a verb may appear:
 * - needsHelo: only after EHLO/HELO (503 otherwise);
 * - esmtpOnly: only after EHLO (an extension verb);
 * - closes: verbs that end the pipelining group (RFC 2920 §3.1) — kept for
 *   documentation and for the transcript tests.
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
  readonly endsGroup: boolean;
}

export const COMMANDS: ReadonlyMap<string, CommandSpec & { verb: Verb }> = new Map(
  (
    [
      ["EHLO", { needsHelo: false, esmtpOnly: false, endsGroup: true }],
      ["HELO", { needsHelo: false, esmtpOnly: false, endsGroup: true }],
      ["MAIL", { needsHelo: true, esmtpOnly: false, endsGroup: false }],
      ["RCPT", { needsHelo: true, esmtpOnly: false, endsGroup: false }],
      ["DATA", { needsHelo: true, esmtpOnly: false, endsGroup: true }],
      ["BDAT", { needsHelo: true, esmtpOnly: true, endsGroup: false }],
      ["RSET", { needsHelo: false, esmtpOnly: false, endsGroup: false }],
      ["NOOP", { needsHelo: false, esmtpOnly: false, endsGroup: true }],
      ["QUIT", { needsHelo: false, esmtpOnly: false, endsGroup: true }],
      ["HELP", { needsHelo: false, esmtpOnly: false, endsGroup: true }],
      ["VRFY", { needsHelo: false, esmtpOnly: false, endsGroup: true }],
      ["EXPN", { needsHelo: false, esmtpOnly: false, endsGroup: true }],
      ["STARTTLS", { needsHelo: true, esmtpOnly: true, endsGroup: true }],
      ["AUTH", { needsHelo: true, esmtpOnly: true, endsGroup: true }],
    ] as const
  ).map(([verb, spec]) => [verb, { verb, ...spec }]),
);

/** Verbs of other protocols: a client sending these is not an SMTP client (cross-protocol attacks). */
export const FOREIGN_VERBS: ReadonlySet<string> = new Set(["GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS", "DELETE", "PATCH"]);
