/**
 * TLS for Wardmail: certificates (operator-supplied or a self-signed one
 * generated once in `<dataDir>/tls`), SNI, safe protocol defaults and reload
 * on SIGHUP or file change. Typical use in the primary process:
 *
 *   const pairs = await resolveCertificatePairs(config, logger);
 *   const tlsm = await TlsManager.create({ pairs, ...config.tls, logger });
 *   installReloadSignal(tlsm);
 *
 * Workers call `resolveCertificatePairs` too: the self-signed pair already
 * exists then and is simply reused.
 */
import { join } from "node:path";
import type { Logger } from "pino";
import type { CertificatePair, Config } from "../config/index.ts";
import { ensureSelfSigned } from "./selfsigned.ts";

export { TICKET_KEYS_LENGTH, TlsManager, certificateNames, describeTls, installReloadSignal } from "./manager.ts";
export type { LoadedCertificateInfo, TlsListener, TlsManagerOptions, TlsMinVersion } from "./manager.ts";
export { SELF_SIGNED_CERT, SELF_SIGNED_KEY, ensureSelfSigned, generateCertificate, selfSignedNames } from "./selfsigned.ts";
export type { GenerateOptions, GeneratedCertificate } from "./selfsigned.ts";

/** Directory holding the generated self-signed pair. */
export function selfSignedDir(config: Pick<Config, "server">): string {
  return join(config.server.dataDir, "tls");
}

/** The operator's certificate pairs, or the self-signed pair (created on first use) when there are none. */
/** Where the ACME certificate lives (src/acme keeps it there): `DATA_DIR/tls/acme/{fullchain,privkey}.pem`. */
export function acmeCertificatePair(config: Pick<Config, "server">): CertificatePair {
  const dir = join(config.server.dataDir, "tls", "acme");
  return { cert: join(dir, "fullchain.pem"), key: join(dir, "privkey.pem") };
}

export async function resolveCertificatePairs(
  config: Pick<Config, "server" | "tls"> & Partial<Pick<Config, "acme">>,
  logger: Logger,
): Promise<readonly CertificatePair[]> {
  // With ACME, its certificate replaces tls.certificates (the primary's AcmeManager makes sure the files exist).
  if (config.acme !== undefined && config.acme.directory !== "") return [acmeCertificatePair(config)];
  if (config.tls.certificates.length > 0) return config.tls.certificates;
  return [await ensureSelfSigned(selfSignedDir(config), config.server.hostname, logger)];
}
