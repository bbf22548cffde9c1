/**
 * JSON logs (pino). One root logger per process; sessions and messages use
 * child loggers so every line carries `session` and, once known, `queue`.
 * Rule for callers: never log a password, a key, or message content; log
 * envelope addresses only where an operator needs them (they are not secret
 * but they are personal data), and never raw client input beyond a short,
 * sanitised excerpt.
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

/** A short, printable excerpt of client input for a log line. */
export function excerpt(s: string, max = 80): string {
  const clean = s.replace(/[^\x20-\x7e]/g, "?");
  return clean.length > max ? clean.slice(0, max) + "…" : clean;
}
