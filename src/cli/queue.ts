/**
 * `wardmail queue list|show ID|hold ID|release ID|retry ID|delete ID|damaged [--json] [--config FILE]`.
 * Works on the spool shards under the configured data directory, safely while
 * the server runs (SQLite WAL, busy timeout); the workers see the change at
 * their next scheduling pass. `show` prints the envelope and headers, never
 * the body unless --content is given (message content is personal data).
 */
import { parseArgs } from "node:util";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DamagedRecordError, isQueueId, QueueAdmin, type QueueEntry, type RecipientRoute } from "../queue/index.ts";
import type { Io } from "./main.ts";
import { loadCommandConfig } from "./load-config.ts";

export const QUEUE_HELP = `Usage: wardmail queue <action> [ID] [--json] [--config FILE]

Actions:
  list              every message in the queue (id, state, size, sender, recipients, next attempt)
  show ID           one message: envelope, per-recipient state, headers (--content adds the body)
  hold ID           keep a message from being delivered until released
  release ID        release a held message (due now)
  retry ID          make a queued or deferred message due now
  delete ID         remove a message from the queue for good
  damaged           records set aside because they failed their checks (tampered,
                    undecryptable): id, when, why; list also counts them

Options:
  --json            machine-readable output
  --config FILE     config whose data directory to use (default: embedded defaults)
  --content         with show: include the message body
Exit codes: 0 done, 1 unknown id (or nothing to act on), 2 usage error, 3 cannot read the queue.
`;

export async function queueCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      json: { type: "boolean" },
      config: { type: "string", short: "c" },
      content: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    io.out(QUEUE_HELP);
    return 0;
  }
  const [action, id, ...extra] = positionals;
  const needsId = action !== "list" && action !== "damaged";
  const known = ["list", "show", "hold", "release", "retry", "delete", "damaged"];
  if (action === undefined || !known.includes(action) || (needsId && id === undefined) || (!needsId && id !== undefined) || extra.length > 0) {
    io.err(`wardmail queue: ${action === undefined ? "missing action" : known.includes(action) ? "wrong arguments" : `unknown action '${action}'`}\n\n${QUEUE_HELP}`);
    return 2;
  }
  // QueueAdmin throws on text that is not a queue id: answer "no such message" (exit 1), not an internal error.
  if (id !== undefined && !isQueueId(id.trim().toLowerCase())) {
    io.err(`wardmail queue: not a queue id: ${JSON.stringify(id.slice(0, 64))}\n`);
    return 1;
  }
  const config = await loadCommandConfig(values.config, io);
  if (config === undefined) return 3;
  if (!existsSync(join(config.server.dataDir, "spool"))) {
    if (action === "list" || action === "damaged") {
      io.out(values.json ? "[]\n" : action === "list" ? "queue is empty\n" : "no damaged records\n");
      return 0;
    }
    io.err(`wardmail queue: no such message ${id}\n`);
    return 1;
  }
  const admin = QueueAdmin.open(config.server.dataDir);
  try {
    switch (action) {
      case "list": {
        const entries = admin.list();
        if (values.json) io.out(JSON.stringify(entries.map(summary)) + "\n");
        else io.out(entries.length === 0 ? "queue is empty\n" : table(entries));
        const damaged = admin.damaged().length;
        if (!values.json && damaged > 0) io.out(`${damaged} damaged record${damaged === 1 ? "" : "s"} set aside (wardmail queue damaged)\n`);
        return 0;
      }
      case "damaged": {
        const list = admin.damaged();
        if (values.json) io.out(JSON.stringify(list.map((d) => ({ id: d.id, shard: d.shard, detectedAt: new Date(d.detectedAt).toISOString(), reason: d.reason }))) + "\n");
        else if (list.length === 0) io.out("no damaged records\n");
        else for (const d of list) io.out(`${d.id.padEnd(20)} ${new Date(d.detectedAt).toISOString()}  ${d.reason}\n`);
        return 0;
      }
      case "show": {
        let m;
        try {
          m = admin.get(id as string);
        } catch (err) {
          if (!(err instanceof DamagedRecordError)) throw err;
          io.err(`wardmail queue: message ${id} is damaged and was moved aside: ${err.message}\n`);
          return 1;
        }
        if (!m) return unknown(io, id as string);
        const text = m.content.toString("utf8");
        const headerEnd = text.indexOf("\r\n\r\n");
        const headers = headerEnd < 0 ? text : text.slice(0, headerEnd + 2);
        const out = { ...summary(m), received: m.received, recipients: m.recipients, headers, ...(values.content ? { content: text } : {}) };
        if (values.json) io.out(JSON.stringify(out) + "\n");
        else io.out(`${formatDetails(m)}\n${headers}${values.content ? "\r\n" + text.slice(headerEnd + 4) : ""}\n`);
        return 0;
      }
      default: {
        const act = action as "hold" | "release" | "retry" | "delete";
        const done = admin[act](id as string);
        if (!done) return unknown(io, id as string, act);
        if (values.json) io.out(JSON.stringify({ id, action: act, ok: true }) + "\n");
        else io.out(`${id}: ${act === "delete" ? "deleted" : act === "hold" ? "held" : act === "release" ? "released" : "due now"}\n`);
        return 0;
      }
    }
  } finally {
    admin.close();
  }
}

