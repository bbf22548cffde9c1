// The outbound bench's report: one run's lines, then the table of runs,
// the medians and the summary that goes into the JSON result.
import { fmt, median, table } from "../report.ts";
import type { ServerName } from "./options.ts";
import type { RunRecord } from "./run-once.ts";

function histogram(h: Record<string, number> | undefined): string {
  if (!h) return "-";
  return Object.entries(h)
    .sort((a, b) => Number(a[0]) - Number(b[0]))
    .map(([k, v]) => `${k}x${v}`)
    .join(" ");
}

export function printRun(r: RunRecord): void {
  const s = r.sink;
  const tlsText = s ? Object.entries(s.tls).map(([k, v]) => `${k} x${v}`).join(", ") : "-";
  console.log(
    `  run ${r.run} ${r.server.padEnd(8)} outbound ${fmt(r.outboundMsgsPerSec).padStart(5)} msg/s (${fmt(r.endToEndMs !== null ? r.endToEndMs / 1000 : null, 2)} s first injection -> last at sink), ` +
      `injection ${fmt(r.injectMsgsPerSec)} msg/s, sink window ${fmt(r.sinkWindowMsgsPerSec)} msg/s, drain tail ${fmt(r.drainTailMs)} ms` +
      `\n      sink: ${s?.messages ?? 0} msgs over ${s?.connections ?? 0} connections (${fmt(r.messagesPerConnection, 1)} per conn, peak ${s?.peakOpen ?? 0} open; per conn: ${histogram(s?.perConnection)}); TLS ${tlsText}` +
      `\n      CPU s: server ${r.cpu.serverS.toFixed(2)} (${fmt(r.serverCpuMsPerMsg, 2)} ms/msg), sink ${r.cpu.sinkS.toFixed(2)}, smtp-source ${r.cpu.generatorS.toFixed(2)}, bench ${r.cpu.benchS.toFixed(2)}, ` +
      `other ${r.cpu.otherS.toFixed(2)}, machine ${r.cpu.machineS.toFixed(2)} of ${r.cpu.capacityS.toFixed(2)}; peak RSS ${r.peakRssMiB.toFixed(1)} MiB` +
      `${r.ok ? "  verified" : "  NOT OK"}${r.notes.length ? `\n      ${r.notes.join("\n      ")}` : ""}`,
  );
}

/**
 * Prints the table of runs (Postfix and Wardmail side by side, run by run),
 * its legend and the medians; returns the summary for the JSON result.
 */
