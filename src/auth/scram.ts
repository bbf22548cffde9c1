/**
 * The server side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC
 * 7677) with tls-exporter channel binding (RFC 9266), as one SaslMechanism
 * per AUTH exchange. The exchange, as SMTP carries it (RFC 4954):
 *
 *   C: AUTH SCRAM-SHA-256 [client-first]      (or an empty 334 first)
 *   S: 334 server-first                       r=<cnonce+snonce>,s=<salt>,i=<n>
 *   C: client-final                           c=<cbind>,r=<nonce>,p=<proof>
 *   S: 334 server-final                       v=<server signature>
 *   C: (empty line)
 *   S: 235
 *
 * The server never sees the password: it checks the client's proof against
 * the StoredKey of each of the account's secrets (password, app passwords)
 * and proves itself with the matching ServerKey.
 *
 * Also home of the helpers PLAIN and LOGIN share with SCRAM (sasl.ts
 * imports them from here, so the two modules do not import each other).
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { hmac, SCRAM_ITERATIONS, sha256 } from "./scram-keys.ts";
import type { ScramKeys } from "./scram-keys.ts";
import type { SaslContext, SaslMechanism, SaslStep, ScramCredentials } from "./types.ts";

/** Longest client message any mechanism accepts, in bytes (well above any honest one). */
export const MAX_SASL_MESSAGE = 4096;
/** Longest user name or authzid (bytes), as RFC 4616 §2 suggests for PLAIN; used by every mechanism. */
export const MAX_SASL_ID = 255;
/** Longest password (bytes). */
export const MAX_SASL_PASSWORD = 1024;

/** Test hook: options of one mechanism instance. */
export interface MechanismOptions {
  /**
   * SCRAM only, FOR TESTS: the server nonce to append to the client's
   * (printable ASCII without ","), instead of 24 random bytes. Lets a test
   * replay a published exchange such as RFC 7677 §3. Never set it in the server.
   */
  readonly serverNonce?: string;
}

type FailureReason = Extract<SaslStep, { kind: "failure" }>["reason"];

export function challenge(data: string): SaslStep {
  return { kind: "challenge", data: Buffer.from(data, "utf8") };
}

export function failure(reason: FailureReason, user?: string): SaslStep {
  return user === undefined ? { kind: "failure", reason } : { kind: "failure", reason, user };
}

// fatal: invalid UTF-8 is an error, not U+FFFD; ignoreBOM: a BOM is kept as
// a character rather than silently dropped, so the text is exactly the bytes.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The message as text, or undefined when it is too long or not valid UTF-8. */
export function decodeMessage(message: Buffer): string | undefined {
  if (message.length > MAX_SASL_MESSAGE) return undefined;
  try {
    return utf8.decode(message);
  } catch {
    return undefined;
  }
}

/**
 * May a client authenticated as `username` (which resolved to `account`) act
 * as `authzid`? Only as itself: empty, its own name (any case), or its
 * canonical account. We have no proxy-authorisation roles.
 */
export function authzidAllowed(authzid: string, username: string, account: string): boolean {
  const a = authzid.toLowerCase();
  return a === "" || a === username.toLowerCase() || a === account;
}

const GS2_CBIND_TYPE = "tls-exporter";

/* RFC 5802 §7 grammar pieces. ABNF literals are case-insensitive, so "=2c" is as good as "=2C". */
/** saslname = 1*(value-safe-char / "=2C" / "=3D"): any UTF-8 but NUL, "," and a bare "=". */
const SASLNAME = /^(?:[^\0,=]|=2C|=3D)+$/i;
/** printable = %x21-2B / %x2D-7E (nonces). */
const PRINTABLE = /^[\x21-\x2B\x2D-\x7E]+$/;
/** cb-name = 1*(ALPHA / DIGIT / "." / "-"). */
const CB_NAME = /^[A-Za-z0-9.-]+$/;
/** attr-val = ALPHA "=" value; value = 1*value-char (any UTF-8 but NUL and ","). */
const ATTR_VAL = /^[A-Za-z]=[^\0,]+$/;
/** Strict base64 (RFC 4648 §4, padded); the canonical-form check is in strictBase64. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A decoded saslname, or undefined when it breaks the grammar or is too long. */
function saslname(text: string): string | undefined {
  if (!SASLNAME.test(text)) return undefined;
  const name = text.replace(/=(2C|3D)/gi, (_, code: string) => (code === "2C" || code === "2c" ? "," : "="));
  return Buffer.byteLength(name) <= MAX_SASL_ID ? name : undefined;
}

