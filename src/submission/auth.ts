/**
 * Drives SMTP AUTH for the server: one SASL mechanism per exchange (kept in
 * the connection's scratch state), the brute-force guard around it, the
 * delay before a failure's reply, and log lines fail2ban can match:
 *
 *   {"level":40,...,"msg":"auth failed","ip":"192.0.2.7","user":"bob@example.org","mechanism":"PLAIN","reason":"credentials"}
 *   {"level":40,...,"msg":"auth blocked","ip":"192.0.2.7","scope":"client"}
 *
 * Each mechanism asks the guard (AuthGuard.admit, through SaslContext.admit)
 * right before it checks a secret; the guard counts the attempt in advance
 * or refuses it, atomically across worker threads. A refused attempt checks
 * nothing and gets 454 4.7.0 at once, the same reply for any password; a
 * blocked client gets it at the AUTH command already. The reply never says
 * which of user or password was wrong (535 5.7.8 for both). Names are
 * counted under the account they resolve to (an alias counts for its
 * account); unknown names as typed. Secrets never reach a log line: only
 * the user name as typed (capped) and the mechanism.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { createMechanism } from "../auth/index.ts";
import type { CredentialStore, SaslMechanism } from "../auth/index.ts";
import type { Logger } from "../log/index.ts";
import { reply, type Reply } from "../protocol/index.ts";
import type { Attempt, AuthGuard, Refusal } from "./guard.ts";
import { clientKey } from "./networks.ts";

export const AUTH_OK = reply(235, "2.7.0", "Authentication successful");
export const AUTH_BAD = reply(535, "5.7.8", "Authentication credentials invalid");
export const AUTH_MALFORMED = reply(501, "5.5.2", "Malformed authentication response");
export const AUTH_BLOCKED = reply(454, "4.7.0", "Too many failed authentication attempts; try again later");

/** Longest user name kept for counting and logging. */
const MAX_USER = 320;

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

/** What the guard said when the exchange's mechanism asked to check a secret. */
interface Gate {
  verdict?: Attempt | Refusal;
}

export class AuthService {
  private readonly store: AuthStore;
  private readonly guard: AuthGuard;
  private readonly fakeSaltKey: Buffer;
  private readonly plusOffered: boolean;
  /** The guard's verdict for each exchange's mechanism. */
  private readonly gates = new WeakMap<SaslMechanism, Gate>();

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

  /** The name an attempt is counted under: the account an alias names, else the name as typed (capped). */
  private counted(user: string): string {
    const typed = user.slice(0, MAX_USER);
    return this.store.resolve(typed) ?? typed;
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
      const gate: Gate = {};
      const admit = (user: string): boolean => {
        gate.verdict ??= this.guard.admit(client, this.counted(user));
        return typeof gate.verdict !== "string";
      };
      const channelBinding = this.plusOffered ? conn.channelBinding : undefined;
      const mech = createMechanism(mechanism, { store: this.store, channelBinding, fakeSaltKey: this.fakeSaltKey, admit });
      if (mech !== undefined) this.gates.set(mech, gate);
      conn.scratch.sasl = mech;
    }
    const mech = conn.scratch.sasl;
    if (mech === undefined) return { reply: AUTH_MALFORMED };
    const out = await mech.step(response);
    const verdict = this.gates.get(mech)?.verdict;
    switch (out.kind) {
      case "challenge":
        return { reply: reply(334, "", out.data.toString("base64")) };
      case "success": {
        conn.scratch.sasl = undefined;
        // Every mechanism asks admit() before it checks a secret; a success without it is a bug: refuse.
        if (verdict === undefined || typeof verdict === "string") {
          conn.logger.error({ ip: conn.clientIp, mechanism }, "auth success without the guard's admission");
          return { reply: AUTH_BLOCKED };
        }
        this.guard.success(verdict, out.account);
        conn.logger.info({ ip: conn.clientIp, user: out.account, mechanism }, "auth ok");
        return { reply: AUTH_OK, address: out.account };
      }
      case "failure": {
        conn.scratch.sasl = undefined;
        const user = out.user?.slice(0, MAX_USER);
        if (typeof verdict === "string") {
          // Refused before anything was checked: no delay, the same reply whatever the password.
          conn.logger.warn({ ip: conn.clientIp, scope: verdict, user, mechanism }, "auth blocked");
          return { reply: AUTH_BLOCKED };
        }
        // Admitted attempts were counted already; other failures checked no secret and count for the client only.
        const outcome = verdict !== undefined ? { delayMs: this.guard.delay(verdict), blocked: verdict.started } : this.guard.failure(client);
        conn.logger.warn({ ip: conn.clientIp, user, mechanism, reason: out.reason }, "auth failed");
        if (outcome.blocked !== undefined) conn.logger.warn({ ip: conn.clientIp, scope: outcome.blocked, user }, "auth blocked");
        if (outcome.delayMs > 0) await sleep(outcome.delayMs);
        return { reply: out.reason === "malformed" ? AUTH_MALFORMED : AUTH_BAD };
      }
    }
  }
}
