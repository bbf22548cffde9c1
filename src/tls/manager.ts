/**
 * TLS manager: certificates → secure contexts, SNI selection, live reload.
 *
 * Contract:
 * - `TlsManager.create()` reads every certificate/key pair, checks that each
 *   key matches its certificate and builds one `tls.SecureContext` per pair
 *   with Wardmail's safe defaults (TLS 1.2 minimum, the configured TLS 1.2
 *   cipher list, OpenSSL's TLS 1.3 suites, server cipher order, no
 *   renegotiation). Any problem throws an error naming the file.
 * - `serverOptions(listener)` gives options for
 *   `new tls.TLSSocket(sock, { isServer: true, ...serverOptions("mx") })`
 *   (or `tls.createServer()`, "submission" only). The SNI callback picks the
 *   certificate whose SAN (or CN when there is no DNS SAN) matches the
 *   requested name: exact first, then a one-label wildcard; no SNI or no
 *   match → the first pair. Call it per connection to get the current
 *   default context (TLSSocket); a `tls.Server` built from it should be
 *   `attach()`ed so reloads also replace its no-SNI default.
 * - Session tickets: "submission" contexts issue them, encrypted with
 *   `ticketKeys` (shared by every worker thread, so a client resumes
 *   whichever thread accepts it). "mx" contexts issue none unless
 *   `mxSessionTickets`: Microsoft's SMTP client aborts STARTTLS when a
 *   TLS 1.3 server sends a NewSessionTicket (golang/go#70232). OpenSSL's
 *   SSL_OP_NO_TICKET cannot do it (TLS 1.3 then sends stateful tickets) and
 *   Node has no SSL_CTX_set_num_tickets, so a ticket-key callback declines
 *   every ticket: TLS 1.3 then sends no NewSessionTicket, TLS 1.2 an empty
 *   one (RFC 5077 §3.3), and no offered ticket is ever accepted. That
 *   callback is Node's internal `SecureContext#enableTicketKeyCallback`;
 *   `create()` throws when a Node version lacks it, and test/tls-tickets.test.ts
 *   checks the wire with openssl s_client.
 * - `groups` is the OpenSSL key exchange group list (X25519MLKEM768 first by
 *   default, from the config); it never holds "DEFAULT" (the config refuses it).
 * - `reload()` re-reads all files. On any error the old contexts stay and the
 *   error is logged; the result says whether the new files are in use.
 *   Established sessions are never touched; only new handshakes see the change.
 * - With `watch`, changes in the files' directories trigger a debounced reload
 *   (directories are watched, so replace-by-rename and symlink swaps work).
 */