/** Node's base64 decoder skips junk; this accepts only the canonical padded form. */
function strictBase64(text: string): Buffer | undefined {
  if (!BASE64.test(text)) return undefined;
  const bytes = Buffer.from(text, "base64");
  return bytes.toString("base64") === text ? bytes : undefined;
}

type CbindFlag = { readonly kind: "n" } | { readonly kind: "y" } | { readonly kind: "p"; readonly name: string };

interface ClientFirst {
  readonly cbind: CbindFlag;
  /** gs2-header exactly as sent ("n,," etc.): the client-final's c= must repeat it. */
  readonly gs2Header: string;
  readonly authzid: string;
  readonly username: string;
  readonly clientNonce: string;
  /** client-first-message-bare exactly as sent: the start of AuthMessage. */
  readonly bare: string;
}

/** RFC 5802 §7: client-first-message = gs2-header client-first-message-bare. Undefined when malformed. */
function parseClientFirst(text: string): ClientFirst | undefined {
  // gs2-header = gs2-cbind-flag "," [authzid] ","  (neither part can hold a ",")
  const c1 = text.indexOf(",");
  const c2 = c1 < 0 ? -1 : text.indexOf(",", c1 + 1);
  if (c2 < 0) return undefined;
  const flag = text.slice(0, c1);
  const authzPart = text.slice(c1 + 1, c2);
  let cbind: CbindFlag;
  if (flag === "n" || flag === "y") cbind = { kind: flag };
  else if (flag.startsWith("p=") && CB_NAME.test(flag.slice(2))) cbind = { kind: "p", name: flag.slice(2) };
  else return undefined;
  let authzid = "";
  if (authzPart !== "") {
    const name = authzPart.startsWith("a=") ? saslname(authzPart.slice(2)) : undefined;
    if (name === undefined) return undefined;
    authzid = name;
  }
  // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
  const bare = text.slice(c2 + 1);
  const [user, nonce, ...extensions] = bare.split(",");
  // The first attribute must be n=; so a reserved-mext "m=" in front fails
  // too, as §5.1 requires of a server that does not know the extension.
  if (user === undefined || !user.startsWith("n=")) return undefined;
  const username = saslname(user.slice(2));
  if (username === undefined || nonce === undefined || !nonce.startsWith("r=")) return undefined;
  const clientNonce = nonce.slice(2);
  if (!PRINTABLE.test(clientNonce)) return undefined;
  // Extensions we do not know are ignored, but they must still parse.
  if (!extensions.every((e) => ATTR_VAL.test(e))) return undefined;
  return { cbind, gs2Header: text.slice(0, c2 + 1), authzid, username, clientNonce, bare };
}

interface ClientFinal {
  readonly channelBinding: string;
  readonly nonce: string;
  readonly proof: Buffer;
  /** client-final-message-without-proof exactly as sent: the end of AuthMessage. */
  readonly withoutProof: string;
}

