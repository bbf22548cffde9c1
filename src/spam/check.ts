/**
 * The spam check: a content check (src/server/checks.ts, every message
 * whatever its listener or client) that asks rspamd (rspamd.ts) at the end
 * of DATA and turns its action into a verdict for the operator's table
 * (config checks.actions):
 *
 *   reject → spam.reject, soft reject → spam.soft_reject, greylist →
 *   spam.greylist, add header → spam.add_header, rewrite subject →
 *   spam.rewrite_subject, no action → none; rspamd unreachable, slow or
 *   answering nonsense → spam.error (default: accept and tag).
 *
 * What rspamd sees: the message without the header fields we write
 * ourselves (a forged X-Wardmail-Spam or Authentication-Results claiming
 * our authserv-id is removed), with the Authentication-Results of our
 * inbound checks on top, and the envelope, client, HELO and account as
 * request headers. The check never throws for rspamd's failures (they are
 * the verdict spam.error), so the runner's fail-closed 451 is left for our
 * own bugs.
 *
 * Every scanned message gets X-Wardmail-Spam with the score, the
 * threshold, the action and the matched symbols (or "error"/"skipped").
 */
import type { Check, CheckInput, CheckOutcome } from "../policy/index.ts";
import { reply, type Reply } from "../protocol/index.ts";
import { stripOwnHeaders } from "../message/index.ts";
import { RspamdClient, type RspamdAction, type RspamdResult } from "./rspamd.ts";

export const SPAM_HEADER = "X-Wardmail-Spam";

const VERDICT: Readonly<Record<RspamdAction, string | undefined>> = {
  "reject": "spam.reject",
  "soft reject": "spam.soft_reject",
  "greylist": "spam.greylist",
  "add header": "spam.add_header",
  "rewrite subject": "spam.rewrite_subject",
  "no action": undefined,
};

const REPLIES: Readonly<Record<string, Reply>> = {
  "spam.reject": reply(550, "5.7.1", "Message rejected as spam"),
  "spam.soft_reject": reply(451, "4.7.1", "Message deferred by the spam filter; try again later"),
  "spam.greylist": reply(451, "4.7.1", "Greylisted; try again later"),
  "spam.error": reply(451, "4.7.1", "Spam filter unavailable; try again later"),
};

export interface SpamCheckOptions {
  /** "http://host:port" of rspamd's normal worker. */
  readonly url: string;
  readonly timeoutMs: number;
  /** Larger messages are not scanned. */
  readonly maxSize: number;
  /** Our authserv-id: Authentication-Results claiming it are removed before scanning. */
  readonly authservId: string;
  /** For tests and benches: another client. */
  readonly client?: Pick<RspamdClient, "check">;
}

/** "A,B,C" folded into lines of about 76 characters (CRLF + tab), at commas only. */
function folded(head: string, words: readonly string[]): string {
  let out = head;
  let line = head.length;
  words.forEach((w, i) => {
    const piece = `${i === 0 ? "" : ","}${w}`;
    if (line + piece.length > 76 && i > 0) {
      out += ",\r\n\t" + w;
      line = 1 + w.length;
    } else {
      out += piece;
      line += piece.length;
    }
  });
  return out;
}

/** The X-Wardmail-Spam field for an answer. */
export function scoreHeader(r: RspamdResult): string {
  const head = `${SPAM_HEADER}: score=${r.score.toFixed(2)} required=${r.required.toFixed(2)} action="${r.action}"`;
  return r.symbols.length === 0 ? head : folded(`${head}\r\n\tsymbols=`, r.symbols);
}

export class SpamCheck implements Check {
  readonly name = "spam";
  private readonly opts: SpamCheckOptions;
  private readonly client: Pick<RspamdClient, "check">;

  constructor(opts: SpamCheckOptions) {
    this.opts = opts;
    this.client = opts.client ?? new RspamdClient(opts.url, opts.timeoutMs);
  }

  readonly data = async (input: CheckInput): Promise<CheckOutcome> => {
    const content = input.content;
    if (content === undefined) return { verdicts: [] };
    if (content.length > this.opts.maxSize) {
      return { verdicts: [], headers: [`${SPAM_HEADER}: skipped (size ${content.length} over ${this.opts.maxSize})`] };
    }
    const ours = (input.earlier?.headers ?? []).filter((h) => /^authentication-results:/i.test(h)).map((h) => `${h}\r\n`).join("");
    const body = [Buffer.from(ours, "utf8"), stripOwnHeaders(content, this.opts.authservId)];
    const started = Date.now();
    let r: RspamdResult;
    try {
      r = await this.client.check({
        clientIp: input.clientIp,
        helo: input.helo,
        mailFrom: input.mailFrom,
        recipients: input.recipients,
        ...(input.authUser !== undefined ? { user: input.authUser } : {}),
        body,
        signal: input.signal,
      });
    } catch (err) {
      return {
        verdicts: ["spam.error"],
        headers: [`${SPAM_HEADER}: error (rspamd unavailable)`],
        logs: [{ level: "warn", msg: "rspamd failed; verdict spam.error", fields: { err: (err as Error).message, ms: Date.now() - started } }],
        replies: { "spam.error": REPLIES["spam.error"] as Reply },
      };
    }
    const verdict = VERDICT[r.action];
    return {
      verdicts: verdict === undefined ? [] : [verdict],
      headers: [scoreHeader(r)],
      notes: { score: r.score, required: r.required, action: r.action, ms: Date.now() - started },
      ...(verdict !== undefined && REPLIES[verdict] !== undefined ? { replies: { [verdict]: REPLIES[verdict] } } : {}),
    };
  };
}
