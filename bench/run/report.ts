// bench/run.ts's report: one run's lines, then the table of runs, the
// medians per case (with --spool-plain, --rspamd and --antivirus their own)
// and the summary that goes into the JSON result.
import os from "node:os";
import { budgetLine, caseName, coreBudget, fmt, median, table, targetLine } from "../report.ts";
import { RSPAMD_SERVER, spamSummary } from "../spam.ts";
import type { Options, ServerName } from "./options.ts";
import type { RunRecord } from "./runs.ts";

/** One run's lines: rate, time, memory, the CPU split, and what went wrong. */
export function printRun(r: RunRecord, perConn: number, run: number, s: ServerName): void {
  const problems = [...r.load.errors, ...r.verify.notes, ...r.warnings];
  console.log(
    `  ${caseName(perConn)} run ${run} ${s.padEnd(14)} ${fmt(r.msgsPerSec).padStart(6)} msg/s  ${(r.wallMs / 1000).toFixed(2)} s  peak RSS ${fmt(r.peakRssMiB, 1)} MiB, PSS after ${fmt(r.pssAfterRunMiB, 1)} MiB in ${r.processesAfterRun} processes` +
      `\n      CPU s: server ${r.cpu.serverS.toFixed(2)} (${fmt(r.serverCpuMsPerMsg, 2)} ms/msg), smtp-source ${r.cpu.generatorS.toFixed(2)}, ` +
      `bench ${r.cpu.benchS.toFixed(2)}, other ${r.cpu.otherS.toFixed(2)}, machine ${r.cpu.machineS.toFixed(2)} of ${r.cpu.capacityS.toFixed(2)}` +
      `${r.verify.ok === true ? "  verified" : ""}${r.ok ? "" : "  NOT OK"}${problems.length ? `\n      ${problems.join("\n      ")}` : ""}`,
  );
}

/** The wardmail+rspamd runs of one case: median rate, Wardmail's and rspamd's CPU per message. */
function rspamdSummary(records: readonly RunRecord[], perConn: number): Record<string, number | null> {
  const rs = records.filter((r) => r.server === RSPAMD_SERVER && r.perConnection === perConn && r.ok);
  const nums = (xs: (number | null | undefined)[]): number[] => xs.filter((x): x is number => typeof x === "number");
  return {
    rspamdMedianMsgsPerSec: median(nums(rs.map((r) => r.msgsPerSec))),
    rspamdWardmailMedianCpuMsPerMsg: median(nums(rs.map((r) => r.serverCpuMsPerMsg))),
    rspamdMedianCpuMsPerMsg: median(nums(rs.map((r) => r.rspamdCpuMsPerMsg))),
  };
}

/**
 * Prints the table of runs, its legend and the medians per case; returns
 * the summary for the JSON result. `spam`: the wardmail+rspamd server ran.
 */
