/**
 * Client TLS contexts of the outbound SMTP client, shared between sessions.
 *
 * tls.connect() without a `secureContext` builds a new one (an OpenSSL
 * SSL_CTX with its own certificate store references) for every connection:
 * about 0.2 ms of CPU and 45 KiB of native memory each, which V8 does not
 * see, so under load hundreds of dead ones wait for a full garbage
 * collection. The options that shape the context (CA certificates, protocol
 * versions, ciphers, groups) are the same for every session of a
 * destination, so one context per distinct set serves them all; what is
 * per connection (SNI, the name check, rejectUnauthorized, the socket) stays
 * in the tls.connect() options. Behaviour is unchanged: the same CAs verify
 * the peer, and the verification result is still per connection.
 *
 * Bounded: at most MAX_TLS_CONTEXTS sets are kept (one per relay ca_file
 * plus the default is the usual count); past it a connection gets a context
 * of its own, as before. Options this module does not know how to share
 * (a client certificate, a session to resume...) also get their own.
 */
import tls from "node:tls";

/** Most shared client contexts kept (distinct CA / version / cipher sets). */
export const MAX_TLS_CONTEXTS = 16;

/** Options that shape the context; their values are the cache key. */
const CONTEXT_KEYS = ["ca", "minVersion", "maxVersion", "ciphers", "ecdhCurve"] as const;
/** Options that belong to one connection and do not stop sharing. */
const CONNECTION_KEYS = new Set(["servername", "host", "port", "socket", "rejectUnauthorized", "checkServerIdentity"]);

const contexts = new Map<string, tls.SecureContext>();

/**
 * The shared context for these tls.connect() options, or undefined when they
 * ask for something that cannot be shared (or the cache is full): then
 * tls.connect() builds one of its own from the options, as it always did.
 */
export function sharedTlsContext(options: tls.ConnectionOptions): tls.SecureContext | undefined {
  const shape: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) {
    if (v === undefined) continue;
    if ((CONTEXT_KEYS as readonly string[]).includes(k)) {
      if (typeof v !== "string") return undefined; // a Buffer or list of CAs: not worth a key
      shape[k] = v;
    } else if (!CONNECTION_KEYS.has(k)) return undefined;
  }
  const key = JSON.stringify(CONTEXT_KEYS.map((k) => shape[k] ?? null));
  let ctx = contexts.get(key);
  if (ctx === undefined) {
    if (contexts.size >= MAX_TLS_CONTEXTS) return undefined;
    try {
      ctx = tls.createSecureContext(shape as tls.SecureContextOptions);
    } catch {
      return undefined; // tls.connect() reports the same error for this connection, as before
    }
    contexts.set(key, ctx);
  }
  return ctx;
}

/** How many shared contexts exist (tests). */
export function sharedTlsContextCount(): number {
  return contexts.size;
}
