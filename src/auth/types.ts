/**
 * The contracts between SMTP AUTH (src/auth/sasl.ts), the account store
 * (src/accounts) and the server (src/server). Nothing here does I/O.
 */
import type { ScramKeys } from "./scram-keys.ts";

/** What SCRAM needs to check one account: one salt and count for the account, one key pair per secret. */
export interface ScramCredentials {
  /** The account's canonical address (lowercase). */
  readonly account: string;
  readonly salt: Buffer;
  readonly iterations: number;
  /** The account password's keys first, then one pair per app password (all derived with this salt and count). */
  readonly keys: readonly ScramKeys[];
}

/** Where SASL mechanisms look up secrets. Implemented by the account store. */
export interface CredentialStore {
  /**
   * The canonical account address when `password` is the password of the
   * account `username` names (its address or one of its aliases, any case)
   * or one of its app passwords; undefined otherwise. Unknown users cost
   * the same time as known ones (a dummy argon2id check), so the answer
   * never tells which of user or password was wrong.
   */
  checkPassword(username: string, password: string): Promise<string | undefined>;
  /** SCRAM credentials of the account `username` names, or undefined when there is none. */
  scramCredentials(username: string): ScramCredentials | undefined;
}

/** One step's outcome of a SASL exchange. */
export type SaslStep =
  /** Send "334 " + base64(data) and wait for the client's next line. */
  | { readonly kind: "challenge"; readonly data: Buffer }
  /** Authenticated as `account` (canonical address). Send 235. */
  | { readonly kind: "success"; readonly account: string }
  /**
   * Failed. "credentials": wrong user or password (535 5.7.8, the same text
   * either way); "malformed": the client's message broke the mechanism's
   * syntax (501 5.5.2); "authzid": the client asked to act as someone else
   * (535 5.7.8); "channel-binding": the channel binding did not match or a
   * downgrade was detected (535 5.7.8); "refused": SaslContext.admit said
   * no, so no secret was checked (the server's reply is the same whatever
   * the password).
   */
  | { readonly kind: "failure"; readonly reason: "credentials" | "malformed" | "authzid" | "channel-binding" | "refused"; readonly user?: string };

export interface SaslMechanism {
  readonly name: string;
  /**
   * Feeds the client's response: on the first call the initial response of
   * the AUTH command (undefined when none was given; an empty Buffer when
   * the client sent "="), afterwards each decoded line.
   */
  step(response: Buffer | undefined): Promise<SaslStep>;
}

export interface SaslContext {
  readonly store: CredentialStore;
  /**
   * RFC 9266 tls-exporter channel binding data of this connection (32
   * bytes, label "EXPORTER-Channel-Binding", empty context); undefined when
   * the connection cannot offer it (no TLS, or TLS 1.2).
   */
  readonly channelBinding: Buffer | undefined;
  /** Server secret used to make a stable fake SCRAM salt for unknown users. */
  readonly fakeSaltKey: Buffer;
  /**
   * Asked once per exchange with the user name as sent, right before a
   * secret is checked (PLAIN and LOGIN: before checkPassword; SCRAM: before
   * the proof). False: the mechanism fails with "refused" and checks
   * nothing. The server's brute-force guard reserves the attempt here.
   * Absent: every attempt is checked.
   */
  readonly admit?: (username: string) => boolean;
}
