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
