/** The HTTPS listener's documents from the configuration. */
import type { Config } from "../config/index.ts";
import type { Logger } from "../log/index.ts";
import { TlsManager, resolveCertificatePairs } from "../tls/index.ts";
import { HttpsServer } from "./server.ts";
import type { ClientServer, MailSettings } from "./autoconfig.ts";
import type { StsPolicyOptions } from "./policy.ts";

/** The MTA-STS policy of every local domain: https.mta_sts_* (mx defaults to server.hostname). */
export function stsOptions(config: Pick<Config, "https" | "server">): StsPolicyOptions {
  const mx = config.https.mtaStsMx.length > 0 ? config.https.mtaStsMx : [config.server.hostname];
  return { mode: config.https.mtaStsMode, mx, maxAge: config.https.mtaStsMaxAge };
}

/** IMAP from https.imap_*; submission on server.hostname at the first port of submissions.listen (SSL) and submission.listen (STARTTLS). */
export function mailSettings(config: Pick<Config, "https" | "server" | "submission" | "submissions">): MailSettings {
  const host = config.server.hostname;
  const smtp: ClientServer[] = [];
  const implicit = config.submissions.listen[0];
  if (implicit !== undefined) smtp.push({ host, port: implicit.port, socketType: "SSL" });
  const starttls = config.submission.listen[0];
  if (starttls !== undefined) smtp.push({ host, port: starttls.port, socketType: "STARTTLS" });
  const imapHost = config.https.imapHost !== "" ? config.https.imapHost : host;
  return { imap: { host: imapHost, port: config.https.imapPort, socketType: config.https.imapTls === "starttls" ? "STARTTLS" : "SSL" }, smtp };
}

/** A running HTTPS listener: its bound addresses, certificate reload and close. */
export interface RunningHttps {
  readonly bound: readonly { host: string; port: number }[];
  /** Re-reads the certificate files (SIGHUP, ACME renewal). */
  reload(): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Loads the server's certificates (the ACME pair when acme.directory is
 * set, else tls.certificates or the self-signed default) and binds
 * https.listen. Called by the primary before the privilege drop.
 */
export async function startHttps(config: Config, logger: Logger): Promise<RunningHttps> {
  const log = logger.child({ component: "https" });
  const pairs = await resolveCertificatePairs(config, log);
  const tlsm = await TlsManager.create({ pairs, minVersion: config.tls.minVersion, ciphers: config.tls.ciphers, groups: config.tls.groups, watch: config.tls.watch, logger: log });
  const server = new HttpsServer({
    listen: config.https.listen,
    tls: { ...tlsm.serverOptions("submission"), minVersion: config.tls.minVersion },
    attach: (s) => tlsm.attach(s),
    localDomains: config.local.domains,
    sts: stsOptions(config),
    mail: mailSettings(config),
    logger: log,
  });
  let bound: { host: string; port: number }[];
  try {
    bound = await server.listen();
  } catch (err) {
    await server.close();
    tlsm.close();
    throw err;
  }
  return {
    bound,
    reload: () => tlsm.reload(),
    close: async () => {
      await server.close();
      tlsm.close();
    },
  };
}
