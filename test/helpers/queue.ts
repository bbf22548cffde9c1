/**
 * Helpers for the queue and delivery tests only (not exported by index.ts):
 * temporary data directories, a logger whose lines can be inspected, and
 * sample messages shaped like what the SMTP side hands to the spool.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import pino from "pino";
import type { Logger } from "pino";
import type { IncomingMessage, RecipientDsn, RecipientRoute } from "../../src/queue/types.ts";
import type { LocalConfig } from "../../src/sink/index.ts";

export function tempDir(prefix = "wardmail-test-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface CapturedLog {
  readonly logger: Logger;
  readonly lines: Record<string, unknown>[];
  has(msg: string): boolean;
}

/** A pino logger writing JSON lines into memory. */
export function captureLogger(level: pino.Level = "debug"): CapturedLog {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines, has: (msg) => lines.some((l) => l.msg === msg) };
}

/** A message of about `size` bytes with CRLF lines and some 8-bit bytes. */
export function sampleMessage(opts: { from?: string; to?: readonly string[]; size?: number; dsn?: RecipientDsn } = {}): IncomingMessage {
  const to = opts.to ?? ["alice@example.test"];
  const head = Buffer.from(
    "Received: from client.example (client.example [192.0.2.1])\r\n\tby mx.example.test with ESMTP; Thu, 1 Jan 2026 00:00:00 +0000\r\n" +
      `From: <${opts.from ?? "bob@example.org"}>\r\nTo: ${to.join(", ")}\r\nSubject: test \u00e9\r\n\r\n`,
    "utf8",
  );
  const bodyLen = Math.max(0, (opts.size ?? 512) - head.length);
  const body = Buffer.from(randomBytes(Math.ceil(bodyLen / 2)).toString("hex").slice(0, bodyLen), "latin1");
  for (let i = 76; i < body.length - 1; i += 78) {
    body[i] = 0x0d;
    body[i + 1] = 0x0a;
  }
  if (body.length > 4) body[2] = 0xe9; // an 8-bit byte
  return {
    envelope: {
      mailFrom: opts.from ?? "bob@example.org",
      recipients: to.map((address) => ({ address, dsn: opts.dsn ?? {} })),
      body: "8BITMIME",
      smtputf8: false,
    },
    received: {
      sessionId: "s-" + randomBytes(4).toString("hex"),
      clientIp: "192.0.2.1",
      clientPort: 40000,
      helo: "client.example",
      protocol: "ESMTPS",
      tls: { version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256" },
      listener: "smtp",
      receivedAt: Date.now(),
    },
    content: Buffer.concat([head, body]),
  };
}

/**
 * The message with each recipient routed in place by `route` (the sink's
 * Router.routeInPlace): for tests that enqueue to the spool directly, as the
 * sink would have stored the routes (without its alias split).
 */
export function routed(msg: IncomingMessage, route: (address: string) => RecipientRoute): IncomingMessage {
  return { ...msg, envelope: { ...msg.envelope, recipients: msg.envelope.recipients.map((r) => ({ ...r, route: route(r.address) })) } };
}

/** Two local domains with aliases of every kind (nested, a loop, one reaching another domain, one to a missing mailbox, one to a discarded address): the alias tests' [local]. */
export const ALIAS_LOCAL: LocalConfig = {
  domains: ["example.test", "other.test"],
  mailboxes: ["alice@example.test", "bob@example.test", "carol@other.test", "postmaster@example.test"],
  aliases: {
    "team@example.test": ["alice@example.test", "bob@example.test", "all@example.test"],
    "all@example.test": ["Alice@Example.test", "carol@other.test"],
    "loop1@example.test": ["loop2@example.test"],
    "loop2@example.test": ["loop1@example.test"],
    "ext@example.test": ["someone@remote.test", "bob@example.test"],
    "typo@example.test": ["nobody@example.test", "carol@other.test"],
    "quiet@example.test": ["noreply@example.test", "alice@example.test"],
  },
  discard: ["noreply@example.test"],
  maildir: "mail/%d/%n/Maildir",
  lmtp: {},
};
