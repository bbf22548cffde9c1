/**
 * The client side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC
 * 7677) with tls-exporter channel binding (RFC 9266, TLS 1.3 only). The
 * server must prove it knows the password too (v=): a server that cannot is
 * refused before the message is sent.
 *
 * Bounded: the iteration count must be 4096 (RFC 7677's minimum) to
 * MAX_ITERATIONS, so a hostile server cannot make us spin; the salt and the
 * nonces are checked against the grammar.
 */
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from "node:crypto";

export const MIN_ITERATIONS = 4096;
export const MAX_ITERATIONS = 1_000_000;

export type ChannelBinding = { readonly kind: "plus"; readonly data: Buffer } | { readonly kind: "supported-not-used" } | { readonly kind: "none" };

export class ScramError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ScramError";
  }
}

function hmac(key: Buffer, data: string | Buffer): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

/** RFC 5802 §5.1 saslname: "," and "=" escaped. */
function saslname(s: string): string {
  return s.replace(/=/g, "=3D").replace(/,/g, "=2C");
}

function attributes(msg: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const part of msg.split(",")) {
    const eq = part.indexOf("=");
    if (eq !== 1) continue;
    const k = part.slice(0, 1);
    if (!m.has(k)) m.set(k, part.slice(2));
  }
  return m;
}

/** One exchange: first() gives the client-first message, final(serverFirst) the client-final, verify(serverFinal) checks the server. */
export class ScramClient {
  private readonly gs2: string;
  private readonly cnonce: string;
  private readonly bare: string;
  private serverSignature: Buffer | undefined;
  private readonly password: string;
  private readonly cb: ChannelBinding;

  /** nonce: FOR TESTS only (a published exchange); 24 random bytes otherwise. */
  constructor(user: string, password: string, cb: ChannelBinding, nonce?: string) {
    this.cnonce = nonce ?? randomBytes(24).toString("base64");
    this.password = password;
    this.cb = cb;
    this.gs2 = cb.kind === "plus" ? "p=tls-exporter,," : cb.kind === "supported-not-used" ? "y,," : "n,,";
    this.bare = `n=${saslname(user.normalize("NFKC"))},r=${this.cnonce}`;
  }

  first(): string {
    return this.gs2 + this.bare;
  }

  async final(serverFirst: string): Promise<string> {
    if (serverFirst.length > 4096) throw new ScramError("server-first message too long");
    const a = attributes(serverFirst);
    if (a.has("e")) throw new ScramError(`server error: ${a.get("e")}`);
    if (a.has("m")) throw new ScramError("server asks for an extension we do not know");
    const nonce = a.get("r");
    const salt64 = a.get("s");
    const iter = a.get("i");
    if (nonce === undefined || salt64 === undefined || iter === undefined) throw new ScramError("malformed server-first message");
    if (!nonce.startsWith(this.cnonce) || nonce.length === this.cnonce.length || !/^[\x21-\x2B\x2D-\x7E]+$/.test(nonce)) throw new ScramError("the server's nonce does not extend ours");
    if (!/^\d{1,9}$/.test(iter)) throw new ScramError("malformed iteration count");
    const iterations = Number(iter);
    if (iterations < MIN_ITERATIONS || iterations > MAX_ITERATIONS) throw new ScramError(`iteration count ${iterations} outside ${MIN_ITERATIONS}..${MAX_ITERATIONS}`);
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(salt64)) throw new ScramError("malformed salt");
    const salt = Buffer.from(salt64, "base64");
    if (salt.length === 0) throw new ScramError("empty salt");
    const cbData = this.cb.kind === "plus" ? Buffer.concat([Buffer.from(this.gs2), this.cb.data]) : Buffer.from(this.gs2);
    const withoutProof = `c=${cbData.toString("base64")},r=${nonce}`;
    const authMessage = `${this.bare},${serverFirst},${withoutProof}`;
    const salted = await new Promise<Buffer>((resolve, reject) => {
      pbkdf2(Buffer.from(this.password.normalize("NFKC"), "utf8"), salt, iterations, 32, "sha256", (err, key) => (err ? reject(err) : resolve(key)));
    });
    const clientKey = hmac(salted, "Client Key");
    const storedKey = createHash("sha256").update(clientKey).digest();
    const signature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = (clientKey[i] as number) ^ (signature[i] as number);
    this.serverSignature = hmac(hmac(salted, "Server Key"), authMessage);
    return `${withoutProof},p=${proof.toString("base64")}`;
  }

  /** Throws unless the server-final message carries the right server signature. */
  verify(serverFinal: string): void {
    const a = attributes(serverFinal);
    if (a.has("e")) throw new ScramError(`server error: ${a.get("e")}`);
    const v = a.get("v");
    if (v === undefined || this.serverSignature === undefined) throw new ScramError("the server did not prove it knows the password");
    const got = Buffer.from(v, "base64");
    if (got.length !== this.serverSignature.length || !timingSafeEqual(got, this.serverSignature)) throw new ScramError("the server's signature is wrong: it does not know the password (or someone is in the middle)");
  }
}
