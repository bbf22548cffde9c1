/**
 * Outbound delivery: the worker builds one with createOutbound() and hands
 * its transport to the shard's delivery agent (src/delivery). Also runs
 * the daily TLS-RPT reports (RFC 8460 §5): on shard 0 only, every
 * outbound.tlsrpt_interval (an hour by default; the first run a minute after
 * start, or sooner when the interval is shorter) it sends what is due for the
 * days before today to each policy domain's rua mailto: addresses, through
 * the queue like any message.
 */
import type { LookupFunction } from "node:net";
import type { Config } from "../config/index.ts";
import { adTrusted, resolverServers, type DnsResolver } from "../dns/index.ts";
import type { Logger } from "../log/index.ts";
import type { MessageSink } from "../sink/index.ts";
import { createTransport } from "./agent.ts";
import { MtaStsClient } from "./mta-sts.ts";
import { SqliteMtaStsStore } from "./mta-sts-store.ts";
import { reportJson, reportMessage, tlsRptFor, TlsRptStore, utcDay } from "./tlsrpt.ts";
import type { RemoteTransport } from "./transport.ts";

export { RemoteTransport } from "./transport.ts";
export { resolveMx } from "./mx.ts";
export { SqliteMtaStsStore } from "./mta-sts-store.ts";
export { TlsRptStore } from "./tlsrpt.ts";

/** A net.LookupFunction over our DNS resolver: A first, then AAAA. */
function resolverLookup(resolver: DnsResolver): LookupFunction {
  return (hostname, options, callback) => {
    const all = typeof options === "object" && options.all === true;
    const family = typeof options === "object" ? options.family : undefined;
    const types: ("A" | "AAAA")[] = family === 6 ? ["AAAA"] : family === 4 ? ["A"] : ["A", "AAAA"];
    void (async () => {
      const found: { address: string; family: 4 | 6 }[] = [];
      let lastErr: unknown;
      for (const t of types) {
        try {
          const a = await resolver.query(hostname, t);
          for (const r of a.records as string[]) found.push({ address: r, family: t === "A" ? 4 : 6 });
        } catch (err) {
          lastErr = err;
        }
      }
      if (found.length === 0) {
        const e = Object.assign(new Error(`no address for ${hostname}`), { code: (lastErr as { code?: string } | undefined)?.code ?? "ENOTFOUND" });
        callback(e, "", 4);
        return;
      }
      if (all) (callback as unknown as (err: null, addresses: { address: string; family: number }[]) => void)(null, found);
      else callback(null, found[0]?.address ?? "", found[0]?.family ?? 4);
    })();
  };
}

export interface Outbound {
  readonly transport: RemoteTransport;
  /** Files to give to the unprivileged user (created by root before the drop). */
  readonly files: readonly string[];
  /** Starts the TLS-RPT report job, every outbound.tlsrpt_interval seconds (shard 0). */
  startReports(sink: MessageSink): void;
  close(): void;
}

export function createOutbound(config: Config, resolver: DnsResolver, logger: Logger): Outbound {
  const stsStore = SqliteMtaStsStore.open(config.server.dataDir);
  const tlsrpt = TlsRptStore.open(config.server.dataDir);
  // The policy host mta-sts.<domain> is looked up through our resolver too (one DNS for everything).
  const mtaSts = new MtaStsClient({ resolver, store: stsStore, fetch: { lookup: resolverLookup(resolver) } });
  const log = logger.child({ component: "outbound" });
  const servers = resolverServers(config.dns);
  if (!adTrusted(servers, config.dns.trustAd)) {
    // The resolver clears an AD bit it does not believe (src/dns), so DANE never applies; say so once, at start.
    log.warn(
      { dnsServers: servers.map((s) => `${s.host}:${s.port}`), trustAd: config.dns.trustAd },
      config.dns.trustAd === "never"
        ? "DANE is off: the AD bit of the DNS servers is not trusted (dns.trust_ad = \"never\")"
        : "DANE is off: the AD bit of the DNS servers is not trusted (not every server is on loopback); run a validating resolver on loopback, or set dns.trust_ad = \"always\" for one on a trusted path",
    );
  }
  const transport = createTransport({ config, resolver, mtaSts, logger: log, tlsrpt });
  let timer: NodeJS.Timeout | undefined;
  const sendReports = async (sink: MessageSink): Promise<void> => {
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
          const t = sink.begin({ mailFrom: `tlsrpt-noreply@${host}`, smtputf8: false }, { kind: "local", source: "tlsrpt", ref: day });
          t.add({ address: to, dsn: { notify: ["NEVER"] } });
          await t.commit(content);
          log.info({ day, domain, to }, "TLS-RPT report queued");
        }
      }
      tlsrpt.markSent(day, domain);
    }
  };
  return {
    transport,
    files: [SqliteMtaStsStore.path(config.server.dataDir), `${config.server.dataDir}/tlsrpt.sqlite`].flatMap((f) => [f, `${f}-wal`, `${f}-shm`]),
    startReports(sink: MessageSink): void {
      // One run at a time: two overlapping runs would both see a day as pending and send its report twice.
      let running = false;
      const run = (): void => {
        if (running) return;
        running = true;
        sendReports(sink)
          .catch((err: unknown) => log.error({ err: err instanceof Error ? err.message : String(err) }, "TLS-RPT reports failed; will try again"))
          .finally(() => {
            running = false;
          });
      };
      const every = config.outbound.tlsrptInterval * 1000;
      timer = setInterval(run, every);
      timer.unref();
      setTimeout(run, Math.min(60_000, every)).unref();
    },
    close(): void {
      if (timer) clearInterval(timer);
      transport.close();
      stsStore.close();
      tlsrpt.close();
    },
  };
}
export { deliverSession } from "./connect.ts";
export type { Timeouts } from "./connect.ts";
export type { RemoteOutcome } from "./transport.ts";
export { dsnsFor } from "./bounces.ts";
export { checkCertificate, fetchStsPolicy, mxMatches, parseStsPolicy, parseStsRecord, type MtaStsPolicy, type StsFetchResult } from "./mta-sts.ts";
export { tlsaFor, usableTlsa, verifyDane, type TlsaLookup } from "./dane.ts";
export { parseTlsRptRecord } from "./tlsrpt.ts";
