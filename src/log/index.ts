/**
 * JSON logs (pino). One root logger per process; sessions and messages use
 * child loggers so every line carries `session` and, once known, `queueId`.
 * Rule for callers: never log a password, a key, or message content; log
 * envelope addresses only where an operator needs them (they are not secret
 * but they are personal data), and client input only as parsed, checked
 * values (addresses), never raw lines.
 */
import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

export interface LogOptions {
  readonly level: LevelWithSilent;
  /** Extra fields on every line (e.g. worker number). */
  readonly base?: Record<string, unknown>;
  /** Where to write; default stdout (fd 1). */
  readonly destination?: number | string;
}

export function createLogger(opts: LogOptions): Logger {
  return pino(
    {
      level: opts.level,
      base: { pid: process.pid, ...opts.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Secrets never reach a log line, even by accident through an object.
      redact: { paths: ["password", "*.password", "key", "*.key", "secret", "*.secret"], censor: "[redacted]" },
    },
    pino.destination({ dest: opts.destination ?? 1, sync: false }),
  );
}

/**
 * Resolves once the log destination has written everything out (at most
 * timeoutMs). The primary ends this thread as soon as it gets "stopped", and
 * the destination is asynchronous (sonic-boom): a write still in flight is
 * lost with the thread. logger.flush(cb) does not wait for it (it calls back
 * at once when sonic-boom's minLength is 0, the default), so this waits for
 * the stream's "drain", which it emits when its buffer is empty.
 */
export async function logWritten(logger: Logger, timeoutMs: number): Promise<void> {
  logger.flush();
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as
    | { _writing?: unknown; once?: (event: string, listener: () => void) => unknown }
    | undefined;
  if (stream?._writing !== true || typeof stream.once !== "function") return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    stream.once?.("drain", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
