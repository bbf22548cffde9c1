/**
 * What a session's answers tell the metrics: messages accepted or refused
 * at the end of DATA, MAIL and RCPT refusals, AUTH results. The reason is
 * the reply's code and enhanced status (e.g. "550 5.7.1"): a bounded set
 * our own code chooses, never client input.
 */
import { metrics } from "../metrics/index.ts";
import type { Reply } from "../protocol/index.ts";

/**
 * The counters of messages and refusals, bound once per listener, question
 * and reason (a bounded set: see above), so a message does not build its
 * series key again (the registry sorts and serialises the labels).
 */
const bound = new Map<string, { inc(n?: number): void }>();

function countOnce(key: string, name: string, labels: Record<string, string>): void {
  let c = bound.get(key);
  if (c === undefined) {
    c = metrics.counter(name, labels);
    bound.set(key, c);
  }
  c.inc();
}

export function countAnswer(listener: string, question: "mail" | "rcpt" | "message" | "auth", reply: Reply): void {
  const reason = `${reply.code} ${reply.status}`.trim();
  switch (question) {
    case "message": {
      const result = reply.code < 400 ? "accepted" : "refused";
      countOnce(`${listener}\0${question}\0${reason}`, "wardmail_messages_total", { listener, result, reason });
      return;
    }
    case "mail":
    case "rcpt":
      if (reply.code >= 400) countOnce(`${listener}\0${question}\0${reason}`, "wardmail_smtp_refusals_total", { listener, command: question, reason });
      return;
    case "auth":
      if (reply.code === 334) return;
      metrics.inc("wardmail_auth_total", {
        listener,
        result: reply.code === 235 ? "ok" : reply.code === 454 ? "blocked" : reply.code === 501 ? "malformed" : "failed",
      });
  }
}
