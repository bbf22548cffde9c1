/**
 * The MTA-STS policy file (RFC 8461 §3.2) Wardmail serves at
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt, and the one text
 * `wardmail domain dns` prints: one function, so they never disagree.
 */

export type StsMode = "enforce" | "testing" | "none";

export interface StsPolicyOptions {
  readonly mode: StsMode;
  /** MX host names (or "*.domain" patterns) senders may deliver to. */
  readonly mx: readonly string[];
  /** Seconds a sender may cache the policy. */
  readonly maxAge: number;
}

/** The policy's lines, in order, without line ends. */
export function stsPolicyLines(o: StsPolicyOptions): string[] {
  return ["version: STSv1", `mode: ${o.mode}`, ...o.mx.map((m) => `mx: ${m}`), `max_age: ${o.maxAge}`];
}

/** The policy file as served: CRLF line ends (RFC 8461 §3.2). */
export function stsPolicyText(o: StsPolicyOptions): string {
  return stsPolicyLines(o).map((l) => `${l}\r\n`).join("");
}
