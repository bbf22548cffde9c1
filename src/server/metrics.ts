/**
 * What a session's answers tell the metrics: messages accepted or refused
 * at the end of DATA, MAIL and RCPT refusals, AUTH results. The reason is
 * the reply's code and enhanced status (e.g. "550 5.7.1"): a bounded set
 * our own code chooses, never client input.
 */
import { metrics } from "../metrics/index.ts";
import type { Reply } from "../protocol/index.ts";

export function countAnswer(listener: string, question: "mail" | "rcpt" | "message" | "auth", reply: Reply): void {
  const reason = `${reply.code} ${reply.status}`.trim();
  switch (question) {
    case "message":
      metrics.inc("wardmail_messages_total", { listener, result: reply.code < 400 ? "accepted" : "refused", reason });
      return;
    case "mail":
    case "rcpt":
      if (reply.code >= 400) metrics.inc("wardmail_smtp_refusals_total", { listener, command: question, reason });
      return;
    case "auth":
      if (reply.code === 334) return;
      metrics.inc("wardmail_auth_total", {
        listener,
        result: reply.code === 235 ? "ok" : reply.code === 454 ? "blocked" : reply.code === 501 ? "malformed" : "failed",
      });
  }
}
