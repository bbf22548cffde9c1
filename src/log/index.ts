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

/**
 * Lines are written in batches: once LOG_BATCH_BYTES are waiting, or
 * LOG_BATCH_MS after the first line of a batch, whichever comes first (and
 * at once by logWritten, and by pino at the process's exit). Written line
 * by line, the destination made one write through libuv's thread pool per
 * line, two per message at the default level: 0.07-0.1 ms of CPU per message
 * at 1 message per connection (docs/benchmarks.md, "Ninth round"). A thread
 * that dies without stopping (an uncaught error, a fatal signal to the
 * process) loses at most its last LOG_BATCH_MS of lines. 2 ms, not more: a
 * line shows up about as soon as before (under load 4 KiB fill in a few
 * ms anyway); at 20 ms a test that read a server's line right after the
 * event that follows it failed once in five runs of the suite.
 */
export const LOG_BATCH_BYTES = 4096;
export const LOG_BATCH_MS = 2;

export function createLogger(opts: LogOptions): Logger {
  const destination = pino.destination({ dest: opts.destination ?? 1, sync: false, minLength: LOG_BATCH_BYTES });
  flushWithin(destination, LOG_BATCH_MS);
  return pino(
    {
      level: opts.level,
      base: { pid: process.pid, ...opts.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Secrets never reach a log line, even by accident through an object.
      redact: { paths: ["password", "*.password", "key", "*.key", "secret", "*.secret"], censor: "[redacted]" },
    },
    destination,
  );
}

/** The parts of sonic-boom (pino.destination) flushWithin uses; `_len` (bytes waiting) and `_writing` are its own fields (pinned version; src/log/index.test.ts). */
interface Destination {
  write(data: string): boolean;
  flush(): void;
  readonly destroyed: boolean;
  readonly _len: number;
  readonly _writing: boolean;
}

/** Makes `stream` (sonic-boom with a minLength) write what waits at most `ms` after the first line of a batch. */
function flushWithin(stream: unknown, ms: number): void {
  const s = stream as Destination;
  const write = s.write.bind(s);
  let timer: NodeJS.Timeout | undefined;
  const due = (): void => {
    timer = undefined;
    if (s.destroyed || s._len === 0) return;
    if (s._writing) arm(); // the write in flight takes what it can; the rest waits for the next deadline
    else s.flush();
  };
  const arm = (): void => {
    timer = setTimeout(due, ms);
    timer.unref();
  };
  (s as { write: (data: string) => boolean }).write = (data: string): boolean => {
    const more = write(data);
    if (timer === undefined && s._len > 0) arm();
    return more;
  };
}

/**
 * Resolves once the log destination has written everything out (at most
 * timeoutMs). The primary ends this thread as soon as it gets "stopped", and
 * the destination is asynchronous (sonic-boom): a write still in flight, or
 * lines waiting for their batch, are lost with the thread. logger.flush()
 * starts writing what waits (unless a write is in flight), and the stream
 * emits "drain" when a write ends with less than its minLength left, not
 * only when nothing is: so this flushes and waits again until nothing waits.
 */
export async function logWritten(logger: Logger, timeoutMs: number): Promise<void> {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as
    | { _writing?: unknown; _len?: unknown; once?: (event: string, listener: () => void) => unknown; off?: (event: string, listener: () => void) => unknown }
    | undefined;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const waiting = typeof stream?._len === "number" ? stream._len : 0;
    if (waiting > 0 && stream?._writing !== true) logger.flush();
    if (stream?._writing !== true || typeof stream.once !== "function") return;
    const left = deadline - Date.now();
    if (left <= 0) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        stream.off?.("drain", done);
        resolve();
      };
      const timer = setTimeout(done, left);
      stream.once?.("drain", done);
    });
  }
}
