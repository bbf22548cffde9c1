/**
 * Certificates by ACME (RFC 8555) with acme-client, run by the primary.
 *
 * At start (before the workers load their certificates): the HTTP-01
 * responder binds acme.http_listen (still root: port 80), and the
 * certificate in DATA_DIR/tls/acme/ is checked: missing, self-signed (a
 * placeholder), not naming every acme.domains, or expiring within
 * acme.renew_before days means an order. Until the first certificate is
 * issued, a self-signed placeholder is written there so that the server
 * starts anyway and the workers load the same paths; a later issuance
 * replaces it. Then every CHECK_EVERY_MS (after a failure, RETRY_MS).
 *
 * A new certificate is written (key first, each by write-then-rename, 0600
 * for keys) and the workers reload (as on SIGHUP): new handshakes use it,
 * established sessions are untouched.
 *
 * DANE: with acme.keep_key (default) the private key stays across
 * renewals, so a published TLSA 3 1 1 record stays valid. Without it, a
 * "next key" is kept beside the current one and logged with its TLSA
 * record at every check ("acme next key"), so the operator can publish it
 * before the renewal switches to it; a fresh next key follows each switch.
 */
import { X509Certificate, createHash, createPrivateKey, createPublicKey } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import https from "node:https";
import { dirname, join } from "node:path";
import { rootCertificates } from "node:tls";
import acme from "acme-client";
import type { Config } from "../config/index.ts";
import type { Logger } from "../log/index.ts";
import { chownTo } from "../server/index.ts";
import { acmeCertificatePair, generateCertificate, selfSignedNames } from "../tls/index.ts";
import { ChallengeServer } from "./challenge.ts";
import { createCsr, newAccountKey, newCertificateKey } from "./csr.ts";

const DAY = 86_400_000;
export const CHECK_EVERY_MS = 12 * 3_600_000;
export const RETRY_MS = 3_600_000;
/** One order, from account to certificate. */
const ORDER_TIMEOUT_MS = 180_000;

export interface AcmeOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Makes the workers load the new files (the primary posts "reload"). */
  readonly reload: () => void;
  readonly now?: () => number;
}

export type CheckResult = "issued" | "valid" | "failed";

/** The DANE-EE SPKI SHA-256 (TLSA 3 1 1) association data of a private or public key, hex. */
export function tlsa311(keyPem: string | Buffer): string {
  const spki = createPublicKey(keyPem).export({ type: "spki", format: "der" });
  return createHash("sha256").update(spki).digest("hex");
}

async function writeAtomic(path: string, data: string | Buffer, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, data, { mode });
  await rename(tmp, path);
}

export class AcmeManager {
  readonly #config: Config;
  readonly #log: Logger;
  readonly #reload: () => void;
  readonly #now: () => number;
  readonly #challenges: ChallengeServer;
  readonly #dir: string;
  readonly #cert: string;
  readonly #key: string;
  readonly #account: string;
  readonly #next: string;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<CheckResult> | undefined;
  #stopped = false;

  constructor(opts: AcmeOptions) {
    this.#config = opts.config;
    this.#log = opts.logger.child({ component: "acme" });
    this.#reload = opts.reload;
    this.#now = opts.now ?? Date.now;
    this.#challenges = new ChallengeServer(this.#log);
    const pair = acmeCertificatePair(opts.config);
    this.#cert = pair.cert;
    this.#key = pair.key;
    this.#dir = dirname(pair.cert);
    this.#account = join(this.#dir, "account.pem");
    this.#next = join(this.#dir, "next-privkey.pem");
    const ca = opts.config.acme.caFile;
    // acme-client's HTTP client: bounded requests, and the ACME server's private CA when configured
    // (read once here, at start-up, before privileges are dropped).
    acme.axios.defaults.timeout = 30_000;
    if (ca !== "") acme.axios.defaults.httpsAgent = new https.Agent({ ca: [...rootCertificates, readFileSync(ca, "utf8")] });
  }

