/**
 * Outbound delivery: the worker builds one with createOutbound() and hands
 * its transport to the shard's delivery agent (src/delivery). Also runs
 * the daily TLS-RPT reports (RFC 8460 §5): on shard 0 only, once an hour it
 * sends what is due for the days before today to each policy domain's rua
 * mailto: addresses, through the queue like any message.
 */
import type { Config } from "../config/types.ts";
import type { DnsResolver } from "../dns/index.ts";
import type { Logger } from "../log/index.ts";
import type { Spool } from "../queue/index.ts";
import { createTransport } from "./agent.ts";
import { MtaStsClient } from "./mta-sts.ts";
import { SqliteMtaStsStore } from "./mta-sts-store.ts";
import { reportJson, reportMessage, tlsRptFor, TlsRptStore, utcDay } from "./tlsrpt.ts";
import type { RemoteTransport } from "./transport.ts";

export { RemoteTransport } from "./transport.ts";
export { resolveMx } from "./mx.ts";
export { SqliteMtaStsStore } from "./mta-sts-store.ts";
export { TlsRptStore } from "./tlsrpt.ts";

export interface Outbound {
  readonly transport: RemoteTransport;
  /** Files to give to the unprivileged user (created by root before the drop). */
  readonly files: readonly string[];
  /** Starts the hourly TLS-RPT report job (shard 0). */
  startReports(spool: Spool): void;
  close(): void;
}

export function createOutbound(config: Config, resolver: DnsResolver, logger: Logger): Outbound {
  const stsStore = SqliteMtaStsStore.open(config.server.dataDir);
  const tlsrpt = TlsRptStore.open(config.server.dataDir);
  const mtaSts = new MtaStsClient({ resolver, store: stsStore });
  const log = logger.child({ component: "outbound" });
  const transport = createTransport({ config, resolver, mtaSts, logger: log, tlsrpt });
  let timer: NodeJS.Timeout | undefined;
  const sendReports = async (spool: Spool): Promise<void> => {
    const host = config.server.hostname;
    for (const { day, domain } of tlsrpt.pendingDays(utcDay(Date.now()))) {
      const report = tlsrpt.report(day, domain, { name: host, contact: `postmaster@${host}` });
      if (!report) {
        tlsrpt.markSent(day, domain);
        continue;
      }
      const rec = await tlsRptFor(resolver, domain);
      if (rec.status === "error") continue; // try again next hour
      if (rec.status === "found") {
        const json = reportJson(report);
        for (const to of rec.record.mailto) {
          const content = reportMessage({ report, json, from: `tlsrpt-noreply@${host}`, to, ourDomain: host });
          await spool.enqueue({
            envelope: { mailFrom: `tlsrpt-noreply@${host}`, recipients: [{ address: to, dsn: { notify: ["NEVER"] } }], smtputf8: false },
            received: { sessionId: `tlsrpt-${day}`, clientIp: "127.0.0.1", clientPort: 0, helo: host, protocol: "local", listener: "tlsrpt", receivedAt: Date.now() },
            content,
          });
          log.info({ day, domain, to }, "TLS-RPT report queued");
        }
      }
      tlsrpt.markSent(day, domain);
    }
  };
  return {
    transport,
    files: [SqliteMtaStsStore.path(config.server.dataDir), `${config.server.dataDir}/tlsrpt.sqlite`].flatMap((f) => [f, `${f}-wal`, `${f}-shm`]),
    startReports(spool: Spool): void {
      const run = (): void => {
        sendReports(spool).catch((err: unknown) => log.error({ err: err instanceof Error ? err.message : String(err) }, "TLS-RPT reports failed; will try again"));
      };
      timer = setInterval(run, 3_600_000);
      timer.unref();
      setTimeout(run, 60_000).unref();
    },
    close(): void {
      if (timer) clearInterval(timer);
      stsStore.close();
      tlsrpt.close();
    },
  };
}
