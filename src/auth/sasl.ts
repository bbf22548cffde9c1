/**
 * SASL server mechanisms for SMTP AUTH (RFC 4954): which to advertise, and
 * one fresh state machine per AUTH command. PLAIN and LOGIN are here; SCRAM
 * (RFC 5802/7677, with RFC 9266 channel binding for -PLUS) is in scram.ts.
 *
 * Each mechanism is fed the client's responses (already base64-decoded by
 * the session) and answers one SaslStep per response: a challenge to send
 * as "334 <base64>", success, or failure. A failure ends the exchange; so
 * does success. Nothing here does I/O except through the CredentialStore.
 *
 * PLAIN and LOGIN send the password in the clear inside the TLS tunnel; the
 * session only offers AUTH once TLS is active.
 */
import { authzidAllowed, challenge, decodeMessage, failure, MAX_SASL_ID, MAX_SASL_PASSWORD, ScramServer } from "./scram.ts";
import type { MechanismOptions } from "./scram.ts";
import type { SaslContext, SaslMechanism, SaslStep } from "./types.ts";

export type { MechanismOptions } from "./scram.ts";

/** Every mechanism we implement, strongest first: the order we advertise them in (clients usually take the first they know). */
export const MECHANISMS: readonly string[] = Object.freeze(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN"]);

/** Mechanism names to advertise in EHLO for this connection: -PLUS only when it has channel binding data. */
export function advertisedMechanisms(channelBinding: boolean): string[] {
  return MECHANISMS.filter((m) => channelBinding || m !== "SCRAM-SHA-256-PLUS");
}

/**
 * A fresh mechanism instance for one AUTH exchange, or undefined for an
 * unknown or unavailable name (RFC 4954: 504). Names are case-insensitive
 * (ASCII only: "plaın" is not "PLAIN"). SCRAM-SHA-256-PLUS is unavailable
 * when ctx.channelBinding is undefined. `options` is a test hook (see
 * MechanismOptions); the server passes none.
 */
export function createMechanism(name: string, ctx: SaslContext, options: MechanismOptions = {}): SaslMechanism | undefined {
  switch (name.replace(/[a-z]/g, (c) => c.toUpperCase())) {
    case "SCRAM-SHA-256-PLUS":
      return ctx.channelBinding === undefined ? undefined : new ScramServer(ctx, true, options);
    case "SCRAM-SHA-256":
      return new ScramServer(ctx, false, options);
    case "PLAIN":
      return new PlainMechanism(ctx);
    case "LOGIN":
      return new LoginMechanism(ctx);
    default:
      return undefined;
  }
}

/** The bytes of a text, for the length limits (which RFC 4616 states in octets). */
const octets = (text: string): number => Buffer.byteLength(text, "utf8");

/**
 * Asks ctx.admit (nothing is checked when it refuses), then checks
 * `password` for `username` and, when the store accepts it, the
 * authzid (empty when the mechanism has none). The authzid is judged only
 * after the credentials passed, so a refused authzid never tells a stranger
 * anything about the account.
 */
async function verify(ctx: SaslContext, username: string, password: string, authzid: string): Promise<SaslStep> {
  if (ctx.admit !== undefined && !ctx.admit(username)) return failure("refused", username);
  const account = await ctx.store.checkPassword(username, password);
  if (account === undefined) return failure("credentials", username);
  if (!authzidAllowed(authzid, username, account)) return failure("authzid", username);
  return { kind: "success", account };
}

/**
 * PLAIN (RFC 4616): one message, [authzid] NUL authcid NUL passwd, in
 * UTF-8. Without an initial response the server first sends an empty
 * challenge (RFC 4954 §4: "334 ").
 */
class PlainMechanism implements SaslMechanism {
  readonly name = "PLAIN";
  readonly #ctx: SaslContext;
  #state: "start" | "message" | "done" = "start";

  constructor(ctx: SaslContext) {
    this.#ctx = ctx;
  }

  async step(response: Buffer | undefined): Promise<SaslStep> {
    const state = this.#state;
    // Ended before any await: a step that overlaps the store check, or comes after the end, is refused.
    this.#state = "done";
    if (state === "start" && response === undefined) {
      this.#state = "message";
      return challenge("");
    }
    if (state === "done" || response === undefined) return failure("malformed");
    const text = decodeMessage(response);
    if (text === undefined) return failure("malformed");
    // RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd; no
    // field holds a NUL, so exactly three fields, and the last two non-empty.
    const fields = text.split("\0");
    if (fields.length !== 3) return failure("malformed");
    const [authzid = "", authcid = "", passwd = ""] = fields;
    if (authcid === "" || passwd === "") return failure("malformed");
    // RFC 4616 §2 lets servers limit ids to 255 octets; 1024 for the password is ours.
    if (octets(authzid) > MAX_SASL_ID || octets(authcid) > MAX_SASL_ID || octets(passwd) > MAX_SASL_PASSWORD) return failure("malformed");
    return verify(this.#ctx, authcid, passwd, authzid);
  }
}

/**
 * LOGIN (draft-murchison-sasl-login, obsolete but what Outlook and many
 * scripts still use): the server asks "Username:" then "Password:" and the
 * client answers each. An initial response is the user name, so the first
 * challenge is then "Password:". LOGIN has no authzid.
 */
class LoginMechanism implements SaslMechanism {
  readonly name = "LOGIN";
  readonly #ctx: SaslContext;
  #state: { readonly at: "start" | "username" | "done" } | { readonly at: "password"; readonly username: string } = { at: "start" };

  constructor(ctx: SaslContext) {
    this.#ctx = ctx;
  }

  async step(response: Buffer | undefined): Promise<SaslStep> {
    const state = this.#state;
    this.#state = { at: "done" };
    if (state.at === "start" && response === undefined) {
      this.#state = { at: "username" };
      return challenge("Username:");
    }
    if (state.at === "done" || response === undefined) return failure("malformed");
    const text = decodeMessage(response);
    // The same limits as PLAIN: non-empty, no NUL, 255 octets for the name and 1024 for the password.
    if (text === undefined || text === "" || text.includes("\0")) return failure("malformed");
    if (state.at === "password") {
      if (octets(text) > MAX_SASL_PASSWORD) return failure("malformed");
      return verify(this.#ctx, state.username, text, "");
    }
    // "start" with an initial response, or "username": this is the user name.
    if (octets(text) > MAX_SASL_ID) return failure("malformed");
    this.#state = { at: "password", username: text };
    return challenge("Password:");
  }
}