import { X509Certificate, constants as cryptoConstants, createPrivateKey, randomBytes } from "node:crypto";
import { watch as fsWatch } from "node:fs";
import type { FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import * as tls from "node:tls";
import type { Logger } from "pino";
import type { CertificatePair } from "../config/index.ts";

export type TlsMinVersion = "TLSv1.2" | "TLSv1.3";

export interface TlsManagerOptions {
  readonly pairs: readonly CertificatePair[];
  readonly minVersion: TlsMinVersion;
  /** OpenSSL cipher list for TLS 1.2. */
  readonly ciphers: string;
  /** OpenSSL group list (e.g. "X25519MLKEM768/X25519:P-256"). Absent: OpenSSL's default. */
  readonly groups?: string;
  /** Issue session tickets on "mx" contexts too (default false). */
  readonly mxSessionTickets?: boolean;
  /** 48 bytes encrypting the "submission" session tickets (default: random, this manager only). */
  readonly ticketKeys?: Buffer;
  readonly watch: boolean;
  readonly logger: Logger;
  /** Debounce for file-change reloads, in ms (default 200). */
  readonly watchDebounceMs?: number;
}

/** Public description of a loaded certificate, for logs and status output. */
export interface LoadedCertificateInfo {
  readonly cert: string;
  readonly key: string;
  readonly names: readonly string[];
  readonly subject: string;
  readonly validTo: Date;
  readonly fingerprint256: string;
}

/** Which listener a context serves: "mx" may differ in session tickets. */
export type TlsListener = "mx" | "submission";

interface Contexts {
  readonly mx: tls.SecureContext;
  readonly submission: tls.SecureContext;
}

interface LoadedPair {
  readonly info: LoadedCertificateInfo;
  readonly certPem: Buffer;
  readonly keyPem: Buffer;
  readonly contexts: Contexts;
}

interface State {
  readonly pairs: readonly [LoadedPair, ...LoadedPair[]];
  /** Exact DNS name → contexts (first pair wins). */
  readonly exact: ReadonlyMap<string, Contexts>;
  /** Parent domain of a `*.parent` wildcard → contexts (first pair wins). */
  readonly wildcard: ReadonlyMap<string, Contexts>;
}

/** Length of Node's ticketKeys: 16 bytes key name, 16 HMAC, 16 AES. */
export const TICKET_KEYS_LENGTH = 48;

/** Node's native SecureContext, as far as the ticket-key callback needs it (not in @types/node). */
interface NativeTicketContext {
  enableTicketKeyCallback?: () => void;
  onticketkeycallback?: (name: Buffer, iv: Buffer, encrypt: boolean) => unknown[];
}

/**
 * Makes `context` decline every session ticket: the callback answers 0
 * ("no ticket" when encrypting, "unknown ticket" when decrypting). Node's
 * native callback wants 16-byte HMAC and AES keys even then; they are never
 * used to protect anything.
 */
function declineTickets(context: tls.SecureContext): void {
  const native = (context as unknown as { context: NativeTicketContext }).context;
  if (typeof native.enableTicketKeyCallback !== "function") {
    throw new Error("TLS: this Node.js has no ticket-key callback; cannot turn session tickets off on the MX listener (set tls.mx_session_tickets = true to run anyway)");
  }
  const unused = Buffer.alloc(16);
  native.onticketkeycallback = (name, iv) => [0, unused, unused, name, iv];
  native.enableTicketKeyCallback();
}

/**
 * Renegotiation is refused outright (it only matters for TLS 1.2; TLS 1.3 has
 * none). Node would otherwise allow 3 client renegotiations per 10 minutes.
 */
const SECURE_OPTIONS = cryptoConstants.SSL_OP_NO_RENEGOTIATION;

/** Wardmail's safe defaults for one certificate pair; the same ticket keys for every context. */
function contextOptions(opts: TlsManagerOptions, cert: Buffer, key: Buffer, ticketKeys: Buffer): tls.SecureContextOptions {
  return {
    cert,
    key,
    minVersion: opts.minVersion,
    ciphers: opts.ciphers,
    ...(opts.groups !== undefined ? { ecdhCurve: opts.groups } : {}),
    honorCipherOrder: true,
    secureOptions: SECURE_OPTIONS,
    ticketKeys,
  };
}

function normalizeName(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, "");
}

/** DNS names a certificate answers for: its DNS SANs, else its subject CNs. */
export function certificateNames(x509: X509Certificate): string[] {
  const names: string[] = [];
  const san = x509.subjectAltName;
  if (san !== undefined) {
    // Node prints "DNS:a, DNS:b, IP Address:…"; entries with odd characters are JSON-quoted.
    for (const raw of san.split(", ")) {
      if (!raw.startsWith("DNS:")) continue;
      let v = raw.slice(4);
      if (v.startsWith('"')) {
        try {
          v = JSON.parse(v) as string;
        } catch {
          continue;
        }
      }
      names.push(normalizeName(v));
    }
  }
  if (names.length === 0) {
    for (const line of x509.subject.split("\n")) {
      if (line.startsWith("CN=")) names.push(normalizeName(line.slice(3)));
    }
  }
  return names.filter((n) => n !== "");
}

function errnoText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code !== undefined ? `${e.code}: ${e.message}` : String(e.message ?? err);
}