export function printSummary(opt: Options, servers: readonly ServerName[], records: readonly RunRecord[], spam: boolean, wmPeakWhole: number | null): Record<string, unknown>[] {
  const plain = servers.includes("wardmail-plain");
  const rows: string[][] = [["case", "run", `Postfix msg/s (in_flow_delay ${opt.postfixInFlowDelay})`, "Wardmail msg/s", "ratio W/P", "Wardmail peak RSS MB", "Postfix PSS MB",
    ...(plain ? ["Wardmail plain-spool msg/s", "ratio encrypted/plain"] : [])]];
  const summary: Record<string, unknown>[] = [];
  for (const perConn of opt.cases) {
    const ratios: number[] = [];
    const pRates: number[] = [];
    const wRates: number[] = [];
    const pCpu: number[] = [];
    const wCpu: number[] = [];
    const plainRates: number[] = [];
    const encRatios: number[] = [];
    const plainCpu: number[] = [];
    for (let run = 1; run <= opt.runs; run++) {
      const p = records.find((r) => r.server === "postfix" && r.perConnection === perConn && r.run === run);
      const w = records.find((r) => r.server === "wardmail" && r.perConnection === perConn && r.run === run);
      const pr = p?.ok ? p.msgsPerSec : null;
      const wr = w?.ok ? w.msgsPerSec : null;
      const ratio = pr && wr ? wr / pr : null;
      if (pr) pRates.push(pr);
      if (wr) wRates.push(wr);
      if (ratio) ratios.push(ratio);
      if (p?.ok && p.serverCpuMsPerMsg !== null) pCpu.push(p.serverCpuMsPerMsg);
      if (w?.ok && w.serverCpuMsPerMsg !== null) wCpu.push(w.serverCpuMsPerMsg);
      const q = records.find((r) => r.server === "wardmail-plain" && r.perConnection === perConn && r.run === run);
      const qr = q?.ok ? q.msgsPerSec : null;
      const encRatio = wr && qr ? wr / qr : null;
      if (qr) plainRates.push(qr);
      if (encRatio) encRatios.push(encRatio);
      if (q?.ok && q.serverCpuMsPerMsg !== null) plainCpu.push(q.serverCpuMsPerMsg);
      rows.push([caseName(perConn), String(run), fmt(pr), fmt(wr), fmt(ratio, 2), fmt(w?.peakRssMiB, 1), fmt(p?.pssAfterRunMiB, 1), ...(plain ? [fmt(qr), fmt(encRatio, 3)] : [])]);
    }
    summary.push({
      case: caseName(perConn),
      perConnection: perConn,
      postfixMedianMsgsPerSec: median(pRates),
      wardmailMedianMsgsPerSec: median(wRates),
      medianRatio: median(ratios),
      postfixMedianCpuMsPerMsg: median(pCpu),
      wardmailMedianCpuMsPerMsg: median(wCpu),
      okRuns: { postfix: pRates.length, wardmail: wRates.length, ...(plain ? { wardmailPlain: plainRates.length } : {}) },
      ...(spam ? rspamdSummary(records, perConn) : {}),
      ...(plain
        ? { wardmailPlainMedianMsgsPerSec: median(plainRates), medianRatioEncryptedOverPlain: median(encRatios), wardmailPlainMedianCpuMsPerMsg: median(plainCpu) }
        : {}),
    });
  }
  console.log(`\n${table(rows)}`);
  console.log(
    "(msg/s: messages / wall-clock time of the load; ratio: Wardmail/Postfix in the same run; Wardmail RSS: peak VmRSS summed over its\n" +
      " process tree, sampled every 100 ms; Postfix PSS: summed over its process pool right after the load)\n",
  );
  for (const s of summary) {
    console.log(
      `median ${String(s.case).padEnd(12)} Postfix (in_flow_delay ${opt.postfixInFlowDelay}) ${fmt(s.postfixMedianMsgsPerSec as number | null)} msg/s, Wardmail ${fmt(s.wardmailMedianMsgsPerSec as number | null)} msg/s, ratio W/P ${fmt(s.medianRatio as number | null, 2)}` +
        `; server CPU per message: Postfix ${fmt(s.postfixMedianCpuMsPerMsg as number | null, 2)} ms, Wardmail ${fmt(s.wardmailMedianCpuMsPerMsg as number | null, 2)} ms` +
        (plain
          ? `\n       Wardmail plain spool ${fmt(s.wardmailPlainMedianMsgsPerSec as number | null)} msg/s (${fmt(s.wardmailPlainMedianCpuMsPerMsg as number | null, 2)} ms CPU/msg), encrypted/plain ${fmt(s.medianRatioEncryptedOverPlain as number | null, 3)}`
          : ""),
    );
  }
  // The engine targets (issue 12: 2x Postfix at 1 msg/conn, 4x at 10) and what the machine's cores leave for them.
  for (const s of summary) {
    const perConn = s.perConnection as number;
    const ratio = s.medianRatio as number | null;
    const peer = s.postfixMedianMsgsPerSec as number | null;
    const load = median(records.filter((r) => r.server === "wardmail" && r.perConnection === perConn && r.ok).map((r) => ((r.cpu.generatorS + r.cpu.benchS) * 1000) / r.messages));
    if (ratio === null || peer === null || load === null || load <= 0) continue;
    const target = perConn === 1 ? 2 : 4;
    s.loadSideCpuMsPerMsg = load;
    s.ratioCeiling = coreBudget(os.availableParallelism(), load, peer, target).ceiling;
    console.log(targetLine(String(s.case), "W/P", ratio, target));
    console.log(`       ${budgetLine("W/P", os.availableParallelism(), "smtp-source and the bench", load, peer, target, s.wardmailMedianCpuMsPerMsg as number | null)}`);
  }
  for (const s of summary) {
    if (s.rspamdMedianMsgsPerSec === undefined) continue;
    console.log(spamSummary({ case: String(s.case), wardmail: s.wardmailMedianMsgsPerSec as number | null, scanning: s.rspamdMedianMsgsPerSec as number | null, postfix: s.postfixMedianMsgsPerSec as number | null, serverCpu: s.rspamdWardmailMedianCpuMsPerMsg as number | null, rspamdCpu: s.rspamdMedianCpuMsPerMsg as number | null }));
  }
  if (wmPeakWhole !== null) console.log(`Wardmail peak RSS over the whole bench: ${wmPeakWhole.toFixed(1)} MiB`);
  if (opt.antivirus) {
    for (const perConn of opt.cases) {
      const ok = (server: ServerName, run: number) => records.find((r) => r.server === server && r.perConnection === perConn && r.run === run && r.ok);
      const avRates: number[] = [];
      const vsW: number[] = [];
      const vsP: number[] = [];
      const scan: number[] = [];
      const avCpu: number[] = [];
      for (let run = 1; run <= opt.runs; run++) {
        const a = ok("wardmail-av", run);
        const w = ok("wardmail", run);
        const p = ok("postfix", run);
        if (!a?.msgsPerSec) continue;
        avRates.push(a.msgsPerSec);
        if (w?.msgsPerSec) vsW.push(a.msgsPerSec / w.msgsPerSec);
        if (p?.msgsPerSec) vsP.push(a.msgsPerSec / p.msgsPerSec);
        if (typeof a.scannerCpuMsPerMsg === "number") scan.push(a.scannerCpuMsPerMsg);
        if (a.serverCpuMsPerMsg !== null) avCpu.push(a.serverCpuMsPerMsg);
      }
      const s = { case: caseName(perConn), wardmailAvMedianMsgsPerSec: median(avRates), medianRatioAvToWardmail: median(vsW), medianRatioAvToPostfix: median(vsP), clamdMedianCpuMsPerMsg: median(scan), wardmailAvMedianCpuMsPerMsg: median(avCpu) };
      summary.push(s);
      console.log(
        `median ${s.case.padEnd(12)} Wardmail with ClamAV ${fmt(s.wardmailAvMedianMsgsPerSec)} msg/s, ratio AV/Wardmail ${fmt(s.medianRatioAvToWardmail, 2)}, ratio AV/Postfix ${fmt(s.medianRatioAvToPostfix, 2)}` +
          `; CPU per message: Wardmail ${fmt(s.wardmailAvMedianCpuMsPerMsg, 2)} ms + clamd ${fmt(s.clamdMedianCpuMsPerMsg, 2)} ms`,
      );
    }
  }
  return summary;
}
