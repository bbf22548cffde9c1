/**
 * The one registry of limits (design §2.8). Every limit Wardmail enforces is
 * listed here once: its config key under `[limits]`, its default, its allowed
 * range, where it is enforced and what happens when it is exceeded. The config
 * schema, docs/configuration.md and the enforcement code all read this table.
 *
 * The bounds that are deliberately not configurable are registered beside it
 * in FIXED_LIMITS (fixed.ts), each with the constant that holds it and why it
 * is fixed, so this folder is the one place to read every bound.
 */

export interface LimitSpec {
  /** Key under `[limits]` in the config file. */
  readonly key: string;
  readonly default: number;
  readonly min: number;
  readonly max: number;
  readonly unit: "bytes" | "count" | "seconds" | "milliseconds" | "bits" | "bytes per second";
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
  min_free_space: {
    key: "min_free_space",
    default: 100 * 1024 * 1024,
    min: 0,
    max: 1024 * 1024 * 1024 * 1024,
    unit: "bytes",
    doc: "Free space that must stay on the spool's file system (as Postfix's `queue_minfree`). Below it `MAIL` gets `452 4.3.1 Insufficient system storage` on every listener (free space is read with statfs at most once a second); so does a `MAIL` whose declared `SIZE=` (RFC 1870) would take the free space below it. A message whose spool write runs out of space gets `452 4.3.1` at the end of DATA, never `250`. 0 turns the floor off (the write-time check stays).",
  },
  // ---- per client and per listener (denial of service); src/server/clients.ts, listeners.ts, connection.ts
  max_connections_per_client: {
    key: "max_connections_per_client",
    default: 30,
    min: 1,
    max: 100000,
    unit: "count",
    doc: "Open connections from one client (an IPv4 address, or an IPv6 prefix of `client_ipv6_prefix` bits), all workers together, counted apart for the MX listener and for the submission listeners. Past it: `421 4.7.0 Too many connections from your address` and close, logged as `client limit` with `ip` and `limit` (for fail2ban; one line per client and limit every 10 s, `suppressed` counting the refusals in between). Clients in `relay.trusted_networks` are exempt.",
  },
  connections_per_client_per_minute: {
    key: "connections_per_client_per_minute",
    default: 120,
    min: 1,
    max: 1000000,
    unit: "count",
    doc: "New connections from one client per minute (a sliding window), all workers together, counted apart for MX and submission. Past it: `421 4.7.0 Too many connections from your address` and close, logged as `client limit`. Clients in `relay.trusted_networks` are exempt.",
  },
  messages_per_client_per_minute: {
    key: "messages_per_client_per_minute",
    default: 120,
    min: 1,
    max: 1000000,
    unit: "count",
    doc: "Transactions (`MAIL` commands) from one client per minute on the MX listener, all workers together. Past it: `421 4.7.0 Too many messages from your address` and close, logged as `client limit`. Authenticated clients and `relay.trusted_networks` are exempt.",
  },
  recipients_per_client_per_minute: {
    key: "recipients_per_client_per_minute",
    default: 600,
    min: 1,
    max: 1000000,
    unit: "count",
    doc: "`RCPT` commands (accepted or not) from one client per minute on the MX listener, all workers together. Past it: `421 4.7.0 Too many recipients from your address` and close, logged as `client limit`. Authenticated clients and `relay.trusted_networks` are exempt.",
  },
  client_ipv6_prefix: {
    key: "client_ipv6_prefix",
    default: 64,
    min: 32,
    max: 128,
    unit: "bits",
    doc: "IPv6 clients are counted per prefix of this length (one subscriber usually has a whole /64), for the per-client limits and the pregreet memory.",
  },
  max_mx_connections: {
    key: "max_mx_connections",
    default: 800,
    min: 1,
    max: 100000,
    unit: "count",
    doc: "Open connections on the MX listener per worker thread, within `max_connections`: an MX flood leaves the rest to submission. Past it a session is closed with `421 4.7.0` to make room: an idle one (no progress for 0.25 s) of the client holding the most connections, if that is at least two more than the newcomer's client holds, else, when the newcomer's client holds no connection there (or is trusted), the one that made no progress (no reply sent, no content received) for longest, at least 1 s; never one waiting for the server or in its TLS handshake, or, when none can be, the new one gets `421 4.7.0 Too many connections` and is closed.",
  },
  max_submission_connections: {
    key: "max_submission_connections",
    default: 300,
    min: 1,
    max: 100000,
    unit: "count",
    doc: "Open connections on the submission listeners (STARTTLS and implicit TLS together) per worker thread, within `max_connections`, handled as `max_mx_connections`.",
  },
  pregreet_delay: {
    key: "pregreet_delay",
    default: 1000,
    min: 0,
    max: 30000,
    unit: "milliseconds",
    doc: "On the MX listener the greeting is sent in two parts (`220-` first, then after this pause the final `220 `). A client that sends anything before the greeting ends (an early talker, as spam bots are) gets `554 5.5.1` and is closed, logged as `pregreet`; 0 turns the test off. Clients in `relay.trusted_networks` are not tested.",
  },
  pregreet_ban_time: {
    key: "pregreet_ban_time",
    default: 3600,
    min: 0,
    max: 86400,
    unit: "seconds",
    doc: "How long an early talker is remembered: its new MX connections get `554 5.5.1` at once and are closed.",
  },
  pregreet_pass_time: {
    key: "pregreet_pass_time",
    default: 86400,
    min: 0,
    max: 604800,
    unit: "seconds",
    doc: "How long a client that passed the pregreet test is remembered: its MX connections get the greeting without the pause (as Postfix's `postscreen_greet_ttl`). 0: every connection is tested.",
  },
  command_timeout: {
    key: "command_timeout",
    default: 60,
    min: 1,
    max: 3600,
    unit: "seconds",
    doc: "Time allowed from the first byte of a command line (or SASL response) to its CRLF, however often bytes come. Then `421 4.4.2 Timeout` and close.",
  },
  session_timeout: {
    key: "session_timeout",
    default: 3600,
    min: 10,
    max: 86400,
    unit: "seconds",
    doc: "Longest time one connection may last. Then `421 4.4.2` and close (after the reply to a message being committed).",
  },
  min_data_rate: {
    key: "min_data_rate",
    default: 1024,
    min: 1,
    max: 1000000000,
    unit: "bytes per second",
    doc: "Least average rate of DATA and BDAT content. The content phase starts with a budget of `data_timeout` seconds; time spends it, each byte received adds 1/`min_data_rate` s, never above `data_timeout`. With BDAT the phase runs from the first chunk of a transaction to its last, the command lines between chunks included, so many tiny chunks cannot restart it. When it runs out: `421 4.4.2 Timeout` and close; the partial message is dropped.",
  },
  stress_timeout: {
    key: "stress_timeout",
    default: 10,
    min: 1,
    max: 3600,
    unit: "seconds",
    doc: "Under pressure (a listener of the worker above 80% of its connection limit) the idle, command and data timeouts are cut to this, as Postfix's stress-adaptive settings do.",
  },
  error_delay: {
    key: "error_delay",
    default: 1000,
    min: 0,
    max: 60000,
    unit: "milliseconds",
    doc: "Tarpit: the reply to the n-th error of a session (unknown recipient, refused relay, bad command, ...) is delayed by n times this (n counted up to 30), so that dictionary attacks and recipient harvesting are slow; at `max_errors` the client gets `421 4.7.0`. Not for authenticated and trusted clients.",
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
  max_handoff_bytes: {
    key: "max_handoff_bytes",
    default: 4 * 1024 * 1024,
    min: 0,
    max: 16 * 1024 * 1024 * 1024,
    unit: "bytes",
    doc: "Content bytes of freshly accepted messages each worker thread keeps in memory for its queue manager once they are durable, so that their first delivery needs no read-back from the spool (at most 1024 messages too). A message that does not fit is simply claimed from the spool when due; nothing is lost. Counts toward `memory_budget`; 0 turns the memory handoff off. The default is small on purpose: mail waits for delivery when it comes in faster than it goes out, and what waits in memory is resident memory of the server (64 MiB per worker cost about 20 MiB of peak RSS in the outbound bench for no measurable CPU gain); the spool read-back costs little.",
  },
} as const satisfies Record<string, LimitSpec>;

export { FIXED_LIMITS, type FixedLimitSpec } from "./fixed.ts";

export type LimitName = keyof typeof LIMIT_SPECS;
export type Limits = { readonly [K in LimitName]: number };

/** The defaults as a plain object. */
export const DEFAULT_LIMITS: Limits = Object.freeze(
  Object.fromEntries(Object.entries(LIMIT_SPECS).map(([k, s]) => [k, s.default])) as Limits,
);
