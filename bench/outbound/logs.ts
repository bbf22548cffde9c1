// What each server's own log says about a run of the outbound bench:
// messages accepted from smtp-source, delivered to the sink, deferred, failed.

export interface ServerLogCount {
  /** Messages the server accepted from smtp-source. */
  accepted: number;
  /** Deliveries to the sink the server logged as done. */
  sent: number;
  deferred: number;
  failed: number;
  /** Postfix: deliveries over a reused connection (conn_use=N >= 2); Wardmail: outbound sessions logged. */
  reuseOrSessions: number;
  problems: string[];
}

export function countPostfixLog(log: string, syslogName: string): ServerLogCount {
  const c: ServerLogCount = { accepted: 0, sent: 0, deferred: 0, failed: 0, reuseOrSessions: 0, problems: [] };
  const disc = new RegExp(`${syslogName}/smtpd\\[\\d+\\]: disconnect from \\S+(.*)$`);
  for (const line of log.split("\n")) {
    const d = disc.exec(line);
    if (d) {
      const m = /\bdata=(\d+)(?:\/(\d+))?/.exec(d[1] ?? "");
      c.accepted += m ? Number(m[1]) : 0;
      continue;
    }
    if (/\/smtp\[\d+\]: .* relay=/.test(line)) {
      if (line.includes("status=sent")) c.sent++;
      else if (line.includes("status=deferred")) c.deferred++;
      else if (line.includes("status=bounced")) c.failed++;
      if (/\bconn_use=\d+/.test(line)) c.reuseOrSessions++;
      continue;
    }
    // tlsproxy says this at start: only its client role is used here.
    if (line.includes("TLS server role is disabled")) continue;
    if (/\b(reject|warning|fatal|error|panic):/.test(line) && c.problems.length < 5) c.problems.push(line.slice(0, 300));
  }
  return c;
}

export function countWardmailLog(log: string): ServerLogCount {
  const c: ServerLogCount = { accepted: 0, sent: 0, deferred: 0, failed: 0, reuseOrSessions: 0, problems: [] };
  for (const line of log.split("\n")) {
    if (line.includes('"msg":"message accepted"')) c.accepted++;
    else if (line.includes('"msg":"delivered to the remote MX"')) c.sent++;
    else if (line.includes('"msg":"delivery deferred"')) c.deferred++;
    else if (line.includes('"msg":"delivery failed"')) c.failed++;
    else if (line.includes('"msg":"outbound session"')) c.reuseOrSessions++;
    if (/"level":(50|60)/.test(line) && c.problems.length < 5) c.problems.push(line.slice(0, 300));
  }
  return c;
}
