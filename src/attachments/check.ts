/**
 * The attachment policy as a content check: every message, whatever its
 * road. Verdicts "attachment.executable", "attachment.disk_image",
 * "attachment.macro", "attachment.encrypted_archive",
 * "attachment.unscannable"; their action comes from checks.actions, or from
 * attachments.overrides for the message's recipients (a mailbox entry before
 * its domain's; with several recipients the strictest action applies). The
 * reply and the log name the part and the reason.
 */
import type { CheckAction, Config } from "../config/index.ts";
import { fieldValue, headerFields, headOf, type HeaderField } from "../message/index.ts";
import type { Check, CheckInput, CheckOutcome } from "../policy/index.ts";
import { reply, type Reply } from "../protocol/index.ts";
import type { Finding, Kind } from "./detect.ts";
import { WalkerPool } from "./offload.ts";
import type { WalkLimits } from "./walk.ts";

let walkModule: Promise<typeof import("./walk.ts")> | undefined;

/**
 * The MIME walk (walk.ts) in this thread. Its parsers (mailsplit, yauzl)
 * are imported on the first message that needs them: a server that sees
 * only single-part text never loads them.
 */
export async function walkMessage(content: Buffer, limits: WalkLimits, signal?: AbortSignal): Promise<Finding[]> {
  // A failed import is tried again next time, not kept.
  walkModule ??= import("./walk.ts").catch((err: unknown) => {
    walkModule = undefined;
    throw err;
  });
  return (await walkModule).walkMessage(content, limits, signal);
}

/**
 * Messages up to this size are walked on the session's thread: their walk
 * costs well under a millisecond (at worst, 128 KiB of empty lines, a few
 * ms), less than handing them to a thread; bigger ones go to a walker thread.
 */
export const INLINE_MAX = 128 * 1024;

const SEVERITY: Record<CheckAction, number> = { ignore: 0, tag: 1, quarantine: 2, tempfail: 3, reject: 4 };
const KINDS: readonly Kind[] = ["executable", "disk_image", "macro", "encrypted_archive", "unscannable"];
/** Findings written to the log line, at most. */
const MAX_LOGGED = 20;

export interface AttachmentOptions extends WalkLimits {
  /** checks.actions. */
  readonly actions: Readonly<Record<string, CheckAction>>;
  /** attachments.overrides: "domain" or "user@domain" → kind → action. */
  readonly overrides: Readonly<Record<string, Readonly<Record<string, CheckAction>>>>;
  /** Walk messages over INLINE_MAX in worker threads (the server); false: all on this thread (unit tests). */
  readonly threads?: boolean;
}

/** A name from a hostile message, fit for a reply line: printable ASCII, no quotes, at most 60 characters. */
export function shownName(name: string): string {
  const s = name.replace(/[^\x20-\x7e]/g, "?").replace(/"/g, "'");
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** The action for a kind of finding for one recipient: its mailbox's override, its domain's, else the global table. */
function actionFor(opts: AttachmentOptions, recipient: string, kind: Kind): CheckAction {
  const address = recipient.toLowerCase();
  const domain = address.slice(address.lastIndexOf("@") + 1);
  return opts.overrides[address]?.[kind] ?? opts.overrides[domain]?.[kind] ?? opts.actions[`attachment.${kind}`] ?? "ignore";
}

/** The strictest action over the recipients. */
export function strictest(opts: AttachmentOptions, recipients: readonly string[], kind: Kind): CheckAction {
  let best: CheckAction = recipients.length === 0 ? (opts.actions[`attachment.${kind}`] ?? "ignore") : "ignore";
  for (const r of recipients) {
    const a = actionFor(opts, r, kind);
    if (SEVERITY[a] > SEVERITY[best]) best = a;
  }
  return best;
}

function replyFor(kind: Kind, action: CheckAction, f: Finding): Reply | undefined {
  const what = `"${shownName(f.name)}": ${f.reason} (attachment.${kind})`;
  if (action === "reject") return reply(550, "5.7.1", `Attachment refused: ${what}`);
  if (action === "tempfail") return reply(451, "4.7.1", `Attachment held by policy: ${what}; try again later`);
  return undefined;
}

export class AttachmentCheck implements Check {
  readonly name = "attachments";
  private readonly opts: AttachmentOptions;
  private readonly limits: WalkLimits;
  private readonly pool: WalkerPool | undefined;

  constructor(opts: AttachmentOptions) {
    this.opts = opts;
    this.limits = { maxDepth: opts.maxDepth, maxArchiveEntries: opts.maxArchiveEntries, maxUnpacked: opts.maxUnpacked };
    this.pool = opts.threads === true ? new WalkerPool() : undefined;
  }

  /** A hook the runner calls unbound: an arrow function. A single-part text message is decided at once (no promise, no deadline). */
  readonly data = (input: CheckInput): CheckOutcome | Promise<CheckOutcome> => {
    const content = input.content ?? Buffer.alloc(0);
    // The header section the pipeline read once for this content (input.head), else read here.
    if (plainText(content, headOf(content, input.head).fields)) return { verdicts: [] };
    return this.walk(input, content);
  };

  /** The MIME walk (in a worker thread over INLINE_MAX) and the findings' verdicts. */
  private async walk(input: CheckInput, content: Buffer): Promise<CheckOutcome> {
    const findings = this.pool && content.length > INLINE_MAX ? await this.pool.walk(content, this.limits, input.signal) : await walkMessage(content, this.limits, input.signal);
    if (findings.length === 0) return { verdicts: [] };
    const verdicts: string[] = [];
    const actions: Record<string, CheckAction> = {};
    const replies: Record<string, Reply> = {};
    for (const kind of KINDS) {
      const first = findings.find((f) => f.kind === kind);
      if (first === undefined) continue;
      const verdict = `attachment.${kind}`;
      const action = strictest(this.opts, input.recipients, kind);
      verdicts.push(verdict);
      actions[verdict] = action;
      const r = replyFor(kind, action, first);
      if (r) replies[verdict] = r;
    }
    const logged = findings.slice(0, MAX_LOGGED).map((f) => ({ kind: f.kind, name: shownName(f.name), reason: f.reason }));
    return {
      verdicts,
      actions,
      replies,
      logs: [{ level: "warn", msg: "attachment policy", fields: { findings: logged, total: findings.length, actions } }],
    };
  }
}

/**
 * A message with nothing to walk: one part of text (no Content-Type, or
 * text/plain or text/html), without a file name and not declared an
 * attachment. Mail clients show such a body as text; there is no file in
 * it to open. Most mail is this, and the MIME walk is skipped for it.
 */
export function plainText(content: Buffer, fields: readonly HeaderField[] = headerFields(content)): boolean {
  let type = "";
  for (const f of fields) {
    if (f.name === "content-type") {
      if (type !== "") return false; // two of them: let the walk decide
      type = fieldValue(content, f).trim().toLowerCase();
    } else if (f.name === "content-disposition") {
      return false;
    }
  }
  if (type === "") return true;
  return /^text\/(plain|html)\s*(;|$)/.test(type) && !/\b(file)?name\*?\s*=/.test(type);
}

/** The check the config asks for, or undefined when attachments.enabled is false. */
export function attachmentsFromConfig(config: Config): AttachmentCheck | undefined {
  const a = config.attachments;
  if (!a.enabled) return undefined;
  return new AttachmentCheck({ maxDepth: a.maxDepth, maxArchiveEntries: a.maxArchiveEntries, maxUnpacked: a.maxUnpacked, actions: config.checks.actions, overrides: a.overrides, threads: true });
}