export class TlsManager {
  readonly #opts: TlsManagerOptions;
  readonly #logger: Logger;
  #state: State;
  #watchers: FSWatcher[] = [];
  #debounce: NodeJS.Timeout | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  readonly #servers = new Set<tls.Server>();
  readonly #ticketKeys: Buffer;
  readonly #sni = (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    cb(null, this.contextFor(servername, "submission"));
  };
  readonly #sniMx = (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    cb(null, this.contextFor(servername, "mx"));
  };

  private constructor(opts: TlsManagerOptions, state: State, ticketKeys: Buffer) {
    this.#opts = opts;
    this.#logger = opts.logger;
    this.#state = state;
    this.#ticketKeys = ticketKeys;
  }

  static async create(opts: TlsManagerOptions): Promise<TlsManager> {
    if (opts.pairs.length === 0) throw new Error("TLS: no certificate configured");
    if (opts.ticketKeys !== undefined && opts.ticketKeys.length !== TICKET_KEYS_LENGTH) {
      throw new Error(`TLS: ticketKeys must be ${TICKET_KEYS_LENGTH} bytes`);
    }
    const ticketKeys = opts.ticketKeys ?? randomBytes(TICKET_KEYS_LENGTH);
    const state = await TlsManager.#load(opts, ticketKeys);
    const manager = new TlsManager(opts, state, ticketKeys);
    manager.#logLoaded("TLS certificate loaded");
    if (opts.watch) manager.#startWatching();
    return manager;
  }

  /** Read, check and build one pair. Throws with the offending file named. */
  static async #loadPair(pair: CertificatePair, opts: TlsManagerOptions, ticketKeys: Buffer): Promise<LoadedPair> {
    let certPem: Buffer;
    let keyPem: Buffer;
    try {
      certPem = await readFile(pair.cert);
    } catch (err) {
      throw new Error(`TLS certificate file ${pair.cert} cannot be read (${errnoText(err)})`);
    }
    try {
      keyPem = await readFile(pair.key);
    } catch (err) {
      throw new Error(`TLS key file ${pair.key} cannot be read (${errnoText(err)})`);
    }
    let x509: X509Certificate;
    try {
      x509 = new X509Certificate(certPem);
    } catch (err) {
      throw new Error(`TLS certificate file ${pair.cert} does not contain a valid PEM certificate (${errnoText(err)})`);
    }
    let key;
    try {
      key = createPrivateKey(keyPem);
    } catch (err) {
      throw new Error(`TLS key file ${pair.key} does not contain a usable unencrypted PEM private key (${errnoText(err)})`);
    }
    if (!x509.checkPrivateKey(key)) {
      throw new Error(`TLS key file ${pair.key} does not match certificate file ${pair.cert}`);
    }
    let contexts: Contexts;
    try {
      const base = contextOptions(opts, certPem, keyPem, ticketKeys);
      const submission = tls.createSecureContext(base);
      let mx = submission;
      if (opts.mxSessionTickets !== true) {
        mx = tls.createSecureContext(base);
        declineTickets(mx);
      }
      contexts = { mx, submission };
    } catch (err) {
      throw new Error(`TLS context for ${pair.cert} / ${pair.key} cannot be built (${errnoText(err)})`);
    }
    const info: LoadedCertificateInfo = {
      cert: pair.cert,
      key: pair.key,
      names: certificateNames(x509),
      subject: x509.subject,
      validTo: x509.validToDate,
      fingerprint256: x509.fingerprint256,
    };
    return { info, certPem, keyPem, contexts };
  }

  static async #load(opts: TlsManagerOptions, ticketKeys: Buffer): Promise<State> {
    const loaded: LoadedPair[] = [];
    for (const pair of opts.pairs) loaded.push(await TlsManager.#loadPair(pair, opts, ticketKeys));
    const [first, ...rest] = loaded;
    if (first === undefined) throw new Error("TLS: no certificate configured");
    const exact = new Map<string, Contexts>();
    const wildcard = new Map<string, Contexts>();
    for (const p of loaded) {
      for (const name of p.info.names) {
        if (name.startsWith("*.")) {
          const parent = name.slice(2);
          // "*.org"-style or malformed patterns are never honoured.
          if (parent.includes(".") && !parent.includes("*") && !wildcard.has(parent)) wildcard.set(parent, p.contexts);
        } else if (!name.includes("*") && !exact.has(name)) {
          exact.set(name, p.contexts);
        }
      }
    }
    return { pairs: [first, ...rest], exact, wildcard };
  }

  #logLoaded(msg: string): void {
    const now = Date.now();
    for (const p of this.#state.pairs) {
      const { cert, names, validTo, fingerprint256 } = p.info;
      this.#logger.info({ cert, names, validTo: validTo.toISOString(), fingerprint256 }, msg);
      if (validTo.getTime() < now) this.#logger.warn({ cert, validTo: validTo.toISOString() }, "TLS certificate has expired");
    }
  }

  /** The context a handshake for `servername` gets (undefined/empty: the default) on `listener`. */
  contextFor(servername: string | undefined | null, listener: TlsListener = "submission"): tls.SecureContext {
    const state = this.#state;
    if (servername !== undefined && servername !== null && servername !== "") {
      const name = normalizeName(servername);
      const hit = state.exact.get(name);
      if (hit !== undefined) return hit[listener];
      const dot = name.indexOf(".");
      if (dot > 0) {
        const w = state.wildcard.get(name.slice(dot + 1));
        if (w !== undefined) return w[listener];
      }
    }
    return state.pairs[0].contexts[listener];
  }

  /** What is loaded now, first (default) certificate first. */
  certificates(): LoadedCertificateInfo[] {
    return this.#state.pairs.map((p) => p.info);
  }

  /** Options for the server's own default context (used by tls.Server for no-SNI handshakes). */
  #defaultContextOptions(): tls.SecureContextOptions {
    const first = this.#state.pairs[0];
    return contextOptions(this.#opts, first.certPem, first.keyPem, this.#ticketKeys);
  }

  /**
   * Options for `new tls.TLSSocket(sock, { isServer: true, ...opts })`, or for
   * `tls.createServer(opts)` with "submission" (a tls.Server's own context
   * issues tickets whatever the listener). `secureContext` (honoured by
   * TLSSocket) and `cert`/`key` (honoured by tls.Server) both carry the
   * current default certificate.
   */
  serverOptions(listener: TlsListener = "submission"): tls.TlsOptions & { secureContext: tls.SecureContext } {
    return {
      ...this.#defaultContextOptions(),
      secureContext: this.#state.pairs[0].contexts[listener],
      SNICallback: listener === "mx" ? this.#sniMx : this.#sni,
      requestCert: false,
      rejectUnauthorized: false,
    };
  }

  /** Keep a tls.Server's default (no-SNI) context in step with reloads. Returns a detach function. */
  attach(server: tls.Server): () => void {
    this.#servers.add(server);
    return () => {
      this.#servers.delete(server);
    };
  }

  /** Re-read every file. On error the old contexts stay; returns whether the new files are in use. */
  reload(): Promise<boolean> {
    const run = this.#queue.then(() => this.#reloadNow());
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #reloadNow(): Promise<boolean> {
    let next: State;
    try {
      next = await TlsManager.#load(this.#opts, this.#ticketKeys);
    } catch (err) {
      this.#logger.error({ err: (err as Error).message }, "TLS reload failed; keeping the previous certificates");
      return false;
    }
    const prev = this.#state;
    const unchanged =
      prev.pairs.length === next.pairs.length &&
      prev.pairs.every((p, i) => {
        const n = next.pairs[i];
        return n !== undefined && p.certPem.equals(n.certPem) && p.keyPem.equals(n.keyPem);
      });
    if (unchanged) {
      this.#logger.debug("TLS reload: files unchanged");
      return true;
    }
    this.#state = next;
    for (const server of this.#servers) {
      try {
        server.setSecureContext(this.#defaultContextOptions());
      } catch (err) {
        this.#logger.error({ err: (err as Error).message }, "TLS reload: cannot update a server's default context");
      }
    }
    this.#logLoaded("TLS certificate reloaded");
    return true;
  }

  #startWatching(): void {
    const dirs = new Set<string>();
    for (const p of this.#opts.pairs) {
      dirs.add(dirname(p.cert));
      dirs.add(dirname(p.key));
    }
    const delay = this.#opts.watchDebounceMs ?? 200;
    for (const dir of dirs) {
      try {
        const w = fsWatch(dir, { persistent: false }, () => {
          // Any change in the directory: editors and ACME clients replace files by
          // rename or swap symlinks, so file names alone are not reliable. The
          // reload compares bytes, so unrelated changes cost only a few reads.
          if (this.#closed) return;
          if (this.#debounce !== undefined) clearTimeout(this.#debounce);
          this.#debounce = setTimeout(() => {
            this.#debounce = undefined;
            void this.reload();
          }, delay);
          this.#debounce.unref();
        });
        w.on("error", (err) => {
          this.#logger.warn({ dir, err: err.message }, "TLS certificate directory watch failed; SIGHUP still reloads");
        });
        this.#watchers.push(w);
      } catch (err) {
        this.#logger.warn({ dir, err: errnoText(err) }, "cannot watch TLS certificate directory; SIGHUP still reloads");
      }
    }
  }

  /** Stop watching files and forget attached servers. Established sessions are unaffected. */
  close(): void {
    this.#closed = true;
    if (this.#debounce !== undefined) clearTimeout(this.#debounce);
    this.#debounce = undefined;
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
    this.#servers.clear();
  }
}

/** Reload `manager` on SIGHUP. Returns a function that removes the listener. */
export function installReloadSignal(manager: Pick<TlsManager, "reload">): () => void {
  const onHup = (): void => {
    void manager.reload();
  };
  process.on("SIGHUP", onHup);
  return () => {
    process.off("SIGHUP", onHup);
  };
}

/** Version and cipher of an established session, e.g. { "TLSv1.3", "TLS_AES_256_GCM_SHA384" }. */
export function describeTls(socket: tls.TLSSocket): { version: string; cipher: string } {
  const version = socket.getProtocol() ?? "unknown";
  const c = socket.getCipher() as tls.CipherNameAndProtocol | undefined;
  // IANA names, as RFC 8314 §4.3 asks for in Received headers; OpenSSL's name as a fallback.
  const cipher = c === undefined ? "unknown" : c.standardName !== "" && c.standardName !== undefined ? c.standardName : c.name;
  return { version, cipher };
}
