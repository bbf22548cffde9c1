/**
 * Which delivery outcomes become DSNs (RFC 3464, with RFC 3461 NOTIFY,
 * RET, ENVID and ORCPT), and the messages to queue for them.
 *
 * - A failed recipient is reported unless it asked NOTIFY=NEVER, or gave a
 *   NOTIFY list without FAILURE (no NOTIFY at all means FAILURE, §4.1).
 * - A deferred recipient gets one delay notice when the message first
 *   passes queue.delay_notice (NOTIFY=DELAY, or no NOTIFY).
 * - Never a DSN to the null sender <> (RFC 5321 §6.1: no bounce loops).
 * - A REQUIRETLS message (RFC 8689 §5) is returned as if RET=HDRS: its
 *   header only, whatever RET it asked for, because the way back to the
 *   sender need not be protected by TLS; its body never travels in a DSN.
 * - The DSN itself is queued like any message, from <> to the sender, and
 *   is queued before the outcome that caused it is recorded: a crash in
 *   between gives at most a second DSN, never none.
 */
import type { Config } from "../config/index.ts";
import type { ClaimedMessage } from "../queue/index.ts";
import type { Envelope, QueuedRecipient } from "../queue/index.ts";

/** A message Wardmail writes itself, to queue through the sink (src/sink) as a local origin. */
export interface LocalMessage {
  readonly envelope: Envelope;
  readonly content: Buffer;
}
import { buildDsn, type DsnRecipient } from "./dsn.ts";
import type { RemoteOutcome } from "./transport.ts";

function wants(r: QueuedRecipient, what: "FAILURE" | "DELAY"): boolean {
  const notify = r.dsn.notify;
  if (notify === undefined) return true;
  return notify.map((n) => n.toUpperCase()).includes(what);
}

/** True when this attempt is the first past the delay-notice mark (elapsed minus this attempt's nominal wait is before it). */
export function delayNoticeDue(msg: ClaimedMessage, now: number, queue: Config["queue"]): boolean {
  if (queue.delayNotice <= 0 || msg.attempts === 0) return false;
  const elapsed = now - msg.createdAt;
  const mark = queue.delayNotice * 1000;
  const wait = Math.min(queue.retryMax * 1000, queue.retryMin * 1000 * 2 ** Math.min(msg.attempts - 1, 30));
  return elapsed >= mark && elapsed - wait < mark;
}

/** The DSNs (0, 1 or 2: failures and delays) to queue for these outcomes. */
export function dsnsFor(msg: ClaimedMessage, outcomes: readonly RemoteOutcome[], opts: { hostname: string; queue: Config["queue"]; now?: number }): LocalMessage[] {
  if (msg.envelope.mailFrom === "") return [];
  const now = opts.now ?? Date.now();
  const failed: DsnRecipient[] = [];
  const delayed: DsnRecipient[] = [];
  const delayDue = delayNoticeDue(msg, now, opts.queue);
  for (const o of outcomes) {
    const r = msg.recipients[o.index];
    if (!r) continue;
    const base = {
      address: r.address,
      ...(r.dsn.orcpt !== undefined ? { orcpt: r.dsn.orcpt } : {}),
      ...(o.remoteMta !== undefined ? { remoteMta: o.remoteMta } : {}),
      lastAttempt: new Date(now),
    };
    if (o.result === "failed" && wants(r, "FAILURE")) {
      failed.push({ ...base, action: "failed", status: o.status ?? "5.0.0", diagnostic: o.diagnostic ?? `x-wardmail; ${o.error ?? "failed"}` });
    } else if (o.result === "deferred" && delayDue && wants(r, "DELAY")) {
      delayed.push({ ...base, action: "delayed", status: o.status ?? "4.0.0", diagnostic: o.diagnostic ?? `x-wardmail; ${o.error ?? "deferred"}`, willRetryUntil: new Date(msg.createdAt + opts.queue.lifetime * 1000) });
    }
  }
  const out: LocalMessage[] = [];
  for (const list of [failed, delayed]) {
    if (list.length === 0) continue;
    let dsn;
    try {
      dsn = buildDsn({
        reportingMta: opts.hostname,
        from: `MAILER-DAEMON@${opts.hostname}`,
        to: msg.envelope.mailFrom,
        ...(msg.envelope.envid !== undefined ? { envid: msg.envelope.envid } : {}),
        arrivalDate: new Date(msg.createdAt),
        recipients: list,
        original: msg.content,
        ret: msg.envelope.requireTls === true ? "HDRS" : msg.envelope.ret,
        now: new Date(now),
      });
    } catch {
      // A sender that cannot be written into RCPT TO or To: (it came through the
      // parser, so this is rare): there is no one to tell.
      continue;
    }
    if (!dsn) continue;
    out.push({
      envelope: { mailFrom: "", recipients: [{ address: dsn.rcptTo, dsn: { notify: ["NEVER"] } }], smtputf8: dsn.smtputf8, ...(dsn.body === "8BITMIME" ? { body: "8BITMIME" as const } : {}) },
      content: dsn.content,
    });
  }
  return out;
}
