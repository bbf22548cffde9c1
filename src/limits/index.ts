/**
 * The one registry of limits (design §2.8). Every limit Wardmail enforces is
 * listed here once: its config key under `[limits]`, its default, its allowed
 * range, where it is enforced and what happens when it is exceeded. The config
 * schema, docs/configuration.md and the enforcement code all read this table.
 */

export interface LimitSpec {
  /** Key under `[limits]` in the config file. */
  readonly key: string;
  readonly default: number;
  readonly min: number;
  readonly max: number;
  readonly unit: "bytes" | "count" | "seconds";
  /** Where it is enforced and what the client sees. */
  readonly doc: string;
}

export const LIMIT_SPECS = {
  max_line_length: {
    key: "max_line_length",
    default: 2048,
    min: 512,
    max: 65536,
    unit: "bytes",
    doc: "Longest SMTP command line, CRLF included (RFC 5321 §4.5.3.1.4 requires at least 512). Enforced by the protocol core: the rest of the line is read and discarded, then `500 5.5.2 Line too long`.",
  },
  max_message_size: {
    key: "max_message_size",
    default: 25 * 1024 * 1024,
    min: 1024,
    // SQLite stores at most 1e9 bytes in one value; stay well below.
    max: 512 * 1024 * 1024,
    unit: "bytes",
    doc: "Largest message accepted, announced as `SIZE`. `MAIL ... SIZE=` above it gets `552 5.3.4` at once; DATA or BDAT that grows past it is read and discarded to its end, then `552 5.3.4`.",
  },
  max_header_size: {
    key: "max_header_size",
    default: 100 * 1024,
    min: 1024,
    max: 1024 * 1024,
    unit: "bytes",
    doc: "Largest header section of a message (its header fields up to the empty line; Postfix's `header_size_limit` is 100 KB too). Enforced by the DATA/BDAT receiver before anything parses the header: the rest is read and discarded to its end, then `552 5.3.4 Message header too large`.",
  },
  max_recipients: {
    key: "max_recipients",
    default: 100,
    min: 1,
    max: 10000,
    unit: "count",
    doc: "Recipients per message (RFC 5321 §4.5.3.1.8: at least 100). The next RCPT gets `452 4.5.3 Too many recipients`.",
  },
  max_errors: {
    key: "max_errors",
    default: 10,
    min: 1,
    max: 1000,
    unit: "count",
    doc: "Error replies (4xx/5xx to commands) per session. When reached: `421 4.7.0 Too many errors` and the connection is closed.",
  },
  idle_timeout: {
    key: "idle_timeout",
    default: 300,
    min: 1,
    max: 3600,
    unit: "seconds",
    doc: "Time allowed waiting for a command (RFC 5321 §4.5.3.2.7 suggests 5 minutes). Then `421 4.4.2 Idle timeout` and close.",
  },
  data_timeout: {
    key: "data_timeout",
    default: 180,
    min: 1,
    max: 3600,
    unit: "seconds",
    doc: "Time allowed between two reads while receiving DATA or BDAT content (RFC 5321 §4.5.3.2.5 suggests 3 minutes). Then `421 4.4.2 Data timeout` and close; the partial message is dropped.",
  },
  max_connections: {
    key: "max_connections",
    default: 1000,
    min: 1,
    max: 100000,
    unit: "count",
    doc: "Open SMTP connections per worker thread, all listeners together. Past it a new connection gets `421 4.7.0 Too many connections` and is closed.",
  },
  tls_handshake_timeout: {
    key: "tls_handshake_timeout",
    default: 30,
    min: 1,
    max: 600,
    unit: "seconds",
    doc: "Time allowed for a TLS handshake (implicit TLS or after STARTTLS). Then the connection is closed.",
  },
  max_commands: {
    key: "max_commands",
    default: 10000,
    min: 10,
    max: 10000000,
    unit: "count",
    doc: "Commands per connection, so one connection cannot stay forever. Then `421 4.7.0 Too many commands` and close.",
  },
  memory_budget: {
    key: "memory_budget",
    default: 2 * 1024 * 1024 * 1024,
    min: 64 * 1024 * 1024,
    max: 1024 * 1024 * 1024 * 1024,
    unit: "bytes",
    doc: "Resident memory (RSS) of the whole server process, all threads together. At or above it, a new connection gets `421 4.3.2 Server busy, try again later` and is closed, and `MAIL` gets `451 4.3.1 Insufficient system resources`; transactions already under way and mail already accepted go on. Raise it with `server.workers` (each worker thread costs about 30 MB at rest).",
  },
  worker_heap_limit: {
    key: "worker_heap_limit",
    default: 512 * 1024 * 1024,
    min: 64 * 1024 * 1024,
    max: 64 * 1024 * 1024 * 1024,
    unit: "bytes",
    doc: "Largest JavaScript heap (old generation) of each worker thread (`resourceLimits` of worker_threads). A worker that hits it is ended and restarted on its own spool shard, which loses nothing already acknowledged; the sessions it held are cut.",
  },
} as const satisfies Record<string, LimitSpec>;

export type LimitName = keyof typeof LIMIT_SPECS;
export type Limits = { readonly [K in LimitName]: number };

/** The defaults as a plain object. */
export const DEFAULT_LIMITS: Limits = Object.freeze(
  Object.fromEntries(Object.entries(LIMIT_SPECS).map(([k, s]) => [k, s.default])) as Limits,
);
