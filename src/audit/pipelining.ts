/**
 * Pipelining desynchronisation (RFC 2920), on two connections of its own:
 *
 * - early: right after the greeting, "EHLO" and "MAIL FROM:<>" in one
 *   write. EHLO must end a group (RFC 2920 §3.1) and nothing is advertised
 *   yet, so a server that enforces command synchronisation refuses the
 *   early MAIL (Exim's "synchronization error", Postfix's
 *   smtpd_forbid_unauth_pipelining); one that answers it 2xx reads ahead of
 *   the dialogue, which is what spambots and reply-desync tricks rely on.
 * - group (only when PIPELINING is advertised): MAIL, two RCPTs, RSET and
 *   NOOP in one write must get exactly five replies, in order (NOOP's 250
 *   last), then a lone NOOP exactly one: fewer replies (input dropped) or
 *   more (a command answered twice) leave every pipelining client matching
 *   replies to the wrong commands.
 *
 * Polite: no DATA; both connections end with RSET and QUIT (Probe.finish).
 */
import { randomBytes } from "node:crypto";
import { replyText, type Reply } from "../protocol/index.ts";
import { openGreeted, ProbeError, type ProbeTarget } from "./probe.ts";
import type { Finding } from "./types.ts";

const text = (r: Reply): string => `${r.code} ${replyText(r)}`;

/** Replies that arrive within `ms` each, at most `max`. */
async function collect(probe: { replyWithin(ms: number): Promise<Reply | undefined> }, max: number, ms: number): Promise<Reply[]> {
  const out: Reply[] = [];
  while (out.length < max) {
    const r = await probe.replyWithin(ms);
    if (r === undefined) break;
    out.push(r);
  }
  return out;
}

export async function pipeliningCheck(target: ProbeTarget, local: string): Promise<Finding[]> {
  const findings: Finding[] = [];
  // Early: a command before the EHLO reply.
  {
    const { probe } = await openGreeted(target);
    try {
      probe.write(`EHLO ${target.helo}\r\nMAIL FROM:<>\r\n`);
      const replies = await collect(probe, 2, target.timeoutMs);
      const ehlo = replies[0];
      const mail = replies[1];
      if (ehlo !== undefined && ehlo.code === 250 && mail !== undefined && mail.code >= 200 && mail.code < 300) {
        findings.push({
          id: "smtp.pipelining.early",
          severity: "low",
          area: "relay",
          title: "commands sent before the reply to EHLO are executed: the server does not enforce SMTP command synchronisation (RFC 2920 §3.1)",
          evidence: `"EHLO ...\\r\\nMAIL FROM:<>\\r\\n" in one write: ${replies.map(text).join(" | ")}`,
          fix: "refuse commands that arrive before their turn (Postfix: smtpd_forbid_unauth_pipelining = yes; Exim does it by default)",
        });
      }
    } catch (e) {
      if (!(e instanceof ProbeError)) throw e;
      // A server that drops the connection for the early command enforces synchronisation.
    } finally {
      await probe.finish();
    }
  }
  // Group: exactly one reply per command.
  const { probe } = await openGreeted(target);
  try {
    const { ext } = await probe.ehlo();
    if (ext === undefined || !ext.pipelining) return findings;
    const group = ["MAIL FROM:<>", `RCPT TO:<wm-audit-${randomBytes(4).toString("hex")}@${local}>`, `RCPT TO:<postmaster@${local}>`, "RSET", "NOOP"];
    probe.write(group.map((c) => `${c}\r\n`).join(""));
    const replies = await collect(probe, group.length + 2, target.timeoutMs);
    let extra: Reply[] = [];
    if (replies.length === group.length && probe.usable) {
      probe.write("NOOP\r\n");
      extra = await collect(probe, 3, Math.min(target.timeoutMs, 2000));
    }
    const last = replies[group.length - 1];
    const inOrder = replies.length === group.length && last !== undefined && last.code === 250 && extra.length === 1 && extra[0]?.code === 250;
    const closed = !probe.usable && replies.length < group.length && replies.some((r) => r.code === 421);
    if (!inOrder && !closed) {
      findings.push({
        id: "smtp.pipelining.desync",
        severity: "medium",
        area: "relay",
        title: "pipelined commands do not get exactly one reply each, in order: pipelining clients match replies to the wrong commands",
        evidence: `${group.length} commands in one write (${group.join(", ")}) got ${replies.length} replies (${replies.map(text).join(" | ")}); a lone NOOP then got ${extra.length} (${extra.map(text).join(" | ")})`,
        fix: "fix or upgrade the server (or a proxy in front of it): every pipelined command must get exactly one reply, in order (RFC 2920 §3.1)",
      });
    }
  } finally {
    await probe.finish();
  }
  return findings;
}
