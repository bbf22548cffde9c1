/**
 * Queue manager: public face of src/qmgr/.
 *
 * - QueueManager (qmgr.ts): one spool shard's claim loop, expiry
 *   (queue.lifetime), recipients sorted by the routes the sink stored with
 *   them (route.ts; never routed again here), dispatch to the transports (Maildir and
 *   LMTP from src/delivery, remote SMTP from src/outbound: one Transport
 *   interface), DSNs through the sink, outcomes recorded in the spool.
 */
export { QueueManager } from "./qmgr.ts";
export type { QueueManagerOptions, QueueManagerStats, QueueViews } from "./qmgr.ts";
export { NOT_ROUTED, REMOTE_NOT_IMPLEMENTED, routeMessage } from "./route.ts";
export type { Routes } from "./route.ts";