export function printSummary(records: readonly RunRecord[], runs: number, wmPeakWhole: number | null) {
  const rows: string[][] = [["run", "Postfix msg/s", "Wardmail msg/s", "ratio W/P", "P msgs/conn", "W msgs/conn", "P CPU ms/msg", "W CPU ms/msg", "W peak RSS MiB", "other load P/W %"]];
  const ratios: number[] = [];
  const pick = (server: ServerName, f: (r: RunRecord) => number | null): number[] =>
    records.filter((r) => r.server === server && r.ok).flatMap((r) => {
      const v = f(r);
      return v === null ? [] : [v];
    });
  for (let run = 1; run <= runs; run++) {
    const p = records.find((r) => r.server === "postfix" && r.run === run);
    const w = records.find((r) => r.server === "wardmail" && r.run === run);
    const pr = p?.ok ? p.outboundMsgsPerSec : null;
    const wr = w?.ok ? w.outboundMsgsPerSec : null;
    const ratio = pr && wr ? wr / pr : null;
    if (ratio) ratios.push(ratio);
    rows.push([
      String(run),
      fmt(pr),
      fmt(wr),
      fmt(ratio, 2),
      fmt(p?.messagesPerConnection, 1),
      fmt(w?.messagesPerConnection, 1),
      fmt(p?.serverCpuMsPerMsg, 2),
      fmt(w?.serverCpuMsPerMsg, 2),
      fmt(w?.peakRssMiB, 1),
      `${fmt(p ? (p.cpu.otherS / p.cpu.capacityS) * 100 : null)}/${fmt(w ? (w.cpu.otherS / w.cpu.capacityS) * 100 : null)}`,
    ]);
  }
  const summary = {
    postfixMedianMsgsPerSec: median(pick("postfix", (r) => r.outboundMsgsPerSec)),
    wardmailMedianMsgsPerSec: median(pick("wardmail", (r) => r.outboundMsgsPerSec)),
    medianRatio: median(ratios),
    postfixMedianInjectMsgsPerSec: median(pick("postfix", (r) => r.injectMsgsPerSec)),
    wardmailMedianInjectMsgsPerSec: median(pick("wardmail", (r) => r.injectMsgsPerSec)),
    postfixMedianDrainTailMs: median(pick("postfix", (r) => r.drainTailMs)),
    wardmailMedianDrainTailMs: median(pick("wardmail", (r) => r.drainTailMs)),
    postfixMedianMsgsPerConnection: median(pick("postfix", (r) => r.messagesPerConnection)),
    wardmailMedianMsgsPerConnection: median(pick("wardmail", (r) => r.messagesPerConnection)),
    postfixMedianCpuMsPerMsg: median(pick("postfix", (r) => r.serverCpuMsPerMsg)),
    wardmailMedianCpuMsPerMsg: median(pick("wardmail", (r) => r.serverCpuMsPerMsg)),
    postfixMedianSinkCpuMsPerMsg: median(pick("postfix", (r) => r.sinkCpuMsPerMsg)),
    wardmailMedianSinkCpuMsPerMsg: median(pick("wardmail", (r) => r.sinkCpuMsPerMsg)),
    wardmailPeakRssMiBWholeBench: wmPeakWhole,
    okRuns: { postfix: pick("postfix", (r) => r.outboundMsgsPerSec).length, wardmail: pick("wardmail", (r) => r.outboundMsgsPerSec).length },
  };
  console.log(`\n${table(rows)}`);
  console.log(
    "(msg/s: messages / time from the first injected message to the last one received by the sink; msgs/conn: messages per\n" +
      " connection at the sink; CPU: the server's process tree over that time, per message; Wardmail RSS: peak VmRSS;\n" +
      " other load: CPU used by processes outside the bench, % of the machine, during Postfix's and Wardmail's run)\n",
  );
  console.log(
    `median outbound: Postfix ${fmt(summary.postfixMedianMsgsPerSec)} msg/s, Wardmail ${fmt(summary.wardmailMedianMsgsPerSec)} msg/s, ratio W/P ${fmt(summary.medianRatio, 2)}` +
      `\nmedian injection meanwhile: Postfix ${fmt(summary.postfixMedianInjectMsgsPerSec)} msg/s, Wardmail ${fmt(summary.wardmailMedianInjectMsgsPerSec)} msg/s; ` +
      `drain after the last injection: Postfix ${fmt(summary.postfixMedianDrainTailMs)} ms, Wardmail ${fmt(summary.wardmailMedianDrainTailMs)} ms` +
      `\nmedian messages per connection: Postfix ${fmt(summary.postfixMedianMsgsPerConnection, 1)}, Wardmail ${fmt(summary.wardmailMedianMsgsPerConnection, 1)}` +
      `\nmedian server CPU per message: Postfix ${fmt(summary.postfixMedianCpuMsPerMsg, 2)} ms, Wardmail ${fmt(summary.wardmailMedianCpuMsPerMsg, 2)} ms ` +
      `(sink: ${fmt(summary.postfixMedianSinkCpuMsPerMsg, 2)} / ${fmt(summary.wardmailMedianSinkCpuMsPerMsg, 2)} ms)`,
  );
  if (wmPeakWhole !== null) console.log(`Wardmail peak RSS over the whole bench: ${wmPeakWhole.toFixed(1)} MiB`);
  return summary;
}
