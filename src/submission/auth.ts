/**
 * Drives SMTP AUTH for the server: one SASL mechanism per exchange (kept in
 * the connection's scratch state), the brute-force guard around it, the
 * delay before a failure's reply, and log lines fail2ban can match:
 *
 *   {"level":40,...,"msg":"auth failed","ip":"192.0.2.7","user":"bob@example.org","mechanism":"PLAIN","reason":"credentials"}
 *   {"level":40,...,"msg":"auth blocked","ip":"192.0.2.7","scope":"client"}
 *
 * The reply never says which of user or password was wrong (535 5.7.8 for
 * both), and while a client is blocked or a name locked, AUTH gets 454 4.7.0
 * before anything is checked. Names are counted under the account they
 * resolve to (an alias counts for its account); unknown names as typed.
 * Secrets never reach a log line: only the user
 * name as typed (capped) and the mechanism.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { createMechanism } from "../auth/sasl.ts";
import type { CredentialStore, SaslMechanism } from "../auth/types.ts";
import type { Logger } from "../log/index.ts";
import { reply, type Reply } from "../protocol/reply.ts";
import type { AuthGuard } from "./guard.ts";
import { clientKey } from "./networks.ts";

export const AUTH_OK = reply(235, "2.7.0", "Authentication successful");
export const AUTH_BAD = reply(535, "5.7.8", "Authentication credentials invalid");
export const AUTH_MALFORMED = reply(501, "5.5.2", "Malformed authentication response");
export const AUTH_BLOCKED = reply(454, "4.7.0", "Too many failed authentication attempts; try again later");

/** What an AUTH step needs to know about its connection. */
export interface AuthConnection {
  readonly clientIp: string;
  /** tls-exporter data (TLS 1.3), else undefined. */
  readonly channelBinding: Buffer | undefined;
  readonly logger: Logger;
  /** Per-connection scratch the service keeps its mechanism in. */
  readonly scratch: { sasl?: SaslMechanism };
}

export interface AuthAnswer {
  readonly reply: Reply;
  /** The account, on success. */
  readonly address?: string;
}

/** The credential store plus name resolution (an alias names its account). */
export interface AuthStore extends CredentialStore {
  /** The account an address or alias names, else undefined. */
  resolve(addressOrAlias: string): string | undefined;
}

export class AuthService {
  private readonly store: AuthStore;
  private readonly guard: AuthGuard;
  private readonly fakeSaltKey: Buffer;
  private readonly plusOffered: boolean;

  /**
   * @param plusOffered SCRAM-SHA-256-PLUS is among the configured mechanisms.
   *   When it is not, a client's "y" flag (RFC 5802 §6) is no downgrade sign,
   *   so SCRAM must not see the connection's channel binding data.
   */
  constructor(store: AuthStore, guard: AuthGuard, fakeSaltKey: Buffer, plusOffered = true) {
    this.store = store;
    this.guard = guard;
    this.fakeSaltKey = fakeSaltKey;
    this.plusOffered = plusOffered;
  }

  /** One step of the exchange (see the "auth" question in src/protocol/session.ts). */
  async step(mechanism: string, response: Buffer | undefined, first: boolean, conn: AuthConnection): Promise<AuthAnswer> {
    const client = clientKey(conn.clientIp);
    if (first) {
      conn.scratch.sasl = undefined;
      if (this.guard.blocked(client) !== undefined) {
        conn.logger.warn({ ip: conn.clientIp, scope: "client", mechanism }, "auth blocked");
        return { reply: AUTH_BLOCKED };
      }
      const channelBinding = this.plusOffered ? conn.channelBinding : undefined;
      conn.scratch.sasl = createMechanism(mechanism, { store: this.store, channelBinding, fakeSaltKey: this.fakeSaltKey });
    }
    const mech = conn.scratch.sasl;
    if (mech === undefined) return { reply: AUTH_MALFORMED };
    const out = await mech.step(response);
    switch (out.kind) {
      case "challenge":
        return { reply: reply(334, "", out.data.toString("base64")) };
      case "success": {
        conn.scratch.sasl = undefined;
        // A locked name stays locked even for the right password.
        if (this.guard.blocked(client, out.account) !== undefined) {
          conn.logger.warn({ ip: conn.clientIp, scope: "user", user: out.account, mechanism }, "auth blocked");
          return { reply: AUTH_BLOCKED };
        }
        this.guard.success(out.account);
        conn.logger.info({ ip: conn.clientIp, user: out.account, mechanism }, "auth ok");
        return { reply: AUTH_OK, address: out.account };
      }
      case "failure": {
        conn.scratch.sasl = undefined;
        const user = out.user?.slice(0, 320);
        // Counted under the account an alias names, so guessing through
        // aliases shares one counter (and one lock) with the account.
        const name = user === undefined ? undefined : (this.store.resolve(user) ?? user);
        const blockedBefore = name !== undefined && this.guard.blocked(client, name) === "user";
        const outcome = this.guard.failure(client, name);
        conn.logger.warn({ ip: conn.clientIp, user, mechanism, reason: out.reason }, "auth failed");
        if (outcome.blocked) conn.logger.warn({ ip: conn.clientIp, scope: outcome.blocked, user }, "auth blocked");
        if (outcome.delayMs > 0) await sleep(outcome.delayMs);
        if (blockedBefore) return { reply: AUTH_BLOCKED };
        return { reply: out.reason === "malformed" ? AUTH_MALFORMED : AUTH_BAD };
      }
    }
  }
}