  /** The names the certificate must cover. */
  get domains(): string[] {
    const d = this.#config.acme.domains;
    return d.length > 0 ? [...d] : [this.#config.server.hostname];
  }

  /**
   * Binds the challenge listener, makes sure a certificate is in place
   * (ordering one, or writing the placeholder when that fails) and starts
   * the periodic check. Resolves with the bound challenge addresses.
   */
  async start(): Promise<{ host: string; port: number }[]> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const bound = await this.#challenges.listen(this.#config.acme.httpListen);
    const result = await this.check();
    if (!existsSync(this.#cert) || !existsSync(this.#key)) await this.#placeholder();
    // Renewals run after the privilege drop: the directory and its files must be server.user's.
    await chownTo(this.#config, this.#dir);
    this.#schedule(result === "failed" ? RETRY_MS : CHECK_EVERY_MS);
    return bound;
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      void this.check().then((r) => this.#schedule(r === "failed" ? RETRY_MS : CHECK_EVERY_MS));
    }, ms);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#challenges.close();
  }

  /** Why the current certificate must be replaced, or undefined when it is good. */
  async #renewReason(): Promise<string | undefined> {
    if (!existsSync(this.#cert) || !existsSync(this.#key)) return "no certificate yet";
    let x: X509Certificate;
    try {
      x = new X509Certificate(await readFile(this.#cert));
    } catch {
      return "the certificate file cannot be read";
    }
    if (x.issuer === x.subject) return "a self-signed placeholder";
    const missing = this.domains.filter((d) => x.checkHost(d, { wildcards: false }) === undefined);
    if (missing.length > 0) return `does not name ${missing.join(", ")}`;
    const left = Date.parse(x.validTo) - this.#now();
    if (left < this.#config.acme.renewBefore * DAY) return `expires ${x.validTo} (within acme.renew_before = ${this.#config.acme.renewBefore} days)`;
    return undefined;
  }

  /** Checks the certificate and orders a new one when needed. Never throws. Runs one at a time. */
  check(): Promise<CheckResult> {
    this.#running ??= this.#check().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #check(): Promise<CheckResult> {
    try {
      const reason = await this.#renewReason();
      if (!this.#config.acme.keepKey) await this.#announceNextKey();
      if (reason === undefined) {
        this.#log.debug({ cert: this.#cert }, "acme certificate valid");
        return "valid";
      }
      this.#log.info({ names: this.domains, reason }, "acme order");
      await Promise.race([
        this.#order(),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no certificate within ${ORDER_TIMEOUT_MS / 1000} s`)), ORDER_TIMEOUT_MS).unref()),
      ]);
      return "issued";
    } catch (err) {
      this.#log.error({ err: err instanceof Error ? err.message : String(err), directory: this.#config.acme.directory }, "acme order failed; the current certificate stays");
      return "failed";
    }
  }

  /** A key for the next certificate when keep_key is false, logged with its TLSA record so it can be published first. */
  async #announceNextKey(): Promise<void> {
    if (!existsSync(this.#next)) await writeAtomic(this.#next, newCertificateKey(), 0o600);
    const next = await readFile(this.#next);
    this.#log.warn(
      { tlsa: `3 1 1 ${tlsa311(next)}`, names: this.domains },
      "acme next key: the next renewal switches to this key; publish its TLSA record now (keep the current one until then)",
    );
  }

  async #accountKey(): Promise<Buffer> {
    if (existsSync(this.#account)) return readFile(this.#account);
    const key = newAccountKey();
    await writeAtomic(this.#account, key, 0o600);
    return key;
  }

  async #order(): Promise<void> {
    const { acme: settings } = this.#config;
    const client = new acme.Client({ directoryUrl: settings.directory, accountKey: await this.#accountKey() });
    const had = existsSync(this.#key) ? await readFile(this.#key) : undefined;
    const wasPlaceholder = (await this.#renewReason()) === "a self-signed placeholder" || !existsSync(this.#cert);
    let key: Buffer;
    if (settings.keepKey && had !== undefined) key = had;
    else if (!settings.keepKey && existsSync(this.#next)) key = await readFile(this.#next);
    else key = newCertificateKey();
    const csr = await createCsr(this.domains, key);
    const cert = await this.#run(client, csr);
    const x = new X509Certificate(cert);
    if (!x.checkPrivateKey(createPrivateKey(key))) throw new Error("the issued certificate does not match our key");
    // Key first, then the chain: a reload in between sees a mismatch, fails and keeps the old pair.
    await writeAtomic(this.#key, key, 0o600);
    await writeAtomic(this.#cert, cert, 0o644);
    if (!settings.keepKey) await writeAtomic(this.#next, newCertificateKey(), 0o600);
    await chownTo(this.#config, this.#dir);
    const tlsa = `3 1 1 ${tlsa311(key)}`;
    const keyChanged = had !== undefined && !had.equals(key);
    this.#log.info({ names: this.domains, notAfter: x.validTo, issuer: x.issuer, tlsa, keyChanged }, "acme certificate issued");
    if (keyChanged && !wasPlaceholder) {
      this.#log.warn({ tlsa }, "acme: the certificate key changed; DANE senders need a TLSA record for the new key (acme.keep_key = true keeps the key)");
    }
    if (!settings.keepKey) await this.#announceNextKey();
    this.#reload();
  }

  /** The order (RFC 8555 §7.4): account, order, HTTP-01 for each pending authorization, finalize, download. */
  async #run(client: acme.Client, csr: Buffer): Promise<string> {
    const email = this.#config.acme.email;
    await client.createAccount({ termsOfServiceAgreed: true, ...(email !== "" ? { contact: [`mailto:${email}`] } : {}) });
    const order = await client.createOrder({ identifiers: this.domains.map((value) => ({ type: "dns", value })) });
    const authorizations = await client.getAuthorizations(order);
    for (const authz of authorizations) {
      if (authz.status === "valid") continue;
      const challenge = authz.challenges.find((c) => c.type === "http-01");
      if (challenge === undefined) throw new Error(`the ACME server offers no http-01 challenge for ${authz.identifier.value}`);
      const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
      this.#challenges.set(challenge.token, keyAuthorization);
      try {
        await client.completeChallenge(challenge);
        await client.waitForValidStatus(challenge);
      } finally {
        this.#challenges.delete(challenge.token);
      }
    }
    const finalized = await client.finalizeOrder(order, csr);
    return client.getCertificate(finalized);
  }

  /** A self-signed pair at the ACME paths, so the workers start; the next successful order replaces it. */
  async #placeholder(): Promise<void> {
    const g = await generateCertificate(selfSignedNames(this.#config.server.hostname));
    await writeAtomic(this.#key, g.keyPem, 0o600);
    await writeAtomic(this.#cert, g.certPem, 0o644);
    await chownTo(this.#config, this.#dir);
    this.#log.warn({ cert: this.#cert }, "acme: no certificate yet; serving a self-signed placeholder until an order succeeds");
  }
}
