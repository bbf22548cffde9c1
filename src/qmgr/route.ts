/**
 * Routing: where each open recipient of a claimed message goes, decided once
 * per message from resolve.ts resolveRecipient (src/delivery) — local
 * mailboxes (split between the Maildir and the LMTP transports by local.lmtp),
 * the remote transport, or an outcome decided here (discarded: delivered;
 * unknown local address: failed; remote with no remote transport, or an alias
 * with a target in another domain: deferred).
 *
 * Mailboxes already stored for recipients delivered in an earlier attempt are
 * left out, so they are not written again.
 */
import type { Logger } from "pino";
import type { ClaimedMessage } from "../queue/index.ts";
import { resolveRecipient, type DeliveryOutcome, type LocalConfig, type RoutedRecipient } from "../delivery/index.ts";

export const REMOTE_NOT_IMPLEMENTED = "remote delivery not implemented";

export interface Routes {
  /** Recipient index -> the local mailboxes still to be written (may be empty: all stored before). */
  readonly local: Map<number, readonly string[]>;
  /** Recipients for the remote transport. */
  readonly remote: RoutedRecipient[];
  /** Recipients whose outcome needs no transport. */
  readonly decided: Map<number, DeliveryOutcome>;
}

export function routeMessage(
  msg: ClaimedMessage,
  opts: { readonly local: LocalConfig; readonly isAccount: ((address: string) => boolean) | undefined; readonly hasRemote: boolean; readonly log: Logger },
): Routes {
  const stored = new Set<string>();
  for (const r of msg.recipients) {
    if (r.state !== "delivered") continue;
    const res = resolveRecipient(opts.local, r.address, opts.isAccount);
    if (res.remote.length === 0) for (const m of res.mailboxes) stored.add(m);
  }
  const local = new Map<number, readonly string[]>();
  const remote: RoutedRecipient[] = [];
  const decided = new Map<number, DeliveryOutcome>();
  for (const r of msg.recipients) {
    if (r.state !== "queued" && r.state !== "deferred") continue;
    const res = resolveRecipient(opts.local, r.address, opts.isAccount);
    for (const s of res.skipped) {
      if (s.address !== r.address.toLowerCase()) {
        opts.log.warn({ queueId: msg.id, session: msg.received.sessionId, rcpt: r.address, target: s.address, reason: s.reason }, "alias target skipped");
      }
    }
    if (res.remote.length > 0) {
      // Aliases to other domains were expanded before queueing, so this is a recipient in another domain.
      const direct = res.remote.length === 1 && res.mailboxes.length === 0 && res.remote[0] === r.address.toLowerCase();
      if (opts.hasRemote && direct) remote.push({ ...r, mailboxes: [r.address] });
      else decided.set(r.index, { index: r.index, result: "deferred", error: REMOTE_NOT_IMPLEMENTED });
    } else if (res.mailboxes.length === 0 && res.discarded.length > 0) {
      // Only discarded targets: done, nothing to write (as Postfix's discard:).
      decided.set(r.index, { index: r.index, result: "delivered" });
    } else if (res.mailboxes.length === 0) {
      const reason = res.skipped.map((s) => s.reason).find((x) => x !== "no such mailbox") ?? "no such mailbox";
      decided.set(r.index, { index: r.index, result: "failed", error: reason });
    } else {
      local.set(r.index, res.mailboxes.filter((m) => !stored.has(m)));
    }
  }
  return { local, remote, decided };
}