function unknown(io: Io, id: string, act?: string): number {
  io.err(`wardmail queue: no such message${act ? ` in a state that allows ${act}` : ""}: ${id}\n`);
  return 1;
}

function summary(e: QueueEntry) {
  return {
    id: e.id,
    state: e.state,
    size: e.size,
    from: e.envelope.mailFrom,
    to: e.recipients.map((r) => r.address),
    createdAt: new Date(e.createdAt).toISOString(),
    nextAttemptAt: new Date(e.nextAttemptAt).toISOString(),
    attempts: e.attempts,
    ...(e.lastError ? { lastError: e.lastError } : {}),
  };
}

function table(entries: readonly QueueEntry[]): string {
  let out = `${"ID".padEnd(20)} ${"STATE".padEnd(9)} ${"SIZE".padStart(9)}  FROM -> TO\n`;
  for (const e of entries) {
    out += `${e.id.padEnd(20)} ${e.state.padEnd(9)} ${String(e.size).padStart(9)}  <${e.envelope.mailFrom}> -> ${e.recipients.map((r) => `<${r.address}>`).join(", ")}\n`;
    if (e.lastError) out += `${"".padEnd(20)} last error: ${e.lastError}\n`;
  }
  return out + `${entries.length} message${entries.length === 1 ? "" : "s"}\n`;
}

function formatDetails(e: QueueEntry): string {
  const lines = [
    `id:        ${e.id}`,
    `state:     ${e.state}`,
    `size:      ${e.size}`,
    `from:      <${e.envelope.mailFrom}>`,
    `received:  ${new Date(e.createdAt).toISOString()} from ${e.received.clientIp || "local"} (${e.received.helo}) via ${e.received.listener}${e.received.tls ? ` ${e.received.tls.version}` : ""}`,
    `next try:  ${new Date(e.nextAttemptAt).toISOString()} (attempts ${e.attempts})`,
    ...e.recipients.flatMap((r) => [`rcpt:      <${r.address}> ${r.state}${r.lastError ? ` (${r.lastError})` : ""}`, `  route:   ${formatRoute(r.route)}`]),
  ];
  return lines.join("\n") + "\n";
}

/** A recipient's stored route on one line, as `queue show` prints it. */
export function formatRoute(route: RecipientRoute | undefined): string {
  if (!route) return "none stored (queued by an older Wardmail, routed at the next start)";
  switch (route.kind) {
    case "local":
      return `local: ${route.mailboxes.map((m) => `<${m.mailbox}> ${"maildir" in m ? `Maildir ${m.maildir}` : `LMTP ${"path" in m.lmtp ? m.lmtp.path : `${m.lmtp.host}:${m.lmtp.port}`}`}`).join(", ")}`;
    case "discard":
      return "discard (local.discard)";
    case "remote":
      return `remote: ${route.domain}`;
    case "failed":
      return `failed: ${route.reason}`;
    case "deferred":
      return `deferred: ${route.reason}`;
  }
}
