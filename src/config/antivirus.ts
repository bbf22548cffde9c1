/**
 * The checks of the [antivirus] and [attachments] sections that are more than
 * a number or a boolean. Pure, no I/O.
 *
 * - antivirus.clamd: "" (look for Debian's socket at startup), "IP:port",
 *   "[IPv6]:port", "/absolute/socket/path" or "unix:/absolute/socket/path".
 * - attachments.overrides: a table of "domain" or "user@domain" to a table of
 *   the attachment verdicts' short names ("executable", "disk_image",
 *   "macro", "encrypted_archive", "unscannable") to an action.
 */
import type { PathSegment } from "./locate.ts";
import type { CheckContext } from "./keys.ts";
import type { CheckAction, ClamdTarget } from "./types.ts";
import { CHECK_ACTIONS, MAX_SOCKET_PATH } from "./checkers.ts";
import { describe, isTable, parseAddress, parseDomain, parseListen, type Parsed } from "./syntax.ts";

/** The attachment verdicts (each "attachment.NAME" in checks.actions) an override may set. */
export const ATTACHMENT_KINDS = ["executable", "disk_image", "macro", "encrypted_archive", "unscannable"] as const;

/** Most entries in attachments.overrides. */
export const MAX_ATTACHMENT_OVERRIDES = 10000;

/** "" → undefined (auto-detect); a TCP address or a unix socket path otherwise. */
export function parseClamdTarget(input: string): Parsed<ClamdTarget | undefined> {
  const expected = 'a clamd address "IP:port", "[IPv6]:port", an absolute unix socket path ("/run/clamav/clamd.ctl"), or "" to look for Debian\'s socket';
  if (input === "") return { ok: true, value: undefined };
  const p = input.startsWith("unix:") ? input.slice(5) : input;
  if (p.startsWith("/")) {
    if (/[\x00-\x1f\x7f]/.test(p)) return { ok: false, expected };
    if (Buffer.byteLength(p) > MAX_SOCKET_PATH) return { ok: false, expected: `${expected} (a socket path of at most ${MAX_SOCKET_PATH} bytes)` };
    return { ok: true, value: { path: p } };
  }
  const l = parseListen(input);
  return l.ok ? { ok: true, value: { host: l.value.host, port: l.value.port } } : { ok: false, expected };
}

export function clamdTarget(v: unknown, path: readonly PathSegment[], ctx: CheckContext): unknown {
  if (typeof v !== "string") {
    ctx.issue(path, `expected a clamd address (a string), got ${describe(v)}`);
    return undefined;
  }
  const p = parseClamdTarget(v);
  if (!p.ok) {
    ctx.issue(path, `expected ${p.expected}, got ${describe(v)}`);
    return undefined;
  }
  // "" stays "" so that the loader can tell "auto" from a bad value (undefined).
  return p.value ?? "";
}

/** [attachments.overrides."example.org"] / ."user@example.org": kind = action. */
export function attachmentOverrides(v: unknown, path: readonly PathSegment[], ctx: CheckContext): unknown {
  if (!isTable(v)) {
    ctx.issue(path, `expected a table of "domain" or "user@domain" = { executable = "reject", ... }, got ${describe(v)}`);
    return undefined;
  }
  const entries = Object.entries(v);
  if (entries.length > MAX_ATTACHMENT_OVERRIDES) {
    ctx.issue(path, `expected at most ${MAX_ATTACHMENT_OVERRIDES} entries, got ${entries.length}`);
    return undefined;
  }
  const out: Record<string, Record<string, CheckAction>> = {};
  let ok = true;
  for (const [key, table] of entries) {
    const at = [...path, key];
    const parsed = key.includes("@") ? parseAddress(key) : parseDomain(key);
    if (!parsed.ok) {
      ctx.issue(at, `expected a domain or a mail address as the key, got ${describe(key)}`);
      ok = false;
      continue;
    }
    if (Object.hasOwn(out, parsed.value)) {
      ctx.issue(at, `${parsed.value} is listed twice`);
      ok = false;
      continue;
    }
    if (!isTable(table)) {
      ctx.issue(at, `expected a table of ${ATTACHMENT_KINDS.join(", ")} = "action", got ${describe(table)}`);
      ok = false;
      continue;
    }
    const actions: Record<string, CheckAction> = {};
    for (const [kind, action] of Object.entries(table)) {
      if (!(ATTACHMENT_KINDS as readonly string[]).includes(kind)) {
        ctx.issue([...at, kind], `unknown key; expected one of ${ATTACHMENT_KINDS.join(", ")}`);
        ok = false;
      } else if (typeof action !== "string" || !(CHECK_ACTIONS as readonly string[]).includes(action)) {
        ctx.issue([...at, kind], `expected one of ${CHECK_ACTIONS.map((a) => JSON.stringify(a)).join(", ")}, got ${describe(action)}`);
        ok = false;
      } else {
        actions[kind] = action as CheckAction;
      }
    }
    out[parsed.value] = actions;
  }
  return ok ? out : undefined;
}
