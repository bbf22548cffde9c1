/**
 * The antivirus content check: every message, whatever its road, is sent to
 * clamd before its 250.
 *
 * Verdicts (checks.actions):
 * - "virus.found" (default reject): 554 5.7.1 naming the signature; the
 *   message is never stored.
 * - "virus.error" (default tempfail): clamd unreachable, timing out or
 *   answering an error: 451 4.7.1 (fail closed). An operator who prefers
 *   mail unscanned to mail delayed maps it to "tag" or "ignore".
 * - "virus.too_large" (default tag): the message is larger than
 *   antivirus.max_size (clamd's StreamMaxLength), or clamd said so; it is not
 *   scanned and, by default, delivered with an X-Wardmail-Verdict header.
 */
import { stat } from "node:fs/promises";
import type { ClamdTarget, Config } from "../config/index.ts";
import type { Logger } from "../log/index.ts";
import type { Check, CheckInput, CheckOutcome } from "../policy/index.ts";
import { reply } from "../protocol/index.ts";
import { describeTarget, ping, scan } from "./clamd.ts";

export interface AntivirusOptions {
  readonly target: ClamdTarget;
  readonly timeoutMs: number;
  readonly maxSize: number;
}

/** Where Debian's clamav-daemon listens by default (clamd.conf LocalSocket): tried when antivirus.clamd is "". */
export const DEBIAN_CLAMD_SOCKET = "/run/clamav/clamd.ctl";

const SCANNER_DOWN = reply(451, "4.7.1", "Virus scanner unavailable; try again later");

export class AntivirusCheck implements Check {
  readonly name = "antivirus";
  private readonly opts: AntivirusOptions;

  constructor(opts: AntivirusOptions) {
    this.opts = opts;
  }

  /** A hook the runner calls unbound: an arrow function. */
  readonly data = async (input: CheckInput): Promise<CheckOutcome> => {
    const content = input.content ?? Buffer.alloc(0);
    if (content.length > this.opts.maxSize) {
      return {
        verdicts: ["virus.too_large"],
        notes: { size: content.length, maxSize: this.opts.maxSize },
        logs: [{ level: "warn", msg: "message not scanned: larger than antivirus.max_size", fields: { size: content.length, maxSize: this.opts.maxSize } }],
      };
    }
    const started = performance.now();
    let result;
    try {
      result = await scan(content, { target: this.opts.target, timeoutMs: this.opts.timeoutMs, signal: input.signal });
    } catch (err) {
      return {
        verdicts: ["virus.error"],
        replies: { "virus.error": SCANNER_DOWN },
        logs: [{ level: "error", msg: "virus scan failed", fields: { err: (err as Error).message } }],
      };
    }
    const ms = Math.round((performance.now() - started) * 10) / 10;
    switch (result.kind) {
      case "clean":
        return { verdicts: [], notes: { scanned: content.length, ms } };
      case "infected":
        return {
          verdicts: ["virus.found"],
          replies: { "virus.found": reply(554, "5.7.1", `Message refused: virus found (${result.signature})`) },
          logs: [{ level: "warn", msg: "virus found", fields: { signature: result.signature, size: content.length, ms } }],
        };
      case "too_large":
        return {
          verdicts: ["virus.too_large"],
          logs: [{ level: "warn", msg: "message not scanned: clamd's StreamMaxLength is below antivirus.max_size; set them equal", fields: { size: content.length, maxSize: this.opts.maxSize } }],
        };
    }
  };
}

/** True when path exists and is a socket. */
async function isSocket(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isSocket();
  } catch {
    return false;
  }
}

/**
 * The antivirus check the config asks for, or undefined; logs once whether
 * antivirus is on (and where clamd is) or off (and why). `debianSocket` is
 * where to look when antivirus.clamd is "" (tests point it elsewhere).
 */
export async function antivirusFromConfig(config: Config, logger: Logger, debianSocket = DEBIAN_CLAMD_SOCKET): Promise<AntivirusCheck | undefined> {
  const av = config.antivirus;
  if (!av.enabled) {
    logger.info({ antivirus: "off" }, "antivirus off: antivirus.enabled is false");
    return undefined;
  }
  let target = av.clamd;
  if (target === undefined) {
    if (!(await isSocket(debianSocket))) {
      logger.warn({ antivirus: "off", looked: debianSocket }, `antivirus off: no antivirus.clamd configured and no clamd socket at ${debianSocket}`);
      return undefined;
    }
    target = { path: debianSocket };
  }
  const where = describeTarget(target);
  const timeoutMs = av.timeout * 1000;
  if (await ping({ target, timeoutMs: Math.min(timeoutMs, 2000) })) {
    logger.info({ antivirus: "on", clamd: where, transport: "path" in target ? "unix" : "tcp", maxSize: av.maxSize }, `antivirus on: clamd at ${where}`);
  } else {
    logger.warn({ antivirus: "on", clamd: where, transport: "path" in target ? "unix" : "tcp" }, `antivirus on: clamd at ${where} does not answer PING yet; messages get 451 until it does`);
  }
  return new AntivirusCheck({ target, timeoutMs, maxSize: av.maxSize });
}
