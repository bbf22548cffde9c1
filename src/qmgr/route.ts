/**
 * Routing at delivery is reading: each open recipient of a claimed message
 * carries the route the sink decided when the message was queued
 * (src/sink router.ts, stored in the queue record), and this sorts the
 * recipients by it — local mailboxes (each to the Maildir or the LMTP
 * transport, as stored), the remote transport, or an outcome decided here
 * (discard: delivered; failed: failed; deferred or remote with no remote
 * transport: deferred). Aliases and `[local]` are never consulted: a config
 * change after queueing does not re-route a queued message.
 *
 * Mailboxes already stored for recipients delivered in an earlier attempt are
 * left out, so they are not written again.
 */
import type { ClaimedMessage, MailboxRoute } from "../queue/index.ts";
import type { DeliveryOutcome, RoutedRecipient } from "../delivery/index.ts";
import { REMOTE_NOT_IMPLEMENTED } from "../sink/index.ts";

export { REMOTE_NOT_IMPLEMENTED };

/** A record of an older Wardmail that was not routed yet (the server routes those when it starts, src/queue route-old.ts). */
export const NOT_ROUTED = "no stored route (queued by an older Wardmail; routed when the server starts)";

export interface Routes {
  /** Recipient index -> the local mailboxes still to be written (may be empty: all stored before). */
  readonly local: Map<number, readonly MailboxRoute[]>;
  /** Recipients for the remote transport. */
  readonly remote: RoutedRecipient[];
  /** Recipients whose outcome needs no transport. */
  readonly decided: Map<number, DeliveryOutcome>;
}

export function routeMessage(msg: ClaimedMessage, opts: { readonly hasRemote: boolean }): Routes {
  const stored = new Set<string>();
  for (const r of msg.recipients) {
    if (r.state === "delivered" && r.route?.kind === "local") for (const m of r.route.mailboxes) stored.add(m.mailbox);
  }
  const local = new Map<number, readonly MailboxRoute[]>();
  const remote: RoutedRecipient[] = [];
  const decided = new Map<number, DeliveryOutcome>();
  for (const r of msg.recipients) {
    if (r.state !== "queued" && r.state !== "deferred") continue;
    const route = r.route;
    if (route === undefined) decided.set(r.index, { index: r.index, result: "deferred", error: NOT_ROUTED });
    else if (route.kind === "local") local.set(r.index, route.mailboxes.filter((m) => !stored.has(m.mailbox)));
    else if (route.kind === "discard") decided.set(r.index, { index: r.index, result: "delivered" });
    else if (route.kind === "remote") {
      if (opts.hasRemote) remote.push({ ...r, mailboxes: [r.address] });
      else decided.set(r.index, { index: r.index, result: "deferred", error: REMOTE_NOT_IMPLEMENTED });
    } else if (route.kind === "failed") decided.set(r.index, { index: r.index, result: "failed", error: route.reason });
    else decided.set(r.index, { index: r.index, result: "deferred", error: route.reason });
  }
  return { local, remote, decided };
}