/** RFC 5802 §7: c=cbind,r=nonce[,extensions],p=proof. Undefined when malformed. */
function parseClientFinal(text: string): ClientFinal | undefined {
  const parts = text.split(",");
  const proofPart = parts.pop();
  const [cb, nonce, ...extensions] = parts;
  if (cb === undefined || nonce === undefined || proofPart === undefined) return undefined;
  if (!cb.startsWith("c=") || !nonce.startsWith("r=") || !proofPart.startsWith("p=")) return undefined;
  if (!extensions.every((e) => ATTR_VAL.test(e))) return undefined;
  const proof = strictBase64(proofPart.slice(2));
  // The proof is a SHA-256-sized XOR (RFC 7677): anything else cannot be one.
  if (proof === undefined || proof.length !== 32) return undefined;
  return { channelBinding: cb.slice(2), nonce: nonce.slice(2), proof, withoutProof: parts.join(",") };
}

/** Checked against unknown users, so they cost the same hashing as a one-secret account. Never matches: its StoredKey is random. */
const DUMMY_KEYS: ScramKeys = { storedKey: randomBytes(32), serverKey: randomBytes(32) };

/**
 * The key pair whose StoredKey the proof matches (RFC 5802 §3):
 *   ClientSignature = HMAC(StoredKey, AuthMessage)
 *   ClientKey       = ClientProof XOR ClientSignature
 *   match when H(ClientKey) = StoredKey
 * Every pair is tried (no early exit), comparisons in constant time.
 */
function matchProof(keys: readonly ScramKeys[], authMessage: string, proof: Buffer): ScramKeys | undefined {
  let match: ScramKeys | undefined;
  for (const k of keys) {
    const signature = hmac(k.storedKey, authMessage);
    const clientKey = Buffer.alloc(proof.length);
    for (let i = 0; i < proof.length; i++) clientKey[i] = (proof[i] ?? 0) ^ (signature[i] ?? 0);
    const candidate = sha256(clientKey);
    // A StoredKey of the wrong size (a damaged store row) never matches; timingSafeEqual would throw.
    if (k.storedKey.length === candidate.length && timingSafeEqual(candidate, k.storedKey) && match === undefined) match = k;
  }
  return match;
}

type State =
  /** Nothing received yet. */
  | { readonly at: "start" }
  /** Sent an empty challenge for a missing initial response; the client-first comes next. */
  | { readonly at: "client-first" }
  /** Sent server-first; the client-final comes next. */
  | {
      readonly at: "client-final";
      readonly first: ClientFirst;
      readonly serverFirst: string;
      readonly nonce: string;
      readonly creds: ScramCredentials | undefined;
    }
  /** Sent server-final; only an empty response may follow. */
  | { readonly at: "ack"; readonly account: string }
  /** Ended (success or failure): any further step is a client error. */
  | { readonly at: "done" };

export class ScramServer implements SaslMechanism {
  readonly name: string;
  readonly #ctx: SaslContext;
  readonly #plus: boolean;
  readonly #serverNonce: string | undefined;
  #state: State = { at: "start" };

  /** plus: the -PLUS variant (needs ctx.channelBinding, or every exchange fails with "channel-binding"). */
  constructor(ctx: SaslContext, plus: boolean, options: MechanismOptions = {}) {
    if (options.serverNonce !== undefined && !PRINTABLE.test(options.serverNonce)) throw new Error("serverNonce must be printable ASCII without ','");
    this.name = plus ? "SCRAM-SHA-256-PLUS" : "SCRAM-SHA-256";
    this.#ctx = ctx;
    this.#plus = plus;
    this.#serverNonce = options.serverNonce;
  }

  step(response: Buffer | undefined): Promise<SaslStep> {
    // All the work is synchronous (HMACs and one store lookup); async only to fit the interface.
    return Promise.resolve(this.#step(response));
  }

  #step(response: Buffer | undefined): SaslStep {
    const state = this.#state;
    // Whatever happens below, a failure ends the exchange; success paths set the next state.
    this.#state = { at: "done" };
    if (state.at === "start" && response === undefined) {
      // RFC 4954 §4: no initial response, so an empty challenge asks for it ("334 ").
      this.#state = { at: "client-first" };
      return challenge("");
    }
    if (response === undefined || state.at === "done") return failure("malformed");
    const text = decodeMessage(response);
    if (text === undefined) return failure("malformed");
    switch (state.at) {
      case "start":
      case "client-first":
        return this.#clientFirst(text);
      case "client-final":
        return this.#clientFinal(text, state);
      case "ack":
        // RFC 4954 §4: the client answers the server-final challenge with an empty line.
        return text === "" ? { kind: "success", account: state.account } : failure("malformed");
    }
  }

