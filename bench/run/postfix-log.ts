// What Postfix's log (its maillog, written by postlogd) says about one run of
// bench/run.ts: sessions, messages accepted per session, deliveries to discard.

export interface PostfixCount {
  /** smtpd sessions that ended (one `disconnect from` line each), not counting empty ones. */
  connections: number;
  /** Sessions without a single command (readiness probes): not counted above. */
  emptySessions: number;
  /** Messages accepted: the sum of data=N over those sessions. */
  accepted: number;
  /** Messages per connection -> number of connections. */
  perConnection: Record<string, number>;
  /** Deliveries to discard: with status=sent. */
  delivered: number;
  /** Lines with reject/warning/fatal/error, first few. */
  problems: string[];
}

export function countPostfixLog(log: string, syslogName: string): PostfixCount {
  const c: PostfixCount = { connections: 0, emptySessions: 0, accepted: 0, perConnection: {}, delivered: 0, problems: [] };
  const disc = new RegExp(`${syslogName}/smtpd\\[\\d+\\]: disconnect from \\S+(.*)$`);
  for (const line of log.split("\n")) {
    const d = disc.exec(line);
    if (d) {
      if (/\bcommands=0(\/0)?\b/.test(d[1] ?? "")) {
        c.emptySessions++;
        continue;
      }
      c.connections++;
      // "data=3" = 3 DATA commands, all accepted; "data=2/3" = 2 of 3 accepted.
      const m = /\bdata=(\d+)(?:\/(\d+))?/.exec(d[1] ?? "");
      const n = m ? Number(m[1]) : 0;
      c.accepted += n;
      c.perConnection[n] = (c.perConnection[n] ?? 0) + 1;
      continue;
    }
    if (line.includes("/discard[") && line.includes("status=sent")) {
      c.delivered++;
      continue;
    }
    if (/\b(reject|warning|fatal|error|panic):/.test(line) && c.problems.length < 5) c.problems.push(line);
  }
  return c;
}
