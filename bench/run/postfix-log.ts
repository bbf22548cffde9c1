// What Postfix's log (its maillog, written by postlogd) says about one run of
// bench/run.ts: sessions, messages accepted per session, deliveries to discard.

/**
 * Postfix's warning that a queue file's time stamp is ahead of time() ("file
 * system clock is 1 seconds ahead of local clock", then "resetting file time
 * stamps") is not a problem of the run: Postfix sets the file's times back
 * and the mail is queued and delivered as always. Seen here (Linux 6.18) now and then on
 * the root ext4 and on a journaled one; the likely cause is the multigrain
 * file times of Linux 6.13 and later, taken from the fine-grained clock
 * while time() reads the coarse one, a tick apart at a second's boundary.
 */
export const POSTFIX_CLOCK_AHEAD = /warning: (?:\S+: )?(?:file system clock is \d+ seconds? ahead of local clock|resetting file time stamps - this hurts performance)/;

/** A Postfix log line that makes a run not verified: a reject, warning, fatal, error or panic (except POSTFIX_CLOCK_AHEAD). */
export function isPostfixProblem(line: string): boolean {
  return /\b(reject|warning|fatal|error|panic):/.test(line) && !POSTFIX_CLOCK_AHEAD.test(line);
}

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
    if (isPostfixProblem(line) && c.problems.length < 5) c.problems.push(line);
  }
  return c;
}