  #clientFirst(text: string): SaslStep {
    const first = parseClientFirst(text);
    if (first === undefined) return failure("malformed");
    // RFC 5802 §6 channel binding negotiation.
    const binding = this.#ctx.channelBinding;
    if (this.#plus) {
      // -PLUS means binding: only the type we can provide, and only when we have its data.
      if (first.cbind.kind !== "p" || first.cbind.name !== GS2_CBIND_TYPE || binding === undefined) return failure("channel-binding");
    } else if (first.cbind.kind === "p") {
      // Binding asked for under the non-PLUS name: this mechanism cannot do it.
      return failure("channel-binding");
    } else if (first.cbind.kind === "y" && binding !== undefined) {
      // "y": the client could bind but believes we cannot. We do (we offer
      // -PLUS on this connection), so someone removed it from our EHLO: a downgrade.
      return failure("channel-binding");
    }
    // Unknown users get a stable fake salt and the default count, so
    // server-first does not tell whether the account exists; they fail at the proof.
    const creds = this.#ctx.store.scramCredentials(first.username);
    const salt = creds?.salt ?? hmac(this.#ctx.fakeSaltKey, first.username.toLowerCase()).subarray(0, 16);
    const iterations = creds?.iterations ?? SCRAM_ITERATIONS;
    // 24 random bytes: 32 base64 characters, no padding, never a ",".
    const nonce = first.clientNonce + (this.#serverNonce ?? randomBytes(24).toString("base64"));
    const serverFirst = `r=${nonce},s=${salt.toString("base64")},i=${iterations}`;
    this.#state = { at: "client-final", first, serverFirst, nonce, creds };
    return challenge(serverFirst);
  }

  #clientFinal(text: string, state: Extract<State, { at: "client-final" }>): SaslStep {
    const final = parseClientFinal(text);
    if (final === undefined) return failure("malformed");
    const { first } = state;
    // c= is base64(cbind-input): the gs2-header again (so it cannot have been
    // altered in transit), plus the channel's tls-exporter value for "p=".
    // Compared as text: there is exactly one padded base64 of those bytes.
    const cbindInput = first.cbind.kind === "p" && this.#ctx.channelBinding !== undefined
      ? Buffer.concat([Buffer.from(first.gs2Header, "utf8"), this.#ctx.channelBinding])
      : Buffer.from(first.gs2Header, "utf8");
    if (final.channelBinding !== cbindInput.toString("base64")) return failure("channel-binding");
    if (final.nonce !== state.nonce) return failure("malformed");
    // RFC 5802 §3: AuthMessage = client-first-message-bare "," server-first-message "," client-final-message-without-proof
    // The proof is the secret: the guard decides before it is checked.
    if (this.#ctx.admit !== undefined && !this.#ctx.admit(first.username)) return failure("refused", first.username);
    const authMessage = `${first.bare},${state.serverFirst},${final.withoutProof}`;
    const match = matchProof(state.creds?.keys ?? [DUMMY_KEYS], authMessage, final.proof);
    if (state.creds === undefined || match === undefined) return failure("credentials", first.username);
    // Only now, with the user proven, may we say the authzid is refused.
    if (!authzidAllowed(first.authzid, first.username, state.creds.account)) return failure("authzid", first.username);
    this.#state = { at: "ack", account: state.creds.account };
    // ServerSignature = HMAC(ServerKey, AuthMessage), of the secret that matched.
    return challenge(`v=${hmac(match.serverKey, authMessage).toString("base64")}`);
  }
}
